using AotFlash.Flash;

namespace AotFlash.Ffn;

/// <summary>The selection "every neuron, bundles one stride apart from <c>first</c>": what the dense and naive modes compute.</summary>
public sealed unsafe class EveryNeuron : IDisposable
{
    private readonly int _hidden;
    private readonly NativeArray<nint> _bundles;
    private readonly NativeArray<int> _neurons;    // 0 .. hidden-1

    public EveryNeuron(int hidden, DramAccount account)
    {
        _hidden = hidden;
        _bundles = new NativeArray<nint>(hidden, account, "bundle index");
        _neurons = new NativeArray<int>(hidden, account, "bundle index");
        for (int i = 0; i < hidden; i++) _neurons.Pointer[i] = i;
    }

    /// <summary>Neurons [from, from + count) with their bundles, <paramref name="stride"/> apart from
    /// <paramref name="first"/> (neuron <paramref name="from"/>'s).</summary>
    public FfnSelection At(byte* first, long stride, int from, int count)
    {
        for (int i = 0; i < count; i++) _bundles.Pointer[i] = (nint)(first + i * stride);
        return new FfnSelection(_neurons.Span.Slice(from, count), _bundles.Span[..count], stride);
    }

    /// <summary>Counts every neuron as used by <paramref name="tokens"/> tokens.</summary>
    public void Count(FfnStats stats, int tokens)
    {
        stats.NeuronsUsed += (long)_hidden * tokens;
        stats.NeuronsTotal += (long)_hidden * tokens;
    }

    public void Dispose()
    {
        _bundles.Dispose();
        _neurons.Dispose();
    }
}

/// <summary>Every neuron, from the flash section mapped in memory: the dense mode.</summary>
public sealed unsafe class MappedFfnSource(byte* flash, int hidden, DramAccount account) : IFfnSource
{
    private readonly EveryNeuron _all = new(hidden, account);

    public FfnStats Stats { get; } = new();

    public int BlockTokens => FfnBlocks.InMemory;

    public FfnSelection Prepare(FfnLayer layer, float* x)
    {
        _all.Count(Stats, 1);
        return BlockPiece(layer, 0);
    }

    /// <summary>One piece: the whole layer, in place.</summary>
    public int BeginBlock(FfnLayer layer, float* xs, int tokens)
    {
        _all.Count(Stats, tokens);
        return 1;
    }

    public FfnSelection BlockPiece(FfnLayer layer, int piece) => _all.At(flash + layer.Offset, layer.BundleStride, 0, hidden);

    public void Reset() { }

    public void Dispose() => _all.Dispose();
}
