using System.Buffers.Binary;
using System.Text.Json;
using AotFlash.Flash;
using AotFlash.Kernels;
using Microsoft.Win32.SafeHandles;

namespace AotFlash.Convert;

/// <summary>Element types this reader converts to f32; a checkpoint holding others is refused by name.</summary>
public enum SafeTensorsType { F32, F16, BF16 }

/// <summary>One tensor of a safetensors file: its type, shape and bytes [Begin, End) of the file's data area.</summary>
public sealed record SafeTensor(string Name, SafeTensorsType Type, long[] Shape, long Begin, long End)
{
    public long Elements => Shape.Aggregate(1L, (a, b) => a * b);
    public string ShapeText => "[" + string.Join(", ", Shape) + "]";
}

/// <summary>
/// The tensors of a Hugging Face checkpoint: one <c>*.safetensors</c> file, or a folder holding <c>model.safetensors</c>
/// or a sharded set named by <c>model.safetensors.index.json</c>. Each file is memory-mapped, never read whole into
/// managed memory; its header (u64 length, then JSON <c>{name: {dtype, shape, data_offsets}, "__metadata__": …}</c>)
/// is checked against the file's size before any tensor is touched.
/// </summary>
public sealed unsafe class SafeTensorsCheckpoint : IDisposable
{
    // A header this large is not a safetensors header (the format's own readers cap it at 100 MB).
    private const long MaxHeader = 100L << 20;
    private readonly List<Shard> _shards = [];
    private readonly Dictionary<string, (SafeTensor Tensor, Shard Shard)> _tensors = new(StringComparer.Ordinal);
    private float[] _scratch = [];

    private SafeTensorsCheckpoint() { }

    /// <summary>Where the checkpoint was found (for error messages).</summary>
    public string Source { get; private set; } = "";

    public IEnumerable<string> Names => _tensors.Keys;

    public bool Contains(string name) => _tensors.ContainsKey(name);

    public SafeTensor Get(string name) => _tensors.TryGetValue(name, out var t) ? t.Tensor
        : throw new BadInputException($"{Source}: has no tensor '{name}'");

    /// <param name="path">A <c>.safetensors</c> file, or a folder with <c>model.safetensors</c> or <c>model.safetensors.index.json</c>.</param>
    public static SafeTensorsCheckpoint Open(string path)
    {
        var checkpoint = new SafeTensorsCheckpoint();
        try
        {
            if (File.Exists(path))
            {
                checkpoint.Source = path;
                checkpoint.AddShard(path, null);
            }
            else if (Directory.Exists(path))
            {
                string index = Path.Combine(path, "model.safetensors.index.json");
                string single = Path.Combine(path, "model.safetensors");
                if (File.Exists(index)) checkpoint.OpenSharded(index);
                else if (File.Exists(single))
                {
                    checkpoint.Source = single;
                    checkpoint.AddShard(single, null);
                }
                else throw new BadInputException($"{path}: holds neither model.safetensors nor model.safetensors.index.json");
            }
            else throw new BadInputException($"{path}: no such file or folder");
            return checkpoint;
        }
        catch
        {
            checkpoint.Dispose();
            throw;
        }
    }

    private void OpenSharded(string indexPath)
    {
        Source = indexPath;
        var weightMap = new Dictionary<string, List<string>>(StringComparer.Ordinal);
        try
        {
            using var doc = JsonDocument.Parse(ReadAll(indexPath));
            if (doc.RootElement.ValueKind != JsonValueKind.Object
                || !doc.RootElement.TryGetProperty("weight_map", out var map) || map.ValueKind != JsonValueKind.Object)
                throw new BadInputException($"{indexPath}: has no \"weight_map\" object");
            foreach (var entry in map.EnumerateObject())
            {
                string shard = entry.Value.ValueKind == JsonValueKind.String ? entry.Value.GetString()! :
                    throw new BadInputException($"{indexPath}: weight_map entry '{entry.Name}' is not a file name");
                if (shard.Length == 0 || shard.Contains('/') || shard.Contains('\\') || shard is "." or "..")
                    throw new BadInputException($"{indexPath}: weight_map names '{shard}', which is not a file beside the index");
                if (!weightMap.TryGetValue(shard, out var names)) weightMap[shard] = names = [];
                names.Add(entry.Name);
            }
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException) // InvalidOperation: a string that is not UTF-8
        {
            throw new BadInputException($"{indexPath}: not valid JSON ({e.Message})");
        }
        if (weightMap.Count == 0) throw new BadInputException($"{indexPath}: weight_map is empty");
        string folder = Path.GetDirectoryName(Path.GetFullPath(indexPath))!;
        foreach (var (shard, names) in weightMap.OrderBy(kv => kv.Key, StringComparer.Ordinal))
        {
            string shardPath = Path.Combine(folder, shard);
            if (!File.Exists(shardPath)) throw new BadInputException($"{indexPath}: shard {shard} is missing");
            AddShard(shardPath, names);
        }
    }

    /// <param name="expected">The tensors the index says this shard holds; null for a single file.</param>
    private void AddShard(string path, List<string>? expected)
    {
        var shard = Shard.Map(path);
        _shards.Add(shard);
        foreach (var tensor in shard.ReadHeader())
        {
            if (_tensors.TryGetValue(tensor.Name, out var other))
                throw new BadInputException($"{path}: tensor '{tensor.Name}' is also in {other.Shard.Path}");
            _tensors[tensor.Name] = (tensor, shard);
        }
        if (expected is null) return;
        foreach (string name in expected)
            if (!_tensors.TryGetValue(name, out var t) || t.Shard != shard)
                throw new BadInputException($"{Source}: names '{name}' in {Path.GetFileName(path)}, which does not hold it");
    }

    /// <summary>The tensor as f32 (F16 and BF16 widened exactly), checked to be [rows, cols] (a vector is [1, n] or [n]).
    /// The span is valid until the next call.</summary>
    public ReadOnlySpan<float> ReadF32(string name, int rows, int cols)
    {
        var (t, shard) = Find(name, rows, cols);
        long n = (long)rows * cols;
        if (_scratch.Length < n) _scratch = new float[n];
        byte* data = shard.Data + t.Begin;
        fixed (float* dst = _scratch)
        {
            switch (t.Type)
            {
                case SafeTensorsType.F32: Buffer.MemoryCopy(data, dst, n * 4, n * 4); break;
                case SafeTensorsType.F16: VectorOps.ToSingle(dst, (Half*)data, checked((int)n)); break;
                default:
                    // bf16 is the high half of an f32.
                    for (long i = 0; i < n; i++) dst[i] = BitConverter.Int32BitsToSingle(((ushort*)data)[i] << 16);
                    break;
            }
        }
        return _scratch.AsSpan(0, (int)n);
    }

    /// <summary>Fails unless the checkpoint holds <paramref name="name"/> as [rows, cols] (a vector as [1, n] or [n]).</summary>
    public void CheckShape(string name, int rows, int cols) => Find(name, rows, cols);

    private (SafeTensor Tensor, Shard Shard) Find(string name, int rows, int cols)
    {
        var (t, shard) = _tensors.TryGetValue(name, out var found) ? found
            : throw new BadInputException($"{Source}: has no tensor '{name}'");
        bool fits = t.Shape.Length switch
        {
            1 => rows == 1 && t.Shape[0] == cols,
            2 => t.Shape[0] == rows && t.Shape[1] == cols,
            _ => false,
        };
        if (!fits)
            throw new BadInputException($"{shard.Path}: tensor '{name}' has shape {t.ShapeText}, the model needs " +
                                        (rows == 1 ? $"[{cols}]" : $"[{rows}, {cols}]"));
        return (t, shard);
    }

    public void Dispose()
    {
        foreach (var shard in _shards) shard.Dispose();
        _shards.Clear();
    }

    private static byte[] ReadAll(string path)
    {
        try { return File.ReadAllBytes(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        { throw new BadInputException($"{path}: cannot read ({e.Message})"); }
    }

    /// <summary>One mapped safetensors file.</summary>
    private sealed class Shard : IDisposable
    {
        private byte* _map;
        private long _length;
        private long _dataStart;

        public required string Path { get; init; }
        public byte* Data => _map + _dataStart;

        public static Shard Map(string path)
        {
            SafeFileHandle handle;
            try { handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.Read); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            { throw new BadInputException($"{path}: cannot open ({e.Message})"); }
            using (handle)
            {
                var shard = new Shard { Path = path, _length = RandomAccess.GetLength(handle) };
                if (shard._length < 8) throw new BadInputException($"{path}: too short for a safetensors file ({shard._length} bytes)");
                shard._map = (byte*)Libc.mmap(null, (nuint)shard._length, Libc.ProtRead, Libc.MapPrivate, (int)handle.DangerousGetHandle(), 0);
                if (shard._map == Libc.MapFailed) throw new IOException($"{path}: cannot map the file");
                return shard;
            }
        }

        /// <summary>Parses the header and checks every tensor's extent against the file.</summary>
        public List<SafeTensor> ReadHeader()
        {
            ulong headerLength = BinaryPrimitives.ReadUInt64LittleEndian(new ReadOnlySpan<byte>(_map, 8));
            if (headerLength > (ulong)Math.Min(MaxHeader, _length - 8))
                throw new BadInputException($"{Path}: not a safetensors file or truncated (header of {headerLength} bytes in a file of {_length})");
            _dataStart = 8 + (long)headerLength;
            long dataLength = _length - _dataStart;
            var tensors = new List<SafeTensor>();
            try
            {
                using var doc = JsonDocument.Parse(new ReadOnlyMemory<byte>(new ReadOnlySpan<byte>(_map + 8, (int)headerLength).ToArray()));
                if (doc.RootElement.ValueKind != JsonValueKind.Object) throw new BadInputException($"{Path}: safetensors header is not a JSON object");
                foreach (var entry in doc.RootElement.EnumerateObject())
                {
                    if (entry.Name == "__metadata__") continue;
                    tensors.Add(ParseTensor(entry, dataLength));
                }
            }
            catch (Exception e) when (e is JsonException or InvalidOperationException) // InvalidOperation: a string that is not UTF-8
            {
                throw new BadInputException($"{Path}: safetensors header is not valid JSON ({e.Message})");
            }
            return tensors;
        }

        private SafeTensor ParseTensor(JsonProperty entry, long dataLength)
        {
            string name = entry.Name;
            var v = entry.Value;
            BadInputException Bad(string what) => new($"{Path}: tensor '{name}': {what}");
            if (v.ValueKind != JsonValueKind.Object
                || !v.TryGetProperty("dtype", out var dtype) || dtype.ValueKind != JsonValueKind.String
                || !v.TryGetProperty("shape", out var shape) || shape.ValueKind != JsonValueKind.Array
                || !v.TryGetProperty("data_offsets", out var offsets) || offsets.ValueKind != JsonValueKind.Array || offsets.GetArrayLength() != 2)
                throw Bad("needs dtype, shape and data_offsets [begin, end]");
            var type = dtype.GetString() switch
            {
                "F32" => SafeTensorsType.F32,
                "F16" => SafeTensorsType.F16,
                "BF16" => SafeTensorsType.BF16,
                var other => throw Bad($"dtype {other} is not supported (F32, F16 and BF16 are)"),
            };
            var dims = new long[shape.GetArrayLength()];
            int d = 0;
            foreach (var dim in shape.EnumerateArray())
                dims[d++] = dim.ValueKind == JsonValueKind.Number && dim.TryGetInt64(out long x) && x >= 0 ? x : throw Bad("shape holds a non-size");
            long begin = Offset(offsets[0]), end = Offset(offsets[1]);
            long Offset(JsonElement e) => e.ValueKind == JsonValueKind.Number && e.TryGetInt64(out long x) && x >= 0 ? x : throw Bad("data_offsets holds a non-offset");
            var tensor = new SafeTensor(name, type, dims, begin, end);
            long elements;
            try { elements = dims.Aggregate(1L, (a, b) => checked(a * b)); }
            catch (OverflowException) { throw Bad($"shape {tensor.ShapeText} is too large"); }
            long bytes = elements * (type == SafeTensorsType.F32 ? 4 : 2);
            if (begin > end || end > dataLength)
                throw Bad($"data_offsets [{begin}, {end}] lie outside the file's {dataLength} data bytes (truncated file?)");
            if (end - begin != bytes)
                throw Bad($"holds {end - begin} bytes, but {type} {tensor.ShapeText} needs {bytes}");
            return tensor;
        }

        public void Dispose()
        {
            if (_map != null) Libc.munmap(_map, (nuint)_length);
            _map = null;
        }
    }
}
