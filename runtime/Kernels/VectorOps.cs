using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.Arm;
using System.Runtime.Intrinsics.X86;

namespace AotFlash.Kernels;

using K128 = SimdKernels<Vector128<float>, Vector128<int>, Simd128>;
using K256 = SimdKernels<Vector256<float>, Vector256<int>, Simd256>;
using K512 = SimdKernels<Vector512<float>, Vector512<int>, Simd512>;
using Q128 = QuantKernels<Vector128<float>, Vector128<int>, Simd128>;
using Q256 = QuantKernels<Vector256<float>, Vector256<int>, Simd256>;

/// <summary>
/// The numeric kernels of inference. Each operation dispatches on <see cref="IsaSupport.Best"/> to one
/// body written once over the vector width (<see cref="SimdKernels{TF,TI,S}"/>); Isa.Scalar runs
/// <see cref="VectorOpsReference"/>. The internal overloads taking an <see cref="Isa"/> let tests force each body.
/// Pointers need no alignment; sizes may be any value ≥ 0. Outputs must not overlap inputs unless stated.
/// </summary>
public static unsafe class VectorOps
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

    // w[n] · x[n], w one q8 row (see Layout.RowBytes; n a multiple of 32), x prepared by Quantization.QuantizeActivations.
    // A group of 32 int8 is one 256-bit register, so V512 runs the V256 body (two groups per register would need two
    // scales per register and a lane shuffle per group).
    public static float DotQ8(byte* w, byte* xq, int n) => DotQ8(IsaSupport.Best, w, xq, n);

    internal static float DotQ8(Isa isa, byte* w, byte* xq, int n) => isa switch
    {
        Isa.V512 or Isa.V256 => Q256.DotQ8(w, xq, n),
        Isa.V128 => Q128.DotQ8(w, xq, n),
        _ => VectorOpsReference.DotQ8(w, xq, n),
    };

    // w[n] · x[n], w one q4 row, x prepared; as DotQ8
    public static float DotQ4(byte* w, byte* xq, int n) => DotQ4(IsaSupport.Best, w, xq, n);

    internal static float DotQ4(Isa isa, byte* w, byte* xq, int n) => isa switch
    {
        Isa.V512 or Isa.V256 => Q256.DotQ4(w, xq, n),
        Isa.V128 => Q128.DotQ4(w, xq, n),
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
            case Isa.V512 or Isa.V256: Q256.MatVecQ4(y, w, rowStride, xq, rows, cols); break;
            case Isa.V128: Q128.MatVecQ4(y, w, rowStride, xq, rows, cols); break;
            default: VectorOpsReference.MatVecQ4(y, w, rowStride, xq, rows, cols); break;
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

    // x[n] = exp(x - max) / Σ exp(x - max), in place
    public static void Softmax(float* x, int n) => Softmax(IsaSupport.Best, x, n);

    internal static void Softmax(Isa isa, float* x, int n)
    {
        switch (isa)
        {
            case Isa.V512: K512.Softmax(x, n); break;
            case Isa.V256: K256.Softmax(x, n); break;
            case Isa.V128: K128.Softmax(x, n); break;
            default: VectorOpsReference.Softmax(x, n); break;
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

    // dst[n] = (Half)src[n], round to nearest even
    public static void ToHalf(Half* dst, float* src, long n) => ToHalf(IsaSupport.Best, dst, src, n);

    internal static void ToHalf(Isa isa, Half* dst, float* src, long n)
    {
        switch (isa)
        {
            case Isa.V512: K512.ToHalf(dst, src, n); break;
            case Isa.V256: K256.ToHalf(dst, src, n); break;
            case Isa.V128: K128.ToHalf(dst, src, n); break;
            default: VectorOpsReference.ToHalf(dst, src, n); break;
        }
    }

    // dst[n] = (float)src[n], exact
    public static void ToSingle(float* dst, Half* src, long n) => ToSingle(IsaSupport.Best, dst, src, n);

    internal static void ToSingle(Isa isa, float* dst, Half* src, long n)
    {
        switch (isa)
        {
            case Isa.V512: K512.ToSingle(dst, src, n); break;
            case Isa.V256: K256.ToSingle(dst, src, n); break;
            case Isa.V128: K128.ToSingle(dst, src, n); break;
            default: VectorOpsReference.ToSingle(dst, src, n); break;
        }
    }

    // dst[n] = w[n] dequantised, w one q8 row, exact (one product per element)
    public static void ToSingleQ8(float* dst, byte* w, int n) => ToSingleQ8(IsaSupport.Best, dst, w, n);

    internal static void ToSingleQ8(Isa isa, float* dst, byte* w, int n)
    {
        switch (isa)
        {
            case Isa.V512: K512.ToSingleQ8(dst, w, n); break;
            case Isa.V256: K256.ToSingleQ8(dst, w, n); break;
            case Isa.V128: K128.ToSingleQ8(dst, w, n); break;
            default: VectorOpsReference.ToSingleQ8(dst, w, n); break;
        }
    }

    // dst[n] = w[n] dequantised, w one q4 row, exact
    public static void ToSingleQ4(float* dst, byte* w, int n) => ToSingleQ4(IsaSupport.Best, dst, w, n);

    internal static void ToSingleQ4(Isa isa, float* dst, byte* w, int n)
    {
        switch (isa)
        {
            case Isa.V512: K512.ToSingleQ4(dst, w, n); break;
            case Isa.V256: K256.ToSingleQ4(dst, w, n); break;
            case Isa.V128: K128.ToSingleQ4(dst, w, n); break;
            default: VectorOpsReference.ToSingleQ4(dst, w, n); break;
        }
    }
}

/// <summary>
/// The vector operations the kernels need, over float lanes (TF) and int lanes of the same width (TI).
/// (The vector types' operators cannot be reached through generic constraints: the interfaces that carry them are not in the reference assemblies.)
/// Implemented by <see cref="Simd128"/>, <see cref="Simd256"/> and <see cref="Simd512"/>, each a thin
/// forwarder to the cross-platform Vector128/256/512 API, so the JIT specialises every kernel per width.
/// </summary>
internal unsafe interface ISimd<TF, TI> where TF : struct where TI : struct
{
    static abstract int Count { get; }
    static abstract TF Zero { get; }
    static abstract TF Splat(float value);
    static abstract TI Splat(int value);
    static abstract TF Load(float* p);
    static abstract void Store(float* p, TF v);
    static abstract TF Add(TF a, TF b);
    static abstract TF Sub(TF a, TF b);
    static abstract TF Mul(TF a, TF b);
    static abstract TF Div(TF a, TF b);
    /// <summary>a·b + c, fused where the hardware has FMA.</summary>
    static abstract TF MulAdd(TF a, TF b, TF c);
    static abstract float Sum(TF v);
    static abstract TF GreaterThan(TF a, TF b);
    static abstract TF Select(TF mask, TF ifTrue, TF ifFalse);
    /// <summary>First lane equal (IEEE ==) to value, or -1.</summary>
    static abstract TI Add(TI a, TI b);
    static abstract TI Sub(TI a, TI b);
    static abstract TI And(TI a, TI b);
    static abstract TI Or(TI a, TI b);
    static abstract TI Xor(TI a, TI b);
    static abstract TI ShiftLeft(TI v, int count);
    static abstract TI ShiftRightLogical(TI v, int count);
    static abstract TI GreaterThan(TI a, TI b);
    static abstract TI LessThan(TI a, TI b);
    static abstract TI Select(TI mask, TI ifTrue, TI ifFalse);
    static abstract TI AsInt(TF v);
    static abstract TF AsFloat(TI v);
    /// <summary>Loads 2·Count halves, zero-extending their bit patterns into two int vectors.</summary>
    static abstract (TI Lower, TI Upper) LoadHalves(Half* p);
    /// <summary>Stores the low 16 bits of each lane of lower then upper as 2·Count halves.</summary>
    static abstract void StoreHalves(Half* p, TI lower, TI upper);
    /// <summary>Loads Count signed bytes, sign-extended into the int lanes.</summary>
    static abstract TI LoadSBytes(sbyte* p);
    /// <summary>Loads Count bytes, zero-extended into the int lanes.</summary>
    static abstract TI LoadBytes(byte* p);
    /// <summary>Each int lane converted to float (exact for the small integers quants hold).</summary>
    static abstract TF ToFloat(TI v);
}

/// <summary>
/// One group of 32 quantised weights times 32 int8 activations, for <see cref="QuantKernels{TF,TI,S}"/>: the exact
/// integer Σ w_j·x_j, spread over the lanes of the result (lane sums stay below 2^24, so the floats are exact).
/// </summary>
internal unsafe interface IQuantDot<TF> where TF : struct
{
    /// <summary>w: 32 int8 quants.</summary>
    static abstract TF DotQ8Group(sbyte* w, sbyte* x);
    /// <summary>w: 16 bytes of q4 quants, values q - 8.</summary>
    static abstract TF DotQ4Group(byte* w, sbyte* x);
}

internal readonly unsafe struct Simd128 : ISimd<Vector128<float>, Vector128<int>>, IQuantDot<Vector128<float>>
{
    public static int Count => Vector128<float>.Count;
    public static Vector128<float> Zero => Vector128<float>.Zero;
    public static Vector128<float> Splat(float value) => Vector128.Create(value);
    public static Vector128<int> Splat(int value) => Vector128.Create(value);
    public static Vector128<float> Load(float* p) => Vector128.Load(p);
    public static void Store(float* p, Vector128<float> v) => v.Store(p);
    public static Vector128<float> Add(Vector128<float> a, Vector128<float> b) => a + b;
    public static Vector128<float> Sub(Vector128<float> a, Vector128<float> b) => a - b;
    public static Vector128<float> Mul(Vector128<float> a, Vector128<float> b) => a * b;
    public static Vector128<float> Div(Vector128<float> a, Vector128<float> b) => a / b;
    public static Vector128<float> MulAdd(Vector128<float> a, Vector128<float> b, Vector128<float> c) => Vector128.MultiplyAddEstimate(a, b, c);
    public static float Sum(Vector128<float> v) => Vector128.Sum(v);
    public static Vector128<float> GreaterThan(Vector128<float> a, Vector128<float> b) => Vector128.GreaterThan(a, b);
    public static Vector128<float> Select(Vector128<float> mask, Vector128<float> ifTrue, Vector128<float> ifFalse) => Vector128.ConditionalSelect(mask, ifTrue, ifFalse);
    public static Vector128<int> Add(Vector128<int> a, Vector128<int> b) => a + b;
    public static Vector128<int> Sub(Vector128<int> a, Vector128<int> b) => a - b;
    public static Vector128<int> And(Vector128<int> a, Vector128<int> b) => a & b;
    public static Vector128<int> Or(Vector128<int> a, Vector128<int> b) => a | b;
    public static Vector128<int> Xor(Vector128<int> a, Vector128<int> b) => a ^ b;
    public static Vector128<int> ShiftLeft(Vector128<int> v, int count) => v << count;
    public static Vector128<int> ShiftRightLogical(Vector128<int> v, int count) => v >>> count;
    public static Vector128<int> GreaterThan(Vector128<int> a, Vector128<int> b) => Vector128.GreaterThan(a, b);
    public static Vector128<int> LessThan(Vector128<int> a, Vector128<int> b) => Vector128.LessThan(a, b);
    public static Vector128<int> Select(Vector128<int> mask, Vector128<int> ifTrue, Vector128<int> ifFalse) => Vector128.ConditionalSelect(mask, ifTrue, ifFalse);
    public static Vector128<int> AsInt(Vector128<float> v) => v.AsInt32();
    public static Vector128<float> AsFloat(Vector128<int> v) => v.AsSingle();

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static (Vector128<int> Lower, Vector128<int> Upper) LoadHalves(Half* p)
    {
        var (lower, upper) = Vector128.Widen(Vector128.Load((ushort*)p));
        return (lower.AsInt32(), upper.AsInt32());
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void StoreHalves(Half* p, Vector128<int> lower, Vector128<int> upper) =>
        Vector128.Narrow(lower.AsUInt32(), upper.AsUInt32()).Store((ushort*)p);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<int> LoadSBytes(sbyte* p) =>
        Vector128.WidenLower(Vector128.WidenLower(Vector128.CreateScalarUnsafe(Unsafe.ReadUnaligned<int>(p)).AsSByte()));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<int> LoadBytes(byte* p) =>
        Vector128.WidenLower(Vector128.WidenLower(Vector128.CreateScalarUnsafe(Unsafe.ReadUnaligned<int>(p)).AsByte())).AsInt32();

    public static Vector128<float> ToFloat(Vector128<int> v) => Vector128.ConvertToSingle(v);

    // A group as two 16-byte halves.
    public static Vector128<float> DotQ8Group(sbyte* w, sbyte* x) =>
        Vector128.ConvertToSingle(DotBytes(DotBytes(Vector128<int>.Zero, Vector128.Load(w), Vector128.Load(x)), Vector128.Load(w + 16), Vector128.Load(x + 16)));

    // The group's 16 bytes hold its first half in the low nibbles and its second half in the high ones.
    public static Vector128<float> DotQ4Group(byte* w, sbyte* x)
    {
        var bytes = Vector128.Load(w);
        var eight = Vector128.Create((sbyte)8);
        var low = (bytes & Vector128.Create((byte)0xF)).AsSByte() - eight;
        var high = (Vector128.ShiftRightLogical(bytes.AsUInt16(), 4).AsByte() & Vector128.Create((byte)0xF)).AsSByte() - eight;
        return Vector128.ConvertToSingle(DotBytes(DotBytes(Vector128<int>.Zero, low, Vector128.Load(x)), high, Vector128.Load(x + 16)));
    }

    // acc + the 16 products w·x summed into 4 int lanes. SSSE3 multiplies unsigned by signed bytes, so |w| meets x with
    // w's sign moved onto it; adjacent pairs sum to int16 without saturating (2·127·127 < 2^15), then pairs again to int32.
    // arm64 has SDOT where the dot-product extension is present, else widening multiplies.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector128<int> DotBytes(Vector128<int> acc, Vector128<sbyte> w, Vector128<sbyte> x)
    {
        if (Ssse3.IsSupported)
            return acc + Sse2.MultiplyAddAdjacent(Ssse3.MultiplyAddAdjacent(Ssse3.Abs(w), Ssse3.Sign(x, w)), Vector128.Create((short)1));
        if (Dp.IsSupported) return Dp.DotProduct(acc, w, x);
        var (wLow, wHigh) = Vector128.Widen(w);
        var (xLow, xHigh) = Vector128.Widen(x);
        var (a, b) = Vector128.Widen(wLow * xLow); // each product fits int16: |w·x| ≤ 127·127
        var (c, d) = Vector128.Widen(wHigh * xHigh);
        return acc + (a + b) + (c + d);
    }
}

internal readonly unsafe struct Simd256 : ISimd<Vector256<float>, Vector256<int>>, IQuantDot<Vector256<float>>
{
    public static int Count => Vector256<float>.Count;
    public static Vector256<float> Zero => Vector256<float>.Zero;
    public static Vector256<float> Splat(float value) => Vector256.Create(value);
    public static Vector256<int> Splat(int value) => Vector256.Create(value);
    public static Vector256<float> Load(float* p) => Vector256.Load(p);
    public static void Store(float* p, Vector256<float> v) => v.Store(p);
    public static Vector256<float> Add(Vector256<float> a, Vector256<float> b) => a + b;
    public static Vector256<float> Sub(Vector256<float> a, Vector256<float> b) => a - b;
    public static Vector256<float> Mul(Vector256<float> a, Vector256<float> b) => a * b;
    public static Vector256<float> Div(Vector256<float> a, Vector256<float> b) => a / b;
    public static Vector256<float> MulAdd(Vector256<float> a, Vector256<float> b, Vector256<float> c) => Vector256.MultiplyAddEstimate(a, b, c);
    public static float Sum(Vector256<float> v) => Vector256.Sum(v);
    public static Vector256<float> GreaterThan(Vector256<float> a, Vector256<float> b) => Vector256.GreaterThan(a, b);
    public static Vector256<float> Select(Vector256<float> mask, Vector256<float> ifTrue, Vector256<float> ifFalse) => Vector256.ConditionalSelect(mask, ifTrue, ifFalse);
    public static Vector256<int> Add(Vector256<int> a, Vector256<int> b) => a + b;
    public static Vector256<int> Sub(Vector256<int> a, Vector256<int> b) => a - b;
    public static Vector256<int> And(Vector256<int> a, Vector256<int> b) => a & b;
    public static Vector256<int> Or(Vector256<int> a, Vector256<int> b) => a | b;
    public static Vector256<int> Xor(Vector256<int> a, Vector256<int> b) => a ^ b;
    public static Vector256<int> ShiftLeft(Vector256<int> v, int count) => v << count;
    public static Vector256<int> ShiftRightLogical(Vector256<int> v, int count) => v >>> count;
    public static Vector256<int> GreaterThan(Vector256<int> a, Vector256<int> b) => Vector256.GreaterThan(a, b);
    public static Vector256<int> LessThan(Vector256<int> a, Vector256<int> b) => Vector256.LessThan(a, b);
    public static Vector256<int> Select(Vector256<int> mask, Vector256<int> ifTrue, Vector256<int> ifFalse) => Vector256.ConditionalSelect(mask, ifTrue, ifFalse);
    public static Vector256<int> AsInt(Vector256<float> v) => v.AsInt32();
    public static Vector256<float> AsFloat(Vector256<int> v) => v.AsSingle();

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static (Vector256<int> Lower, Vector256<int> Upper) LoadHalves(Half* p)
    {
        var (lower, upper) = Vector256.Widen(Vector256.Load((ushort*)p));
        return (lower.AsInt32(), upper.AsInt32());
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void StoreHalves(Half* p, Vector256<int> lower, Vector256<int> upper) =>
        Vector256.Narrow(lower.AsUInt32(), upper.AsUInt32()).Store((ushort*)p);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<int> LoadSBytes(sbyte* p) =>
        Vector256.WidenLower(Vector128.WidenLower(Vector128.CreateScalarUnsafe(Unsafe.ReadUnaligned<long>(p)).AsSByte()).ToVector256Unsafe());

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<int> LoadBytes(byte* p) =>
        Vector256.WidenLower(Vector128.WidenLower(Vector128.CreateScalarUnsafe(Unsafe.ReadUnaligned<long>(p)).AsByte()).ToVector256Unsafe()).AsInt32();

    public static Vector256<float> ToFloat(Vector256<int> v) => Vector256.ConvertToSingle(v);

    public static Vector256<float> DotQ8Group(sbyte* w, sbyte* x) => Vector256.ConvertToSingle(DotBytes(Vector256.Load(w), Vector256.Load(x)));

    // The group's 16 bytes hold its first half in the low nibbles and its second half in the high ones.
    public static Vector256<float> DotQ4Group(byte* w, sbyte* x)
    {
        var bytes = Vector128.Load(w);
        var nibble = Vector128.Create((byte)0xF);
        var quants = Vector256.Create(bytes & nibble, Vector128.ShiftRightLogical(bytes.AsUInt16(), 4).AsByte() & nibble).AsSByte();
        return Vector256.ConvertToSingle(DotBytes(quants - Vector256.Create((sbyte)8), Vector256.Load(x)));
    }

    // The 32 products w·x summed into 8 int lanes; with AVX2 as Simd128.DotBytes does with SSSE3.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<int> DotBytes(Vector256<sbyte> w, Vector256<sbyte> x)
    {
        if (Avx2.IsSupported)
            return Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(Avx2.Abs(w), Avx2.Sign(x, w)), Vector256.Create((short)1));
        var (wLow, wHigh) = Vector256.Widen(w);
        var (xLow, xHigh) = Vector256.Widen(x);
        var (a, b) = Vector256.Widen(wLow * xLow); // each product fits int16: |w·x| ≤ 127·127
        var (c, d) = Vector256.Widen(wHigh * xHigh);
        return (a + b) + (c + d);
    }
}

internal readonly unsafe struct Simd512 : ISimd<Vector512<float>, Vector512<int>>
{
    public static int Count => Vector512<float>.Count;
    public static Vector512<float> Zero => Vector512<float>.Zero;
    public static Vector512<float> Splat(float value) => Vector512.Create(value);
    public static Vector512<int> Splat(int value) => Vector512.Create(value);
    public static Vector512<float> Load(float* p) => Vector512.Load(p);
    public static void Store(float* p, Vector512<float> v) => v.Store(p);
    public static Vector512<float> Add(Vector512<float> a, Vector512<float> b) => a + b;
    public static Vector512<float> Sub(Vector512<float> a, Vector512<float> b) => a - b;
    public static Vector512<float> Mul(Vector512<float> a, Vector512<float> b) => a * b;
    public static Vector512<float> Div(Vector512<float> a, Vector512<float> b) => a / b;
    public static Vector512<float> MulAdd(Vector512<float> a, Vector512<float> b, Vector512<float> c) => Vector512.MultiplyAddEstimate(a, b, c);
    public static float Sum(Vector512<float> v) => Vector512.Sum(v);
    public static Vector512<float> GreaterThan(Vector512<float> a, Vector512<float> b) => Vector512.GreaterThan(a, b);
    public static Vector512<float> Select(Vector512<float> mask, Vector512<float> ifTrue, Vector512<float> ifFalse) => Vector512.ConditionalSelect(mask, ifTrue, ifFalse);
    public static Vector512<int> Add(Vector512<int> a, Vector512<int> b) => a + b;
    public static Vector512<int> Sub(Vector512<int> a, Vector512<int> b) => a - b;
    public static Vector512<int> And(Vector512<int> a, Vector512<int> b) => a & b;
    public static Vector512<int> Or(Vector512<int> a, Vector512<int> b) => a | b;
    public static Vector512<int> Xor(Vector512<int> a, Vector512<int> b) => a ^ b;
    public static Vector512<int> ShiftLeft(Vector512<int> v, int count) => v << count;
    public static Vector512<int> ShiftRightLogical(Vector512<int> v, int count) => v >>> count;
    public static Vector512<int> GreaterThan(Vector512<int> a, Vector512<int> b) => Vector512.GreaterThan(a, b);
    public static Vector512<int> LessThan(Vector512<int> a, Vector512<int> b) => Vector512.LessThan(a, b);
    public static Vector512<int> Select(Vector512<int> mask, Vector512<int> ifTrue, Vector512<int> ifFalse) => Vector512.ConditionalSelect(mask, ifTrue, ifFalse);
    public static Vector512<int> AsInt(Vector512<float> v) => v.AsInt32();
    public static Vector512<float> AsFloat(Vector512<int> v) => v.AsSingle();

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static (Vector512<int> Lower, Vector512<int> Upper) LoadHalves(Half* p)
    {
        var (lower, upper) = Vector512.Widen(Vector512.Load((ushort*)p));
        return (lower.AsInt32(), upper.AsInt32());
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void StoreHalves(Half* p, Vector512<int> lower, Vector512<int> upper) =>
        Vector512.Narrow(lower.AsUInt32(), upper.AsUInt32()).Store((ushort*)p);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<int> LoadSBytes(sbyte* p)
    {
        var (lower, upper) = Vector128.Widen(Vector128.Load(p));
        var shorts = Vector256.Create(lower, upper);
        return Vector512.Create(Vector256.WidenLower(shorts), Vector256.WidenUpper(shorts));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<int> LoadBytes(byte* p)
    {
        var (lower, upper) = Vector128.Widen(Vector128.Load(p));
        var shorts = Vector256.Create(lower, upper);
        return Vector512.Create(Vector256.WidenLower(shorts), Vector256.WidenUpper(shorts)).AsInt32();
    }

    public static Vector512<float> ToFloat(Vector512<int> v) => Vector512.ConvertToSingle(v);
}

/// <summary>
/// Every kernel body, written once over the vector width: S supplies Count lanes of float (TF) and int (TI).
/// Main loops take whole vectors; the last n mod Count elements go through a scalar tail.
/// </summary>
internal static unsafe class SimdKernels<TF, TI, S>
    where TF : struct
    where TI : struct
    where S : struct, ISimd<TF, TI>
{
    // a[n] · b[n]
    public static float Dot(float* a, float* b, int n)
    {
        int c = S.Count, i = 0;
        // Four independent accumulators, so consecutive FMAs don't wait on each other's latency.
        TF acc0 = S.Zero, acc1 = S.Zero, acc2 = S.Zero, acc3 = S.Zero;
        for (; i <= n - 4 * c; i += 4 * c)
        {
            acc0 = S.MulAdd(S.Load(a + i), S.Load(b + i), acc0);
            acc1 = S.MulAdd(S.Load(a + i + c), S.Load(b + i + c), acc1);
            acc2 = S.MulAdd(S.Load(a + i + 2 * c), S.Load(b + i + 2 * c), acc2);
            acc3 = S.MulAdd(S.Load(a + i + 3 * c), S.Load(b + i + 3 * c), acc3);
        }
        for (; i <= n - c; i += c) acc0 = S.MulAdd(S.Load(a + i), S.Load(b + i), acc0);
        float sum = S.Sum(S.Add(S.Add(acc0, acc1), S.Add(acc2, acc3)));
        for (; i < n; i++) sum += a[i] * b[i];
        return sum;
    }

    // w[n] (half) · x[n]
    public static float DotF16(Half* w, float* x, int n)
    {
        int c = S.Count, i = 0;
        TF acc0 = S.Zero, acc1 = S.Zero;
        // One load of 2·Count halves widens into two float vectors.
        for (; i <= n - 2 * c; i += 2 * c)
        {
            var (lower, upper) = S.LoadHalves(w + i);
            acc0 = S.MulAdd(HalfToSingle(lower), S.Load(x + i), acc0);
            acc1 = S.MulAdd(HalfToSingle(upper), S.Load(x + i + c), acc1);
        }
        float sum = S.Sum(S.Add(acc0, acc1));
        for (; i < n; i++) sum += (float)w[i] * x[i];
        return sum;
    }

    // y[n] += a · x[n]. Multiply then add, not fused, so each element rounds exactly as the scalar reference does.
    public static void Axpy(float* y, float a, float* x, int n)
    {
        int c = S.Count, i = 0;
        TF av = S.Splat(a);
        for (; i <= n - c; i += c) S.Store(y + i, S.Add(S.Load(y + i), S.Mul(av, S.Load(x + i))));
        for (; i < n; i++) y[i] += a * x[i];
    }

    // y[n] += a · x[n] (x half); not fused, as in Axpy
    public static void AxpyF16(float* y, float a, Half* x, int n)
    {
        int c = S.Count, i = 0;
        TF av = S.Splat(a);
        for (; i <= n - 2 * c; i += 2 * c)
        {
            var (lower, upper) = S.LoadHalves(x + i);
            S.Store(y + i, S.Add(S.Load(y + i), S.Mul(av, HalfToSingle(lower))));
            S.Store(y + i + c, S.Add(S.Load(y + i + c), S.Mul(av, HalfToSingle(upper))));
        }
        for (; i < n; i++) y[i] += a * (float)x[i];
    }

    // y[rows] = W[rows, cols] · x[cols]; row r at w + r·rowStride. y must not overlap x.
    // Four rows per pass share each load of x: matvec is memory-bound, and this halves the loads per FMA
    // while keeping four independent accumulator chains in flight.
    public static void MatVec(float* y, float* w, long rowStride, float* x, int rows, int cols)
    {
        int c = S.Count, r = 0;
        for (; r <= rows - 4; r += 4)
        {
            float* w0 = w + r * rowStride, w1 = w0 + rowStride, w2 = w1 + rowStride, w3 = w2 + rowStride;
            TF acc0 = S.Zero, acc1 = S.Zero, acc2 = S.Zero, acc3 = S.Zero;
            int j = 0;
            for (; j <= cols - c; j += c)
            {
                TF xv = S.Load(x + j);
                acc0 = S.MulAdd(S.Load(w0 + j), xv, acc0);
                acc1 = S.MulAdd(S.Load(w1 + j), xv, acc1);
                acc2 = S.MulAdd(S.Load(w2 + j), xv, acc2);
                acc3 = S.MulAdd(S.Load(w3 + j), xv, acc3);
            }
            float s0 = S.Sum(acc0), s1 = S.Sum(acc1), s2 = S.Sum(acc2), s3 = S.Sum(acc3);
            for (; j < cols; j++)
            {
                float xj = x[j];
                s0 += w0[j] * xj;
                s1 += w1[j] * xj;
                s2 += w2[j] * xj;
                s3 += w3[j] * xj;
            }
            y[r] = s0;
            y[r + 1] = s1;
            y[r + 2] = s2;
            y[r + 3] = s3;
        }
        for (; r < rows; r++) y[r] = Dot(w + r * rowStride, x, cols);
    }

    // y[rows] = W[rows, cols] · x[cols], W half; row r at w + r·rowStride. Blocked by four rows as MatVec.
    public static void MatVecF16(float* y, Half* w, long rowStride, float* x, int rows, int cols)
    {
        int c = S.Count, r = 0;
        for (; r <= rows - 4; r += 4)
        {
            Half* w0 = w + r * rowStride, w1 = w0 + rowStride, w2 = w1 + rowStride, w3 = w2 + rowStride;
            TF acc0 = S.Zero, acc1 = S.Zero, acc2 = S.Zero, acc3 = S.Zero;
            int j = 0;
            for (; j <= cols - 2 * c; j += 2 * c)
            {
                TF xLower = S.Load(x + j), xUpper = S.Load(x + j + c);
                var (lower, upper) = S.LoadHalves(w0 + j);
                acc0 = S.MulAdd(HalfToSingle(upper), xUpper, S.MulAdd(HalfToSingle(lower), xLower, acc0));
                (lower, upper) = S.LoadHalves(w1 + j);
                acc1 = S.MulAdd(HalfToSingle(upper), xUpper, S.MulAdd(HalfToSingle(lower), xLower, acc1));
                (lower, upper) = S.LoadHalves(w2 + j);
                acc2 = S.MulAdd(HalfToSingle(upper), xUpper, S.MulAdd(HalfToSingle(lower), xLower, acc2));
                (lower, upper) = S.LoadHalves(w3 + j);
                acc3 = S.MulAdd(HalfToSingle(upper), xUpper, S.MulAdd(HalfToSingle(lower), xLower, acc3));
            }
            float s0 = S.Sum(acc0), s1 = S.Sum(acc1), s2 = S.Sum(acc2), s3 = S.Sum(acc3);
            for (; j < cols; j++)
            {
                float xj = x[j];
                s0 += (float)w0[j] * xj;
                s1 += (float)w1[j] * xj;
                s2 += (float)w2[j] * xj;
                s3 += (float)w3[j] * xj;
            }
            y[r] = s0;
            y[r + 1] = s1;
            y[r + 2] = s2;
            y[r + 3] = s3;
        }
        for (; r < rows; r++) y[r] = DotF16(w + r * rowStride, x, cols);
    }

    // y[n] += a · w[n], w one q8 row: a times the group's scale once per group, then multiply and add unfused as the reference
    public static void AxpyQ8(float* y, float a, byte* w, int n)
    {
        int c = S.Count, groups = n / Quantization.Group;
        Half* scales = (Half*)w;
        sbyte* q = (sbyte*)(w + 2L * groups);
        for (int g = 0; g < groups; g++, q += Quantization.Group, y += Quantization.Group)
        {
            TF av = S.Splat(a * (float)scales[g]);
            for (int k = 0; k < Quantization.Group; k += c)
                S.Store(y + k, S.Add(S.Load(y + k), S.Mul(av, S.ToFloat(S.LoadSBytes(q + k)))));
        }
    }

    // y[n] += a · w[n], w one q4 row; as AxpyQ8
    public static void AxpyQ4(float* y, float a, byte* w, int n)
    {
        int c = S.Count, groups = n / Quantization.Group;
        Half* scales = (Half*)w;
        byte* q = w + 2L * groups;
        for (int g = 0; g < groups; g++, q += Quantization.Group / 2, y += Quantization.Group)
        {
            TF av = S.Splat(a * (float)scales[g]);
            for (int k = 0; k < Quantization.Group / 2; k += c)
            {
                var (low, high) = Nibbles(S.LoadBytes(q + k));
                float* upper = y + Quantization.Group / 2 + k;
                S.Store(y + k, S.Add(S.Load(y + k), S.Mul(av, low)));
                S.Store(upper, S.Add(S.Load(upper), S.Mul(av, high)));
            }
        }
    }

    // o[n] = weight[n] ⊙ (x[n] / sqrt(Σx²/n + eps)); o may alias x. Only Σx² is reordered; the rest is llama2.c's formula.
    public static void RmsNorm(float* o, float* x, float* weight, int n, float eps)
    {
        float ss = Dot(x, x, n);
        ss /= n;
        ss += eps;
        ss = 1f / MathF.Sqrt(ss);
        int c = S.Count, i = 0;
        TF sv = S.Splat(ss);
        for (; i <= n - c; i += c) S.Store(o + i, S.Mul(S.Load(weight + i), S.Mul(sv, S.Load(x + i))));
        for (; i < n; i++) o[i] = weight[i] * (ss * x[i]);
    }

    // o[n] = (x - mean) * rstd * weight + bias: two passes (mean, then the variance of x - mean, which stays accurate
    // where the mean is large), then one fused pass.
    public static void LayerNorm(float* o, float* x, float* weight, float* bias, int n, float eps)
    {
        int c = S.Count, i = 0;
        TF acc = S.Zero;
        for (; i <= n - c; i += c) acc = S.Add(acc, S.Load(x + i));
        float sum = S.Sum(acc);
        for (; i < n; i++) sum += x[i];
        float mean = sum / n;
        TF mv = S.Splat(mean);
        acc = S.Zero;
        for (i = 0; i <= n - c; i += c)
        {
            TF d = S.Sub(S.Load(x + i), mv);
            acc = S.MulAdd(d, d, acc);
        }
        float ss = S.Sum(acc);
        for (; i < n; i++) ss += (x[i] - mean) * (x[i] - mean);
        float rstd = 1f / MathF.Sqrt(ss / n + eps);
        TF rv = S.Splat(rstd);
        for (i = 0; i <= n - c; i += c)
            S.Store(o + i, S.MulAdd(S.Mul(S.Sub(S.Load(x + i), mv), rv), S.Load(weight + i), S.Load(bias + i)));
        for (; i < n; i++) o[i] = (x[i] - mean) * rstd * weight[i] + bias[i];
    }

    // x[n] = exp(x - max) / Σ exp(x - max), in place. The exp and the sum stay scalar and in order, so the
    // result matches C bit for bit; only the max (order-free) and the division are vectorised.
    public static void Softmax(float* x, int n)
    {
        if (n == 0) return;
        float max = Max(x, n);
        float sum = 0f;
        for (int k = 0; k < n; k++)
        {
            x[k] = MathF.Exp(x[k] - max);
            sum += x[k];
        }
        int c = S.Count, i = 0;
        TF sv = S.Splat(sum);
        for (; i <= n - c; i += c) S.Store(x + i, S.Div(S.Load(x + i), sv));
        for (; i < n; i++) x[i] /= sum;
    }

    // y[n] += x[n]
    public static void Add(float* y, float* x, int n)
    {
        int c = S.Count, i = 0;
        for (; i <= n - c; i += c) S.Store(y + i, S.Add(S.Load(y + i), S.Load(x + i)));
        for (; i < n; i++) y[i] += x[i];
    }

    // dst[n] = (Half)src[n]
    public static void ToHalf(Half* dst, float* src, long n)
    {
        int c = S.Count;
        long i = 0;
        for (; i <= n - 2 * c; i += 2 * c) S.StoreHalves(dst + i, SingleToHalf(S.Load(src + i)), SingleToHalf(S.Load(src + i + c)));
        for (; i < n; i++) dst[i] = (Half)src[i];
    }

    // dst[n] = (float)src[n]
    public static void ToSingle(float* dst, Half* src, long n)
    {
        int c = S.Count;
        long i = 0;
        for (; i <= n - 2 * c; i += 2 * c)
        {
            var (lower, upper) = S.LoadHalves(src + i);
            S.Store(dst + i, HalfToSingle(lower));
            S.Store(dst + i + c, HalfToSingle(upper));
        }
        for (; i < n; i++) dst[i] = (float)src[i];
    }

    // dst[n] = w[n] dequantised, w one q8 row: q · scale, exactly as the reference
    public static void ToSingleQ8(float* dst, byte* w, int n)
    {
        int c = S.Count, groups = n / Quantization.Group;
        Half* scales = (Half*)w;
        sbyte* q = (sbyte*)(w + 2L * groups);
        for (int g = 0; g < groups; g++, q += Quantization.Group, dst += Quantization.Group)
        {
            TF scale = S.Splat((float)scales[g]);
            for (int k = 0; k < Quantization.Group; k += c) S.Store(dst + k, S.Mul(S.ToFloat(S.LoadSBytes(q + k)), scale));
        }
    }

    // dst[n] = w[n] dequantised, w one q4 row: (q - 8) · scale
    public static void ToSingleQ4(float* dst, byte* w, int n)
    {
        int c = S.Count, groups = n / Quantization.Group;
        Half* scales = (Half*)w;
        byte* q = w + 2L * groups;
        for (int g = 0; g < groups; g++, q += Quantization.Group / 2, dst += Quantization.Group)
        {
            TF scale = S.Splat((float)scales[g]);
            for (int k = 0; k < Quantization.Group / 2; k += c)
            {
                var (low, high) = Nibbles(S.LoadBytes(q + k));
                S.Store(dst + k, S.Mul(low, scale));
                S.Store(dst + Quantization.Group / 2 + k, S.Mul(high, scale));
            }
        }
    }

    // q4 bytes (one per int lane) → their low and high nibbles as the signed values q - 8, in float
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static (TF Low, TF High) Nibbles(TI bytes)
    {
        TI eight = S.Splat(8);
        return (S.ToFloat(S.Sub(S.And(bytes, S.Splat(0xF)), eight)), S.ToFloat(S.Sub(S.ShiftRightLogical(bytes, 4), eight)));
    }

    // max of x[n], n ≥ 1, as C's `m = x[0]; if (x[i] > m) m = x[i]` finds it: NaNs after x[0] are skipped
    static float Max(float* x, int n)
    {
        int c = S.Count, i = 0;
        float max = x[0];
        if (n >= c)
        {
            TF m = S.Splat(max);
            for (; i <= n - c; i += c)
            {
                TF v = S.Load(x + i);
                m = S.Select(S.GreaterThan(v, m), v, m);
            }
            float* lanes = stackalloc float[c];
            S.Store(lanes, m);
            for (int k = 0; k < c; k++)
                if (lanes[k] > max) max = lanes[k];
        }
        for (; i < n; i++)
            if (x[i] > max) max = x[i];
        return max;
    }

    // Half bit patterns (one per int lane, zero-extended) to floats, exact for every input including
    // subnormals, ±0, ±inf and NaN (quieted, payload kept, as (float)Half does). No float subnormal is ever
    // an operand, as those are slow on some x86 cores. After Maratyszcza's FP16 library (fp16_ieee_to_fp32_value).
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static TF HalfToSingle(TI h)
    {
        TI sign = S.ShiftLeft(S.And(h, S.Splat(0x8000)), 16);
        TI magnitude = S.ShiftLeft(h, 17); // exponent and mantissa at the top, sign shifted out
        // Normal, inf and NaN halves: exponent rebased by 224 (so 31 lands on 255), then scaled by 2^-112.
        // The product is exact; inf stays inf and a NaN stays NaN, quieted by the multiply.
        TF normal = S.Mul(S.AsFloat(S.Add(S.ShiftRightLogical(magnitude, 4), S.Splat(0xE0 << 23))), S.AsFloat(S.Splat(15 << 23))); // 2^-112
        // Zero and subnormal halves (magnitude m < 0x400): m under 0.5's exponent, minus 0.5, is m·2^-24 exactly.
        TI m = S.ShiftRightLogical(magnitude, 17);
        TF tiny = S.Sub(S.AsFloat(S.Or(m, S.Splat(126 << 23))), S.Splat(0.5f));
        TI bits = S.Select(S.LessThan(m, S.Splat(0x400)), S.AsInt(tiny), S.AsInt(normal));
        return S.AsFloat(S.Or(bits, sign));
    }

    // Floats to half bit patterns (in the low 16 bits of each int lane), rounding to nearest even exactly as
    // (Half)float does, including subnormal results, overflow to inf, and NaN (quieted, top payload bits kept).
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static TI SingleToHalf(TF x)
    {
        TI f = S.AsInt(x);
        TI magnitude = S.And(f, S.Splat(0x7FFFFFFF));
        TI sign = S.ShiftRightLogical(S.Xor(f, magnitude), 16);
        // |x| < 2^-14 (subnormal or zero half): adding 0.5 puts the half's ulp, 2^-24, at the float's last
        // mantissa bit, so the FPU's own round-to-nearest-even rounds; subtracting 0.5's bits leaves the half.
        TI tiny = S.Sub(S.AsInt(S.Add(S.AsFloat(magnitude), S.Splat(0.5f))), S.Splat(0x3F000000));
        // Normal half: rebias the exponent (127 to 15, as -112 << 23), add 0xFFF plus the lowest kept bit
        // (ties to even), and drop 13 mantissa bits. A carry rounds up into the exponent, to inf from 65520.
        TI odd = S.And(S.ShiftRightLogical(magnitude, 13), S.Splat(1));
        TI normal = S.ShiftRightLogical(S.Add(S.Add(magnitude, S.Splat(unchecked((int)0xC8000FFF))), odd), 13);
        // |x| ≥ 65536, inf or NaN.
        TI special = S.Select(S.GreaterThan(magnitude, S.Splat(0x7F800000)),
            S.Or(S.Splat(0x7E00), S.And(S.ShiftRightLogical(magnitude, 13), S.Splat(0x3FF))), S.Splat(0x7C00));
        TI h = S.Select(S.LessThan(magnitude, S.Splat(0x38800000)), tiny, normal);
        h = S.Select(S.LessThan(magnitude, S.Splat(0x47800000)), h, special);
        return S.Or(h, sign);
    }
}

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
            total = S.MulAdd(S.Splat((float)scales[g] * xScales[g]), G.Dot(q, x), total);
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
                t0 = S.MulAdd(S.Splat((float)((Half*)w0)[g] * xs), G.Dot(w0 + q, xg), t0);
                t1 = S.MulAdd(S.Splat((float)((Half*)w1)[g] * xs), G.Dot(w1 + q, xg), t1);
                t2 = S.MulAdd(S.Splat((float)((Half*)w2)[g] * xs), G.Dot(w2 + q, xg), t2);
                t3 = S.MulAdd(S.Splat((float)((Half*)w3)[g] * xs), G.Dot(w3 + q, xg), t3);
            }
            y[r] = S.Sum(t0);
            y[r + 1] = S.Sum(t1);
            y[r + 2] = S.Sum(t2);
            y[r + 3] = S.Sum(t3);
        }
        for (; r < rows; r++) y[r] = Dot<G>(w + r * rowStride, xq, cols);
    }
}
