using AotFlash.Flash;
using AotFlash.Inference;
using AotFlash.Kernels;
using AotFlash.Tokenizers;

namespace AotFlash.Convert;

/// <summary>What storing one kind of tensor (e.g. every layer's wq) in a lossy weight type lost: the RMS of the error
/// relative to the RMS of the weights, and the largest error of a single weight.</summary>
public sealed record ConversionError(string Kind, long Weights, double RmsRelative, float MaxAbs);

/// <summary>llama2.c checkpoint + tokenizer.bin → model file laid out by the model's <see cref="Layout"/>.</summary>
public static unsafe class ModelConverter
{
    /// <param name="progress">Called with a short description of each step (for a progress line on stderr).</param>
    /// <returns>The error of each kind of weight matrix when the spec stores them in a lossy type (empty for f32).</returns>
    public static IReadOnlyList<ConversionError> FromLlama2c(ModelInfo info, string checkpointPath, string tokenizerPath, string outputPath, bool force,
                                   Action<string>? progress = null)
    {
        var shape = info.Shape;
        using var ckpt = Llama2cCheckpoint.Open(checkpointPath);
        CheckShape(info, ckpt, checkpointPath);
        byte[] tokenizer = ReadTokenizer(tokenizerPath, shape.Vocab);

        using var writer = ModelFileWriter.Create(outputPath, force);
        var layout = info.Layout;
        var scratch = new TensorWriter(writer, checkpointPath);

        progress?.Invoke("resident section (embeddings, attention, norms)");
        writer.BeginSection(SectionKind.Resident);
        scratch.Matrix(layout.TokenEmbedding, ckpt.TokenEmbedding, "token_embedding");
        for (int l = 0; l < shape.Layers; l++)
        {
            var s = layout.Layers[l];
            scratch.Matrix(s.AttnNorm, ckpt.RmsAtt(l), "attention_norm");
            scratch.Matrix(s.Wq, ckpt.Wq(l), "wq");
            scratch.Matrix(s.Wk, ckpt.Wk(l), "wk");
            scratch.Matrix(s.Wv, ckpt.Wv(l), "wv");
            scratch.Matrix(s.Wo, ckpt.Wo(l), "wo");
            scratch.Matrix(s.FfnNorm, ckpt.RmsFfn(l), "ffn_norm");
        }
        scratch.Matrix(layout.FinalNorm, ckpt.RmsFinal, "final_norm");
        if (!shape.TiedEmbeddings) scratch.Matrix(layout.Classifier, ckpt.Classifier, "classifier");
        writer.EndSection(layout.ResidentBytes);

        writer.BeginSection(SectionKind.Tokenizer);
        writer.Write(tokenizer);
        writer.EndSection(tokenizer.Length);

        writer.BeginSection(SectionKind.Flash);
        var bundle = new float[3 * shape.Dim];
        for (int l = 0; l < shape.Layers; l++)
        {
            progress?.Invoke($"flash section: layer {l + 1}/{shape.Layers} ({shape.HiddenDim} neuron bundles)");
            float* w1 = ckpt.W1(l), w2 = ckpt.W2(l), w3 = ckpt.W3(l);
            for (int i = 0; i < shape.HiddenDim; i++)
            {
                // bundle i = [gate row i | up row i | down column i]
                new ReadOnlySpan<float>(w1 + (long)i * shape.Dim, shape.Dim).CopyTo(bundle);
                new ReadOnlySpan<float>(w3 + (long)i * shape.Dim, shape.Dim).CopyTo(bundle.AsSpan(shape.Dim));
                for (int d = 0; d < shape.Dim; d++) bundle[2 * shape.Dim + d] = w2[(long)d * shape.HiddenDim + i];
                writer.PadTo(layout.Layers[l].FfnBundles + i * layout.BundleStride);
                string name = $"layers.{l}.ffn neuron {i}";
                fixed (float* b = bundle)
                {
                    // Each slice is quantised on its own, so the three kinds report their own error.
                    scratch.Rows(b, 1, shape.Dim, shape.Weights, "w1 (gate)", name);
                    scratch.Rows(b + shape.Dim, 1, shape.Dim, shape.Weights, "w3 (up)", name);
                    scratch.Rows(b + 2 * shape.Dim, 1, shape.Dim, shape.Weights, "w2 (down)", name);
                }
            }
        }
        writer.EndSection(layout.FlashBytes);
        writer.Commit(info.Name, info.SpecHash, shape);
        return scratch.Errors;
    }

    private static void CheckShape(ModelInfo info, Llama2cCheckpoint c, string path)
    {
        var s = info.Shape;
        var mismatches = new List<string>();
        void Check(string name, long actual, long expected)
        {
            if (actual != expected) mismatches.Add($"{name} {actual} (spec: {expected})");
        }
        Check("dim", c.Dim, s.Dim);
        Check("hidden_dim", c.HiddenDim, s.HiddenDim);
        Check("layers", c.Layers, s.Layers);
        Check("heads", c.Heads, s.Heads);
        Check("kv_heads", c.KvHeads, s.KvHeads);
        Check("vocab", c.Vocab, s.Vocab);
        if (c.SharedClassifier != s.TiedEmbeddings)
            mismatches.Add(c.SharedClassifier ? "a shared classifier (spec: tie_embeddings false)" : "a separate classifier (spec: tie_embeddings true)");
        if (mismatches.Count > 0)
            throw new BadInputException($"{path}: checkpoint does not fit spec '{info.Name}': it has {string.Join(", ", mismatches)}");
        if (c.SeqLen < s.Context)
            throw new BadInputException($"{path}: checkpoint was trained for {c.SeqLen} positions, spec '{info.Name}' asks for context {s.Context}");
    }

    private static byte[] ReadTokenizer(string path, int vocab)
    {
        byte[] data;
        try { data = File.ReadAllBytes(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        { throw new BadInputException($"{path}: cannot read tokenizer ({e.Message})"); }
        try { Llama2cTokenizer.Load(data, vocab); }
        catch (InvalidDataException e) { throw new BadInputException($"{path}: {e.Message}"); }
        return data;
    }

    /// <summary>Writes f32 source rows in a weight type, several rows per write, and for a lossy type decodes each row
    /// again to measure what was lost, per tensor kind.</summary>
    private sealed class TensorWriter(ModelFileWriter writer, string source)
    {
        private byte[] _buffer = new byte[1 << 20];
        private float[] _decoded = [];
        private readonly Dictionary<string, ErrorSum> _errors = [];
        private readonly List<string> _kinds = [];

        public void Matrix(TensorSlot slot, float* rows, string kind)
        {
            writer.PadTo(slot.Offset);
            Rows(rows, slot.Rows, slot.Cols, slot.Type, kind, slot.Name);
        }

        /// <summary>rows[count, n] as <paramref name="type"/>, one <see cref="Layout.RowBytes"/> after the other.</summary>
        public void Rows(float* rows, int count, int n, WeightType type, string kind, string name)
        {
            long rowBytes = Layout.RowBytes(type, n);
            if (rowBytes > _buffer.Length) _buffer = new byte[rowBytes];
            if (type != WeightType.F32 && _decoded.Length < n) _decoded = new float[n];
            int perWrite = (int)(_buffer.Length / rowBytes);
            fixed (byte* buffer = _buffer)
            fixed (float* decoded = _decoded)
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
                        Error(kind).Add(x, decoded, n);
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
                    case WeightType.F16: VectorOps.ToHalf((Half*)row, x, n); break;
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

        private ErrorSum Error(string kind)
        {
            if (_errors.TryGetValue(kind, out var sum)) return sum;
            _kinds.Add(kind);
            return _errors[kind] = new ErrorSum();
        }

        /// <summary>One entry per tensor kind, in the order first written; empty for f32.</summary>
        public IReadOnlyList<ConversionError> Errors => [.. _kinds.Select(k => _errors[k].Result(k))];
    }

    private sealed class ErrorSum
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
            new(kind, _count, _squared > 0 ? Math.Sqrt(_squaredError / _squared) : 0, _maxAbs);
    }
}
