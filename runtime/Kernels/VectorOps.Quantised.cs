using System.Runtime.Intrinsics;

namespace AotFlash.Kernels;

using K128 = SimdKernels<Vector128<float>, Vector128<int>, Simd128>;
using K256 = SimdKernels<Vector256<float>, Vector256<int>, Simd256>;
using K512 = SimdKernels<Vector512<float>, Vector512<int>, Simd512>;
using Q128 = QuantKernels<Vector128<float>, Vector128<int>, Simd128>;
using Q256 = QuantKernels<Vector256<float>, Vector256<int>, Simd256>;
using Q4K128 = Q4Kernels<Vector128<float>, Vector128<int>, Simd128>;
using Q4K256 = Q4Kernels<Vector256<float>, Vector256<int>, Simd256>;
using Q4K512 = Q4Kernels<Vector512<float>, Vector512<int>, Simd512>;

public static unsafe partial class VectorOps
{
    // w[n] · x[n], w one q8 row (see Layout.RowBytes; n a multiple of 32), x prepared by VectorOps.QuantizeActivations.
    // A group of 32 int8 is one 256-bit register, so V512 runs the V256 body (two groups per register would need two
    // scales per register and a lane shuffle per group).
    public static float DotQ8(byte* w, byte* xq, int n) => DotQ8(IsaSupport.Best, w, xq, n);

    internal static float DotQ8(Isa isa, byte* w, byte* xq, int n) => isa switch
    {
        Isa.V512 or Isa.V256 => Q256.DotQ8(w, xq, n),
        Isa.V128 => Q128.DotQ8(w, xq, n),
        _ => VectorOpsReference.DotQ8(w, xq, n),
    };

    // w[n] · x[n], w one q4 row, x prepared; as DotQ8, but q4 groups are 16 bytes: V512 takes four a register.
    public static float DotQ4(byte* w, byte* xq, int n) => DotQ4(IsaSupport.Best, w, xq, n);

    internal static float DotQ4(Isa isa, byte* w, byte* xq, int n) => isa switch
    {
        Isa.V512 => Q4K512.DotQ4(w, xq, n),
        Isa.V256 => Q4K256.DotQ4(w, xq, n),
        Isa.V128 => Q4K128.DotQ4(w, xq, n),
        _ => VectorOpsReference.DotQ4(w, xq, n),
    };

    // y[n] += a · w[n], w one q8 row
    public static void AxpyQ8(float* y, float a, byte* w, int n) => AxpyQ8(IsaSupport.Best, y, a, w, n);

    internal static void AxpyQ8(Isa isa, float* y, float a, byte* w, int n)
    {
        switch (isa)
        {
            case Isa.V512: K512.AxpyQ8(y, a, w, n); break;
            case Isa.V256: K256.AxpyQ8(y, a, w, n); break;
            case Isa.V128: K128.AxpyQ8(y, a, w, n); break;
            default: VectorOpsReference.AxpyQ8(y, a, w, n); break;
        }
    }

    // y[n] += a · w[n], w one q4 row
    public static void AxpyQ4(float* y, float a, byte* w, int n) => AxpyQ4(IsaSupport.Best, y, a, w, n);

    internal static void AxpyQ4(Isa isa, float* y, float a, byte* w, int n)
    {
        switch (isa)
        {
            case Isa.V512: K512.AxpyQ4(y, a, w, n); break;
            case Isa.V256: K256.AxpyQ4(y, a, w, n); break;
            case Isa.V128: K128.AxpyQ4(y, a, w, n); break;
            default: VectorOpsReference.AxpyQ4(y, a, w, n); break;
        }
    }

    // y[n] += Σ_k a[k] · w[k][n] for k = 0 .. count-1 in order, w q8 rows: count AxpyQ8s, bit for bit
    public static void AxpyRowsQ8(float* y, float* a, byte** w, int count, int n) => AxpyRowsQ8(IsaSupport.Best, y, a, w, count, n);

    internal static void AxpyRowsQ8(Isa isa, float* y, float* a, byte** w, int count, int n)
    {
        switch (isa)
        {
            case Isa.V512: K512.AxpyRowsQ8(y, a, w, count, n); break;
            case Isa.V256: K256.AxpyRowsQ8(y, a, w, count, n); break;
            case Isa.V128: K128.AxpyRowsQ8(y, a, w, count, n); break;
            default: VectorOpsReference.AxpyRowsQ8(y, a, w, count, n); break;
        }
    }

    // Y[t, n] += Σ_k A[t, k] · w[k][n] for each of the tokens (rows yStride and aStride floats apart), w q4 rows, in
    // blocks of Quantization.DownRows whose coefficients are quantised (Q4DownKernels.AxpyRowsQ4)
    public static void AxpyRowsQ4(float* y, long yStride, float* a, long aStride, byte** w, int count, int tokens, int n) =>
        AxpyRowsQ4(IsaSupport.Best, y, yStride, a, aStride, w, count, tokens, n);

    internal static void AxpyRowsQ4(Isa isa, float* y, long yStride, float* a, long aStride, byte** w, int count, int tokens, int n)
    {
        switch (isa)
        {
            case Isa.V512: Q4DownKernels<Vector512<float>, Vector512<int>, Simd512>.AxpyRowsQ4(y, yStride, a, aStride, w, count, tokens, n); break;
            case Isa.V256: Q4DownKernels<Vector256<float>, Vector256<int>, Simd256>.AxpyRowsQ4(y, yStride, a, aStride, w, count, tokens, n); break;
            case Isa.V128: Q4DownKernels<Vector128<float>, Vector128<int>, Simd128>.AxpyRowsQ4(y, yStride, a, aStride, w, count, tokens, n); break;
            default: VectorOpsReference.AxpyRowsQ4(y, yStride, a, aStride, w, count, tokens, n); break;
        }
    }

    // y[rows] = W[rows, cols] · x[cols], W q8 rows; row r at w + r·rowStride (bytes); x prepared, as DotQ8
    public static void MatVecQ8(float* y, byte* w, long rowStride, byte* xq, int rows, int cols) =>
        MatVecQ8(IsaSupport.Best, y, w, rowStride, xq, rows, cols);

    internal static void MatVecQ8(Isa isa, float* y, byte* w, long rowStride, byte* xq, int rows, int cols)
    {
        switch (isa)
        {
            case Isa.V512 or Isa.V256: Q256.MatVecQ8(y, w, rowStride, xq, rows, cols); break;
            case Isa.V128: Q128.MatVecQ8(y, w, rowStride, xq, rows, cols); break;
            default: VectorOpsReference.MatVecQ8(y, w, rowStride, xq, rows, cols); break;
        }
    }

    // y[rows] = W[rows, cols] · x[cols], W q4 rows; as MatVecQ8
    public static void MatVecQ4(float* y, byte* w, long rowStride, byte* xq, int rows, int cols) =>
        MatVecQ4(IsaSupport.Best, y, w, rowStride, xq, rows, cols);

    internal static void MatVecQ4(Isa isa, float* y, byte* w, long rowStride, byte* xq, int rows, int cols)
    {
        switch (isa)
        {
            case Isa.V512: Q4K512.MatVecQ4(y, w, rowStride, xq, rows, cols); break;
            case Isa.V256: Q4K256.MatVecQ4(y, w, rowStride, xq, rows, cols); break;
            case Isa.V128: Q4K128.MatVecQ4(y, w, rowStride, xq, rows, cols); break;
            default: VectorOpsReference.MatVecQ4(y, w, rowStride, xq, rows, cols); break;
        }
    }

    // Y[t·yStride + r] = W[r, :] · X[t, :] for a block of tokens, W q8 rows as MatVecQ8, X prepared rows xStride bytes apart
    public static void MatMulQ8(float* y, long yStride, byte* w, long rowStride, byte* xq, long xStride, int tokens, int rows, int cols) =>
        MatMulQ8(IsaSupport.Best, y, yStride, w, rowStride, xq, xStride, tokens, rows, cols);

    internal static void MatMulQ8(Isa isa, float* y, long yStride, byte* w, long rowStride, byte* xq, long xStride, int tokens, int rows, int cols)
    {
        switch (isa)
        {
            case Isa.V512 or Isa.V256: Q256.MatMulQ8(y, yStride, w, rowStride, xq, xStride, tokens, rows, cols); break;
            case Isa.V128: Q128.MatMulQ8(y, yStride, w, rowStride, xq, xStride, tokens, rows, cols); break;
            default: VectorOpsReference.MatMulQ8(y, yStride, w, rowStride, xq, xStride, tokens, rows, cols); break;
        }
    }

    // Y[t·yStride + r] = W[r, :] · X[t, :], W q4 rows; as MatMulQ8. V512 puts sixteen tokens in a vector's lanes
    // (TokenLaneKernels).
    public static void MatMulQ4(float* y, long yStride, byte* w, long rowStride, byte* xq, long xStride, int tokens, int rows, int cols) =>
        MatMulQ4(IsaSupport.Best, y, yStride, w, rowStride, xq, xStride, tokens, rows, cols);

    internal static void MatMulQ4(Isa isa, float* y, long yStride, byte* w, long rowStride, byte* xq, long xStride, int tokens, int rows, int cols)
    {
        switch (isa)
        {
            case Isa.V512: Q4K512.MatMulQ4(y, yStride, w, rowStride, xq, xStride, tokens, rows, cols); break;
            case Isa.V256: Q4K256.MatMulQ4(y, yStride, w, rowStride, xq, xStride, tokens, rows, cols); break;
            case Isa.V128: Q4K128.MatMulQ4(y, yStride, w, rowStride, xq, xStride, tokens, rows, cols); break;
            default: VectorOpsReference.MatMulQ4(y, yStride, w, rowStride, xq, xStride, tokens, rows, cols); break;
        }
    }

    /// <summary>dst = x[n] (n a multiple of 32) as the q8·q8 and q4·q8 kernels read it: [n/32 f32 scales][n int8],
    /// symmetric per group of 32 as llama.cpp's Q8_0 (scale = max|x| / 127, q = round(x / scale)). The scale stays f32,
    /// as a half would add its rounding to every product. A group holding a non-finite value gets scale NaN and quants
    /// 0, so the products are NaN as a float kernel's would be.</summary>
    public static void QuantizeActivations(byte* dst, float* x, int n) => QuantizeActivations(IsaSupport.Best, dst, x, n);

    internal static void QuantizeActivations(Isa isa, byte* dst, float* x, int n)
    {
        switch (isa)
        {
            case Isa.V512: K512.QuantizeActivations(dst, x, n); break;
            case Isa.V256: K256.QuantizeActivations(dst, x, n); break;
            case Isa.V128: K128.QuantizeActivations(dst, x, n); break;
            default: VectorOpsReference.QuantizeActivations(dst, x, n); break;
        }
    }
}
