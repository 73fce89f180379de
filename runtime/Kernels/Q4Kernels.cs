using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace AotFlash.Kernels;

/// <summary>
/// q4 rows times activations quantised to int8, as <see cref="QuantKernels{TF,TI,S}"/> takes q8 rows: per group the exact
/// integer sum of products (<see cref="IQ4Dot{TI}"/>, Count/4 groups a register), times the weight scale and the
/// activation scale, in one chain of fused multiply-adds per row in group order, whatever the width.
/// </summary>
[SkipLocalsInit] // every stackalloc here is scratch written before it is read
internal static unsafe class Q4Kernels<TF, TI, S>
    where TF : struct
    where TI : struct
    where S : struct, ISimd<TF, TI>, IQ4Dot<TI>, ITokenLanes<TI>
{
    // w[n] · x[n], w one q4 row [n/32 half scales][n/2 bytes]: one chain of fused multiply-adds over the groups in order,
    // each the group's scale product times its exact integer sum, which is how MatMulQ4's token lanes sum a row. The
    // integer sums come Count/4 groups at a time, as MatVecQ4 makes them.
    public static float DotQ4(byte* w, byte* xq, int n)
    {
        int groups = n / Quantization.Group, step = S.Count / 4, paired = groups - groups % step;
        float* scales = stackalloc float[groups];
        SimdKernels<TF, TI, S>.QuantScales(scales, w, 0, 1, (float*)xq, groups);
        byte* q = w + 2L * groups;
        sbyte* x = (sbyte*)(xq + 4L * groups);
        int* sums = stackalloc int[S.Count]; // [group, lane]: each group's sum in all four of its lanes
        float total = 0f;
        int g = 0;
        for (; g < paired; g += step)
        {
            var (xLow, xHigh) = S.Q4Activations(x + g * Quantization.Group);
            TI d = S.DotQ4Groups(q + g * Quantization.Group / 2, xLow, xHigh, S.Q4Biases(xLow, xHigh));
            S.Store(sums, S.SumQuads4(d, d, d, d));
            for (int j = 0; j < step; j++) total = MathF.FusedMultiplyAdd(scales[g + j], sums[4 * j], total);
        }
        for (; g < groups; g++)
        {
            sbyte* xg = x + g * Quantization.Group;
            TI d = S.DotQ4Group(q + g * Quantization.Group / 2, xg, S.Q4Bias(xg));
            total = MathF.FusedMultiplyAdd(scales[g], S.SumLanes4(d, d, d, d).ToScalar(), total);
        }
        return total;
    }

    // How far ahead of the four rows being summed MatVecQ4 asks for four more: one tile ahead left memory too little
    // time to answer.
    private const int RowsAhead = 8;

    // y[rows] = W[rows, cols] · x[cols], W q4 rows at w + r·rowStride (bytes). Four rows per pass, Count/4 groups at a
    // time: each group's integer sums for the four rows are added up across their lanes together (SumQuads4), then go
    // through one fused multiply-add per row and group, in group order, as DotQ4 takes them.
    public static void MatVecQ4(float* y, byte* w, long rowStride, byte* xq, int rows, int cols)
    {
        int r = 0, c = S.Count, groups = cols / Quantization.Group, step = c / 4, paired = groups - groups % step;
        sbyte* x = (sbyte*)(xq + 4L * groups);
        long quants = 2L * groups;
        float* byGroup = stackalloc float[4 * groups]; // [group, row] of the four rows, times the activation scales
        // The activations as DotQ4Groups takes them, and their biases, made once for all rows: [step][low, high, bias]
        int* activations = stackalloc int[3 * (paired / step) * c];
        for (int g = 0; g < paired; g += step)
        {
            var (xLow, xHigh) = S.Q4Activations(x + g * Quantization.Group);
            int* a = activations + 3 * (g / step) * c;
            S.Store(a, xLow);
            S.Store(a + c, xHigh);
            S.Store(a + 2 * c, S.Q4Biases(xLow, xHigh));
        }
        // Rows RowsAhead on are fetched four at a time, each with the rest of its stride when that is short: a bundle's
        // gate row is followed by its up row and down column, which the FFN's next passes over the chunk then find in
        // L2, and the memory is read in address order (110M q4 decode, alternating builds, 1 thread: 9.35 → 8.09
        // ms/token, medians of 7; 2 threads: 5.53 → 4.86, of 5; against the next four rows alone).
        long rowBytes = quants + (long)groups * Quantization.Group / 2;
        long fetched = rowStride > rowBytes && rowStride <= 4 * rowBytes ? rowStride : rowBytes;
        Prefetch.Rows(w + 4 * rowStride, rowStride, Math.Clamp(rows - 4, 0, RowsAhead - 4), fetched);
        for (; r <= rows - 4; r += 4)
        {
            byte* w0 = w + r * rowStride, w1 = w0 + rowStride, w2 = w1 + rowStride, w3 = w2 + rowStride;
            Prefetch.Rows(w0 + RowsAhead * rowStride, rowStride, Math.Min(4, rows - r - RowsAhead), fetched);
            SimdKernels<TF, TI, S>.QuantScales4(byGroup, w0, rowStride, (float*)xq, groups);
            var total = Vector128<float>.Zero;
            int g = 0;
            for (int* a = activations; g < paired; g += step, a += 3 * c)
            {
                long q = quants + (long)g * Quantization.Group / 2;
                TI xLow = S.Load(a), xHigh = S.Load(a + c), bias = S.Load(a + 2 * c);
                TI quads = S.SumQuads4(S.DotQ4Groups(w0 + q, xLow, xHigh, bias), S.DotQ4Groups(w1 + q, xLow, xHigh, bias),
                                       S.DotQ4Groups(w2 + q, xLow, xHigh, bias), S.DotQ4Groups(w3 + q, xLow, xHigh, bias));
                TF sums = S.ToFloat(quads);
                for (int j = 0; j < step; j++)
                    total = Vector128.FusedMultiplyAdd(Vector128.Load(byGroup + 4 * (g + j)), S.Quarter(sums, j), total);
            }
            for (; g < groups; g++)
            {
                long q = quants + (long)g * Quantization.Group / 2;
                sbyte* xg = x + g * Quantization.Group;
                TI bias = S.Q4Bias(xg);
                var exact = S.SumLanes4(S.DotQ4Group(w0 + q, xg, bias), S.DotQ4Group(w1 + q, xg, bias), S.DotQ4Group(w2 + q, xg, bias), S.DotQ4Group(w3 + q, xg, bias));
                total = Vector128.FusedMultiplyAdd(Vector128.Load(byGroup + 4 * g), Vector128.ConvertToSingle(exact), total);
            }
            total.Store(y + r);
        }
        for (; r < rows; r++) y[r] = DotQ4(w + r * rowStride, xq, cols);
    }

    // Y[t, r] = W[r, :] · X[t, :], W q4 rows; as MatMulQ8. Tokens in multiples of Count and rows in multiples of four go
    // through the token lanes (TokenLaneKernels), the rest through DotQ4 and MatVecQ4 here. Every (row, token) is DotQ4's
    // chain, so a token's results do not depend on the block it is in, nor on the width of the lanes.
    public static void MatMulQ4(float* y, long yStride, byte* w, long rowStride, byte* xq, long xStride, int tokens, int rows, int cols)
    {
        int lanes = cols < Quantization.Group ? 0 : tokens - tokens % S.Count, quads = rows - rows % 4;
        TokenLaneKernels<TF, TI, S>.MatMulQ4(y, yStride, w, rowStride, xq, xStride, lanes, quads, cols);
        for (int r = quads; r < rows; r++)
            for (int t = 0; t < lanes; t++) y[t * yStride + r] = DotQ4(w + r * rowStride, xq + t * xStride, cols);
        for (int t = lanes; t < tokens; t++) MatVecQ4(y + t * yStride, w, rowStride, xq + t * xStride, rows, cols);
    }
}
