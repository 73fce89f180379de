using AotFlash.Flash;
using System.Diagnostics;

namespace AotFlash.Ffn;

/// <summary>The neurons one layer's FFN computes for one token and where each neuron's bundle
/// [gate row | up row | down column] is in memory; neurons left out contribute zero. <see cref="Stride"/> is the
/// distance between consecutive bundles where they are evenly spaced (every neuron of a layer in place), so that the
/// gate and up rows form matrices; 0 where they are anywhere.</summary>
public readonly unsafe ref struct FfnSelection(ReadOnlySpan<int> neurons, ReadOnlySpan<nint> bundles, long stride = 0)
{
    public ReadOnlySpan<int> Neurons { get; } = neurons;
    public ReadOnlySpan<nint> Bundles { get; } = bundles;
    public long Stride { get; } = stride;
}

/// <summary>One layer's FFN in the flash section: its index, the byte offset of its first bundle (from the section
/// start) and the distance between bundles; constants of the generated model.</summary>
public readonly record struct FfnLayer(int Index, long Offset, long BundleStride);

/// <summary>What the FFN sources did, summed over tokens: the per-token breakdown of flash inference. A record, so that
/// a copy (<c>stats with { }</c>) snapshots the counters and two snapshots compare field by field.</summary>
public sealed record FfnStats
{
    public long IoTicks;       // waiting for flash reads (and copying bundles out of the read buffers)
    public long ReadTicks;     // flash reads in flight, from a read's start to its last request's end (the bandwidth's time)
    public long MemTicks;      // neuron-cache management: evicting, moving rows, reserving
    public long PredictTicks;  // running the predictors
    public long BytesRead;
    public long NeuronsUsed;
    public long NeuronsTotal;
    public long CacheHits;
    public long CacheMisses;
    public long TrueActive;    // with recall measurement: truly active neurons, and how many of them were selected
    public long TrueSelected;
    /// <summary>Whether flash reads bypass the page cache (O_DIRECT); null when nothing is read from flash.</summary>
    public bool? DirectIo;

    public static double Ms(long ticks) => ticks * 1000.0 / Stopwatch.Frequency;

    /// <summary>What happened between two snapshots of the counters (<see cref="DirectIo"/> is the later one's).</summary>
    public static FfnStats operator -(FfnStats later, FfnStats earlier) => Combine(later, earlier, -1);

    /// <summary>The counters of two stretches of work together.</summary>
    public static FfnStats operator +(FfnStats a, FfnStats b) => Combine(a, b, 1);

    private static FfnStats Combine(FfnStats a, FfnStats b, int sign) => new()
    {
        IoTicks = a.IoTicks + sign * b.IoTicks,
        ReadTicks = a.ReadTicks + sign * b.ReadTicks,
        MemTicks = a.MemTicks + sign * b.MemTicks,
        PredictTicks = a.PredictTicks + sign * b.PredictTicks,
        BytesRead = a.BytesRead + sign * b.BytesRead,
        NeuronsUsed = a.NeuronsUsed + sign * b.NeuronsUsed,
        NeuronsTotal = a.NeuronsTotal + sign * b.NeuronsTotal,
        CacheHits = a.CacheHits + sign * b.CacheHits,
        CacheMisses = a.CacheMisses + sign * b.CacheMisses,
        TrueActive = a.TrueActive + sign * b.TrueActive,
        TrueSelected = a.TrueSelected + sign * b.TrueSelected,
        DirectIo = a.DirectIo ?? b.DirectIo,
    };
}

/// <summary>Where a layer's FFN bundles come from: mapped memory (dense), a whole-layer read from flash each token
/// (naive), or a predictor plus a neuron cache fed by sparse flash reads (flash).</summary>
public unsafe interface IFfnSource : IDisposable
{
    /// <summary>Makes the bundles that <paramref name="layer"/> needs for FFN input x[dim] available: those it
    /// returns at once, and any others through <see cref="Complete"/>, which the caller calls next, after computing
    /// these (a source that reads from flash returns the cached bundles here while the missing ones arrive).</summary>
    FfnSelection Prepare(FfnLayer layer, float* x);

    /// <summary>The rest of what <see cref="Prepare"/> began for <paramref name="layer"/>, once it is there; empty for a
    /// source that had everything at once. Valid until the next call.</summary>
    FfnSelection Complete(FfnLayer layer) => default;

    /// <summary>Begins serving a block of <paramref name="tokens"/> FFN inputs xs[tokens, dim] of <paramref name="layer"/>
    /// with every neuron, for all the inputs at once, in pieces: returns how many pieces (then fetched in turn with
    /// <see cref="BlockPiece"/>), or 0 where the block is better served input by input through <see cref="Prepare"/>.</summary>
    int BeginBlock(FfnLayer layer, float* xs, int tokens);

    /// <summary>Piece <paramref name="piece"/> of the block <see cref="BeginBlock"/> began: the bundles of a range of
    /// the layer's neurons, evenly spaced (<see cref="FfnSelection.Stride"/>); valid until the next call.</summary>
    FfnSelection BlockPiece(FfnLayer layer, int piece);

    FfnStats Stats { get; }

    /// <summary>Most tokens a block should hold (<see cref="FfnBlocks"/>).</summary>
    int BlockTokens { get; }

    /// <summary>Forgets per-sequence state (the cache's window) before a new sequence.</summary>
    void Reset();
}

/// <summary>How many tokens a block of a prompt holds.</summary>
public static class FfnBlocks
{
    /// <summary>Where the weights are in memory: enough tokens for the products to run at the FMA units' speed, and few
    /// passes over the weights per prompt (each pass streams them all from memory, and f16 widens them again). 128
    /// against 64: 110M f32 prompt of 536 tokens 1.88 → 1.72 s at 1 thread, 1.07 → 0.96 s at 2, q8 2.47 → 2.37 s; 1.1B
    /// f16 dense, 547 tokens, 8.2 → 7.7 s. 512 against 128 (AMD EPYC Zen 5, 512-token prompts, alternating builds): 1.1B
    /// f16 dense at 2 threads 0.886 of the time (6 of 6), 110M f16 0.902 at 1 thread (6 of 7) and 0.881 at 2 (7 of 7),
    /// q4 0.920 (5 of 5), q8 0.950 (3 of 5). A block's rows cost about 32·dim bytes a token (1.1B: 32 MiB).</summary>
    public const int InMemory = 512;

    /// <summary>The fewest tokens a naive-mode block holds, whatever its budget (<see cref="ForStreaming"/>).</summary>
    public const int NaiveFewest = 128;

    /// <summary>Where a block reads whole layers from flash, the more tokens the fewer passes over the flash section:
    /// up to this many, ...</summary>
    public const int Streamed = 512;

    /// <summary>... while a block's rows (<see cref="RowBytes"/> a token) stay within a 32nd of the DRAM budget and a
    /// quarter of <paramref name="room"/>, what the budget leaves beyond what the model needs anyway (the KV cache, the
    /// neuron caches' least): they take it from the neuron caches (a prompt that is compute-bound does not need one
    /// pass: at 1.1B, 250 tokens a block keep the reads of a 512-token prompt under its compute, but 512 read the flash
    /// section once: 1.1B at 65% of its file, 512-token prompt, 2 threads, 4435-5303 → 3929-4607 ms against a 64th of
    /// the budget); a tiny budget gets blocks of at least <paramref name="fewest"/>.</summary>
    public static int ForStreaming(ModelShape shape, int threads, long budget, long room, int fewest)
    {
        long bytes = Math.Min(budget / 32, Math.Max(0, room) / 4);
        return (int)Math.Min(shape.Context, Math.Min(Streamed, Math.Max(fewest, bytes / RowBytes(shape, threads))));
    }

    /// <summary>A block's FFN runs this many neurons at a time (their bundles stay in L2 across the gate, up and down
    /// passes): every chunk reads and writes the block's output rows once, so chunks of a few neurons would pay that
    /// per few.</summary>
    public const int ChunkNeurons = 64;

    /// <summary>With several threads, the coefficients (gate and up products) of the chunks within a thread's last this
    /// many neurons may be computed by another thread that has finished its own share (DecoderTransformer's FfnWork).</summary>
    public const int HelpNeurons = 256;

    /// <summary>Neurons whose coefficients a thread's help rows hold: its last HelpNeurons neurons in whole chunks of
    /// up to ChunkNeurons, but no more than the largest thread's share (rounded up to a q4 down block, the largest grain
    /// of a share); none for one thread. Fewer chunks are helped where a share's chunks do not fit.</summary>
    public static int HelpRows(ModelShape shape, int threads) =>
        threads > 1 ? Math.Min(HelpNeurons + ChunkNeurons, ((shape.HiddenDim + threads - 1) / threads + Kernels.Quantization.DownRows - 1)
                                                           / Kernels.Quantization.DownRows * Kernels.Quantization.DownRows) : 0;

    /// <summary>At most what a transformer's rows take a block token: four activation rows, keys and values, a
    /// prepared (quantised) row, partial sums for each thread but the first, each thread's gate and up products over
    /// a chunk of neurons and over its help rows (HelpRows), and the RoPE rotations.</summary>
    public static long RowBytes(ModelShape shape, int threads) =>
        sizeof(float) * ((6L + threads) * shape.Dim + 2L * (ChunkNeurons + HelpRows(shape, threads)) * threads + shape.HeadSize);
}
