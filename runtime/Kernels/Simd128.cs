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

    // A vector of Count = 4 lanes is its only quarter.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> Quarter(Vector128<float> v, int k) => v;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void StoreTransposed4(float* dst, Vector128<float> v0, Vector128<float> v1, Vector128<float> v2, Vector128<float> v3)
    {
        if (Sse.IsSupported)
        {
            Vector128<float> t0 = Sse.UnpackLow(v0, v1), t1 = Sse.UnpackHigh(v0, v1); // [a0 b0 a1 b1], [a2 b2 a3 b3]
            Vector128<float> t2 = Sse.UnpackLow(v2, v3), t3 = Sse.UnpackHigh(v2, v3);
            Sse.MoveLowToHigh(t0, t2).Store(dst); // [a0 b0 c0 d0]
            Sse.MoveHighToLow(t2, t0).Store(dst + 4);
            Sse.MoveLowToHigh(t1, t3).Store(dst + 8);
            Sse.MoveHighToLow(t3, t1).Store(dst + 12);
        }
        else if (AdvSimd.Arm64.IsSupported)
        {
            Vector128<float> t0 = AdvSimd.Arm64.ZipLow(v0, v1), t1 = AdvSimd.Arm64.ZipHigh(v0, v1);
            Vector128<float> t2 = AdvSimd.Arm64.ZipLow(v2, v3), t3 = AdvSimd.Arm64.ZipHigh(v2, v3);
            AdvSimd.Arm64.ZipLow(t0.AsDouble(), t2.AsDouble()).AsSingle().Store(dst);
            AdvSimd.Arm64.ZipHigh(t0.AsDouble(), t2.AsDouble()).AsSingle().Store(dst + 4);
            AdvSimd.Arm64.ZipLow(t1.AsDouble(), t3.AsDouble()).AsSingle().Store(dst + 8);
            AdvSimd.Arm64.ZipHigh(t1.AsDouble(), t3.AsDouble()).AsSingle().Store(dst + 12);
        }
        else
        {
            for (int i = 0; i < 4; i++)
            {
                dst[4 * i] = v0[i]; dst[4 * i + 1] = v1[i]; dst[4 * i + 2] = v2[i]; dst[4 * i + 3] = v3[i];
            }
        }
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
    public static (Vector128<float> Lower, Vector128<float> Upper) LoadScaledHalves(Half* p)
    {
        var (lower, upper) = Vector128.Widen(Vector128.Load((short*)p));
        return (HalfBits.Scaled<Vector128<float>, Vector128<int>, Simd128>(lower), HalfBits.Scaled<Vector128<float>, Vector128<int>, Simd128>(upper));
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

    public static (Vector128<float> Low, Vector128<float> High) Nibbles(Vector128<int> bytes) => SimdKernels<Vector128<float>, Vector128<int>, Simd128>.PortableNibbles(bytes);
    // x86's conversion rounds by MXCSR, which .NET leaves at nearest-even; arm64 has the rounding conversion itself.
    public static Vector128<int> RoundToInt(Vector128<float> v) =>
        Sse2.IsSupported ? Sse2.ConvertToVector128Int32(v) : AdvSimd.IsSupported ? AdvSimd.ConvertToInt32RoundToEven(v) : Vector128.ConvertToInt32(Vector128.Round(v));
    public static Vector128<float> Max(Vector128<float> a, Vector128<float> b) => Vector128.MaxNative(a, b);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void StoreSBytes(sbyte* p, Vector128<int> v)
    {
        var shorts = Vector128.Narrow(v, v);
        Unsafe.WriteUnaligned(p, Vector128.Narrow(shorts, shorts).AsInt32().ToScalar());
    }

    public static Vector128<int> Q8Bias(sbyte* x) => default;

    // A group as two 16-byte halves.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> DotQ8Group(sbyte* w, sbyte* x, Vector128<int> bias) =>
        Vector128.ConvertToSingle(DotBytes(DotBytes(Vector128<int>.Zero, Vector128.Load(w), Vector128.Load(x)), Vector128.Load(w + 16), Vector128.Load(x + 16)));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static (Vector128<float> A, Vector128<float> B) DotQ8Group2(sbyte* w, sbyte* xa, sbyte* xb, Vector128<int> biasA, Vector128<int> biasB)
    {
        Vector128<sbyte> lower = Vector128.Load(w), upper = Vector128.Load(w + 16);
        return (Vector128.ConvertToSingle(DotBytes(DotBytes(Vector128<int>.Zero, lower, Vector128.Load(xa)), upper, Vector128.Load(xa + 16))),
                Vector128.ConvertToSingle(DotBytes(DotBytes(Vector128<int>.Zero, lower, Vector128.Load(xb)), upper, Vector128.Load(xb + 16))));
    }

    // One group is Count/4 groups here: the single-group forms are the grouped ones.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<int> Q4Bias(sbyte* x)
    {
        var (low, high) = Q4Activations(x);
        return Q4Biases(low, high);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<int> DotQ4Group(byte* w, sbyte* x, Vector128<int> bias)
    {
        var (low, high) = Q4Activations(x);
        return DotQ4Groups(w, low, high, bias);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<int> AccumulateQuads(Vector128<int> partial, Vector128<int> w, sbyte* x) =>
        Ssse3.IsSupported ? MulAddPairs(partial, w, Vector128.Load((int*)x)) : DotQuads(partial, w, x);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<int> AddQuadSums(Vector128<int> acc, Vector128<int> partial) =>
        Ssse3.IsSupported ? acc + Sse2.MultiplyAddAdjacent(partial.AsInt16(), Vector128.Create((short)1)) : acc + partial;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<int> DotQuads(Vector128<int> acc, Vector128<int> w, sbyte* x)
    {
        var xs = Vector128.Load(x);
        if (Ssse3.IsSupported || Dp.IsSupported) return DotUnsignedBytes(acc, w.AsByte(), xs);
        // DotBytes' widening form sums bytes i, i + 4, i + 8, i + 12 into lane i; token lanes need bytes 4i..4i + 3.
        var (wLow, wHigh) = Vector128.Widen(w.AsSByte());
        var (xLow, xHigh) = Vector128.Widen(xs);
        Vector128<short> low = wLow * xLow, high = wHigh * xHigh; // products of bytes 0-7 and 8-15, each within int16
        if (AdvSimd.Arm64.IsSupported)
            return acc + AdvSimd.Arm64.AddPairwise(AdvSimd.AddPairwiseWidening(low), AdvSimd.AddPairwiseWidening(high));
        int* lanes = stackalloc int[4];
        for (int i = 0; i < 4; i++)
        {
            var products = i < 2 ? low : high;
            int k = 4 * (i % 2);
            lanes[i] = products[k] + products[k + 1] + products[k + 2] + products[k + 3];
        }
        return acc + Vector128.Load(lanes);
    }

    // The group's 16 bytes hold its first half in the low nibbles and its second half in the high ones.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<int> DotQ4Groups(byte* w, Vector128<int> xLow, Vector128<int> xHigh, Vector128<int> bias)
    {
        var bytes = Vector128.Load(w);
        var low = bytes & Vector128.Create((byte)0xF);
        var high = Vector128.ShiftRightLogical(bytes.AsUInt16(), 4).AsByte() & Vector128.Create((byte)0xF);
        // Nibble products as Simd256.DotNibbles adds them: two registers' pair sums as int16, then widened once.
        if (Ssse3.IsSupported)
            return bias + Sse2.MultiplyAddAdjacent(Ssse3.MultiplyAddAdjacent(low, xLow.AsSByte()) + Ssse3.MultiplyAddAdjacent(high, xHigh.AsSByte()), Vector128.Create((short)1));
        return DotUnsignedBytes(DotUnsignedBytes(bias, low, xLow.AsSByte()), high, xHigh.AsSByte());
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static (Vector128<int> Low, Vector128<int> High) Q4Activations(sbyte* x) => (Vector128.Load(x).AsInt32(), Vector128.Load(x + 16).AsInt32());

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<int> Q4Biases(Vector128<int> xLow, Vector128<int> xHigh)
    {
        var eight = Vector128.Create((sbyte)-8);
        return DotBytes(DotBytes(Vector128<int>.Zero, eight, xLow.AsSByte()), eight, xHigh.AsSByte());
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<int> SumQuads4(Vector128<int> v0, Vector128<int> v1, Vector128<int> v2, Vector128<int> v3) => SumLanes4(v0, v1, v2, v3);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<int> SumLanes4(Vector128<int> v0, Vector128<int> v1, Vector128<int> v2, Vector128<int> v3)
    {
        if (!Sse2.IsSupported) return Vector128.Create(Vector128.Sum(v0), Vector128.Sum(v1), Vector128.Sum(v2), Vector128.Sum(v3));
        var pairs01 = Sse2.UnpackLow(v0, v1) + Sse2.UnpackHigh(v0, v1); // [a0 + a2, b0 + b2, a1 + a3, b1 + b3]
        var pairs23 = Sse2.UnpackLow(v2, v3) + Sse2.UnpackHigh(v2, v3);
        // 64-bit unpacks to pair the halves, added as ints (a 64-bit add would carry between them)
        return Sse2.UnpackLow(pairs01.AsInt64(), pairs23.AsInt64()).AsInt32() + Sse2.UnpackHigh(pairs01.AsInt64(), pairs23.AsInt64()).AsInt32();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void UnpackQ4Pairs(byte* to, byte* q0, byte* q1)
    {
        var nibble = Vector128.Create((byte)0xF);
        Vector128<byte> b0 = Vector128.Load(q0), b1 = Vector128.Load(q1);
        Interleave(to, b0 & nibble, b1 & nibble);
        Interleave(to + 32, Vector128.ShiftRightLogical(b0.AsUInt16(), 4).AsByte() & nibble, Vector128.ShiftRightLogical(b1.AsUInt16(), 4).AsByte() & nibble);
    }

    // to[32] = u0 v0 u1 v1 … u15 v15
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void Interleave(byte* to, Vector128<byte> u, Vector128<byte> v)
    {
        if (Sse2.IsSupported)
        {
            Sse2.UnpackLow(u, v).Store(to);
            Sse2.UnpackHigh(u, v).Store(to + 16);
            return;
        }
        (Vector128.WidenLower(u) | (Vector128.WidenLower(v) << 8)).Store((ushort*)to);
        (Vector128.WidenUpper(u) | (Vector128.WidenUpper(v) << 8)).Store((ushort*)(to + 16));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<int> MulAddPairs(Vector128<int> acc, Vector128<int> pairs, Vector128<int> coefficients)
    {
        if (Ssse3.IsSupported) return (acc.AsInt16() + Ssse3.MultiplyAddAdjacent(pairs.AsByte(), coefficients.AsSByte())).AsInt32();
        // The bytes of each int16 lane apart: unsigned from the pairs, sign-extended from the coefficients.
        Vector128<short> u = pairs.AsInt16(), k = coefficients.AsInt16();
        return (acc.AsInt16() + (u & Vector128.Create((short)0xFF)) * ((k << 8) >> 8) + (u >>> 8) * (k >> 8)).AsInt32();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static (Vector128<int> Low, Vector128<int> High) WidenShorts(Vector128<int> v) => Vector128.Widen(v.AsInt16());

    public static Vector128<int> Load(int* p) => Vector128.Load(p);

    public static void Store(int* p, Vector128<int> v) => v.Store(p);

    public static void InterleaveQuads(sbyte* to, sbyte* x, long stride)
    {
        // Quads 0-3 and 4-7 of the four tokens, each a 4x4 transpose of ints (as StoreTransposed4 does floats).
        for (int half = 0; half < 2; half++)
            StoreTransposed4((float*)to + 16 * half, Vector128.Load(x + 16 * half).AsSingle(), Vector128.Load(x + stride + 16 * half).AsSingle(),
                             Vector128.Load(x + 2 * stride + 16 * half).AsSingle(), Vector128.Load(x + 3 * stride + 16 * half).AsSingle());
    }

    // acc + the 16 products w·x of unsigned w ≤ 127 and signed x, in DotBytes' lanes: SSSE3's own operand form, without
    // moving w's sign onto x.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector128<int> DotUnsignedBytes(Vector128<int> acc, Vector128<byte> w, Vector128<sbyte> x)
    {
        if (Ssse3.IsSupported) return acc + Sse2.MultiplyAddAdjacent(Ssse3.MultiplyAddAdjacent(w, x), Vector128.Create((short)1));
        return DotBytes(acc, w.AsSByte(), x);
    }

    // acc + the 16 products w·x summed into 4 int lanes. SSSE3 multiplies unsigned by signed bytes, so |w| meets x with
    // w's sign moved onto it; adjacent pairs sum to int16 without saturating (2·127·127 < 2^15), then pairs again to int32.
    // arm64 has SDOT where the dot-product extension is present, else widening multiplies.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector128<int> DotBytes(Vector128<int> acc, Vector128<sbyte> w, Vector128<sbyte> x)
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
