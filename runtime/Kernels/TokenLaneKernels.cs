using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace AotFlash.Kernels;

/// <summary>
/// q4 rows times a block of tokens with a token in each lane of a vector (<see cref="ITokenLanes{TI}"/>): four of a
/// row's quants, one int, are broadcast to every lane and meet four bytes of each token's activations, which a copy of
/// the block's activations holds interleaved [group][four bytes][token]. Each group then takes one int-to-float
/// conversion and one multiply-add for Count tokens of a row, where a row's group in its own lanes takes them per
/// token; no sums across lanes are left at the end. A vector of AVX-512 holds sixteen tokens, whose quads it multiplies
/// 64 bytes at a time: twice AVX-VNNI's bytes per multiply (.NET has no 512-bit VNNI).
/// </summary>
[SkipLocalsInit] // every stackalloc here is scratch written before it is read
internal static unsafe class TokenLaneKernels<TF, TI, S>
    where TF : struct
    where TI : struct
    where S : struct, ISimd<TF, TI>, ITokenLanes<TI>
{
    // Y[t, r] = W[r, :] · X[t, :] for tokens a multiple of Count and rows a multiple of four, W q4 rows at w + r·rowStride,
    // X prepared rows xStride bytes apart. Every (row, token) is summed as QuantKernels.DotQ4 sums it: one chain of
    // fused multiply-adds over the groups in order, each the weight scale times the activation scale times the group's
    // exact integer sum.
    public static void MatMulQ4(float* y, long yStride, byte* w, long rowStride, byte* xq, long xStride, int tokens, int rows, int cols)
    {
        if (tokens == 0 || rows == 0) return;
        int c = S.Count, groups = cols / Quantization.Group;
        // Tokens interleaved a slice at a time, at most about 64 KiB of activations (and one slice of Count tokens).
        int slice = Math.Max(c, Math.Min(tokens, InterleavedBytes / Math.Max(1, cols)) / c * c);
        long quants = 2L * groups;
        byte* interleaved = stackalloc byte[slice * cols];
        float* xScales = stackalloc float[slice * groups]; // [lane group][group][token]
        int* biases = stackalloc int[slice * groups]; // -8·Σx, as xScales
        float* scales = stackalloc float[4 * groups]; // [row, group] of the four rows
        byte* unpacked = stackalloc byte[4 * cols]; // [row, cols] of the four rows
        float* results = stackalloc float[4 * c]; // [token][row] of a tile
        for (int t0 = 0; t0 < tokens; t0 += slice)
        {
            int count = Math.Min(slice, tokens - t0);
            Interleave(interleaved, xScales, biases, xq + t0 * xStride, xStride, count, groups);
            for (int r = 0; r < rows; r += 4)
            {
                byte* w0 = w + r * rowStride;
                SimdKernels<TF, TI, S>.QuantScales(scales, w0, rowStride, 4, null, groups);
                for (int k = 0; k < 4; k++) UnpackQ4(unpacked + k * cols, w0 + k * rowStride + quants, groups);
                for (int t = 0; t < count; t += c)
                {
                    TF acc0 = S.Zero, acc1 = S.Zero, acc2 = S.Zero, acc3 = S.Zero;
                    long lane = (long)(t / c) * groups;
                    for (int g = 0; g < groups; g++)
                    {
                        long at = (lane + g) * c;
                        TI d0 = S.Splat(0), d1 = d0, d2 = d0, d3 = d0;
                        sbyte* xg = (sbyte*)interleaved + at * Quantization.Group;
                        byte* qg = unpacked + g * Quantization.Group;
                        // The group's eight quads, unrolled (the JIT does not unroll loops).
                        Quads(ref d0, ref d1, ref d2, ref d3, qg, cols, xg);
                        Quads(ref d0, ref d1, ref d2, ref d3, qg + 4, cols, xg + 4 * c);
                        Quads(ref d0, ref d1, ref d2, ref d3, qg + 8, cols, xg + 8 * c);
                        Quads(ref d0, ref d1, ref d2, ref d3, qg + 12, cols, xg + 12 * c);
                        Quads(ref d0, ref d1, ref d2, ref d3, qg + 16, cols, xg + 16 * c);
                        Quads(ref d0, ref d1, ref d2, ref d3, qg + 20, cols, xg + 20 * c);
                        Quads(ref d0, ref d1, ref d2, ref d3, qg + 24, cols, xg + 24 * c);
                        Quads(ref d0, ref d1, ref d2, ref d3, qg + 28, cols, xg + 28 * c);
                        TI bias = S.Load(biases + at);
                        d0 = S.AddQuadSums(bias, d0);
                        d1 = S.AddQuadSums(bias, d1);
                        d2 = S.AddQuadSums(bias, d2);
                        d3 = S.AddQuadSums(bias, d3);
                        TF xs = S.Load(xScales + at);
                        acc0 = S.FusedMulAdd(S.Mul(S.Splat(scales[g]), xs), S.ToFloat(d0), acc0);
                        acc1 = S.FusedMulAdd(S.Mul(S.Splat(scales[groups + g]), xs), S.ToFloat(d1), acc1);
                        acc2 = S.FusedMulAdd(S.Mul(S.Splat(scales[2 * groups + g]), xs), S.ToFloat(d2), acc2);
                        acc3 = S.FusedMulAdd(S.Mul(S.Splat(scales[3 * groups + g]), xs), S.ToFloat(d3), acc3);
                    }
                    // Each token's four rows as one 128-bit store, not a float at a time (64 stores a tile).
                    S.StoreTransposed4(results, acc0, acc1, acc2, acc3);
                    float* yt = y + (t0 + t) * yStride + r;
                    for (int k = 0; k < c; k++) Vector128.Load(results + 4 * k).Store(yt + k * yStride);
                }
            }
        }
    }

    const int InterleavedBytes = 64 * 1024;

    // d_k += the quad (four quants) of row k at q + k·cols, broadcast, times the tokens' quads x (one per lane), as
    // AccumulateQuads' partial sums
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void Quads(ref TI d0, ref TI d1, ref TI d2, ref TI d3, byte* q, int cols, sbyte* x)
    {
        d0 = S.AccumulateQuads(d0, S.Splat(*(int*)q), x);
        d1 = S.AccumulateQuads(d1, S.Splat(*(int*)(q + cols)), x);
        d2 = S.AccumulateQuads(d2, S.Splat(*(int*)(q + 2 * cols)), x);
        d3 = S.AccumulateQuads(d3, S.Splat(*(int*)(q + 3 * cols)), x);
    }

    // Count tokens' prepared activations [n/32 scales][n int8], xStride bytes apart, as MatMulQ4's lanes take them:
    // quants [lane group][group][quad][token][4], and per [lane group][group][token] the scale and -8·Σx.
    static void Interleave(byte* to, float* scales, int* biases, byte* xq, long xStride, int tokens, int groups)
    {
        int c = S.Count;
        long xQuants = 4L * groups;
        TI eights = S.Splat(0x08080808);
        for (int t = 0; t < tokens; t += c)
        {
            byte* x = xq + t * xStride;
            for (int g = 0; g < groups; g++)
            {
                long at = ((long)(t / c) * groups + g) * c;
                sbyte* quads = (sbyte*)to + at * Quantization.Group;
                S.InterleaveQuads(quads, (sbyte*)(x + xQuants) + g * Quantization.Group, xStride);
                TI eightTimesSum = default;
                for (int k = 0; k < Quantization.Group / 4; k++) eightTimesSum = S.DotQuads(eightTimesSum, eights, quads + 4 * k * c);
                S.Store(biases + at, S.Sub(default, eightTimesSum));
                for (int lane = 0; lane < c; lane++) scales[at + lane] = ((float*)(x + lane * xStride))[g];
            }
        }
    }

    // to[32·groups] = a q4 row's quants q, a byte each, group by group: the 16 low nibbles, then the 16 high ones (the
    // order DotQ4Group multiplies them in).
    private static void UnpackQ4(byte* to, byte* quants, int groups)
    {
        var nibble = Vector128.Create((byte)0xF);
        for (int g = 0; g < groups; g++, quants += Quantization.Group / 2, to += Quantization.Group)
        {
            var bytes = Vector128.Load(quants);
            (bytes & nibble).Store(to);
            (Vector128.ShiftRightLogical(bytes.AsUInt16(), 4).AsByte() & nibble).Store(to + Quantization.Group / 2);
        }
    }
}
