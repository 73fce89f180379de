using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using System.Text.Unicode;
using AotFlash.Tokenizers;

namespace AotFlash.Tests.Tokenizers;

/// <summary>
/// GPT-2 byte-level BPE. The reference tests read the GPT-2 vocabulary of opt-tiny-hf and the
/// encodings of ../shared/reference/gpt2-bpe.jsonl (an independent oracle) and are skipped, with the
/// reason, without shared/. The tiny-vocabulary tests build their own vocabularies, in which the
/// tokens for bytes have ids 0..255 (the byte's value) and merges make ids 256, 257, …, so their
/// expected ids are worked out by hand.
/// </summary>
public sealed class Gpt2BpeTokenizerTests
{
    const int EndOfText = 50256;
    const string VocabFile = "models/opt-tiny-hf/vocab.json";
    const string MergesFile = "models/opt-tiny-hf/merges.txt";
    const string ReferenceFile = "reference/gpt2-bpe.jsonl";

    static readonly Lazy<Gpt2BpeTokenizer?> s_gpt2 = new(() =>
    {
        string? vocab = TestPaths.SharedFile(VocabFile), merges = TestPaths.SharedFile(MergesFile);
        return vocab is null || merges is null ? null
            : Gpt2BpeTokenizer.FromVocabAndMerges(File.ReadAllBytes(vocab), File.ReadAllBytes(merges));
    });

    static Gpt2BpeTokenizer Gpt2()
    {
        Skip.If(s_gpt2.Value is null, $"../shared/{VocabFile} and merges.txt are not beside this checkout");
        return s_gpt2.Value!;
    }

    static List<(string Text, int[] Ids)> Reference()
    {
        string? path = TestPaths.SharedFile(ReferenceFile);
        Skip.If(path is null, $"../shared/{ReferenceFile} is not beside this checkout");
        var lines = new List<(string, int[])>();
        foreach (string line in File.ReadLines(path!))
        {
            if (string.IsNullOrWhiteSpace(line)) continue;
            using var doc = JsonDocument.Parse(line);
            lines.Add((doc.RootElement.GetProperty("text").GetString()!,
                       doc.RootElement.GetProperty("ids").EnumerateArray().Select(e => e.GetInt32()).ToArray()));
        }
        return lines;
    }

    /// <summary>The streamed decode: each token's bytes, concatenated.</summary>
    static byte[] DecodeAll(ITokenizer tok, IEnumerable<int> ids, int bos = EndOfText)
    {
        var bytes = new List<byte>();
        int previous = bos;
        foreach (int id in ids)
        {
            bytes.AddRange(tok.Decode(previous, id, bos).ToArray());
            previous = id;
        }
        return bytes.ToArray();
    }

    static void AssertEncodesReference(Gpt2BpeTokenizer tok, List<(string Text, int[] Ids)> reference)
    {
        foreach (var (text, expected) in reference)
        {
            byte[] utf8 = Encoding.UTF8.GetBytes(text);
            int[] ids = tok.Encode(utf8, addBos: false, bos: EndOfText);
            Assert.True(expected.SequenceEqual(ids),
                $"{JsonSerializer.Serialize(text)}: expected [{string.Join(",", expected)}], got [{string.Join(",", ids)}]");
            Assert.Equal(utf8, DecodeAll(tok, ids));
        }
    }

    // ---------- the reference encodings ----------

    [SkippableFact]
    public void EncodesEveryReferenceLineExactly_AndRoundTripsIt()
    {
        var tok = Gpt2();
        var reference = Reference();
        Assert.Equal(69, reference.Count);
        Assert.Equal(50257, tok.VocabSize);
        Assert.Equal(50000, tok.MergeCount);
        AssertEncodesReference(tok, reference);

        // With BOS: the prompt_ids convention of opt-tiny-hf.greedy.jsonl.
        Assert.Equal(new[] { EndOfText, 7454, 2402, 257, 640 }, tok.Encode("Once upon a time"u8, addBos: true, bos: EndOfText));
        Assert.Equal(new[] { EndOfText }, tok.Encode(""u8, addBos: true, bos: EndOfText));
        Assert.Empty(tok.Encode(""u8, addBos: false, bos: EndOfText));
    }

    [SkippableFact]
    public void TheReferenceSplitsUtf8CharactersAcrossTokens_AndTheStreamedBytesJoinThem()
    {
        var tok = Gpt2();
        // Byte-level BPE may cut a character (" ½" is 20 C2 BD): such tokens are counted, not assumed by id.
        int split = 0;
        foreach (var (text, ids) in Reference())
        {
            foreach (int id in ids)
                if (!Utf8.IsValid(tok.Decode(EndOfText, id, EndOfText))) split++;
            Assert.Equal(Encoding.UTF8.GetBytes(text), DecodeAll(tok, ids));
        }
        Assert.True(split > 10, $"only {split} tokens hold part of a character");
    }

    [SkippableFact]
    public void EndOfTextIsAControlToken_NeverEncodedFromText_DecodedToNothing()
    {
        var tok = Gpt2();
        Assert.True(tok.IsSpecial(EndOfText));
        Assert.False(tok.IsSpecial(27));
        Assert.Equal("<|endoftext|>"u8.ToArray(), tok.Piece(EndOfText).ToArray());
        Assert.True(tok.Decode(15496, EndOfText, EndOfText).IsEmpty);
        Assert.DoesNotContain(EndOfText, tok.Encode("a<|endoftext|>b"u8, addBos: false, bos: EndOfText));
        Assert.Equal("Hello"u8.ToArray(), DecodeAll(tok, [EndOfText, 15496, EndOfText]));
        Assert.Throws<ArgumentOutOfRangeException>(() => tok.Decode(0, 50257, EndOfText));
        Assert.Throws<ArgumentOutOfRangeException>(() => tok.Decode(0, -1, EndOfText));
        Assert.Throws<ArgumentOutOfRangeException>(() => tok.Encode("a"u8, addBos: true, bos: 50257));
    }

    [SkippableFact]
    public void SerialisedFormLoadsBackToTheSameTokenizer()
    {
        var tok = Gpt2();
        byte[] data = tok.Serialize();
        var loaded = Gpt2BpeTokenizer.Load(data, 50257);
        Assert.Equal(data, loaded.Serialize());
        AssertEncodesReference(loaded, Reference());
        Assert.True(loaded.IsSpecial(EndOfText));

        // A model with a padded embedding: ids past the tokens decode to nothing.
        var padded = Gpt2BpeTokenizer.Load(data, 50272);
        Assert.Equal(50272, padded.VocabSize);
        Assert.True(padded.Decode(0, 50271, EndOfText).IsEmpty);
        Assert.Equal(new[] { 15496, 995 }, padded.Encode("Hello world"u8, false, EndOfText));
        var ex = Assert.Throws<InvalidDataException>(() => Gpt2BpeTokenizer.Load(data, 50256));
        Assert.Contains("50257 tokens, more than the model's vocabulary of 50256", ex.Message, StringComparison.Ordinal);
    }

    [SkippableFact]
    public void TokenizerJsonBuiltFromTheSameFilesEncodesTheSame()
    {
        var tok = Gpt2();
        byte[] vocab = File.ReadAllBytes(TestPaths.SharedFile(VocabFile)!);
        string[] mergeLines = File.ReadAllLines(TestPaths.SharedFile(MergesFile)!).Skip(1).Where(l => l.Length > 0).ToArray();
        foreach (bool pairsAsArrays in new[] { false, true })
        {
            byte[] json = TokenizerJson(vocab, mergeLines, pairsAsArrays, added: [("<|endoftext|>", EndOfText, true)]);
            var fromJson = Gpt2BpeTokenizer.FromTokenizerJson(json);
            Assert.Equal(tok.Serialize(), fromJson.Serialize());
            AssertEncodesReference(fromJson, Reference());
        }
    }

    [SkippableFact]
    public void RandomTextRoundTrips()
    {
        var tok = Gpt2();
        var rng = new Random(5);
        string[] pieces = ["a", "e", "Z", " ", "  ", "\n", "\r\n", "\t", "'s", "'", "é", "e\u0301", "ß", "Ω", "ж", "中", "日本", "한",
                           "😀", "👍🏽", "👨‍👩‍👧", "½", "٣", "𝐀", "𝟏", "\u0085", "\uFEFF", "\u00A0", "\u200B", "\0", "\u007F", "1", "42", "!", "...", "<|endoftext|>"];
        for (int n = 0; n < 3000; n++)
        {
            var sb = new StringBuilder();
            for (int k = rng.Next(0, 24); k > 0; k--) sb.Append(pieces[rng.Next(pieces.Length)]);
            byte[] text = Encoding.UTF8.GetBytes(sb.ToString());
            int[] ids = tok.Encode(text, addBos: true, bos: EndOfText);
            Assert.Equal(EndOfText, ids[0]);
            Assert.All(ids.Skip(1), id => Assert.False(tok.IsSpecial(id)));
            Assert.Equal(text, DecodeAll(tok, ids.Skip(1)));
        }
    }

    // ---------- tiny vocabularies with hand-checked merges ----------

    /// <summary>GPT-2's bytes_to_unicode, written out again from its definition.</summary>
    static string ByteChar(int b)
    {
        var printable = Enumerable.Range('!', '~' - '!' + 1).Concat(Enumerable.Range(0xA1, 0xAC - 0xA1 + 1)).Concat(Enumerable.Range(0xAE, 0xFF - 0xAE + 1)).ToHashSet();
        if (printable.Contains(b)) return ((char)b).ToString();
        return ((char)(0x100 + Enumerable.Range(0, b).Count(x => !printable.Contains(x)))).ToString();
    }

    /// <summary>A token of raw bytes, each char of <paramref name="latin1"/> one byte, in GPT-2's alphabet.</summary>
    static string Chars(string latin1) => string.Concat(latin1.Select(c => ByteChar(checked((byte)c))));

    /// <summary>vocab.json (byte b has id b, then each merge's result, in order, from 256) and merges.txt; tokens are raw bytes, one char each.</summary>
    static (byte[] Vocab, byte[] Merges) TinyFiles((string Left, string Right)[] merges, params string[] extraTokens)
    {
        var tokens = Enumerable.Range(0, 256).Select(ByteChar).ToList();
        var lines = new List<string> { "#version: 0.2" };
        foreach (var (l, r) in merges)
        {
            string left = Chars(l), right = Chars(r);
            lines.Add(left + " " + right);
            if (!tokens.Contains(left + right)) tokens.Add(left + right);
        }
        tokens.AddRange(extraTokens);
        var vocab = new MemoryStream();
        using (var w = new Utf8JsonWriter(vocab))
        {
            w.WriteStartObject();
            for (int id = 0; id < tokens.Count; id++) w.WriteNumber(tokens[id], id);
            w.WriteEndObject();
        }
        return (vocab.ToArray(), Encoding.UTF8.GetBytes(string.Join("\n", lines) + "\n"));
    }

    static Gpt2BpeTokenizer Tiny(params (string, string)[] merges)
    {
        var (vocab, mergesText) = TinyFiles(merges);
        return Gpt2BpeTokenizer.FromVocabAndMerges(vocab, mergesText);
    }

    static int[] Encode(Gpt2BpeTokenizer tok, string text) => tok.Encode(Encoding.UTF8.GetBytes(text), addBos: false, bos: 0);

    [Fact]
    public void MergesGoByRank_NotLeftToRight()
    {
        // rank 0: b+c = 256, rank 1: a+b = 257. "abc": (b,c) has the lower rank, so a | bc, and a+bc is no merge.
        var tok = Tiny(("b", "c"), ("a", "b"));
        Assert.Equal(new int[] { 'a', 256 }, Encode(tok, "abc"));
        Assert.Equal(new[] { 257 }, Encode(tok, "ab"));
        Assert.Equal(new[] { 257, 256 }, Encode(tok, "abbc"));
        Assert.Equal("abc"u8.ToArray(), DecodeAll(tok, [97, 256], bos: -1));
    }

    [Fact]
    public void EqualRanksMergeLeftmostFirst_AndMergedTokensMergeAgain()
    {
        // rank 0: a+a = 256, rank 1: aa+aa = 257, rank 2: aa+a = 258.
        var tok = Tiny(("a", "a"), ("aa", "aa"), ("aa", "a"));
        // "aaa": (0,1) and (1,2) are both rank 0; the leftmost goes first: aa a, then aa+a (rank 2).
        Assert.Equal(new[] { 258 }, Encode(tok, "aaa"));
        // "aaaa": aa a a, then the remaining rank-0 pair: aa aa, then rank 1.
        Assert.Equal(new[] { 257 }, Encode(tok, "aaaa"));
        // "aaaaa": aa aa a; rank 1 (aa,aa) before rank 2 (aa,a).
        Assert.Equal(new[] { 257, 'a' }, Encode(tok, "aaaaa"));
        // Only a+a merges here: "aaa" is aa a.
        Assert.Equal(new[] { 256, 'a' }, Encode(Tiny(("a", "a")), "aaa"));
    }

    [Fact]
    public void APairListedTwiceKeepsItsLastRank()
    {
        // ranks: 0 a+b = 256, 1 b+c = 257, 2 a+b again. With rank 2 for (a,b), (b,c) goes first in "abc".
        var tok = Tiny(("a", "b"), ("b", "c"), ("a", "b"));
        Assert.Equal(new int[] { 'a', 257 }, Encode(tok, "abc"));
        Assert.Equal(new int[] { 'a', 257 }, Encode(Gpt2BpeTokenizer.Load(tok.Serialize(), tok.VocabSize), "abc"));
        Assert.Equal(new int[] { 256, 'c' }, Encode(Tiny(("a", "b"), ("b", "c")), "abc"));
    }

    [Fact]
    public void MergesNeverCrossPreTokens()
    {
        // a+Ġ = 256 would merge "a " but the pre-tokenizer splits "a b" into "a" and " b"; Ġ+b = 257.
        var tok = Tiny(("a", " "), (" ", "b"));
        Assert.Equal(new int[] { 'a', 257 }, Encode(tok, "a b"));
        Assert.Equal(new int[] { 'a', ' ' }, Encode(tok, "a "));
        // A run of two spaces before a word leaves its last space to the word.
        Assert.Equal(new int[] { 'a', ' ', 257 }, Encode(tok, "a  b"));
    }

    [Fact]
    public void ContractionsAreOwnPreTokens_OnlyInLowerCase()
    {
        // '+s = 256; t+' = 257 never applies ("t'" is never one pre-token).
        var tok = Tiny(("'", "s"), ("t", "'"));
        Assert.Equal(new int[] { 'i', 't', 256 }, Encode(tok, "it's"));
        Assert.Equal(new int[] { 'I', 'T', '\'', 'S' }, Encode(tok, "IT'S"));
        Assert.Equal(new int[] { 'x', '\'', '\'', 's' }, Encode(tok, "x''s"));
    }

    [Fact]
    public void LettersAndDigitsOutsideTheBmpStayInTheirWord()
    {
        // U+1D400 (bold A, a letter) is F0 9D 90 80; U+1D7CF (bold digit one, Nd) is F0 9D 9F 8F; U+1F600 (an emoji, So)
        // is F0 9F 98 80. x+F0 = 256 and 1+F0 = 257 apply only where the astral character is in the same pre-token;
        // a UTF-16 regex sees two surrogates (category Cs) there and splits the word.
        var tok = Tiny(("x", "\u00F0"), ("1", "\u00F0"));
        Assert.Equal(new[] { 256, 0x9D, 0x90, 0x80 }, Encode(tok, "x\U0001D400"));
        Assert.Equal(new[] { 257, 0x9D, 0x9F, 0x8F }, Encode(tok, "1\U0001D7CF"));
        Assert.Equal(new int[] { 'x', 0xF0, 0x9F, 0x98, 0x80 }, Encode(tok, "x\U0001F600"));
    }

    [Fact]
    public void ByteTokensNeedNotHaveTheirByteAsId()
    {
        // Reverse the ids of the 256 byte tokens: byte b is id 255 - b.
        var vocab = new MemoryStream();
        using (var w = new Utf8JsonWriter(vocab))
        {
            w.WriteStartObject();
            for (int id = 0; id < 256; id++) w.WriteNumber(ByteChar(255 - id), id);
            w.WriteNumber(Chars("hi"), 256);
            w.WriteEndObject();
        }
        var tok = Gpt2BpeTokenizer.FromVocabAndMerges(vocab.ToArray(), Encoding.UTF8.GetBytes($"{Chars("h")} {Chars("i")}"));
        Assert.Equal(new[] { 256, 255 - '!', 255 - ' ', 255 - 0xC3, 255 - 0xA9 }, Encode(tok, "hi! é"));
        Assert.Equal(" "u8.ToArray(), tok.Decode(0, 255 - ' ', 0).ToArray());
        Assert.Equal(new byte[] { 0xC3 }, tok.Decode(0, 255 - 0xC3, 0).ToArray());
    }

    [Fact]
    public void SpecialTokensAreChosenByTheCaller()
    {
        var (vocab, merges) = TinyFiles([("a", "b")], "<|endoftext|>", "<pad>");
        var byDefault = Gpt2BpeTokenizer.FromVocabAndMerges(vocab, merges);
        Assert.True(byDefault.IsSpecial(257));
        Assert.False(byDefault.IsSpecial(258));
        Assert.Equal("<pad>"u8.ToArray(), byDefault.Decode(0, 258, 0).ToArray());

        var chosen = Gpt2BpeTokenizer.FromVocabAndMerges(vocab, merges, ["<pad>"]);
        Assert.False(chosen.IsSpecial(257));
        Assert.True(chosen.IsSpecial(258));
        Assert.True(chosen.Decode(0, 258, 0).IsEmpty);
        Assert.Equal("<pad>"u8.ToArray(), chosen.Piece(258).ToArray());

        var ex = Assert.Throws<InvalidDataException>(() => Gpt2BpeTokenizer.FromVocabAndMerges(vocab, merges, ["</s>"]));
        Assert.Contains("'</s>' is not in vocab.json", ex.Message, StringComparison.Ordinal);
    }

    // ---------- tokenizer.json ----------

    /// <summary>A minimal HF tokenizer.json of a GPT-2 byte-level BPE, with room to break it.</summary>
    static byte[] TokenizerJson(byte[] vocabJson, IEnumerable<string> merges, bool pairsAsArrays,
                                (string Content, int Id, bool Special)[] added, Action<Utf8JsonWriter>? extraRoot = null,
                                string modelType = "BPE", string preTokenizer = "ByteLevel", bool addPrefixSpace = false)
    {
        var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms))
        {
            w.WriteStartObject();
            w.WriteString("version", "1.0");
            w.WriteNull("truncation");
            w.WriteStartArray("added_tokens");
            foreach (var (content, id, special) in added)
            {
                w.WriteStartObject();
                w.WriteNumber("id", id);
                w.WriteString("content", content);
                w.WriteBoolean("single_word", false);
                w.WriteBoolean("special", special);
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteNull("normalizer");
            w.WriteStartObject("pre_tokenizer");
            w.WriteString("type", preTokenizer);
            w.WriteBoolean("add_prefix_space", addPrefixSpace);
            w.WriteBoolean("trim_offsets", true);
            w.WriteBoolean("use_regex", true);
            w.WriteEndObject();
            w.WriteStartObject("post_processor");
            w.WriteString("type", "ByteLevel");
            w.WriteEndObject();
            w.WriteStartObject("decoder");
            w.WriteString("type", "ByteLevel");
            w.WriteEndObject();
            extraRoot?.Invoke(w);
            w.WriteStartObject("model");
            w.WriteString("type", modelType);
            w.WriteNull("dropout");
            w.WriteNull("unk_token");
            w.WriteString("continuing_subword_prefix", "");
            w.WriteString("end_of_word_suffix", "");
            w.WriteBoolean("fuse_unk", false);
            w.WriteBoolean("byte_fallback", false);
            w.WritePropertyName("vocab");
            w.WriteRawValue(vocabJson);
            w.WriteStartArray("merges");
            foreach (string m in merges)
            {
                if (!pairsAsArrays)
                {
                    w.WriteStringValue(m);
                    continue;
                }
                w.WriteStartArray();
                foreach (string part in m.Split(' ')) w.WriteStringValue(part);
                w.WriteEndArray();
            }
            w.WriteEndArray();
            w.WriteEndObject();
            w.WriteEndObject();
        }
        return ms.ToArray();
    }

    static (byte[] Vocab, string[] Merges) TinyJsonParts()
    {
        var (vocab, merges) = TinyFiles([("a", "b"), ("ab", "c")], "<|endoftext|>");
        return (vocab, Encoding.UTF8.GetString(merges).Split('\n').Skip(1).Where(l => l.Length > 0).ToArray());
    }

    [Fact]
    public void TokenizerJson_SpecialTokensPastTheVocabularyExtendIt()
    {
        var (vocab, merges) = TinyJsonParts();
        // ids: 256 ab, 257 abc, 258 <|endoftext|> (in the vocabulary), 259 <pad> (added only).
        var tok = Gpt2BpeTokenizer.FromTokenizerJson(TokenizerJson(vocab, merges, false, [("<|endoftext|>", 258, true), ("<pad>", 259, true)]));
        Assert.Equal(260, tok.VocabSize);
        Assert.True(tok.IsSpecial(258) && tok.IsSpecial(259));
        Assert.Equal("<pad>"u8.ToArray(), tok.Piece(259).ToArray());
        Assert.Equal(new[] { 259, 257, 'a' }, tok.Encode("abca"u8, addBos: true, bos: 259));
        // Special tokens are not matched in text.
        Assert.Equal(Encoding.UTF8.GetBytes("<pad>").Select(b => (int)b).ToArray(), Encode(tok, "<pad>"));
    }

    public static TheoryData<string, string> BadTokenizerJsons => new()
    {
        { "model.type is 'WordPiece', not 'BPE'", "wordpiece" },
        { "its pre_tokenizer is not ByteLevel", "metaspace" },
        { "pre_tokenizer.add_prefix_space is set", "prefix" },
        { "it has a normalizer", "normalizer" },
        { "added token '<x>' (id 259) is not special", "nonspecial" },
        { "added token '<|endoftext|>' has id 5, the vocabulary 258", "clash" },
        { "token ids must run 0..259 without gaps; '<x>' has id 260", "gap" },
        { "tokenizer.json is not valid JSON", "truncated" },
        { "tokenizer.json has no object 'model'", "nomodel" },
    };

    [Theory]
    [MemberData(nameof(BadTokenizerJsons))]
    public void TokenizerJson_OtherKindsAndBrokenFilesAreRefused(string message, string variant)
    {
        var (vocab, merges) = TinyJsonParts();
        (string, int, bool)[] eot = [("<|endoftext|>", 258, true)];
        byte[] json = variant switch
        {
            "wordpiece" => TokenizerJson(vocab, merges, false, eot, modelType: "WordPiece"),
            "metaspace" => TokenizerJson(vocab, merges, false, eot, preTokenizer: "Metaspace"),
            "prefix" => TokenizerJson(vocab, merges, false, eot, addPrefixSpace: true),
            "normalizer" => TokenizerJson(vocab, merges, false, eot, w => { w.WriteStartObject("normalizer"); w.WriteString("type", "NFC"); w.WriteEndObject(); }),
            "nonspecial" => TokenizerJson(vocab, merges, false, [.. eot, ("<x>", 259, false)]),
            "clash" => TokenizerJson(vocab, merges, false, [("<|endoftext|>", 5, true)]),
            "gap" => TokenizerJson(vocab, merges, false, [.. eot, ("<x>", 260, true)]),
            "truncated" => TokenizerJson(vocab, merges, false, eot)[..^2],
            "nomodel" => "{\"version\":\"1.0\"}"u8.ToArray(),
            _ => throw new ArgumentException(variant),
        };
        if (variant == "normalizer")
        {
            // The writer put a second "normalizer" after the null one; the later one is the one HF reads.
            json = Encoding.UTF8.GetBytes(Encoding.UTF8.GetString(json).Replace("\"normalizer\":null,", ""));
        }
        var ex = Assert.Throws<InvalidDataException>(() => Gpt2BpeTokenizer.FromTokenizerJson(json));
        Assert.Contains(message, ex.Message, StringComparison.Ordinal);
        Assert.StartsWith("tokenizer: ", ex.Message, StringComparison.Ordinal);
    }

    // ---------- vocab.json and merges.txt that do not fit ----------

    public static TheoryData<string, string> BadMerges => new()
    {
        { "#version: 0.2\na b\nab d\n", "merge 1 ('ab d') needs 'abd', which is not in the vocabulary" },
        { "a b\nq\n", "merges.txt line 2 is not two tokens separated by one space: 'q'" },
        { "a  b\n", "merges.txt line 1 is not two tokens separated by one space" },
    };

    [Theory]
    [MemberData(nameof(BadMerges))]
    public void MergesThatDoNotFitTheVocabularyAreRefused(string merges, string message)
    {
        var (vocab, _) = TinyFiles([("a", "b"), ("ab", "c")]);
        var ex = Assert.Throws<InvalidDataException>(() => Gpt2BpeTokenizer.FromVocabAndMerges(vocab, Encoding.UTF8.GetBytes(merges)));
        Assert.Contains(message, ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void VocabulariesThatAreNotByteLevelAreRefused()
    {
        byte[] merges = "a b\n"u8.ToArray();
        var cases = new (string Json, string Message)[]
        {
            ("{\"a\": 0, \"b\": 1", "vocab.json is not valid JSON"),
            ("[1, 2]", "the vocabulary is not a JSON object"),
            ("{\"a\": 0, \"b\": 0}", "tokens 'a' and 'b' share id 0"),
            ("{\"a\": 0, \"a\": 1}", "token 'a' appears twice"),
            ("{\"a\": 0, \"b\": 2}", "'b' has id 2"),
            ("{\"a\": \"x\"}", "token 'a' has no valid id"),
            ("{\"a €\": 0}", "token 'a €' (id 0) has ' '"),
            ("{\"a\": 0, \"b\": 1, \"ab\": 2}", "no token stands for byte 0x00"),
        };
        foreach (var (json, message) in cases)
        {
            var ex = Assert.Throws<InvalidDataException>(() => Gpt2BpeTokenizer.FromVocabAndMerges(Encoding.UTF8.GetBytes(json), merges));
            Assert.Contains(message, ex.Message, StringComparison.Ordinal);
        }
        var invalid = Assert.Throws<InvalidDataException>(() => Gpt2BpeTokenizer.FromVocabAndMerges(TinyFiles([]).Vocab, [0x61, 0x20, 0xFF]));
        Assert.Contains("merges.txt is not valid UTF-8", invalid.Message, StringComparison.Ordinal);
    }

    // ---------- serialised form ----------

    static Gpt2BpeTokenizer TinyForLoad() =>
        Gpt2BpeTokenizer.FromVocabAndMerges(TinyFiles([("a", "b"), ("ab", "c"), ("\u00C3", "\u00A9")], "<|endoftext|>").Vocab,
                                            TinyFiles([("a", "b"), ("ab", "c"), ("\u00C3", "\u00A9")]).Merges);

    [Fact]
    public void Load_RoundTripsATinyTokenizer()
    {
        var tok = TinyForLoad();
        byte[] data = tok.Serialize();
        var loaded = Gpt2BpeTokenizer.Load(data, 260);
        Assert.Equal(data, loaded.Serialize());
        Assert.Equal(new[] { 257, 258, 'd' }, Encode(loaded, "abcéd"));
        Assert.True(loaded.IsSpecial(259));
        Assert.Throws<ArgumentOutOfRangeException>(() => Gpt2BpeTokenizer.Load(data, 0));
    }

    [Fact]
    public void Load_EveryTruncationAndExtensionThrowsInvalidData()
    {
        byte[] data = TinyForLoad().Serialize();
        for (int cut = 0; cut < data.Length; cut++)
        {
            var ex = Assert.Throws<InvalidDataException>(() => Gpt2BpeTokenizer.Load(data.AsSpan(0, cut), 260));
            Assert.StartsWith("tokenizer: ", ex.Message, StringComparison.Ordinal);
        }
        Assert.Throws<InvalidDataException>(() => Gpt2BpeTokenizer.Load([.. data, 0], 260));
    }

    [Fact]
    public void Load_RejectsCorruptData()
    {
        byte[] data = TinyForLoad().Serialize();
        const int tokens = 260, header = 24;
        int blob = BitConverter.ToInt32(data, 20);
        int merges = header + 3 * tokens + blob;

        void Rejects(string message, Action<byte[]> corrupt)
        {
            byte[] copy = (byte[])data.Clone();
            corrupt(copy);
            var ex = Assert.Throws<InvalidDataException>(() => Gpt2BpeTokenizer.Load(copy, tokens));
            Assert.Contains(message, ex.Message, StringComparison.Ordinal);
        }

        Rejects("bad magic", d => d[0] ^= 1);
        Rejects("format version 2", d => d[8] = 2);
        Rejects("bad header", d => BitConverter.TryWriteBytes(d.AsSpan(16), -1));
        Rejects("where the header announces", d => BitConverter.TryWriteBytes(d.AsSpan(12), tokens - 1));
        // Token 0 a byte shorter or longer: the lengths no longer sum to the blob.
        Rejects("the tokens hold 275 bytes", d => d[header] = 0);
        Rejects("token 259 ends past the 276 bytes", d => d[header] = 2);
        Rejects("token 0 ends past", d => BitConverter.TryWriteBytes(d.AsSpan(header), (ushort)60000));
        Rejects("unknown flags 0x02", d => d[header + 2 * tokens + 7] = 2);
        // Byte 'a' (token 97) made special: no plain token stands for it any more.
        Rejects("no token stands for byte 0x61", d => d[header + 2 * tokens + 97] = 1);
        // Token 98 ('b') turned into a second 'a'.
        Rejects("tokens 97 and 98 both stand for byte 0x61", d => d[header + 3 * tokens + 98] = (byte)'a');
        Rejects("merge 0 (97 98 -> 257)", d => BitConverter.TryWriteBytes(d.AsSpan(merges + 8), 257));
        Rejects("names a token outside 0..259", d => BitConverter.TryWriteBytes(d.AsSpan(merges + 12), 260));
        Rejects("involves a special token", d => BitConverter.TryWriteBytes(d.AsSpan(merges + 12), 259));
    }

    [SkippableFact]
    public void Load_RealTokenizerTruncatedThrows()
    {
        byte[] data = Gpt2().Serialize();
        foreach (int cut in new[] { 0, 7, 23, 24, 1000, data.Length / 2, data.Length - 12, data.Length - 1 })
            Assert.Throws<InvalidDataException>(() => Gpt2BpeTokenizer.Load(data.AsSpan(0, cut), 50257));
    }

    // ---------- invalid UTF-8 ----------

    public static TheoryData<byte[], int> InvalidUtf8 => new()
    {
        { new byte[] { 0xFF }, 0 },
        { new byte[] { (byte)'a', 0x80 }, 1 },
        { new byte[] { (byte)'a', (byte)'b', 0xC3 }, 2 },
        { new byte[] { 0xC0, 0xAF }, 0 },                   // overlong '/'
        { new byte[] { (byte)'x', 0xED, 0xA0, 0x80 }, 1 },  // a UTF-16 surrogate
        { new byte[] { 0xE2, 0x82, (byte)'x' }, 0 },
        { new byte[] { 0xF4, 0x90, 0x80, 0x80 }, 0 },       // past U+10FFFF
    };

    [Theory]
    [MemberData(nameof(InvalidUtf8))]
    public void InvalidUtf8IsRefusedWithItsOffset(byte[] text, int offset)
    {
        var tok = Tiny(("a", "b"));
        var ex = Assert.Throws<BadInputException>(() => tok.Encode(text, addBos: true, bos: 0));
        Assert.Contains($"not valid UTF-8 (byte 0x{text[offset]:X2} at offset {offset})", ex.Message, StringComparison.Ordinal);
    }

    // ---------- the pre-tokenizer ----------

    static List<string> PreTokens(string text)
    {
        byte[] utf8 = Encoding.UTF8.GetBytes(text);
        var pieces = new List<string>();
        for (int start = 0; start < utf8.Length;)
        {
            int end = Gpt2PreTokenizer.NextEnd(utf8, start);
            Assert.True(end > start);
            pieces.Add(Encoding.UTF8.GetString(utf8, start, end - start));
            start = end;
        }
        return pieces;
    }

    [Fact]
    public void PreTokenizer_SplitsAsTheGpt2Pattern()
    {
        Assert.Equal(["Hello", ",", " world", "!", " 123"], PreTokens("Hello, world! 123"));
        Assert.Equal(["a", "  ", " b"], PreTokens("a   b"));
        Assert.Equal(["a", " \n", " b"], PreTokens("a \n b"));
        Assert.Equal(["x", "\n", "y"], PreTokens("x\ny"));
        Assert.Equal(["end", "   "], PreTokens("end   "));
        Assert.Equal(["they", "'re", " ok", "'", "RE"], PreTokens("they're ok'RE"));
        Assert.Equal(["e", "\u0301", "t", "\u0301"], PreTokens("e\u0301t\u0301"));
        Assert.Equal([" \U0001D400\U0001D401", "\U0001D7CF2"], PreTokens(" \U0001D400\U0001D401\U0001D7CF2"));
        // U+0085 is whitespace (Python's regex, Rust, .NET); U+FEFF is not (JavaScript differs on both).
        Assert.Equal(["a", "\u0085", "b"], PreTokens("a\u0085b"));
        Assert.Equal(["a", "\uFEFF", "b"], PreTokens("a\uFEFFb"));
    }

    /// <summary>
    /// On text inside the BMP, where UTF-16 units are code points, .NET's Regex with GPT-2's pattern is
    /// an independent oracle for the scanner.
    /// </summary>
    [Fact]
    public void PreTokenizer_AgreesWithTheRegexOnBmpText()
    {
        var regex = new Regex(@"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+");
        string[] alphabet = ["a", "Z", "s", "t", "re", "ve", "m", "ll", "d", "'", "'", "1", "42", " ", " ", " ", "\n", "\r", "\t", "\v", "\f",
                             "\u0085", "\u00A0", "\u1680", "\u2000", "\u2028", "\u2029", "\u202F", "\u3000", "\uFEFF", "\u200B", "\u001C", "\u001F",
                             ".", "!?", "-", "_", "é", "e\u0301", "ß", "ǅ", "ʰ", "中", "ж", "½", "²", "Ⅻ", "٣", "①", "$", "€", "\0", "\u007F"];
        var rng = new Random(2);
        for (int n = 0; n < 20000; n++)
        {
            var sb = new StringBuilder();
            for (int k = rng.Next(1, 16); k > 0; k--) sb.Append(alphabet[rng.Next(alphabet.Length)]);
            string text = sb.ToString();
            var expected = regex.Matches(text).Select(m => m.Value).ToList();
            Assert.Equal(text, string.Concat(expected));
            Assert.True(expected.SequenceEqual(PreTokens(text)),
                $"{JsonSerializer.Serialize(text)}: regex [{string.Join("|", expected)}] scanner [{string.Join("|", PreTokens(text))}]");
        }
    }

    [Fact]
    public void BothTokenizersServeTheInterface()
    {
        ITokenizer gpt2 = Tiny(("a", "b"));
        Assert.Equal(257, gpt2.VocabSize);
        Assert.Equal(new[] { 7, 256 }, gpt2.Encode("ab"u8, addBos: true, bos: 7));
        Assert.Equal("ab"u8.ToArray(), gpt2.Decode(7, 256, 7).ToArray());
        Assert.IsAssignableFrom<ITokenizer>(Llama2cTokenizer.Load(LlamaVocab(), 4));

        static byte[] LlamaVocab()
        {
            var ms = new MemoryStream();
            var w = new BinaryWriter(ms);
            w.Write(1);
            foreach (string piece in new[] { "<unk>", "<s>", "</s>", "a" })
            {
                w.Write(0f);
                w.Write(piece.Length);
                w.Write(Encoding.ASCII.GetBytes(piece));
            }
            w.Flush();
            return ms.ToArray();
        }
    }
}
