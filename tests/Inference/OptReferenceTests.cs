using System.Text.Json;
using AotFlash.Flash;
using AotFlash.Inference;
using AotFlash.Tests.Support;
using Xunit.Abstractions;

namespace AotFlash.Tests.Inference;

/// <summary>The OPT family against ../shared/reference/opt-tiny-hf.greedy.jsonl: a Hugging Face OPT folder converted
/// with <c>convert --hf</c>, then greedy ids, logits and every position's count of non-zero FFN activations.</summary>
public sealed class OptReferenceTests(ITestOutputHelper output)
{
    /// <summary>One line of the OPT reference: unlike the llama2.c files, <c>ids</c> holds only the 32 new tokens.</summary>
    public sealed record OptReference(string Prompt, int[] PromptIds, int[] Ids, float[][] Logits, int[][] NonZero)
    {
        public static IReadOnlyList<OptReference> Load() =>
            File.ReadLines(TestPaths.SharedFile("reference/opt-tiny-hf.greedy.jsonl")!).Where(l => l.Length > 0).Select(line =>
            {
                using var doc = JsonDocument.Parse(line);
                var r = doc.RootElement;
                int[] Ints(JsonElement e) => e.EnumerateArray().Select(v => v.GetInt32()).ToArray();
                return new OptReference(r.GetProperty("prompt").GetString()!, Ints(r.GetProperty("prompt_ids")), Ints(r.GetProperty("ids")),
                    r.GetProperty("logits").EnumerateArray().Select(row => row.EnumerateArray().Select(v => v.GetSingle()).ToArray()).ToArray(),
                    r.GetProperty("nonzero_ffn").EnumerateArray().Select(Ints).ToArray());
            }).ToList();

        /// <summary>Asserts a greedy `run --json --dump-logits 4 -n 32` of this prompt: ids exact, logits within 1e-4;
        /// returns the max logit error.</summary>
        public float AssertMatches(RunOutput run)
        {
            Assert.Equal(PromptIds, run.PromptIds);
            Assert.Equal(Ids, run.GeneratedIds);
            Assert.Equal("length", run.StopReason);
            Assert.Equal(Logits.Length, run.Logits.Length);
            float worst = 0;
            for (int p = 0; p < Logits.Length; p++)
                for (int i = 0; i < Logits[p].Length; i++)
                    worst = Math.Max(worst, Math.Abs(Logits[p][i] - run.Logits[p][i]));
            Assert.True(worst <= 1e-4f, $"'{Prompt}': max logit error {worst} > 1e-4");
            return worst;
        }
    }

    internal static readonly Lazy<string> Converted = new(() =>
    {
        string path = Path.Combine(Published.TempDirectory(), "opt-tiny.afm");
        var r = InProcess.Run("opt-tiny", "convert", "--hf", Path.Combine(TestPaths.Shared!, "models", "opt-tiny-hf"), "-o", path);
        Assert.True(r.ExitCode == 0, r.Stderr);
        return path;
    });

    [SkippableTheory]
    [InlineData(EngineMode.Dense, 1)]
    [InlineData(EngineMode.Dense, 2)]
    [InlineData(EngineMode.Naive, 1)]
    public unsafe void ForwardPassMatchesTheReference(EngineMode mode, int threads)
    {
        ModelSource.RequireShared();
        var info = InProcess.Model("opt-tiny");
        using var file = ModelFile.Open(Converted.Value);
        using var model = Engine.Load(info, file, new EngineOptions { Mode = mode, Threads = threads });
        float worst = 0;
        try
        {
            foreach (var reference in OptReference.Load())
            {
                var nonZero = new List<int[]>();
                // The FFN's threads report neurons concurrently.
                model.ActiveNeuronObserver = (layer, _) => Interlocked.Increment(ref nonZero[^1][layer]);
                var generated = new List<int>();
                int token = reference.PromptIds[0];
                int positions = reference.PromptIds.Length + reference.Ids.Length - 1; // the 32nd new token is never fed
                for (int pos = 0; pos < positions; pos++)
                {
                    nonZero.Add(new int[info.Shape.Layers]);
                    model.Forward(token, pos);
                    if (pos < reference.Logits.Length)
                        for (int i = 0; i < info.Shape.Vocab; i++)
                            worst = Math.Max(worst, Math.Abs(model.Logits[i] - reference.Logits[pos][i]));
                    if (pos + 1 < reference.PromptIds.Length) token = reference.PromptIds[pos + 1];
                    else generated.Add(token = ArgMax(model.Logits));
                }
                Assert.Equal(reference.Ids, generated);
                Assert.Equal(reference.NonZero.Length, nonZero.Count);
                for (int pos = 0; pos < nonZero.Count; pos++)
                    Assert.True(reference.NonZero[pos].SequenceEqual(nonZero[pos]),
                        $"'{reference.Prompt}' position {pos}: non-zero FFN activations per layer [{string.Join(", ", nonZero[pos])}], " +
                        $"reference [{string.Join(", ", reference.NonZero[pos])}]");
            }
        }
        finally
        {
            model.Weights.Dispose();
        }
        output.WriteLine($"opt-tiny {mode}, {threads} threads: max logit error {worst:E2}");
        Assert.True(worst <= 1e-4f, $"max logit error {worst} > 1e-4");
    }

    // The same through the CLI: GPT-2 BPE on the prompt text (ids exact), greedy ids and logits.
    [SkippableFact]
    public void CliRunMatchesTheReference()
    {
        ModelSource.RequireShared();
        float worst = 0;
        foreach (var reference in OptReference.Load())
        {
            var r = InProcess.Run("opt-tiny", "run", "--model", Converted.Value, "-p", reference.Prompt, "--temp", "0", "--json",
                "--dump-logits", "4", "-n", reference.Ids.Length.ToString(), "--mode", "dense");
            Assert.True(r.ExitCode == 0, r.Stderr);
            worst = Math.Max(worst, reference.AssertMatches(RunOutput.Parse(r.Stdout)));
        }
        output.WriteLine($"opt-tiny CLI: max logit error {worst:E2}");
    }

    // Calibration learns each neuron's own threshold from fc1's bias; flash mode then predicts the active neurons.
    [SkippableFact]
    public void CalibratedFlashModePredictsTheActiveNeurons()
    {
        ModelSource.RequireShared();
        string calibrated = Path.Combine(Published.TempDirectory(), "opt-tiny-calibrated.afm");
        File.Copy(Converted.Value, calibrated, overwrite: true);
        var c = InProcess.Run("opt-tiny", "calibrate", "--model", calibrated, "--tokens", "2048");
        Assert.True(c.ExitCode == 0, c.Stderr);
        output.WriteLine(string.Join("\n", c.StderrLines.Where(l => l.Contains("layer"))));
        var reference = OptReference.Load()[0];
        var dense = RunOutput.Parse(InProcess.Run("opt-tiny", "run", "--model", calibrated, "-p", reference.Prompt, "--temp", "0", "--json",
            "-n", "32", "--mode", "dense").Stdout);
        var r = InProcess.Run("opt-tiny", "run", "--model", calibrated, "-p", reference.Prompt, "--temp", "0", "--json", "-n", "32",
            "--mode", "flash", "--measure-recall");
        Assert.True(r.ExitCode == 0, r.Stderr);
        var flash = RunOutput.Parse(r.Stdout);
        double recall = flash.Stats.GetProperty("predictor_recall").GetDouble();
        double density = flash.Stats.GetProperty("ffn_density").GetDouble();
        int agreeing = flash.GeneratedIds.Zip(dense.GeneratedIds).TakeWhile(p => p.First == p.Second).Count();
        output.WriteLine($"opt-tiny flash: recall {recall:F3}, FFN density {density:F3}, {agreeing}/32 greedy tokens as dense");
        Assert.True(recall >= 0.85, $"recall {recall}");
        Assert.True(density < 0.5, $"density {density}");
    }

    // Byte-level BPE has no byte-token fallback for text that is not UTF-8: the prompt is refused in one line.
    [SkippableFact]
    public void InvalidUtf8PromptIsRefused()
    {
        ModelSource.RequireShared();
        string prompt = Path.Combine(Published.TempDirectory(), "bad.txt");
        File.WriteAllBytes(prompt, [(byte)'x', 0xFF, 0xFE, (byte)'y']);
        InProcess.Run("opt-tiny", "run", "--model", Converted.Value, "-f", prompt, "-n", "2").AssertBadInput("UTF-8");
    }

    private static int ArgMax(ReadOnlySpan<float> x)
    {
        int best = 0;
        for (int i = 1; i < x.Length; i++)
            if (x[i] > x[best]) best = i;
        return best;
    }
}
