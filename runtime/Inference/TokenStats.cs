using AotFlash.Ffn;

namespace AotFlash.Inference;

/// <summary>The per-forward-pass breakdown of a generation or of one of its phases.</summary>
/// <param name="IoMs">Waiting for flash reads (reads that overlap compute are not waited for).</param>
/// <param name="ReadMs">Flash reads in flight, waited for or not: the time of <see cref="ReadMBps"/>.</param>
public readonly record struct TokenStats(string Mode, double ForwardMs, double IoMs, double MemMs, double ComputeMs, double BytesRead,
                                           double Density, double? Recall, double? HitRate, double ReadMs)
{
    /// <summary>The bandwidth the reads achieved: MiB read per second of reads in flight.</summary>
    public double ReadMBps => ReadMs > 0 ? BytesRead / (1 << 20) / (ReadMs / 1000) : 0;

    /// <summary>The mean over all the generation's forward passes, prompt and generated tokens alike.</summary>
    public static TokenStats Of(Generation r, Transformer model) => Mean(r.Prompt + r.Decode, model);

    /// <summary>The mean over one phase's forward passes; null when the phase ran none.</summary>
    public static TokenStats? Of(GenerationPhase phase, Transformer model) => phase.Forwards == 0 ? null : Mean(phase, model);

    private static TokenStats Mean(GenerationPhase phase, Transformer model)
    {
        var s = phase.Ffn;
        double n = Math.Max(1, phase.Forwards);
        double io = FfnStats.Ms(s.IoTicks) / n, mem = FfnStats.Ms(s.MemTicks) / n, forward = phase.ForwardMs / n;
        long lookups = s.CacheHits + s.CacheMisses;
        return new TokenStats(model.Mode.ToString().ToLowerInvariant(), forward, io, mem, Math.Max(0, forward - io - mem), s.BytesRead / n,
            s.NeuronsTotal == 0 ? 0 : s.NeuronsUsed / (double)s.NeuronsTotal,
            s.TrueActive == 0 ? null : s.TrueSelected / (double)s.TrueActive,
            lookups == 0 ? null : s.CacheHits / (double)lookups, FfnStats.Ms(s.ReadTicks) / n);
    }
}
