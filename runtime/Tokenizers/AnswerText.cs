using System.Text;

namespace AotFlash.Tokenizers;

/// <summary>
/// The answer's text as tokens arrive: a token may end inside a UTF-8 character, so bytes are held until the character
/// is whole (invalid bytes become U+FFFD); text that could be the start of a stop string is held until it is known not
/// to be one; at the first stop string the answer ends, without it.
/// </summary>
internal sealed class AnswerText(IReadOnlyList<string> stops)
{
    private readonly Decoder _utf8 = new UTF8Encoding(false, false).GetDecoder();
    private readonly StringBuilder _held = new();
    private char[] _chars = new char[64];

    /// <summary>A stop string was found; nothing more is taken.</summary>
    public bool Stopped { get; private set; }

    /// <summary>Takes a token's bytes and returns the text that is now certain (possibly empty).</summary>
    public string Add(ReadOnlySpan<byte> piece) => Take(piece, flush: false);

    /// <summary>Ends the answer: returns what was held (a character left incomplete becomes U+FFFD).</summary>
    public string Finish() => Take([], flush: true);

    private string Take(ReadOnlySpan<byte> piece, bool flush)
    {
        if (Stopped) return "";
        int count = _utf8.GetCharCount(piece, flush);
        if (_chars.Length < count) _chars = new char[Math.Max(count, 2 * _chars.Length)];
        _held.Append(_chars, 0, _utf8.GetChars(piece, _chars, flush));
        string held = _held.ToString();
        int stopAt = -1;
        foreach (var stop in stops)
        {
            int at = held.IndexOf(stop, StringComparison.Ordinal);
            if (at >= 0 && (stopAt < 0 || at < stopAt)) stopAt = at;
        }
        if (stopAt >= 0)
        {
            Stopped = true;
            _held.Clear();
            return held[..stopAt];
        }
        // Text released earlier ended with no stop string's start, so a stop string can only begin in what is held.
        int keep = flush ? 0 : HeldBack(held);
        _held.Clear().Append(held, held.Length - keep, keep);
        return held[..^keep];
    }

    /// <summary>The length of the longest end of <paramref name="text"/> that begins some stop string.</summary>
    private int HeldBack(string text)
    {
        int keep = 0;
        foreach (var stop in stops)
            for (int n = Math.Min(stop.Length - 1, text.Length); n > keep; n--)
                if (text.AsSpan(text.Length - n).SequenceEqual(stop.AsSpan(0, n)))
                {
                    keep = n;
                    break;
                }
        return keep;
    }
}
