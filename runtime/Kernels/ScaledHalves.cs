namespace AotFlash.Kernels;

/// <summary>
/// f16 products without converting the weights. .NET has no F16C intrinsics, and the exact conversion takes eight or
/// more instructions per vector: it, not memory, bounds an f16 matrix-vector product. A half's bits shifted to a
/// float's place are <c>(float)h · 2^-112</c> exactly (<see cref="HalfBits.Scaled(Half)"/>, two instructions), so
/// w · x is computed as (w · 2^-112) · (x · 2^112): the same real product, rounded the same, every sum bit for bit
/// what the converting kernels give. The other operand is scaled once per vector here, exactly unless it overflows
/// (some finite |x| ≥ 2^16); a vector that would takes the converting kernels.
/// <para>A subnormal half becomes a float subnormal operand of the multiply. AMD's x86 cores take those at full speed
/// (an FMA stream over subnormals within 5% of one over normal floats, EPYC); Intel's pay a microcode assist for every
/// vector that holds one (Xeon with AVX-512: 44.6 ns per such FMA against 0.37), so they keep converting, as do cores
/// not measured (<see cref="Enabled"/>).</para>
/// </summary>
public static unsafe class ScaledHalves
{
    // A prepared vector: whether it is scaled (an int, padded to a cache line), then the scaled floats.
    private const int Header = 64;

    /// <summary>Whether this machine multiplies float subnormals at full speed, so f16 products use the scaled form.</summary>
    public static bool Enabled { get; } = IsaSupport.Vendor is "AuthenticAMD" or "HygonGenuine";

    /// <summary>Bytes <see cref="Prepare"/> writes for a vector of n.</summary>
    public static int PreparedBytes(int n) => Header + n * sizeof(float);

    /// <summary>prepared = x[n] scaled by 2^112 where <see cref="Enabled"/> and exact.</summary>
    public static void Prepare(byte* prepared, float* x, int n) =>
        *(int*)prepared = Enabled && Scale((float*)(prepared + Header), x, n) ? 1 : 0;

    /// <summary>The scaled x[n] that <see cref="Prepare"/> made, or null where products must convert the weights.</summary>
    public static float* Values(byte* prepared) => *(int*)prepared != 0 ? (float*)(prepared + Header) : null;

    /// <summary>scaled[n] = x[n] · 2^112, exact; false (scaled then unspecified) where some finite x would overflow.
    /// An infinite or NaN x stays one, and its products are what they were.</summary>
    public static bool Scale(float* scaled, float* x, int n)
    {
        bool fits = true;
        for (int i = 0; i < n; i++)
        {
            float v = x[i] * HalfBits.Up;
            fits &= !float.IsInfinity(v) || float.IsInfinity(x[i]);
            scaled[i] = v;
        }
        return fits;
    }
}
