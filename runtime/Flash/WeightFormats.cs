using AotFlash.Kernels;

namespace AotFlash.Flash;

/// <summary>How weights of one element type are multiplied; a struct type argument, so every model gets its own
/// specialised code and no dispatch per call.</summary>
public unsafe interface IWeightFormat
{
    static abstract WeightType Type { get; }
    /// <summary>Whether products over a block of tokens widen each chunk of weights to f32 once (<see cref="ToSingle"/>)
    /// and multiply with the f32 kernels, rather than convert every weight again for every token: true where the
    /// conversion is exact and costs more than the product (f16). Not for q8/q4, whose products are integer sums
    /// against int8 activations that float rows would not reproduce.</summary>
    static abstract bool WidenInBlocks { get; }
    /// <summary>Bytes of x[n] as <see cref="PrepareInput"/> writes it; 0 where the products read the floats themselves.</summary>
    static abstract int InputBytes(int n);
    /// <summary>prepared = x[n] in the form <see cref="MatVec"/> and <see cref="Dot"/> multiply, made once per
    /// vector and used by every row.</summary>
    static abstract void PrepareInput(byte* prepared, float* x, int n);
    /// <summary>y[rows] = W[rows, cols] · x[cols], rows <paramref name="rowStride"/> bytes apart; x as floats and as
    /// <see cref="PrepareInput"/> made it.</summary>
    static abstract void MatVec(float* y, byte* w, long rowStride, float* x, byte* prepared, int rows, int cols);
    /// <summary>Y[tokens, rows] = X[tokens, cols] · W[rows, cols]ᵀ: token t's x at x + t·xStride (floats) and prepared at
    /// prepared + t·preparedStride (bytes), its y at y + t·yStride (floats); W as in <see cref="MatVec"/>. Each token's
    /// y is what MatVec gives for it.</summary>
    static abstract void MatMul(float* y, long yStride, byte* w, long rowStride, float* x, long xStride, byte* prepared, long preparedStride,
                                int tokens, int rows, int cols);
    /// <summary>w[n] · x[n], x as floats and prepared, summed as a one-row <see cref="MatVec"/> sums it.</summary>
    static abstract float Dot(byte* w, float* x, byte* prepared, int n);
    /// <summary>y[n] += a · w[n]</summary>
    static abstract void Axpy(float* y, float a, byte* w, int n);
    /// <summary>y[n] += a[k] · w[k][n] for k = 0 .. count-1 in order: count Axpys, bit for bit (q4: blocks of rows
    /// whose coefficients are quantised, <see cref="VectorOps.AxpyRowsQ4(float*, long, float*, long, byte**, int, int, int)"/>).</summary>
    static abstract void AxpyRows(float* y, float* a, byte** w, int count, int n);
    /// <summary>dst[n] = (float) w[n]</summary>
    static abstract void ToSingle(float* dst, byte* w, int n);
}

public readonly unsafe struct F32 : IWeightFormat
{
    public static WeightType Type => WeightType.F32;
    public static bool WidenInBlocks => false;
    public static int InputBytes(int n) => 0;
    public static void PrepareInput(byte* prepared, float* x, int n) { }
    public static void MatVec(float* y, byte* w, long rowStride, float* x, byte* prepared, int rows, int cols) => VectorOps.MatVec(y, (float*)w, rowStride / sizeof(float), x, rows, cols);
    public static void MatMul(float* y, long yStride, byte* w, long rowStride, float* x, long xStride, byte* prepared, long preparedStride,
                              int tokens, int rows, int cols) =>
        VectorOps.MatMul(y, yStride, (float*)w, rowStride / sizeof(float), x, xStride, tokens, rows, cols);
    // A one-row MatVec, so that a neuron's sums one token at a time are a block's bit for bit.
    public static float Dot(byte* w, float* x, byte* prepared, int n)
    {
        float y;
        VectorOps.MatVec(&y, (float*)w, n, x, 1, n);
        return y;
    }
    public static void Axpy(float* y, float a, byte* w, int n) => VectorOps.Axpy(y, a, (float*)w, n);
    public static void AxpyRows(float* y, float* a, byte** w, int count, int n) => VectorOps.AxpyRows(y, a, (float**)w, count, n);
    public static void ToSingle(float* dst, byte* w, int n) => Buffer.MemoryCopy(w, dst, n * 4L, n * 4L);
}

public readonly unsafe struct F16 : IWeightFormat
{
    public static WeightType Type => WeightType.F16;
    public static bool WidenInBlocks => true;
    // Products multiply the weights' bits as they are against x scaled by 2^112 (ScaledHalves), where that is exact and fast.
    public static int InputBytes(int n) => ScaledHalves.PreparedBytes(n);
    public static void PrepareInput(byte* prepared, float* x, int n) => ScaledHalves.Prepare(prepared, x, n);
    public static void MatVec(float* y, byte* w, long rowStride, float* x, byte* prepared, int rows, int cols)
    {
        if (ScaledHalves.Values(prepared) is var scaled && scaled != null) VectorOps.MatVecF16Scaled(y, (Half*)w, rowStride / sizeof(Half), scaled, rows, cols);
        else VectorOps.MatVecF16(y, (Half*)w, rowStride / sizeof(Half), x, rows, cols);
    }
    public static void MatMul(float* y, long yStride, byte* w, long rowStride, float* x, long xStride, byte* prepared, long preparedStride,
                              int tokens, int rows, int cols) =>
        WeightRows.MatVecEach<F16>(y, yStride, w, rowStride, x, xStride, prepared, preparedStride, tokens, rows, cols);
    public static float Dot(byte* w, float* x, byte* prepared, int n) =>
        ScaledHalves.Values(prepared) is var scaled && scaled != null ? VectorOps.DotF16Scaled((Half*)w, scaled, n) : VectorOps.DotF16((Half*)w, x, n);
    public static void Axpy(float* y, float a, byte* w, int n) => AxpyRows(y, &a, &w, 1, n);
    public static void AxpyRows(float* y, float* a, byte** w, int count, int n)
    {
        // The coefficients scaled as x is, a stack's worth at a time (the rows are added in order either way).
        const int Piece = 256;
        float* scaled = stackalloc float[Math.Min(count, Piece)];
        for (int k = 0; k < count; k += Piece)
        {
            int m = Math.Min(Piece, count - k);
            if (ScaledHalves.Enabled && ScaledHalves.Scale(scaled, a + k, m)) VectorOps.AxpyRowsF16Scaled(y, scaled, (Half**)(w + k), m, n);
            else VectorOps.AxpyRowsF16(y, a + k, (Half**)(w + k), m, n);
        }
    }
    public static void ToSingle(float* dst, byte* w, int n) => VectorOps.ToSingle(dst, (Half*)w, n);
}

/// <summary>int8 quants in groups of 32 with a half scale each (<see cref="Layout.RowBytes"/>); every row or bundle slice
/// quantised on its own. The input is quantised to int8 groups of 32 with an f32 scale each
/// (<see cref="VectorOps.QuantizeActivations(byte*, float*, int)"/>), so products are integer per group and each group's two scales
/// apply once.</summary>
public readonly unsafe struct Q8 : IWeightFormat
{
    public static WeightType Type => WeightType.Q8;
    public static bool WidenInBlocks => false;
    public static int InputBytes(int n) => Quantization.ActivationBytes(n);
    public static void PrepareInput(byte* prepared, float* x, int n) => VectorOps.QuantizeActivations(prepared, x, n);
    public static void MatVec(float* y, byte* w, long rowStride, float* x, byte* prepared, int rows, int cols) => VectorOps.MatVecQ8(y, w, rowStride, prepared, rows, cols);
    public static void MatMul(float* y, long yStride, byte* w, long rowStride, float* x, long xStride, byte* prepared, long preparedStride,
                              int tokens, int rows, int cols) =>
        VectorOps.MatMulQ8(y, yStride, w, rowStride, prepared, preparedStride, tokens, rows, cols);
    public static float Dot(byte* w, float* x, byte* prepared, int n) => VectorOps.DotQ8(w, prepared, n);
    public static void Axpy(float* y, float a, byte* w, int n) => VectorOps.AxpyQ8(y, a, w, n);
    public static void AxpyRows(float* y, float* a, byte** w, int count, int n) => VectorOps.AxpyRowsQ8(y, a, w, count, n);
    public static void ToSingle(float* dst, byte* w, int n) => VectorOps.ToSingleQ8(dst, w, n);
}

/// <summary>4-bit quants in groups of 32 with a half scale each (<see cref="Layout.RowBytes"/>), as <see cref="Q8"/>.</summary>
public readonly unsafe struct Q4 : IWeightFormat
{
    public static WeightType Type => WeightType.Q4;
    public static bool WidenInBlocks => false;
    public static int InputBytes(int n) => Quantization.ActivationBytes(n);
    public static void PrepareInput(byte* prepared, float* x, int n) => VectorOps.QuantizeActivations(prepared, x, n);
    public static void MatVec(float* y, byte* w, long rowStride, float* x, byte* prepared, int rows, int cols) => VectorOps.MatVecQ4(y, w, rowStride, prepared, rows, cols);
    public static void MatMul(float* y, long yStride, byte* w, long rowStride, float* x, long xStride, byte* prepared, long preparedStride,
                              int tokens, int rows, int cols) =>
        VectorOps.MatMulQ4(y, yStride, w, rowStride, prepared, preparedStride, tokens, rows, cols);
    public static float Dot(byte* w, float* x, byte* prepared, int n) => VectorOps.DotQ4(w, prepared, n);
    public static void Axpy(float* y, float a, byte* w, int n) => VectorOps.AxpyQ4(y, a, w, n);
    // Not count Axpys: blocks of rows with quantised coefficients (VectorOps.AxpyRowsQ4).
    public static void AxpyRows(float* y, float* a, byte** w, int count, int n) => VectorOps.AxpyRowsQ4(y, 0, a, 0, w, count, 1, n);
    public static void ToSingle(float* dst, byte* w, int n) => VectorOps.ToSingleQ4(dst, w, n);
}

/// <summary>dst[n] = w[n] as floats, for code that knows the weight type only at run time (calibration, recall probes).</summary>
public static unsafe class WeightRows
{
    /// <summary>IWeightFormat.MatMul as one MatVec per token, for formats without a kernel over several tokens; a caller
    /// that keeps the rows small keeps them cached from one token to the next.</summary>
    internal static void MatVecEach<TW>(float* y, long yStride, byte* w, long rowStride, float* x, long xStride, byte* prepared, long preparedStride,
                                        int tokens, int rows, int cols) where TW : struct, IWeightFormat
    {
        for (int t = 0; t < tokens; t++) TW.MatVec(y + t * yStride, w, rowStride, x + t * xStride, prepared + t * preparedStride, rows, cols);
    }

    public static void ToSingle(WeightType type, float* dst, byte* w, int n)
    {
        switch (type)
        {
            case WeightType.F32: F32.ToSingle(dst, w, n); break;
            case WeightType.F16: F16.ToSingle(dst, w, n); break;
            case WeightType.Q8: Q8.ToSingle(dst, w, n); break;
            case WeightType.Q4: Q4.ToSingle(dst, w, n); break;
            default: throw new ArgumentOutOfRangeException(nameof(type), type, null);
        }
    }
}
