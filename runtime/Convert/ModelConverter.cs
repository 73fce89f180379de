using System.Buffers.Binary;
using AotFlash.Flash;
using AotFlash.Inference;
using AotFlash.Kernels;
using AotFlash.Tokenizers;

namespace AotFlash.Convert;

/// <summary>
/// Weights to convert, named as the model's <see cref="Layout"/> names them: the resident tensors by their slot names
/// ("token_embedding", "layers.3.wq", "layers.3.bq", …) and the FFN tensors bundles are cut from by
/// "layers.{l}." + <see cref="BundlePart.Tensor"/> ("layers.3.w1", "layers.3.fc1_bias", …). Values are f32, matrices
/// [outputs, inputs], q and k rows in llama2.c's RoPE order (pairs (2i, 2i+1) rotate together).
/// </summary>
public interface IWeightSource : IDisposable
{
    /// <summary>The tensor as [rows, cols] (a vector as [1, n]); valid until the next call.</summary>
    ReadOnlySpan<float> Read(string name, int rows, int cols);

    /// <summary>Fails when the tensor is missing or is not [rows, cols], without reading it (every tensor is checked
    /// before the output is created). Nothing to do for a source whose header was checked against the spec.</summary>
    void Check(string name, int rows, int cols) { }

    /// <summary>A line for the model file's provenance section when the weights are not a trained model's (synthetic
    /// ones); null for a checkpoint.</summary>
    string? Provenance => null;

    /// <summary>The tensor [rows, cols] already in <paramref name="type"/>, as the model file stores each row
    /// (<see cref="Layout.RowBytes"/>, rows one after the other), when the source holds it in that type: it is then
    /// copied, not decoded and encoded again (a GGUF file's Q8_0 and Q4_0 blocks keep their quants bit for bit). Null
    /// when the source holds it otherwise.</summary>
    byte[]? ReadStored(string name, int rows, int cols, WeightType type) => null;
}

/// <summary>What storing one kind of tensor (e.g. every layer's wq) in a lossy weight type lost: the RMS of the error
/// relative to the RMS of the weights, and the largest error of a single weight.</summary>
public sealed record ConversionError(string Kind, WeightType Type, long Weights, double RmsRelative, float MaxAbs);

/// <summary>Any <see cref="IWeightSource"/> + tokenizer → model file laid out by the model's <see cref="Layout"/>.</summary>
public static unsafe class ModelConverter
{
    /// <summary>llama2.c checkpoint (v0 or v1) + tokenizer.bin.</summary>
    /// <param name="progress">Called with a short description of each step (for a progress line on stderr).</param>
    /// <returns>The error of each kind of weight matrix when the spec stores them in a lossy type (empty for f32).</returns>
    public static IReadOnlyList<ConversionError> FromLlama2c(ModelInfo info, string checkpointPath, string tokenizerPath, string outputPath,
                                                             bool force, Action<string>? progress = null)
    {
        using var ckpt = Llama2cCheckpoint.Open(checkpointPath);
        ckpt.CheckFits(info);
        return Write(info, ckpt, checkpointPath, ReadLlama2cTokenizer(tokenizerPath, info), outputPath, force,
                     [checkpointPath, tokenizerPath], progress);
    }

    /// <summary>Writes the resident section, the tokenizer section (<paramref name="tokenizer"/>, as the runtime reads
    /// it for the spec's tokenizer kind) and the flash section of neuron bundles, atomically.</summary>
    /// <param name="sourceName">The checkpoint's path, for error messages.</param>
    /// <param name="inputs">The files read, which the output may not replace.</param>
    /// <returns>The error of each kind of weight matrix when the spec stores them in a lossy type (empty for f32).</returns>
    public static IReadOnlyList<ConversionError> Write(ModelInfo info, IWeightSource source, string sourceName, byte[] tokenizer,
                                                       string outputPath, bool force, string[] inputs, Action<string>? progress = null)
    {
        var shape = info.Shape;
        var layout = info.Layout;
        var parts = layout.BundleParts;
        (int Rows, int Cols) Whole(BundlePart part) => part.Kind switch
        {
            BundlePartKind.Row => (shape.HiddenDim, shape.Dim),      // [hidden, dim]: neuron i is row i
            BundlePartKind.Column => (shape.Dim, shape.HiddenDim),   // [dim, hidden]: neuron i is column i
            _ => (1, shape.HiddenDim),                               // [hidden]: neuron i is element i
        };
        // A missing or misshapen tensor fails here, before the output exists and before any progress is reported.
        foreach (var slot in layout.ResidentTensors) source.Check(slot.Name, slot.Rows, slot.Cols);
        for (int l = 0; l < shape.Layers; l++)
            foreach (var part in parts)
                source.Check($"layers.{l}.{part.Tensor}", Whole(part).Rows, Whole(part).Cols);

        using var writer = ModelFileWriter.Create(outputPath, force, inputs);
        var tensors = new TensorWriter(writer, sourceName);

        progress?.Invoke("resident section (embeddings, attention, norms)");
        writer.BeginSection(SectionKind.Resident);
        foreach (var slot in layout.ResidentTensors)
        {
            writer.PadTo(slot.Offset);
            if (source.ReadStored(slot.Name, slot.Rows, slot.Cols, slot.Type) is { } stored) writer.Write(stored);
            else tensors.Rows(source.Read(slot.Name, slot.Rows, slot.Cols), slot.Rows, slot.Cols, slot.Type, WeightNames.Split(slot.Name).Tensor, slot.Name);
        }
        writer.EndSection(layout.ResidentBytes);

        writer.BeginSection(SectionKind.Tokenizer);
        writer.Write(tokenizer);
        writer.EndSection(tokenizer.Length);

        writer.BeginSection(SectionKind.Flash);
        var column = new float[shape.Dim];
        var checksums = new byte[FlashChecksums.SectionLength(layout)];
        for (int l = 0; l < shape.Layers; l++)
        {
            progress?.Invoke($"flash section: layer {l + 1}/{shape.Layers} ({shape.HiddenDim} neuron bundles)");
            // Every tensor the bundles are cut from, for the whole layer: rows as stored where the source holds them so,
            // else as floats (columns always: they are stored, and quantised, along the other axis).
            var whole = new float[parts.Count][];
            var stored = new byte[]?[parts.Count];
            for (int p = 0; p < parts.Count; p++)
            {
                var (rows, cols) = Whole(parts[p]);
                string tensor = $"layers.{l}.{parts[p].Tensor}";
                if (parts[p].Kind == BundlePartKind.Row) stored[p] = source.ReadStored(tensor, rows, cols, parts[p].Type);
                if (stored[p] is null) whole[p] = source.Read(tensor, rows, cols).ToArray();
            }
            for (int i = 0; i < shape.HiddenDim; i++)
            {
                long bundle = layout.Layers[l].FfnBundles + i * layout.BundleStride;
                writer.PadTo(bundle);
                writer.Mark();
                for (int p = 0; p < parts.Count; p++)
                {
                    // Each slice is stored (and, when lossy, quantised) on its own, and reports its own error.
                    var part = parts[p];
                    writer.PadTo(bundle + part.Offset);
                    var values = whole[p];
                    string name = $"layers.{l}.{part.Tensor} neuron {i}";
                    if (stored[p] is { } rowsStored)
                    {
                        long rowBytes = Layout.RowBytes(part.Type, shape.Dim);
                        writer.Write(rowsStored.AsSpan((int)(i * rowBytes), (int)rowBytes));
                        continue;
                    }
                    switch (part.Kind)
                    {
                        case BundlePartKind.Row:
                            tensors.Rows(values.AsSpan(i * shape.Dim, shape.Dim), 1, shape.Dim, part.Type, part.Tensor, name);
                            break;
                        case BundlePartKind.Column:
                            for (int d = 0; d < shape.Dim; d++) column[d] = values[(long)d * shape.HiddenDim + i];
                            tensors.Rows(column, 1, shape.Dim, part.Type, part.Tensor, name);
                            break;
                        default:
                            tensors.Rows(values.AsSpan(i, 1), 1, 1, part.Type, part.Tensor, name);
                            break;
                    }
                }
                if (writer.SectionPosition != bundle + layout.BundleBytes)
                    throw new InvalidOperationException($"bundle {i} of layer {l} is {writer.SectionPosition - bundle} bytes, the layout says {layout.BundleBytes}");
                BinaryPrimitives.WriteUInt32LittleEndian(checksums.AsSpan(4 * (l * shape.HiddenDim + i)), writer.ChecksumSinceMark);
            }
        }
        writer.EndSection(layout.FlashBytes);

        writer.BeginSection(SectionKind.FlashChecksums);
        writer.Write(checksums);
        writer.EndSection(checksums.Length);
        if (source.Provenance is { } provenance)
        {
            byte[] line = System.Text.Encoding.UTF8.GetBytes(provenance);
            writer.BeginSection(SectionKind.Provenance);
            writer.Write(line);
            writer.EndSection(line.Length);
        }
        writer.Commit(info.Name, info.SpecHash, shape);
        return tensors.Errors;
    }

    /// <summary>A llama2.c tokenizer.bin, or a SentencePiece .model or Hugging Face Llama tokenizer.json turned into
    /// one, checked to load for the model's vocabulary.</summary>
    public static byte[] ReadLlama2cTokenizer(string path, ModelInfo info)
    {
        byte[] data = ReadFile(path, "tokenizer");
        try
        {
            if (path.EndsWith(".model", StringComparison.OrdinalIgnoreCase)) data = SentencePieceModel.ToLlama2c(data);
            else if (path.EndsWith(".json", StringComparison.OrdinalIgnoreCase)) data = HfLlamaTokenizer.ToLlama2c(data, info.Tokenizer.Bos, info.Tokenizer.Eos);
            Llama2cTokenizer.Load(data, info.Shape.Vocab);
        }
        catch (InvalidDataException e) { throw new BadInputException($"{path}: {e.Message}"); }
        return data;
    }

    /// <summary>A whole input file (a tokenizer, a vocabulary, a calibration text), or no more than its first
    /// <paramref name="maxBytes"/> bytes; a FIFO, device or directory is refused before it is opened, since reading it
    /// could wait or grow forever.</summary>
    public static byte[] ReadFile(string path, string what, long maxBytes = long.MaxValue)
    {
        if (path.Length == 0) throw new BadInputException($"the {what} file's path is empty");
        Libc.RequireRegularFile(path, $"a {what} file");
        try
        {
            if (maxBytes == long.MaxValue) return File.ReadAllBytes(path);
            using var stream = File.OpenRead(path);
            var prefix = new byte[Math.Min(stream.Length, maxBytes)];
            return prefix[..stream.ReadAtLeast(prefix, prefix.Length, throwOnEndOfStream: false)];
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        { throw new BadInputException($"{path}: cannot read {what} ({e.Message})"); }
    }

    /// <summary>Writes f32 source rows in a weight type, several rows per write, and for a lossy type decodes each row
    /// again to measure what was lost, per tensor kind.</summary>
    private sealed class TensorWriter(ModelFileWriter writer, string source)
    {
        private byte[] _buffer = new byte[1 << 20];
        private float[] _decoded = [];
        private readonly Dictionary<string, ErrorSum> _errors = [];
        private readonly List<string> _kinds = [];

        /// <summary>rows[count, n] as <paramref name="type"/>, one <see cref="Layout.RowBytes"/> after the other.</summary>
        public void Rows(ReadOnlySpan<float> values, int count, int n, WeightType type, string kind, string name)
        {
            long rowBytes = Layout.RowBytes(type, n);
            if (rowBytes > _buffer.Length) _buffer = new byte[rowBytes];
            if (type != WeightType.F32 && _decoded.Length < n) _decoded = new float[n];
            int perWrite = (int)(_buffer.Length / rowBytes);
            fixed (byte* buffer = _buffer)
            fixed (float* decoded = _decoded)
            fixed (float* rows = values)
            {
                for (int done = 0; done < count;)
                {
                    int chunk = Math.Min(count - done, perWrite);
                    for (int r = 0; r < chunk; r++)
                    {
                        float* x = rows + (long)(done + r) * n;
                        byte* row = buffer + r * rowBytes;
                        Encode(row, x, n, type, name, done + r);
                        if (type == WeightType.F32) continue;
                        WeightRows.ToSingle(type, decoded, row, n);
                        Error(kind, type).Add(x, decoded, n);
                    }
                    writer.Write(new ReadOnlySpan<byte>(buffer, (int)(chunk * rowBytes)));
                    done += chunk;
                }
            }
        }

        private void Encode(byte* row, float* x, int n, WeightType type, string name, int index)
        {
            try
            {
                switch (type)
                {
                    case WeightType.F32: Buffer.MemoryCopy(x, row, n * 4L, n * 4L); break;
                    case WeightType.F16:
                        VectorOps.ToHalf((Half*)row, x, n);
                        if (HalfBits.FirstNonFinite(new ReadOnlySpan<Half>(row, n)) is var j and >= 0)
                            throw new OverflowException($"a weight is {x[j]}, which does not fit a half-precision float");
                        break;
                    case WeightType.Q8: Quantization.QuantizeQ8(row, x, n); break;
                    case WeightType.Q4: Quantization.QuantizeQ4(row, x, n); break;
                    default: throw new ArgumentOutOfRangeException(nameof(type), type, null);
                }
            }
            catch (OverflowException e)
            {
                throw new BadInputException($"{source}: {name} row {index} cannot be stored as {type.ToString().ToLowerInvariant()}: {e.Message}");
            }
        }

        private ErrorSum Error(string kind, WeightType type)
        {
            if (_errors.TryGetValue(kind, out var sum)) return sum;
            _kinds.Add(kind);
            return _errors[kind] = new ErrorSum(type);
        }

        /// <summary>One entry per tensor kind, in the order first written; empty for f32.</summary>
        public IReadOnlyList<ConversionError> Errors => [.. _kinds.Select(k => _errors[k].Result(k))];
    }

    private sealed class ErrorSum(WeightType type)
    {
        private double _squaredError, _squared;
        private float _maxAbs;
        private long _count;

        public void Add(float* want, float* got, int n)
        {
            for (int i = 0; i < n; i++)
            {
                float e = MathF.Abs(want[i] - got[i]);
                _squaredError += (double)e * e;
                _squared += (double)want[i] * want[i];
                _maxAbs = MathF.Max(_maxAbs, e);
            }
            _count += n;
        }

        public ConversionError Result(string kind) =>
            new(kind, type, _count, _squared > 0 ? Math.Sqrt(_squaredError / _squared) : 0, _maxAbs);
    }
}
