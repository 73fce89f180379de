using System.Text;
using AotFlash.Tests.Support;

namespace AotFlash.Tests.Catalogue;

// Group 7: GGUF files that lie, converted with the stories260K spec from the shared stories260K-f32.gguf, each edited
// in place (same lengths, so only the edited field lies).
public sealed partial class BadInputCatalogue
{
    private static byte[] SharedGguf(string name = "stories260K-f32.gguf") => File.ReadAllBytes(Shared(Path.Combine("models", "gguf", name)));

    /// <summary>The shared file with its bytes changed by <paramref name="edit"/>, converted.</summary>
    private static (string, Case) Gguf(string name, string fragment, Func<byte[], byte[]> edit, string file = "stories260K-f32.gguf") =>
        C($"gguf: {name}", fragment, dir => ["convert", "--gguf", Put(dir, "in.gguf", edit(SharedGguf(file))), "-o", Path.Combine(dir, "out.afm")], Silu);

    /// <summary>Where the first occurrence of <paramref name="text"/> starts.</summary>
    private static int Find(byte[] b, string text) =>
        b.AsSpan().IndexOf(Encoding.UTF8.GetBytes(text)) is var at and >= 0 ? at : throw new InvalidOperationException($"'{text}' not found");

    private static byte[] Replace(byte[] b, string text, string with)
    {
        Encoding.UTF8.GetBytes(with).CopyTo(b, Find(b, text));
        return b;
    }

    /// <summary>The string value of metadata <paramref name="key"/> (u32 type, u64 length, bytes) overwritten by
    /// <paramref name="with"/>, of its length.</summary>
    private static byte[] Metadata(byte[] b, string key, string with)
    {
        Encoding.UTF8.GetBytes(with).CopyTo(b, Find(b, key) + key.Length + 4 + 8);
        return b;
    }

    /// <summary>Where a tensor's description continues after its name: u32 dimension count, u64 dimensions, u32 type,
    /// u64 offset.</summary>
    private static int AfterName(byte[] b, string tensor) => Find(b, tensor) + tensor.Length;

    private static IEnumerable<(string, Case)> GgufCases()
    {
        yield return Gguf("bad magic", "not a GGUF file (bad magic)", b => Replace(b, "GGUF", "GGUG"));
        yield return Gguf("truncated by 100 bytes", "truncated GGUF file (tensor output_norm.weight", b => Cut(b, b.Length - 100));
        yield return Gguf("lying metadata count", "GGUF header is corrupt", b => I64(b, 16, 1L << 40));
        yield return Gguf("architecture gemma", "GGUF architecture gemma is not supported (llama is)", b => Metadata(b, "general.architecture", "gemma"));
        yield return Gguf("tokenizer model gpt-2", "GGUF tokenizer.ggml.model gpt-2 is not supported", b => Metadata(b, "tokenizer.ggml.model", "gpt-2"));
        yield return Gguf("a tensor of type Q5_0", "tensor token_embd.weight has type 6, which this build does not read",
            b => I32(b, AfterName(b, "token_embd.weight") + 4 + 2 * 8, 6));
        yield return Gguf("a tensor past the end", "truncated GGUF file (tensor output_norm.weight",
            b => I64(b, AfterName(b, "output_norm.weight") + 4 + 8 + 4, 1L << 30));
        yield return Gguf("a tensor missing", "GGUF file has no tensor blk.4.ffn_down.weight", b => Replace(b, "blk.4.ffn_down.weight", "blk.4.ffn_down.weighx"));
        yield return Gguf("a tensor transposed", "GGUF tensor blk.0.ffn_gate.weight is [172, 64], the spec needs [64, 172]", b =>
        {
            int at = AfterName(b, "blk.0.ffn_gate.weight") + 4;
            I64(b, at, 172);
            return I64(b, at + 8, 64);
        });
        yield return Gguf("of another shape", "checkpoint does not fit spec 'stories260K': it has dim 128 (spec: 64)", b => b, "babyllama-tok105-f32.gguf");
        yield return C("gguf: --emit-spec with --weights", "--emit-spec needs --hf DIR or --gguf FILE",
            dir => ["convert", "--weights", ModelSource.Of(Silu).Weights, "--emit-spec", Path.Combine(dir, "spec.yaml")], Silu);
        yield return C("gguf: with --hf as well", "convert needs one of --weights CKPT, --hf DIR, --gguf FILE and --synthetic SEED",
            dir => ["convert", "--gguf", Shared("models/gguf/stories260K-f32.gguf"), "--hf", HfFolder("stories260K-hf"), "-o", Path.Combine(dir, "out.afm")], Silu);
    }
}
