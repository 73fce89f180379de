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
}

/// <summary>Any <see cref="IWeightSource"/> + tokenizer → model file laid out by the model's <see cref="Layout"/>.</summary>
public static unsafe class ModelConverter
{
    /// <summary>llama2.c checkpoint (v0 or v1) + tokenizer.bin.</summary>
    /// <param name="progress">Called with a short description of each step (for a progress line on stderr).</param>
    public static void FromLlama2c(ModelInfo info, string checkpointPath, string tokenizerPath, string outputPath, bool force,
                                   Action<string>? progress = null)
    {
        using var ckpt = Llama2cCheckpoint.Open(checkpointPath);
        ckpt.CheckFits(info);
        Write(info, ckpt, ReadLlama2cTokenizer(tokenizerPath, info.Shape.Vocab), outputPath, force, progress);
    }

    /// <summary>Writes the resident section, the tokenizer section (<paramref name="tokenizer"/>, as the runtime reads
    /// it for the spec's tokenizer kind) and the flash section of neuron bundles, atomically.</summary>
    public static void Write(ModelInfo info, IWeightSource source, byte[] tokenizer, string outputPath, bool force,
                             Action<string>? progress = null)
    {
        var shape = info.Shape;
        var layout = info.Layout;
        using var writer = ModelFileWriter.Create(outputPath, force);
        var tensors = new TensorWriter(writer);

        progress?.Invoke("resident section (embeddings, attention, norms)");
        writer.BeginSection(SectionKind.Resident);
        foreach (var slot in layout.ResidentTensors)
        {
            writer.PadTo(slot.Offset);
            tensors.Write(source.Read(slot.Name, slot.Rows, slot.Cols), slot.Type);
        }
        writer.EndSection(layout.ResidentBytes);

        writer.BeginSection(SectionKind.Tokenizer);
        writer.Write(tokenizer);
        writer.EndSection(tokenizer.Length);

        writer.BeginSection(SectionKind.Flash);
        var parts = layout.BundleParts;
        var column = new float[shape.Dim];
        for (int l = 0; l < shape.Layers; l++)
        {
            progress?.Invoke($"flash section: layer {l + 1}/{shape.Layers} ({shape.HiddenDim} neuron bundles)");
            // Every tensor the bundles are cut from, for the whole layer.
            var whole = new float[parts.Count][];
            for (int p = 0; p < parts.Count; p++)
            {
                var (rows, cols) = parts[p].Kind switch
                {
                    BundlePartKind.Row => (shape.HiddenDim, shape.Dim),      // [hidden, dim]: neuron i is row i
                    BundlePartKind.Column => (shape.Dim, shape.HiddenDim),   // [dim, hidden]: neuron i is column i
                    _ => (1, shape.HiddenDim),                               // [hidden]: neuron i is element i
                };
                whole[p] = source.Read($"layers.{l}.{parts[p].Tensor}", rows, cols).ToArray();
            }
            for (int i = 0; i < shape.HiddenDim; i++)
            {
                long bundle = layout.Layers[l].FfnBundles + i * layout.BundleStride;
                for (int p = 0; p < parts.Count; p++)
                {
                    writer.PadTo(bundle + parts[p].Offset);
                    var values = whole[p];
                    switch (parts[p].Kind)
                    {
                        case BundlePartKind.Row:
                            tensors.Write(values.AsSpan(i * shape.Dim, shape.Dim), parts[p].Type);
                            break;
                        case BundlePartKind.Column:
                            for (int d = 0; d < shape.Dim; d++) column[d] = values[(long)d * shape.HiddenDim + i];
                            tensors.Write(column, parts[p].Type);
                            break;
                        default:
                            tensors.Write(values.AsSpan(i, 1), parts[p].Type);
                            break;
                    }
                }
            }
        }
        writer.EndSection(layout.FlashBytes);
        writer.Commit(info.Name, info.SpecHash, shape);
    }

    /// <summary>A llama2.c tokenizer.bin, checked to load for a vocabulary of <paramref name="vocab"/>.</summary>
    public static byte[] ReadLlama2cTokenizer(string path, int vocab)
    {
        byte[] data = ReadFile(path, "tokenizer");
        try { Llama2cTokenizer.Load(data, vocab); }
        catch (InvalidDataException e) { throw new BadInputException($"{path}: {e.Message}"); }
        return data;
    }

    internal static byte[] ReadFile(string path, string what)
    {
        try { return File.ReadAllBytes(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        { throw new BadInputException($"{path}: cannot read {what} ({e.Message})"); }
    }

    /// <summary>Writes f32 values as f32 or f16.</summary>
    private sealed class TensorWriter(ModelFileWriter writer)
    {
        private readonly byte[] _buffer = new byte[1 << 20];

        public void Write(ReadOnlySpan<float> values, WeightType @as)
        {
            if (@as == WeightType.F32) WriteF32(values);
            else WriteF16(values);
        }

        private void WriteF32(ReadOnlySpan<float> values)
        {
            for (int done = 0; done < values.Length;)
            {
                int chunk = Math.Min(values.Length - done, _buffer.Length / 4);
                writer.Write(System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.Slice(done, chunk)));
                done += chunk;
            }
        }

        private void WriteF16(ReadOnlySpan<float> values)
        {
            fixed (byte* buffer = _buffer)
            fixed (float* source = values)
            {
                for (int done = 0; done < values.Length;)
                {
                    int chunk = Math.Min(values.Length - done, _buffer.Length / 2);
                    VectorOps.ToHalf((Half*)buffer, source + done, chunk);
                    writer.Write(new ReadOnlySpan<byte>(buffer, chunk * 2));
                    done += chunk;
                }
            }
        }
    }
}
