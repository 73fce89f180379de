using System.Runtime.InteropServices;
using AotFlash.Threading;
using Microsoft.Win32.SafeHandles;

namespace AotFlash.Flash;

/// <summary>How a <see cref="FlashReader"/> splits its reads; the defaults are <see cref="ReadPlanner"/>'s measured ones.</summary>
public sealed class ReaderOptions
{
    /// <summary>The longest read that coalesced bundles become; a positive multiple of 4096. Each I/O thread stages
    /// reads in a buffer this long.</summary>
    public int MaxChunkBytes { get; init; } = ReadPlanner.DefaultMaxChunkBytes;
    /// <summary>The requests <see cref="FlashReader.ReadContiguous"/> splits a region into; a positive multiple of
    /// 4096. They go straight into the destination, unstaged.</summary>
    public int ContiguousChunkBytes { get; init; } = ReadPlanner.DefaultContiguousChunkBytes;
    /// <summary>Bundles at most this many (aligned) bytes apart are read as one range, gap included.</summary>
    public int MaxGapBytes { get; init; } = ReadPlanner.DefaultMaxGapBytes;
    /// <summary>False: plain buffered reads through the page cache, without a warning (for comparisons).</summary>
    public bool UseDirectIO { get; init; } = true;
    /// <summary>For tests: stands in for pread(2) (<see cref="RandomAccess.Read(SafeFileHandle, Span{byte}, long)"/>),
    /// to inject short reads, device errors and delays.</summary>
    internal FlashReader.ReadFunction? Read { get; init; }
    /// <summary>False: bundles are read by the I/O threads with pread even where the kernel has native AIO (for
    /// comparisons and tests of both paths).</summary>
    internal bool UseKernelAio { get; init; } = true;
}

/// <summary>
/// Reads neuron bundles from the flash section the way the paper does: the file is opened with O_DIRECT so that every
/// read goes to the device (the page cache would hide flash), the requested bundles are coalesced into 4 KiB-aligned
/// ranges by <see cref="ReadPlanner"/>, and the ranges are read into 4 KiB-aligned staging buffers, each bundle then
/// copied (without its stride padding) to its destination; bundles of whole blocks read through native AIO go straight
/// into block-aligned destinations instead (<see cref="ReadContiguous"/> always reads straight into its own).
/// Reads go to the device's queue all at once through Linux native AIO (<see cref="KernelAio"/>) where the kernel has
/// it, one thread taking the completions; else a team of <c>ioThreads</c> threads issues them with <c>pread</c>.
/// Threads reach the queue only as fast as they get a core, and the model's own threads keep the cores busy: measured
/// on this project's 2-core machine with two busy threads, 24 random 12 KiB reads went at 750 MB/s submitted at once,
/// against about 280 MB/s from eight pread threads during decode. Where the file system refuses O_DIRECT (EINVAL at
/// open or at the first read) or keeps the file in memory anyway (tmpfs, ramfs), the reader falls back to buffered
/// reads, says so once through <c>warn</c>, and <see cref="Direct"/> is false. All native memory is charged to the
/// <see cref="DramAccount"/>.
/// One read call at a time; the calls themselves allocate nothing once the buffers have grown to the largest request.
/// </summary>
public sealed unsafe class FlashReader : IDisposable
{
    private const int Alignment = ReadPlanner.Alignment;
    /// <summary>Tries of one read that fails with a device error before the error is final.</summary>
    internal const int MaxAttempts = 3;

    /// <summary>pread(2): reads into <paramref name="buffer"/> at <paramref name="offset"/>, returns the bytes read.</summary>
    internal delegate int ReadFunction(SafeFileHandle handle, Span<byte> buffer, long offset);

    private readonly string _path;
    private readonly SafeFileHandle _handle;
    private readonly DramAccount _account;
    private readonly ThreadTeam _team;
    private readonly int _maxChunk, _contiguousChunk;
    private readonly int _maxGap;
    private readonly ReadFunction _read;
    private readonly long _fileLength;
    private readonly byte*[] _staging;
    private int _stagingBytes;
    private ReadRange* _ranges;
    private int _rangeCapacity;
    private readonly BundleWork _bundleWork;
    private readonly ContiguousWork _contiguousWork;
    // Native AIO for bundle reads (null: the I/O threads read them). A call's ranges go into slots of the staging
    // buffers, as many at once as fit; the reaper thread takes each completion, delivers its bundles and puts the next
    // range into the freed slot.
    private const int MaxAioSlots = 256;
    private readonly KernelAio? _aio;
    private readonly Thread? _reaper;
    private readonly KernelAio.Completion* _completions;
    // Vectored reads straight into the destinations (bundles of whole blocks, block-aligned destinations): per slot a
    // list of (address, length) pieces, the gaps between bundles going to one discard buffer nobody reads.
    private const int MaxPieces = 16;
    private int _pieceSlots; // slots with a list: as many as the staging buffers hold 4 KiB ranges
    private nint* _pieces; // [slot, MaxPieces, 2]
    private readonly bool[] _vectored = new bool[MaxAioSlots];
    private byte* _discard;
    private long _discardBytes;
    private long _vectoredReads;
    private readonly ManualResetEventSlim _aioDone = new(false);
    private volatile bool _stopping, _aioBroken;
    private bool _inKernel; // the call in flight went to the kernel
    private Work? _aioWork; // ... and is this one
    private int _aioPlanned, _aioNext, _aioPending, _aioSlotBytes, _aioPerBuffer;
    private long _bytesRead;
    private long _requests;
    private int _busy;
    private bool _disposed;

    private FlashReader(string path, SafeFileHandle handle, long baseOffset, bool direct, int ioThreads, DramAccount account, ReaderOptions options)
    {
        _path = path; _handle = handle; BaseOffset = baseOffset; Direct = direct; _account = account;
        _maxChunk = options.MaxChunkBytes; _contiguousChunk = options.ContiguousChunkBytes; _maxGap = options.MaxGapBytes;
        _read = options.Read ?? RandomAccess.Read;
        _fileLength = RandomAccess.GetLength(handle);
        _staging = new byte*[ioThreads];
        _bundleWork = new BundleWork(this);
        _contiguousWork = new ContiguousWork(this);
        _team = new ThreadTeam(ioThreads);
        try
        {
            GrowStaging(_maxChunk);
            if (direct && options.Read is null && options.UseKernelAio && KernelAio.TryCreate((int)handle.DangerousGetHandle(), MaxAioSlots) is { } aio)
            {
                _aio = aio;
                _completions = (KernelAio.Completion*)NativeMemory.Alloc(MaxAioSlots, (nuint)sizeof(KernelAio.Completion));
                _pieceSlots = Math.Min(MaxAioSlots, ioThreads * (_maxChunk / Alignment));
                _pieces = (nint*)account.Allocate(PiecesBytes, "the flash reader's read lists");
                _discardBytes = _maxGap + Alignment;
                _discard = (byte*)account.Allocate(_discardBytes, "the flash reader's gap buffer", Alignment);
                _reaper = new Thread(Reap) { IsBackground = true, Name = "aotflash-aio" };
                _reaper.Start();
            }
        }
        catch { Dispose(); throw; }
    }

    private long PiecesBytes => (long)_pieceSlots * MaxPieces * 2 * sizeof(long);

    /// <summary>What native AIO holds beyond the staging buffers: the read lists and the gap buffer (0 without AIO).</summary>
    internal long KernelAioBytes => _aio is null ? 0 : PiecesBytes + _discardBytes;

    /// <summary>Bundle ranges read straight into their destinations (vectored), no staging copy.</summary>
    public long VectoredReads => Interlocked.Read(ref _vectoredReads);

    /// <summary>True when bundle reads go through Linux native AIO rather than the I/O threads' pread.</summary>
    public bool UsesKernelAio => _aio is not null && !_aioBroken;

    /// <summary>True when reads bypass the page cache (O_DIRECT), so their timings are the device's.</summary>
    public bool Direct { get; }
    /// <summary>Where the model file starts in <see cref="Path"/> (non-zero for a payload inside an executable).</summary>
    public long BaseOffset { get; }
    public string Path => _path;
    public int IoThreads => _staging.Length;
    /// <summary>Bytes the device delivered, alignment padding and coalesced gaps included.</summary>
    public long BytesRead => Interlocked.Read(ref _bytesRead);
    /// <summary><c>pread</c> calls issued.</summary>
    public long Requests => Interlocked.Read(ref _requests);

    /// <summary>
    /// Opens <paramref name="path"/> for reading, with O_DIRECT where the file system honours it.
    /// <paramref name="baseOffset"/> (a multiple of 4096) is where the model file starts; every offset passed later is
    /// relative to it. <paramref name="warn"/> hears once why reads are buffered, if they are.
    /// </summary>
    public static FlashReader Open(string path, long baseOffset, int ioThreads, DramAccount account, Action<string>? warn, ReaderOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(path);
        ArgumentNullException.ThrowIfNull(account);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(ioThreads);
        options ??= new ReaderOptions();
        if (options.MaxChunkBytes < Alignment || options.MaxChunkBytes % Alignment != 0)
            throw new ArgumentOutOfRangeException(nameof(options), options.MaxChunkBytes, $"MaxChunkBytes must be a positive multiple of {Alignment}");
        if (options.ContiguousChunkBytes < Alignment || options.ContiguousChunkBytes % Alignment != 0)
            throw new ArgumentOutOfRangeException(nameof(options), options.ContiguousChunkBytes, $"ContiguousChunkBytes must be a positive multiple of {Alignment}");
        if (options.MaxGapBytes < 0)
            throw new ArgumentOutOfRangeException(nameof(options), options.MaxGapBytes, "MaxGapBytes must not be negative");
        if (baseOffset < 0 || baseOffset % Alignment != 0)
            throw new ArgumentOutOfRangeException(nameof(baseOffset), baseOffset, $"the model file must start at a multiple of {Alignment} bytes");

        string? refused = null;
        SafeFileHandle? handle = null;
        try
        {
            if (options.UseDirectIO)
            {
                if (Libc.ODirect is int oDirect)
                {
                    handle = OpenHandle(path, oDirect, out int errno);
                    if (handle is null)
                    {
                        if (errno != Libc.EInval) throw OpenError(path, errno);
                        refused = "the file system rejects O_DIRECT";
                    }
                    else if (IsInMemory(handle)) refused = "the file lives in memory (tmpfs)";
                    else if (!ProbeDirectRead(handle, baseOffset, account)) refused = "its first read failed with EINVAL";
                    if (refused is not null)
                    {
                        handle?.Dispose();
                        handle = null;
                    }
                }
                else refused = $"O_DIRECT is unknown on {RuntimeInformation.ProcessArchitecture}";
            }
            if (handle is null)
                handle = OpenHandle(path, 0, out int errno) ?? throw OpenError(path, errno);
            var reader = new FlashReader(path, handle, baseOffset, direct: options.UseDirectIO && refused is null, ioThreads, account, options);
            if (refused is not null)
                warn?.Invoke($"O_DIRECT refused for {path} ({refused}): using buffered reads (timings include the page cache)");
            return reader;
        }
        catch
        {
            handle?.Dispose();
            throw;
        }
    }

    /// <summary>open(2) read-only with <paramref name="extraFlags"/>; null and the errno when it fails.</summary>
    private static SafeFileHandle? OpenHandle(string path, int extraFlags, out int errno)
    {
        int fd;
        errno = 0;
        do fd = Libc.open(path, Libc.ORdOnly | Libc.OCloExec | extraFlags);
        while (fd < 0 && (errno = Marshal.GetLastPInvokeError()) == Libc.EIntr);
        return fd < 0 ? null : new SafeFileHandle(fd, ownsHandle: true);
    }

    private static IOException OpenError(string path, int errno)
    {
        string why = Marshal.GetPInvokeErrorMessage(errno);
        return errno == 2 ? new FileNotFoundException($"{path}: cannot open ({why})", path) : new IOException($"{path}: cannot open ({why}, errno {errno})");
    }

    private static bool IsInMemory(SafeFileHandle handle)
    {
        byte* statfs = stackalloc byte[256];
        if (Libc.fstatfs((int)handle.DangerousGetHandle(), statfs) != 0) return false;
        uint type = (uint)*(long*)statfs;
        return type == (uint)Libc.TmpfsMagic || type == (uint)Libc.RamfsMagic;
    }

    /// <summary>One aligned block read at the model's start: false when it fails with EINVAL (O_DIRECT refused late).</summary>
    private static bool ProbeDirectRead(SafeFileHandle handle, long baseOffset, DramAccount account)
    {
        byte* block = (byte*)account.Allocate(Alignment, "the O_DIRECT probe block", Alignment);
        try
        {
            RandomAccess.Read(handle, new Span<byte>(block, Alignment), baseOffset);
            return true;
        }
        catch (IOException e) when (e.HResult == Libc.EInval)
        {
            return false;
        }
        finally
        {
            account.Free(block, Alignment);
        }
    }

    /// <summary>
    /// Reads <paramref name="bundleBytes"/> bytes of each bundle in <paramref name="bundles"/> (ascending) into
    /// <paramref name="destinations"/> (one pointer per bundle); bundle <c>i</c> starts at
    /// <c>firstBundleOffset + i * bundleStride</c>, relative to <see cref="BaseOffset"/>. Destinations need no alignment
    /// (block-aligned ones, for bundles of whole blocks, are read into without a copy). With <paramref name="checksums"/>
    /// (indexed by bundle), each bundle's CRC-32C is checked as it arrives, by the thread that takes native AIO's
    /// completions or on the I/O threads, which the calling thread then joins.
    /// </summary>
    /// <exception cref="FlashChecksumException">A bundle does not match its checksum (the destinations then hold
    /// unchecked bytes).</exception>
    public void ReadBundles(long firstBundleOffset, long bundleStride, int bundleBytes, ReadOnlySpan<int> bundles, ReadOnlySpan<nint> destinations,
                            uint* checksums = null)
    {
        if (destinations.Length != bundles.Length)
            throw new ArgumentException($"{destinations.Length} destinations for {bundles.Length} bundles", nameof(destinations));
        fixed (int* b = bundles)
        fixed (nint* d = destinations)
        {
            if (!BeginReadBundles(firstBundleOffset, bundleStride, bundleBytes, b, d, bundles.Length, checksums)) return;
            try
            {
                if (IoThreads > 1 && !_inKernel) _bundleWork.Execute(0, IoThreads);
            }
            finally { EndRead(); }
        }
    }

    /// <summary>
    /// As <see cref="ReadBundles"/>, but returns once the reads are in flight (with the kernel, or with the I/O threads),
    /// so that the caller can compute meanwhile; <see cref="EndRead"/> waits for them and reports what failed.
    /// <paramref name="bundles"/>, <paramref name="destinations"/> and <paramref name="checksums"/> must stay valid until
    /// then. No other read may start before <see cref="EndRead"/>. Returns false (and nothing is in flight) when there is
    /// nothing to read. Without native AIO and with one I/O thread, the reads happen here, before it returns.
    /// </summary>
    public bool BeginReadBundles(long firstBundleOffset, long bundleStride, int bundleBytes, int* bundles, nint* destinations, int count,
                                 uint* checksums = null)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(firstBundleOffset);
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        if (count == 0) return false;
        Enter();
        var work = _bundleWork;
        try
        {
            long first = BaseOffset + firstBundleOffset;
            if (_rangeCapacity < ReadPlanner.MaxRanges(count)) GrowRanges(ReadPlanner.MaxRanges(count));
            var ranges = new Span<ReadRange>(_ranges, _rangeCapacity);
            int planned = ReadPlanner.Plan(first, bundleStride, bundleBytes, new ReadOnlySpan<int>(bundles, count), ranges, _maxChunk, _maxGap);
            int longest = ReadPlanner.LongestRange(ranges[..planned]);
            GrowStaging(longest);
            work.Set(planned, first, bundleStride, bundleBytes, bundles, destinations, checksums);
            _inKernel = UsesKernelAio;
            if (_inKernel)
            {
                // Slots are carved from the staging buffers, each as long as the longest range.
                _aioSlotBytes = (longest + Alignment - 1) & ~(Alignment - 1);
                _aioPerBuffer = _stagingBytes / _aioSlotBytes;
                StartKernelReads(work, planned, IoThreads * _aioPerBuffer);
            }
            else _team.Start(work);
            return true;
        }
        catch
        {
            work.Clear();
            Exit();
            throw;
        }
    }

    /// <summary>Waits for the reads <see cref="BeginReadBundles"/> started and throws the first failure among them
    /// (<see cref="FlashChecksumException"/> for a damaged bundle; the destinations then hold unchecked bytes).</summary>
    public void EndRead()
    {
        if (Volatile.Read(ref _busy) == 0) throw new InvalidOperationException("FlashReader.EndRead: no read in flight");
        var work = _bundleWork;
        try
        {
            if (_inKernel) _aioDone.Wait();
            else _team.Wait();
            LastReadTicks = work.Elapsed;
            work.ThrowIfFailed();
        }
        finally
        {
            work.Clear();
            Exit();
        }
    }

    /// <summary>Submits the first of a call's <paramref name="planned"/> reads, up to <paramref name="slots"/> of them;
    /// the reaper submits the rest as slots free. Throws nothing once a read is in flight: failures go to the work.</summary>
    private void StartKernelReads(Work work, int planned, int slots)
    {
        int initial = Math.Min(planned, Math.Min(_aio!.Capacity, slots));
        _aioWork = work;
        _aioPlanned = planned;
        _aioDone.Reset();
        Volatile.Write(ref _aioPending, planned);
        Volatile.Write(ref _aioNext, initial);
        for (int slot = 0; slot < initial; slot++) PrepareSlot(slot, slot);
        int taken = Math.Max(0, _aio.Submit(0, initial));
        Interlocked.Add(ref _requests, taken);
        // Ranges the kernel did not take (it ran short of resources) are read here, at once.
        for (int slot = taken; slot < initial; slot++) ReadHere(work, slot, slot);
    }

    private void PrepareSlot(int slot, int read)
    {
        var (offset, length, buffer) = _aioWork!.Request(read, slot);
        _vectored[slot] = length < 0;
        _aio!.Prepare(slot, (ulong)slot << 32 | (uint)read, (byte*)buffer, Math.Abs(length), offset, vectored: length < 0);
    }

    private byte* Slot(int slot) => _staging[slot / _aioPerBuffer] + (long)(slot % _aioPerBuffer) * _aioSlotBytes;

    /// <summary>Reads one of the call's reads with pread on this thread (its retries, short reads and messages as the
    /// I/O threads'), delivers it and counts it done.</summary>
    private void ReadHere(Work work, int slot, int read)
    {
        try { work.ReadNow(read, slot); }
        catch (Exception e) { work.Fail(e); }
        RangesDone(work, 1);
    }

    private void RangesDone(Work work, int count)
    {
        work.Finish();
        if (Interlocked.Add(ref _aioPending, -count) == 0) _aioDone.Set();
    }

    /// <summary>The reaper: takes completions, delivers each range's bundles (checked, copied) and refills its slot.</summary>
    private void Reap()
    {
        while (!_stopping)
        {
            int got = _aio!.Wait(_completions, MaxAioSlots, 20_000_000);
            if (got < 0)
            {
                // The context itself failed (a kernel that took the reads cannot report them): nothing in flight will
                // be reported, so the call ends with the error and later calls read with the I/O threads.
                var work = _aioWork!;
                work.Fail(new IOException($"{_path}: waiting for native AIO reads failed (errno {-got})"));
                _aioBroken = true;
                int rest = Volatile.Read(ref _aioPending);
                if (rest > 0) RangesDone(work, rest);
                return;
            }
            for (int i = 0; i < got; i++)
            {
                var done = _completions[i];
                int slot = (int)(done.Data >> 32), read = (int)(uint)done.Data;
                var work = _aioWork!;
                try
                {
                    // A failed or short read is read again with pread, which retries device errors and names them.
                    if (done.Result >= work.Needed(read))
                    {
                        Interlocked.Add(ref _bytesRead, done.Result);
                        work.Arrived(read, slot);
                    }
                    else work.ReadNow(read, slot);
                }
                catch (Exception e) { work.Fail(e); }
                SubmitNext(work, slot);
                RangesDone(work, 1);
            }
        }
    }

    /// <summary>Puts the next range not yet begun into <paramref name="slot"/>; after a failure, counts the ranges not
    /// begun as done instead.</summary>
    private void SubmitNext(Work work, int slot)
    {
        while (true)
        {
            if (work.HasFailed)
            {
                int rest = _aioPlanned - Math.Min(_aioPlanned, Interlocked.Exchange(ref _aioNext, _aioPlanned));
                if (rest > 0) RangesDone(work, rest);
                return;
            }
            int read = Interlocked.Increment(ref _aioNext) - 1;
            if (read >= _aioPlanned) return;
            PrepareSlot(slot, read);
            if (_aio!.Submit(slot, 1) == 1)
            {
                Interlocked.Increment(ref _requests);
                return;
            }
            ReadHere(work, slot, read);
        }
    }

    /// <summary>How long the last read call had reads in flight, in <see cref="System.Diagnostics.Stopwatch"/> ticks:
    /// from its start to the end of its last request (not to when the caller came back for it).</summary>
    public long LastReadTicks { get; private set; }

    /// <summary>
    /// Reads <paramref name="length"/> bytes at <paramref name="offset"/> (relative to <see cref="BaseOffset"/>) straight
    /// into <paramref name="destination"/>, in chunks of at most ContiguousChunkBytes spread over the I/O threads. Offset,
    /// length and destination must be multiples of 4096 (O_DIRECT's rule, kept in buffered mode too).
    /// </summary>
    public void ReadContiguous(long offset, long length, byte* destination)
    {
        if (offset < 0 || offset % Alignment != 0) throw new ArgumentOutOfRangeException(nameof(offset), offset, $"must be a non-negative multiple of {Alignment}");
        if (length < 0 || length % Alignment != 0) throw new ArgumentOutOfRangeException(nameof(length), length, $"must be a non-negative multiple of {Alignment}");
        if (((nint)destination & (Alignment - 1)) != 0) throw new ArgumentException($"destination must be {Alignment}-byte aligned", nameof(destination));
        if (length == 0) return;
        Enter();
        try
        {
            var work = _contiguousWork;
            long chunks = (length + _contiguousChunk - 1) / _contiguousChunk;
            work.Set(BaseOffset + offset, length, destination);
            try
            {
                _inKernel = UsesKernelAio && chunks > 1 && chunks <= int.MaxValue;
                if (_inKernel)
                {
                    // Straight into the destination, no staging, every chunk in flight at once (up to the context's
                    // slots): the device's queue stays full without the reaper refilling it. A streamed 1.1B prompt
                    // (38 tokens, 8 MiB pieces) read at 1345/784 ms with 64 in flight against 1420/910 with 16.
                    StartKernelReads(work, (int)chunks, _aio!.Capacity);
                    _aioDone.Wait();
                }
                else if (chunks == 1 || IoThreads == 1) work.Execute(0, 1);
                else _team.Run(work);
                LastReadTicks = work.Elapsed;
                work.ThrowIfFailed();
            }
            finally { work.Clear(); }
        }
        finally { Exit(); }
    }

    /// <summary>Reads [offset, offset + length) into <paramref name="buffer"/>; returns the bytes read, which fall
    /// short of <paramref name="length"/> only at the end of the file. Short reads are continued; a read that fails
    /// with a device error <see cref="MaxAttempts"/> times in a row is final. Throws unless at least
    /// <paramref name="needed"/> arrived.</summary>
    private int ReadAt(long offset, int length, byte* buffer, int needed)
    {
        int done = 0, failures = 0;
        while (done < length)
        {
            long at = offset + done;
            int want = length - done;
            if (Direct && (((nint)(buffer + done) | (nint)at | want) & (Alignment - 1)) != 0)
                throw new InvalidOperationException($"{_path}: misaligned O_DIRECT read of {want} bytes at offset {at} (a reader bug)");
            int n;
            try { n = _read(_handle, new Span<byte>(buffer + done, want), at); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or NotSupportedException)
            {
                // A device error can pass (a bus reset, a flaky card): the same read is tried again before it is final.
                if (e is IOException && ++failures < MaxAttempts) continue;
                throw new IOException($"{_path}: read of {want} bytes at offset {at} failed" +
                                      (failures > 1 ? $" {failures} times" : "") + $": {e.Message}", e);
            }
            Interlocked.Increment(ref _requests);
            failures = 0;
            if (n <= 0) break;
            Interlocked.Add(ref _bytesRead, n);
            done += n;
            if (Direct && (done & (Alignment - 1)) != 0)
            {
                // O_DIRECT reads start on a block: one that stopped inside a block before the end of the file is
                // continued from that block's start.
                if (offset + done >= _fileLength) break;
                done &= ~(Alignment - 1);
            }
        }
        if (done < needed)
            throw new IOException($"{_path}: unexpected end of file at offset {offset + done}: needed {needed} bytes from offset {offset}, got {done} (truncated model file?)");
        return done;
    }

    private void GrowStaging(int bytes)
    {
        if (bytes <= _stagingBytes) return;
        ReleaseStaging();
        _stagingBytes = bytes;
        try
        {
            for (int i = 0; i < _staging.Length; i++) _staging[i] = (byte*)_account.Allocate(bytes, "the flash reader's staging buffers", Alignment);
        }
        catch
        {
            ReleaseStaging();
            throw;
        }
    }

    private void ReleaseStaging()
    {
        for (int i = 0; i < _staging.Length; i++)
        {
            _account.Free(_staging[i], _stagingBytes);
            _staging[i] = null;
        }
        _stagingBytes = 0;
    }

    private void GrowRanges(int count)
    {
        int capacity = Math.Max(count, Math.Max(64, _rangeCapacity * 2));
        _account.Free(_ranges, (long)_rangeCapacity * sizeof(ReadRange));
        _ranges = null;
        _rangeCapacity = 0;
        _ranges = (ReadRange*)_account.Allocate((long)capacity * sizeof(ReadRange), "the flash reader's read plan");
        _rangeCapacity = capacity;
    }

    private void Enter()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (Interlocked.Exchange(ref _busy, 1) != 0) throw new InvalidOperationException("FlashReader serves one read call at a time");
    }

    private void Exit() => Volatile.Write(ref _busy, 0);

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _stopping = true;
        _reaper?.Join();
        _aio?.Dispose();
        NativeMemory.Free(_completions);
        _account.Free(_pieces, PiecesBytes);
        _pieces = null;
        _account.Free(_discard, _discardBytes);
        _discard = null;
        _aioDone.Dispose();
        _team?.Dispose();
        ReleaseStaging();
        _account.Free(_ranges, (long)_rangeCapacity * sizeof(ReadRange));
        _ranges = null;
        _rangeCapacity = 0;
        _handle.Dispose();
    }

    /// <summary>Failure handling shared by the two kinds of work: the first exception stops every member and is
    /// rethrown on the calling thread (an exception escaping a team member would end the process).</summary>
    private abstract class Work : ITeamWork
    {
        protected readonly FlashReader Reader;
        protected int Next;
        private int _failed;
        private Exception? _error;
        private long _started, _finished;

        protected Work(FlashReader reader) => Reader = reader;

        public bool HasFailed => Volatile.Read(ref _failed) != 0;

        /// <summary>Ticks from <see cref="Reset"/> to the last member's (or read's) end.</summary>
        public long Elapsed => Math.Max(0, Volatile.Read(ref _finished) - _started);

        public void Execute(int member, int members)
        {
            try { Run(member); }
            catch (Exception e) { Fail(e); }
            finally { Finish(); }
        }

        /// <summary>Keeps the first failure, for <see cref="ThrowIfFailed"/>, and stops the rest of the work.</summary>
        public void Fail(Exception e)
        {
            if (Interlocked.Exchange(ref _failed, 1) == 0) _error = e;
        }

        /// <summary>Marks now as the latest end of the work.</summary>
        public void Finish()
        {
            long now = System.Diagnostics.Stopwatch.GetTimestamp(), seen;
            while (now > (seen = Volatile.Read(ref _finished)) && Interlocked.CompareExchange(ref _finished, now, seen) != seen) { }
        }

        protected abstract void Run(int member);

        // The same work as reads handed to the kernel: read i's request (slot: a staging slot it may use; a negative
        // length -n: Buffer lists n pieces to read into), how many of its bytes must arrive, what to do with them when
        // they have, and reading it here instead.
        public abstract (long Offset, int Length, nint Buffer) Request(int i, int slot);
        public abstract long Needed(int i);
        public abstract void Arrived(int i, int slot);
        public abstract void ReadNow(int i, int slot);

        protected void Reset()
        {
            Next = 0;
            _failed = 0;
            _error = null;
            _started = _finished = System.Diagnostics.Stopwatch.GetTimestamp();
        }

        public void ThrowIfFailed()
        {
            if (_error is { } e) System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(e);
        }
    }

    private sealed class BundleWork(FlashReader reader) : Work(reader)
    {
        private int _count;
        private long _first;
        private long _stride;
        private int _bundleBytes;
        private int* _bundles;
        private nint* _destinations;
        private uint* _checksums;

        public void Set(int count, long first, long stride, int bundleBytes, int* bundles, nint* destinations, uint* checksums)
        {
            Reset();
            _count = count; _first = first; _stride = stride; _bundleBytes = bundleBytes;
            _bundles = bundles; _destinations = destinations; _checksums = checksums;
        }

        public void Clear()
        {
            _bundles = null;
            _destinations = null;
            _checksums = null;
        }

        protected override void Run(int member)
        {
            byte* staging = Reader._staging[member];
            while (!HasFailed)
            {
                int r = Interlocked.Increment(ref Next) - 1;
                if (r >= _count) return;
                ReadRange(r, staging);
            }
        }

        public override (long Offset, int Length, nint Buffer) Request(int r, int slot)
        {
            var range = Reader._ranges[r];
            nint* list = Reader._pieces + (long)slot * MaxPieces * 2;
            int pieces = slot < Reader._pieceSlots ? Pieces(r, list) : 0;
            return pieces > 0 ? (range.Offset, -pieces, (nint)list) : (range.Offset, range.Length, (nint)Reader.Slot(slot));
        }

        /// <summary>Lists range <paramref name="r"/> as pieces (address, length) for a vectored read straight into the
        /// destinations, gaps into the discard buffer; 0 where it cannot be: bundles that are not whole aligned blocks
        /// packed without padding, a destination off a block, or more pieces than a list holds.</summary>
        private int Pieces(int r, nint* list)
        {
            if (_bundleBytes % Alignment != 0 || _stride != _bundleBytes || _first % Alignment != 0) return 0;
            var range = Reader._ranges[r];
            long at = range.Offset;
            int n = 0;
            for (int k = range.FirstBundle; k < range.FirstBundle + range.BundleCount; k++)
            {
                long bundle = _first + _bundles[k] * _stride;
                if (((nint)_destinations[k] & (Alignment - 1)) != 0 || n + 2 > MaxPieces) return 0;
                if (bundle > at)
                {
                    if (bundle - at > Reader._discardBytes) return 0;
                    list[2 * n] = (nint)Reader._discard;
                    list[2 * n++ + 1] = (nint)(bundle - at);
                }
                list[2 * n] = _destinations[k];
                list[2 * n++ + 1] = _bundleBytes;
                at = bundle + _bundleBytes;
            }
            return at == range.Offset + range.Length ? n : 0;
        }

        public override void Arrived(int r, int slot)
        {
            if (!Reader._vectored[slot])
            {
                Deliver(r, Reader.Slot(slot));
                return;
            }
            Interlocked.Increment(ref Reader._vectoredReads);
            var range = Reader._ranges[r];
            for (int k = range.FirstBundle; k < range.FirstBundle + range.BundleCount; k++) Check(k, (byte*)_destinations[k]);
        }

        public override void ReadNow(int r, int slot) => ReadRange(r, Reader.Slot(slot));

        /// <summary>Bytes of range <paramref name="r"/> that its bundles need (the rest is alignment).</summary>
        public override long Needed(int r)
        {
            var range = Reader._ranges[r];
            return _first + _bundles[range.FirstBundle + range.BundleCount - 1] * _stride + _bundleBytes - range.Offset;
        }

        /// <summary>Reads range <paramref name="r"/> into <paramref name="staging"/> with pread and delivers it.</summary>
        public void ReadRange(int r, byte* staging)
        {
            var range = Reader._ranges[r];
            Reader.ReadAt(range.Offset, range.Length, staging, (int)Needed(r));
            Deliver(r, staging);
        }

        /// <summary>Checks (with checksums) and copies the bundles of range <paramref name="r"/>, read into
        /// <paramref name="staging"/>, to their destinations.</summary>
        public void Deliver(int r, byte* staging)
        {
            var range = Reader._ranges[r];
            for (int k = range.FirstBundle; k < range.FirstBundle + range.BundleCount; k++)
            {
                byte* bundle = staging + (_first + _bundles[k] * _stride - range.Offset);
                Check(k, bundle);
                Buffer.MemoryCopy(bundle, (void*)_destinations[k], _bundleBytes, _bundleBytes);
            }
        }

        /// <summary>With checksums, throws <see cref="FlashChecksumException"/> when list entry <paramref name="k"/>'s
        /// bytes do not match its bundle's.</summary>
        private void Check(int k, byte* bytes)
        {
            if (_checksums != null && Crc32C.Compute(bytes, _bundleBytes) != _checksums[_bundles[k]])
                throw new FlashChecksumException(_bundles[k]);
        }
    }

    private sealed class ContiguousWork(FlashReader reader) : Work(reader)
    {
        private long _offset;
        private long _length;
        private byte* _destination;

        public void Set(long offset, long length, byte* destination)
        {
            Reset();
            _offset = offset; _length = length; _destination = destination;
        }

        public void Clear() => _destination = null;

        protected override void Run(int member)
        {
            while (!HasFailed)
            {
                int i = Interlocked.Increment(ref Next) - 1;
                if ((long)i * Reader._contiguousChunk >= _length) return;
                ReadNow(i, 0);
            }
        }

        public override (long Offset, int Length, nint Buffer) Request(int i, int slot)
        {
            long at = (long)i * Reader._contiguousChunk;
            return (_offset + at, (int)Math.Min(Reader._contiguousChunk, _length - at), (nint)(_destination + at));
        }

        public override long Needed(int i) => Request(i, 0).Length;

        public override void Arrived(int i, int slot) { }

        public override void ReadNow(int i, int slot)
        {
            var (offset, length, buffer) = Request(i, slot);
            Reader.ReadAt(offset, length, (byte*)buffer, length);
        }
    }
}
