using System.Buffers.Binary;
using AotFlash.Tests.Support;

namespace AotFlash.Tests.Catalogue;

// Groups 4 and 5: llama2.c checkpoints whose header lies or whose size is wrong, and tokenizer.bin / SentencePiece
// files that lie, each through 'convert -o' into the case's folder.
public sealed partial class BadInputCatalogue
{
    private static string[] CheckpointFields => ["dim", "hidden", "layers", "heads", "kv_heads", "vocab", "seq_len"];

    private static byte[] Checkpoint() => File.ReadAllBytes(ModelSource.Of(Relu).Weights);

    private static byte[] Tokenizer() => File.ReadAllBytes(ModelSource.Of(Relu).Tokenizer);

    private static string[] Convert(string dir, string weights, string? tokenizer = null) =>
        ["convert", "--weights", weights, "--tokenizer", tokenizer ?? ModelSource.Of(Relu).Tokenizer, "-o", Path.Combine(dir, "out.afm")];

    private static (string, Case) Ckpt(string name, string fragment, Func<byte[], byte[]> edit) =>
        C($"llama2c: {name}", fragment, dir => Convert(dir, Put(dir, "lying.bin", edit(Checkpoint()))));

    private static IEnumerable<(string, Case)> CheckpointCases()
    {
        for (int i = 0; i < CheckpointFields.Length; i++)
        {
            int at = 4 * i;
            string field = CheckpointFields[i];
            // The message lists the header: "(implausible header: dim 64, hidden 172, ..., seq_len 512)".
            string Listed(int value) => $"{(i == 0 ? "not a llama2.c checkpoint (implausible header: " : ", ")}{field} {value}{(i == 6 ? ")" : ",")}";
            yield return Ckpt($"{field} 0", Listed(0), b => I32(b, at, 0));
            if (field != "vocab") // a negative vocab means a separate classifier: below
                yield return Ckpt($"{field} -1", Listed(-1), b => I32(b, at, -1));
        }
        yield return Ckpt("vocab -512 (no classifier in the file)", "truncated llama2.c v0 checkpoint", b => I32(b, 20, -512));
        yield return Ckpt("vocab int.MinValue", "implausible header: dim 64, hidden 172, layers 5, heads 8, kv_heads 4, vocab -2147483648,", b => I32(b, 20, int.MinValue));
        yield return Ckpt("heads 3 do not divide dim 64", "implausible header: dim 64, hidden 172, layers 5, heads 3,", b => I32(b, 12, 3));
        yield return Ckpt("kv_heads 3 do not divide heads 8", "implausible header: dim 64, hidden 172, layers 5, heads 8, kv_heads 3,", b => I32(b, 16, 3));
        yield return Ckpt("odd head size (64 heads)", "implausible header: dim 64, hidden 172, layers 5, heads 64,", b => I32(b, 12, 64));
        yield return Ckpt("dim 2^30", "truncated llama2.c v0 checkpoint (1056540 bytes, its header implies 69175303878572245020)", b => I32(b, 0, 1 << 30));
        yield return Ckpt("layers 6", "truncated llama2.c v0 checkpoint", b => I32(b, 8, 6));
        yield return Ckpt("layers 4", "unexpected size for llama2.c v0 checkpoint", b => I32(b, 8, 4));
        yield return Ckpt("empty", "too short for a llama2.c checkpoint (0 bytes)", _ => []);
        yield return Ckpt("20 bytes", "too short for a llama2.c checkpoint (20 bytes)", b => Cut(b, 20));
        yield return Ckpt("the header alone", "truncated llama2.c v0 checkpoint (28 bytes", b => Cut(b, 28));
        yield return Ckpt("one byte short", "truncated llama2.c v0 checkpoint", b => Cut(b, b.Length - 1));
        yield return Ckpt("one byte extra", "unexpected size for llama2.c v0 checkpoint", b => Append(b, 1));
        yield return Ckpt("v1 magic with version 2", "llama2.c checkpoint version 2 is not supported", b => I32(I32(b, 0, 0x616b3432), 4, 2));
        yield return Ckpt("v1 header over v0 weights", "unexpected size for llama2.c v1 checkpoint", b =>
        {
            var v1 = new byte[256];
            I32(I32(v1, 0, 0x616b3432), 4, 1);
            b.AsSpan(0, 28).CopyTo(v1.AsSpan(8));
            v1[36] = 1;
            return [.. v1, .. b.AsSpan(28)];
        });
        // 256 positions: the header and the RoPE tables at the end (shared classifier) both say so.
        yield return Ckpt("seq_len 256, shorter than the context", "checkpoint was trained for 256 positions, spec 'stories260K-relu' asks for context 512",
            b => Cut(I32(b, 24, 256), b.Length - 256 * 8 * 4));
        yield return Ckpt("a separate classifier", "a separate classifier (spec: tie_embeddings true)", b => Append(I32(b, 20, -512), 512 * 64 * 4));
        yield return C("llama2c: a checkpoint of another shape", "does not fit spec 'stories260K-relu': it has dim 128 (spec: 64)",
            dir => Convert(dir, ModelSource.Of("babyllama-relu").Weights));
        yield return C("llama2c: missing", "cannot open checkpoint", dir => Convert(dir, Path.Combine(dir, "missing.bin")));
        yield return C("llama2c: a directory", "is a directory, not a checkpoint file", dir => Convert(dir, dir));
        yield return C("llama2c: /dev/zero", "/dev/zero: is a character device, not a checkpoint file", dir => Convert(dir, "/dev/zero"));
    }

    /// <summary>Offset of token <paramref name="index"/>'s record (f32 score, i32 length, bytes) in a tokenizer.bin.</summary>
    private static int TokenAt(byte[] b, int index)
    {
        int at = 4;
        for (int i = 0; i < index; i++) at += 8 + BinaryPrimitives.ReadInt32LittleEndian(b.AsSpan(at + 4));
        return at;
    }

    private static (string, Case) Tok(string name, string fragment, Func<byte[], byte[]> edit, string file = "lying-tokenizer.bin") =>
        C($"tokenizer: {name}", fragment, dir => Convert(dir, ModelSource.Of(Relu).Weights, Put(dir, file, edit(Tokenizer()))));

    private static IEnumerable<(string, Case)> TokenizerCases()
    {
        yield return Tok("empty", "tokenizer: truncated header (0 of 4 bytes)", _ => []);
        yield return Tok("truncated header", "tokenizer: truncated header (2 of 4 bytes)", b => Cut(b, 2));
        yield return Tok("the header alone", "tokenizer: truncated at token 0 of 512", b => Cut(b, 4));
        yield return Tok("negative max_token_length", "tokenizer: negative max_token_length -1", b => I32(b, 0, -1));
        yield return Tok("negative piece length", "tokenizer: token 3 has negative length -5", b => I32(b, TokenAt(b, 3) + 4, -5));
        yield return Tok("piece length past the end", "tokenizer: truncated at token 511 of 512 (100000 bytes declared", b => I32(b, TokenAt(b, 511) + 4, 100000));
        yield return Tok("100 of 512 tokens", "tokenizer: truncated at token 100 of 512", b => Cut(b, TokenAt(b, 100)));
        yield return C("tokenizer: a vocabulary of 105 tokens", "tokenizer: truncated at token 105 of 512",
            dir => Convert(dir, ModelSource.Of(Relu).Weights, ModelSource.Of("babyllama-relu").Tokenizer));
        yield return Tok("SentencePiece .model of garbage", "not a SentencePiece model",
            _ => [.. Enumerable.Range(0, 1000).Select(i => (byte)(i * 37 + 11))], "garbage.model");
        yield return Tok("SentencePiece .model empty", "not a SentencePiece model", _ => [], "empty.model");
        yield return Tok("tokenizer.bin named .model", "not a SentencePiece model", b => b, "tokenizer.model");
        yield return C("tokenizer: missing", "cannot read tokenizer", dir => Convert(dir, ModelSource.Of(Relu).Weights, Path.Combine(dir, "missing.bin")));
        yield return C("tokenizer: a directory", "is a directory, not a tokenizer file", dir => Convert(dir, ModelSource.Of(Relu).Weights, dir));
        yield return C("tokenizer: empty path", "option '--tokenizer' needs a FILE, not an empty string", dir => Convert(dir, ModelSource.Of(Relu).Weights, ""));
    }
}
