using AotFlash.Flash;

namespace AotFlash.Sparsity;

/// <summary>
/// One FFN layer's cache of neuron bundles in DRAM (the paper's memory management): a preallocated matrix of
/// <see cref="Capacity"/> rows of <see cref="RowBytes"/> each, rows 0 .. <see cref="Count"/>-1 in use; an index
/// neuron -> row and row -> neuron; a miss takes a row a deletion freed, or the next past Count. Sliding window: after <see cref="Update"/> for
/// token t the cache holds exactly the neurons that were active in tokens t-window+1 .. t (when capacity allows).
/// No allocation per token.
/// </summary>
/// <remarks>
/// <para>
/// Bookkeeping is proportional to the work of the token, never to <see cref="Count"/>: cached neurons sit in an
/// intrusive doubly linked list ordered by the token that last used them (head = least recently used). A hit moves
/// the neuron to the tail, so the neurons that fell out of the window, and the LRU victims under capacity pressure,
/// are always a prefix of the list and are popped from the head. One <see cref="Update"/> costs
/// O(active + evicted·log evicted + missing·log missing) plus one row copy per row moved.
/// </para>
/// <para>
/// A token's missing neurons take the rows its evictions freed (in ascending neuron order, into ascending rows), then
/// new rows past the old <see cref="Count"/>; only where fewer neurons are missing than rows were freed below the new
/// Count are rows copied, the survivors at or above it into the holes that are left (<see cref="RowsMoved"/>). In the
/// steady state a token evicts about as many neurons as it misses, so rows are seldom copied: compacting every hole
/// and appending the misses copied a 7B layer's ~250 rows of 24 KiB per token. The flash reader reads a bundle of whole
/// blocks straight into whichever row it has, and copies any other bundle from its staging buffer.
/// </para>
/// <para>
/// Among neurons last used by the same token, LRU eviction takes first the hits of that token (in the order they
/// appeared in its active set), then its misses (in ascending neuron order).
/// </para>
/// <para>
/// The matrix (Capacity × RowBytes, 64-byte aligned) and the index (24 bytes per neuron plus 8 per row) are native
/// memory charged to the <see cref="DramAccount"/>; see <see cref="AllocatedBytes"/> and <see cref="BytesFor"/>. Not thread safe: one layer's
/// cache is updated by one thread at a time.
/// </para>
/// </remarks>
public sealed unsafe class NeuronCache : IDisposable
{
    private readonly DramAccount _account;
    private byte* _matrix;
    private void* _index;

    // Per neuron (length Neurons).
    private int* _rowOf;      // -1 when not cached
    private int* _prev;       // LRU list links, -1 = none
    private int* _next;
    private int* _stamp;      // == _epoch while the neuron is seen in the current Update's active set
    private long* _lastUsed;  // token that last used the neuron (meaningful while cached)

    // Per row (length Capacity).
    private int* _neuronAt;   // -1 for a hole while a token's evictions are compacted
    private int* _holes;      // scratch: rows freed by the current token

    private readonly long _matrixBytes;
    private readonly long _indexBytes;

    private int _head = -1, _tail = -1;
    private int _epoch;
    private long _lastToken = -1;
    private int _count;

    /// <param name="neurons">Neurons of the layer (valid ids are 0 .. neurons-1).</param>
    /// <param name="capacity">Rows of the matrix, 1 .. neurons.</param>
    /// <param name="rowBytes">Bytes of one neuron bundle.</param>
    /// <param name="window">Sliding window k in tokens, ≥ 1.</param>
    /// <param name="account">Charged for the matrix and the index (<see cref="BytesFor"/>) until <see cref="Dispose"/>;
    /// when its budget cannot take them the constructor throws its <see cref="BadInputException"/> and holds nothing.</param>
    public NeuronCache(int neurons, int capacity, long rowBytes, int window, DramAccount account)
    {
        ArgumentNullException.ThrowIfNull(account);
        if (neurons < 1)
            throw new ArgumentOutOfRangeException(nameof(neurons), neurons, "neuron cache: the layer must have at least one neuron.");
        if (capacity < 1 || capacity > neurons)
            throw new ArgumentOutOfRangeException(nameof(capacity), capacity, $"neuron cache: capacity must be between 1 and the layer's {neurons} neurons.");
        if (rowBytes < 1)
            throw new ArgumentOutOfRangeException(nameof(rowBytes), rowBytes, "neuron cache: a row must have at least one byte.");
        if (window < 1)
            throw new ArgumentOutOfRangeException(nameof(window), window, "neuron cache: the window must be at least one token.");
        if (rowBytes > long.MaxValue / capacity)
            throw new ArgumentOutOfRangeException(nameof(rowBytes), rowBytes, $"neuron cache: {capacity} rows of {rowBytes} bytes overflow.");

        Neurons = neurons;
        Capacity = capacity;
        RowBytes = rowBytes;
        Window = window;
        _account = account;

        _matrixBytes = capacity * rowBytes;
        _indexBytes = IndexBytes(neurons, capacity);
        // Rows of whole 4 KiB blocks start on blocks, so that the flash reader can read bundles straight into them; on
        // 4 KiB pages (DramAccount.Allocate says why).
        _matrix = (byte*)account.Allocate(_matrixBytes, $"a neuron cache ({capacity} rows of {rowBytes} B)",
                                          rowBytes % Layout.FlashAlignment == 0 ? Layout.FlashAlignment : 64, hugePages: false);
        try
        {
            _index = account.Allocate(_indexBytes, $"a neuron cache's index ({neurons} neurons, {capacity} rows)");
        }
        catch
        {
            account.Free(_matrix, _matrixBytes);
            _matrix = null;
            throw;
        }

        // Longs first so every array stays naturally aligned.
        byte* p = (byte*)_index;
        _lastUsed = (long*)p; p += (long)neurons * sizeof(long);
        _rowOf = (int*)p; p += (long)neurons * sizeof(int);
        _prev = (int*)p; p += (long)neurons * sizeof(int);
        _next = (int*)p; p += (long)neurons * sizeof(int);
        _stamp = (int*)p; p += (long)neurons * sizeof(int);
        _neuronAt = (int*)p; p += (long)capacity * sizeof(int);
        _holes = (int*)p;

        new Span<int>(_rowOf, neurons).Fill(-1);
        new Span<int>(_prev, neurons).Fill(-1);
        new Span<int>(_next, neurons).Fill(-1);
        new Span<int>(_neuronAt, capacity).Fill(-1);
        // _stamp is zeroed and _epoch starts at 1 on the first Update.
    }

    public int Neurons { get; }
    public int Capacity { get; }
    public int Window { get; }
    public long RowBytes { get; }

    /// <summary>Rows in use (0 .. Capacity); rows 0 .. Count-1 hold cached neurons.</summary>
    public int Count => _count;

    /// <summary>Active neurons that were already cached, over the cache's lifetime (<see cref="Clear"/> keeps it).</summary>
    public long Hits { get; private set; }

    /// <summary>Active neurons that had to be read, over the cache's lifetime (<see cref="Clear"/> keeps it).</summary>
    public long Misses { get; private set; }

    /// <summary>Rows copied to fill the holes left by evictions, over the cache's lifetime.</summary>
    public long RowsMoved { get; private set; }

    /// <summary>Bytes this cache holds through its <see cref="DramAccount"/>: the matrix plus the index (0 once disposed).</summary>
    public long AllocatedBytes => _matrix == null ? 0 : _matrixBytes + _indexBytes;

    /// <summary>
    /// What a cache of this shape charges to its account: <c>capacity * rowBytes</c> for the matrix plus
    /// 24 bytes per neuron and 8 per row for the index. For sizing caches to a DRAM budget before creating them.
    /// </summary>
    public static long BytesFor(int neurons, int capacity, long rowBytes) => capacity * rowBytes + IndexBytes(neurons, capacity);

    private static long IndexBytes(int neurons, int capacity) =>
        (long)neurons * (4 * sizeof(int) + sizeof(long)) + (long)capacity * (2 * sizeof(int));

    /// <summary>The bundle stored in <paramref name="row"/> (0 ≤ row &lt; Count); RowBytes bytes, valid until the next Update or Clear.</summary>
    public byte* Row(int row)
    {
        CheckRow(row);
        return _matrix + row * RowBytes;
    }

    /// <summary>The row holding <paramref name="neuron"/>, or -1 when it is not cached.</summary>
    public int RowOf(int neuron)
    {
        CheckAlive();
        if ((uint)neuron >= (uint)Neurons)
            throw new ArgumentOutOfRangeException(nameof(neuron), neuron, $"neuron cache: neuron must be in 0 .. {Neurons - 1}.");
        return _rowOf[neuron];
    }

    /// <summary>The neuron stored in <paramref name="row"/> (0 ≤ row &lt; Count).</summary>
    public int NeuronAt(int row)
    {
        CheckRow(row);
        return _neuronAt[row];
    }

    /// <summary>
    /// For token number <paramref name="token"/> (≥ 0, strictly increasing between calls) with the active neurons
    /// <paramref name="active"/> (distinct, any order): evicts neurons that fell out of the window (not active in the
    /// last Window tokens, counting this one), reserves rows for the active neurons that are missing, and writes them
    /// to <paramref name="missing"/> (ascending neuron order) with their destination rows in
    /// <paramref name="missingRows"/> (same order; rows this call freed, ascending, then new rows). Returns how many are missing;
    /// the caller then fills those rows (reads from flash). If the window's neurons plus the missing ones exceed
    /// Capacity, it evicts the least recently used neurons that are not active now; if <paramref name="active"/> alone
    /// exceeds Capacity, it throws <see cref="InvalidOperationException"/>. Counts hits (active and already cached)
    /// and misses. Every argument is checked before anything changes: a call that throws leaves the cache as it was.
    /// </summary>
    /// <exception cref="InvalidOperationException">More active neurons than rows.</exception>
    /// <exception cref="ArgumentOutOfRangeException">A neuron outside 0 .. Neurons-1, or a negative token.</exception>
    /// <exception cref="ArgumentException">A token not after the previous one, a repeated neuron, or output spans shorter than the missing count.</exception>
    public int Update(ReadOnlySpan<int> active, long token, Span<int> missing, Span<int> missingRows)
    {
        CheckAlive();
        if (token < 0)
            throw new ArgumentOutOfRangeException(nameof(token), token, "neuron cache: token numbers must be >= 0.");
        if (token <= _lastToken)
            throw new ArgumentException($"neuron cache: token {token} does not follow token {_lastToken}; token numbers must strictly increase (Clear starts a new sequence).", nameof(token));
        if (active.Length > Capacity)
            throw new InvalidOperationException(
                $"neuron cache: {active.Length} neurons are active at token {token} but the cache holds only {Capacity} rows; " +
                $"raise the cache capacity to at least {active.Length} (or lower the activation threshold).");

        // Pass 1: validate and count, changing nothing that matters if it throws.
        int epoch = NextEpoch();
        int* rowOf = _rowOf, stamp = _stamp;
        int miss = 0;
        for (int i = 0; i < active.Length; i++)
        {
            int n = active[i];
            if ((uint)n >= (uint)Neurons)
                throw new ArgumentOutOfRangeException(nameof(active), n, $"neuron cache: active neuron {n} at token {token} is outside 0 .. {Neurons - 1}.");
            if (stamp[n] == epoch)
                throw new ArgumentException($"neuron cache: neuron {n} appears twice in the active set of token {token}.", nameof(active));
            stamp[n] = epoch;
            if (rowOf[n] < 0) miss++;
        }
        if (missing.Length < miss || missingRows.Length < miss)
            throw new ArgumentException(
                $"neuron cache: {miss} neurons are missing at token {token} but the output spans hold {missing.Length} and {missingRows.Length}.",
                missing.Length < miss ? nameof(missing) : nameof(missingRows));

        // Pass 2: refresh the hits (to the tail of the LRU list) and collect the misses.
        _lastToken = token;
        long* lastUsed = _lastUsed;
        int m = 0;
        for (int i = 0; i < active.Length; i++)
        {
            int n = active[i];
            if (rowOf[n] >= 0)
            {
                lastUsed[n] = token;
                if (n != _tail) { Unlink(n); LinkTail(n); }
            }
            else
            {
                missing[m++] = n;
            }
        }
        Hits += active.Length - miss;
        Misses += miss;

        // Evict: first everything outside the window (last used at or before token - Window), then, while the
        // survivors plus the misses do not fit, the least recently used. Hits now sit at the tail with lastUsed ==
        // token, so neither loop reaches an active neuron (active.Length <= Capacity).
        int holes = 0;
        long oldest = token - Window;
        while (_head >= 0 && lastUsed[_head] <= oldest)
            _holes[holes++] = Detach(_head);
        while (_count - holes + miss > Capacity)
            _holes[holes++] = Detach(_head);

        // The misses, ascending, into the freed rows below the new count (ascending), then into new rows.
        int newCount = _count - holes + miss, hole = 0, appended = _count;
        new Span<int>(_holes, holes).Sort();
        Span<int> misses = missing[..miss];
        misses.Sort();
        for (int i = 0; i < miss; i++)
        {
            int n = misses[i];
            int row = hole < holes && _holes[hole] < newCount ? _holes[hole++] : appended++;
            rowOf[n] = row;
            _neuronAt[row] = n;
            lastUsed[n] = token;
            LinkTail(n);
            missingRows[i] = row;
        }
        // Freed rows below the new count that no miss took: as many survivors sit at or above it, and move down.
        int src = _count - 1;
        long rowBytes = RowBytes;
        for (; hole < holes && _holes[hole] < newCount; hole++)
        {
            while (_neuronAt[src] < 0) src--;
            int dst = _holes[hole], n = _neuronAt[src];
            Buffer.MemoryCopy(_matrix + src * rowBytes, _matrix + dst * rowBytes, rowBytes, rowBytes);
            _neuronAt[dst] = n;
            _neuronAt[src] = -1;
            rowOf[n] = dst;
            src--;
            RowsMoved++;
        }
        _count = newCount;
        return miss;
    }

    /// <summary>Empties the cache for a new sequence (token numbers may start again); Hits, Misses and RowsMoved keep counting.</summary>
    public void Clear()
    {
        CheckAlive();
        for (int row = 0; row < _count; row++)
        {
            int n = _neuronAt[row];
            _rowOf[n] = -1;
            _prev[n] = -1;
            _next[n] = -1;
            _neuronAt[row] = -1;
        }
        _count = 0;
        _head = _tail = -1;
        _lastToken = -1;
    }

    /// <summary>Frees the matrix and the index through the account. Safe to call twice.</summary>
    public void Dispose()
    {
        if (_matrix == null) return;
        _account.Free(_index, _indexBytes);
        _account.Free(_matrix, _matrixBytes);
        _index = null;
        _matrix = null;
        _rowOf = _prev = _next = _stamp = _neuronAt = _holes = null;
        _lastUsed = null;
        _count = 0;
        _head = _tail = -1;
    }

    // Removes neuron n from the cache's indexes and the LRU list, leaving a hole at its row; returns the row.
    private int Detach(int n)
    {
        int row = _rowOf[n];
        Unlink(n);
        _rowOf[n] = -1;
        _neuronAt[row] = -1;
        return row;
    }

    private void Unlink(int n)
    {
        int p = _prev[n], q = _next[n];
        if (p >= 0) _next[p] = q; else _head = q;
        if (q >= 0) _prev[q] = p; else _tail = p;
        _prev[n] = _next[n] = -1;
    }

    private void LinkTail(int n)
    {
        _prev[n] = _tail;
        _next[n] = -1;
        if (_tail >= 0) _next[_tail] = n; else _head = n;
        _tail = n;
    }

    private int NextEpoch()
    {
        if (_epoch == int.MaxValue)
        {
            new Span<int>(_stamp, Neurons).Clear();
            _epoch = 0;
        }
        return ++_epoch;
    }

    private void CheckRow(int row)
    {
        CheckAlive();
        if ((uint)row >= (uint)_count)
            throw new ArgumentOutOfRangeException(nameof(row), row, $"neuron cache: row must be in 0 .. Count-1 (Count is {_count}).");
    }

    private void CheckAlive() => ObjectDisposedException.ThrowIf(_matrix == null, this);
}
