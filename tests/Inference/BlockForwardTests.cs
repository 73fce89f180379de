using AotFlash.Ffn;
using AotFlash.Flash;
using AotFlash.Inference;
using AotFlash.Tests.Sparsity;
using AotFlash.Tests.Support;
using Xunit.Abstractions;

namespace AotFlash.Tests.Inference;

/// <summary>A block of tokens through the model at once gives, row for row, the logits the same tokens give one at a
/// time, bit for bit in f32, q8 and q4: each token's sums run in the same order whatever block it is in (q8 and q4 blocks
/// widen the FFN's down columns to q·s once, and a token alone adds a·(q·s) too). This matters beyond the last bit:
/// q8/q4 products quantise their inputs, and a rounding difference can move an activation across a quantisation step.
/// F16 blocks widen the weights to f32 and use the f32 kernels, whose sums group the terms differently from the f16
/// kernels' (the same products, other roundings): there the logits agree within 1e-4, the tolerance against the
/// references. Blocks of odd sizes, across
/// the largest block, on every weight format, every family, one to four threads (more threads than this machine has
/// cores: a member that falls behind has the coefficients of its last chunks computed by another, whatever the timing
/// the same sums), and the three FFN sources (flash mode with blocks too small to stream a layer; a streamed block gives
/// dense mode's logits, tested below).</summary>
public sealed unsafe class BlockForwardTests(ITestOutputHelper output)
{
    [SkippableTheory]
    [InlineData("stories260K", "stories260K", EngineMode.Dense, 1)]
    [InlineData("stories260K-f16", "stories260K", EngineMode.Dense, 2)]
    [InlineData("babyllama-tok105", "babyllama-tok105", EngineMode.Dense, 1)]
    [InlineData("babyllama-tok105", "babyllama-tok105", EngineMode.Dense, 2)]
    [InlineData("babyllama-tok105", "babyllama-tok105", EngineMode.Dense, 4)]
    [InlineData("stories260K-f16", "stories260K", EngineMode.Dense, 3)]
    [InlineData("babyllama-relu-q8", "babyllama-relu", EngineMode.Dense, 3)]
    [InlineData("babyllama-relu-q8", "babyllama-relu", EngineMode.Dense, 2)]
    [InlineData("babyllama-relu-kvf16", "babyllama-relu", EngineMode.Dense, 2)]
    [InlineData("babyllama-relu-q4", "babyllama-relu", EngineMode.Dense, 1)]
    [InlineData("babyllama-tok105-q4", "babyllama-tok105", EngineMode.Dense, 2)]
    [InlineData("opt-tiny", null, EngineMode.Dense, 2)]
    [InlineData("opt-tiny", null, EngineMode.Naive, 1)]
    [InlineData("falcon-tiny", null, EngineMode.Dense, 2)]
    [InlineData("falcon-tiny-relu", null, EngineMode.Naive, 1)]
    [InlineData("stories260K-relu", "stories260K-relu", EngineMode.Flash, 2)]
    [InlineData("synthetic-many-heads", Synthetic, EngineMode.Dense, 1)]
    [InlineData("synthetic-many-heads", Synthetic, EngineMode.Dense, 2)]
    public void BlocksGiveTheLogitsOfTokenByToken(string spec, string? source, EngineMode mode, int threads)
    {
        ModelSource.RequireShared();
        string afm = mode == EngineMode.Flash ? FlashModeTests.Calibrated(spec)
            : source == Synthetic ? SyntheticModel(spec)
            : source is null ? HfReferenceTests.Converted(spec) : InProcess.ModelFile(spec, source);
        using var file = ModelFile.Open(afm);
        var t = Engine.Load(InProcess.Model(spec), file, new EngineOptions { Mode = mode, Threads = threads });
        try
        {
            int[] blocks = mode == EngineMode.Flash ? [1, 5, 7, 3, 6] : [1, 37, Math.Min(t.BlockTokens, t.Info.Shape.Context - 43), 5];
            int[] tokens = Tokens(t, blocks.Sum());

            var single = new List<float[]>();
            t.FfnSource.Reset();
            for (int pos = 0; pos < tokens.Length; pos++)
            {
                t.Forward(tokens[pos], pos);
                single.Add(t.Logits.ToArray());
            }

            bool exact = t.Info.Shape.Weights != WeightType.F16;
            float worst = 0;
            void AssertSame(float[] expected, ReadOnlySpan<float> actual, string where)
            {
                if (exact)
                {
                    Assert.True(expected.AsSpan().SequenceEqual(actual), where);
                    return;
                }
                for (int i = 0; i < expected.Length; i++) worst = Math.Max(worst, Math.Abs(expected[i] - actual[i]));
                Assert.True(worst <= 1e-4f, $"{where}: logits differ by {worst}");
            }

            t.FfnSource.Reset();
            int at = 0;
            foreach (int count in blocks)
            {
                t.Forward(tokens.AsSpan(at, count), at);
                AssertSame(single[at + count - 1], t.Logits, $"the last position of a block of {count}");
                for (int row = 0; row < count; row++)
                {
                    t.ComputeLogits(row);
                    AssertSame(single[at + row], t.Logits, $"position {at + row} (row {row} of a block of {count})");
                }
                at += count;
            }
            output.WriteLine(exact ? $"{spec}: {tokens.Length} positions, identical" : $"{spec}: {tokens.Length} positions, largest difference {worst:E2}");
        }
        finally
        {
            t.Dispose();
            t.Weights.Dispose();
        }
    }

    private const string Synthetic = "synthetic";

    // The spec's shape with synthetic weights (seed 1), the stories260K tokenizer's 512 pieces
    private static string SyntheticModel(string spec)
    {
        string afm = Path.Combine(Published.TempDirectory(), spec + ".afm");
        var r = InProcess.Run(spec, "convert", "--synthetic", "1", "-k", ModelSource.Of("stories260K").Tokenizer, "-o", afm);
        Assert.True(r.ExitCode == 0, r.Stderr);
        return afm;
    }

    private static int[] Tokens(Transformer t, int count) =>
        Enumerable.Range(0, count).Select(i => (int)((i * 7919L + 1) % t.Info.Shape.Vocab)).ToArray();

    // Flash mode streams each layer through a block of enough tokens and computes every neuron, as dense mode does, bit
    // for bit: one thread sums the neurons in dense mode's order whatever the pieces (the spec's 4 MiB budget streams a
    // stories260K-relu layer in several), and with a larger budget the layer is one piece, split over two threads as
    // dense mode splits it. The cache is then left holding the neurons the predictor picks for the window's last
    // tokens, their rows filled from the stream.
    [SkippableTheory]
    [InlineData(1, null)]
    [InlineData(2, "64MiB")]
    [InlineData(3, "64MiB")]
    public void AStreamedBlockGivesDenseLogitsAndLeavesTheWindowCached(int threads, string? budget)
    {
        ModelSource.RequireShared();
        const string model = "stories260K-relu";
        string afm = FlashModeTests.Calibrated(model);
        using var file = ModelFile.Open(afm);
        var flash = Engine.Load(InProcess.Model(model), file, new EngineOptions { Mode = EngineMode.Flash, Threads = threads, DramBudget = budget });
        var dense = Engine.Load(InProcess.Model(model), file, new EngineOptions { Mode = EngineMode.Dense, Threads = threads });
        try
        {
            var shape = flash.Info.Shape;
            int count = Math.Min(37, flash.BlockTokens); // the spec's small budget holds blocks of 32
            int[] tokens = Tokens(flash, count);
            var inputs = new List<float[]>[shape.Layers];
            for (int l = 0; l < shape.Layers; l++) inputs[l] = [];
            flash.FfnProbe = (layer, x) => inputs[layer].Add(new ReadOnlySpan<float>(x, shape.Dim).ToArray());
            flash.FfnSource.Reset();
            flash.Forward(tokens, 0);
            flash.FfnProbe = null;
            for (int pos = 0; pos < count; pos++)
            {
                dense.Forward(tokens[pos], pos);
                flash.ComputeLogits(pos);
                Assert.True(dense.Logits.SequenceEqual(flash.Logits), $"position {pos}");
            }
            Assert.Equal(count * (long)shape.Layers * shape.HiddenDim, flash.FfnSource.Stats.NeuronsUsed);

            var source = (FlashFfnSource)flash.FfnSource;
            var predictors = flash.Weights.Predictors!;
            int window = flash.Info.Flash.Window;
            var layout = flash.Info.Layout;
            byte* flashSection = dense.Weights.Flash;
            int[] active = new int[shape.HiddenDim];
            float[] scratch = new float[shape.HiddenDim + predictors.Layers.Max(p => p.Rank)];
            for (int l = 0; l < shape.Layers; l++)
            {
                var expected = new SortedSet<int>();
                for (int t = count - window; t < count; t++)
                    fixed (float* x = inputs[l][t])
                    fixed (float* s = scratch)
                        expected.UnionWith(active.Take(predictors.Layers[l].Select(x, active, s)));
                var cache = source.CacheOf(l);
                var cached = new SortedSet<int>(Enumerable.Range(0, cache.Count).Select(cache.NeuronAt));
                Assert.Equal(expected, cached);
                long layerStart = layout.Layers[l].FfnBundles;
                for (int row = 0; row < cache.Count; row++)
                {
                    byte* want = flashSection + layerStart + cache.NeuronAt(row) * layout.BundleStride;
                    Assert.True(new ReadOnlySpan<byte>(want, (int)layout.BundleBytes).SequenceEqual(new ReadOnlySpan<byte>(cache.Row(row), (int)layout.BundleBytes)),
                        $"layer {l}, neuron {cache.NeuronAt(row)}: its cached bundle is not the file's");
                }
            }
        }
        finally
        {
            foreach (var t in new[] { flash, dense }) t.Dispose();
            flash.Weights.Dispose();
            dense.Weights.Dispose();
        }
    }

    [SkippableFact]
    public void ABlockOutsideTheContextOrLargerThanTheBuffersIsRefused()
    {
        ModelSource.RequireShared();
        using var file = ModelFile.Open(InProcess.ModelFile("stories260K", "stories260K"));
        var t = Engine.Load(InProcess.Model("stories260K"), file, new EngineOptions { Mode = EngineMode.Dense });
        try
        {
            int context = t.Info.Shape.Context;
            Assert.Throws<ArgumentOutOfRangeException>(() => t.Forward(new int[t.BlockTokens + 1], 0));
            Assert.Throws<ArgumentOutOfRangeException>(() => t.Forward(ReadOnlySpan<int>.Empty, 0));
            Assert.Throws<ArgumentOutOfRangeException>(() => t.Forward(new int[2], context - 1));
            Assert.Throws<ArgumentOutOfRangeException>(() => t.Forward([1, t.Info.Shape.Vocab], 0));
            t.Forward(new int[3], 0);
            Assert.Throws<ArgumentOutOfRangeException>(() => t.ComputeLogits(3));
        }
        finally
        {
            t.Dispose();
            t.Weights.Dispose();
        }
    }
}
