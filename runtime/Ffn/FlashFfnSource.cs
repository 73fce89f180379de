using System.Diagnostics;
using AotFlash.Flash;
using AotFlash.Sparsity;

namespace AotFlash.Ffn;

/// <summary>
/// LLM in a flash: per layer, the low-rank predictor picks the neurons this token will use; the layer's
/// <see cref="NeuronCache"/> keeps those of the last k tokens and says which are missing; only those bundles are read
/// from flash, in parallel, coalesced; the FFN then runs over the cached rows.
/// A block of prompt tokens needs most of every layer (the union of its tokens' neurons): the layer streams through a
/// buffer in large sequential reads, the disk's fastest, and the block computes it whole; the window's last tokens
/// then leave in the cache what decoding them would have.
/// </summary>
public sealed unsafe class FlashFfnSource : IFfnSource
{
    private readonly FlashReader _reader;
    private readonly FlashChecksums _checksums;
    private readonly string _source;
    private readonly long _flashSection;
    private readonly Layout _layout;
    private readonly PredictorSet? _predictors;
    private readonly DramAccount _account;
    private readonly int _window;
    private readonly bool _selectAll;
    private readonly int _hidden;
    private readonly int _bundleBytes;
    private NeuronCache[] _caches = [];
    private readonly NativeArray<int> _active, _missing, _missingRows;
    private readonly NativeArray<nint> _destinations, _bundles;
    private readonly NativeArray<int> _ordered;       // the selected neurons, cached ones first, as _bundles holds them
    private int _selected, _hits;                     // of the token Prepare served: neurons selected, and cached
    private int _reading = -1;                        // the layer whose reads are in flight, or -1
    private long _readBefore;
    private float* _x;                                // its FFN input, for the recall measurement
    private readonly NativeArray<float> _scratch;
    private readonly long[] _tokens;
    private readonly RecallProbe? _probe;
    private LayerStream? _stream;
    private int _pieceNeurons, _pieces;
    private readonly NativeArray<int> _fill;          // the streamed layer's neurons the cache awaits, ascending
    private readonly NativeArray<byte> _awaited;      // per neuron: in _fill, or (within Prepare) missing; 0 between calls
    private readonly EveryNeuron _pieceSelection;     // a streamed piece's neurons and bundles
    private int _fillCount, _fillAt;

    /// <summary>Fewer tokens than this go through the predictor and the cache one by one: streaming a whole layer
    /// pays when the union of the tokens' neurons is a large part of it.</summary>
    public const int MinStreamedTokens = 8;

    /// <summary>The most bytes one piece of a streamed layer holds (large sequential requests), unless a 48th of
    /// what the budget leaves for the caches is less (<see cref="LayerStream.MostBuffers"/> pieces are in memory, one
    /// computed and the next two read and checked: together a sixteenth).</summary>
    public const int StreamBytes = 8 << 20;

    /// <param name="source">The model file's name, for errors.</param>
    /// <param name="activeThreshold">A neuron is truly active when its gate pre-activation is above this (0 for ReLU).</param>
    /// <param name="threads">The transformer's, whose rows for a block grow with them (<see cref="FfnBlocks.RowBytes"/>).</param>
    /// <param name="reservedBytes">What the transformer will take from the budget whatever its blocks (the KV cache).</param>
    public FlashFfnSource(FlashReader reader, long flashSection, FlashChecksums checksums, string source, Layout layout, PredictorSet? predictors,
                          int window, DramAccount account, float activeThreshold, bool measureRecall, bool selectAll, int threads, long reservedBytes)
    {
        _reader = reader;
        _checksums = checksums;
        _source = source;
        _flashSection = flashSection;
        _layout = layout;
        _predictors = predictors;
        _account = account;
        _window = window;
        _selectAll = selectAll;
        _hidden = layout.Shape.HiddenDim;
        _bundleBytes = checked((int)layout.BundleBytes);
        _active = new NativeArray<int>(_hidden, account, "the neuron lists");
        _missing = new NativeArray<int>(_hidden, account, "the neuron lists");
        _missingRows = new NativeArray<int>(_hidden, account, "the neuron lists");
        _destinations = new NativeArray<nint>(_hidden, account, "the neuron lists");
        _bundles = new NativeArray<nint>(_hidden, account, "the neuron lists");
        _ordered = new NativeArray<int>(_hidden, account, "the neuron lists");
        if (predictors is null && !selectAll) throw new ArgumentNullException(nameof(predictors), "flash mode needs predictors");
        int maxRank = predictors?.Layers.Max(p => p.Rank) ?? 0;
        _scratch = new NativeArray<float>(_hidden + maxRank, account, "predictor scratch");
        _tokens = new long[layout.Shape.Layers];
        if (measureRecall) _probe = new RecallProbe(reader, flashSection, layout, account, activeThreshold);
        _fill = new NativeArray<int>(_hidden, account, "the neuron lists");
        _awaited = new NativeArray<byte>(_hidden, account, "the neuron lists");
        _pieceSelection = new EveryNeuron(_hidden, account);
        // The caches' least, and the 16th of the rest that a streamed layer's pieces take (AllocateCaches).
        BlockTokens = FfnBlocks.ForStreaming(layout.Shape, threads, account.Limit, account.Available - reservedBytes - LeastCacheBytes * 16 / 15,
                                             MinStreamedTokens);
        Stats.DirectIo = reader.Direct;
    }

    public FfnStats Stats { get; } = new();

    public int BlockTokens { get; }

    /// <summary>The fewest rows a layer's cache may have: every neuron where all are selected, else a 16th of them
    /// (at least 32).</summary>
    private int MinimumCacheRows => _selectAll ? _hidden : Math.Min(_hidden, Math.Max(32, _hidden / 16));

    /// <summary>What the caches of every layer take at <see cref="MinimumCacheRows"/>.</summary>
    private long LeastCacheBytes => NeuronCache.BytesFor(_hidden, MinimumCacheRows, _layout.BundleStride) * _layout.Shape.Layers;

    /// <summary>Gives the caches whatever the budget has left, once everything else is allocated, less the buffer
    /// that a streamed layer's pieces go through; at least <see cref="MinimumCacheRows"/> each, or it throws.</summary>
    public void AllocateCaches()
    {
        var s = _layout.Shape;
        long perRow = _layout.BundleStride;
        // Pieces start on the file's 4 KiB blocks (O_DIRECT) and on groups of four neurons (the products' groups).
        int step = 4;
        while (step * perRow % Layout.FlashAlignment != 0) step += 4;
        long share = (_account.Available - (64L << 10)) / 16;
        long pieceBytes = Math.Min(StreamBytes, share / LayerStream.MostBuffers);
        _pieceNeurons = (int)Math.Min(_hidden, Math.Max(step, pieceBytes / perRow / step * step));
        long streamBytes = Math.Min(_layout.FlashLayerBytes, Layout.AlignUp(_pieceNeurons * perRow, Layout.FlashAlignment));
        // The smallest pieces (a few neurons on whole blocks) may outgrow the share under a tight budget: then only
        // the next piece is read ahead.
        _stream = new LayerStream(this, streamBytes, LayerStream.MostBuffers * streamBytes <= share ? LayerStream.MostBuffers : 2);
        // Everything else is allocated by now; keep a little headroom all the same.
        long available = _account.Available - (64L << 10);
        int rows = s.HiddenDim;
        while (rows > 0 && NeuronCache.BytesFor(s.HiddenDim, rows, perRow) * s.Layers > available)
            rows = (int)Math.Min(rows - 1, available / s.Layers / (perRow + 8));
        int minimumRows = MinimumCacheRows;
        if (rows < minimumRows)
        {
            long needed = LeastCacheBytes;
            throw new BadInputException($"the DRAM budget of {DramAccount.Format(_account.Limit)} leaves {DramAccount.Format(Math.Max(0, available))} " +
                                        $"for the neuron caches, which need at least {DramAccount.Format(needed)} ({minimumRows} neurons x {s.Layers} layers); " +
                                        $"{DramAccount.Format(needed - Math.Max(0, available))} missing");
        }
        _caches = new NeuronCache[s.Layers];
        for (int l = 0; l < s.Layers; l++) _caches[l] = new NeuronCache(s.HiddenDim, rows, perRow, _window, _account);
        CacheRows = rows;
    }

    /// <summary>One layer's cache, for tests that look into it.</summary>
    internal NeuronCache CacheOf(int layer) => _caches[layer];

    /// <summary>Rows of each layer's cache.</summary>
    public int CacheRows { get; private set; }

    /// <summary>Predicts the layer's neurons for x, updates the cache, starts reading the bundles it misses into their
    /// rows, and returns the cached ones, which the FFN computes while the reads are in flight; <see cref="Complete"/>
    /// then gives the rest.</summary>
    public FfnSelection Prepare(FfnLayer layer, float* x)
    {
        _stream?.Abandon(); // a block that failed midway may have left a read in flight
        AbandonRead();
        var cache = _caches[layer.Index];
        long t0 = Stopwatch.GetTimestamp();
        int* active = _active.Pointer;
        int count = Select(layer, cache, x);
        long t1 = Stopwatch.GetTimestamp();
        int missing = cache.Update(new ReadOnlySpan<int>(active, count), _tokens[layer.Index]++, _missing.Span, _missingRows.Span);
        for (int j = 0; j < missing; j++) _destinations.Pointer[j] = (nint)cache.Row(_missingRows.Pointer[j]);
        long t2 = Stopwatch.GetTimestamp();
        if (missing > 0)
        {
            _readBefore = _reader.BytesRead;
            try
            {
                _reader.BeginReadBundles(_flashSection + layer.Offset, layer.BundleStride, _bundleBytes, _missing.Pointer, _destinations.Pointer,
                    missing, _checksums.Layer(layer.Index));
            }
            catch (Exception e) { throw ReadFailed(cache, layer, e); }
            _reading = layer.Index;
        }
        long t3 = Stopwatch.GetTimestamp();
        // The selection in two parts: the cached neurons first, then the missing ones, whose rows the reads are filling.
        int* order = _ordered.Pointer;
        nint* bundles = _bundles.Pointer;
        byte* awaited = _awaited.Pointer;
        for (int j = 0; j < missing; j++) awaited[_missing.Pointer[j]] = 1;
        int hits = 0;
        for (int j = 0; j < count; j++)
        {
            int n = active[j];
            if (awaited[n] != 0) continue;
            order[hits] = n;
            bundles[hits++] = (nint)cache.Row(cache.RowOf(n));
        }
        for (int j = 0; j < missing; j++)
        {
            awaited[_missing.Pointer[j]] = 0;
            order[hits + j] = _missing.Pointer[j];
            bundles[hits + j] = _destinations.Pointer[j];
        }
        _selected = count;
        _hits = hits;
        long t4 = Stopwatch.GetTimestamp();

        Stats.PredictTicks += t1 - t0;
        Stats.MemTicks += t2 - t1 + (t4 - t3);
        Stats.NeuronsUsed += count;
        Stats.NeuronsTotal += _hidden;
        Stats.CacheHits += count - missing;
        Stats.CacheMisses += missing;
        if (missing == 0) Measure(layer, x);
        else _x = x;
        return new FfnSelection(new ReadOnlySpan<int>(order, hits), new ReadOnlySpan<nint>(bundles, hits));
    }

    /// <summary>Waits for the reads <see cref="Prepare"/> started for <paramref name="layer"/> and returns the bundles
    /// they filled.</summary>
    public FfnSelection Complete(FfnLayer layer)
    {
        if (_reading < 0) return default;
        if (_reading != layer.Index) throw new InvalidOperationException($"Complete for layer {layer.Index}, but layer {_reading}'s reads are in flight");
        _reading = -1;
        var cache = _caches[layer.Index];
        long t0 = Stopwatch.GetTimestamp();
        try { _reader.EndRead(); }
        catch (Exception e) { throw ReadFailed(cache, layer, e); }
        Stats.IoTicks += Stopwatch.GetTimestamp() - t0;
        Stats.ReadTicks += _reader.LastReadTicks;
        Stats.BytesRead += _reader.BytesRead - _readBefore;
        Measure(layer, _x);
        return new FfnSelection(new ReadOnlySpan<int>(_ordered.Pointer + _hits, _selected - _hits),
            new ReadOnlySpan<nint>(_bundles.Pointer + _hits, _selected - _hits));
    }

    /// <summary>With recall measurement, after the token's reads: the probe's own reads are not part of its I/O.</summary>
    private void Measure(FfnLayer layer, float* x) =>
        _probe?.Measure(layer, x, new ReadOnlySpan<int>(_active.Pointer, _selected), Stats);

    /// <summary>A failed read leaves rows the cache counts as present holding nothing that can be trusted: the cache
    /// forgets everything, and the error names the model file and layer.</summary>
    private Exception ReadFailed(NeuronCache cache, FfnLayer layer, Exception e)
    {
        cache.Clear();
        return e is FlashChecksumException corrupt ? FlashChecksums.Corrupt(_source, layer.Index, corrupt) : e;
    }

    /// <summary>Ends reads that nobody completed (an FFN that failed midway), whatever became of them.</summary>
    private void AbandonRead()
    {
        if (_reading < 0) return;
        var cache = _caches[_reading];
        _reading = -1;
        try { _reader.EndRead(); }
        catch (Exception) { cache.Clear(); } // its failure belongs to a token nobody finishes
    }

    /// <summary>The neurons the predictor picks for x, into _active (at most the cache's capacity); returns how many.</summary>
    private int Select(FfnLayer layer, NeuronCache cache, float* x)
    {
        int* active = _active.Pointer;
        if (_selectAll)
        {
            for (int i = 0; i < _hidden; i++) active[i] = i;
            return _hidden;
        }
        int count = _predictors!.Layers[layer.Index].Select(x, _active.Span, _scratch.Pointer);
        // More predicted neurons than the cache holds: keep those with the largest margin (Select leaves each
        // neuron's score minus threshold in scratch); the rest become forced false negatives.
        return count > cache.Capacity ? KeepStrongest(active, count, cache.Capacity, _scratch.Pointer) : count;
    }

    /// <summary>A block of at least <see cref="MinStreamedTokens"/> streams the layer. First the window's last tokens
    /// go through the predictor and the cache as decoding would; the neurons they miss are filled from the stream.</summary>
    public int BeginBlock(FfnLayer layer, float* xs, int tokens)
    {
        if (tokens < MinStreamedTokens) return 0;
        AbandonRead();
        _pieces = (_hidden + _pieceNeurons - 1) / _pieceNeurons;
        _stream!.Ensure(layer, 0); // read while the predictors run, unless the previous layer's last piece started it
        var cache = _caches[layer.Index];
        int dim = _layout.Shape.Dim, layerIndex = layer.Index;
        int window = Math.Min(_window, tokens);
        long predict = 0, t0 = Stopwatch.GetTimestamp();
        _tokens[layerIndex] += tokens - window;
        _fillCount = _fillAt = 0;
        for (int t = tokens - window; t < tokens; t++)
        {
            long p0 = Stopwatch.GetTimestamp();
            int count = Select(layer, cache, xs + (long)t * dim);
            predict += Stopwatch.GetTimestamp() - p0;
            int missing = cache.Update(new ReadOnlySpan<int>(_active.Pointer, count), _tokens[layerIndex]++, _missing.Span, _missingRows.Span);
            Stats.CacheHits += count - missing;
            Stats.CacheMisses += missing;
            for (int j = 0; j < missing; j++)
            {
                int n = _missing.Pointer[j];
                if (_awaited.Pointer[n] != 0) continue;
                _awaited.Pointer[n] = 1;
                _fill.Pointer[_fillCount++] = n;
            }
        }
        // What a later token evicted needs no filling; the rest is filled in neuron order as the pieces arrive.
        int kept = 0;
        for (int j = 0; j < _fillCount; j++)
        {
            int n = _fill.Pointer[j];
            _awaited.Pointer[n] = 0;
            if (cache.RowOf(n) >= 0) _fill.Pointer[kept++] = n;
        }
        _fillCount = kept;
        new Span<int>(_fill.Pointer, kept).Sort();
        Stats.PredictTicks += predict;
        Stats.MemTicks += Stopwatch.GetTimestamp() - t0 - predict;
        _pieceSelection.Count(Stats, tokens);
        return _pieces;
    }

    /// <summary>Takes one piece of the layer, read and checked while the previous piece was computed, starts reading
    /// the next, and copies the bundles the cache awaits into their rows.</summary>
    public FfnSelection BlockPiece(FfnLayer layer, int piece)
    {
        var cache = _caches[layer.Index];
        long stride = layer.BundleStride;
        int from = piece * _pieceNeurons, n = Math.Min(_pieceNeurons, _hidden - from);
        long t0 = Stopwatch.GetTimestamp();
        byte* stream;
        try
        {
            stream = _stream!.Take(layer, piece, out long bytes);
            Stats.BytesRead += bytes;
            // The next two pieces, past a layer's last piece into the next layer's first (the block goes through every
            // layer in turn): the disk stays busy through this piece's products, the next layer's attention and the
            // checks of what it has read.
            var (next, nextPiece) = (layer, piece);
            for (int ahead = 1; ahead < _stream.Buffers && NextPiece(ref next, ref nextPiece); ahead++) _stream.Follow(next, nextPiece);
        }
        catch (Exception e)
        {
            // Rows the cache counts as present wait for this layer's stream; none can be trusted now.
            _stream!.Abandon();
            cache.Clear();
            if (e is FlashChecksumException corrupt) throw FlashChecksums.Corrupt(_source, layer.Index, corrupt);
            throw;
        }
        long t1 = Stopwatch.GetTimestamp();
        for (; _fillAt < _fillCount && _fill.Pointer[_fillAt] < from + n; _fillAt++)
        {
            int neuron = _fill.Pointer[_fillAt];
            Buffer.MemoryCopy(stream + (neuron - from) * stride, cache.Row(cache.RowOf(neuron)), _bundleBytes, _bundleBytes);
        }
        var selection = _pieceSelection.At(stream, stride, from, n);
        Stats.IoTicks += t1 - t0;
        Stats.MemTicks += Stopwatch.GetTimestamp() - t1;
        return selection;
    }

    /// <summary>The piece a block takes after <paramref name="piece"/> of <paramref name="layer"/>: the layer's next,
    /// or after its last the next layer's first; false after the last layer's last.</summary>
    private bool NextPiece(ref FfnLayer layer, ref int piece)
    {
        if (piece + 1 < _pieces)
        {
            piece++;
            return true;
        }
        if (layer.Index + 1 >= _layout.Shape.Layers) return false;
        layer = layer with { Index = layer.Index + 1, Offset = layer.Offset + _layout.FlashLayerBytes };
        piece = 0;
        return true;
    }

    /// <summary>
    /// A layer read piece by piece through three buffers (two under a tight budget): while the FFN computes the piece
    /// taken last, the next pieces are read one after the other (the reader serves one call at a time), each checked on
    /// a pool thread as soon as it has landed while the disk reads the one after it. The reader serves nobody else
    /// meanwhile. Before, with two buffers, the disk waited for each piece's check and hand-over: the 1.1B's 38-token
    /// prompt at 65% of its file read 1.5 GiB at 1.1 GB/s, its checks taking 165 ms more.
    /// </summary>
    private sealed class LayerStream(FlashFfnSource source, long bytes, int buffers) : IDisposable
    {
        /// <summary>Pieces in memory where the budget allows: one computed, two read and checked.</summary>
        public const int MostBuffers = 3;

        private readonly NativeArray<byte>[] _buffers =
            [.. Enumerable.Range(0, buffers).Select(_ => NativeArray<byte>.ForReads(bytes, source._account, "the streamed layer's pieces"))];
        private readonly Queue<Pending> _pending = new();   // in the order they are read and taken
        private Task _lastRead = Task.CompletedTask;         // the read the next one follows
        private int _held = -1;                              // the buffer the FFN computes

        private sealed record Pending(int Layer, int Piece, int Buffer, Task<long> Checked);

        public int Buffers => _buffers.Length;

        /// <summary>Reads <paramref name="piece"/> of <paramref name="layer"/> after the reads in flight, unless it is one
        /// of them or every buffer is taken.</summary>
        public void Follow(FfnLayer layer, int piece)
        {
            if (_pending.Any(p => p.Layer == layer.Index && p.Piece == piece)) return;
            int buffer = Enumerable.Range(0, Buffers).FirstOrDefault(b => b != _held && _pending.All(p => p.Buffer != b), -1);
            if (buffer < 0) return;
            byte* target = _buffers[buffer].Pointer;
            var read = _lastRead.ContinueWith(_ => source.ReadPiece(layer, piece, target), TaskScheduler.Default);
            _lastRead = read;
            var check = read.ContinueWith(r =>
            {
                long bytesRead = r.GetAwaiter().GetResult();
                source.CheckPiece(layer, piece, target);
                return bytesRead;
            }, TaskScheduler.Default);
            _pending.Enqueue(new Pending(layer.Index, piece, buffer, check));
        }

        /// <summary>Starts reading <paramref name="piece"/> unless it is the next read in flight (what else is in
        /// flight is dropped).</summary>
        public void Ensure(FfnLayer layer, int piece)
        {
            if (_pending.TryPeek(out var next) && next.Layer == layer.Index && next.Piece == piece) return;
            Abandon();
            Follow(layer, piece);
        }

        /// <summary>Waits for <paramref name="piece"/> (reading it now if it is not next) and returns its buffer, read
        /// and checked, which the FFN holds until the next Take.</summary>
        public byte* Take(FfnLayer layer, int piece, out long bytesRead)
        {
            Ensure(layer, piece);
            var next = _pending.Dequeue();
            _held = -1;
            bytesRead = next.Checked.GetAwaiter().GetResult();
            _held = next.Buffer;
            return _buffers[_held].Pointer;
        }

        /// <summary>Waits for the reads in flight and drops them, whatever became of them.</summary>
        public void Abandon()
        {
            while (_pending.TryDequeue(out var pending))
            {
                try { pending.Checked.Wait(); }
                catch (AggregateException) { } // its failure belongs to a piece nobody takes
            }
            _lastRead = Task.CompletedTask;
        }

        public void Dispose()
        {
            Abandon();
            foreach (var buffer in _buffers) buffer.Dispose();
        }
    }

    /// <summary>Reads piece <paramref name="piece"/> of a layer into <paramref name="buffer"/>; returns the bytes read.</summary>
    private long ReadPiece(FfnLayer layer, int piece, byte* buffer)
    {
        int from = piece * _pieceNeurons, n = Math.Min(_pieceNeurons, _hidden - from);
        long stride = layer.BundleStride, offset = from * stride, before = _reader.BytesRead;
        long length = Math.Min(Layout.AlignUp(n * stride, Layout.FlashAlignment), _layout.FlashLayerBytes - offset);
        _reader.ReadContiguous(_flashSection + layer.Offset + offset, length, buffer);
        Interlocked.Add(ref Stats.ReadTicks, _reader.LastReadTicks); // on a pool thread, while the FFN computes
        return _reader.BytesRead - before;
    }

    /// <summary>Checks the bundles of a piece <see cref="ReadPiece"/> read, against the file's checksums.</summary>
    private void CheckPiece(FfnLayer layer, int piece, byte* buffer)
    {
        int from = piece * _pieceNeurons, n = Math.Min(_pieceNeurons, _hidden - from);
        _checksums.VerifyNeurons(layer.Index, from, n, buffer, layer.BundleStride, _bundleBytes);
    }

    /// <summary>Keeps the <paramref name="keep"/> neurons with the largest margin, in ascending neuron order.</summary>
    private static int KeepStrongest(int* active, int count, int keep, float* margins)
    {
        var order = new Span<int>(active, count);
        order.Sort(new ByMarginDescending(margins));
        order[..keep].Sort();
        return keep;
    }

    private readonly struct ByMarginDescending(float* margins) : IComparer<int>
    {
        public int Compare(int a, int b) => margins[b].CompareTo(margins[a]);
    }

    public void Reset()
    {
        _stream?.Abandon();
        AbandonRead();
        foreach (var cache in _caches) cache.Clear();
        Array.Clear(_tokens);
    }

    public void Dispose()
    {
        AbandonRead();
        _stream?.Dispose();
        foreach (var cache in _caches) cache.Dispose();
        _active.Dispose(); _missing.Dispose(); _missingRows.Dispose(); _destinations.Dispose(); _bundles.Dispose(); _ordered.Dispose(); _scratch.Dispose();
        _fill.Dispose(); _awaited.Dispose(); _pieceSelection.Dispose();
        _probe?.Dispose();
        _reader.Dispose();
    }

    /// <summary>Measures predictor recall: reads the layer's every gate row (outside the I/O statistics) and counts the
    /// truly active neurons and how many of them were selected.</summary>
    private sealed class RecallProbe(FlashReader reader, long flashSection, Layout layout, DramAccount account, float threshold) : IDisposable
    {
        private readonly NativeArray<byte> _layer = NativeArray<byte>.ForReads(layout.FlashLayerBytes, account, "the recall measurement's layer buffer");
        private readonly float[] _row = new float[layout.Shape.Dim];

        public void Measure(FfnLayer layer, float* x, ReadOnlySpan<int> selected, FfnStats stats)
        {
            reader.ReadContiguous(flashSection + layer.Offset, layout.FlashLayerBytes, _layer.Pointer);
            var s = layout.Shape;
            int j = 0;
            for (int i = 0; i < s.HiddenDim; i++)
            {
                byte* bundle = _layer.Pointer + i * layer.BundleStride;
                float g;
                fixed (float* row = _row) g = NeuronGate.PreActivation(bundle, x, row, layout);
                while (j < selected.Length && selected[j] < i) j++;
                if (g <= threshold) continue;
                stats.TrueActive++;
                if (j < selected.Length && selected[j] == i) stats.TrueSelected++;
            }
        }

        public void Dispose() => _layer.Dispose();
    }
}
