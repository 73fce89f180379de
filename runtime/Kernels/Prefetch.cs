using System.Runtime.Intrinsics.X86;

namespace AotFlash.Kernels;

/// <summary>
/// Asks the cache for the quantised rows a kernel reads next. A q8 or q4 row is short and computed slowly enough that the
/// hardware prefetchers do not run ahead of it, so without this each new row starts with a wait on memory (110M, 1
/// thread: q8 decode 23 → 17.5 ms per token; the next down column of a per-neuron sum, q4 13.1 → 12.5). f32 and f16
/// matrix rows stream well on their own: the same hint there cost 10-15%, so they do without. A hint only: no fault, no
/// effect on results. x86 only (.NET has no prefetch intrinsic for arm64).
/// </summary>
internal static unsafe class Prefetch
{
    private const int Line = 64;

    /// <summary>The first <paramref name="bytes"/> of <paramref name="count"/> rows <paramref name="stride"/> bytes apart
    /// from <paramref name="first"/>, into every cache level.</summary>
    public static void Rows(byte* first, long stride, int count, long bytes)
    {
        if (!Sse.IsSupported) return;
        for (int k = 0; k < count; k++)
            for (long o = 0; o < bytes; o += Line) Sse.Prefetch0(first + k * stride + o);
    }
}
