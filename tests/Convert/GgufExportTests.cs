using System.Buffers.Binary;
using AotFlash.Convert;
using AotFlash.Flash;
using AotFlash.Tests.Support;
using Xunit.Abstractions;

namespace AotFlash.Tests.Convert;

/// <summary><c>export</c> against the GGUF files llama.cpp's tools wrote from the same checkpoints
/// (../shared/models/gguf), and back through <see cref="GgufReader"/> against the model file.</summary>
public sealed class GgufExportTests(ITestOutputHelper output)
{
    /// <summary>Keys whose values differ without changing what llama.cpp computes: the shared files name the model
    /// after its checkpoint file, ours after the spec.</summary>
    private static readonly string[] Cosmetic = ["general.name"];

    /// <summary>Keys only our files have: the RoPE base, which the shared files leave to llama.cpp's default (10000,
    /// the value every spec here has).</summary>
    private static readonly string[] OnlyOurs = ["llama.rope.freq_base"];

    private static (string Path, string Stderr) Export(string spec, string source, params string[] extra)
    {
        string afm = InProcess.ModelFile(spec, source);
        string gguf = Path.Combine(Published.TempDirectory(), spec + ".gguf");
        var r = InProcess.Run(spec, ["export", "--model", afm, "-o", gguf, .. extra]);
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Equal("", r.Stdout);
        return (gguf, r.Stderr);
    }

    private static string SharedGguf(string name) => Path.Combine(TestPaths.Shared!, "models/gguf", name);

    [SkippableTheory]
    [InlineData("stories260K", "stories260K-f32.gguf")]
    [InlineData("babyllama-tok105", "babyllama-tok105-f32.gguf")]
    public void F32ExportIsLlamaCppsFileByteForByte(string model, string shared)
    {
        ModelSource.RequireShared();
        var (path, stderr) = Export(model, model);
        Assert.Contains("export: flash section: layer 5/5", stderr);
        using var ours = GgufReader.Open(path);
        using var theirs = GgufReader.Open(SharedGguf(shared));
        AssertSameMetadata(ours, theirs);
        AssertSameTensors(ours, theirs);
        foreach (var t in theirs.Tensors)
            Assert.True(theirs.Read(t).AsSpan().SequenceEqual(ours.Read(ours.Tensor(t.Name))), $"{t.Name}: data differs");
    }

    /// <summary>The shared quantised files were quantised by llama-quantize from f32, ours by our converter: the same
    /// weights to within one quantisation step of each, many blocks the very same bytes.</summary>
    [SkippableTheory]
    [InlineData("babyllama-tok105-q8", "babyllama-tok105", "babyllama-tok105-q8_0.gguf")]
    [InlineData("babyllama-tok105-q4", "babyllama-tok105", "babyllama-tok105-q4_0.gguf")]
    [InlineData("babyllama-relu-q8", "babyllama-relu", "babyllama-relu-q8_0.gguf")]
    public void QuantisedExportHasLlamaCppsWeightsWithinAStep(string spec, string source, string shared)
    {
        ModelSource.RequireShared();
        var (path, _) = Export(spec, source);
        using var ours = GgufReader.Open(path);
        using var theirs = GgufReader.Open(SharedGguf(shared));
        AssertSameMetadata(ours, theirs);
        AssertSameTensors(ours, theirs);
        var report = new List<string>();
        foreach (var kind in theirs.Tensors.GroupBy(t => t.Name.Split('.')[^2]))
        {
            long blocks = 0, identical = 0;
            double worst = 0;
            foreach (var t in kind)
            {
                byte[] a = ours.Read(ours.Tensor(t.Name)), b = theirs.Read(t);
                if (t.Type == GgufTensorType.F32)
                {
                    Assert.True(a.AsSpan().SequenceEqual(b), $"{t.Name}: data differs");
                    continue;
                }
                int blockBytes = (int)GgufFormat.RowBytes(t.Type, GgufFormat.BlockElements);
                for (int at = 0; at < a.Length; at += blockBytes)
                {
                    var (x, stepX) = Block(t.Type, a.AsSpan(at, blockBytes));
                    var (y, stepY) = Block(t.Type, b.AsSpan(at, blockBytes));
                    blocks++;
                    if (a.AsSpan(at, blockBytes).SequenceEqual(b.AsSpan(at, blockBytes))) identical++;
                    for (int j = 0; j < x.Length; j++)
                        worst = Math.Max(worst, Math.Abs(x[j] - y[j]) / (stepX + stepY));
                }
            }
            if (blocks == 0) continue;
            report.Add($"{kind.Key}: {identical}/{blocks} blocks identical, largest difference {worst:F2} x (our step + theirs)");
            // Each side lies within a step of the f32 weights; our ffn_down, quantised twice (w2's columns by the
            // converter, then GGUF's rows by export), within a step and a half.
            Assert.True(worst <= (kind.Key == "ffn_down" ? 1.5 : 1), $"{shared}: {kind.Key} differs by {worst:F2} x (our step + theirs)");
        }
        output.WriteLine($"{spec} against {shared}: " + string.Join("; ", report));
        Assert.True(report.Count > 0, "no quantised tensor was compared");
    }

    /// <summary>Every tensor read back equals the model file's weights: exactly, but for a quantised ffn_down, which
    /// is quantised again along GGUF's rows unless --exact-ffn-down (or a hidden size of no whole blocks) keeps it F32.</summary>
    [SkippableTheory]
    [InlineData("stories260K-relu-q4", "stories260K-relu", false)]
    [InlineData("babyllama-relu-q8", "babyllama-relu", false)]
    [InlineData("babyllama-relu-q8", "babyllama-relu", true)]
    [InlineData("babyllama-relu-q4", "babyllama-relu", true)]
    [InlineData("stories260K-f16", "stories260K", false)]
    public unsafe void RoundTripGivesBackTheModelFilesWeights(string spec, string source, bool exactFfnDown)
    {
        ModelSource.RequireShared();
        var (path, stderr) = Export(spec, source, exactFfnDown ? ["--exact-ffn-down"] : []);
        var info = InProcess.Model(spec);
        var layout = info.Layout;
        var s = info.Shape;
        using var gguf = GgufReader.Open(path);
        Assert.Equal(3u, gguf.Version);
        Assert.All(gguf.Tensors, t => Assert.Equal(0, (gguf.DataStart + t.Offset) % GgufFormat.Alignment));
        var downType = GgufExport.FfnDownType(s, exactFfnDown);
        Assert.Equal(downType == GgufTensorType.F32 && (s.Weights is WeightType.Q8 or WeightType.Q4), stderr.Contains("ffn_down is F32"));

        using var file = ModelFile.Open(InProcess.ModelFile(spec, source));
        var account = new DramAccount();
        using var resident = file.Map(SectionKind.Resident, account);
        using var flash = file.Map(SectionKind.Flash, account);
        float[] Values(WeightType type, byte* row, int n)
        {
            var values = new float[n];
            fixed (float* v = values) WeightRows.ToSingle(type, v, row, n);
            return values;
        }
        float[] Rows(TensorSlot slot) => [.. Enumerable.Range(0, slot.Rows)
            .SelectMany(r => Values(slot.Type, resident.Data + slot.Offset + r * Layout.RowBytes(slot.Type, slot.Cols), slot.Cols))];
        void Same(string name, float[] want, double tolerance = 0)
        {
            var t = gguf.Tensor(name);
            float[] got = Dequantise(t, gguf.Read(t));
            Assert.Equal(want.Length, got.Length);
            for (int i = 0; i < want.Length; i++)
                if (Math.Abs(want[i] - got[i]) > tolerance) Assert.Fail($"{name}[{i}]: {got[i]}, the model file has {want[i]}");
        }

        Same("token_embd.weight", Rows(layout.TokenEmbedding));
        Same("output_norm.weight", Rows(layout.FinalNorm));
        for (int l = 0; l < s.Layers; l++)
        {
            var slots = layout.Layers[l];
            Same($"blk.{l}.attn_norm.weight", Rows(slots.AttnNorm));
            Same($"blk.{l}.ffn_norm.weight", Rows(slots.FfnNorm!));
            Same($"blk.{l}.attn_q.weight", Rows(slots.Wq));
            Same($"blk.{l}.attn_k.weight", Rows(slots.Wk));
            Same($"blk.{l}.attn_v.weight", Rows(slots.Wv));
            Same($"blk.{l}.attn_output.weight", Rows(slots.Wo));
            byte* Bundle(int i) => flash.Data + slots.FfnBundles + i * layout.BundleStride;
            Same($"blk.{l}.ffn_gate.weight", [.. Enumerable.Range(0, s.HiddenDim).SelectMany(i => Values(s.Weights, Bundle(i) + layout.BundleGate, s.Dim))]);
            Same($"blk.{l}.ffn_up.weight", [.. Enumerable.Range(0, s.HiddenDim).SelectMany(i => Values(s.Weights, Bundle(i) + layout.BundleUp, s.Dim))]);
            var columns = Enumerable.Range(0, s.HiddenDim).Select(i => Values(s.Weights, Bundle(i) + layout.BundleDown, s.Dim)).ToArray();
            float[] down = [.. Enumerable.Range(0, s.Dim).SelectMany(d => columns.Select(c => c[d]))];
            // Quantised again: within half a step of the row's block, and no step exceeds max|w| / 127 (q8) or / 7 (q4).
            double tolerance = downType == GgufFormat.TensorType(s.Weights) && s.Weights is WeightType.Q8 or WeightType.Q4
                ? down.Max(MathF.Abs) / (s.Weights == WeightType.Q8 ? 127 : 7) : 0;
            Same($"blk.{l}.ffn_down.weight", down, tolerance);
        }
        Assert.Equal(layout.ResidentTensors.Count + 3 * s.Layers, gguf.Tensors.Count);
    }

    /// <summary>Synthetic weights (what the 7B-shape benchmarks run) keep their mark in the GGUF file.</summary>
    [SkippableFact]
    public void SyntheticWeightsSayWhatTheyAre()
    {
        ModelSource.RequireShared();
        const string Spec = "synthetic-llama-small";
        string dir = Published.TempDirectory(), afm = Path.Combine(dir, "s.afm"), path = Path.Combine(dir, "s.gguf");
        var c = InProcess.Run(Spec, "convert", "--synthetic", "3", "-k", ModelSource.Of("stories260K").Tokenizer, "-o", afm);
        Assert.True(c.ExitCode == 0, c.Stderr);
        var r = InProcess.Run(Spec, "export", "--model", afm, "-o", path);
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Contains("SYNTHETIC weights (seed 3)", r.Stderr);
        using var gguf = GgufReader.Open(path);
        Assert.StartsWith("SYNTHETIC weights (seed 3)", (string)gguf["general.description"]!.Value);
        Assert.Equal(768u, gguf["llama.feed_forward_length"]!.Value);
    }

    [Fact]
    public void AnOptModelIsRefused()
    {
        string dir = Published.TempDirectory();
        string target = Path.Combine(dir, "opt.gguf");
        InProcess.Run("opt-tiny", "export", "-o", target).AssertBadInput("llama.cpp has no OPT architecture");
        Assert.Empty(Directory.EnumerateFileSystemEntries(dir));
    }

    /// <summary>A GGUF file the writer made is read back as written, metadata of every type included.</summary>
    [Fact]
    public void WriterAndReaderAgree()
    {
        var writer = new GgufWriter();
        writer.Add("a.u32", GgufValue.UInt32(7));
        writer.Add("a.f32", GgufValue.Float32(-0f));
        writer.Add("a.text", GgufValue.String("▁héllo"));
        writer.Add("a.texts", GgufValue.Array(["<unk>", "", "▁a"]));
        writer.Add("a.ints", GgufValue.Array([1, -2, 3]));
        writer.Add("a.nested", new GgufValue(GgufValueType.Array, new[] { new GgufValue(GgufValueType.Array, new[] { 1.5f }, GgufValueType.Float32) }, GgufValueType.Array));
        var a = writer.AddTensor("t.a", [64, 3], GgufTensorType.Q8_0);
        var b = writer.AddTensor("t.b", [5], GgufTensorType.F32);
        string path = Path.Combine(Published.TempDirectory(), "rt.gguf");
        var data = new byte[writer.FileLength];
        writer.Header().CopyTo(data, 0);
        for (long i = writer.DataStart; i < data.Length; i++) data[i] = (byte)i;
        File.WriteAllBytes(path, data);

        using var r = GgufReader.Open(path);
        Assert.Equal(["a.u32", "a.f32", "a.text", "a.texts", "a.ints", "a.nested"], r.Metadata.Select(m => m.Key));
        Assert.Equal(7u, r["a.u32"]!.Value);
        Assert.Equal(BitConverter.SingleToInt32Bits(-0f), BitConverter.SingleToInt32Bits((float)r["a.f32"]!.Value));
        Assert.Equal("▁héllo", r["a.text"]!.Value);
        Assert.Equal(["<unk>", "", "▁a"], (string[])r["a.texts"]!.Value);
        Assert.Equal([1, -2, 3], (int[])r["a.ints"]!.Value);
        Assert.Equal([1.5f], (float[])((GgufValue[])r["a.nested"]!.Value)[0].Value);
        Assert.Equal(writer.DataStart, r.DataStart);
        foreach (var t in new[] { a, b })
        {
            var read = r.Tensor(t.Name);
            Assert.Equal(t.Dims, read.Dims);
            Assert.Equal(t.Type, read.Type);
            Assert.Equal(data.AsSpan((int)(writer.DataStart + t.Offset), (int)t.Bytes).ToArray(), r.Read(read));
        }
        Assert.Equal(3 * 68, a.Bytes);
    }

    private static void AssertSameMetadata(GgufReader ours, GgufReader theirs)
    {
        foreach (var (key, value) in theirs.Metadata)
        {
            var mine = ours[key];
            Assert.True(mine is not null, $"our file has no {key}");
            if (Cosmetic.Contains(key)) continue;
            Assert.True(SameValue(value, mine), $"{key}: ours {Describe(mine)}, theirs {Describe(value)}");
        }
        foreach (var (key, value) in ours.Metadata.Where(m => theirs[m.Key] is null))
            Assert.True(OnlyOurs.Contains(key), $"only our file has {key} = {value}");
        Assert.Equal(10000f, ours["llama.rope.freq_base"]!.Value);
    }

    private static void AssertSameTensors(GgufReader ours, GgufReader theirs)
    {
        Assert.Equal(theirs.Tensors.Select(t => t.Name).Order(), ours.Tensors.Select(t => t.Name).Order());
        foreach (var t in theirs.Tensors)
        {
            var mine = ours.Tensor(t.Name);
            Assert.True(t.Dims.SequenceEqual(mine.Dims) && t.Type == mine.Type, $"{t.Name}: ours {mine}, theirs {t}");
        }
    }

    private static bool SameValue(GgufValue a, GgufValue b) =>
        a.Type == b.Type && a.ElementType == b.ElementType && (a.Value, b.Value) switch
        {
            (float x, float y) => BitConverter.SingleToInt32Bits(x) == BitConverter.SingleToInt32Bits(y),
            (float[] x, float[] y) => x.Select(BitConverter.SingleToInt32Bits).SequenceEqual(y.Select(BitConverter.SingleToInt32Bits)),
            (Array x, Array y) => x.Cast<object>().SequenceEqual(y.Cast<object>()),
            var (x, y) => x.Equals(y),
        };

    private static string Describe(GgufValue? v) => v?.Value is Array a
        ? $"{v.ElementType}[{a.Length}] {{{string.Join(", ", a.Cast<object>().Take(5))}, …}}" : v?.ToString() ?? "nothing";

    /// <summary>One Q8_0 or Q4_0 block's values and its quantisation step, decoded as ggml does: value = d · q, with q
    /// an int8 (Q8_0) or a nibble minus 8 (Q4_0; byte j holds element j low and element j + 16 high).</summary>
    private static (float[] Values, float Step) Block(GgufTensorType type, ReadOnlySpan<byte> block)
    {
        float d = (float)BinaryPrimitives.ReadHalfLittleEndian(block);
        var values = new float[GgufFormat.BlockElements];
        for (int j = 0; j < values.Length; j++)
            values[j] = d * (type == GgufTensorType.Q8_0
                ? (sbyte)block[2 + j]
                : (j < 16 ? block[2 + j] & 0xF : block[2 + j - 16] >> 4) - 8);
        return (values, MathF.Abs(d));
    }

    private static float[] Dequantise(GgufTensorInfo t, byte[] data)
    {
        var values = new float[t.Elements];
        switch (t.Type)
        {
            case GgufTensorType.F32:
                for (int i = 0; i < values.Length; i++) values[i] = BinaryPrimitives.ReadSingleLittleEndian(data.AsSpan(4 * i));
                break;
            case GgufTensorType.F16:
                for (int i = 0; i < values.Length; i++) values[i] = (float)BinaryPrimitives.ReadHalfLittleEndian(data.AsSpan(2 * i));
                break;
            default:
                int blockBytes = (int)GgufFormat.RowBytes(t.Type, GgufFormat.BlockElements);
                for (int b = 0; b < values.Length / GgufFormat.BlockElements; b++)
                    Block(t.Type, data.AsSpan(b * blockBytes, blockBytes)).Values.CopyTo(values, b * GgufFormat.BlockElements);
                break;
        }
        return values;
    }
}
