using System.Runtime.CompilerServices;

namespace AotFlash.Kernels;

/// <summary>One IEEE half to float, inline: Native AOT compiles <c>(float)Half</c> as a call, which in a quantised
/// kernel's loop over groups of 32 costs as much as the group's products and spills the vector accumulators around it.</summary>
internal static class HalfBits
{
    /// <summary>Exactly <c>(float)h</c> for every half, subnormals, infinities and NaNs (quieted, payload kept)
    /// included; the scalar form of SimdKernels' vector conversion.</summary>
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
}
