using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.Arm;
using System.Runtime.Intrinsics.X86;

namespace AotFlash.Kernels;

internal readonly unsafe struct Simd128 : ISimd<Vector128<float>, Vector128<int>>, IQuantDot<Vector128<float>, Vector128<int>>
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
    public static Vector128<float> FusedMulAdd(Vector128<float> a, Vector128<float> b, Vector128<float> c) => Vector128.FusedMultiplyAdd(a, b, c);
    public static float Sum(Vector128<float> v) => Vector128.Sum(v);

    // Vector128.Sum's (x0 + x1) + (x2 + x3) transposed over four vectors, as Simd512.Sum4 (x86; elsewhere four Sums).
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Sum4(float* sums, Vector128<float> v0, Vector128<float> v1, Vector128<float> v2, Vector128<float> v3)
    {
        if (!Sse.IsSupported)
        {
            sums[0] = Sum(v0); sums[1] = Sum(v1); sums[2] = Sum(v2); sums[3] = Sum(v3);
            return;
        }
        var pairs01 = Sse.Shuffle(v0, v1, 0x88) + Sse.Shuffle(v0, v1, 0xDD);
        var pairs23 = Sse.Shuffle(v2, v3, 0x88) + Sse.Shuffle(v2, v3, 0xDD);
        (Sse.Shuffle(pairs01, pairs23, 0x88) + Sse.Shuffle(pairs01, pairs23, 0xDD)).Store(sums);
    }
    public static Vector128<float> Exp(Vector128<float> v) => Vector128.Exp(v);
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
    public static (Vector128<float> Lower, Vector128<float> Upper) LoadHalves(Half* p)
    {
        var (lower, upper) = Vector128.Widen(Vector128.Load((ushort*)p));
        return (HalfBits.ToSingle<Vector128<float>, Vector128<int>, Simd128>(lower.AsInt32()), HalfBits.ToSingle<Vector128<float>, Vector128<int>, Simd128>(upper.AsInt32()));
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
    public static Vector128<float> Round(Vector128<float> v) => Vector128.Round(v);
    public static Vector128<int> ToInt(Vector128<float> v) => Vector128.ConvertToInt32(v);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void StoreSBytes(sbyte* p, Vector128<int> v)
    {
        var shorts = Vector128.Narrow(v, v);
        Unsafe.WriteUnaligned(p, Vector128.Narrow(shorts, shorts).AsInt32().ToScalar());
    }

    public static Vector128<int> Q8Bias(sbyte* x) => default;

    // A group as two 16-byte halves.
    public static Vector128<float> DotQ8Group(sbyte* w, sbyte* x, Vector128<int> bias) =>
        Vector128.ConvertToSingle(DotBytes(DotBytes(Vector128<int>.Zero, Vector128.Load(w), Vector128.Load(x)), Vector128.Load(w + 16), Vector128.Load(x + 16)));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static (Vector128<float> A, Vector128<float> B) DotQ8Group2(sbyte* w, sbyte* xa, sbyte* xb, Vector128<int> biasA, Vector128<int> biasB)
    {
        Vector128<sbyte> lower = Vector128.Load(w), upper = Vector128.Load(w + 16);
        return (Vector128.ConvertToSingle(DotBytes(DotBytes(Vector128<int>.Zero, lower, Vector128.Load(xa)), upper, Vector128.Load(xa + 16))),
                Vector128.ConvertToSingle(DotBytes(DotBytes(Vector128<int>.Zero, lower, Vector128.Load(xb)), upper, Vector128.Load(xb + 16))));
    }

    public static Vector128<int> Q4Bias(sbyte* x)
    {
        var eight = Vector128.Create((sbyte)-8);
        return DotBytes(DotBytes(Vector128<int>.Zero, eight, Vector128.Load(x)), eight, Vector128.Load(x + 16));
    }

    // The group's 16 bytes hold its first half in the low nibbles and its second half in the high ones.
    public static Vector128<float> DotQ4Group(byte* w, sbyte* x, Vector128<int> bias)
    {
        var bytes = Vector128.Load(w);
        var low = bytes & Vector128.Create((byte)0xF);
        var high = Vector128.ShiftRightLogical(bytes.AsUInt16(), 4).AsByte() & Vector128.Create((byte)0xF);
        return Vector128.ConvertToSingle(DotUnsignedBytes(DotUnsignedBytes(bias, low, Vector128.Load(x)), high, Vector128.Load(x + 16)));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static (Vector128<float> A, Vector128<float> B) DotQ4Group2(byte* w, sbyte* xa, sbyte* xb, Vector128<int> biasA, Vector128<int> biasB)
    {
        Vector128<byte> low = Vector128.Load(w), high = Vector128.Load(w + 16);
        return (Vector128.ConvertToSingle(DotUnsignedBytes(DotUnsignedBytes(biasA, low, Vector128.Load(xa)), high, Vector128.Load(xa + 16))),
                Vector128.ConvertToSingle(DotUnsignedBytes(DotUnsignedBytes(biasB, low, Vector128.Load(xb)), high, Vector128.Load(xb + 16))));
    }

    // acc + the 16 products w·x of unsigned w ≤ 127 and signed x, in DotBytes' lanes: SSSE3's own operand form, without
    // moving w's sign onto x.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector128<int> DotUnsignedBytes(Vector128<int> acc, Vector128<byte> w, Vector128<sbyte> x)
    {
        if (Ssse3.IsSupported) return acc + Sse2.MultiplyAddAdjacent(Ssse3.MultiplyAddAdjacent(w, x), Vector128.Create((short)1));
        return DotBytes(acc, w.AsSByte(), x);
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
