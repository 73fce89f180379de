using System.Runtime.Intrinsics;

namespace AotFlash.Kernels;

using K128 = SimdKernels<Vector128<float>, Vector128<int>, Simd128>;
using K256 = SimdKernels<Vector256<float>, Vector256<int>, Simd256>;
using K512 = SimdKernels<Vector512<float>, Vector512<int>, Simd512>;

/// <summary>
/// The numeric kernels of inference. Each operation dispatches on <see cref="IsaSupport.Best"/> to one
/// body written once over the vector width (<see cref="SimdKernels{TF,TI,S}"/>); Isa.Scalar runs
/// <see cref="VectorOpsReference"/>. The internal overloads taking an <see cref="Isa"/> let tests force each body.
/// Pointers need no alignment; sizes may be any value ≥ 0. Outputs must not overlap inputs unless stated.
/// </summary>
public static unsafe partial class VectorOps
{
    // a[n] · b[n]
    public static float Dot(float* a, float* b, int n) => Dot(IsaSupport.Best, a, b, n);

    internal static float Dot(Isa isa, float* a, float* b, int n) => isa switch
    {
        Isa.V512 => K512.Dot(a, b, n),
        Isa.V256 => K256.Dot(a, b, n),
        Isa.V128 => K128.Dot(a, b, n),
        _ => VectorOpsReference.Dot(a, b, n),
    };

    // w[n] (IEEE half) · x[n]
    public static float DotF16(Half* w, float* x, int n) => DotF16(IsaSupport.Best, w, x, n);

    internal static float DotF16(Isa isa, Half* w, float* x, int n) => isa switch
    {
        Isa.V512 => K512.DotF16(w, x, n),
        Isa.V256 => K256.DotF16(w, x, n),
        Isa.V128 => K128.DotF16(w, x, n),
        _ => VectorOpsReference.DotF16(w, x, n),
    };

    // w[n] (IEEE half, finite) · x[n], given xs[n] = x[n] · 2^112 (ScaledHalves.Scale): DotF16's sum bit for bit
    public static float DotF16Scaled(Half* w, float* xs, int n) => DotF16Scaled(IsaSupport.Best, w, xs, n);

    internal static float DotF16Scaled(Isa isa, Half* w, float* xs, int n) => isa switch
    {
        Isa.V512 => K512.DotF16Scaled(w, xs, n),
        Isa.V256 => K256.DotF16Scaled(w, xs, n),
        Isa.V128 => K128.DotF16Scaled(w, xs, n),
        _ => VectorOpsReference.DotF16Scaled(w, xs, n),
    };

    // y[n] += a · x[n]
    public static void Axpy(float* y, float a, float* x, int n) => Axpy(IsaSupport.Best, y, a, x, n);

    internal static void Axpy(Isa isa, float* y, float a, float* x, int n)
    {
        switch (isa)
        {
            case Isa.V512: K512.Axpy(y, a, x, n); break;
            case Isa.V256: K256.Axpy(y, a, x, n); break;
            case Isa.V128: K128.Axpy(y, a, x, n); break;
            default: VectorOpsReference.Axpy(y, a, x, n); break;
        }
    }

    // y[n] += Σ_k a[k] · x[k][n] for k = 0 .. count-1 in order: count Axpys, bit for bit
    public static void AxpyRows(float* y, float* a, float** x, int count, int n) => AxpyRows(IsaSupport.Best, y, a, x, count, n);

    internal static void AxpyRows(Isa isa, float* y, float* a, float** x, int count, int n)
    {
        switch (isa)
        {
            case Isa.V512: K512.AxpyRows(y, a, x, count, n); break;
            case Isa.V256: K256.AxpyRows(y, a, x, count, n); break;
            case Isa.V128: K128.AxpyRows(y, a, x, count, n); break;
            default: VectorOpsReference.AxpyRows(y, a, x, count, n); break;
        }
    }

    // Y[t, n] += Σ_k a[t·aStride + k] · x[k][n] for t = 0 .. tokens-1: AxpyRows for each token (row t of y at
    // y + t·yStride), bit for bit
    public static void AxpyRowsBlock(float* y, long yStride, float* a, long aStride, float** x, int count, int tokens, int n) =>
        AxpyRowsBlock(IsaSupport.Best, y, yStride, a, aStride, x, count, tokens, n);

    internal static void AxpyRowsBlock(Isa isa, float* y, long yStride, float* a, long aStride, float** x, int count, int tokens, int n)
    {
        switch (isa)
        {
            case Isa.V512: K512.AxpyRowsBlock(y, yStride, a, aStride, x, count, tokens, n); break;
            case Isa.V256: K256.AxpyRowsBlock(y, yStride, a, aStride, x, count, tokens, n); break;
            case Isa.V128: K128.AxpyRowsBlock(y, yStride, a, aStride, x, count, tokens, n); break;
            default: VectorOpsReference.AxpyRowsBlock(y, yStride, a, aStride, x, count, tokens, n); break;
        }
    }

    // y[n] += Σ_k a[k] · x[k][n] for k = 0 .. count-1 in order, x half rows: count AxpyF16s, bit for bit
    public static void AxpyRowsF16(float* y, float* a, Half** x, int count, int n) => AxpyRowsF16(IsaSupport.Best, y, a, x, count, n);

    internal static void AxpyRowsF16(Isa isa, float* y, float* a, Half** x, int count, int n)
    {
        switch (isa)
        {
            case Isa.V512: K512.AxpyRowsF16(y, a, x, count, n); break;
            case Isa.V256: K256.AxpyRowsF16(y, a, x, count, n); break;
            case Isa.V128: K128.AxpyRowsF16(y, a, x, count, n); break;
            default: VectorOpsReference.AxpyRowsF16(y, a, x, count, n); break;
        }
    }

    // y[n] += Σ_k a[k] · x[k][n], x half rows (finite), given scaled[k] = a[k] · 2^112 (ScaledHalves.Scale):
    // AxpyRowsF16 bit for bit
    public static void AxpyRowsF16Scaled(float* y, float* scaled, Half** x, int count, int n) => AxpyRowsF16Scaled(IsaSupport.Best, y, scaled, x, count, n);

    internal static void AxpyRowsF16Scaled(Isa isa, float* y, float* scaled, Half** x, int count, int n)
    {
        switch (isa)
        {
            case Isa.V512: K512.AxpyRowsF16Scaled(y, scaled, x, count, n); break;
            case Isa.V256: K256.AxpyRowsF16Scaled(y, scaled, x, count, n); break;
            case Isa.V128: K128.AxpyRowsF16Scaled(y, scaled, x, count, n); break;
            default: VectorOpsReference.AxpyRowsF16Scaled(y, scaled, x, count, n); break;
        }
    }

    // y[n] += a · x[n] (x in IEEE half)
    public static void AxpyF16(float* y, float a, Half* x, int n) => AxpyF16(IsaSupport.Best, y, a, x, n);

    internal static void AxpyF16(Isa isa, float* y, float a, Half* x, int n)
    {
        switch (isa)
        {
            case Isa.V512: K512.AxpyF16(y, a, x, n); break;
            case Isa.V256: K256.AxpyF16(y, a, x, n); break;
            case Isa.V128: K128.AxpyF16(y, a, x, n); break;
            default: VectorOpsReference.AxpyF16(y, a, x, n); break;
        }
    }

    // y[rows] = W[rows, cols] · x[cols]; row r of W starts at w + r·rowStride (elements)
    public static void MatVec(float* y, float* w, long rowStride, float* x, int rows, int cols) =>
        MatVec(IsaSupport.Best, y, w, rowStride, x, rows, cols);

    internal static void MatVec(Isa isa, float* y, float* w, long rowStride, float* x, int rows, int cols)
    {
        switch (isa)
        {
            case Isa.V512: K512.MatVec(y, w, rowStride, x, rows, cols); break;
            case Isa.V256: K256.MatVec(y, w, rowStride, x, rows, cols); break;
            case Isa.V128: K128.MatVec(y, w, rowStride, x, rows, cols); break;
            default: VectorOpsReference.MatVec(y, w, rowStride, x, rows, cols); break;
        }
    }

    // y[k] = w[n] · x[k][n] for k < count: one row against several tokens' rows, each summed as MatMul sums a
    // (row, token), bit for bit
    public static void RowDots(float* y, float* w, float** x, int count, int n) => RowDots(IsaSupport.Best, y, w, x, count, n);

    internal static void RowDots(Isa isa, float* y, float* w, float** x, int count, int n)
    {
        switch (isa)
        {
            case Isa.V512: K512.RowDots(y, w, x, count, n); break;
            case Isa.V256: K256.RowDots(y, w, x, count, n); break;
            case Isa.V128: K128.RowDots(y, w, x, count, n); break;
            default: VectorOpsReference.RowDots(y, w, x, count, n); break;
        }
    }

    // Y[tokens, rows] = X[tokens, cols] · W[rows, cols]ᵀ: y[t·yStride + r] = W[r, :] · x[t·xStride, :] (strides in
    // elements); each token's row of Y is what MatVec gives for it
    public static void MatMul(float* y, long yStride, float* w, long rowStride, float* x, long xStride, int tokens, int rows, int cols) =>
        MatMul(IsaSupport.Best, y, yStride, w, rowStride, x, xStride, tokens, rows, cols);

    internal static void MatMul(Isa isa, float* y, long yStride, float* w, long rowStride, float* x, long xStride, int tokens, int rows, int cols)
    {
        switch (isa)
        {
            case Isa.V512: K512.MatMul(y, yStride, w, rowStride, x, xStride, tokens, rows, cols); break;
            case Isa.V256: K256.MatMul(y, yStride, w, rowStride, x, xStride, tokens, rows, cols); break;
            case Isa.V128: K128.MatMul(y, yStride, w, rowStride, x, xStride, tokens, rows, cols); break;
            default: VectorOpsReference.MatMul(y, yStride, w, rowStride, x, xStride, tokens, rows, cols); break;
        }
    }

    // y[rows] = W[rows, cols] · x[cols], W in IEEE half; row r of W starts at w + r·rowStride (elements)
    public static void MatVecF16(float* y, Half* w, long rowStride, float* x, int rows, int cols) =>
        MatVecF16(IsaSupport.Best, y, w, rowStride, x, rows, cols);

    internal static void MatVecF16(Isa isa, float* y, Half* w, long rowStride, float* x, int rows, int cols)
    {
        switch (isa)
        {
            case Isa.V512: K512.MatVecF16(y, w, rowStride, x, rows, cols); break;
            case Isa.V256: K256.MatVecF16(y, w, rowStride, x, rows, cols); break;
            case Isa.V128: K128.MatVecF16(y, w, rowStride, x, rows, cols); break;
            default: VectorOpsReference.MatVecF16(y, w, rowStride, x, rows, cols); break;
        }
    }

    // y[rows] = W[rows, cols] · x[cols], W in IEEE half (finite), given xs[cols] = x · 2^112 (ScaledHalves.Scale):
    // MatVecF16's sums bit for bit
    public static void MatVecF16Scaled(float* y, Half* w, long rowStride, float* xs, int rows, int cols) =>
        MatVecF16Scaled(IsaSupport.Best, y, w, rowStride, xs, rows, cols);

    internal static void MatVecF16Scaled(Isa isa, float* y, Half* w, long rowStride, float* xs, int rows, int cols)
    {
        switch (isa)
        {
            case Isa.V512: K512.MatVecF16Scaled(y, w, rowStride, xs, rows, cols); break;
            case Isa.V256: K256.MatVecF16Scaled(y, w, rowStride, xs, rows, cols); break;
            case Isa.V128: K128.MatVecF16Scaled(y, w, rowStride, xs, rows, cols); break;
            default: VectorOpsReference.MatVecF16Scaled(y, w, rowStride, xs, rows, cols); break;
        }
    }

    // o[n] = weight[n] ⊙ x[n] / sqrt(mean(x²) + eps), llama2.c's rmsnorm; o may alias x
    public static void RmsNorm(float* o, float* x, float* weight, int n, float eps) =>
        RmsNorm(IsaSupport.Best, o, x, weight, n, eps);

    internal static void RmsNorm(Isa isa, float* o, float* x, float* weight, int n, float eps)
    {
        switch (isa)
        {
            case Isa.V512: K512.RmsNorm(o, x, weight, n, eps); break;
            case Isa.V256: K256.RmsNorm(o, x, weight, n, eps); break;
            case Isa.V128: K128.RmsNorm(o, x, weight, n, eps); break;
            default: VectorOpsReference.RmsNorm(o, x, weight, n, eps); break;
        }
    }

    // o[n] = (x - mean(x)) / sqrt(var(x) + eps) * weight[n] + bias[n]; o may be x
    public static void LayerNorm(float* o, float* x, float* weight, float* bias, int n, float eps) =>
        LayerNorm(IsaSupport.Best, o, x, weight, bias, n, eps);

    internal static void LayerNorm(Isa isa, float* o, float* x, float* weight, float* bias, int n, float eps)
    {
        switch (isa)
        {
            case Isa.V512: K512.LayerNorm(o, x, weight, bias, n, eps); break;
            case Isa.V256: K256.LayerNorm(o, x, weight, bias, n, eps); break;
            case Isa.V128: K128.LayerNorm(o, x, weight, bias, n, eps); break;
            default: VectorOpsReference.LayerNorm(o, x, weight, bias, n, eps); break;
        }
    }

    // x[n] = softmax(x / divisor), in place: exp(x/d - max) / Σ exp(x/d - max) (attention's scores over √headSize)
    public static void Softmax(float* x, int n, float divisor) => Softmax(IsaSupport.Best, x, n, divisor);

    internal static void Softmax(Isa isa, float* x, int n, float divisor)
    {
        switch (isa)
        {
            case Isa.V512: K512.Softmax(x, n, divisor); break;
            case Isa.V256: K256.Softmax(x, n, divisor); break;
            case Isa.V128: K128.Softmax(x, n, divisor); break;
            default: VectorOpsReference.Softmax(x, n, divisor); break;
        }
    }

    // x[n] = x where x > threshold, else 0, in place (ReLU at 0, FATReLU above)
    public static void Relu(float* x, int n, float threshold) => Relu(IsaSupport.Best, x, n, threshold);

    internal static void Relu(Isa isa, float* x, int n, float threshold)
    {
        switch (isa)
        {
            case Isa.V512: K512.Relu(x, n, threshold); break;
            case Isa.V256: K256.Relu(x, n, threshold); break;
            case Isa.V128: K128.Relu(x, n, threshold); break;
            default: VectorOpsReference.Relu(x, n, threshold); break;
        }
    }

    // SiLU of one value: bit for bit what Silu(x, n) gives it. One value needs only 128 bits: the exp computes each lane
    // alike at every width (VectorOpsTests.Silu), and the narrower one is cheaper (110M q8 decode, 1 thread, a SiLU per
    // neuron: 10.07 → 9.88 ms per token, and 9.87 → 9.60 with Silu(TF) inlined).
    public static float Silu(float x) => Silu(IsaSupport.Best, x);

    internal static float Silu(Isa isa, float x) => isa switch
    {
        Isa.V512 or Isa.V256 or Isa.V128 => K128.Silu(x),
        _ => VectorOpsReference.Silu(x),
    };

    // x[n] = x · (1 / (1 + e^-x)) (SiLU), in place; each element's result independent of n and of where it falls
    public static void Silu(float* x, int n) => Silu(IsaSupport.Best, x, n);

    internal static void Silu(Isa isa, float* x, int n)
    {
        switch (isa)
        {
            case Isa.V512: K512.Silu(x, n); break;
            case Isa.V256: K256.Silu(x, n); break;
            case Isa.V128: K128.Silu(x, n); break;
            default: VectorOpsReference.Silu(x, n); break;
        }
    }

    // y[n] += x[n]
    public static void Add(float* y, float* x, int n) => Add(IsaSupport.Best, y, x, n);

    internal static void Add(Isa isa, float* y, float* x, int n)
    {
        switch (isa)
        {
            case Isa.V512: K512.Add(y, x, n); break;
            case Isa.V256: K256.Add(y, x, n); break;
            case Isa.V128: K128.Add(y, x, n); break;
            default: VectorOpsReference.Add(y, x, n); break;
        }
    }
}
