using System.Diagnostics;
using AotFlash.Flash;

namespace AotFlash.Ffn;

/// <summary>The paper's baseline: every token (every block of a prompt), each layer's whole FFN is read from flash (O_DIRECT, the same I/O pool)
/// into one layer buffer and computed densely. Only one layer's FFN is in DRAM at a time.</summary>
public sealed unsafe class NaiveFfnSource : IFfnSource
{
    private readonly FlashReader _reader;
    private readonly FlashChecksums _checksums;
    private readonly string _source;
    private readonly int _bundleBytes;
    private readonly long _flashSection;
    private readonly long _layerBytes;
    private readonly NativeArray<byte> _layer;
    private readonly EveryNeuron _all;
    private readonly int _hidden;

    /// <param name="source">The model file's name, for errors.</param>
    /// <param name="threads">The transformer's, whose rows for a block grow with them (<see cref="FfnBlocks.RowBytes"/>).</param>
    /// <param name="reservedBytes">What the transformer will take from the budget whatever its blocks (the KV cache).</param>
    public NaiveFfnSource(FlashReader reader, long flashSection, FlashChecksums checksums, string source, Layout layout, DramAccount account,
                          int threads, long reservedBytes)
    {
        _reader = reader;
        _checksums = checksums;
        _source = source;
        _bundleBytes = checked((int)layout.BundleBytes);
        _flashSection = flashSection;
        _layerBytes = layout.FlashLayerBytes;
        _layer = NativeArray<byte>.ForReads(_layerBytes, account, "the naive mode's layer buffer");
        _hidden = layout.Shape.HiddenDim;
        _all = new EveryNeuron(_hidden, account);
        BlockTokens = FfnBlocks.ForStreaming(layout.Shape, threads, account.Limit, account.Available - reservedBytes, FfnBlocks.NaiveFewest);
        Stats.DirectIo = reader.Direct;
    }

    public FfnStats Stats { get; } = new();

    public int BlockTokens { get; }

    public FfnSelection Prepare(FfnLayer layer, float* x)
    {
        _all.Count(Stats, 1);
        return ReadLayer(layer);
    }

    /// <summary>One piece: the layer, read once for all the block's tokens.</summary>
    public int BeginBlock(FfnLayer layer, float* xs, int tokens)
    {
        _all.Count(Stats, tokens);
        return 1;
    }

    public FfnSelection BlockPiece(FfnLayer layer, int piece) => ReadLayer(layer);

    private FfnSelection ReadLayer(FfnLayer layer)
    {
        long start = Stopwatch.GetTimestamp(), before = _reader.BytesRead;
        _reader.ReadContiguous(_flashSection + layer.Offset, _layerBytes, _layer.Pointer);
        try { _checksums.VerifyLayer(layer.Index, _layer.Pointer, layer.BundleStride, _bundleBytes); }
        catch (FlashChecksumException e) { throw FlashChecksums.Corrupt(_source, layer.Index, e); }
        Stats.IoTicks += Stopwatch.GetTimestamp() - start;
        Stats.ReadTicks += _reader.LastReadTicks;
        Stats.BytesRead += _reader.BytesRead - before;
        return _all.At(_layer.Pointer, layer.BundleStride, 0, _hidden);
    }

    public void Reset() { }

    public void Dispose()
    {
        _layer.Dispose();
        _all.Dispose();
        _reader.Dispose();
    }
}
