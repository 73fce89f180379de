using System.Text;
using System.Text.Json;
using System.Text.Unicode;
using AotFlash.Tokenizers;
using Xunit.Abstractions;

namespace AotFlash.Tests.Tokenizers;

/// <summary>
/// Tests that read ../shared (reference encodings, real vocabularies) return early, passing, and
/// say so in the test output when shared/ or the file is absent (see <see cref="TestPaths"/>).
/// The malformed-data and merge-rule tests build their own vocabularies and always run.
/// </summary>
public sealed class Llama2cTokenizerTests
{
    const int Bos = 1;
    readonly ITestOutputHelper _out;

    public Llama2cTokenizerTests(ITestOutputHelper output) => _out = output;

    Llama2cTokenizer? LoadShared(string relative, int vocabSize)
    {
        string? path = TestPaths.SharedFile(relative);
        if (path is null)
        {
            _out.WriteLine($"SKIPPED: shared file '{relative}' not found (shared = {TestPaths.Shared ?? "absent"}).");
            return null;
        }
        return Llama2cTokenizer.Load(File.ReadAllBytes(path), vocabSize);
    }

    /// <summary>Concatenated run.c decode of <paramref name="ids"/>, the first one following <paramref name="previous"/>.</summary>
    static byte[] DecodeAll(Llama2cTokenizer tok, int previous, IEnumerable<int> ids)
    {
        var bytes = new List<byte>();
        foreach (int id in ids)
        {
            bytes.AddRange(tok.Decode(previous, id, Bos).ToArray());
            previous = id;
        }
        return bytes.ToArray();
    }

    // ---------- reference encodings ----------

    public static TheoryData<string, string, int> ReferenceModels => new()
    {
        { "stories260K", "models/stories260K/tok512.bin", 512 },
        { "stories260K-relu", "models/stories260K-relu/tok512.bin", 512 },
        { "babyllama-tok105", "models/babyllama-tok105/tok105.bin", 105 },
        { "babyllama-relu", "models/babyllama-relu/tok105.bin", 105 },
    };

    [Theory]
    [MemberData(nameof(ReferenceModels))]
    public void EncodesEveryReferencePromptExactly_AndDecodesTheGeneratedIds(string model, string tokenizerFile, int vocabSize)
    {
        var tok = LoadShared(tokenizerFile, vocabSize);
        string? refPath = TestPaths.SharedFile($"reference/{model}.greedy.jsonl");
        if (tok is null || refPath is null)
        {
            _out.WriteLine($"SKIPPED: reference data for {model} not found.");
            return;
        }

        int lines = 0;
        foreach (string line in File.ReadLines(refPath))
        {
            if (string.IsNullOrWhiteSpace(line)) continue;
            using var doc = JsonDocument.Parse(line);
            var root = doc.RootElement;
            string prompt = root.GetProperty("prompt").GetString()!;
            int[] expected = root.GetProperty("prompt_ids").EnumerateArray().Select(e => e.GetInt32()).ToArray();
            int[] ids = root.GetProperty("ids").EnumerateArray().Select(e => e.GetInt32()).ToArray();

            int[] actual = tok.Encode(Encoding.UTF8.GetBytes(prompt), addBos: true, bos: Bos);
            Assert.Equal(expected, actual);

            // ids are the tokens at positions 1, 2, ...: the prompt (after BOS) then the generation.
            Assert.All(ids, id => Assert.InRange(id, 0, vocabSize - 1));
            byte[] decoded = DecodeAll(tok, Bos, ids);
            Assert.True(Utf8.IsValid(decoded), $"{model}: decoded text is not valid UTF-8");
            string text = Encoding.UTF8.GetString(decoded);
            Assert.StartsWith(prompt, text, StringComparison.Ordinal);
            Assert.True(text.Length > prompt.Length + 100, $"{model}: generation for '{prompt}' decodes to only {text.Length} chars");
            Assert.All(text, c => Assert.True(c == '\n' || !char.IsControl(c), $"{model}: control character U+{(int)c:X4} in decoded text"));
            // Mostly words and spaces: TinyStories prose.
            int letters = text.Count(c => char.IsLetter(c) || c == ' ');
            Assert.True(letters > text.Length * 8 / 10, $"{model}: decoded text does not look like prose");

            // The decoded generation re-encodes to a sequence that decodes back to the same text.
            byte[] again = DecodeAll(tok, Bos, tok.Encode(decoded, addBos: true, bos: Bos).Skip(1));
            Assert.Equal(decoded, again);
            lines++;
        }
        Assert.Equal(5, lines);
    }

    // ---------- Llama-2 32k vocabulary ----------

    Llama2cTokenizer? Llama2() => LoadShared("models/llama2-tokenizer/tokenizer.bin", 32000);

    /// <summary>Expected ids from llama2.c's test.c (Meta's example prompts), BOS included.</summary>
    public static TheoryData<string, int[]> Llama2Encodings => new()
    {
        { "", new[] { 1 } },
        { "I believe the meaning of life is", new[] { 1, 306, 4658, 278, 6593, 310, 2834, 338 } },
        { "Simply put, the theory of relativity states that ", new[] { 1, 3439, 17632, 1925, 29892, 278, 6368, 310, 14215, 537, 5922, 393, 29871 } },
        { "A brief message congratulating the team on the launch:\n\n        Hi everyone,\n\n        I just ",
          new[] { 1, 319, 11473, 2643, 378, 629, 271, 18099, 278, 3815, 373, 278, 6826, 29901, 13, 13, 4706, 6324, 14332, 29892, 13, 13, 4706, 306, 925, 29871 } },
        { "Translate English to French:\n\n        sea otter => loutre de mer\n        peppermint => menthe poivrée\n        plush girafe => girafe peluche\n        cheese =>",
          new[] { 1, 4103, 9632, 4223, 304, 5176, 29901, 13, 13, 4706, 7205, 4932, 357, 1149, 301, 449, 276, 316, 2778, 13, 4706, 1236, 407, 837, 524, 1149, 6042, 354, 772, 440, 29878, 1318, 13, 4706, 715, 1878, 330, 3055, 1725, 1149, 330, 3055, 1725, 4639, 28754, 13, 4706, 923, 968, 1149 } },
    };

    [Theory]
    [MemberData(nameof(Llama2Encodings))]
    public void Llama2_MatchesLlama2cTestEncodings(string prompt, int[] expected)
    {
        var tok = Llama2();
        if (tok is null) return; // SKIPPED (logged): no shared/
        Assert.Equal(32000, tok.VocabSize);
        Assert.Equal(expected, tok.Encode(Encoding.UTF8.GetBytes(prompt), addBos: true, bos: Bos));
    }

    public static TheoryData<byte[]> RoundTripInputs()
    {
        var data = new TheoryData<byte[]>();
        foreach (string s in new[]
        {
            "", "a", " ", "  ", "Hello, world!", " leading space", "  two leading spaces", "trailing space ",
            "tabs\tand\nnewlines\r\nand\0NUL", "naïve café déjà vu", "Ünïcödé ñ ß Ø", "Привет, мир", "日本語のテキストです",
            "中文字符和标点。", "한국어 문장", "emoji 😀👍🏽👨‍👩‍👧‍👦 🇺🇸 ❤️", "math ∑∫√∞ ≠ ≤", "<0x41> <s> </s> <unk>",
        })
            data.Add(Encoding.UTF8.GetBytes(s));
        // Invalid UTF-8: stray continuation bytes, truncated sequences, overlongs, surrogates, 0xFF.
        data.Add(new byte[] { 0xFF, 0xFE });
        data.Add(new byte[] { 0x80 });
        data.Add(new byte[] { 0x80, 0x80, 0x80, 0x80, 0x80, 0x80 });
        data.Add(new byte[] { (byte)'a', 0xC3 });
        data.Add(new byte[] { 0xE2, 0x82, (byte)'x' });
        data.Add(new byte[] { 0xF0, 0x9F, 0x98, 0x80, 0x80, 0x80 });
        data.Add(new byte[] { 0xC0, 0xAF, 0xED, 0xA0, 0x80 });
        data.Add(new byte[] { 0x00, (byte)'a', 0x00 });
        data.Add(new byte[] { 0xF8, 0x88, 0x80, 0x80, 0x80 });
        return data;
    }

    /// <summary>
    /// The identity: with BOS, the encoding starts with the dummy prefix " " merged into the first
    /// piece, which run.c's decode drops after BOS, so decode(encode(x)) == x exactly; without BOS
    /// the prefix stays: " " + x (and "" for the empty text).
    /// </summary>
    [Theory]
    [MemberData(nameof(RoundTripInputs))]
    public void Llama2_RoundTripsAnyBytes(byte[] text)
    {
        var tok = Llama2();
        if (tok is null) return; // SKIPPED (logged): no shared/
        int[] ids = tok.Encode(text, addBos: true, bos: Bos);
        Assert.Equal(Bos, ids[0]);
        Assert.All(ids, id => Assert.InRange(id, 0, tok.VocabSize - 1));
        Assert.Equal(text, DecodeAll(tok, Bos, ids.Skip(1)));

        int[] noBos = tok.Encode(text, addBos: false, bos: Bos);
        Assert.Equal(ids.Skip(1), noBos);
        byte[] withPrefix = text.Length == 0 ? text : [(byte)' ', .. text];
        Assert.Equal(withPrefix, DecodeAll(tok, -1, noBos));
    }

    [Fact]
    public void Llama2_UsesByteFallbackForUnknownCodePoints()
    {
        var tok = Llama2();
        if (tok is null) return; // SKIPPED (logged): no shared/
        // U+10FFFF is surely not a piece: its 4 bytes become <0xF4><0x8F><0xBF><0xBF>.
        int[] ids = tok.Encode(new byte[] { 0xF4, 0x8F, 0xBF, 0xBF }, addBos: false, bos: Bos);
        Assert.Equal(new[] { 29871, 0xF4 + 3, 0x8F + 3, 0xBF + 3, 0xBF + 3 }, ids);
        Assert.Equal("<0xF4>"u8.ToArray(), tok.Piece(0xF4 + 3).ToArray());
        Assert.Equal(new byte[] { 0xF4 }, tok.Decode(Bos, 0xF4 + 3, Bos).ToArray());
    }

    // ---------- fuzz ----------

    static byte[] RandomBytes(Random rng)
    {
        ReadOnlySpan<byte> interesting = [0x00, 0x20, 0x20, 0x0A, 0x61, 0x65, 0x74, 0x80, 0xBF, 0xC3, 0xA9, 0xE2, 0x82, 0xAC, 0xF0, 0x9F, 0xFF, 0x3C];
        var b = new byte[rng.Next(0, 65)];
        for (int i = 0; i < b.Length; i++)
            b[i] = rng.Next(3) == 0 ? (byte)rng.Next(256) : interesting[rng.Next(interesting.Length)];
        return b;
    }

    [Theory]
    [InlineData("models/llama2-tokenizer/tokenizer.bin", 32000, true)]
    [InlineData("models/stories260K/tok512.bin", 512, true)]
    [InlineData("models/babyllama-tok105/tok105.bin", 105, false)]
    public void Fuzz_RandomBytesNeverThrowAndStayInRange(string file, int vocabSize, bool hasByteTokens)
    {
        var tok = LoadShared(file, vocabSize);
        if (tok is null) return; // SKIPPED (logged): no shared/
        var rng = new Random(20240607);
        for (int n = 0; n < 2000; n++)
        {
            byte[] text = RandomBytes(rng);
            int[] ids = tok.Encode(text, addBos: true, bos: Bos);
            Assert.Equal(Bos, ids[0]);
            foreach (int id in ids) Assert.InRange(id, 0, vocabSize - 1);
            byte[] decoded = DecodeAll(tok, Bos, ids.Skip(1));
            if (hasByteTokens) Assert.Equal(text, decoded);
        }
    }

    // run.c's encode written out plainly: one dictionary lookup per piece, and a merge loop that scans every adjacent
    // pair for each merge (quadratic). The tokenizer's queue of merges must pick the same merge every time.
    static int[] RunCEncode(byte[] file, int vocabSize, byte[] text)
    {
        var pieces = new Dictionary<string, int>();
        var scores = new float[vocabSize];
        int at = 4;
        for (int id = 0; id < vocabSize; id++)
        {
            scores[id] = BitConverter.ToSingle(file, at);
            int length = BitConverter.ToInt32(file, at + 4);
            pieces.TryAdd(Encoding.Latin1.GetString(file, at + 8, length), id);
            at += 8 + length;
        }
        int Find(IEnumerable<byte> bytes) => pieces.TryGetValue(Encoding.Latin1.GetString(bytes.ToArray()), out int id) ? id : -1;
        var tokens = new List<int>();
        void Add(byte[] codePoint)
        {
            int id = Find(codePoint);
            if (id >= 0) { tokens.Add(id); return; }
            foreach (byte b in codePoint) tokens.Add(Math.Max(0, Find(Encoding.ASCII.GetBytes($"<0x{b:X2}>"))));
        }
        if (text.Length > 0) Add(" "u8.ToArray());
        for (int i = 0; i < text.Length;)
        {
            int len = 1;
            while (len < 4 && i + len < text.Length && (text[i + len] & 0xC0) == 0x80) len++;
            Add(text[i..(i + len)]);
            i += len;
        }
        string PieceOf(int id) => pieces.First(p => p.Value == id).Key;
        var pieceOf = new Dictionary<int, string>();
        while (true)
        {
            float best = -1e10f;
            int bestAt = -1, bestId = -1;
            for (int i = 0; i + 1 < tokens.Count; i++)
            {
                string a = pieceOf.TryGetValue(tokens[i], out var pa) ? pa : pieceOf[tokens[i]] = PieceOf(tokens[i]);
                string b = pieceOf.TryGetValue(tokens[i + 1], out var pb) ? pb : pieceOf[tokens[i + 1]] = PieceOf(tokens[i + 1]);
                if (pieces.TryGetValue(a + b, out int id) && scores[id] > best) { best = scores[id]; bestAt = i; bestId = id; }
            }
            if (bestAt < 0) return [.. tokens];
            tokens[bestAt] = bestId;
            tokens.RemoveAt(bestAt + 1);
        }
    }

    [Theory]
    [InlineData("models/llama2-tokenizer/tokenizer.bin", 32000)]
    [InlineData("models/stories260K/tok512.bin", 512)]
    [InlineData("models/babyllama-tok105/tok105.bin", 105)]
    public void LongTextsMergeAsRunCDoes(string relative, int vocabSize)
    {
        var tok = LoadShared(relative, vocabSize);
        if (tok is null) return; // SKIPPED (logged): no shared/
        byte[] file = File.ReadAllBytes(TestPaths.SharedFile(relative)!);
        var rng = new Random(7);
        string[] words = ["Once", " upon", " a", " time", " there", " was", " little", " girl", "  ", "\n", " Lily", ".", ",",
                          " the", " sun", " zzz", "é", " 😀", "ing", " anti", "dis", "establish", "ment", "aaaa", " x9"];
        for (int round = 0; round < 6; round++)
        {
            var text = new List<byte>();
            while (text.Count < 1500 + 500 * round)
            {
                if (rng.Next(20) == 0) text.Add((byte)rng.Next(256));
                else text.AddRange(Encoding.UTF8.GetBytes(words[rng.Next(words.Length)]));
            }
            byte[] bytes = [.. text];
            Assert.Equal(RunCEncode(file, vocabSize, bytes), tok.Encode(bytes, addBos: false, Bos));
        }
    }

    // ---------- vocabulary without byte tokens ----------

    [Fact]
    public void Tok105_MapsUnknownBytesToUnk()
    {
        var tok = LoadShared("models/babyllama-tok105/tok105.bin", 105);
        if (tok is null) return; // SKIPPED (logged): no shared/
        // ' '=3, 'a'=5, 'b'=23, 'é'=78 (a two-byte piece); '#', 0xFF, NUL and emoji bytes are not pieces.
        Assert.Equal(new[] { 1, 3, 5, 0, 23 }, tok.Encode("a#b"u8, true, Bos));
        Assert.Equal(new[] { 1, 3, 0, 0, 0, 0 }, tok.Encode("😀"u8, true, Bos));
        Assert.Equal(new[] { 1, 3, 78 }, tok.Encode("é"u8, true, Bos));
        Assert.Equal(new[] { 3, 0, 0, 5 }, tok.Encode(new byte[] { 0xFF, 0x00, (byte)'a' }, false, Bos));
        // A lone continuation byte run is grouped in fours, as run.c does: 5 bytes -> groups of 4 and 1 -> 5 unk.
        Assert.Equal(new[] { 3, 0, 0, 0, 0, 0 }, tok.Encode(new byte[] { 0x80, 0x80, 0x80, 0x80, 0x80 }, false, Bos));
        Assert.Equal("<unk>"u8.ToArray(), tok.Decode(5, 0, Bos).ToArray());
    }

    // ---------- synthetic vocabularies: merge rule, byte fallback by text, decode ----------

    static byte[] BuildTokenizer(int maxTokenLength, params (float Score, byte[] Piece)[] tokens)
    {
        using var ms = new MemoryStream();
        using var w = new BinaryWriter(ms);
        w.Write(maxTokenLength);
        foreach (var (score, piece) in tokens)
        {
            w.Write(score);
            w.Write(piece.Length);
            w.Write(piece);
        }
        w.Flush();
        return ms.ToArray();
    }

    static (float, byte[]) T(float score, string piece) => (score, Encoding.UTF8.GetBytes(piece));

    static byte[] SmallVocab() => BuildTokenizer(6,
        T(0, "<unk>"), T(0, "\n<s>\n"), T(0, "\n</s>\n"),
        T(-1, " "), T(-2, "a"), T(-3, "b"), T(-4, "<0x41>"), T(-5, "<0xff>"),
        T(5, "ab"), T(5, "ba"), T(1, " a"), T(7, " ab"), T(-1e10f, "aa"), T(-2e9f, "bb"));

    [Fact]
    public void Merge_TakesTheFirstPairOnTies_AndFollowsRunCThreshold()
    {
        var tok = Llama2cTokenizer.Load(SmallVocab(), 14);
        Assert.Equal(14, tok.VocabSize);
        // " aba": pairs ( ,a)=1 (a,b)=5 (b,a)=5 -> first 5 wins: " " "ab" "a"; then ( ,ab)=7 -> " ab" "a".
        Assert.Equal(new[] { 11, 4 }, tok.Encode("aba"u8, false, Bos));
        // "aa" has score -1e10: run.c's best starts at -1e10 and needs strictly more, so it never merges.
        Assert.Equal(new[] { 10, 4 }, tok.Encode("aa"u8, false, Bos));
        // "bb" has score -2e9 > -1e10, so it does merge (like Llama-2's whitespace runs at -1e9).
        Assert.Equal(new[] { 3, 13 }, tok.Encode("bb"u8, false, Bos));
        Assert.Equal(new[] { 1, 11 }, tok.Encode("ab"u8, true, Bos));
        Assert.Equal(new[] { 1 }, tok.Encode(""u8, true, Bos));
        Assert.Empty(tok.Encode(""u8, false, Bos));
    }

    [Fact]
    public void ByteFallback_FindsByteTokensByText()
    {
        var tok = Llama2cTokenizer.Load(SmallVocab(), 14);
        // 'A' is not a piece; "<0x41>" sits at id 6 (not 0x41 + 3). 0xFF is "<0xff>" (lower-case hex) at 7.
        // 0xFE has no byte token -> 0.
        Assert.Equal(new[] { 3, 6, 7, 0 }, tok.Encode(new byte[] { 0x41, 0xFF, 0xFE }, false, Bos));
        Assert.Equal("A"u8.ToArray(), tok.Decode(3, 6, Bos).ToArray());
        Assert.Equal(new byte[] { 0xFF }, tok.Decode(3, 7, Bos).ToArray());
    }

    [Fact]
    public void Decode_DropsTheLeadingSpaceOnlyAfterBos()
    {
        var tok = Llama2cTokenizer.Load(SmallVocab(), 14);
        Assert.Equal("ab"u8.ToArray(), tok.Decode(Bos, 11, Bos).ToArray());
        Assert.Equal(" ab"u8.ToArray(), tok.Decode(4, 11, Bos).ToArray());
        Assert.Equal(" ab"u8.ToArray(), tok.Piece(11).ToArray());
        Assert.Equal(""u8.ToArray(), tok.Decode(Bos, 3, Bos).ToArray());
        Assert.Equal("\n<s>\n"u8.ToArray(), tok.Decode(0, 1, Bos).ToArray());
        Assert.Equal(-1e10f, tok.Score(12));
        Assert.Throws<ArgumentOutOfRangeException>(() => tok.Decode(Bos, 14, Bos));
        Assert.Throws<ArgumentOutOfRangeException>(() => tok.Decode(Bos, -1, Bos));
        Assert.Throws<ArgumentOutOfRangeException>(() => tok.Piece(14));
        Assert.Throws<ArgumentOutOfRangeException>(() => tok.Piece(-1));
    }

    // ---------- malformed data ----------

    [Fact]
    public void Load_EveryTruncationThrowsInvalidData()
    {
        byte[] data = SmallVocab();
        Llama2cTokenizer.Load(data, 14);
        for (int cut = 0; cut < data.Length; cut++)
        {
            var ex = Assert.Throws<InvalidDataException>(() => Llama2cTokenizer.Load(data.AsSpan(0, cut), 14));
            Assert.StartsWith("tokenizer: ", ex.Message, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void Load_RejectsCorruptData()
    {
        byte[] data = SmallVocab();
        var ex = Assert.Throws<InvalidDataException>(() => Llama2cTokenizer.Load(data, 15));
        Assert.Contains("token 14 of 15", ex.Message, StringComparison.Ordinal);

        byte[] negative = (byte[])data.Clone();
        // token 0 starts at 4: score (4 bytes) then length at offset 8.
        BitConverter.TryWriteBytes(negative.AsSpan(8), -5);
        ex = Assert.Throws<InvalidDataException>(() => Llama2cTokenizer.Load(negative, 14));
        Assert.Contains("token 0 has negative length", ex.Message, StringComparison.Ordinal);

        byte[] huge = (byte[])data.Clone();
        BitConverter.TryWriteBytes(huge.AsSpan(8), int.MaxValue);
        Assert.Throws<InvalidDataException>(() => Llama2cTokenizer.Load(huge, 14));

        byte[] badHeader = (byte[])data.Clone();
        BitConverter.TryWriteBytes(badHeader.AsSpan(0), -1);
        Assert.Throws<InvalidDataException>(() => Llama2cTokenizer.Load(badHeader, 14));

        Assert.Throws<ArgumentOutOfRangeException>(() => Llama2cTokenizer.Load(data, 0));
        // Trailing bytes after vocabSize tokens are ignored, as in run.c.
        Assert.Equal(13, Llama2cTokenizer.Load(data, 13).VocabSize);
    }

    [Fact]
    public void Load_RealFileTruncatedOrOversizedVocabThrows()
    {
        string? path = TestPaths.SharedFile("models/stories260K/tok512.bin");
        if (path is null) { _out.WriteLine("SKIPPED: tok512.bin not found."); return; }
        byte[] data = File.ReadAllBytes(path);
        foreach (int cut in new[] { 0, 3, 4, 11, data.Length / 2, data.Length - 1 })
            Assert.Throws<InvalidDataException>(() => Llama2cTokenizer.Load(data.AsSpan(0, cut), 512));
        var ex = Assert.Throws<InvalidDataException>(() => Llama2cTokenizer.Load(data, 513));
        Assert.Contains("token 512 of 513", ex.Message, StringComparison.Ordinal);
    }
}
