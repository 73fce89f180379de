using Microsoft.Win32.SafeHandles;

namespace AotFlash.Flash;

/// <summary>
/// An open model file: either a standalone <c>.afm</c> or the payload appended to an executable, in which case
/// every offset is relative to <see cref="BaseOffset"/>. Opening validates the header and that the file is long
/// enough for every section, so a truncated file is reported instead of faulting later when mapped.
/// </summary>
public sealed unsafe class ModelFile : IDisposable
{
    private readonly SafeFileHandle _handle;

    private ModelFile(string path, SafeFileHandle handle, long baseOffset, ModelFileHeader header)
    {
        Path = path; _handle = handle; BaseOffset = baseOffset; Header = header;
    }

    public string Path { get; }
    public long BaseOffset { get; }
    public ModelFileHeader Header { get; }
    /// <summary>How the file is named in messages ("model.afm", or "payload of ./bin").</summary>
    public string Source => BaseOffset == 0 ? Path : $"payload of {Path}";

    /// <summary>The model file at <paramref name="path"/> when one is given, else the one packed into
    /// <paramref name="container"/>() (the running executable or library; see <see cref="Payload"/>), else null.</summary>
    public static ModelFile? OpenOrPacked(string? path, Func<string?> container)
    {
        if (path is not null) return Open(path);
        string? packedIn = container();
        return packedIn is not null && Payload.Find(packedIn) is { } payload ? Open(packedIn, payload.Offset, payload.Length) : null;
    }

    public static ModelFile Open(string path, long baseOffset = 0, long? length = null)
    {
        if (path.Length == 0) throw new BadInputException("the model file's path is empty");
        Libc.RequireRegularFile(path, "a model file");
        SafeFileHandle handle;
        try { handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.Read); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        { throw new BadInputException($"{path}: cannot open model file ({e.Message})"); }
        try
        {
            string source = baseOffset == 0 ? path : $"payload of {path}";
            long available = length ?? RandomAccess.GetLength(handle) - baseOffset;
            var buffer = new byte[ModelFileHeader.Size];
            if (available < ModelFileHeader.Size || RandomAccess.Read(handle, buffer, baseOffset) != buffer.Length)
                throw new BadInputException($"{source}: truncated model file ({available} bytes, the header alone is {ModelFileHeader.Size})");
            var header = ModelFileHeader.Parse(buffer, source);
            if (header.FileLength > available)
                throw new BadInputException($"{source}: truncated model file ({available} bytes, its header needs {header.FileLength})");
            if (header.FileLength < available)
                throw new BadInputException($"{source}: model file has {available - header.FileLength} bytes after its last section (damaged, or not one file)");
            return new ModelFile(path, handle, baseOffset, header);
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    /// <summary>Checks that this file was made for the model compiled into this binary.</summary>
    public void CheckMatches(string modelName, string specHash, ModelShape shape)
    {
        if (Header.SpecHash != specHash)
            throw new BadInputException($"{Source}: model file is for '{Header.ModelName}' (spec {Header.SpecHash}), " +
                                        $"but this binary runs '{modelName}' (spec {specHash})");
        // The spec hash covers the shape: a header naming this spec with another shape lies.
        if (!Header.Shape.Equals(shape))
            throw new BadInputException($"{Source}: model file header is corrupt (it names spec {specHash} of '{modelName}', but not its shape)");
    }

    /// <summary>Maps a section read-only (no copy) after checking its CRC-32C; the caller owns the mapping. With
    /// <paramref name="hugePages"/>, the kernel is asked to back it with 2 MiB pages where it can (MADV_HUGEPAGE: a
    /// section read from disk then arrives in 2 MiB folios, mapped by one TLB entry each).</summary>
    public MappedSection Map(SectionKind kind, DramAccount account, bool hugePages = false)
    {
        var section = Header.Get(kind, Source);
        if (section.Length == 0) return new MappedSection(null, null, 0, 0, account, null);
        // mmap needs a page-aligned file offset; sections are 4 KiB aligned within a 4 KiB aligned payload.
        long fileOffset = BaseOffset + section.Offset;
        long pageOffset = fileOffset % Environment.SystemPageSize;
        long mapLength = section.Length + pageOffset;
        account.Charge(mapLength, $"the {ModelFileHeader.Name(kind)} section");
        void* map = Libc.mmap(null, (nuint)mapLength, Libc.ProtRead, Libc.MapPrivate, (int)_handle.DangerousGetHandle(), fileOffset - pageOffset);
        if (map == Libc.MapFailed)
        {
            account.Release(mapLength);
            throw new IOException($"{Source}: cannot map the {ModelFileHeader.Name(kind)} section (errno {System.Runtime.InteropServices.Marshal.GetLastPInvokeError()})");
        }
        if (hugePages) Libc.madvise(map, (nuint)mapLength, Libc.MadvHugePage);
        bool resident = kind == SectionKind.Resident;
        if (resident) Interlocked.Increment(ref _residentMappings);
        var mapped = new MappedSection(map, (byte*)map + pageOffset, section.Length, mapLength, account,
            resident ? () => Interlocked.Decrement(ref _residentMappings) : null);
        if (Crc32C.Compute(mapped.Data, mapped.Length) != section.Crc)
        {
            mapped.Dispose();
            throw new BadInputException($"{Source}: {ModelFileHeader.Name(kind)} section is corrupt (checksum mismatch)");
        }
        return mapped;
    }

    /// <summary>Turns a section's bytes into what is kept of them.</summary>
    public delegate T SectionParser<out T>(ReadOnlySpan<byte> data);

    /// <summary>A section parsed once at load (predictors, flash checksums): mapped and checked as <see cref="Map"/>
    /// does (charged to <paramref name="account"/> meanwhile), handed to <paramref name="parse"/>, unmapped, and then
    /// <see cref="DropUnmappedCache"/>.</summary>
    public T ReadOnce<T>(SectionKind kind, DramAccount account, SectionParser<T> parse)
    {
        var mapped = Map(kind, account);
        try { return parse(mapped.Span); }
        finally
        {
            mapped.Dispose();
            DropUnmappedCache();
        }
    }

    /// <summary>Asks the kernel to forget the file's cached pages that no mapping holds: sections read once, and what
    /// readahead (often megabytes) brought in around them and around the mapped sections. Left there, they would be
    /// counted against the process's memory limit (a cgroup charges page cache) though nothing reads them again, and
    /// push out mapped weights that are read every token. Mapped pages stay; this is advice, nothing fails without it.
    /// Before the resident section is mapped (the header and the provenance line are read first) a drop would take its
    /// cached pages too, and mapping it would read hundreds of MB from the disk again at every start: what is read
    /// before then is dropped by the first read-once section after it.</summary>
    private void DropUnmappedCache()
    {
        if (Volatile.Read(ref _residentMappings) > 0) Libc.posix_fadvise((int)_handle.DangerousGetHandle(), 0, 0, Libc.PosixFadvDontNeed);
    }

    private int _residentMappings; // live mappings of the resident section made through this file

    /// <summary>Receives a section's bytes piece by piece, in order.</summary>
    public delegate void SectionChunk(ReadOnlySpan<byte> data);

    /// <summary>Streams <paramref name="section"/> to <paramref name="consume"/> (without mapping or charging anything, then
    /// <see cref="DropUnmappedCache"/>) and then checks its checksum: whatever the bytes went into is to be thrown away
    /// when this throws.</summary>
    public void ReadSection(Section section, SectionChunk consume)
    {
        var buffer = new byte[(int)Math.Min(1 << 20, Math.Max(section.Length, 1))];
        uint crc = ~0u;
        for (long done = 0; done < section.Length;)
        {
            int n = RandomAccess.Read(_handle, buffer.AsSpan(0, (int)Math.Min(buffer.Length, section.Length - done)), BaseOffset + section.Offset + done);
            if (n <= 0) throw new BadInputException($"{Source}: truncated model file (the {ModelFileHeader.Name(section.Kind)} section ends early)");
            crc = Crc32C.Append(crc, buffer.AsSpan(0, n));
            consume(buffer.AsSpan(0, n));
            done += n;
        }
        DropUnmappedCache();
        if (~crc != section.Crc)
            throw new BadInputException($"{Source}: {ModelFileHeader.Name(section.Kind)} section is corrupt (checksum mismatch)");
    }

    /// <summary>A small section's bytes, read (not mapped or charged) and checked as <see cref="ReadSection"/> does.</summary>
    public byte[] ReadBytes(Section section)
    {
        var bytes = new byte[checked((int)section.Length)];
        int at = 0;
        ReadSection(section, chunk =>
        {
            chunk.CopyTo(bytes.AsSpan(at));
            at += chunk.Length;
        });
        return bytes;
    }

    /// <summary>Reads every section and checks its checksum.</summary>
    public void VerifyAll()
    {
        foreach (var section in Header.Sections) ReadSection(section, static _ => { });
    }

    /// <summary>Longest provenance line a model file may hold.</summary>
    public const int MaxProvenanceBytes = 1024;

    /// <summary>The provenance section's line (what made the weights, e.g. "SYNTHETIC weights (seed 1): …"), which every
    /// command that opens the file shows; null when the file has none (weights converted from a checkpoint).</summary>
    public string? Provenance()
    {
        if (!Has(SectionKind.Provenance)) return null;
        var section = Header.Get(SectionKind.Provenance, Source);
        if (section.Length > MaxProvenanceBytes)
            throw new BadInputException($"{Source}: provenance section is {section.Length} bytes, more than the {MaxProvenanceBytes} a line may take");
        byte[] bytes = ReadBytes(section);
        // It is printed: valid UTF-8 without control characters (no escapes), not empty.
        var corrupt = new BadInputException($"{Source}: provenance section is corrupt (not one line of UTF-8 text)");
        string text;
        try { text = new System.Text.UTF8Encoding(false, throwOnInvalidBytes: true).GetString(bytes); }
        catch (System.Text.DecoderFallbackException) { throw corrupt; }
        return text.Length == 0 || text.Any(char.IsControl) ? throw corrupt : text;
    }

    /// <summary>Whether the file has a section of this kind.</summary>
    public bool Has(SectionKind kind) => Header.Sections.Any(s => s.Kind == kind);

    public void Dispose() => _handle.Dispose();
}

/// <summary>A read-only mapping of one section, charged to the DRAM account (by <see cref="ModelFile.Map"/>) while it lives.</summary>
public sealed unsafe class MappedSection : IDisposable
{
    private void* _map;
    private readonly long _mapLength;
    private readonly DramAccount _account;
    private readonly Action? _unmapped;

    internal MappedSection(void* map, byte* data, long length, long mapLength, DramAccount account, Action? unmapped)
    {
        _map = map; Data = data; Length = length; _mapLength = mapLength; _account = account; _unmapped = unmapped;
    }

    public byte* Data { get; }
    public long Length { get; }
    /// <summary>Bytes mapped (the section rounded out to whole pages): what the mapping is charged.</summary>
    public long MappedBytes => _mapLength;

    /// <summary>The section as bytes (one that <see cref="ModelFile.ReadOnce"/> parses).</summary>
    public ReadOnlySpan<byte> Span => new(Data, checked((int)Length));

    public void Dispose()
    {
        if (_map == null) return;
        Libc.munmap(_map, (nuint)_mapLength);
        _account.Release(_mapLength);
        _map = null;
        _unmapped?.Invoke();
    }
}
