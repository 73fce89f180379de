using System.Text.Json;

namespace AotFlash.Tests.Support;

/// <summary>One line of ../shared/reference/&lt;model&gt;.greedy.jsonl.</summary>
public sealed record GreedyReference(string Prompt, int[] PromptIds, int[] Ids, float[][] Logits)
{
    /// <summary>The generated part: ids after the forced prompt tokens.</summary>
    public int[] Generated => Ids[(PromptIds.Length - 1)..];

    /// <summary>-n that makes a run cover positions 0..255, as the reference did.</summary>
    public int MaxNew => 256 - (PromptIds.Length - 1);

    public static IReadOnlyList<GreedyReference> Load(string model)
    {
        string path = TestPaths.SharedFile($"reference/{model}.greedy.jsonl")!;
        return File.ReadLines(path).Where(l => l.Length > 0).Select(Parse).ToList();
    }

    private static GreedyReference Parse(string line)
    {
        using var doc = JsonDocument.Parse(line);
        var r = doc.RootElement;
        return new GreedyReference(
            r.GetProperty("prompt").GetString()!,
            r.GetProperty("prompt_ids").EnumerateArray().Select(e => e.GetInt32()).ToArray(),
            r.GetProperty("ids").EnumerateArray().Select(e => e.GetInt32()).ToArray(),
            r.GetProperty("logits").EnumerateArray().Select(row => row.EnumerateArray().Select(e => e.GetSingle()).ToArray()).ToArray());
    }
}

/// <summary>What `run --json` printed, parsed.</summary>
public sealed record RunOutput(int[] PromptIds, int[] GeneratedIds, string Text, string StopReason, float[][] Logits, JsonElement Stats)
{
    public static RunOutput Parse(string json)
    {
        using var doc = JsonDocument.Parse(json);
        var r = doc.RootElement;
        return new RunOutput(
            r.GetProperty("prompt_ids").EnumerateArray().Select(e => e.GetInt32()).ToArray(),
            r.GetProperty("generated_ids").EnumerateArray().Select(e => e.GetInt32()).ToArray(),
            r.GetProperty("text").GetString()!,
            r.GetProperty("stop_reason").GetString()!,
            r.TryGetProperty("logits", out var l) ? l.EnumerateArray().Select(row => row.EnumerateArray().Select(e => e.GetSingle()).ToArray()).ToArray() : [],
            r.GetProperty("stats").Clone());
    }

    /// <summary>Asserts ids exact and logits within <paramref name="tolerance"/> of the reference; returns the max logit error.</summary>
    public float AssertMatches(GreedyReference reference, float tolerance = 1e-4f)
    {
        Assert.Equal(reference.PromptIds, PromptIds);
        Assert.Equal(reference.Generated, GeneratedIds);
        // The reference stops only when BOS is chosen; we stop at the spec's stop tokens (BOS), or at -n.
        Assert.Equal(reference.Generated.Length < reference.MaxNew ? "stop_token" : StopReason == "context" ? "context" : "length", StopReason);
        return AssertLogits(reference, tolerance);
    }

    public float AssertLogits(GreedyReference reference, float tolerance)
    {
        Assert.Equal(reference.Logits.Length, Logits.Length);
        float worst = 0;
        for (int p = 0; p < Logits.Length; p++)
        {
            Assert.Equal(reference.Logits[p].Length, Logits[p].Length);
            for (int i = 0; i < Logits[p].Length; i++) worst = Math.Max(worst, Math.Abs(reference.Logits[p][i] - Logits[p][i]));
        }
        Assert.True(worst <= tolerance, $"max logit error {worst} > {tolerance}");
        return worst;
    }
}
