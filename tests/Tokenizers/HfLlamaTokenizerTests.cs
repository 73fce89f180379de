using System.Text;
using System.Text.Json.Nodes;
using AotFlash.Tests.Support;
using AotFlash.Tokenizers;

namespace AotFlash.Tests.Tokenizers;

/// <summary>Hugging Face Llama tokenizer.json files against the llama2.c tokenizers of the same vocabulary. No
/// tokenizer.json is shipped with the shared models, so the tests write one from a tokenizer.bin as transformers'
/// SentencePiece converter does (pieces with '▁', &lt;s&gt; and &lt;/s&gt;, a merge for every split of a piece into two
/// pieces, merges in the order of the pieces they make) and check that it encodes every test string to the same ids.</summary>
public sealed class HfLlamaTokenizerTests
{
    private static readonly string[] Texts =
    [
        "Once upon a time, there was a little girl named Lily.",
        "Hello world", " leading space", "trailing space ", "two  spaces", "tab\there", "new\nline\n\n",
        "numbers 12345 and 3.14159", "MiXeD CaSe wOrDs", "don't, won't; isn't!", "emoji 🦙 and 🚀",
        "accents: café naïve résumé", "中文 and 日本語", "byte fallback: \u0001\u007f", "", " ", "a",
    ];

    /// <summary>A tokenizer.json in the shape transformers writes for a Llama model (merges as "a b" or as pairs).</summary>
    internal static byte[] TokenizerJson(byte[] tokenizerBin, int vocab, bool pairs = false)
    {
        var t = Llama2cTokenizer.Load(tokenizerBin, vocab);
        var pieces = new string[vocab];
        var ids = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int id = 0; id < vocab; id++)
        {
            string piece = Encoding.UTF8.GetString(t.Piece(id));
            pieces[id] = id == 1 ? "<s>" : id == 2 ? "</s>" : piece.Replace(' ', '\u2581');
            ids.Add(pieces[id], id);
        }
        var merges = new JsonArray();
        // Pieces a llama2.c merge can make (not single characters, bytes or the special tokens), best score first.
        foreach (int id in Enumerable.Range(3, vocab - 3).Where(i => !Llama2cTokenizer.TryParseBytePiece(t.Piece(i), out _))
                     .OrderByDescending(i => t.Score(i)).ThenBy(i => i))
        {
            string piece = pieces[id];
            for (int k = 1; k < piece.Length; k++)
            {
                if (char.IsLowSurrogate(piece[k])) continue;
                string a = piece[..k], b = piece[k..];
                if (!ids.ContainsKey(a) || !ids.ContainsKey(b)) continue;
                merges.Add(pairs ? new JsonArray(a, b) : (JsonNode)(a + " " + b));
            }
        }
        var vocabJson = new JsonObject();
        for (int id = 0; id < vocab; id++) vocabJson[pieces[id]] = id;
        var root = new JsonObject
        {
            ["version"] = "1.0",
            ["normalizer"] = new JsonObject
            {
                ["type"] = "Sequence",
                ["normalizers"] = new JsonArray(
                    new JsonObject { ["type"] = "Prepend", ["prepend"] = "\u2581" },
                    new JsonObject { ["type"] = "Replace", ["pattern"] = new JsonObject { ["String"] = " " }, ["content"] = "\u2581" }),
            },
            ["pre_tokenizer"] = null,
            ["model"] = new JsonObject
            {
                ["type"] = "BPE", ["unk_token"] = "<unk>", ["fuse_unk"] = true, ["byte_fallback"] = true,
                ["vocab"] = vocabJson, ["merges"] = merges,
            },
        };
        return Encoding.UTF8.GetBytes(root.ToJsonString());
    }

    [SkippableTheory]
    [InlineData("models/stories260K/tok512.bin", 512, false)]
    [InlineData("models/llama2-tokenizer/tokenizer.bin", 32000, true)]
    public void EncodesAsTheLlama2cTokenizerOfTheSameVocabulary(string bin, int vocab, bool pairs)
    {
        ModelSource.RequireShared();
        byte[] exported = File.ReadAllBytes(TestPaths.SharedFile(bin)!);
        var want = Llama2cTokenizer.Load(exported, vocab);
        var got = Llama2cTokenizer.Load(HfLlamaTokenizer.ToLlama2c(TokenizerJson(exported, vocab, pairs), bos: 1, eos: 2), vocab);
        for (int id = 0; id < vocab; id++) Assert.True(want.Piece(id).SequenceEqual(got.Piece(id)), $"piece {id}");
        foreach (string text in Texts)
            Assert.Equal(want.Encode(Encoding.UTF8.GetBytes(text), addBos: true, bos: 1), got.Encode(Encoding.UTF8.GetBytes(text), addBos: true, bos: 1));
    }

    [Fact]
    public void OtherTokenizersAreRefused()
    {
        byte[] Json(string model, string? pre = null) =>
            Encoding.UTF8.GetBytes($"{{\"model\": {model}{(pre is null ? "" : ", \"pre_tokenizer\": " + pre)}}}");
        string Refused(byte[] json) => Assert.Throws<InvalidDataException>(() => HfLlamaTokenizer.ToLlama2c(json, 1, 2)).Message;
        Assert.Contains("not valid JSON", Refused("{"u8.ToArray()));
        Assert.Contains("has no \"model\" object", Refused("[1]"u8.ToArray()));
        Assert.Contains("model type Unigram is not supported", Refused(Json("{\"type\": \"Unigram\"}")));
        Assert.Contains("without byte_fallback", Refused(Json("{\"type\": \"BPE\", \"vocab\": {}, \"merges\": []}")));
        Assert.Contains("byte-level pre-tokenizer is GPT-2's", Refused(Json("{\"type\": \"BPE\", \"byte_fallback\": true}", "{\"type\": \"ByteLevel\"}")));
        Assert.Contains("makes \"ab\", which is not in the vocabulary",
            Refused(Json("{\"type\": \"BPE\", \"byte_fallback\": true, \"vocab\": {\"a\": 0, \"b\": 1}, \"merges\": [\"a b\"]}")));
        Assert.Contains("ids are not 0 to 1", Refused(Json("{\"type\": \"BPE\", \"byte_fallback\": true, \"vocab\": {\"a\": 0, \"b\": 5}, \"merges\": []}")));
    }

    // A Hugging Face Llama folder with tokenizer.json and no tokenizer.model converts to the model the llama2.c checkpoint
    // gives, up to the tokenizer's scores, and generates the same text.
    [SkippableFact]
    public void HfFolderUsesItsTokenizerJson()
    {
        ModelSource.RequireShared();
        string folder = Path.Combine(Published.TempDirectory(), "stories260K-hf");
        Directory.CreateDirectory(folder);
        foreach (var f in Directory.GetFiles(Path.Combine(TestPaths.Shared!, "models", "stories260K-hf"))) File.Copy(f, Path.Combine(folder, Path.GetFileName(f)));
        File.WriteAllBytes(Path.Combine(folder, "tokenizer.json"), TokenizerJson(File.ReadAllBytes(ModelSource.Of("stories260K").Tokenizer), 512));
        string afm = Path.Combine(folder, "out.afm");
        var r = InProcess.Run("stories260K", "convert", "--hf", folder, "-o", afm);
        Assert.True(r.ExitCode == 0, r.Stderr);
        string Generate(string model) => InProcess.Run("stories260K", "run", "--model", model, "-p", "Once upon a time", "-n", "40", "--temp", "0").Stdout;
        Assert.Equal(Generate(InProcess.ModelFile("stories260K", "stories260K")), Generate(afm));
    }
}
