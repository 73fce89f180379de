using System.Buffers.Binary;

namespace AotFlash.Flash;

/// <summary>
/// A model file appended to the executable so that one file ships. ELF loaders ignore bytes after the sections, so
/// the payload sits 4 KiB aligned after the program, followed by a fixed 32-byte trailer at the very end:
/// "AOTFLPAY", i64 payload offset, i64 payload length, u32 version, u32 CRC-32C of the preceding 28 bytes.
/// (Running <c>strip</c> on a packed executable removes the payload.)
/// </summary>
public static class Payload
{
    private const int TrailerSize = 32;
    private const uint Version = 1;
    private static ReadOnlySpan<byte> Magic => "AOTFLPAY"u8;

    /// <summary>The payload of <paramref name="path"/>, or null when it carries none.</summary>
    public static (long Offset, long Length)? Find(string path)
    {
        using var handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.Read);
        long size = RandomAccess.GetLength(handle);
        if (size < TrailerSize) return null;
        Span<byte> t = stackalloc byte[TrailerSize];
        if (RandomAccess.Read(handle, t, size - TrailerSize) != TrailerSize || !t[..8].SequenceEqual(Magic)) return null;
        long offset = BinaryPrimitives.ReadInt64LittleEndian(t[8..]);
        long length = BinaryPrimitives.ReadInt64LittleEndian(t[16..]);
        if (BinaryPrimitives.ReadUInt32LittleEndian(t[28..]) != Crc32C.Compute(t[..28])
            || BinaryPrimitives.ReadUInt32LittleEndian(t[24..]) != Version
            || offset <= 0 || length <= 0 || offset + length + TrailerSize != size)
            throw new BadInputException($"{path}: the model payload trailer is corrupt");
        return (offset, length);
    }

    /// <summary>Writes <paramref name="outPath"/>: the program part of <paramref name="exePath"/> (without any payload
    /// it already carries) + <paramref name="modelPath"/> + trailer; atomically, executable.</summary>
    public static void Pack(string exePath, string modelPath, string outPath, bool force)
    {
        long programLength = Find(exePath)?.Offset ?? new FileInfo(exePath).Length;
        using var file = AtomicFile.Create(outPath, force, exePath, modelPath);
        long at = 0;
        void Write(ReadOnlySpan<byte> data)
        {
            RandomAccess.Write(file.Handle, data, at);
            at += data.Length;
        }
        using (var exe = File.OpenRead(exePath)) Copy(exe, programLength, Write, "the executable");
        long offset = Layout.AlignUp(programLength, Layout.FlashAlignment);
        Write(new byte[offset - programLength]);
        long length;
        using (var model = File.OpenRead(modelPath))
        {
            length = model.Length;
            Copy(model, length, Write, "the model file");
        }
        var t = new byte[TrailerSize];
        Magic.CopyTo(t);
        BinaryPrimitives.WriteInt64LittleEndian(t.AsSpan(8), offset);
        BinaryPrimitives.WriteInt64LittleEndian(t.AsSpan(16), length);
        BinaryPrimitives.WriteUInt32LittleEndian(t.AsSpan(24), Version);
        BinaryPrimitives.WriteUInt32LittleEndian(t.AsSpan(28), Crc32C.Compute(t.AsSpan(0, 28)));
        Write(t);
        file.Commit((UnixFileMode)0b111_101_101);
    }

    private static void Copy(Stream from, long length, Action<ReadOnlySpan<byte>> write, string what)
    {
        var buffer = new byte[1 << 20];
        while (length > 0)
        {
            int n = from.Read(buffer, 0, (int)Math.Min(buffer.Length, length));
            if (n == 0) throw new IOException($"unexpected end of {what}");
            write(buffer.AsSpan(0, n));
            length -= n;
        }
    }
}
