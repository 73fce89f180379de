using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics.X86;

namespace AotFlash.Kernels;

/// <summary>
/// Asks the cache for the weights a kernel reads next, where it reads several rows side by side (q4 decode's four-row
/// tiles, the down columns a per-neuron sum adds four at a time) or rows anywhere (a flash cache's selected bundles): each
/// such row is a stream of its own that starts cold and is short, so the hardware prefetchers stay behind. Rows fetches
/// four rows whole at the start of a tile (MatVecQ4: the tile after next, with the rest of each bundle), into L2, not
/// L1: a whole tile's lines at once filled L1's miss buffers and stalled the loads of the tile being computed (110M
/// decode at 1 thread, alternating builds, Intel Xeon: q8 14.1 → 13.4 ms/token, q4 9.6 → 9.1). Rows read one after
/// another in address order need no hint: f32, f16 and q8 decode read a row at a time (SimdKernels.MatMul), which the
/// hardware follows best on AMD's cores; on Intel's, such a row-at-a-time loop also asks for the line
/// <see cref="StreamAhead"/> bytes ahead (<see cref="Stream"/>).
/// A hint only: no fault, no effect on results. x86 only (.NET has no prefetch intrinsic for arm64).
/// </summary>
internal static unsafe class Prefetch
{
    private const int Line = 64;

    /// <summary>How far ahead (bytes) a loop that reads rows one after another in address order asks for lines into L1,
    /// or 0 for not at all. Intel Xeon (AVX-512, 2 cores): its prefetchers left an f16 row-at-a-time product, which
    /// converts halves in software and so reads slowly per instruction, at 6-7 GB/s of the 12-14 the machine streams;
    /// asking for every line 8 KiB ahead, 220 MB of f16 rows: 31-37 → 21 ms (and 4 or 16 KiB no better than 8 in C).
    /// 110M decode, alternating builds, medians of 5: f16 36.6 → 24.7 ms/token at 1 thread, 18.7 → 14.8 at 2; f32
    /// 37.2 → 35.5. Off on AMD's cores, where the f16 products convert nothing (ScaledHalves) and the hint only takes
    /// load slots: on an AMD EPYC Zen 4 the same 8 KiB (with q8's DotQ8 asking too) took 110M decode at 1 thread from
    /// 12.6 to 14.9 ms/token in f16 and from 8.8 to 9.4 in q8 (medians of 5 and 7, alternating builds).</summary>
    public static int StreamAhead { get; } = IsaSupport.Vendor == "GenuineIntel" ? 8 << 10 : 0;

    /// <summary>Asks for the line(s) <paramref name="ahead"/> bytes past <paramref name="at"/>, into L1: one for a step
    /// of a loop that reads <paramref name="stepBytes"/> (a constant where the kernel is compiled) up to a line, two for
    /// up to two. Nothing where <paramref name="ahead"/> is 0.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Stream(byte* at, int ahead, int stepBytes)
    {
        if (!Sse.IsSupported || ahead == 0) return;
        Sse.Prefetch0(at + ahead);
        if (stepBytes > Line) Sse.Prefetch0(at + ahead + Line);
    }

    /// <summary>The first <paramref name="bytes"/> of <paramref name="count"/> rows <paramref name="stride"/> bytes apart
    /// from <paramref name="first"/>, into L2.</summary>
    public static void Rows(byte* first, long stride, int count, long bytes)
    {
        if (!Sse.IsSupported) return;
        for (int k = 0; k < count; k++)
            for (long o = 0; o < bytes; o += Line) Sse.Prefetch1(first + k * stride + o);
    }
}
