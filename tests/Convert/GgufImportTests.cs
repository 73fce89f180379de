using System.Text.Json;
using AotFlash.Convert;
using AotFlash.Flash;
using AotFlash.Tests.Support;
using Xunit.Abstractions;

namespace AotFlash.Tests.Convert;

/// <summary><c>convert --gguf</c> against the GGUF files llama.cpp's tools wrote from the reference checkpoints
/// (../shared/models/gguf), and against our own <c>export</c>.</summary>
public sealed class GgufImportTests(ITestOutputHelper output)
{
    private static string SharedGguf(string name) => Path.Combine(TestPaths.Shared!, "models/gguf", name);

    private static (string Path, string Stderr) Import(string spec, string gguf)
    {
        string afm = Path.Combine(Published.TempDirectory(), spec + ".afm");
        var r = InProcess.Run(spec, "convert", "--gguf", gguf, "-o", afm);
        Assert.True(r.ExitCode == 0, r.Stderr);
        return (afm, r.Stderr);
    }

    /// <summary>The same weights and vocabulary as the llama2.c checkpoint and tokenizer.bin they were written from:
    /// the model file is the llama2.c conversion's, byte for byte, so the references hold for it as they do for that.</summary>
    [SkippableTheory]
    [InlineData("stories260K", "stories260K-f32.gguf")]
    [InlineData("babyllama-tok105", "babyllama-tok105-f32.gguf")]
    public void F32ImportIsTheLlama2cConversionByteForByte(string spec, string gguf)
    {
        ModelSource.RequireShared();
        var (path, stderr) = Import(spec, SharedGguf(gguf));
        Assert.Contains("convert: flash section: layer 5/5", stderr);
        Assert.True(File.ReadAllBytes(InProcess.ModelFile(spec, spec)).AsSpan().SequenceEqual(File.ReadAllBytes(path)),
            $"{gguf}: the model file differs from the llama2.c conversion's");
    }

    /// <summary>Every matrix row of llama-quantize's Q8_0 and Q4_0 files arrives with its scales and quants as they
    /// were; only the FFN's down columns are quantised again (the model file groups them along the other axis), and
    /// convert reports their error alone.</summary>
    [SkippableTheory]
    [InlineData("babyllama-tok105-q8", "babyllama-tok105-q8_0.gguf")]
    [InlineData("babyllama-tok105-q4", "babyllama-tok105-q4_0.gguf")]
    public unsafe void QuantisedImportKeepsTheFilesQuants(string spec, string gguf)
    {
        ModelSource.RequireShared();
        var (path, stderr) = Import(spec, SharedGguf(gguf));
        output.WriteLine(stderr);
        Assert.Single(stderr.Split('\n'), l => l.Contains(" error "));
        Assert.Contains(" error w2 ", stderr);
        var info = InProcess.Model(spec);
        var layout = info.Layout;
        var s = info.Shape;
        using var source = GgufReader.Open(SharedGguf(gguf));
        using var file = ModelFile.Open(path);
        var account = new DramAccount();
        using var resident = file.Map(SectionKind.Resident, account);
        using var flash = file.Map(SectionKind.Flash, account);
        long rowBytes = Layout.RowBytes(s.Weights, s.Dim);
        int compared = 0;
        // Rows of the GGUF tensor, moved to the model file's row layout, against the bytes at each row's place.
        void Same(string name, Func<int, nint> row)
        {
            var t = source.Tensor(name);
            Assert.Equal(GgufFormat.TensorType(s.Weights), t.Type);
            byte[] data = source.Read(t);
            long blockRow = GgufFormat.RowBytes(t.Type, t.Dims[0]);
            var want = new byte[rowBytes];
            for (int r = 0; r < t.Dims[1]; r++)
            {
                GgufFormat.FromBlocks(s.Weights, data.AsSpan((int)(r * blockRow), (int)blockRow), s.Dim, want);
                Assert.True(want.AsSpan().SequenceEqual(new ReadOnlySpan<byte>((byte*)row(r), (int)rowBytes)), $"{name} row {r} differs");
                compared++;
            }
        }
        Same("token_embd.weight", r => (nint)(resident.Data + layout.TokenEmbedding.Offset + r * rowBytes));
        for (int l = 0; l < s.Layers; l++)
        {
            var slots = layout.Layers[l];
            Same($"blk.{l}.attn_q.weight", r => (nint)(resident.Data + slots.Wq.Offset + r * rowBytes));
            Same($"blk.{l}.attn_k.weight", r => (nint)(resident.Data + slots.Wk.Offset + r * rowBytes));
            Same($"blk.{l}.attn_v.weight", r => (nint)(resident.Data + slots.Wv.Offset + r * rowBytes));
            Same($"blk.{l}.attn_output.weight", r => (nint)(resident.Data + slots.Wo.Offset + r * rowBytes));
            Same($"blk.{l}.ffn_gate.weight", i => (nint)(flash.Data + slots.FfnBundles + i * layout.BundleStride + layout.BundleGate));
            Same($"blk.{l}.ffn_up.weight", i => (nint)(flash.Data + slots.FfnBundles + i * layout.BundleStride + layout.BundleUp));
        }
        output.WriteLine($"{gguf}: {compared} rows identical");
    }

    /// <summary>The kernels widen quantisation scales as finite halves: a file with an infinite scale is refused with
    /// one error line, and nothing is written.</summary>
    [SkippableFact]
    public void InfiniteQuantisationScaleIsRefused()
    {
        ModelSource.RequireShared();
        const string Tensor = "blk.1.attn_v.weight";
        string gguf = Path.Combine(Published.TempDirectory(), "scale.gguf");
        byte[] b = File.ReadAllBytes(SharedGguf("babyllama-tok105-q8_0.gguf"));
        using (var source = GgufReader.Open(SharedGguf("babyllama-tok105-q8_0.gguf")))
            BitConverter.GetBytes(BitConverter.HalfToUInt16Bits(Half.PositiveInfinity)).CopyTo(b, source.DataStart + source.Tensor(Tensor).Offset);
        File.WriteAllBytes(gguf, b);
        string afm = Path.Combine(Path.GetDirectoryName(gguf)!, "x.afm");
        var r = InProcess.Run("babyllama-tok105-q8", "convert", "--gguf", gguf, "-o", afm);
        Assert.True(r.ExitCode == 2, r.Stderr);
        Assert.StartsWith($"error: {gguf}: {Tensor} row 0 has a quantisation scale of ", r.StderrLines[^1]);
        Assert.EndsWith(", and scales must be finite", r.StderrLines[^1]);
        Assert.False(File.Exists(afm));
    }

    /// <summary>GGUF's llama architecture has no activation field: a ReLU model's file takes the spec's. Its f16
    /// weights widen exactly, so the model computes what the llama2.c checkpoint's weights rounded to f16 compute,
    /// close to the reference model.</summary>
    [SkippableFact]
    public void ReluModelsGgufRunsWithTheSpecsActivation()
    {
        ModelSource.RequireShared();
        const string Spec = "babyllama-relu";
        var (path, _) = Import(Spec, SharedGguf("babyllama-relu-f16.gguf"));
        int[] Generate(string model)
        {
            var r = InProcess.Run(Spec, "run", "--model", model, "-p", "Once upon a time", "-n", "12", "--temp", "0", "--mode", "dense", "--json");
            Assert.True(r.ExitCode == 0, r.Stderr);
            using var json = JsonDocument.Parse(r.Stdout);
            return [.. json.RootElement.GetProperty("generated_ids").EnumerateArray().Select(e => e.GetInt32())];
        }
        int[] imported = Generate(path), reference = Generate(InProcess.ModelFile(Spec, Spec));
        output.WriteLine($"imported {string.Join(' ', imported)}; llama2.c {string.Join(' ', reference)}");
        Assert.Equal(reference, imported);
    }

    /// <summary>Our own export read back gives the model file it came from, byte for byte: f16 as it is, and q8 with an
    /// F32 ffn_down (--exact-ffn-down), whose columns quantise again to the same quants and scales.</summary>
    [SkippableTheory]
    [InlineData("stories260K-f16", "stories260K")]
    [InlineData("babyllama-relu-q8", "babyllama-relu")]
    public void ExportThenImportGivesTheModelFileBack(string spec, string source)
    {
        ModelSource.RequireShared();
        string afm = InProcess.ModelFile(spec, source);
        string gguf = Path.Combine(Published.TempDirectory(), spec + ".gguf");
        var e = InProcess.Run(spec, "export", "--model", afm, "-o", gguf, "--exact-ffn-down");
        Assert.True(e.ExitCode == 0, e.Stderr);
        var (path, _) = Import(spec, gguf);
        Assert.True(File.ReadAllBytes(afm).AsSpan().SequenceEqual(File.ReadAllBytes(path)), $"{spec}: the imported model file differs");
    }

    /// <summary>--emit-spec writes the spec of the file's shape: the same numbers as the shipped spec of the model it
    /// holds.</summary>
    [SkippableFact]
    public void EmitSpecDescribesTheFile()
    {
        ModelSource.RequireShared();
        string spec = Path.Combine(Published.TempDirectory(), "from-gguf.yaml");
        var r = InProcess.Run("stories260K", "convert", "--gguf", SharedGguf("stories260K-f32.gguf"), "--emit-spec", spec, "--name", "from-gguf");
        Assert.True(r.ExitCode == 0, r.Stderr);
        string yaml = File.ReadAllText(spec);
        output.WriteLine(yaml);
        string shipped = File.ReadAllText(Path.Combine(TestPaths.RepoRoot, "modelspecs/stories260K.yaml"));
        foreach (string key in new[] { "dim", "hidden_dim", "layers", "heads", "kv_heads", "vocab", "context" })
            Assert.Equal(Value(shipped, key), Value(yaml, key));
        Assert.Contains("name: from-gguf\n", yaml);
        Assert.Contains("family: llama\n", yaml);
        Assert.Contains("tie_embeddings: true\n", yaml);
        Assert.Contains("weights: { dtype: f32 }\n", yaml);
        Assert.Contains("activation: silu  # GGUF does not record it", yaml);
    }

    private static string Value(string yaml, string key) =>
        yaml.Split('\n').Single(l => l.StartsWith(key + ":", StringComparison.Ordinal))[(key.Length + 1)..].Split('#')[0].Trim();
}
