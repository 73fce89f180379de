using System.Buffers.Binary;
using System.Text;

namespace AotFlash.Convert;

/// <summary>
/// The header of a GGUF file (<see cref="GgufFormat"/>): metadata and tensor descriptions, with each tensor's place in
/// the data section decided as it is added, so that the header is written first and every tensor's data afterwards at
/// <see cref="DataStart"/> + its offset, in any order and one tensor at a time.
/// </summary>
public sealed class GgufWriter
{
    private readonly List<(string Key, GgufValue Value)> _metadata = [];
    private readonly List<GgufTensorInfo> _tensors = [];
    private long _dataBytes;

    public IReadOnlyList<GgufTensorInfo> Tensors => _tensors;

    public void Add(string key, GgufValue value)
    {
        if (_metadata.Any(m => m.Key == key)) throw new ArgumentException($"metadata key {key} is already set", nameof(key));
        _metadata.Add((key, value));
    }

    /// <summary>Adds a tensor of <paramref name="dims"/> (innermost first) after the previous one, aligned.</summary>
    public GgufTensorInfo AddTensor(string name, long[] dims, GgufTensorType type)
    {
        if (dims.Length is 0 or > GgufFormat.MaxDimensions || dims.Any(d => d <= 0))
            throw new ArgumentException($"tensor {name}: bad dimensions [{string.Join(", ", dims)}]", nameof(dims));
        var info = new GgufTensorInfo(name, dims, type, _dataBytes);
        _dataBytes = GgufFormat.AlignUp(_dataBytes + info.Bytes);
        _tensors.Add(info);
        return info;
    }

    /// <summary>Where the data section starts: the header's length padded to the alignment.</summary>
    public long DataStart => GgufFormat.AlignUp(HeaderBytes().Length);

    /// <summary>The whole file's length.</summary>
    public long FileLength => DataStart + _dataBytes;

    /// <summary>The header, padded with zeros to <see cref="DataStart"/>.</summary>
    public byte[] Header()
    {
        byte[] header = HeaderBytes();
        var padded = new byte[GgufFormat.AlignUp(header.Length)];
        header.CopyTo(padded, 0);
        return padded;
    }

    private byte[] HeaderBytes()
    {
        var o = new MemoryStream();
        o.Write(GgufFormat.Magic);
        U32(o, GgufFormat.Version);
        U64(o, (ulong)_tensors.Count);
        U64(o, (ulong)_metadata.Count);
        foreach (var (key, value) in _metadata)
        {
            Text(o, key);
            U32(o, (uint)value.Type);
            Value(o, value.Type, value.ElementType, value.Value);
        }
        foreach (var t in _tensors)
        {
            Text(o, t.Name);
            U32(o, (uint)t.Dims.Length);
            foreach (long d in t.Dims) U64(o, (ulong)d);
            U32(o, (uint)t.Type);
            U64(o, (ulong)t.Offset);
        }
        return o.ToArray();
    }

    private static void Value(Stream o, GgufValueType type, GgufValueType elementType, object value)
    {
        Span<byte> b = stackalloc byte[8];
        switch (type)
        {
            case GgufValueType.UInt8: o.WriteByte((byte)value); break;
            case GgufValueType.Int8: o.WriteByte((byte)(sbyte)value); break;
            case GgufValueType.Bool: o.WriteByte((bool)value ? (byte)1 : (byte)0); break;
            case GgufValueType.UInt16: BinaryPrimitives.WriteUInt16LittleEndian(b, (ushort)value); o.Write(b[..2]); break;
            case GgufValueType.Int16: BinaryPrimitives.WriteInt16LittleEndian(b, (short)value); o.Write(b[..2]); break;
            case GgufValueType.UInt32: U32(o, (uint)value); break;
            case GgufValueType.Int32: BinaryPrimitives.WriteInt32LittleEndian(b, (int)value); o.Write(b[..4]); break;
            case GgufValueType.Float32: BinaryPrimitives.WriteSingleLittleEndian(b, (float)value); o.Write(b[..4]); break;
            case GgufValueType.UInt64: U64(o, (ulong)value); break;
            case GgufValueType.Int64: BinaryPrimitives.WriteInt64LittleEndian(b, (long)value); o.Write(b); break;
            case GgufValueType.Float64: BinaryPrimitives.WriteDoubleLittleEndian(b, (double)value); o.Write(b); break;
            case GgufValueType.String: Text(o, (string)value); break;
            case GgufValueType.Array:
                var array = (Array)value;
                U32(o, (uint)elementType);
                U64(o, (ulong)array.Length);
                foreach (object element in array)
                {
                    if (element is GgufValue nested) Value(o, nested.Type, nested.ElementType, nested.Value);
                    else Value(o, elementType, default, element);
                }
                break;
            default: throw new ArgumentOutOfRangeException(nameof(type), type, null);
        }
    }

    private static void Text(Stream o, string s)
    {
        byte[] bytes = Encoding.UTF8.GetBytes(s);
        U64(o, (ulong)bytes.Length);
        o.Write(bytes);
    }

    private static void U32(Stream o, uint v)
    {
        Span<byte> b = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(b, v);
        o.Write(b);
    }

    private static void U64(Stream o, ulong v)
    {
        Span<byte> b = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(b, v);
        o.Write(b);
    }
}
