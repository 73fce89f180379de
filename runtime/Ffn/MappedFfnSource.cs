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

    /// <summary>Every neuron for <paramref name="tokens"/> tokens, counted in <paramref name="stats"/>.</summary>
    public FfnSelection At(byte* first, long stride, int tokens, FfnStats stats)
    {
        for (int i = 0; i < _hidden; i++) _bundles.Pointer[i] = (nint)(first + i * stride);
        stats.NeuronsUsed += (long)_hidden * tokens;
        stats.NeuronsTotal += (long)_hidden * tokens;
        return new FfnSelection(_neurons.Span, _bundles.Span, stride);
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

    public FfnSelection Prepare(FfnLayer layer, float* x) => _all.At(flash + layer.Offset, layer.BundleStride, 1, Stats);

    public bool TryPrepareBlock(FfnLayer layer, int tokens, out FfnSelection selection)
    {
        selection = _all.At(flash + layer.Offset, layer.BundleStride, tokens, Stats);
        return true;
    }

    public void Reset() { }

    public void Dispose() => _all.Dispose();
}
