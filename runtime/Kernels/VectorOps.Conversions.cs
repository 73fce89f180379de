using System.Runtime.Intrinsics;

namespace AotFlash.Kernels;

using K128 = SimdKernels<Vector128<float>, Vector128<int>, Simd128>;
using K256 = SimdKernels<Vector256<float>, Vector256<int>, Simd256>;
using K512 = SimdKernels<Vector512<float>, Vector512<int>, Simd512>;

public static unsafe partial class VectorOps
{
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
