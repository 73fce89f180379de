using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace AotFlash.Kernels;

/// <summary>
/// q8 rows times activations quantised to int8 (<see cref="VectorOps.QuantizeActivations(byte*, float*, int)"/>:
/// [n/32 f32 scales][n int8]), as llama.cpp's Q8_0 dot products: per group the exact integer sum of products
/// (<see cref="IQuantDot{TF,TI}"/>), times the weight scale and the activation scale. Integer products need no
/// int8→float conversion per element, and one instruction multiplies a whole register of bytes.
/// </summary>
[SkipLocalsInit] // every stackalloc here is scratch written before it is read
internal static unsafe class QuantKernels<TF, TI, S>
    where TF : struct
    where TI : struct
    where S : struct, ISimd<TF, TI>, IQuantDot<TF, TI>
{
    // w[n] · x[n], w one q8 row [n/32 half scales][n int8]
    public static float DotQ8(byte* w, byte* xq, int n)
    {
        int groups = n / Quantization.Group;
        float* scales = stackalloc float[groups];
        SimdKernels<TF, TI, S>.QuantScales(scales, w, 0, 1, (float*)xq, groups);
        sbyte* q = (sbyte*)(w + 2L * groups);
        sbyte* x = (sbyte*)(xq + 4L * groups);
        TF total = S.Zero;
        for (int g = 0; g < groups; g++, q += Quantization.Group, x += Quantization.Group)
            total = S.MulAdd(S.Splat(scales[g]), S.DotQ8Group(q, x, S.Q8Bias(x)), total);
        return S.Sum(total);
    }

    // y[rows] = W[rows, cols] · x[cols], W q8 rows at w + r·rowStride (bytes): DotQ8 of each row, in order. Memory
    // streams fastest read in order: 110M q8 decode, AMD EPYC, 1 thread: 10.9-11.8 ms per token against 12.0-14.2 with
    // four rows side by side and the next four prefetched.
    public static void MatVecQ8(float* y, byte* w, long rowStride, byte* xq, int rows, int cols)
    {
        for (int r = 0; r < rows; r++) y[r] = DotQ8(w + r * rowStride, xq, cols);
    }

    // Y[t, r] = W[r, :] · X[t, :] for a block of tokens, W q8 rows at w + r·rowStride, X prepared rows xStride bytes apart.
    // Four rows by two tokens per pass, as SimdKernels.MatMul: each group of the four rows is loaded once for both tokens,
    // in eight independent chains; their scales are widened once for the whole block. Every (row, token) is summed as
    // MatVecQ8 sums it (the same integer group sums, the same float steps), so a token's results do not depend on the
    // block it is in.
    public static void MatMulQ8(float* y, long yStride, byte* w, long rowStride, byte* xq, long xStride, int tokens, int rows, int cols)
    {
        if (tokens == 1)
        {
            MatVecQ8(y, w, rowStride, xq, rows, cols);
            return;
        }
        int r = 0, groups = cols / Quantization.Group;
        long quants = 2L * groups, xQuants = 4L * groups;
        float* byGroup = stackalloc float[4 * groups]; // [group, row] of the four rows
        float* products = stackalloc float[8]; // a group's weight scales times the tokens' activation scales: [token, row]
        for (; r <= rows - 4; r += 4)
        {
            byte* w0 = w + r * rowStride;
            Prefetch.Rows(w0 + 4 * rowStride, rowStride, Math.Min(4, rows - r - 4), quants + (long)groups * Quantization.Group);
            SimdKernels<TF, TI, S>.QuantScales4(byGroup, w0, rowStride, null, groups);
            sbyte* q0 = (sbyte*)(w0 + quants), q1 = q0 + rowStride, q2 = q1 + rowStride, q3 = q2 + rowStride;
            int t = 0;
            for (; t <= tokens - 2; t += 2)
            {
                byte* xa = xq + t * xStride, xb = xa + xStride;
                sbyte* qa = (sbyte*)(xa + xQuants), qb = (sbyte*)(xb + xQuants);
                TF a0 = S.Zero, a1 = S.Zero, a2 = S.Zero, a3 = S.Zero, b0 = S.Zero, b1 = S.Zero, b2 = S.Zero, b3 = S.Zero;
                for (int g = 0; g < groups; g++, qa += Quantization.Group, qb += Quantization.Group)
                {
                    int q = g * Quantization.Group;
                    // The eight scale products in two vector multiplies; each then reaches its multiply-add as a
                    // broadcast memory operand, not a scalar multiply and a shuffle.
                    var weightScales = Vector128.Load(byGroup + 4 * g);
                    (weightScales * ((float*)xa)[g]).Store(products);
                    (weightScales * ((float*)xb)[g]).Store(products + 4);
                    TI ha = S.Q8Bias(qa), hb = S.Q8Bias(qb);
                    var (da, db) = S.DotQ8Group2(q0 + q, qa, qb, ha, hb);
                    a0 = S.MulAdd(S.Splat(products[0]), da, a0);
                    b0 = S.MulAdd(S.Splat(products[4]), db, b0);
                    (da, db) = S.DotQ8Group2(q1 + q, qa, qb, ha, hb);
                    a1 = S.MulAdd(S.Splat(products[1]), da, a1);
                    b1 = S.MulAdd(S.Splat(products[5]), db, b1);
                    (da, db) = S.DotQ8Group2(q2 + q, qa, qb, ha, hb);
                    a2 = S.MulAdd(S.Splat(products[2]), da, a2);
                    b2 = S.MulAdd(S.Splat(products[6]), db, b2);
                    (da, db) = S.DotQ8Group2(q3 + q, qa, qb, ha, hb);
                    a3 = S.MulAdd(S.Splat(products[3]), da, a3);
                    b3 = S.MulAdd(S.Splat(products[7]), db, b3);
                }
                float* ya = y + t * yStride + r;
                S.Sum4(ya, a0, a1, a2, a3);
                S.Sum4(ya + yStride, b0, b1, b2, b3);
            }
            for (; t < tokens; t++) MatVecQ8(y + t * yStride + r, w0, rowStride, xq + t * xStride, 4, cols);
        }
        for (; r < rows; r++)
            for (int t = 0; t < tokens; t++) y[t * yStride + r] = DotQ8(w + r * rowStride, xq + t * xStride, cols);
    }
}
