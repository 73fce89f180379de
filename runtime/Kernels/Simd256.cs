using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace AotFlash.Kernels;

internal readonly unsafe struct Simd256 : ISimd<Vector256<float>, Vector256<int>>, IQuantDot<Vector256<float>, Vector256<int>>
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
    public static Vector256<float> FusedMulAdd(Vector256<float> a, Vector256<float> b, Vector256<float> c) => Vector256.FusedMultiplyAdd(a, b, c);
    public static float Sum(Vector256<float> v) => Vector256.Sum(v);

    // Vector256.Sum's additions ((x0 + x1) + (x2 + x3) in each 128-bit lane, then the two lanes) transposed over four
    // vectors, as Simd512.Sum4: 11 instructions where four Sums take about 44.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Sum4(float* sums, Vector256<float> v0, Vector256<float> v1, Vector256<float> v2, Vector256<float> v3)
    {
        if (!Avx.IsSupported)
        {
            sums[0] = Sum(v0); sums[1] = Sum(v1); sums[2] = Sum(v2); sums[3] = Sum(v3);
            return;
        }
        var pairs01 = Avx.Shuffle(v0, v1, 0x88) + Avx.Shuffle(v0, v1, 0xDD);
        var pairs23 = Avx.Shuffle(v2, v3, 0x88) + Avx.Shuffle(v2, v3, 0xDD);
        var lanes = Avx.Shuffle(pairs01, pairs23, 0x88) + Avx.Shuffle(pairs01, pairs23, 0xDD);
        (lanes.GetLower() + lanes.GetUpper()).Store(sums);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> Quarter(Vector256<float> v, int k) => k == 0 ? v.GetLower() : v.GetUpper();

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void StoreTransposed4(float* dst, Vector256<float> v0, Vector256<float> v1, Vector256<float> v2, Vector256<float> v3)
    {
        if (!Avx.IsSupported)
        {
            Simd128.StoreTransposed4(dst, v0.GetLower(), v1.GetLower(), v2.GetLower(), v3.GetLower());
            Simd128.StoreTransposed4(dst + 16, v0.GetUpper(), v1.GetUpper(), v2.GetUpper(), v3.GetUpper());
            return;
        }
        // The 4x4 transpose in each 128-bit half, then the halves' rows paired for 256-bit stores.
        Vector256<float> t0 = Avx.UnpackLow(v0, v1), t1 = Avx.UnpackHigh(v0, v1);
        Vector256<float> t2 = Avx.UnpackLow(v2, v3), t3 = Avx.UnpackHigh(v2, v3);
        Vector256<float> r0 = Avx.Shuffle(t0, t2, 0x44), r1 = Avx.Shuffle(t0, t2, 0xEE); // [a0 b0 c0 d0 | a4 ..], [a1 .. | a5 ..]
        Vector256<float> r2 = Avx.Shuffle(t1, t3, 0x44), r3 = Avx.Shuffle(t1, t3, 0xEE);
        Avx.Permute2x128(r0, r1, 0x20).Store(dst);
        Avx.Permute2x128(r2, r3, 0x20).Store(dst + 8);
        Avx.Permute2x128(r0, r1, 0x31).Store(dst + 16);
        Avx.Permute2x128(r2, r3, 0x31).Store(dst + 24);
    }

    public static Vector256<float> Exp(Vector256<float> v) => Vector256.Exp(v);
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
    public static (Vector256<float> Lower, Vector256<float> Upper) LoadHalves(Half* p)
    {
        var (lower, upper) = Vector256.Widen(Vector256.Load((ushort*)p));
        return (HalfBits.ToSingle<Vector256<float>, Vector256<int>, Simd256>(lower.AsInt32()), HalfBits.ToSingle<Vector256<float>, Vector256<int>, Simd256>(upper.AsInt32()));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static (Vector256<float> Lower, Vector256<float> Upper) LoadScaledHalves(Half* p)
    {
        // Two vpmovsxwd from memory, where the portable form loads, then shuffles each half out.
        if (Avx2.IsSupported)
            return (HalfBits.Scaled<Vector256<float>, Vector256<int>, Simd256>(Avx2.ConvertToVector256Int32((short*)p)),
                    HalfBits.Scaled<Vector256<float>, Vector256<int>, Simd256>(Avx2.ConvertToVector256Int32((short*)p + Count)));
        var (lower, upper) = Vector256.Widen(Vector256.Load((short*)p));
        return (HalfBits.Scaled<Vector256<float>, Vector256<int>, Simd256>(lower), HalfBits.Scaled<Vector256<float>, Vector256<int>, Simd256>(upper));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void StoreHalves(Half* p, Vector256<int> lower, Vector256<int> upper) =>
        Vector256.Narrow(lower.AsUInt32(), upper.AsUInt32()).Store((ushort*)p);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<int> LoadSBytes(sbyte* p) =>
        Avx2.IsSupported ? Avx2.ConvertToVector256Int32(p) // one vpmovsxbd from memory
        : Vector256.WidenLower(Vector128.WidenLower(Vector128.CreateScalarUnsafe(Unsafe.ReadUnaligned<long>(p)).AsSByte()).ToVector256Unsafe());

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<int> LoadBytes(byte* p) =>
        Avx2.IsSupported ? Avx2.ConvertToVector256Int32(p) // one vpmovzxbd from memory
        : Vector256.WidenLower(Vector128.WidenLower(Vector128.CreateScalarUnsafe(Unsafe.ReadUnaligned<long>(p)).AsByte()).ToVector256Unsafe()).AsInt32();

    public static Vector256<float> ToFloat(Vector256<int> v) => Vector256.ConvertToSingle(v);

    public static (Vector256<float> Low, Vector256<float> High) Nibbles(Vector256<int> bytes) => SimdKernels<Vector256<float>, Vector256<int>, Simd256>.PortableNibbles(bytes);
    // x86's conversion rounds by MXCSR, which .NET leaves at nearest-even.
    public static Vector256<int> RoundToInt(Vector256<float> v) => Avx.IsSupported ? Avx.ConvertToVector256Int32(v) : Vector256.ConvertToInt32(Vector256.Round(v));
    public static Vector256<float> Max(Vector256<float> a, Vector256<float> b) => Vector256.MaxNative(a, b);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void StoreSBytes(sbyte* p, Vector256<int> v)
    {
        var shorts = Vector128.Narrow(v.GetLower(), v.GetUpper());
        Unsafe.WriteUnaligned(p, Vector128.Narrow(shorts, shorts).AsInt64().ToScalar());
    }

    // With VNNI, Σ w·x = Σ (w + 128)·x - 128·Σx: the quants, offset to unsigned bytes, meet x in the one instruction
    // that multiplies bytes, without DotBytes' moving of w's sign onto x per token; the -128·Σx part is shared by the
    // rows. The integer sums are the same either way.
    public static Vector256<int> Q8Bias(sbyte* x) => AvxVnni.IsSupported ? MinusTimesSum(128, Vector256.Load(x)) : default;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> DotQ8Group(sbyte* w, sbyte* x, Vector256<int> bias) =>
        Vector256.ConvertToSingle(DotSignedBytes(bias, Vector256.Load(w), Vector256.Load(x)));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static (Vector256<float> A, Vector256<float> B) DotQ8Group2(sbyte* w, sbyte* xa, sbyte* xb, Vector256<int> biasA, Vector256<int> biasB)
    {
        var quants = Vector256.Load(w);
        return (Vector256.ConvertToSingle(DotSignedBytes(biasA, quants, Vector256.Load(xa))), Vector256.ConvertToSingle(DotSignedBytes(biasB, quants, Vector256.Load(xb))));
    }

    // Σ w·x of signed bytes plus Q8Bias's bias, in DotBytes' lanes.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<int> DotSignedBytes(Vector256<int> bias, Vector256<sbyte> w, Vector256<sbyte> x) =>
        AvxVnni.IsSupported ? DotUnsignedBytes(bias, w.AsByte() ^ Vector256.Create((byte)128), x) : DotBytes(w, x);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<int> Q4Bias(sbyte* x) => MinusEightTimesSum(Vector256.Load(x));

    // -8·Σx in DotBytes' lanes
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<int> MinusEightTimesSum(Vector256<sbyte> x) =>
        AvxVnni.IsSupported ? MinusTimesSum(8, x) : DotBytes(Vector256.Create((sbyte)-8), x);

    // -m·Σx in DotBytes' lanes with VNNI: one multiply of the unsigned m by x, negated.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<int> MinusTimesSum(byte m, Vector256<sbyte> x) =>
        Vector256<int>.Zero - AvxVnni.MultiplyWideningAndAdd(Vector256<int>.Zero, Vector256.Create(m), x);

    // The group's 16 bytes hold its first half in the low nibbles and its second half in the high ones.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<int> DotQ4Group(byte* w, sbyte* x, Vector256<int> bias)
    {
        var bytes = Vector128.Load(w);
        var nibble = Vector128.Create((byte)0xF);
        var quants = Vector256.Create(bytes & nibble, Vector128.ShiftRightLogical(bytes.AsUInt16(), 4).AsByte() & nibble);
        return DotUnsignedBytes(bias, quants, Vector256.Load(x));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<int> DotQuads(Vector256<int> acc, Vector256<int> w, sbyte* x)
    {
        if (Avx2.IsSupported) return DotUnsignedBytes(acc, w.AsByte(), Vector256.Load(x));
        return Vector256.Create(Simd128.DotQuads(acc.GetLower(), w.GetLower(), x), Simd128.DotQuads(acc.GetUpper(), w.GetUpper(), x + 16));
    }

    // Without VNNI, byte products come as int16 pair sums (vpmaddubsw), which small enough operands let add up as int16
    // before one widening vpmaddwd; with VNNI they go straight into int lanes.
    static bool PairSumsInShorts => !AvxVnni.IsSupported && Avx2.IsSupported;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<int> AccumulateQuads(Vector256<int> partial, Vector256<int> w, sbyte* x) =>
        PairSumsInShorts ? MulAddPairs(partial, w, Vector256.Load((int*)x)) : DotQuads(partial, w, x);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<int> AddQuadSums(Vector256<int> acc, Vector256<int> partial) =>
        PairSumsInShorts ? acc + Avx2.MultiplyAddAdjacent(partial.AsInt16(), Vector256.Create((short)1)) : acc + partial;

    // Two groups at once: one 32-byte load holds both groups' packed quants, so their low nibbles fill one register and
    // their high nibbles another, each meeting the two groups' matching activation halves (Q4Activations).
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<int> DotQ4Groups(byte* w, Vector256<int> xLow, Vector256<int> xHigh, Vector256<int> bias)
    {
        var bytes = Vector256.Load(w);
        var nibble = Vector256.Create((byte)0xF);
        var low = bytes & nibble;
        var high = Vector256.ShiftRightLogical(bytes.AsUInt16(), 4).AsByte() & nibble;
        return DotNibbles(bias, low, xLow.AsSByte(), high, xHigh.AsSByte());
    }

    // acc + the products of two registers of nibbles (0-15) with int8 activations, summed into the int lanes as
    // DotUnsignedBytes sums each. Without VNNI the two registers' pair sums are added as int16 before widening: each is at
    // most 2·15·127 in magnitude, so their sum fits (one widening multiply-add and one add fewer).
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<int> DotNibbles(Vector256<int> acc, Vector256<byte> low, Vector256<sbyte> xLow, Vector256<byte> high, Vector256<sbyte> xHigh)
    {
        if (PairSumsInShorts)
            return acc + Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(low, xLow) + Avx2.MultiplyAddAdjacent(high, xHigh), Vector256.Create((short)1));
        return DotUnsignedBytes(DotUnsignedBytes(acc, low, xLow), high, xHigh);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static (Vector256<int> Low, Vector256<int> High) Q4Activations(sbyte* x)
    {
        Vector256<sbyte> first = Vector256.Load(x), second = Vector256.Load(x + 32);
        if (Avx2.IsSupported)
            return (Avx2.Permute2x128(first, second, 0x20).AsInt32(), Avx2.Permute2x128(first, second, 0x31).AsInt32());
        return (Vector256.Create(first.GetLower(), second.GetLower()).AsInt32(), Vector256.Create(first.GetUpper(), second.GetUpper()).AsInt32());
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<int> Q4Biases(Vector256<int> xLow, Vector256<int> xHigh) =>
        MinusEightTimesSum(xLow.AsSByte()) + MinusEightTimesSum(xHigh.AsSByte());

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<int> SumQuads4(Vector256<int> v0, Vector256<int> v1, Vector256<int> v2, Vector256<int> v3)
    {
        if (!Avx2.IsSupported)
            return Vector256.Create(Simd128.SumLanes4(v0.GetLower(), v1.GetLower(), v2.GetLower(), v3.GetLower()),
                                    Simd128.SumLanes4(v0.GetUpper(), v1.GetUpper(), v2.GetUpper(), v3.GetUpper()));
        var pairs01 = Avx2.UnpackLow(v0, v1) + Avx2.UnpackHigh(v0, v1);
        var pairs23 = Avx2.UnpackLow(v2, v3) + Avx2.UnpackHigh(v2, v3);
        return Avx2.UnpackLow(pairs01.AsInt64(), pairs23.AsInt64()).AsInt32() + Avx2.UnpackHigh(pairs01.AsInt64(), pairs23.AsInt64()).AsInt32();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<int> SumLanes4(Vector256<int> v0, Vector256<int> v1, Vector256<int> v2, Vector256<int> v3)
    {
        var quads = SumQuads4(v0, v1, v2, v3);
        return quads.GetLower() + quads.GetUpper();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void UnpackQ4Pairs(byte* to, byte* q0, byte* q1)
    {
        if (!Avx2.IsSupported)
        {
            Simd128.UnpackQ4Pairs(to, q0, q1);
            return;
        }
        // Each row's 16 bytes zero-extended to int16 lanes, row 1's in the high bytes: lane j holds both rows' byte j,
        // whose low nibbles are element j and high nibbles element j + 16.
        var both = Avx2.ConvertToVector256Int16(q0) | (Avx2.ConvertToVector256Int16(q1) << 8);
        var nibbles = Vector256.Create((short)0x0F0F);
        (both & nibbles).Store((short*)to);
        ((both >>> 4) & nibbles).Store((short*)(to + 32));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<int> MulAddPairs(Vector256<int> acc, Vector256<int> pairs, Vector256<int> coefficients)
    {
        if (Avx2.IsSupported) return (acc.AsInt16() + Avx2.MultiplyAddAdjacent(pairs.AsByte(), coefficients.AsSByte())).AsInt32();
        return Vector256.Create(Simd128.MulAddPairs(acc.GetLower(), pairs.GetLower(), coefficients.GetLower()),
                                Simd128.MulAddPairs(acc.GetUpper(), pairs.GetUpper(), coefficients.GetUpper()));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static (Vector256<int> Low, Vector256<int> High) WidenShorts(Vector256<int> v) => Vector256.Widen(v.AsInt16());

    public static Vector256<int> Load(int* p) => Vector256.Load(p);

    public static void Store(int* p, Vector256<int> v) => v.Store(p);

    // An 8x8 transpose of ints: the eight tokens' groups (eight quads each) become eight vectors of one quad per token.
    public static void InterleaveQuads(sbyte* to, sbyte* x, long stride)
    {
        if (!Avx2.IsSupported)
        {
            int* first = stackalloc int[32], second = stackalloc int[32]; // [quad][tokens 0-3], [quad][tokens 4-7]
            Simd128.InterleaveQuads((sbyte*)first, x, stride);
            Simd128.InterleaveQuads((sbyte*)second, x + 4 * stride, stride);
            for (int k = 0; k < 8; k++) Vector256.Create(Vector128.Load(first + 4 * k), Vector128.Load(second + 4 * k)).Store((int*)to + 8 * k);
            return;
        }
        Vector256<int> v0 = Vector256.Load((int*)x), v1 = Vector256.Load((int*)(x + stride));
        Vector256<int> v2 = Vector256.Load((int*)(x + 2 * stride)), v3 = Vector256.Load((int*)(x + 3 * stride));
        Vector256<int> v4 = Vector256.Load((int*)(x + 4 * stride)), v5 = Vector256.Load((int*)(x + 5 * stride));
        Vector256<int> v6 = Vector256.Load((int*)(x + 6 * stride)), v7 = Vector256.Load((int*)(x + 7 * stride));
        // [v0.0 v1.0 v0.1 v1.1 | v0.4 v1.4 v0.5 v1.5] and [v0.2 v1.2 v0.3 v1.3 | v0.6 ...], and so on
        Vector256<int> t0 = Avx2.UnpackLow(v0, v1), t1 = Avx2.UnpackHigh(v0, v1), t2 = Avx2.UnpackLow(v2, v3), t3 = Avx2.UnpackHigh(v2, v3);
        Vector256<int> t4 = Avx2.UnpackLow(v4, v5), t5 = Avx2.UnpackHigh(v4, v5), t6 = Avx2.UnpackLow(v6, v7), t7 = Avx2.UnpackHigh(v6, v7);
        // [v0.0 v1.0 v2.0 v3.0 | v0.4 v1.4 v2.4 v3.4], ...
        Vector256<int> u0 = Avx2.UnpackLow(t0.AsInt64(), t2.AsInt64()).AsInt32(), u1 = Avx2.UnpackHigh(t0.AsInt64(), t2.AsInt64()).AsInt32();
        Vector256<int> u2 = Avx2.UnpackLow(t1.AsInt64(), t3.AsInt64()).AsInt32(), u3 = Avx2.UnpackHigh(t1.AsInt64(), t3.AsInt64()).AsInt32();
        Vector256<int> u4 = Avx2.UnpackLow(t4.AsInt64(), t6.AsInt64()).AsInt32(), u5 = Avx2.UnpackHigh(t4.AsInt64(), t6.AsInt64()).AsInt32();
        Vector256<int> u6 = Avx2.UnpackLow(t5.AsInt64(), t7.AsInt64()).AsInt32(), u7 = Avx2.UnpackHigh(t5.AsInt64(), t7.AsInt64()).AsInt32();
        int* quads = (int*)to;
        Avx2.Permute2x128(u0, u4, 0x20).Store(quads);
        Avx2.Permute2x128(u1, u5, 0x20).Store(quads + 8);
        Avx2.Permute2x128(u2, u6, 0x20).Store(quads + 16);
        Avx2.Permute2x128(u3, u7, 0x20).Store(quads + 24);
        Avx2.Permute2x128(u0, u4, 0x31).Store(quads + 32);
        Avx2.Permute2x128(u1, u5, 0x31).Store(quads + 40);
        Avx2.Permute2x128(u2, u6, 0x31).Store(quads + 48);
        Avx2.Permute2x128(u3, u7, 0x31).Store(quads + 56);
    }

    // acc + the 32 products w·x of unsigned w and signed x, in DotBytes' lanes: the form x86 multiplies bytes in, without
    // DotBytes' moving of w's sign onto x. w ≤ 127 unless VNNI is there (pmaddubsw's int16 pair sums would saturate).
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<int> DotUnsignedBytes(Vector256<int> acc, Vector256<byte> w, Vector256<sbyte> x)
    {
        if (AvxVnni.IsSupported) return AvxVnni.MultiplyWideningAndAdd(acc, w, x);
        if (Avx2.IsSupported) return acc + Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(w, x), Vector256.Create((short)1));
        return Vector256.Create(Simd128.DotUnsignedBytes(acc.GetLower(), w.GetLower(), x.GetLower()), Simd128.DotUnsignedBytes(acc.GetUpper(), w.GetUpper(), x.GetUpper()));
    }

    // The 32 products w·x summed into 8 int lanes; with AVX2 as Simd128.DotBytes does with SSSE3.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<int> DotBytes(Vector256<sbyte> w, Vector256<sbyte> x)
    {
        // AVX-VNNI sums each four |w|·(±x) products straight into an int lane: the same sums, one instruction instead of two.
        if (AvxVnni.IsSupported)
            return AvxVnni.MultiplyWideningAndAdd(Vector256<int>.Zero, Avx2.Abs(w), Avx2.Sign(x, w));
        if (Avx2.IsSupported)
            return Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(Avx2.Abs(w), Avx2.Sign(x, w)), Vector256.Create((short)1));
        // Each 128 bits on their own, so their lanes sum only their own bytes (DotQ4Groups keeps one group per 128 bits).
        return Vector256.Create(Simd128.DotBytes(Vector128<int>.Zero, w.GetLower(), x.GetLower()), Simd128.DotBytes(Vector128<int>.Zero, w.GetUpper(), x.GetUpper()));
    }
}
