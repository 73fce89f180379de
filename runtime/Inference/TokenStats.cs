using AotFlash.Ffn;

namespace AotFlash.Inference;

/// <summary>The per-forward-pass breakdown of a generation (prompt and generated tokens alike).</summary>
public readonly record struct TokenStats(string Mode, double ForwardMs, double IoMs, double MemMs, double ComputeMs, double BytesRead,
                                           double Density, double? Recall, double? HitRate)
{
    public static TokenStats Of(Generation r, Transformer model)
    {
        var s = model.FfnSource.Stats;
        double n = Math.Max(1, r.Forwards);
        double io = FfnStats.Ms(s.IoTicks) / n, mem = FfnStats.Ms(s.MemTicks) / n, forward = r.ForwardMs / n;
        long lookups = s.CacheHits + s.CacheMisses;
        return new TokenStats(model.Mode.ToString().ToLowerInvariant(), forward, io, mem, Math.Max(0, forward - io - mem), s.BytesRead / n,
            s.NeuronsTotal == 0 ? 0 : s.NeuronsUsed / (double)s.NeuronsTotal,
            s.TrueActive == 0 ? null : s.TrueSelected / (double)s.TrueActive,
            lookups == 0 ? null : s.CacheHits / (double)lookups);
    }
}
