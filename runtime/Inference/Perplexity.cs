using System.Diagnostics;
using AotFlash.Ffn;
using AotFlash.Sampling;

namespace AotFlash.Inference;

/// <summary>Receives the logits a model computed at scored position <paramref name="index"/> (counted over all chunks)
/// and the token the text has next there.</summary>
public delegate void ScoredPosition(int index, int target, ReadOnlySpan<float> logits);

/// <summary>
/// A text's tokens cut into the chunks a teacher-forced run scores, as llama.cpp's llama-perplexity does: each chunk is
/// BOS and then the next tokens of the text, run as a fresh sequence, and every position but a chunk's last is scored
/// against the token that follows it. Every scored token is a token of the text; the first of each chunk is scored
/// from BOS alone.
/// </summary>
public sealed class PerplexityText
{
    private readonly int[][] _chunks;

    private PerplexityText(int context, int[][] chunks, int[] targets)
    {
        Context = context;
        _chunks = chunks;
        Targets = targets;
    }

    /// <summary>Positions per chunk, BOS included (the last chunk may be shorter).</summary>
    public int Context { get; }

    public int Chunks => _chunks.Length;

    /// <summary>The scored tokens, in the order they are scored.</summary>
    public int[] Targets { get; }

    /// <param name="textIds">The text's tokens, without BOS.</param>
    /// <param name="maxScored">Most tokens to score: the text's first ones.</param>
    public static PerplexityText Of(ReadOnlySpan<int> textIds, int bos, int context, int maxScored)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(context, 2);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxScored, 1);
        int scored = Math.Min(textIds.Length, maxScored);
        var chunks = new List<int[]>();
        for (int at = 0; at < scored; at += context - 1)
            chunks.Add([bos, .. textIds.Slice(at, Math.Min(context - 1, scored - at))]);
        return new PerplexityText(context, [.. chunks], textIds[..scored].ToArray());
    }

    /// <summary>Runs <paramref name="model"/> over every chunk, handing each scored position's logits to
    /// <paramref name="onPosition"/> and the count scored so far to <paramref name="afterChunk"/> after each chunk.
    /// Returns the time spent in forward passes, in ms (one per scored token).</summary>
    public double Score(Transformer model, ScoredPosition onPosition, Action<int>? afterChunk = null)
    {
        if (Context > model.Info.Shape.Context)
            throw new ArgumentException($"chunks of {Context} positions do not fit the model's context of {model.Info.Shape.Context}", nameof(model));
        long forwardTicks = 0;
        int index = 0;
        foreach (int[] chunk in _chunks)
        {
            model.FfnSource.Reset(); // a new sequence: the neuron caches' window starts over
            // Blocks of positions, each scored row by row. Flash mode scores every position as decoding computes it, one
            // token at a time through the predictor and the cache: a block would stream whole layers and compute them
            // densely, as it does for a prompt, and the score would be dense mode's.
            int block = model.Mode == EngineMode.Flash ? 1 : model.BlockTokens;
            for (int pos = 0; pos + 1 < chunk.Length; pos += block)
            {
                int count = Math.Min(block, chunk.Length - 1 - pos);
                long before = Stopwatch.GetTimestamp();
                model.Forward(chunk.AsSpan(pos, count), pos);
                forwardTicks += Stopwatch.GetTimestamp() - before;
                for (int row = 0; row < count; row++)
                {
                    before = Stopwatch.GetTimestamp();
                    if (count > 1) model.ComputeLogits(row); // the last row's too: an earlier row's replaced them
                    forwardTicks += Stopwatch.GetTimestamp() - before;
                    onPosition(index++, chunk[pos + row + 1], model.Logits);
                }
            }
            afterChunk?.Invoke(index);
        }
        return FfnStats.Ms(forwardTicks);
    }
}

/// <summary>One mode's scores over the scored positions: what it charges for the text's tokens (negative
/// log-likelihood, perplexity) and, against a base distribution, KL(base ‖ this) and how often the most likely tokens
/// agree.</summary>
public sealed class PerplexityScore
{
    private readonly List<double> _kl = [];
    private double _nllSum;
    private int _agreements;

    public void Add(ReadOnlySpan<float> logits, int target, ReadOnlySpan<float> baseLogits)
    {
        _nllSum += Divergence.NegativeLogLikelihood(logits, target);
        _kl.Add(Divergence.KullbackLeibler(baseLogits, logits));
        if (Sampler.Argmax(logits) == Sampler.Argmax(baseLogits)) _agreements++;
    }

    public int Tokens => _kl.Count;

    /// <summary>In nats.</summary>
    public double MeanNll => _nllSum / Tokens;

    /// <summary>exp(mean NLL).</summary>
    public double Perplexity => Math.Exp(MeanNll);

    /// <summary>Mean KL(base ‖ this) in nats.</summary>
    public double MeanKl => _kl.Average();

    /// <summary>The KL below which <paramref name="percent"/>% of the positions lie (nearest rank: the smallest value
    /// with at least that share of the positions at or below it).</summary>
    public double KlPercentile(double percent)
    {
        var sorted = _kl.Order().ToArray();
        int rank = (int)Math.Ceiling(percent / 100 * sorted.Length);
        return sorted[Math.Clamp(rank - 1, 0, sorted.Length - 1)];
    }

    public double MaxKl => _kl.Max();

    /// <summary>The share of positions whose most likely token is the base's.</summary>
    public double Top1Agreement => (double)_agreements / Tokens;
}
