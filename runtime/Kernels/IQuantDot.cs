using System.Runtime.Intrinsics;

namespace AotFlash.Kernels;

/// <summary>
/// Groups of 32 quantised weights times 32 int8 activations, for <see cref="QuantKernels{TF,TI,S}"/>: the exact integer
/// Σ w_j·x_j, spread over the lanes of the result (lane sums stay below 2^24, so the floats are exact). q8 keeps a
/// group per register; q4's groups are <see cref="IQ4Dot{TI}"/>'s.
/// </summary>
internal unsafe interface IQuantDot<TF, TI> : IQ4Dot<TI>, ITokenLanes<TI>, IPairSums<TI> where TF : struct where TI : struct
{
    /// <summary>What a q8 group's sums need of the activations alone, made once for the rows that share them: with
    /// VNNI, the -128·Σx part (the quants, offset by 128, multiply as unsigned bytes); otherwise nothing.</summary>
    static abstract TI Q8Bias(sbyte* x);
    /// <summary>w: 32 int8 quants; Σ w·x, <paramref name="bias"/> from <see cref="Q8Bias"/>.</summary>
    static abstract TF DotQ8Group(sbyte* w, sbyte* x, TI bias);
    /// <summary>w: 32 int8 quants, times two tokens' activations: each as <see cref="DotQ8Group"/> gives it, w loaded once.</summary>
    static abstract (TF A, TF B) DotQ8Group2(sbyte* w, sbyte* xa, sbyte* xb, TI biasA, TI biasB);
}

/// <summary>
/// q4 groups of 32 quants times 32 int8 activations, for <see cref="Q4Kernels{TF,TI,S}"/>: Count/4 groups packed in one
/// register (<see cref="DotQ4Groups"/>), each group's exact integer Σ (q - 8)·x in the four int lanes of its own 128 bits.
/// </summary>
internal unsafe interface IQ4Dot<TI> where TI : struct
{
    /// <summary>The -8·Σx part of a q4 group's sums, in the lanes <see cref="DotQ4Group"/> sums into: it depends on the
    /// activations only, so rows that share them share it.</summary>
    static abstract TI Q4Bias(sbyte* x);
    /// <summary>w: 16 bytes of q4 quants q, values q - 8: the lane sums of Σ q·x (unsigned nibbles times signed bytes, as
    /// the hardware multiplies) plus <paramref name="bias"/> from <see cref="Q4Bias"/>, together Σ (q - 8)·x.</summary>
    static abstract TI DotQ4Group(byte* w, sbyte* x, TI bias);
    /// <summary>Count/4 consecutive q4 groups (16 packed bytes each) times their activations, prepared by
    /// <see cref="Q4Activations"/>: each group's lane sums, with <paramref name="bias"/> from <see cref="Q4Biases"/>, in the
    /// four int lanes of its own 128 bits (group j in lanes 4j..4j + 3).</summary>
    static abstract TI DotQ4Groups(byte* w, TI xLow, TI xHigh, TI bias);
    /// <summary>The activations of Count/4 consecutive groups (32 bytes each) as <see cref="DotQ4Groups"/> takes them: the
    /// groups' first 16 bytes, then their last 16, each group in its own 128 bits.</summary>
    static abstract (TI Low, TI High) Q4Activations(sbyte* x);
    /// <summary>-8·Σx of each of the Count/4 groups, in <see cref="DotQ4Groups"/>' lanes.</summary>
    static abstract TI Q4Biases(TI xLow, TI xHigh);
    /// <summary>In each 128 bits j: [the sum of v0's four ints there, v1's, v2's, v3's] (exact).</summary>
    static abstract TI SumQuads4(TI v0, TI v1, TI v2, TI v3);
    /// <summary>Each vector's int lanes summed (exact): [Σ v0, Σ v1, Σ v2, Σ v3].</summary>
    static abstract Vector128<int> SumLanes4(TI v0, TI v1, TI v2, TI v3);
}

/// <summary>
/// q4 rows times blocks of tokens with a token in each int lane (<see cref="TokenLaneKernels{TF,TI,S}"/>): four of a
/// row's quants, one int broadcast to every lane, meet four activation bytes of each lane's token.
/// </summary>
internal unsafe interface ITokenLanes<TI> where TI : struct
{
    /// <summary>acc plus, in each int lane i, Σ_{j&lt;4} w_j·x[4i + j]: w's four unsigned bytes (≤ 127) are the same in every
    /// lane (four quants of one row), x holds four bytes of each lane's own token. MatMulQ4's token lanes.</summary>
    static abstract TI DotQuads(TI acc, TI w, sbyte* x);
    /// <summary><see cref="DotQuads"/>'s products of up to eight quads whose w bytes are at most 15 (a group of q4 quants),
    /// summed in whatever form adds them fastest until <see cref="AddQuadSums"/> adds them to int lanes: x86 without VNNI
    /// (and AVX-512, whose VNNI .NET does not reach) keeps the int16 pair sums of its byte multiply (each at most 2·15·127,
    /// eight of them below 2^15) and widens them once a group rather than once a quad; elsewhere they are
    /// <see cref="DotQuads"/>' int lanes. Starts from zero.</summary>
    static abstract TI AccumulateQuads(TI partial, TI w, sbyte* x);
    /// <summary>acc plus <see cref="AccumulateQuads"/>' partial sums, in <see cref="DotQuads"/>' int lanes (exact).</summary>
    static abstract TI AddQuadSums(TI acc, TI partial);
    /// <summary>One group's 32 bytes of Count tokens (token t's at x + t·stride) as token lanes take them: quad k of token
    /// t (its bytes 4k..4k + 3) at to + 4·(k·Count + t).</summary>
    static abstract void InterleaveQuads(sbyte* to, sbyte* x, long stride);
}

/// <summary>
/// A q4 down projection summed in integers (<see cref="Q4DownKernels{TF,TI,S}"/>): two rows' nibbles, element by element
/// in byte pairs, times two int8 coefficients, in int16 lanes.
/// </summary>
internal unsafe interface IPairSums<TI> where TI : struct
{
    /// <summary>One group of two q4 rows (16 packed bytes each) as byte pairs: bytes 2j and 2j + 1 of the 64 at
    /// <paramref name="to"/> are element j of row 0 and of row 1 (unsigned nibbles), j = 0 .. 31, as
    /// <see cref="MulAddPairs"/> multiplies them.</summary>
    static abstract void UnpackQ4Pairs(byte* to, byte* q0, byte* q1);
    /// <summary>acc plus, in each int16 lane, u0·k0 + u1·k1: the lane's two unsigned bytes of <paramref name="pairs"/> times
    /// the two signed bytes of the same lane of <paramref name="coefficients"/>, exact where the sums stay within int16 (x86
    /// saturates beyond).</summary>
    static abstract TI MulAddPairs(TI acc, TI pairs, TI coefficients);
    /// <summary>The 2·Count int16 lanes of v, sign-extended to ints, in order: the first Count, then the rest.</summary>
    static abstract (TI Low, TI High) WidenShorts(TI v);
}
