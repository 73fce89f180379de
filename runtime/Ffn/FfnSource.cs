using System.Diagnostics;

namespace AotFlash.Ffn;

/// <summary>The neurons one layer's FFN computes for one token and where each neuron's bundle
/// [gate row | up row | down column] is in memory; neurons left out contribute zero.</summary>
public readonly unsafe ref struct FfnSelection(ReadOnlySpan<int> neurons, ReadOnlySpan<nint> bundles)
{
    public ReadOnlySpan<int> Neurons { get; } = neurons;
    public ReadOnlySpan<nint> Bundles { get; } = bundles;
}

/// <summary>One layer's FFN in the flash section: its index, the byte offset of its first bundle (from the section
/// start) and the distance between bundles; constants of the generated model.</summary>
public readonly record struct FfnLayer(int Index, long Offset, long BundleStride);

/// <summary>What the FFN sources did, summed over tokens: the per-token breakdown of flash inference.</summary>
public sealed class FfnStats
{
    public long IoTicks;       // waiting for flash reads (and copying bundles out of the read buffers)
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

    /// <summary>Zeroes the counters (not <see cref="DirectIo"/>), so that they describe only what follows.</summary>
    public void Clear() => IoTicks = MemTicks = PredictTicks = BytesRead = NeuronsUsed = NeuronsTotal = CacheHits = CacheMisses = TrueActive = TrueSelected = 0;
}

/// <summary>Where a layer's FFN bundles come from: mapped memory (dense), a whole-layer read from flash each token
/// (naive), or a predictor plus a neuron cache fed by sparse flash reads (flash).</summary>
public unsafe interface IFfnSource : IDisposable
{
    /// <summary>Makes the bundles that <paramref name="layer"/> needs for FFN input x[dim] available.</summary>
    FfnSelection Prepare(FfnLayer layer, float* x);

    FfnStats Stats { get; }

    /// <summary>Forgets per-sequence state (the cache's window) before a new sequence.</summary>
    void Reset();
}
