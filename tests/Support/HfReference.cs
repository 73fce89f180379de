using System.Text.Json;

namespace AotFlash.Tests.Support;

/// <summary>One line of a Hugging Face model's reference (../shared/reference/NAME.greedy.jsonl, for opt-tiny-hf and
/// the falcon-tiny folders): unlike the llama2.c files, <c>ids</c> holds only the 32 new tokens; <c>nonzero_ffn</c>, the
/// count of non-zero FFN activations per position and layer, is there for ReLU models (else empty).</summary>
public sealed record HfReference(string Prompt, int[] PromptIds, int[] Ids, float[][] Logits, int[][] NonZero)
{
    public static IReadOnlyList<HfReference> Load(string name) =>
        File.ReadLines(TestPaths.SharedFile($"reference/{name}.greedy.jsonl")!).Where(l => l.Length > 0).Select(line =>
        {
            using var doc = JsonDocument.Parse(line);
            var r = doc.RootElement;
            int[] Ints(JsonElement e) => e.EnumerateArray().Select(v => v.GetInt32()).ToArray();
            return new HfReference(r.GetProperty("prompt").GetString()!, Ints(r.GetProperty("prompt_ids")), Ints(r.GetProperty("ids")),
                r.GetProperty("logits").EnumerateArray().Select(row => row.EnumerateArray().Select(v => v.GetSingle()).ToArray()).ToArray(),
                r.TryGetProperty("nonzero_ffn", out var nonZero) ? [.. nonZero.EnumerateArray().Select(Ints)] : []);
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
