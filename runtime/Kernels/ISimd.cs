namespace AotFlash.Kernels;

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
    /// <summary>Loads Count ints.</summary>
    static abstract TI Load(int* p);
    /// <summary>Stores Count ints.</summary>
    static abstract void Store(int* p, TI v);
    static abstract TF Add(TF a, TF b);
    static abstract TF Sub(TF a, TF b);
    static abstract TF Mul(TF a, TF b);
    static abstract TF Div(TF a, TF b);
    /// <summary>a·b + c, fused where the hardware has FMA.</summary>
    static abstract TF MulAdd(TF a, TF b, TF c);
    /// <summary>a·b + c rounded once, on every machine (emulated without FMA): elementwise kernels that must match
    /// their scalar references bit for bit (<c>MathF.FusedMultiplyAdd</c>) use it.</summary>
    static abstract TF FusedMulAdd(TF a, TF b, TF c);
    static abstract float Sum(TF v);
    /// <summary>sums[k] = Sum(v_k) for four vectors, each bit for bit what Sum gives (the same tree of additions), the
    /// four reduced together: lanes of different vectors share each shuffle and add.</summary>
    static abstract void Sum4(float* sums, TF v0, TF v1, TF v2, TF v3);
    /// <summary>dst[4i + k] = lane i of v_k: four vectors stored transposed, lane by lane.</summary>
    static abstract void StoreTransposed4(float* dst, TF v0, TF v1, TF v2, TF v3);
    /// <summary>Lanes 4k .. 4k+3 of v (k below Count / 4), without a trip through memory.</summary>
    static abstract System.Runtime.Intrinsics.Vector128<float> Quarter(TF v, int k);
    /// <summary>e^v in each lane (the runtime's vector exp, within an ulp or so of MathF.Exp).</summary>
    static abstract TF Exp(TF v);
    static abstract TF GreaterThan(TF a, TF b);
    static abstract TF Select(TF mask, TF ifTrue, TF ifFalse);
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
    /// <summary>Loads 2·Count halves as two float vectors, each value exactly <c>(float)Half</c>.</summary>
    static abstract (TF Lower, TF Upper) LoadHalves(Half* p);
    /// <summary>Loads 2·Count halves as two float vectors, each value <c>(float)Half · 2^-112</c>, exactly for every finite
    /// half, by moving bits: a <see cref="ScaledHalves"/> product's weights.</summary>
    static abstract (TF Lower, TF Upper) LoadScaledHalves(Half* p);
    /// <summary>Stores the low 16 bits of each lane of lower then upper as 2·Count halves.</summary>
    static abstract void StoreHalves(Half* p, TI lower, TI upper);
    /// <summary>Loads Count signed bytes, sign-extended into the int lanes.</summary>
    static abstract TI LoadSBytes(sbyte* p);
    /// <summary>Loads Count bytes, zero-extended into the int lanes.</summary>
    static abstract TI LoadBytes(byte* p);
    /// <summary>q4 bytes (one per int lane) → their low and high nibbles as the signed values q - 8, in float.</summary>
    static abstract (TF Low, TF High) Nibbles(TI bytes);
    /// <summary>Each int lane converted to float (exact for the small integers quants hold).</summary>
    static abstract TF ToFloat(TI v);
    /// <summary>Each lane, within int range, rounded to the nearest integer, ties to even (as (int)MathF.Round).</summary>
    static abstract TI RoundToInt(TF v);
    /// <summary>The larger of each pair of lanes, neither NaN.</summary>
    static abstract TF Max(TF a, TF b);
    /// <summary>Stores the Count int lanes, each in [-128, 127], as Count signed bytes.</summary>
    static abstract void StoreSBytes(sbyte* p, TI v);
}
