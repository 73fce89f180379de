using System.Buffers.Binary;
using System.Numerics;

namespace AotFlash.Flash;

/// <summary>CRC-32C (Castagnoli), the checksum of model file sections. <see cref="BitOperations.Crc32C(uint, ulong)"/>
/// uses the CPU's CRC32 instruction (SSE4.2 on x64, the CRC extension on arm64) where there is one, so that
/// verifying hundreds of MB at load stays cheap, and a table otherwise.</summary>
public static class Crc32C
{
    public static uint Compute(ReadOnlySpan<byte> data) => ~Append(~0u, data);

    /// <summary>CRC of native memory of any length (spans stop at 2 GiB).</summary>
    public static unsafe uint Compute(byte* data, long length)
    {
        uint crc = ~0u;
        for (long done = 0; done < length;)
        {
            int chunk = (int)Math.Min(length - done, 1 << 30);
            crc = Append(crc, new ReadOnlySpan<byte>(data + done, chunk));
            done += chunk;
        }
        return ~crc;
    }

    /// <summary>Continues a running CRC; start with <c>~0u</c> and finish with <c>~crc</c>.</summary>
    public static uint Append(uint crc, ReadOnlySpan<byte> data)
    {
        while (data.Length >= 8)
        {
            crc = BitOperations.Crc32C(crc, BinaryPrimitives.ReadUInt64LittleEndian(data));
            data = data[8..];
        }
        foreach (byte b in data) crc = BitOperations.Crc32C(crc, b);
        return crc;
    }

    /// <summary>The bitwise definition (reflected polynomial 0x82F63B78), independent of
    /// <see cref="BitOperations"/>; used by the test.</summary>
    internal static uint ComputeReference(ReadOnlySpan<byte> data)
    {
        uint crc = ~0u;
        foreach (byte b in data)
        {
            crc ^= b;
            for (int k = 0; k < 8; k++) crc = (crc & 1) != 0 ? 0x82F63B78u ^ (crc >> 1) : crc >> 1;
        }
        return ~crc;
    }
}
