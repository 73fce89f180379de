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

    /// <summary>How one weight type's group of 32 quants is stored and multiplied by a group of int8 activations.</summary>
    private interface IGroups
    {
        static abstract int Bytes { get; }
        static abstract TF Dot(byte* quants, sbyte* x);
    }

    private readonly struct Q8Groups : IGroups
    {
        public static int Bytes => Quantization.Group;
        public static TF Dot(byte* quants, sbyte* x) => S.DotQ8Group((sbyte*)quants, x);
    }

    private readonly struct Q4Groups : IGroups
    {
        public static int Bytes => Quantization.Group / 2;
        public static TF Dot(byte* quants, sbyte* x) => S.DotQ4Group(quants, x);
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
}
