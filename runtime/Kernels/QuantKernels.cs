namespace AotFlash.Kernels;

/// <summary>
/// q8 and q4 rows times activations quantised to int8 (<see cref="Quantization.QuantizeActivations"/>:
/// [n/32 f32 scales][n int8]), as llama.cpp's Q8_0 dot products: per group the exact integer sum of products
/// (<see cref="IQuantDot{TF}"/>), times the weight scale and the activation scale. Integer products need no
/// int8→float conversion per element, and one instruction multiplies a whole register of bytes.
/// </summary>
internal static unsafe class QuantKernels<TF, TI, S>
    where TF : struct
    where TI : struct
    where S : struct, ISimd<TF, TI>, IQuantDot<TF>
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
        static abstract TF Dot(byte* quants, sbyte* x);
        static abstract (TF A, TF B) Dot2(byte* quants, sbyte* xa, sbyte* xb);
    }

    private readonly struct Q8Groups : IGroups
    {
        public static int Bytes => Quantization.Group;
        public static TF Dot(byte* quants, sbyte* x) => S.DotQ8Group((sbyte*)quants, x);
        public static (TF A, TF B) Dot2(byte* quants, sbyte* xa, sbyte* xb) => S.DotQ8Group2((sbyte*)quants, xa, xb);
    }

    private readonly struct Q4Groups : IGroups
    {
        public static int Bytes => Quantization.Group / 2;
        public static TF Dot(byte* quants, sbyte* x) => S.DotQ4Group(quants, x);
        public static (TF A, TF B) Dot2(byte* quants, sbyte* xa, sbyte* xb) => S.DotQ4Group2(quants, xa, xb);
    }

    // w[n] · x[n] for one row [n/32 half scales][quants]
    private static float Dot<G>(byte* w, byte* xq, int n) where G : struct, IGroups
    {
        int groups = n / Quantization.Group;
        Half* scales = (Half*)w;
        float* xScales = (float*)xq;
        byte* q = w + 2L * groups;
        sbyte* x = (sbyte*)(xq + 4L * groups);
        TF total = S.Zero;
        for (int g = 0; g < groups; g++, q += G.Bytes, x += Quantization.Group)
            total = S.MulAdd(S.Splat(HalfBits.ToSingle(scales[g]) * xScales[g]), G.Dot(q, x), total);
        return S.Sum(total);
    }

    // y[rows] = W[rows, cols] · x[cols]. Four rows per pass, as SimdKernels.MatVec, share the activation group and keep
    // four independent accumulator chains in flight.
    private static void MatVec<G>(float* y, byte* w, long rowStride, byte* xq, int rows, int cols) where G : struct, IGroups
    {
        int r = 0, groups = cols / Quantization.Group;
        float* xScales = (float*)xq;
        sbyte* x = (sbyte*)(xq + 4L * groups);
        long quants = 2L * groups;
        for (; r <= rows - 4; r += 4)
        {
            byte* w0 = w + r * rowStride, w1 = w0 + rowStride, w2 = w1 + rowStride, w3 = w2 + rowStride;
            TF t0 = S.Zero, t1 = S.Zero, t2 = S.Zero, t3 = S.Zero;
            for (int g = 0; g < groups; g++)
            {
                long q = quants + (long)g * G.Bytes;
                sbyte* xg = x + g * Quantization.Group;
                float xs = xScales[g];
                t0 = S.MulAdd(S.Splat(HalfBits.ToSingle(((Half*)w0)[g]) * xs), G.Dot(w0 + q, xg), t0);
                t1 = S.MulAdd(S.Splat(HalfBits.ToSingle(((Half*)w1)[g]) * xs), G.Dot(w1 + q, xg), t1);
                t2 = S.MulAdd(S.Splat(HalfBits.ToSingle(((Half*)w2)[g]) * xs), G.Dot(w2 + q, xg), t2);
                t3 = S.MulAdd(S.Splat(HalfBits.ToSingle(((Half*)w3)[g]) * xs), G.Dot(w3 + q, xg), t3);
            }
            y[r] = S.Sum(t0);
            y[r + 1] = S.Sum(t1);
            y[r + 2] = S.Sum(t2);
            y[r + 3] = S.Sum(t3);
        }
        for (; r < rows; r++) y[r] = Dot<G>(w + r * rowStride, xq, cols);
    }

    // Y[t, r] = W[r, :] · X[t, :]. Four rows by two tokens per pass, as SimdKernels.MatMul: each group of the four rows is
    // loaded (q4: unpacked) once for both tokens, and their scales widened once for the whole block, in eight independent
    // chains. Every (row, token) is summed as MatVec sums it, so a token's results do not depend on the block it is in.
    private static void MatMul<G>(float* y, long yStride, byte* w, long rowStride, byte* xq, long xStride, int tokens, int rows, int cols)
        where G : struct, IGroups
    {
        int r = 0, groups = cols / Quantization.Group;
        long quants = 2L * groups, xQuants = 4L * groups;
        float* scales = stackalloc float[4 * groups]; // [group, row] of the four rows
        for (; r <= rows - 4; r += 4)
        {
            byte* w0 = w + r * rowStride, w1 = w0 + rowStride, w2 = w1 + rowStride, w3 = w2 + rowStride;
            for (int g = 0; g < groups; g++)
            {
                scales[4 * g] = HalfBits.ToSingle(((Half*)w0)[g]);
                scales[4 * g + 1] = HalfBits.ToSingle(((Half*)w1)[g]);
                scales[4 * g + 2] = HalfBits.ToSingle(((Half*)w2)[g]);
                scales[4 * g + 3] = HalfBits.ToSingle(((Half*)w3)[g]);
            }
            int t = 0;
            for (; t <= tokens - 2; t += 2)
            {
                byte* xa = xq + t * xStride, xb = xa + xStride;
                sbyte* qa = (sbyte*)(xa + xQuants), qb = (sbyte*)(xb + xQuants);
                TF a0 = S.Zero, a1 = S.Zero, a2 = S.Zero, a3 = S.Zero, b0 = S.Zero, b1 = S.Zero, b2 = S.Zero, b3 = S.Zero;
                for (int g = 0; g < groups; g++, qa += Quantization.Group, qb += Quantization.Group)
                {
                    long q = quants + (long)g * G.Bytes;
                    float* s = scales + 4 * g;
                    float sa = ((float*)xa)[g], sb = ((float*)xb)[g];
                    var (da, db) = G.Dot2(w0 + q, qa, qb);
                    a0 = S.MulAdd(S.Splat(s[0] * sa), da, a0);
                    b0 = S.MulAdd(S.Splat(s[0] * sb), db, b0);
                    (da, db) = G.Dot2(w1 + q, qa, qb);
                    a1 = S.MulAdd(S.Splat(s[1] * sa), da, a1);
                    b1 = S.MulAdd(S.Splat(s[1] * sb), db, b1);
                    (da, db) = G.Dot2(w2 + q, qa, qb);
                    a2 = S.MulAdd(S.Splat(s[2] * sa), da, a2);
                    b2 = S.MulAdd(S.Splat(s[2] * sb), db, b2);
                    (da, db) = G.Dot2(w3 + q, qa, qb);
                    a3 = S.MulAdd(S.Splat(s[3] * sa), da, a3);
                    b3 = S.MulAdd(S.Splat(s[3] * sb), db, b3);
                }
                float* ya = y + t * yStride + r, yb = ya + yStride;
                ya[0] = S.Sum(a0); ya[1] = S.Sum(a1); ya[2] = S.Sum(a2); ya[3] = S.Sum(a3);
                yb[0] = S.Sum(b0); yb[1] = S.Sum(b1); yb[2] = S.Sum(b2); yb[3] = S.Sum(b3);
            }
            for (; t < tokens; t++) MatVec<G>(y + t * yStride + r, w0, rowStride, xq + t * xStride, 4, cols);
        }
        for (; r < rows; r++)
            for (int t = 0; t < tokens; t++) y[t * yStride + r] = Dot<G>(w + r * rowStride, xq + t * xStride, cols);
    }
}
