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
/// hardware follows best.
/// A hint only: no fault, no effect on results. x86 only (.NET has no prefetch intrinsic for arm64).
/// </summary>
internal static unsafe class Prefetch
{
    private const int Line = 64;

    /// <summary>The first <paramref name="bytes"/> of <paramref name="count"/> rows <paramref name="stride"/> bytes apart
    /// from <paramref name="first"/>, into L2.</summary>
    public static void Rows(byte* first, long stride, int count, long bytes)
    {
        if (!Sse.IsSupported) return;
        for (int k = 0; k < count; k++)
            for (long o = 0; o < bytes; o += Line) Sse.Prefetch1(first + k * stride + o);
    }
}
