namespace AotFlash.Sampling;

/// <summary>How far apart two next-token distributions are, for measuring what an approximation (flash-mode
/// predictors, quantised weights) costs.</summary>
public static class Divergence
{
    /// <summary>KL(softmax(p) ‖ softmax(q)) in nats, for logits p and q of one vocabulary; computed in double, each
    /// distribution shifted by its own maximum.</summary>
    public static double KullbackLeibler(ReadOnlySpan<float> p, ReadOnlySpan<float> q)
    {
        if (p.Length != q.Length) throw new ArgumentException($"logits of {p.Length} and {q.Length} tokens", nameof(q));
        double maxP = double.NegativeInfinity, maxQ = double.NegativeInfinity;
        foreach (var v in p) maxP = Math.Max(maxP, v);
        foreach (var v in q) maxQ = Math.Max(maxQ, v);
        double zP = 0, zQ = 0;
        for (int i = 0; i < p.Length; i++) { zP += Math.Exp(p[i] - maxP); zQ += Math.Exp(q[i] - maxQ); }
        double logZP = Math.Log(zP), logZQ = Math.Log(zQ), kl = 0;
        for (int i = 0; i < p.Length; i++)
        {
            double lp = p[i] - maxP - logZP, lq = q[i] - maxQ - logZQ;
            kl += Math.Exp(lp) * (lp - lq);
        }
        return kl;
    }

    /// <summary>-log softmax(logits)[token] in nats: what the model's distribution charges for the token that came
    /// (its mean over a text is the log of the perplexity); computed in double, shifted by the maximum.</summary>
    public static double NegativeLogLikelihood(ReadOnlySpan<float> logits, int token)
    {
        if ((uint)token >= (uint)logits.Length) throw new ArgumentOutOfRangeException(nameof(token), token, $"outside the {logits.Length} logits");
        double max = double.NegativeInfinity;
        foreach (var v in logits) max = Math.Max(max, v);
        double z = 0;
        foreach (var v in logits) z += Math.Exp(v - max);
        return Math.Log(z) - (logits[token] - max);
    }
}
