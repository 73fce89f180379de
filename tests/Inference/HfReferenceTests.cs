using System.Text.Json;
using AotFlash.Flash;
using AotFlash.Inference;
using AotFlash.Tests.Support;
using Xunit.Abstractions;

namespace AotFlash.Tests.Inference;

/// <summary>The OPT and Falcon families against ../shared/reference/FOLDER.greedy.jsonl: a Hugging Face folder
/// converted with <c>convert --hf</c>, then greedy ids, logits and (ReLU models) every position's count of non-zero FFN
/// activations.</summary>
public sealed class HfReferenceTests(ITestOutputHelper output)
{
    private static readonly Dictionary<string, string> ConvertedFiles = [];

    /// <summary>The spec's Hugging Face folder (../shared/models/SPEC-hf) converted once per test run.</summary>
    internal static string Converted(string spec)
    {
        lock (ConvertedFiles)
        {
            if (ConvertedFiles.TryGetValue(spec, out var path)) return path;
            path = Path.Combine(Published.TempDirectory(), spec + ".afm");
            var r = InProcess.Run(spec, "convert", "--hf", Path.Combine(TestPaths.Shared!, "models", spec + "-hf"), "-o", path);
            Assert.True(r.ExitCode == 0, r.Stderr);
            return ConvertedFiles[spec] = path;
        }
    }

    [SkippableTheory]
    [InlineData("opt-tiny", EngineMode.Dense, 1)]
    [InlineData("opt-tiny", EngineMode.Dense, 2)]
    [InlineData("opt-tiny", EngineMode.Naive, 1)]
    [InlineData("falcon-tiny", EngineMode.Dense, 1)]
    [InlineData("falcon-tiny", EngineMode.Naive, 2)]
    [InlineData("falcon-tiny-relu", EngineMode.Dense, 2)]
    [InlineData("falcon-tiny-relu", EngineMode.Naive, 1)]
    public unsafe void ForwardPassMatchesTheReference(string spec, EngineMode mode, int threads)
    {
        ModelSource.RequireShared();
        var info = InProcess.Model(spec);
        using var file = ModelFile.Open(Converted(spec));
        using var model = Engine.Load(info, file, new EngineOptions { Mode = mode, Threads = threads });
        float worst = 0;
        try
        {
            foreach (var reference in HfReference.Load(spec + "-hf"))
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
                if (reference.NonZero.Length == 0) continue;
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
        output.WriteLine($"{spec} {mode}, {threads} threads: max logit error {worst:E2}");
        Assert.True(worst <= 1e-4f, $"max logit error {worst} > 1e-4");
    }

    // The same through the CLI: GPT-2 BPE on the prompt text (ids exact), greedy ids and logits.
    [SkippableTheory]
    [InlineData("opt-tiny")]
    [InlineData("falcon-tiny")]
    [InlineData("falcon-tiny-relu")]
    public void CliRunMatchesTheReference(string spec)
    {
        ModelSource.RequireShared();
        float worst = 0;
        foreach (var reference in HfReference.Load(spec + "-hf"))
        {
            var r = InProcess.Run(spec, "run", "--model", Converted(spec), "-p", reference.Prompt, "--temp", "0", "--json",
                "--dump-logits", "4", "-n", reference.Ids.Length.ToString(), "--mode", "dense");
            Assert.True(r.ExitCode == 0, r.Stderr);
            worst = Math.Max(worst, reference.AssertMatches(RunOutput.Parse(r.Stdout)));
        }
        output.WriteLine($"{spec} CLI: max logit error {worst:E2}");
    }

    // Calibration learns each neuron's own threshold (OPT: from fc1's bias); flash mode then predicts the active neurons.
    [SkippableTheory]
    [InlineData("opt-tiny")]
    [InlineData("falcon-tiny-relu")]
    public void CalibratedFlashModePredictsTheActiveNeurons(string spec)
    {
        ModelSource.RequireShared();
        string calibrated = Path.Combine(Published.TempDirectory(), spec + "-calibrated.afm");
        File.Copy(Converted(spec), calibrated, overwrite: true);
        var c = InProcess.Run(spec, "calibrate", "--model", calibrated, "--tokens", "2048");
        Assert.True(c.ExitCode == 0, c.Stderr);
        output.WriteLine(string.Join("\n", c.StderrLines.Where(l => l.Contains("layer"))));
        var reference = HfReference.Load(spec + "-hf")[0];
        var dense = RunOutput.Parse(InProcess.Run(spec, "run", "--model", calibrated, "-p", reference.Prompt, "--temp", "0", "--json",
            "-n", "32", "--mode", "dense").Stdout);
        var r = InProcess.Run(spec, "run", "--model", calibrated, "-p", reference.Prompt, "--temp", "0", "--json", "-n", "32",
            "--mode", "flash", "--measure-recall");
        Assert.True(r.ExitCode == 0, r.Stderr);
        var flash = RunOutput.Parse(r.Stdout);
        double recall = flash.Stats.GetProperty("predictor_recall").GetDouble();
        double density = flash.Stats.GetProperty("ffn_density").GetDouble();
        int agreeing = flash.GeneratedIds.Zip(dense.GeneratedIds).TakeWhile(p => p.First == p.Second).Count();
        output.WriteLine($"{spec} flash: recall {recall:F3}, FFN density {density:F3}, {agreeing}/32 greedy tokens as dense");
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
        InProcess.Run("opt-tiny", "run", "--model", Converted("opt-tiny"), "-f", prompt, "-n", "2").AssertBadInput("UTF-8");
    }

    private static int ArgMax(ReadOnlySpan<float> x)
    {
        int best = 0;
        for (int i = 1; i < x.Length; i++)
            if (x[i] > x[best]) best = i;
        return best;
    }
}
