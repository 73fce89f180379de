using System.Runtime.CompilerServices;

namespace AotFlash.Kernels;

/// <summary>IEEE halves to floats, inline: Native AOT compiles <c>(float)Half</c> as a call, which in a quantised
/// kernel's loop over groups of 32 costs as much as the group's products and spills the vector accumulators around it.</summary>
internal static class HalfBits
{
    /// <summary>Half bit patterns (one per int lane, zero- or sign-extended) to floats, exact for every input including
    /// subnormals, ±0, ±inf and NaN (quieted, payload kept, as (float)Half does). No float subnormal is ever an operand,
    /// as those are slow on some x86 cores. After Maratyszcza's FP16 library (fp16_ieee_to_fp32_value); the portable
    /// form behind <see cref="ISimd{TF, TI}.LoadHalves"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static TF ToSingle<TF, TI, S>(TI h) where TF : struct where TI : struct where S : ISimd<TF, TI>
    {
        TI sign = S.ShiftLeft(S.And(h, S.Splat(0x8000)), 16);
        TI magnitude = S.ShiftLeft(h, 17); // exponent and mantissa at the top, sign (and any extension) shifted out
        // Normal, inf and NaN halves: exponent rebased by 224 (so 31 lands on 255), then scaled by 2^-112.
        // The product is exact; inf stays inf and a NaN stays NaN, quieted by the multiply.
        TF normal = S.Mul(S.AsFloat(S.Add(S.ShiftRightLogical(magnitude, 4), S.Splat(0xE0 << 23))), S.AsFloat(S.Splat(15 << 23))); // 2^-112
        // Zero and subnormal halves (magnitude m < 0x400): m under 0.5's exponent, minus 0.5, is m·2^-24 exactly.
        TI m = S.ShiftRightLogical(magnitude, 17);
        TF tiny = S.Sub(S.AsFloat(S.Or(m, S.Splat(126 << 23))), S.Splat(0.5f));
        TI bits = S.Select(S.LessThan(m, S.Splat(0x400)), S.AsInt(tiny), S.AsInt(normal));
        return S.AsFloat(S.Or(bits, sign));
    }

    /// <summary>Exactly <c>(float)h</c> for every half, subnormals, infinities and NaNs (quieted, payload kept)
    /// included; the scalar form of the vector conversion above.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float ToSingle(Half h)
    {
        uint bits = BitConverter.HalfToUInt16Bits(h);
        uint sign = (bits & 0x8000u) << 16;
        uint magnitude = bits << 17; // exponent and mantissa at the top, the sign shifted out
        // Normal, inf and NaN: exponent rebased by 224 (31 lands on 255), then scaled by 2^-112, exactly.
        float normal = BitConverter.UInt32BitsToSingle((magnitude >> 4) + (0xE0u << 23)) * BitConverter.UInt32BitsToSingle(15u << 23);
        // Zero and subnormal (m < 0x400): m under 0.5's exponent, minus 0.5, is m·2^-24 exactly.
        uint m = magnitude >> 17;
        float tiny = BitConverter.UInt32BitsToSingle(m | (126u << 23)) - 0.5f;
        return BitConverter.UInt32BitsToSingle((m < 0x400 ? BitConverter.SingleToUInt32Bits(tiny) : BitConverter.SingleToUInt32Bits(normal)) | sign);
    }

    /// <summary>Sign-extended half bit patterns (one per int lane) to <c>(float)h · 2^-112</c>, exactly for every finite
    /// half, in two instructions: the exponent and mantissa shifted to a float's place keep their value up to the
    /// exponent bias (127 against 15), and sign extension has already put the sign in bit 31; the mask clears the
    /// sign's copies between. A subnormal half lands on the float subnormal of the same mantissa, which is the same
    /// scaled value. An infinite or NaN half comes out finite (2^16·2^-112 and above): the converter stores none.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static TF Scaled<TF, TI, S>(TI h) where TF : struct where TI : struct where S : ISimd<TF, TI> =>
        S.AsFloat(S.And(S.ShiftLeft(h, 13), S.Splat(unchecked((int)0x8FFFFFFF))));

    /// <summary>The scalar form of the vector <see cref="Scaled{TF, TI, S}"/>: <c>(float)h · 2^-112</c> for a finite half.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Scaled(Half h) => BitConverter.Int32BitsToSingle(((short)BitConverter.HalfToUInt16Bits(h) << 13) & unchecked((int)0x8FFFFFFF));

    /// <summary>2^112: <see cref="Scaled(Half)"/> times this is <c>(float)h</c> again, exactly, for every finite half.</summary>
    public static readonly float Up = BitConverter.UInt32BitsToSingle((127u + 112) << 23);

    /// <summary>Exactly <c>(float)h</c> for a finite half: <see cref="Scaled(Half)"/> times 2^112, three instructions and
    /// a multiply where <see cref="ToSingle(Half)"/> takes a dozen. Quantisation scales take this form: the converter and
    /// the GGUF reader store only finite ones.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float FiniteToSingle(Half h) => Scaled(h) * Up;

    /// <summary>Where the first half that is infinite or NaN is, or -1: f16 products take every stored half to be finite
    /// (<see cref="ScaledHalves"/>), so what writes a model's f16 weights, or the KV cache, checks them here. Four halves
    /// to a 64-bit word until one holds such a half (its exponent bits all set: the masked exponent plus 0x0400 carries
    /// into a lane's top bit only from 0x7C00, and never into the next lane), then one at a time: the KV cache's writes
    /// took 0.7% of a prompt with the check a half at a time.</summary>
    public static unsafe int FirstNonFinite(ReadOnlySpan<Half> h)
    {
        const ulong Exponents = 0x7C00_7C00_7C00_7C00, Step = 0x0400_0400_0400_0400, Tops = 0x8000_8000_8000_8000;
        int i = 0;
        fixed (Half* p = h)
            for (; i <= h.Length - 4; i += 4)
                if ((((Unsafe.ReadUnaligned<ulong>(p + i) & Exponents) + Step) & Tops) != 0) break;
        for (; i < h.Length; i++)
            if (!Half.IsFinite(h[i])) return i;
        return -1;
    }
}
