using System.Globalization;
using System.Runtime.InteropServices;

namespace AotFlash.Flash;

/// <summary>
/// Every byte the engine holds (mapped weights, predictors, neuron caches, KV cache, scratch and I/O buffers) is
/// charged here, against an optional hard limit (the DRAM budget), so <c>peak_dram_bytes</c> is this accounting's
/// measured peak rather than a formula, and going over the budget is an error instead of a surprise.
/// </summary>
public sealed unsafe class DramAccount(long limit = long.MaxValue)
{
    private long _current;
    private long _peak;

    public long Limit { get; } = limit;
    public long Current => Interlocked.Read(ref _current);
    public long Peak => Interlocked.Read(ref _peak);
    public long Available => Limit - Current;

    /// <summary>Zeroed native memory of <paramref name="bytes"/> bytes, aligned to <paramref name="alignment"/> (64, or
    /// 4096 for O_DIRECT), resident when this returns (unless <paramref name="populate"/> is false). From
    /// <see cref="LargeBytes"/> on it is an anonymous mapping of its own on 2 MiB pages (zero as the kernel hands it
    /// out, made resident by <see cref="Populate"/>) unless <paramref name="hugePages"/> is false. Clearing the
    /// allocator's memory instead faults it in a page at a time: on the benchmark machines (virtual machines, where a
    /// page fault is a trap to the host) that was three quarters of a 110M model's start → first token, mostly its 75 MiB
    /// KV cache (memset and page faults 75% of the samples of `run -n 1`). 110M q4, alternating builds, medians of 7:
    /// start → first token 283 → 66-140 ms; a 128-token prompt and decode as fast as before on 2 MiB pages, while on
    /// 4 KiB pages populated in one call the host still faulted each page in at first use (prompt 171 → 180 ms, decode
    /// 4.92 → 5.02 ms/token).</summary>
    /// <remarks>Neuron caches are the allocator's memory, cleared here (<paramref name="hugePages"/> false), although
    /// single bundles are read into them: on 2 MiB pages, flash decode of the 1.1B at half its file ran 9% faster, but on
    /// those virtual machines a fresh 2 MiB page is often memory the host has taken back (free page reporting), slow to
    /// fault in: the process took 3 s longer.</remarks>
    /// <param name="populate">False for memory sized for the most it may hold that often holds far less (a block's
    /// rows, sized for the largest block): from <see cref="LazyBytes"/> on it is then a mapping on 2 MiB pages, charged
    /// whole, whose pages are faulted in where first used: a short prompt pays only for the pages it touches, and a
    /// long one one fault per 2 MiB. Cleared allocator memory faulted in every 4 KiB page of a 110M model's 1.5 MiB rows
    /// (blocks of 512) at load: memset 8.9% of the samples of `run -n 1` (0.5% so).</param>
    public void* Allocate(long bytes, string what, int alignment = 64, bool hugePages = true, bool populate = true)
    {
        bool lazy = !populate && hugePages && bytes >= LazyBytes;
        if (!lazy && (bytes < LargeBytes || !hugePages))
        {
            Charge(bytes, what);
            return AllocatorMemory(bytes, alignment);
        }
        long length = Layout.AlignUp(bytes, lazy ? LargeBytes : Environment.SystemPageSize);
        long charged = lazy ? length : bytes;
        Charge(charged, what);
        try
        {
            byte* mapped = Map(length);
            Libc.madvise(mapped, (nuint)length, Libc.MadvHugePage);
            if (!lazy) Populate(mapped, length);
            lock (_mapped) _mapped.Add((nint)mapped, (length, charged));
            return mapped;
        }
        catch
        {
            Release(charged);
            throw;
        }
    }

    /// <summary>
    /// A buffer that large O_DIRECT reads land in (a streamed layer's pieces, the probe's): <see cref="Allocate"/>'s,
    /// aligned for O_DIRECT, on 2 MiB pages from <see cref="LargeBytes"/> on. A read reaches the device as one
    /// scatter-gather segment per physically separate page: on the virtio disk of the benchmark machines, 256 KiB reads
    /// into 4 KiB pages ran at 0.95-1.45 GB/s and the same reads into 2 MiB pages at 2.0-2.5 (a streamed 1.1B prompt:
    /// 800 or 1600 MB/s from run to run, against 1450-1600 every time).
    /// </summary>
    public void* AllocateForReads(long bytes, string what) => Allocate(bytes, what, ReadPlanner.Alignment);

    /// <summary>Buffers for reads from this size on lie on 2 MiB pages.</summary>
    public const long LargeBytes = 2 << 20;

    /// <summary>Memory that is not populated (<see cref="Allocate"/>) is a mapping of its own on whole 2 MiB pages from
    /// this size on, where rounding up adds less than the memory itself (below it, a tiny budget's rows would be
    /// charged many times their size).</summary>
    private const long LazyBytes = 1 << 20;

    private readonly Dictionary<nint, (long Length, long Charged)> _mapped = [];

    private static void* AllocatorMemory(long bytes, int alignment)
    {
        void* p = NativeMemory.AlignedAlloc((nuint)Math.Max(bytes, 1), (nuint)alignment);
        NativeMemory.Clear(p, (nuint)bytes);
        return p;
    }

    public void Free(void* p, long bytes)
    {
        if (p == null) return;
        bool mapped;
        (long Length, long Charged) mapping;
        lock (_mapped) mapped = _mapped.Remove((nint)p, out mapping);
        if (mapped)
        {
            Libc.munmap(p, (nuint)mapping.Length);
            Release(mapping.Charged);
            return;
        }
        NativeMemory.AlignedFree(p);
        Release(bytes);
    }

    /// <summary>Makes a fresh mapping of <paramref name="length"/> bytes resident: the kernel faults its pages in with
    /// one call (MADV_POPULATE_WRITE, Linux 5.14), not a write per page from here.</summary>
    private static void Populate(byte* mapping, long length)
    {
        if (Libc.madvise(mapping, (nuint)length, Libc.MadvPopulateWrite) == 0) return;
        for (long at = 0; at < length; at += Environment.SystemPageSize) mapping[at] = 0;
    }

    /// <summary>A fresh anonymous mapping of <paramref name="length"/> bytes, a multiple of the page size (reads as
    /// zeros), on a 2 MiB boundary (a larger one, trimmed).</summary>
    private static byte* Map(long length)
    {
        long reserved = length + LargeBytes;
        byte* map = (byte*)Libc.mmap(null, (nuint)reserved, Libc.ProtRead | Libc.ProtWrite, Libc.MapPrivate | Libc.MapAnonymous, -1, 0);
        if (map == Libc.MapFailed) throw new OutOfMemoryException($"mapping {Format(length)} failed (errno {Marshal.GetLastPInvokeError()})");
        byte* start = (byte*)Layout.AlignUp((long)map, LargeBytes);
        if (start > map) Libc.munmap(map, (nuint)(start - map));
        long tail = map + reserved - (start + length);
        if (tail > 0) Libc.munmap(start + length, (nuint)tail);
        return start;
    }

    /// <summary>Counts <paramref name="bytes"/> held by other means (a mapping); fails when the budget cannot take them.</summary>
    public void Charge(long bytes, string what)
    {
        long now = Interlocked.Add(ref _current, bytes);
        if (now > Limit)
        {
            Interlocked.Add(ref _current, -bytes);
            throw new BadInputException($"the DRAM budget of {Format(Limit)} is too small: {what} needs {Format(bytes)} more " +
                                        $"({Format(now - Limit)} missing, {Format(now - bytes)} already in use)");
        }
        long peak;
        while (now > (peak = Interlocked.Read(ref _peak)) && Interlocked.CompareExchange(ref _peak, now, peak) != peak) { }
    }

    public void Release(long bytes) => Interlocked.Add(ref _current, -bytes);

    public static string Format(long bytes) => bytes switch
    {
        >= 1L << 30 => (bytes / (double)(1L << 30)).ToString("F2", CultureInfo.InvariantCulture) + " GiB",
        >= 1L << 20 => (bytes / (double)(1L << 20)).ToString("F2", CultureInfo.InvariantCulture) + " MiB",
        >= 1L << 10 => (bytes / 1024.0).ToString("F1", CultureInfo.InvariantCulture) + " KiB",
        _ => bytes.ToString(CultureInfo.InvariantCulture) + " B",
    };

    /// <summary>A budget of the command line or the spec (<see cref="DramBudget"/>) in bytes for a model file of
    /// <paramref name="modelBytes"/>; a percentage may exceed 100 (up to 1000), so a tiny model can be given room.</summary>
    public static long ParseBudget(string text, long modelBytes) => DramBudget.TryParse(text, maxPercent: 1000, out var budget)
        ? budget.Resolve(modelBytes)
        : throw new BadInputException($"bad DRAM budget '{text}': use {DramBudget.Syntax}");
}
