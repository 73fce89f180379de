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
/// another in address order need less: f32, f16 and q8 decode read a row at a time (SimdKernels.MatMul), which the
/// hardware follows on its own, except where a product does too much per byte for its loads to run far enough ahead:
/// there a row-at-a-time loop asks for the line <see cref="SingleStreamAhead"/> or <see cref="HalfStreamAhead"/> bytes
/// ahead (<see cref="Stream"/>).
/// A hint only: no fault, no effect on results. x86 only (.NET has no prefetch intrinsic for arm64).
/// </summary>
internal static unsafe class Prefetch
{
    private const int Line = 64;

    /// <summary>How far ahead (bytes) a loop that reads f32 rows one after another in address order asks for lines
    /// (<see cref="Stream"/>), or 0 for not at all. Intel Xeon (AVX-512, 2 cores), 110M f32 decode, alternating builds,
    /// medians of 5: 37.2 → 35.5 ms/token. On an AMD EPYC Zen 4 f32 rows already stream at the memory's speed (about
    /// 24 GB/s), and asking for them, into L2, took f32 decode from 18.0 to 25.2 ms/token (8 KiB ahead) or 26.4 (16 KiB;
    /// medians of 7): off there.</summary>
    public static int SingleStreamAhead { get; } = IsaSupport.Vendor == "GenuineIntel" ? 8 << 10 : 0;

    /// <summary>How far ahead (bytes) a loop over an f16 row of <paramref name="rowBytes"/> that reads its rows one after
    /// another in address order asks for lines (<see cref="Stream"/>), or 0 for not at all. An f16 product does twice the
    /// arithmetic per byte of an f32 one, so its loads reach less far ahead. Intel Xeon, where the halves are converted in
    /// software (6-7 GB/s of the 12-14 the machine streams): 220 MB of f16 rows 31-37 → 21 ms (4 or 16 KiB no better
    /// than 8 in C); 110M f16 decode, alternating builds, medians of 5: 36.6 → 24.7 ms/token at 1 thread, 18.7 → 14.8
    /// at 2; so 8 KiB on Intel's cores. On an AMD EPYC Zen 4 (ScaledHalves, no conversion) only short rows gain: a call
    /// over a row of 1.5 KiB ends in a horizontal sum and a return before its loads have run far, and 110M f16 decode
    /// (768-wide rows) went 12.88 → 10.67 ms/token at 1 thread and 8.53 → 7.70 at 2 (medians of 7; 16 KiB 11.25 against
    /// 12.55, 4 KiB no gain, into L1 14.9 against 12.6); the 1.1B shape's 4 KiB rows already stream at the memory's
    /// speed, and the hint took its dense decode at 1 thread from 94.5-98.3 to 97.0-105.4 ms/token. So there: 8 KiB for
    /// rows up to 2 KiB, none for longer ones.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int HalfStreamAhead(long rowBytes) => StreamIntoL1 || rowBytes <= 2 << 10 ? 8 << 10 : 0;

    // Where Stream asks for the lines: L1 on Intel's cores (measured above), L2 elsewhere (AMD's: into L1 the hint only
    // took load slots and miss buffers from the loads it ran ahead of).
    private static readonly bool StreamIntoL1 = IsaSupport.Vendor == "GenuineIntel";

    /// <summary>Asks for the line(s) <paramref name="ahead"/> bytes past <paramref name="at"/>, into L1 on Intel's cores
    /// and L2 on others: one for a step of a loop that reads <paramref name="stepBytes"/> (a constant where the kernel is
    /// compiled) up to a line, two for up to two. Nothing where <paramref name="ahead"/> is 0.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Stream(byte* at, int ahead, int stepBytes)
    {
        if (!Sse.IsSupported || ahead == 0) return;
        if (StreamIntoL1)
        {
            Sse.Prefetch0(at + ahead);
            if (stepBytes > Line) Sse.Prefetch0(at + ahead + Line);
        }
        else
        {
            Sse.Prefetch1(at + ahead);
            if (stepBytes > Line) Sse.Prefetch1(at + ahead + Line);
        }
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
