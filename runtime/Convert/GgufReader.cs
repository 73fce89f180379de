using System.Buffers.Binary;
using System.Text;
using AotFlash.Flash;
using Microsoft.Win32.SafeHandles;

namespace AotFlash.Convert;

/// <summary>
/// A GGUF file opened for reading (<see cref="GgufFormat"/>, versions 2 and 3): its metadata and tensor descriptions
/// are parsed and checked on opening (every length against what the file holds, every tensor inside the data and
/// aligned), its tensors' data read on demand. Anything that does not hold up is a <see cref="BadInputException"/>
/// naming the file.
/// </summary>
public sealed class GgufReader : IDisposable
{
    private readonly SafeFileHandle _handle;

    private GgufReader(string path, SafeFileHandle handle, uint version, IReadOnlyList<(string, GgufValue)> metadata,
                       IReadOnlyList<GgufTensorInfo> tensors, long dataStart)
    {
        Path = path; _handle = handle; Version = version; Metadata = metadata; Tensors = tensors; DataStart = dataStart;
    }

    public string Path { get; }
    public uint Version { get; }
    /// <summary>The metadata in file order.</summary>
    public IReadOnlyList<(string Key, GgufValue Value)> Metadata { get; }
    public IReadOnlyList<GgufTensorInfo> Tensors { get; }
    public long DataStart { get; }

    /// <summary>The value of <paramref name="key"/>, or null.</summary>
    public GgufValue? this[string key] => Metadata.FirstOrDefault(m => m.Key == key).Value;

    public GgufTensorInfo Tensor(string name) => Tensors.FirstOrDefault(t => t.Name == name)
        ?? throw new BadInputException($"{Path}: GGUF file has no tensor {name}");

    /// <summary>The data of one tensor.</summary>
    public byte[] Read(GgufTensorInfo tensor)
    {
        var data = new byte[checked((int)tensor.Bytes)];
        int n = RandomAccess.Read(_handle, data, DataStart + tensor.Offset);
        if (n != data.Length) throw new BadInputException($"{Path}: truncated GGUF file (tensor {tensor.Name} ends early)");
        return data;
    }

    public static GgufReader Open(string path)
    {
        if (path.Length == 0) throw new BadInputException("the GGUF file's path is empty");
        Libc.RequireRegularFile(path, "a GGUF file");
        SafeFileHandle handle;
        try { handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.Read); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        { throw new BadInputException($"{path}: cannot open GGUF file ({e.Message})"); }
        try
        {
            long length = RandomAccess.GetLength(handle);
            var r = new Cursor(handle, length, path);
            if (!r.Bytes(4).AsSpan().SequenceEqual(GgufFormat.Magic)) throw new BadInputException($"{path}: not a GGUF file (bad magic)");
            uint version = r.U32();
            if (version is not (2 or GgufFormat.Version))
                throw new BadInputException($"{path}: GGUF version {version} is not supported (this build reads versions 2 and 3)");
            ulong tensorCount = r.U64(), metadataCount = r.U64();
            // Every entry takes at least 8 bytes (a key's or name's length), so a count the file cannot hold is refused
            // before anything is allocated for it.
            if (tensorCount > (ulong)length / 8 || metadataCount > (ulong)length / 8)
                throw new BadInputException($"{path}: GGUF header is corrupt ({tensorCount} tensors, {metadataCount} metadata entries in {length} bytes)");
            var metadata = new List<(string, GgufValue)>();
            for (ulong i = 0; i < metadataCount; i++)
            {
                string key = r.Text();
                var type = r.Type();
                metadata.Add((key, r.Value(type)));
            }
            long alignment = GgufFormat.Alignment;
            if (metadata.FirstOrDefault(m => m.Item1 == "general.alignment").Item2 is { } a)
                alignment = a.Value is uint n && n > 0 && (n & (n - 1)) == 0 ? n
                    : throw new BadInputException($"{path}: GGUF general.alignment is {a} (a power of two as uint32 expected)");
            var tensors = new List<GgufTensorInfo>();
            for (ulong i = 0; i < tensorCount; i++)
            {
                string name = r.Text();
                uint dimensions = r.U32();
                if (dimensions is 0 or > GgufFormat.MaxDimensions)
                    throw new BadInputException($"{path}: GGUF tensor {name} has {dimensions} dimensions (1 to {GgufFormat.MaxDimensions})");
                var dims = new long[dimensions];
                for (int d = 0; d < dims.Length; d++)
                {
                    ulong value = r.U64();
                    dims[d] = value is > 0 and <= int.MaxValue ? (long)value
                        : throw new BadInputException($"{path}: GGUF tensor {name} has dimension {value}");
                }
                uint type = r.U32();
                if (!Enum.IsDefined((GgufTensorType)type))
                    throw new BadInputException($"{path}: GGUF tensor {name} has type {type}, which this build does not read (F32, F16, Q8_0, Q4_0)");
                if (!GgufFormat.Fits((GgufTensorType)type, dims[0]))
                    throw new BadInputException($"{path}: GGUF tensor {name} of type {(GgufTensorType)type} has rows of {dims[0]} elements, not whole blocks");
                ulong offset = r.U64();
                if (offset % (ulong)alignment != 0)
                    throw new BadInputException($"{path}: GGUF tensor {name} is at offset {offset}, not aligned to {alignment}");
                tensors.Add(new GgufTensorInfo(name, dims, (GgufTensorType)type, (long)Math.Min(offset, long.MaxValue / 2)));
            }
            long dataStart = (r.Position + alignment - 1) / alignment * alignment;
            foreach (var t in tensors)
            {
                if (t.Offset > length || t.Bytes > length - dataStart - t.Offset)
                    throw new BadInputException($"{path}: truncated GGUF file (tensor {t.Name} needs bytes up to {dataStart + t.Offset + t.Bytes}, the file has {length})");
                if (tensors.Count(o => o.Name == t.Name) > 1) throw new BadInputException($"{path}: GGUF file has tensor {t.Name} twice");
            }
            return new GgufReader(path, handle, version, metadata, tensors, dataStart);
        }
        catch (OverflowException)
        {
            handle.Dispose();
            throw new BadInputException($"{path}: GGUF header is corrupt (a size overflows)");
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    public void Dispose() => _handle.Dispose();

    /// <summary>Reads the header front to back through a window of the file (a vocabulary is ~100,000 small values),
    /// refusing to go past the end of the file.</summary>
    private sealed class Cursor(SafeFileHandle handle, long length, string path)
    {
        private const int MaxNesting = 8;
        private readonly byte[] _window = new byte[1 << 16];
        private long _windowStart;
        private int _windowLength;

        public long Position { get; private set; }

        public byte[] Bytes(long n)
        {
            if (n < 0 || n > length - Position) throw new BadInputException($"{path}: truncated GGUF file (the header ends early, at byte {length})");
            var b = new byte[n];
            for (long done = 0; done < n;)
            {
                long at = Position + done;
                if (at < _windowStart || at >= _windowStart + _windowLength)
                {
                    _windowStart = at;
                    _windowLength = RandomAccess.Read(handle, _window, at);
                    if (_windowLength <= 0) throw new BadInputException($"{path}: truncated GGUF file (read failed at byte {at})");
                }
                int chunk = (int)Math.Min(n - done, _windowStart + _windowLength - at);
                _window.AsSpan((int)(at - _windowStart), chunk).CopyTo(b.AsSpan((int)done));
                done += chunk;
            }
            Position += n;
            return b;
        }

        public uint U32() => BinaryPrimitives.ReadUInt32LittleEndian(Bytes(4));
        public ulong U64() => BinaryPrimitives.ReadUInt64LittleEndian(Bytes(8));

        public GgufValueType Type()
        {
            uint type = U32();
            return Enum.IsDefined((GgufValueType)type) ? (GgufValueType)type
                : throw new BadInputException($"{path}: GGUF metadata has value type {type}, which does not exist");
        }

        public string Text()
        {
            ulong n = U64();
            if (n > (ulong)(length - Position)) throw new BadInputException($"{path}: truncated GGUF file (a string of {n} bytes at byte {Position})");
            try { return new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(Bytes((long)n)); }
            catch (DecoderFallbackException) { throw new BadInputException($"{path}: GGUF string at byte {Position - (long)n} is not UTF-8"); }
        }

        public GgufValue Value(GgufValueType type, int depth = 0)
        {
            if (type != GgufValueType.Array) return new GgufValue(type, Scalar(type));
            if (depth == MaxNesting) throw new BadInputException($"{path}: GGUF metadata nests arrays more than {MaxNesting} deep");
            var elementType = Type();
            ulong count = U64();
            // Each element takes at least one byte (strings and arrays eight), so the count is bounded by what is left.
            ulong least = (ulong)Math.Max(1, elementType is GgufValueType.String or GgufValueType.Array ? 8 : GgufValue.FixedSize(elementType));
            if (count > (ulong)(length - Position) / least)
                throw new BadInputException($"{path}: truncated GGUF file (an array of {count} {elementType} at byte {Position})");
            Array array = elementType switch
            {
                GgufValueType.UInt8 => new byte[count], GgufValueType.Int8 => new sbyte[count], GgufValueType.Bool => new bool[count],
                GgufValueType.UInt16 => new ushort[count], GgufValueType.Int16 => new short[count],
                GgufValueType.UInt32 => new uint[count], GgufValueType.Int32 => new int[count], GgufValueType.Float32 => new float[count],
                GgufValueType.UInt64 => new ulong[count], GgufValueType.Int64 => new long[count], GgufValueType.Float64 => new double[count],
                GgufValueType.String => new string[count],
                _ => new GgufValue[count],
            };
            for (long i = 0; i < (long)count; i++)
                array.SetValue(elementType == GgufValueType.Array ? Value(GgufValueType.Array, depth + 1) : Scalar(elementType), i);
            return new GgufValue(type, array, elementType);
        }

        private object Scalar(GgufValueType type) => type switch
        {
            GgufValueType.UInt8 => Bytes(1)[0],
            GgufValueType.Int8 => (sbyte)Bytes(1)[0],
            GgufValueType.Bool => Bytes(1)[0] != 0,
            GgufValueType.UInt16 => BinaryPrimitives.ReadUInt16LittleEndian(Bytes(2)),
            GgufValueType.Int16 => BinaryPrimitives.ReadInt16LittleEndian(Bytes(2)),
            GgufValueType.UInt32 => U32(),
            GgufValueType.Int32 => BinaryPrimitives.ReadInt32LittleEndian(Bytes(4)),
            GgufValueType.Float32 => BinaryPrimitives.ReadSingleLittleEndian(Bytes(4)),
            GgufValueType.UInt64 => U64(),
            GgufValueType.Int64 => BinaryPrimitives.ReadInt64LittleEndian(Bytes(8)),
            GgufValueType.Float64 => BinaryPrimitives.ReadDoubleLittleEndian(Bytes(8)),
            GgufValueType.String => Text(),
            _ => throw new ArgumentOutOfRangeException(nameof(type), type, null),
        };
    }
}
