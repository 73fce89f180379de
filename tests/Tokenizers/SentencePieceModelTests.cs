using AotFlash.Tests.Support;
using AotFlash.Tokenizers;

namespace AotFlash.Tests.Tokenizers;

/// <summary>SentencePiece .model files against the tokenizer.bin files llama2.c's tokenizer.py exported from them.</summary>
public sealed class SentencePieceModelTests
{
    [SkippableTheory]
    [InlineData("models/llama2-tokenizer/tokenizer.model", "models/llama2-tokenizer/tokenizer.bin")]
    [InlineData("models/babyllama-tok105/tok105.model", "models/babyllama-tok105/tok105.bin")]
    public void ModelBecomesTheExportedTokenizerByteForByte(string model, string exported)
    {
        ModelSource.RequireShared();
        byte[] converted = SentencePieceModel.ToLlama2c(File.ReadAllBytes(TestPaths.SharedFile(model)!));
        Assert.Equal(File.ReadAllBytes(TestPaths.SharedFile(exported)!), converted);
    }

    [SkippableFact]
    public void DamagedModelIsRefused()
    {
        ModelSource.RequireShared();
        byte[] model = File.ReadAllBytes(TestPaths.SharedFile("models/babyllama-tok105/tok105.model")!);
        Assert.Contains("damaged", Assert.Throws<InvalidDataException>(() => SentencePieceModel.ToLlama2c(model.AsSpan(0, model.Length - 3))).Message);
        Assert.Contains("no pieces", Assert.Throws<InvalidDataException>(() => SentencePieceModel.ToLlama2c([])).Message);
        Assert.Contains("not a SentencePiece model", Assert.Throws<InvalidDataException>(() => SentencePieceModel.ToLlama2c("{\"a\": 1}"u8)).Message);
    }

    // A Hugging Face Llama folder with its tokenizer.model needs no --tokenizer. No .model of stories260K's 512-token
    // vocabulary is shipped, so the test writes one (protobuf) from tok512.bin's pieces and scores; the model file must
    // equal the one converted from the llama2.c checkpoint and tok512.bin.
    [SkippableFact]
    public void HfFolderUsesItsTokenizerModel()
    {
        ModelSource.RequireShared();
        string folder = Path.Combine(Published.TempDirectory(), "stories260K-hf");
        Directory.CreateDirectory(folder);
        foreach (var f in Directory.GetFiles(Path.Combine(TestPaths.Shared!, "models", "stories260K-hf"))) File.Copy(f, Path.Combine(folder, Path.GetFileName(f)));
        string afm = Path.Combine(folder, "out.afm");
        InProcess.Run("stories260K", "convert", "--hf", folder, "-o", afm).AssertBadInput("has neither tokenizer.model nor tokenizer.json");

        byte[] bin = File.ReadAllBytes(ModelSource.Of("stories260K").Tokenizer);
        File.WriteAllBytes(Path.Combine(folder, "tokenizer.model"), SentencePieceProto(bin));
        var r = InProcess.Run("stories260K", "convert", "--hf", folder, "-o", afm);
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Equal(File.ReadAllBytes(InProcess.ModelFile("stories260K", "stories260K")), File.ReadAllBytes(afm));
    }

    /// <summary>A ModelProto holding a llama2.c tokenizer's pieces (spaces back to '▁', BOS and EOS as &lt;s&gt; and &lt;/s&gt;).</summary>
    private static byte[] SentencePieceProto(byte[] llama2c)
    {
        var proto = new MemoryStream();
        for (int at = 4, id = 0; at < llama2c.Length; id++)
        {
            float score = BitConverter.ToSingle(llama2c, at);
            int length = BitConverter.ToInt32(llama2c, at + 4);
            string text = System.Text.Encoding.UTF8.GetString(llama2c, at + 8, length);
            at += 8 + length;
            text = id == 1 ? "<s>" : id == 2 ? "</s>" : text.Replace(' ', '\u2581');
            byte[] piece = System.Text.Encoding.UTF8.GetBytes(text);
            var entry = new MemoryStream();
            entry.WriteByte(0x0A); Varint(entry, (ulong)piece.Length); entry.Write(piece); // piece = 1
            entry.WriteByte(0x15); entry.Write(BitConverter.GetBytes(score));              // score = 2
            proto.WriteByte(0x0A); Varint(proto, (ulong)entry.Length); entry.WriteTo(proto); // pieces = 1
        }
        return proto.ToArray();

        static void Varint(Stream s, ulong v)
        {
            for (; v >= 0x80; v >>= 7) s.WriteByte((byte)(v | 0x80));
            s.WriteByte((byte)v);
        }
    }
}
