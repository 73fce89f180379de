using System.Buffers.Binary;
using System.Numerics;
using System.Runtime.InteropServices;

namespace AotFlash.Flash;

/// <summary>CRC-32C (Castagnoli), the checksum of model file sections. <see cref="BitOperations.Crc32C(uint, ulong)"/>
/// uses the CPU's CRC32 instruction (SSE4.2 on x64, the CRC extension on arm64) where there is one, so that
/// verifying hundreds of MB at load stays cheap, and a table otherwise.</summary>
public static class Crc32C
{
    public static uint Compute(ReadOnlySpan<byte> data) => ~Append(~0u, data);

    /// <summary>CRC of native memory of any length (spans stop at 2 GiB). A large region (a mapped section, hundreds of
    /// MB read at load) is split over the cores, whose registers are then joined; memory bandwidth, not the CRC
    /// instruction, limits one core there.</summary>
    public static unsafe uint Compute(byte* data, long length)
    {
        int parts = length >= ParallelBytes ? Math.Min(Environment.ProcessorCount, 4) : 1;
        return parts == 1 ? ~AppendLong(~0u, data, length) : ComputeInParts(data, length, parts);
    }

    // Apart from Compute, which checks every bundle read from flash: the lambda's closure is allocated on entry to the
    // method that holds it, whether it runs or not.
    private static unsafe uint ComputeInParts(byte* data, long length, int parts)
    {
        long part = length / parts;
        var registers = new uint[parts];
        Parallel.For(0, parts, i =>
        {
            long from = i * part, to = i == parts - 1 ? length : from + part;
            registers[i] = AppendLong(i == 0 ? ~0u : 0u, data + from, to - from);
        });
        uint crc = registers[0];
        for (int i = 1; i < parts; i++)
        {
            long bytes = i == parts - 1 ? length - i * part : part;
            crc = MultiplyModP(crc, XPow8N(bytes)) ^ registers[i];
        }
        return ~crc;
    }

    private const long ParallelBytes = 32L << 20;

    private static unsafe uint AppendLong(uint crc, byte* data, long length)
    {
        for (long done = 0; done < length;)
        {
            int chunk = (int)Math.Min(length - done, 1 << 30);
            crc = Append(crc, new ReadOnlySpan<byte>(data + done, chunk));
            done += chunk;
        }
        return crc;
    }

    /// <summary>Continues a running CRC; start with <c>~0u</c> and finish with <c>~crc</c>.</summary>
    public static uint Append(uint crc, ReadOnlySpan<byte> data)
    {
        // The CRC32 instruction takes three cycles and can start one a cycle: three independent chains, over three
        // consecutive lanes, keep it busy (about three times the speed of one chain). The lanes' registers are joined
        // as CRC algebra says: a register followed by n more bytes is the register times x^(8n), plus (xor) what those
        // bytes give from a zero register.
        while (data.Length >= 3 * Lane)
        {
            uint b = 0, c = 0;
            var lanes = MemoryMarshal.Cast<byte, ulong>(data[..(3 * Lane)]);
            for (int i = 0; i < Lane / 8; i++)
            {
                crc = BitOperations.Crc32C(crc, lanes[i]);
                b = BitOperations.Crc32C(b, lanes[Lane / 8 + i]);
                c = BitOperations.Crc32C(c, lanes[2 * Lane / 8 + i]);
            }
            crc = ShiftLane(ShiftLane(crc) ^ b) ^ c;
            data = data[(3 * Lane)..];
        }
        while (data.Length >= 8)
        {
            crc = BitOperations.Crc32C(crc, BinaryPrimitives.ReadUInt64LittleEndian(data));
            data = data[8..];
        }
        foreach (byte b in data) crc = BitOperations.Crc32C(crc, b);
        return crc;
    }

    // Bytes per lane: large enough that joining costs little, small enough that a 12 KiB bundle is one round.
    private const int Lane = 4096;

    // reg · x^(8·Lane) mod P, a linear map of reg's bits: four table lookups, one per byte of reg.
    private static uint ShiftLane(uint reg) =>
        LaneShift[reg & 0xFF] ^ LaneShift[256 + ((reg >> 8) & 0xFF)] ^ LaneShift[512 + ((reg >> 16) & 0xFF)] ^ LaneShift[768 + (reg >> 24)];

    private static readonly uint[] LaneShift = LaneShiftTable();

    private static uint[] LaneShiftTable()
    {
        uint k = XPow8N(Lane);
        var table = new uint[1024];
        for (int b = 0; b < 4; b++)
            for (uint v = 0; v < 256; v++) table[b * 256 + v] = MultiplyModP(v << (8 * b), k);
        return table;
    }

    private const uint Polynomial = 0x82F63B78u; // reflected: bit 31 is x^0

    /// <summary>a · b mod P, both reflected (bit 31 is the coefficient of x^0).</summary>
    internal static uint MultiplyModP(uint a, uint b)
    {
        uint product = 0;
        for (uint m = 1u << 31; m != 0; m >>= 1)
        {
            if ((a & m) != 0) product ^= b;
            b = (b & 1) != 0 ? (b >> 1) ^ Polynomial : b >> 1;
        }
        return product;
    }

    /// <summary>x^(8n) mod P, reflected, by square and multiply.</summary>
    internal static uint XPow8N(long n)
    {
        uint result = 1u << 31, square = 1u << 23; // x^0, and x^8 (one byte)
        for (; n > 0; n >>= 1)
        {
            if ((n & 1) != 0) result = MultiplyModP(result, square);
            square = MultiplyModP(square, square);
        }
        return result;
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
