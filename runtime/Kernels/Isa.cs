using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

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

    /// <summary>The x86 CPU's vendor string (CPUID leaf 0: "GenuineIntel", "AuthenticAMD", …); empty elsewhere. Some
    /// kernels choose by it where cores of the two differ in ways measured (subnormal operands, prefetchers).</summary>
    public static string Vendor { get; } = ReadVendor();

    private static string ReadVendor()
    {
        if (!X86Base.IsSupported) return "";
        var (_, ebx, ecx, edx) = X86Base.CpuId(0, 0);
        Span<int> vendor = [ebx, edx, ecx];
        return System.Text.Encoding.ASCII.GetString(System.Runtime.InteropServices.MemoryMarshal.AsBytes(vendor));
    }

    /// <summary>For logs and --version: e.g. "V512 (Vector512 accelerated)".</summary>
    public static string Describe() => Best switch
    {
        Isa.V512 => "V512 (Vector512 accelerated)",
        Isa.V256 => "V256 (Vector256 accelerated)",
        Isa.V128 => "V128 (Vector128 accelerated)",
        _ => "Scalar (no SIMD acceleration)",
    };
}
