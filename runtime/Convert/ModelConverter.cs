using AotFlash.Flash;
using AotFlash.Inference;
using AotFlash.Kernels;
using AotFlash.Tokenizers;

namespace AotFlash.Convert;

/// <summary>llama2.c checkpoint + tokenizer.bin → model file laid out by the model's <see cref="Layout"/>.</summary>
public static unsafe class ModelConverter
{
    /// <param name="progress">Called with a short description of each step (for a progress line on stderr).</param>
    public static void FromLlama2c(ModelInfo info, string checkpointPath, string tokenizerPath, string outputPath, bool force,
                                   Action<string>? progress = null)
    {
        var shape = info.Shape;
        using var ckpt = Llama2cCheckpoint.Open(checkpointPath);
        CheckShape(info, ckpt, checkpointPath);
        byte[] tokenizer = ReadTokenizer(tokenizerPath, shape.Vocab);

        using var writer = ModelFileWriter.Create(outputPath, force);
        var layout = info.Layout;
        var scratch = new TensorWriter(writer);

        progress?.Invoke("resident section (embeddings, attention, norms)");
        writer.BeginSection(SectionKind.Resident);
        scratch.Matrix(layout.TokenEmbedding, ckpt.TokenEmbedding);
        for (int l = 0; l < shape.Layers; l++)
        {
            var s = layout.Layers[l];
            scratch.Matrix(s.AttnNorm, ckpt.RmsAtt(l));
            scratch.Matrix(s.Wq, ckpt.Wq(l));
            scratch.Matrix(s.Wk, ckpt.Wk(l));
            scratch.Matrix(s.Wv, ckpt.Wv(l));
            scratch.Matrix(s.Wo, ckpt.Wo(l));
            scratch.Matrix(s.FfnNorm, ckpt.RmsFfn(l));
        }
        scratch.Matrix(layout.FinalNorm, ckpt.RmsFinal);
        if (!shape.TiedEmbeddings) scratch.Matrix(layout.Classifier, ckpt.Classifier);
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
                fixed (float* b = bundle) scratch.Write(b, bundle.Length, shape.Weights);
            }
        }
        writer.EndSection(layout.FlashBytes);
        writer.Commit(info.Name, info.SpecHash, shape);
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

    /// <summary>Writes f32 source tensors as f32 or f16.</summary>
    private sealed class TensorWriter(ModelFileWriter writer)
    {
        private readonly byte[] _buffer = new byte[1 << 20];

        public void Matrix(TensorSlot slot, float* source)
        {
            writer.PadTo(slot.Offset);
            Write(source, (long)slot.Rows * slot.Cols, slot.Type);
        }

        /// <summary>n floats from <paramref name="source"/> as <paramref name="as"/>.</summary>
        public void Write(float* source, long n, WeightType @as)
        {
            if (@as == WeightType.F32) WriteF32(source, n);
            else WriteF16(source, n);
        }

        private void WriteF32(float* source, long n)
        {
            for (long done = 0; done < n;)
            {
                int chunk = (int)Math.Min(n - done, _buffer.Length / 4);
                writer.Write(new ReadOnlySpan<byte>(source + done, chunk * 4));
                done += chunk;
            }
        }

        private void WriteF16(float* source, long n)
        {
            fixed (byte* buffer = _buffer)
            {
                for (long done = 0; done < n;)
                {
                    int chunk = (int)Math.Min(n - done, _buffer.Length / 2);
                    VectorOps.ToHalf((Half*)buffer, source + done, chunk);
                    writer.Write(new ReadOnlySpan<byte>(buffer, chunk * 2));
                    done += chunk;
                }
            }
        }
    }
}
