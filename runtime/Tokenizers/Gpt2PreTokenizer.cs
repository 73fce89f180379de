using System.Globalization;
using System.Text;

namespace AotFlash.Tokenizers;

/// <summary>
/// GPT-2's pre-tokenizer, the regular expression
/// <c>'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+</c>,
/// written out as a scanner over the code points of UTF-8 text. The reference implementations
/// (OpenAI's encoder.py with Python's <c>regex</c>, HF tokenizers, JavaScript with the <c>u</c>
/// flag) match code points; a .NET <see cref="System.Text.RegularExpressions.Regex"/> matches
/// UTF-16 units, where a letter or digit outside the BMP is two surrogates of category Cs and
/// would split a word. <c>\p{L}</c> is Lu Ll Lt Lm Lo, <c>\p{N}</c> is Nd Nl No, and <c>\s</c>
/// is Unicode's White_Space property (<see cref="Rune.IsWhiteSpace"/>), as in Python's
/// <c>regex</c>, Rust and .NET: U+0085 is whitespace, U+FEFF and U+001C..U+001F are not.
/// </summary>
internal static class Gpt2PreTokenizer
{
    enum CharClass : byte { Letter, Number, Space, Other }

    static readonly CharClass[] s_asciiClass = CreateAsciiClasses();

    /// <summary>
    /// The end (exclusive byte offset) of the pre-token that starts at <paramref name="start"/>
    /// (&lt; text length). <paramref name="utf8"/> must be valid UTF-8.
    /// </summary>
    public static int NextEnd(ReadOnlySpan<byte> utf8, int start)
    {
        // The alternatives in the pattern's order; the first that matches wins.
        if (utf8[start] == (byte)'\'' && start + 1 < utf8.Length)
        {
            byte c = utf8[start + 1];
            if (c is (byte)'s' or (byte)'t' or (byte)'m' or (byte)'d') return start + 2;
            if (start + 2 < utf8.Length)
            {
                byte d = utf8[start + 2];
                if ((c == 'r' && d == 'e') || (c == 'v' && d == 'e') || (c == 'l' && d == 'l')) return start + 3;
            }
        }

        CharClass cls = Classify(utf8, start, out int length);
        int runStart = start;
        if (utf8[start] == (byte)' ' && start + 1 < utf8.Length)
        {
            // " ?" before \p{L}+, \p{N}+ and [^\s\p{L}\p{N}]+: a space joins the run after it
            // unless that run is whitespace.
            CharClass next = Classify(utf8, start + 1, out int nextLength);
            if (next != CharClass.Space)
            {
                cls = next;
                runStart = start + 1;
                length = nextLength;
            }
        }

        int end = runStart + length;
        if (cls != CharClass.Space)
        {
            while (end < utf8.Length && Classify(utf8, end, out length) == cls) end += length;
            return end;
        }

        // \s+(?!\S) backtracks to leave the last whitespace character for the next pre-token when
        // the run is followed by something else; a single whitespace character then falls to \s+.
        int lastStart = start;
        while (end < utf8.Length && Classify(utf8, end, out length) == CharClass.Space)
        {
            lastStart = end;
            end += length;
        }
        return end < utf8.Length && lastStart > start ? lastStart : end;
    }

    static CharClass Classify(ReadOnlySpan<byte> utf8, int at, out int length)
    {
        byte b = utf8[at];
        if (b < 0x80)
        {
            length = 1;
            return s_asciiClass[b];
        }
        Rune.DecodeFromUtf8(utf8.Slice(at), out Rune rune, out length);
        if (Rune.IsWhiteSpace(rune)) return CharClass.Space;
        return Rune.GetUnicodeCategory(rune) switch
        {
            UnicodeCategory.UppercaseLetter or UnicodeCategory.LowercaseLetter
                or UnicodeCategory.TitlecaseLetter or UnicodeCategory.ModifierLetter
                or UnicodeCategory.OtherLetter => CharClass.Letter,
            UnicodeCategory.DecimalDigitNumber or UnicodeCategory.LetterNumber
                or UnicodeCategory.OtherNumber => CharClass.Number,
            _ => CharClass.Other,
        };
    }

    static CharClass[] CreateAsciiClasses()
    {
        var classes = new CharClass[128];
        for (int c = 0; c < 128; c++)
        {
            classes[c] = c switch
            {
                >= 'a' and <= 'z' or >= 'A' and <= 'Z' => CharClass.Letter,
                >= '0' and <= '9' => CharClass.Number,
                ' ' or '\t' or '\n' or '\v' or '\f' or '\r' => CharClass.Space,
                _ => CharClass.Other,
            };
        }
        return classes;
    }
}
