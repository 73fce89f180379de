namespace AotFlash.Flash;

/// <summary>One planned read: <see cref="Length"/> bytes at file offset <see cref="Offset"/> (both multiples of
/// <see cref="ReadPlanner.Alignment"/>), serving the bundles <c>bundles[FirstBundle .. FirstBundle + BundleCount)</c>
/// of the list it was planned from.</summary>
public readonly record struct ReadRange(long Offset, int Length, int FirstBundle, int BundleCount)
{
    public long End => Offset + Length;
}

/// <summary>
/// Turns a sorted set of neuron bundles into O_DIRECT reads: every range starts and ends on a 4 KiB boundary
/// (O_DIRECT's rule for offset and length), covers whole bundles, and neighbouring bundles share one range when the
/// bytes between them are few, because on flash a second request costs more than reading a little extra.
/// Pure and allocation-free: the caller owns both spans.
/// <para>
/// The defaults come from a probe of this machine's disk (a virtio block device, ext4, 1 GiB file of random bytes,
/// random O_DIRECT <c>pread</c>s, N threads each with one request in flight, 3 runs of 2 s; MB/s median [min-max],
/// the device swings by up to 2x between runs):
/// <code>
/// chunk    1 thread       8 threads          32 threads
///   4 KiB   53 [40-59]    171 [154-171]      246 [231-247]
///   8 KiB   68 [68-95]    289 [277-299]      360 [357-370]
///  16 KiB  148 [113-215]  342 [322-465]      550 [404-602]
///  32 KiB  202 [187-297]  544 [441-625]      519 [484-862]
///  64 KiB  285 [261-339]  406 [401-736]      458 [443-573]
/// 128 KiB  338 [322-424]  723 [623-876]      442 [435-938]
/// 256 KiB  376 [358-457]  863 [860-1439]     750 [445-898]
///   1 MiB  490 [415-665] 1143 [587-1470]     826 [744-949]
/// </code>
/// Small random reads are latency-bound (4 KiB: ~13k IOPS, ~75 µs each, from one thread); with 8 in flight the
/// device saturates at ~0.5-1.1 GB/s from 64-128 KiB on (a later 4 s rerun: 450-680 MB/s for every chunk from
/// 64 KiB to 1 MiB), as the paper found ("≥ 32 KiB chunks, many threads").
/// With 8 in flight a request costs ~20 µs of fixed overhead plus ~1 µs per KiB, so skipping a gap pays only when
/// the gap is longer than ~16-20 KiB: <see cref="DefaultMaxGapBytes"/> = 16 KiB. Ranges stop at
/// <see cref="DefaultMaxChunkBytes"/> = 128 KiB, on the plateau yet small enough that a dense run of bundles still
/// splits into enough ranges to keep every I/O thread busy (and each thread's staging buffer small).
/// </para>
/// </summary>
public static class ReadPlanner
{
    /// <summary>O_DIRECT granularity: buffer address, file offset and length are multiples of it.</summary>
    public const int Alignment = 4096;
    public const int DefaultMaxChunkBytes = 128 * 1024;
    /// <summary>Requests of a contiguous region (a streamed layer, all of them in flight at once): the probe's best
    /// size (16 in flight: 1538 MB/s at 256 KiB against 1310 at 64 KiB and 1430 at 1 MiB). The 1.1B's 38-token prompt
    /// at 65% of its file, streaming 1.5 GiB: 995-1336 ms at 128 KiB against 897-1445 (medians 1317 and 1050).</summary>
    public const int DefaultContiguousChunkBytes = 256 * 1024;
    public const int DefaultMaxGapBytes = 16 * 1024;

    /// <summary>The most ranges <see cref="Plan"/> can produce for <paramref name="bundleCount"/> bundles.</summary>
    public static int MaxRanges(int bundleCount) => bundleCount;

    /// <summary>
    /// Plans the reads of <paramref name="bundles"/> (ascending; bundle <c>i</c> is the <paramref name="bundleBytes"/>
    /// bytes at <c>firstBundleOffset + i * bundleStride</c>) into <paramref name="ranges"/>, which needs room for
    /// <see cref="MaxRanges"/> entries, and returns how many it wrote. Two bundles share a range when the aligned bytes
    /// between them are at most <paramref name="maxGapBytes"/> and the range stays within <paramref name="maxChunkBytes"/>;
    /// a bundle whose aligned span alone is longer than <paramref name="maxChunkBytes"/> gets a range of its own.
    /// Ranges come out in file order and each bundle of the list is served by exactly one of them. Where a split falls
    /// inside a 4 KiB block (a bundle straddling the chunk limit), both ranges hold that block and it is read twice;
    /// with <paramref name="bundleStride"/> ≥ <paramref name="bundleBytes"/> that one block is all they share.
    /// </summary>
    /// <param name="firstBundleOffset">File offset of bundle 0 (absolute, so that alignment is the file's).</param>
    public static int Plan(long firstBundleOffset, long bundleStride, int bundleBytes, ReadOnlySpan<int> bundles,
                           Span<ReadRange> ranges, int maxChunkBytes = DefaultMaxChunkBytes, int maxGapBytes = DefaultMaxGapBytes)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(firstBundleOffset);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(bundleStride);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(bundleBytes);
        // A single bundle's aligned span must fit an int (a Span): at most bundleBytes + 2 * (Alignment - 1).
        ArgumentOutOfRangeException.ThrowIfGreaterThan(bundleBytes, int.MaxValue - 2 * Alignment);
        if (maxChunkBytes < Alignment || maxChunkBytes % Alignment != 0)
            throw new ArgumentOutOfRangeException(nameof(maxChunkBytes), maxChunkBytes, $"must be a positive multiple of {Alignment}");
        ArgumentOutOfRangeException.ThrowIfNegative(maxGapBytes);
        if (ranges.Length < MaxRanges(bundles.Length))
            throw new ArgumentException($"room for {ranges.Length} ranges, {bundles.Length} bundles may need {MaxRanges(bundles.Length)}", nameof(ranges));

        int count = 0;
        long start = 0, end = 0;
        int first = 0;
        int previous = 0;
        for (int k = 0; k < bundles.Length; k++)
        {
            int b = bundles[k];
            if (b < previous)
                throw new ArgumentException(b < 0 ? $"negative bundle index (bundles[{k}] = {b})"
                    : $"bundle list is not sorted ascending (bundles[{k}] = {b} after {previous})", nameof(bundles));
            previous = b;
            long offset = checked(firstBundleOffset + b * bundleStride);
            long s = AlignDown(offset), e = AlignUp(checked(offset + bundleBytes));
            if (k > first)
            {
                // Bundles ascend, so s >= start; s < end means the two share an aligned block.
                long gap = s - end;
                long merged = Math.Max(e, end) - start;
                if (gap <= maxGapBytes && merged <= maxChunkBytes)
                {
                    end = Math.Max(e, end);
                    continue;
                }
                // Split. A block shared with the previous range is read twice rather than overlapping ranges.
                ranges[count++] = new ReadRange(start, (int)(end - start), first, k - first);
                first = k;
            }
            start = s;
            end = e;
        }
        if (bundles.Length > first)
            ranges[count++] = new ReadRange(start, (int)(end - start), first, bundles.Length - first);
        return count;
    }

    /// <summary>The longest range of a plan: the staging buffer its reads need.</summary>
    public static int LongestRange(ReadOnlySpan<ReadRange> ranges)
    {
        int longest = 0;
        foreach (var r in ranges) longest = Math.Max(longest, r.Length);
        return longest;
    }

    public static long AlignDown(long value) => value & ~(long)(Alignment - 1);
    public static long AlignUp(long value) => (value + Alignment - 1) & ~(long)(Alignment - 1);
}
