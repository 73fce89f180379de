using System.Buffers.Binary;
using System.Text;

namespace AotFlash.Flash;

/// <summary>Sections of a model file; <see cref="Predictors"/> appears once <c>calibrate</c> has run.</summary>
public enum SectionKind : uint { Resident = 1, Tokenizer = 2, Flash = 3, Predictors = 4, FlashChecksums = 5, Provenance = 6 }

/// <summary>One section of a model file: where it is (relative to the file start) and its CRC-32C.</summary>
public readonly record struct Section(SectionKind Kind, long Offset, long Length, uint Crc);

/// <summary>
/// The fixed 4 KiB header of a model file (<c>.afm</c>), little-endian:
/// <code>
///   0  "AOTFLASH"                  8  u32 version        12 u32 header size (4096)
///  16  spec hash, 32 ASCII hex    48  model name, 64 bytes UTF-8, NUL padded
/// 112  i32 dim, hidden_dim, layers, heads, kv_heads, vocab, context
/// 140  u32 weight types: bits 0-7 the FFN's, bits 8-15 the resident matrices' plus one (0: the FFN's, as in files
///      written before the two could differ)
///                                144  u32 tied embeddings     148 u32 section count
/// 152  sections, 32 bytes each: u32 kind, u32 crc32c, u64 offset, u64 length, u64 reserved
/// 4092 u32 CRC-32C of bytes [0, 4092)
/// </code>
/// Sections start on 4 KiB boundaries: header · resident · tokenizer · flash · flash checksums (<see cref="FlashChecksums"/>)
/// · predictors (after <c>calibrate</c>); a provenance section (one line of UTF-8 text, <see cref="ModelFile.Provenance"/>)
/// marks weights that are not a trained model's.
/// </summary>
public sealed class ModelFileHeader
{
    public const int Size = 4096;
    public const uint CurrentVersion = 1;
    public static ReadOnlySpan<byte> Magic => "AOTFLASH"u8;
    private const int SectionTable = 152;
    private const int SectionEntry = 32;
    private const int MaxSections = (Size - 4 - SectionTable) / SectionEntry;
    private static readonly string[] DimNames = ["dim", "hidden_dim", "layers", "heads", "kv_heads", "vocab", "context"];

    public required string ModelName { get; init; }
    public required string SpecHash { get; init; }
    public required ModelShape Shape { get; init; }
    public required IReadOnlyList<Section> Sections { get; init; }

    public Section Get(SectionKind kind, string source)
    {
        foreach (var s in Sections)
            if (s.Kind == kind) return s;
        throw new BadInputException($"{source}: model file has no {Name(kind)} section");
    }

    /// <summary>Byte length of the whole file: the end of its last section.</summary>
    public long FileLength => Sections.Count == 0 ? Size : Sections.Max(s => s.Offset + s.Length);

    public byte[] Serialize()
    {
        if (Sections.Count > MaxSections) throw new InvalidOperationException("too many sections");
        var b = new byte[Size];
        Magic.CopyTo(b);
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(8), CurrentVersion);
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(12), Size);
        WriteText(b.AsSpan(16, 32), SpecHash);
        WriteText(b.AsSpan(48, 64), ModelName);
        int[] dims = [Shape.Dim, Shape.HiddenDim, Shape.Layers, Shape.Heads, Shape.KvHeads, Shape.Vocab, Shape.Context];
        for (int i = 0; i < dims.Length; i++) BinaryPrimitives.WriteInt32LittleEndian(b.AsSpan(112 + 4 * i), dims[i]);
        uint resident = Shape.ResidentWeights == Shape.Weights ? 0u : (uint)Shape.ResidentWeights + 1;
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(140), (uint)Shape.Weights | resident << 8);
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(144), Shape.TiedEmbeddings ? 1u : 0u);
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(148), (uint)Sections.Count);
        for (int i = 0; i < Sections.Count; i++)
        {
            var e = b.AsSpan(SectionTable + SectionEntry * i);
            BinaryPrimitives.WriteUInt32LittleEndian(e, (uint)Sections[i].Kind);
            BinaryPrimitives.WriteUInt32LittleEndian(e[4..], Sections[i].Crc);
            BinaryPrimitives.WriteInt64LittleEndian(e[8..], Sections[i].Offset);
            BinaryPrimitives.WriteInt64LittleEndian(e[16..], Sections[i].Length);
        }
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(Size - 4), Crc32C.Compute(b.AsSpan(0, Size - 4)));
        return b;
    }

    /// <summary>Parses and checks a header; <paramref name="source"/> names the file in error messages.</summary>
    public static ModelFileHeader Parse(ReadOnlySpan<byte> b, string source)
    {
        if (b.Length < Size || !b[..8].SequenceEqual(Magic))
            throw new BadInputException($"{source}: not an AotFlash model file (bad magic)");
        uint version = BinaryPrimitives.ReadUInt32LittleEndian(b[8..]);
        if (version != CurrentVersion)
            throw new BadInputException($"{source}: model file version {version} is not supported (this build reads version {CurrentVersion})");
        if (BinaryPrimitives.ReadUInt32LittleEndian(b[(Size - 4)..]) != Crc32C.Compute(b[..(Size - 4)]))
            throw new BadInputException($"{source}: model file header is corrupt (checksum mismatch)");
        var dims = new int[7];
        for (int i = 0; i < dims.Length; i++) dims[i] = BinaryPrimitives.ReadInt32LittleEndian(b[(112 + 4 * i)..]);
        for (int i = 0; i < dims.Length; i++)
            if (dims[i] <= 0) throw new BadInputException($"{source}: model file header is corrupt ({DimNames[i]} {dims[i]})");
        uint weightTypes = BinaryPrimitives.ReadUInt32LittleEndian(b[140..]);
        uint weightType = weightTypes & 0xFF, residentType = weightTypes >> 8;
        uint count = BinaryPrimitives.ReadUInt32LittleEndian(b[148..]);
        if (weightType > (uint)WeightType.Q4 || residentType > (uint)WeightType.Q4 + 1 || count > MaxSections)
            throw new BadInputException($"{source}: model file header is corrupt (bad weight type or section count)");
        var sections = new Section[count];
        for (int i = 0; i < count; i++)
        {
            var e = b[(SectionTable + SectionEntry * i)..];
            sections[i] = new Section((SectionKind)BinaryPrimitives.ReadUInt32LittleEndian(e), BinaryPrimitives.ReadInt64LittleEndian(e[8..]),
                BinaryPrimitives.ReadInt64LittleEndian(e[16..]), BinaryPrimitives.ReadUInt32LittleEndian(e[4..]));
            if (!Enum.IsDefined(sections[i].Kind))
                throw new BadInputException($"{source}: model file header is corrupt (section {i} has unknown kind {(uint)sections[i].Kind})");
            if (sections[..i].Any(s => s.Kind == sections[i].Kind))
                throw new BadInputException($"{source}: model file header is corrupt (two {Name(sections[i].Kind)} sections)");
            if (sections[i].Offset < Size || sections[i].Length < 0 || sections[i].Offset % Layout.FlashAlignment != 0
                || sections[i].Length > long.MaxValue - sections[i].Offset)
                throw new BadInputException($"{source}: model file header is corrupt (section {i} out of place)");
        }
        var byOffset = sections.OrderBy(s => s.Offset).ToArray();
        for (int i = 1; i < byOffset.Length; i++)
            if (byOffset[i].Offset < byOffset[i - 1].Offset + byOffset[i - 1].Length)
                throw new BadInputException($"{source}: model file header is corrupt (the {Name(byOffset[i - 1].Kind)} and {Name(byOffset[i].Kind)} sections overlap)");
        string name = ReadText(b.Slice(48, 64)), hash = ReadText(b.Slice(16, 32));
        // Names and hashes are printed: only what a spec may hold gets through (no control characters, no escapes).
        if (name.Length == 0 || !name.All(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '-' or '_') || !hash.All(char.IsAsciiHexDigitLower))
            throw new BadInputException($"{source}: model file header is corrupt (the model name or spec hash holds characters a spec never has)");
        return new ModelFileHeader
        {
            SpecHash = hash,
            ModelName = name,
            Shape = new ModelShape(dims[0], dims[1], dims[2], dims[3], dims[4], dims[5], dims[6], (WeightType)weightType,
                BinaryPrimitives.ReadUInt32LittleEndian(b[144..]) != 0, residentType == 0 ? null : (WeightType)(residentType - 1)),
            Sections = sections,
        };
    }

    /// <summary>A section kind as messages name it ("flash checksums").</summary>
    public static string Name(SectionKind kind) => kind == SectionKind.FlashChecksums ? "flash checksums" : kind.ToString().ToLowerInvariant();

    private static void WriteText(Span<byte> field, string text)
    {
        if (Encoding.UTF8.GetByteCount(text) > field.Length) throw new ArgumentException($"'{text}' is too long for the model file header");
        Encoding.UTF8.GetBytes(text, field);
    }

    private static string ReadText(ReadOnlySpan<byte> field)
    {
        int end = field.IndexOf((byte)0);
        return Encoding.UTF8.GetString(end < 0 ? field : field[..end]);
    }
}
