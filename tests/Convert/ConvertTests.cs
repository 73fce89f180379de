using AotFlash.Convert;
using AotFlash.Tests.Support;

namespace AotFlash.Tests.Convert;

public sealed class ConvertTests
{
    /// <summary>Rewrites a v0 checkpoint in llama2.c's v1 layout (256-byte header, norms first, no RoPE tables).</summary>
    private static void WriteV1(string v0Path, string v1Path)
    {
        byte[] b = File.ReadAllBytes(v0Path);
        int[] h = new int[7];
        Buffer.BlockCopy(b, 0, h, 0, 28);
        int dim = h[0], hidden = h[1], layers = h[2], heads = h[3], kvHeads = h[4], vocab = Math.Abs(h[5]), seq = h[6];
        int kv = dim / heads * kvHeads;
        long at = 28;
        ReadOnlySpan<byte> Take(long floats) { var s = b.AsSpan((int)at, (int)(floats * 4)); at += floats * 4; return s; }
        var emb = Take((long)vocab * dim).ToArray(); var rmsAtt = Take((long)layers * dim).ToArray();
        var wq = Take((long)layers * dim * dim).ToArray(); var wk = Take((long)layers * kv * dim).ToArray(); var wv = Take((long)layers * kv * dim).ToArray();
        var wo = Take((long)layers * dim * dim).ToArray(); var rmsFfn = Take((long)layers * dim).ToArray();
        var w1 = Take((long)layers * hidden * dim).ToArray(); var w2 = Take((long)layers * dim * hidden).ToArray(); var w3 = Take((long)layers * hidden * dim).ToArray();
        var rmsFinal = Take(dim).ToArray();
        using var o = File.Create(v1Path);
        var header = new byte[256];
        BitConverter.GetBytes(0x616b3432u).CopyTo(header, 0);
        BitConverter.GetBytes(1).CopyTo(header, 4);
        int[] cfg = [dim, hidden, layers, heads, kvHeads, vocab, seq];
        for (int i = 0; i < 7; i++) BitConverter.GetBytes(cfg[i]).CopyTo(header, 8 + 4 * i);
        header[36] = 1;
        o.Write(header);
        foreach (var t in new[] { rmsAtt, rmsFfn, rmsFinal, emb, wq, wk, wv, wo, w1, w2, w3 }) o.Write(t);
    }

    [SkippableFact]
    public void V1CheckpointGivesTheSameModelFileAsV0()
    {
        ModelSource.RequireShared();
        var (weights, tokenizer) = ModelSource.Of("stories260K");
        string dir = Published.TempDirectory();
        string v1 = Path.Combine(dir, "v1.bin");
        WriteV1(weights, v1);
        using (var ckpt = Llama2cCheckpoint.Open(v1)) Assert.Equal(1, ckpt.Version);
        var r = InProcess.Run("stories260K", "convert", "-w", v1, "-k", tokenizer, "-o", Path.Combine(dir, "v1.afm"));
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Equal(File.ReadAllBytes(InProcess.ModelFile("stories260K", "stories260K")), File.ReadAllBytes(Path.Combine(dir, "v1.afm")));
    }

    [SkippableFact]
    public void SeparateClassifierCheckpointNeedsAnUntiedSpec()
    {
        ModelSource.RequireShared();
        var (weights, tokenizer) = ModelSource.Of("stories260K");
        string dir = Published.TempDirectory();
        // Same weights with the classifier stored separately: a negative vocab in the header and wcls appended.
        byte[] b = File.ReadAllBytes(weights);
        BitConverter.GetBytes(-512).CopyTo(b, 20);
        string untied = Path.Combine(dir, "untied.bin");
        File.WriteAllBytes(untied, [.. b, .. b.AsSpan(28, 512 * 64 * 4)]);
        using (var ckpt = Llama2cCheckpoint.Open(untied)) Assert.False(ckpt.Shape.TiedEmbeddings);
        InProcess.Run("stories260K", "convert", "-w", untied, "-k", tokenizer, "-o", Path.Combine(dir, "x.afm"))
            .AssertBadInput("a separate classifier (spec: tie_embeddings true)");
        Assert.Empty(Directory.GetFiles(dir, "*.afm"));
    }

    // f16 products take every stored weight to be finite (ScaledHalves): a weight past the half range is refused, and
    // nothing is written.
    [SkippableFact]
    public void WeightPastTheHalfRangeIsRefused()
    {
        ModelSource.RequireShared();
        var (weights, tokenizer) = ModelSource.Of("stories260K");
        string dir = Published.TempDirectory();
        byte[] b = File.ReadAllBytes(weights);
        BitConverter.GetBytes(1e6f).CopyTo(b, 28 + 4 * 5); // token embedding 0, element 5
        string large = Path.Combine(dir, "large.bin");
        File.WriteAllBytes(large, b);
        var r = InProcess.Run("stories260K-f16", "convert", "-w", large, "-k", tokenizer, "-o", Path.Combine(dir, "x.afm"));
        // Progress lines come first; the run ends with one error line, exit code 2.
        Assert.True(r.ExitCode == 2, r.Stderr);
        Assert.Equal("error: " + large + ": token_embedding row 0 cannot be stored as f16: a weight is 1000000, which does not fit a half-precision float",
                     r.StderrLines[^1]);
        Assert.Empty(Directory.GetFiles(dir, "*.afm"));
    }

    [SkippableFact]
    public void ConvertedFileLaysBundlesOutAsTheLayoutSays()
    {
        ModelSource.RequireShared();
        var info = InProcess.Model("stories260K-relu");
        string afm = InProcess.ModelFile("stories260K-relu", "stories260K-relu");
        var (weights, _) = ModelSource.Of("stories260K-relu");
        using var file = AotFlash.Flash.ModelFile.Open(afm);
        var flash = file.Header.Get(AotFlash.Flash.SectionKind.Flash, afm);
        byte[] all = File.ReadAllBytes(afm);
        using var ckpt = Llama2cCheckpoint.Open(weights);
        var layout = info.Layout;
        int dim = info.Shape.Dim;
        foreach (var (layer, neuron) in new[] { (0, 0), (2, 97), (4, 171) })
        {
            long at = flash.Offset + layout.Layers[layer].FfnBundles + neuron * layout.BundleStride;
            float F(long element) => BitConverter.ToSingle(all, (int)(at + element * 4));
            unsafe
            {
                for (int d = 0; d < dim; d++)
                {
                    Assert.Equal(ckpt.W1(layer)[(long)neuron * dim + d], F(d));
                    Assert.Equal(ckpt.W3(layer)[(long)neuron * dim + d], F(dim + d));
                    Assert.Equal(ckpt.W2(layer)[(long)d * info.Shape.HiddenDim + neuron], F(2 * dim + d));
                }
            }
        }
    }
}
