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
    }

    private static readonly Lazy<string> Converted = new(() =>
    {
        string path = Path.Combine(Published.TempDirectory(), "opt-tiny.afm");
        var r = InProcess.Run("opt-tiny", "convert", "--hf", TestPaths.SharedFile("models/opt-tiny-hf/config.json") is { } c
            ? Path.GetDirectoryName(c)! : throw new InvalidOperationException("no opt-tiny-hf"), "-o", path);
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

    private static int ArgMax(ReadOnlySpan<float> x)
    {
        int best = 0;
        for (int i = 1; i < x.Length; i++)
            if (x[i] > x[best]) best = i;
        return best;
    }
}
