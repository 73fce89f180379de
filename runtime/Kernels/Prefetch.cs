using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics.X86;

namespace AotFlash.Kernels;

/// <summary>
/// Asks the cache for the weights a kernel reads next. A matrix-vector product reads four rows at a time, each a
/// stream of its own that starts cold and is short (a 768-wide f16 row is 24 lines), so the hardware prefetchers stay
/// behind and each tile waits on memory. For f32 and f16 rows <see cref="FourRows"/> asks for the next tile's rows line
/// by line while the current tile is read at the same offset: one tile ahead, spread over the loop (a burst of whole
/// rows at the start of a tile cost them 10-15%). Measured on 110M decode, alternating builds, Intel Xeon: f16 0.71x
/// the time at 1 thread and 0.65x at 2 with AVX-512, 0.82x with AVX2; f32 0.96x. q8 and q4 rows, shorter and computed
/// more slowly, do better with <see cref="Rows"/>, the next four rows whole at the start of a tile (q8 decode 23 → 17.5
/// ms per token; spread out as f16 is, q4 was 8-13% slower), which also fetches the next down columns of a per-neuron
/// sum. Rows fetches into L2, not L1: a whole tile's lines at once filled L1's miss buffers and stalled the loads of the
/// tile being computed (110M decode at 1 thread, alternating builds: q8 14.1 → 13.4 ms/token, q4 9.6 → 9.1; 2 threads
/// unchanged).
/// A hint only: no fault, no effect on results. x86 only (.NET has no prefetch intrinsic for arm64).
/// </summary>
internal static unsafe class Prefetch
{
    private const int Line = 64;

    /// <summary>The line at <paramref name="offset"/> bytes into each of the four rows <paramref name="stride"/> bytes apart
    /// from <paramref name="next"/> (nothing when it is null: no tile follows), where the caller, stepping through its own rows
    /// <paramref name="step"/> bytes at a time, has just reached a new line: once per line, whatever the vector width.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void FourRows(void* next, long stride, long offset, int step)
    {
        if (!Sse.IsSupported || next == null || (offset & (Line - 1)) >= step) return;
        byte* p = (byte*)next + offset;
        Sse.Prefetch0(p);
        Sse.Prefetch0(p + stride);
        Sse.Prefetch0(p + 2 * stride);
        Sse.Prefetch0(p + 3 * stride);
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
