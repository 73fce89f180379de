namespace AotFlash.Kernels;

/// <summary>
/// One group of 32 quantised weights times 32 int8 activations, for <see cref="QuantKernels{TF,TI,S}"/>: the exact
/// integer Σ w_j·x_j, spread over the lanes of the result (lane sums stay below 2^24, so the floats are exact).
/// </summary>
internal unsafe interface IQuantDot<TF, TI> where TF : struct where TI : struct
{
    /// <summary>What a q8 group's sums need of the activations alone, made once for the rows that share them: with
    /// VNNI, the -128·Σx part (the quants, offset by 128, multiply as unsigned bytes); otherwise nothing.</summary>
    static abstract TI Q8Bias(sbyte* x);
    /// <summary>w: 32 int8 quants; Σ w·x, <paramref name="bias"/> from <see cref="Q8Bias"/>.</summary>
    static abstract TF DotQ8Group(sbyte* w, sbyte* x, TI bias);
    /// <summary>w: 32 int8 quants, times two tokens' activations: each as <see cref="DotQ8Group"/> gives it, w loaded once.</summary>
    static abstract (TF A, TF B) DotQ8Group2(sbyte* w, sbyte* xa, sbyte* xb, TI biasA, TI biasB);
    /// <summary>The -8·Σx part of a q4 group's sums, in the lanes <see cref="DotQ4Group"/> sums into: it depends on the
    /// activations only, so rows that share them share it.</summary>
    static abstract TI Q4Bias(sbyte* x);
    /// <summary>w: 16 bytes of q4 quants q, values q - 8: Σ q·x (unsigned nibbles times signed bytes, as the hardware
    /// multiplies) plus <paramref name="bias"/> from <see cref="Q4Bias"/>, the same lane sums as Σ (q - 8)·x.</summary>
    static abstract TF DotQ4Group(byte* w, sbyte* x, TI bias);
    /// <summary>w: a q4 group's 32 quants q unpacked to a byte each, in the order <see cref="DotQ4Group"/> multiplies
    /// them, times two tokens' activations with their <see cref="Q4Bias"/>: each as DotQ4Group gives it, w loaded once.</summary>
    static abstract (TF A, TF B) DotQ4Group2(byte* w, sbyte* xa, sbyte* xb, TI biasA, TI biasB);
}
