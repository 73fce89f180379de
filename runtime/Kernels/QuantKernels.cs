using System.Runtime.Intrinsics;

namespace AotFlash.Kernels;

/// <summary>
/// q8 and q4 rows times activations quantised to int8 (<see cref="VectorOps.QuantizeActivations(byte*, float*, int)"/>:
/// [n/32 f32 scales][n int8]), as llama.cpp's Q8_0 dot products: per group the exact integer sum of products
/// (<see cref="IQuantDot{TF,TI}"/>), times the weight scale and the activation scale. Integer products need no
/// int8→float conversion per element, and one instruction multiplies a whole register of bytes.
/// </summary>
internal static unsafe class QuantKernels<TF, TI, S>
    where TF : struct
    where TI : struct
    where S : struct, ISimd<TF, TI>, IQuantDot<TF, TI>
{
    // w[n] · x[n], w one q8 row [n/32 half scales][n int8]
    public static float DotQ8(byte* w, byte* xq, int n) => Dot<Q8Groups>(w, xq, n);

    // w[n] · x[n], w one q4 row [n/32 half scales][n/2 bytes]
    public static float DotQ4(byte* w, byte* xq, int n) => Dot<Q4Groups>(w, xq, n);

    // y[rows] = W[rows, cols] · x[cols], W q8 rows at w + r·rowStride (bytes)
    public static void MatVecQ8(float* y, byte* w, long rowStride, byte* xq, int rows, int cols) =>
        MatVec<Q8Groups>(y, w, rowStride, xq, rows, cols);

    // y[rows] = W[rows, cols] · x[cols], W q4 rows at w + r·rowStride (bytes)
    public static void MatVecQ4(float* y, byte* w, long rowStride, byte* xq, int rows, int cols) =>
        MatVec<Q4Groups>(y, w, rowStride, xq, rows, cols);

    // Y[t, r] = W[r, :] · X[t, :] for a block of tokens, W q8 rows at w + r·rowStride, X prepared rows xStride bytes apart
    public static void MatMulQ8(float* y, long yStride, byte* w, long rowStride, byte* xq, long xStride, int tokens, int rows, int cols) =>
        MatMul<Q8Groups>(y, yStride, w, rowStride, xq, xStride, tokens, rows, cols);

    // Y[t, r] = W[r, :] · X[t, :], W q4 rows; as MatMulQ8
    public static void MatMulQ4(float* y, long yStride, byte* w, long rowStride, byte* xq, long xStride, int tokens, int rows, int cols) =>
        MatMul<Q4Groups>(y, yStride, w, rowStride, xq, xStride, tokens, rows, cols);

    /// <summary>How one weight type's group of 32 quants is stored and multiplied by a group of int8 activations.</summary>
    private interface IGroups
    {
        static abstract int Bytes { get; }
        /// <summary>What a group's products need of its activations alone, made once for the rows that share them.</summary>
        static abstract TI Shared(sbyte* x);
        static abstract TF Dot(byte* quants, sbyte* x, TI shared);
        /// <summary>As Dot for two tokens, the group's quants as MatMul holds them (q4 unpacked to a byte each).</summary>
        static abstract (TF A, TF B) Dot2(byte* quants, sbyte* xa, sbyte* xb, TI sharedA, TI sharedB);
    }

    private readonly struct Q8Groups : IGroups
    {
        public static int Bytes => Quantization.Group;
        public static TI Shared(sbyte* x) => S.Q8Bias(x);
        public static TF Dot(byte* quants, sbyte* x, TI shared) => S.DotQ8Group((sbyte*)quants, x, shared);
        public static (TF A, TF B) Dot2(byte* quants, sbyte* xa, sbyte* xb, TI sharedA, TI sharedB) => S.DotQ8Group2((sbyte*)quants, xa, xb, sharedA, sharedB);
    }

    private readonly struct Q4Groups : IGroups
    {
        public static int Bytes => Quantization.Group / 2;
        public static TI Shared(sbyte* x) => S.Q4Bias(x);
        public static TF Dot(byte* quants, sbyte* x, TI shared) => S.DotQ4Group(quants, x, shared);
        public static (TF A, TF B) Dot2(byte* quants, sbyte* xa, sbyte* xb, TI sharedA, TI sharedB) => S.DotQ4Group2(quants, xa, xb, sharedA, sharedB);
    }

    // w[n] · x[n] for one row [n/32 half scales][quants]
    private static float Dot<G>(byte* w, byte* xq, int n) where G : struct, IGroups
    {
        int groups = n / Quantization.Group;
        float* scales = stackalloc float[groups];
        SimdKernels<TF, TI, S>.QuantScales(scales, w, 0, 1, (float*)xq, groups);
        byte* q = w + 2L * groups;
        sbyte* x = (sbyte*)(xq + 4L * groups);
        TF total = S.Zero;
        for (int g = 0; g < groups; g++, q += G.Bytes, x += Quantization.Group)
            total = S.MulAdd(S.Splat(scales[g]), G.Dot(q, x, G.Shared(x)), total);
        return S.Sum(total);
    }

    // y[rows] = W[rows, cols] · x[cols]. Four rows per pass, as SimdKernels.MatVec, share the activation group and keep
    // four independent accumulator chains in flight.
    private static void MatVec<G>(float* y, byte* w, long rowStride, byte* xq, int rows, int cols) where G : struct, IGroups
    {
        int r = 0, groups = cols / Quantization.Group;
        sbyte* x = (sbyte*)(xq + 4L * groups);
        long quants = 2L * groups;
        float* scales = stackalloc float[4 * groups]; // [row, group] of the four rows, times the activation scales
        float* s0 = scales, s1 = s0 + groups, s2 = s1 + groups, s3 = s2 + groups;
        for (; r <= rows - 4; r += 4)
        {
            byte* w0 = w + r * rowStride, w1 = w0 + rowStride, w2 = w1 + rowStride, w3 = w2 + rowStride;
            Prefetch.Rows(w0 + 4 * rowStride, rowStride, Math.Min(4, rows - r - 4), quants + (long)groups * G.Bytes);
            SimdKernels<TF, TI, S>.QuantScales(scales, w0, rowStride, 4, (float*)xq, groups);
            TF t0 = S.Zero, t1 = S.Zero, t2 = S.Zero, t3 = S.Zero;
            for (int g = 0; g < groups; g++)
            {
                long q = quants + (long)g * G.Bytes;
                sbyte* xg = x + g * Quantization.Group;
                TI shared = G.Shared(xg);
                t0 = S.MulAdd(S.Splat(s0[g]), G.Dot(w0 + q, xg, shared), t0);
                t1 = S.MulAdd(S.Splat(s1[g]), G.Dot(w1 + q, xg, shared), t1);
                t2 = S.MulAdd(S.Splat(s2[g]), G.Dot(w2 + q, xg, shared), t2);
                t3 = S.MulAdd(S.Splat(s3[g]), G.Dot(w3 + q, xg, shared), t3);
            }
            S.Sum4(y + r, t0, t1, t2, t3);
        }
        for (; r < rows; r++) y[r] = Dot<G>(w + r * rowStride, xq, cols);
    }

    // Y[t, r] = W[r, :] · X[t, :]. Four rows by two tokens per pass, as SimdKernels.MatMul: each group of the four rows is
    // loaded once for both tokens, in eight independent chains; their scales are widened, and q4 quants unpacked to a byte each,
    // once for the whole block. Every (row, token) is summed as MatVec sums it (the same integer group sums, the same
    // float steps), so a token's results do not depend on the block it is in.
    private static void MatMul<G>(float* y, long yStride, byte* w, long rowStride, byte* xq, long xStride, int tokens, int rows, int cols)
        where G : struct, IGroups
    {
        if (tokens == 1)
        {
            MatVec<G>(y, w, rowStride, xq, rows, cols);
            return;
        }
        int r = 0, groups = cols / Quantization.Group;
        long quants = 2L * groups, xQuants = 4L * groups;
        bool q4 = typeof(G) == typeof(Q4Groups);
        float* scales = stackalloc float[4 * groups]; // [row, group] of the four rows
        float* byGroup = stackalloc float[4 * groups]; // the same as [group, row]
        float* products = stackalloc float[8]; // a group's weight scales times the tokens' activation scales: [token, row]
        byte* unpacked = stackalloc byte[q4 ? 4 * cols : 0]; // [row, cols] of the four rows, q4 only
        for (; r <= rows - 4; r += 4)
        {
            byte* w0 = w + r * rowStride;
            Prefetch.Rows(w0 + 4 * rowStride, rowStride, Math.Min(4, rows - r - 4), quants + (long)groups * G.Bytes);
            SimdKernels<TF, TI, S>.QuantScales(scales, w0, rowStride, 4, null, groups);
            for (int g = 0; g < groups; g++)
                for (int k = 0; k < 4; k++) byGroup[4 * g + k] = scales[k * groups + g];
            byte* q0, q1, q2, q3;
            if (q4)
            {
                for (int k = 0; k < 4; k++) UnpackQ4(unpacked + k * cols, w0 + k * rowStride + quants, groups);
                q0 = unpacked; q1 = q0 + cols; q2 = q1 + cols; q3 = q2 + cols;
            }
            else
            {
                q0 = w0 + quants; q1 = q0 + rowStride; q2 = q1 + rowStride; q3 = q2 + rowStride;
            }
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
                    TI ha = G.Shared(qa), hb = G.Shared(qb);
                    var (da, db) = G.Dot2(q0 + q, qa, qb, ha, hb);
                    a0 = S.MulAdd(S.Splat(products[0]), da, a0);
                    b0 = S.MulAdd(S.Splat(products[4]), db, b0);
                    (da, db) = G.Dot2(q1 + q, qa, qb, ha, hb);
                    a1 = S.MulAdd(S.Splat(products[1]), da, a1);
                    b1 = S.MulAdd(S.Splat(products[5]), db, b1);
                    (da, db) = G.Dot2(q2 + q, qa, qb, ha, hb);
                    a2 = S.MulAdd(S.Splat(products[2]), da, a2);
                    b2 = S.MulAdd(S.Splat(products[6]), db, b2);
                    (da, db) = G.Dot2(q3 + q, qa, qb, ha, hb);
                    a3 = S.MulAdd(S.Splat(products[3]), da, a3);
                    b3 = S.MulAdd(S.Splat(products[7]), db, b3);
                }
                float* ya = y + t * yStride + r;
                S.Sum4(ya, a0, a1, a2, a3);
                S.Sum4(ya + yStride, b0, b1, b2, b3);
            }
            for (; t < tokens; t++) MatVec<G>(y + t * yStride + r, w0, rowStride, xq + t * xStride, 4, cols);
        }
        for (; r < rows; r++)
            for (int t = 0; t < tokens; t++) y[t * yStride + r] = Dot<G>(w + r * rowStride, xq + t * xStride, cols);
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
