using System.Runtime.Intrinsics;

namespace AotFlash.Kernels;

/// <summary>Vector width a kernel body is written for; Scalar means no SIMD.</summary>
public enum Isa { Scalar, V128, V256, V512 }

/// <summary>Which <see cref="Isa"/> bodies the running machine accelerates.</summary>
public static class IsaSupport
{
    /// <summary>The widest accelerated vector width; what <see cref="VectorOps"/> dispatches to.</summary>
    public static Isa Best { get; } =
        Vector512.IsHardwareAccelerated ? Isa.V512 :
        Vector256.IsHardwareAccelerated ? Isa.V256 :
        Vector128.IsHardwareAccelerated ? Isa.V128 :
        Isa.Scalar;

    /// <summary>True when the hardware accelerates <paramref name="isa"/> (Scalar always is).</summary>
    public static bool IsAvailable(Isa isa) => isa switch
    {
        Isa.Scalar => true,
        Isa.V128 => Vector128.IsHardwareAccelerated,
        Isa.V256 => Vector256.IsHardwareAccelerated,
        Isa.V512 => Vector512.IsHardwareAccelerated,
        _ => false,
    };

    /// <summary>For logs and --version: e.g. "V512 (Vector512 accelerated)".</summary>
    public static string Describe() => Best switch
    {
        Isa.V512 => "V512 (Vector512 accelerated)",
        Isa.V256 => "V256 (Vector256 accelerated)",
        Isa.V128 => "V128 (Vector128 accelerated)",
        _ => "Scalar (no SIMD acceleration)",
    };
}
