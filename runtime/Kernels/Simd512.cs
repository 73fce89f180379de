using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace AotFlash.Kernels;

internal readonly unsafe struct Simd512 : ISimd<Vector512<float>, Vector512<int>>, IQ4Dot<Vector512<int>>, ITokenLanes<Vector512<int>>,
    IPairSums<Vector512<int>>
{
    public static int Count => Vector512<float>.Count;
    public static Vector512<float> Zero => Vector512<float>.Zero;
    public static Vector512<float> Splat(float value) => Vector512.Create(value);
    public static Vector512<int> Splat(int value) => Vector512.Create(value);
    public static Vector512<float> Load(float* p) => Vector512.Load(p);
    public static void Store(float* p, Vector512<float> v) => v.Store(p);
    public static Vector512<int> Load(int* p) => Vector512.Load(p);
    public static void Store(int* p, Vector512<int> v) => v.Store(p);
    public static Vector512<float> Add(Vector512<float> a, Vector512<float> b) => a + b;
    public static Vector512<float> Sub(Vector512<float> a, Vector512<float> b) => a - b;
    public static Vector512<float> Mul(Vector512<float> a, Vector512<float> b) => a * b;
    public static Vector512<float> Div(Vector512<float> a, Vector512<float> b) => a / b;
    public static Vector512<float> MulAdd(Vector512<float> a, Vector512<float> b, Vector512<float> c) => Vector512.MultiplyAddEstimate(a, b, c);
    public static Vector512<float> FusedMulAdd(Vector512<float> a, Vector512<float> b, Vector512<float> c) => Vector512.FusedMultiplyAdd(a, b, c);
    public static float Sum(Vector512<float> v) => Vector512.Sum(v);

    // Vector512.Sum adds adjacent lanes, then adjacent pairs ((x0 + x1) + (x2 + x3) in each 128-bit lane), then the
    // 128-bit lanes pairwise, then the two halves. The four vectors here go through the same additions, transposed:
    // vshufps gathers the lanes to add from two vectors at once, so 13 instructions reduce four vectors where four
    // Sums take about 100 (the tiles of MatMul spent a quarter of their time in them).
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Sum4(float* sums, Vector512<float> v0, Vector512<float> v1, Vector512<float> v2, Vector512<float> v3)
    {
        if (!Avx512F.IsSupported)
        {
            sums[0] = Sum(v0); sums[1] = Sum(v1); sums[2] = Sum(v2); sums[3] = Sum(v3);
            return;
        }
        // In each 128-bit lane: [x0 + x1, x2 + x3] of two vectors, then [(x0 + x1) + (x2 + x3)] of all four.
        var pairs01 = Avx512F.Shuffle(v0, v1, 0x88) + Avx512F.Shuffle(v0, v1, 0xDD);
        var pairs23 = Avx512F.Shuffle(v2, v3, 0x88) + Avx512F.Shuffle(v2, v3, 0xDD);
        var lanes = Avx512F.Shuffle(pairs01, pairs23, 0x88) + Avx512F.Shuffle(pairs01, pairs23, 0xDD);
        var halves = lanes + Avx512F.Shuffle4x128(lanes, lanes, 0b10_11_00_01); // lane 0: lane 0 + lane 1; lane 2: 2 + 3
        var total = halves + Avx512F.Shuffle4x128(halves, halves, 0b01_00_11_10); // lane 0: (0 + 1) + (2 + 3)
        total.GetLower().GetLower().Store(sums);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> Quarter(Vector512<float> v, int k)
    {
        var half = k < 2 ? v.GetLower() : v.GetUpper();
        return (k & 1) == 0 ? half.GetLower() : half.GetUpper();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void StoreTransposed4(float* dst, Vector512<float> v0, Vector512<float> v1, Vector512<float> v2, Vector512<float> v3)
    {
        Simd256.StoreTransposed4(dst, v0.GetLower(), v1.GetLower(), v2.GetLower(), v3.GetLower());
        Simd256.StoreTransposed4(dst + 32, v0.GetUpper(), v1.GetUpper(), v2.GetUpper(), v3.GetUpper());
    }

    public static Vector512<float> Exp(Vector512<float> v) => Vector512.Exp(v);
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
    public static (Vector512<float> Lower, Vector512<float> Upper) LoadHalves(Half* p)
    {
        if (!Avx512F.IsSupported)
        {
            var (lower, upper) = Vector512.Widen(Vector512.Load((ushort*)p));
            return (HalfBits.ToSingle<Vector512<float>, Vector512<int>, Simd512>(lower.AsInt32()), HalfBits.ToSingle<Vector512<float>, Vector512<int>, Simd512>(upper.AsInt32()));
        }
        // Two vpmovsxwd from memory (the portable Widen loads once, then extracts the upper half: one more shuffle).
        // Sign-extended, each lane's bit 31 is its half's sign.
        return (HalfToSingle(Avx512F.ConvertToVector512Int32(Vector256.Load((short*)p))),
                HalfToSingle(Avx512F.ConvertToVector512Int32(Vector256.Load((short*)p + 16))));
    }

    // Sign-extended half bit patterns to floats by the exponent e (bits 10-14), looked up in two 32-entry tables
    // (vpermi2ps): 8 instructions per 16 halves where the portable form's compare and select take 11. A four-row f16
    // matrix-vector loop on weights in cache runs twice as fast; 110M f16 decode, its weights streamed from memory,
    // 4-5% faster (Intel Xeon, 1 and 2 threads). The half's exponent and mantissa moved
    // to a float's place, plus Rebias[e], is the float for e in 1..30 (exponent + 112), and inf or NaN for e = 31
    // (exponent + 224 = 255). For e = 0 (zero, subnormal) it is 2^-14 + m·2^-24, and minus Offset[0] = 2^-14 leaves
    // m·2^-24 exactly; the subtraction of 0 also quiets a NaN, as (float)Half does. No float subnormal is an operand.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector512<float> HalfToSingle(Vector512<int> h)
    {
        const int Normal = 112 << 23, Zero = 113 << 23, Special = 224 << 23;
        var rebiasLow = Vector512.Create(Zero, Normal, Normal, Normal, Normal, Normal, Normal, Normal, Normal, Normal, Normal, Normal, Normal, Normal, Normal, Normal);
        var rebiasHigh = Vector512.Create(Normal, Normal, Normal, Normal, Normal, Normal, Normal, Normal, Normal, Normal, Normal, Normal, Normal, Normal, Normal, Special);
        var offsetLow = Vector512.Create(1f / 16384, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
        var e = h >>> 10; // vpermi2ps reads only the index's low 5 bits
        var bits = ((h << 13) & Vector512.Create(0x0FFFE000)) + Avx512F.PermuteVar16x32x2(rebiasLow, e, rebiasHigh);
        var magnitude = bits.AsSingle() - Avx512F.PermuteVar16x32x2(offsetLow, e, Vector512<float>.Zero);
        return (magnitude.AsInt32() | (h & Vector512.Create(int.MinValue))).AsSingle();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static (Vector512<float> Lower, Vector512<float> Upper) LoadScaledHalves(Half* p)
    {
        if (Avx512F.IsSupported)
            return (HalfBits.Scaled<Vector512<float>, Vector512<int>, Simd512>(Avx512F.ConvertToVector512Int32(Vector256.Load((short*)p))),
                    HalfBits.Scaled<Vector512<float>, Vector512<int>, Simd512>(Avx512F.ConvertToVector512Int32(Vector256.Load((short*)p + Count))));
        var (lower, upper) = Vector512.Widen(Vector512.Load((short*)p));
        return (HalfBits.Scaled<Vector512<float>, Vector512<int>, Simd512>(lower), HalfBits.Scaled<Vector512<float>, Vector512<int>, Simd512>(upper));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void StoreHalves(Half* p, Vector512<int> lower, Vector512<int> upper) =>
        Vector512.Narrow(lower.AsUInt32(), upper.AsUInt32()).Store((ushort*)p);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<int> LoadSBytes(sbyte* p)
    {
        // One vpmovsxbd from memory; the portable widening below takes five instructions.
        if (Avx512F.IsSupported) return Avx512F.ConvertToVector512Int32(Vector128.Load(p));
        var (lower, upper) = Vector128.Widen(Vector128.Load(p));
        var shorts = Vector256.Create(lower, upper);
        return Vector512.Create(Vector256.WidenLower(shorts), Vector256.WidenUpper(shorts));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<int> LoadBytes(byte* p)
    {
        if (Avx512F.IsSupported) return Avx512F.ConvertToVector512Int32(Vector128.Load(p));
        var (lower, upper) = Vector128.Widen(Vector128.Load(p));
        var shorts = Vector256.Create(lower, upper);
        return Vector512.Create(Vector256.WidenLower(shorts), Vector256.WidenUpper(shorts)).AsInt32();
    }

    public static Vector512<float> ToFloat(Vector512<int> v) => Vector512.ConvertToSingle(v);

    // With AVX-512 a nibble is its own index into the 16 values q - 8 (vpermps reads an index's low 4 bits): one
    // permute per 16 values where subtracting 8 and converting take two.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static (Vector512<float> Low, Vector512<float> High) Nibbles(Vector512<int> bytes)
    {
        if (!Avx512F.IsSupported) return SimdKernels<Vector512<float>, Vector512<int>, Simd512>.PortableNibbles(bytes);
        var values = Vector512.Create(-8f, -7, -6, -5, -4, -3, -2, -1, 0, 1, 2, 3, 4, 5, 6, 7);
        return (Avx512F.PermuteVar16x32(values, bytes), Avx512F.PermuteVar16x32(values, bytes >>> 4));
    }
    // x86's conversion rounds by MXCSR, which .NET leaves at nearest-even.
    public static Vector512<int> RoundToInt(Vector512<float> v) => Avx512F.IsSupported ? Avx512F.ConvertToVector512Int32(v) : Vector512.ConvertToInt32(Vector512.Round(v));
    public static Vector512<float> Max(Vector512<float> a, Vector512<float> b) => Vector512.MaxNative(a, b);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void StoreSBytes(sbyte* p, Vector512<int> v)
    {
        var lower = Vector128.Narrow(v.GetLower().GetLower(), v.GetLower().GetUpper());
        var upper = Vector128.Narrow(v.GetUpper().GetLower(), v.GetUpper().GetUpper());
        Vector128.Narrow(lower, upper).Store(p);
    }

    // q4 groups four a register. .NET reaches VNNI at 256 bits only, so AVX-512 BW's byte multiply makes int16 pair sums
    // (64 an instruction), the low and high nibbles' added as int16 (each at most 2·15·127 in magnitude) and widened
    // once: the same exact lane sums as Simd256's. A single group (a row's last few) goes through Simd256's body.
    public static Vector512<int> Q4Bias(sbyte* x) => Vector512.Create(Simd256.Q4Bias(x), Vector256<int>.Zero);

    public static Vector512<int> DotQ4Group(byte* w, sbyte* x, Vector512<int> bias) =>
        Vector512.Create(Simd256.DotQ4Group(w, x, bias.GetLower()), Vector256<int>.Zero);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<int> DotQ4Groups(byte* w, Vector512<int> xLow, Vector512<int> xHigh, Vector512<int> bias)
    {
        if (!Avx512BW.IsSupported)
            return Vector512.Create(Simd256.DotQ4Groups(w, xLow.GetLower(), xHigh.GetLower(), bias.GetLower()),
                                    Simd256.DotQ4Groups(w + 32, xLow.GetUpper(), xHigh.GetUpper(), bias.GetUpper()));
        var bytes = Vector512.Load(w);
        var nibble = Vector512.Create((byte)0xF);
        return bias + DotNibbles(bytes & nibble, xLow, (bytes.AsUInt16() >>> 4).AsByte() & nibble, xHigh);
    }

    // Σ over each int lane's four bytes of low·xLow + high·xHigh (nibbles times signed bytes), by AVX-512 BW.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector512<int> DotNibbles(Vector512<byte> low, Vector512<int> xLow, Vector512<byte> high, Vector512<int> xHigh) =>
        Avx512BW.MultiplyAddAdjacent(Avx512BW.MultiplyAddAdjacent(low, xLow.AsSByte()) + Avx512BW.MultiplyAddAdjacent(high, xHigh.AsSByte()),
                                     Vector512.Create((short)1));

    // Groups 0-1 in the first 64 bytes and 2-3 in the next: the 128-bit lanes 0, 2 of each are the groups' first halves.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static (Vector512<int> Low, Vector512<int> High) Q4Activations(sbyte* x)
    {
        if (!Avx512F.IsSupported)
        {
            var (lowA, highA) = Simd256.Q4Activations(x);
            var (lowB, highB) = Simd256.Q4Activations(x + 64);
            return (Vector512.Create(lowA, lowB), Vector512.Create(highA, highB));
        }
        Vector512<int> first = Vector512.Load((int*)x), second = Vector512.Load((int*)(x + 64));
        return (Avx512F.Shuffle4x128(first, second, 0b10_00_10_00), Avx512F.Shuffle4x128(first, second, 0b11_01_11_01));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<int> Q4Biases(Vector512<int> xLow, Vector512<int> xHigh)
    {
        if (!Avx512BW.IsSupported)
            return Vector512.Create(Simd256.Q4Biases(xLow.GetLower(), xHigh.GetLower()), Simd256.Q4Biases(xLow.GetUpper(), xHigh.GetUpper()));
        var eight = Vector512.Create((byte)8);
        return Vector512<int>.Zero - DotNibbles(eight, xLow, eight, xHigh);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<int> SumQuads4(Vector512<int> v0, Vector512<int> v1, Vector512<int> v2, Vector512<int> v3)
    {
        if (!Avx512F.IsSupported)
            return Vector512.Create(Simd256.SumQuads4(v0.GetLower(), v1.GetLower(), v2.GetLower(), v3.GetLower()),
                                    Simd256.SumQuads4(v0.GetUpper(), v1.GetUpper(), v2.GetUpper(), v3.GetUpper()));
        var pairs01 = Avx512F.UnpackLow(v0, v1) + Avx512F.UnpackHigh(v0, v1);
        var pairs23 = Avx512F.UnpackLow(v2, v3) + Avx512F.UnpackHigh(v2, v3);
        return Avx512F.UnpackLow(pairs01.AsInt64(), pairs23.AsInt64()).AsInt32() + Avx512F.UnpackHigh(pairs01.AsInt64(), pairs23.AsInt64()).AsInt32();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<int> SumLanes4(Vector512<int> v0, Vector512<int> v1, Vector512<int> v2, Vector512<int> v3)
    {
        var quads = SumQuads4(v0, v1, v2, v3);
        var halves = quads.GetLower() + quads.GetUpper();
        return halves.GetLower() + halves.GetUpper();
    }

    // Token lanes: sixteen tokens a vector. AVX-512 BW multiplies 64 bytes at once into int16 pair sums, half the
    // multiplies a token of AVX-VNNI's 256-bit form; without it, each 256 bits as Simd256 takes them.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<int> DotQuads(Vector512<int> acc, Vector512<int> w, sbyte* x)
    {
        if (Avx512BW.IsSupported) return AddQuadSums(acc, Avx512BW.MultiplyAddAdjacent(w.AsByte(), Vector512.Load(x)).AsInt32());
        return Vector512.Create(Simd256.DotQuads(acc.GetLower(), w.GetLower(), x), Simd256.DotQuads(acc.GetUpper(), w.GetUpper(), x + 32));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<int> AccumulateQuads(Vector512<int> partial, Vector512<int> w, sbyte* x)
    {
        if (Avx512BW.IsSupported) return MulAddPairs(partial, w, Vector512.Load((int*)x));
        return Vector512.Create(Simd256.AccumulateQuads(partial.GetLower(), w.GetLower(), x), Simd256.AccumulateQuads(partial.GetUpper(), w.GetUpper(), x + 32));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<int> AddQuadSums(Vector512<int> acc, Vector512<int> partial)
    {
        if (Avx512BW.IsSupported) return acc + Avx512BW.MultiplyAddAdjacent(partial.AsInt16(), Vector512.Create((short)1));
        return Vector512.Create(Simd256.AddQuadSums(acc.GetLower(), partial.GetLower()), Simd256.AddQuadSums(acc.GetUpper(), partial.GetUpper()));
    }

    // A 16x8 transpose of ints, Simd256's 8x8 in each half: vector i holds tokens i and i + 8, so the unpacks leave
    // tokens 0-7 in the low 256 bits as Simd256 has them and tokens 8-15 in the high 256 bits, and one two-source
    // permute of 64-bit pairs per quad gathers the 128-bit lanes that Simd256's Permute2x128 would, from both halves.
    [SkipLocalsInit] // the fallback's scratch is written before it is read
    public static void InterleaveQuads(sbyte* to, sbyte* x, long stride)
    {
        if (!Avx512F.IsSupported)
        {
            int* first = stackalloc int[64], second = stackalloc int[64]; // [quad][tokens 0-7], [quad][tokens 8-15]
            Simd256.InterleaveQuads((sbyte*)first, x, stride);
            Simd256.InterleaveQuads((sbyte*)second, x + 8 * stride, stride);
            for (int k = 0; k < 8; k++) Vector512.Create(Vector256.Load(first + 8 * k), Vector256.Load(second + 8 * k)).Store((int*)to + 16 * k);
            return;
        }
        long half = 8 * stride;
        Vector512<int> v0 = Tokens(x, half), v1 = Tokens(x + stride, half), v2 = Tokens(x + 2 * stride, half), v3 = Tokens(x + 3 * stride, half);
        Vector512<int> v4 = Tokens(x + 4 * stride, half), v5 = Tokens(x + 5 * stride, half), v6 = Tokens(x + 6 * stride, half), v7 = Tokens(x + 7 * stride, half);
        Vector512<int> t0 = Avx512F.UnpackLow(v0, v1), t1 = Avx512F.UnpackHigh(v0, v1), t2 = Avx512F.UnpackLow(v2, v3), t3 = Avx512F.UnpackHigh(v2, v3);
        Vector512<int> t4 = Avx512F.UnpackLow(v4, v5), t5 = Avx512F.UnpackHigh(v4, v5), t6 = Avx512F.UnpackLow(v6, v7), t7 = Avx512F.UnpackHigh(v6, v7);
        Vector512<long> u0 = Avx512F.UnpackLow(t0.AsInt64(), t2.AsInt64()), u1 = Avx512F.UnpackHigh(t0.AsInt64(), t2.AsInt64());
        Vector512<long> u2 = Avx512F.UnpackLow(t1.AsInt64(), t3.AsInt64()), u3 = Avx512F.UnpackHigh(t1.AsInt64(), t3.AsInt64());
        Vector512<long> u4 = Avx512F.UnpackLow(t4.AsInt64(), t6.AsInt64()), u5 = Avx512F.UnpackHigh(t4.AsInt64(), t6.AsInt64());
        Vector512<long> u6 = Avx512F.UnpackLow(t5.AsInt64(), t7.AsInt64()), u7 = Avx512F.UnpackHigh(t5.AsInt64(), t7.AsInt64());
        // [a's 128-bit lane 0, b's lane 0, a's lane 2, b's lane 2] and the same of lanes 1 and 3
        var even = Vector512.Create(0L, 1, 8, 9, 4, 5, 12, 13);
        var odd = Vector512.Create(2L, 3, 10, 11, 6, 7, 14, 15);
        long* quads = (long*)to;
        Avx512F.PermuteVar8x64x2(u0, even, u4).Store(quads);
        Avx512F.PermuteVar8x64x2(u1, even, u5).Store(quads + 8);
        Avx512F.PermuteVar8x64x2(u2, even, u6).Store(quads + 16);
        Avx512F.PermuteVar8x64x2(u3, even, u7).Store(quads + 24);
        Avx512F.PermuteVar8x64x2(u0, odd, u4).Store(quads + 32);
        Avx512F.PermuteVar8x64x2(u1, odd, u5).Store(quads + 40);
        Avx512F.PermuteVar8x64x2(u2, odd, u6).Store(quads + 48);
        Avx512F.PermuteVar8x64x2(u3, odd, u7).Store(quads + 56);
    }

    // Token x's 32 bytes in the low 256 bits, token x + half's in the high ones.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<int> Tokens(sbyte* x, long half) =>
        Vector512.Create(Vector256.Load((int*)x), Vector256.Load((int*)(x + half)));

    // Pair sums: a group's 32 elements of two rows, as byte pairs, fill one vector.
    public static void UnpackQ4Pairs(byte* to, byte* q0, byte* q1) => Simd256.UnpackQ4Pairs(to, q0, q1);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<int> MulAddPairs(Vector512<int> acc, Vector512<int> pairs, Vector512<int> coefficients)
    {
        if (Avx512BW.IsSupported) return (acc.AsInt16() + Avx512BW.MultiplyAddAdjacent(pairs.AsByte(), coefficients.AsSByte())).AsInt32();
        return Vector512.Create(Simd256.MulAddPairs(acc.GetLower(), pairs.GetLower(), coefficients.GetLower()),
                                Simd256.MulAddPairs(acc.GetUpper(), pairs.GetUpper(), coefficients.GetUpper()));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static (Vector512<int> Low, Vector512<int> High) WidenShorts(Vector512<int> v) => Vector512.Widen(v.AsInt16());
}
