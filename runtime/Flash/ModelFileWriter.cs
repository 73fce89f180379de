using Microsoft.Win32.SafeHandles;

namespace AotFlash.Flash;

/// <summary>
/// Writes a model file atomically (<see cref="AtomicFile"/>): nothing is in place of the target until
/// <see cref="Commit"/>, so a failed, interrupted or killed conversion never leaves half a model behind.
/// </summary>
public sealed class ModelFileWriter : IDisposable
{
    private readonly AtomicFile _file;
    private readonly List<Section> _sections = [];
    private long _position = ModelFileHeader.Size;
    private SectionKind? _open;
    private long _sectionStart;
    private uint _crc;
    private uint _markCrc;

    private ModelFileWriter(AtomicFile file) => _file = file;

    private SafeFileHandle Handle => _file.Handle;

    /// <summary>Starts a model file at <paramref name="path"/>, on the terms of <see cref="AtomicFile.Create"/>.</summary>
    public static ModelFileWriter Create(string path, bool force, params string[] inputs) => new(AtomicFile.Create(path, force, inputs));

    /// <summary>Where the next byte would go, relative to the start of the open section.</summary>
    public long SectionPosition => _position - _sectionStart;

    public void BeginSection(SectionKind kind)
    {
        if (_open is not null) throw new InvalidOperationException("a section is already open");
        _position = Layout.AlignUp(_position, Layout.FlashAlignment);
        _sectionStart = _position;
        _crc = ~0u;
        _open = kind;
    }

    public void Write(ReadOnlySpan<byte> data)
    {
        if (_open is null) throw new InvalidOperationException("no section is open");
        RandomAccess.Write(Handle, data, _position);
        _crc = Crc32C.Append(_crc, data);
        _markCrc = Crc32C.Append(_markCrc, data);
        _position += data.Length;
    }

    /// <summary>Zero-fills up to <paramref name="sectionOffset"/> (alignment padding between tensors).</summary>
    public void PadTo(long sectionOffset)
    {
        long gap = sectionOffset - SectionPosition;
        if (gap < 0) throw new InvalidOperationException($"tensor written out of order (at {SectionPosition}, wanted {sectionOffset})");
        Span<byte> zeros = stackalloc byte[4096];
        zeros.Clear();
        while (gap > 0)
        {
            int n = (int)Math.Min(gap, zeros.Length);
            Write(zeros[..n]);
            gap -= n;
        }
    }

    /// <summary>Starts a checksum of what is written from here on (one neuron bundle); see <see cref="ChecksumSinceMark"/>.</summary>
    public void Mark() => _markCrc = ~0u;

    /// <summary>CRC-32C of the bytes written since <see cref="Mark"/>.</summary>
    public uint ChecksumSinceMark => ~_markCrc;

    public void EndSection(long length)
    {
        PadTo(length);
        _sections.Add(new Section(_open!.Value, _sectionStart, length, ~_crc));
        _open = null;
    }

    /// <summary>Writes the header, flushes to disk and atomically puts the file in place.</summary>
    public void Commit(string modelName, string specHash, ModelShape shape)
    {
        if (_open is not null) throw new InvalidOperationException("a section is still open");
        var header = new ModelFileHeader { ModelName = modelName, SpecHash = specHash, Shape = shape, Sections = _sections };
        RandomAccess.Write(Handle, header.Serialize(), 0);
        _file.Commit();
    }

    /// <summary>Writes a copy of <paramref name="source"/> in which section <paramref name="kind"/> holds
    /// <paramref name="data"/> (added, or replaced); atomically, so <paramref name="output"/> may be the source itself
    /// (<paramref name="inPlace"/>; otherwise an output that is the source is refused).</summary>
    public static void CopyWithSection(ModelFile source, string output, bool force, bool inPlace, SectionKind kind, ReadOnlySpan<byte> data)
    {
        using var writer = inPlace ? Create(output, force: true) : Create(output, force, source.Path);
        foreach (var section in source.Header.Sections.Where(s => s.Kind != kind))
        {
            // Checked as it is copied: the copy gets a new checksum, which must not vouch for damaged bytes.
            writer.BeginSection(section.Kind);
            source.ReadSection(section, writer.Write);
            writer.EndSection(section.Length);
        }
        writer.BeginSection(kind);
        writer.Write(data);
        writer.EndSection(data.Length);
        var h = source.Header;
        writer.Commit(h.ModelName, h.SpecHash, h.Shape);
    }

    public void Dispose() => _file.Dispose();
}
