// Shared by the generator (which emits these offsets as constants) and the runtime (whose converter
// writes tensors at these offsets), so the two can never disagree. Keep it netstandard2.0-clean.
using System;
using System.Collections.Generic;

namespace AotFlash.Flash
{
    /// <summary>Element type of the large weight matrices. Norm weights are always f32. Q8 and Q4 store each row (or
    /// bundle slice) as groups of <see cref="Layout.QuantGroup"/> elements with one half-precision scale per group;
    /// see <see cref="Layout.RowBytes"/>.</summary>
    public enum WeightType { F32 = 0, F16 = 1, Q8 = 2, Q4 = 3 }

    /// <summary>The numbers that decide where every weight lives.</summary>
    public sealed class ModelShape : IEquatable<ModelShape>
    {
        public ModelShape(int dim, int hiddenDim, int layers, int heads, int kvHeads, int vocab, int context,
                          WeightType weights, bool tiedEmbeddings)
        {
            Dim = dim; HiddenDim = hiddenDim; Layers = layers; Heads = heads; KvHeads = kvHeads;
            Vocab = vocab; Context = context; Weights = weights; TiedEmbeddings = tiedEmbeddings;
        }

        public int Dim { get; }
        public int HiddenDim { get; }
        public int Layers { get; }
        public int Heads { get; }
        public int KvHeads { get; }
        public int Vocab { get; }
        public int Context { get; }
        public WeightType Weights { get; }
        public bool TiedEmbeddings { get; }
        public int HeadSize => Dim / Heads;
        public int KvDim => Dim / Heads * KvHeads;

        public bool Equals(ModelShape? o) => o is not null && Dim == o.Dim && HiddenDim == o.HiddenDim && Layers == o.Layers
            && Heads == o.Heads && KvHeads == o.KvHeads && Vocab == o.Vocab && Context == o.Context
            && Weights == o.Weights && TiedEmbeddings == o.TiedEmbeddings;
        public override bool Equals(object? obj) => Equals(obj as ModelShape);
        public override int GetHashCode() => ((Dim * 31 + HiddenDim) * 31 + Layers) * 31 + Vocab;
    }

    /// <summary>One tensor of the resident section.</summary>
    public sealed class TensorSlot
    {
        public TensorSlot(string name, long offset, int rows, int cols, WeightType type)
        { Name = name; Offset = offset; Rows = rows; Cols = cols; Type = type; }
        public string Name { get; }
        /// <summary>Byte offset from the start of the resident section.</summary>
        public long Offset { get; }
        public int Rows { get; }
        public int Cols { get; }
        public WeightType Type { get; }
        public long Bytes => Rows * Layout.RowBytes(Type, Cols);
    }

    /// <summary>Offsets of one layer's tensors: attention in the resident section, FFN bundles in the flash section.</summary>
    public sealed class LayerSlots
    {
        public LayerSlots(TensorSlot attnNorm, TensorSlot wq, TensorSlot wk, TensorSlot wv, TensorSlot wo, TensorSlot ffnNorm, long ffnBundles)
        { AttnNorm = attnNorm; Wq = wq; Wk = wk; Wv = wv; Wo = wo; FfnNorm = ffnNorm; FfnBundles = ffnBundles; }
        public TensorSlot AttnNorm { get; }
        public TensorSlot Wq { get; }
        public TensorSlot Wk { get; }
        public TensorSlot Wv { get; }
        public TensorSlot Wo { get; }
        public TensorSlot FfnNorm { get; }
        /// <summary>Byte offset of this layer's first neuron bundle from the start of the flash section.</summary>
        public long FfnBundles { get; }
    }

    /// <summary>
    /// Byte layout of a model file's two weight sections.
    /// Resident section: token embedding, per layer [attention norm, wq, wk, wv, wo, ffn norm], final norm,
    /// classifier (unless tied); every tensor 64-byte aligned.
    /// Flash section: per layer (4 KiB aligned) one bundle per FFN neuron i:
    /// [gate row i (w1) | up row i (w3) | down column i (w2)], each bundle 64-byte aligned, so the
    /// weights of one neuron are one contiguous read.
    /// </summary>
    public sealed class Layout
    {
        public const int TensorAlignment = 64;
        public const int FlashAlignment = 4096;

        public Layout(ModelShape shape)
        {
            Shape = shape;
            var t = shape.Weights;
            long at = 0;
            var all = new List<TensorSlot>();
            TensorSlot Add(string name, int rows, int cols, WeightType type)
            {
                var slot = new TensorSlot(name, at, rows, cols, type);
                all.Add(slot);
                at = AlignUp(at + slot.Bytes, TensorAlignment);
                return slot;
            }

            TokenEmbedding = Add("token_embedding", shape.Vocab, shape.Dim, t);
            var layers = new LayerSlots[shape.Layers];
            long row = RowBytes(t, shape.Dim);
            BundleGate = 0;
            BundleUp = row;
            BundleDown = 2 * row;
            BundleBytes = 3 * row;
            BundleStride = AlignUp(BundleBytes, TensorAlignment);
            long layerFlashBytes = AlignUp(BundleStride * shape.HiddenDim, FlashAlignment);
            for (int l = 0; l < shape.Layers; l++)
            {
                string p = "layers." + l + ".";
                layers[l] = new LayerSlots(
                    Add(p + "attention_norm", 1, shape.Dim, WeightType.F32),
                    Add(p + "wq", shape.Dim, shape.Dim, t),
                    Add(p + "wk", shape.KvDim, shape.Dim, t),
                    Add(p + "wv", shape.KvDim, shape.Dim, t),
                    Add(p + "wo", shape.Dim, shape.Dim, t),
                    Add(p + "ffn_norm", 1, shape.Dim, WeightType.F32),
                    l * layerFlashBytes);
            }
            Layers = layers;
            FinalNorm = Add("final_norm", 1, shape.Dim, WeightType.F32);
            Classifier = shape.TiedEmbeddings ? TokenEmbedding : Add("classifier", shape.Vocab, shape.Dim, t);
            ResidentTensors = all;
            ResidentBytes = AlignUp(at, FlashAlignment);
            FlashLayerBytes = layerFlashBytes;
            FlashBytes = layerFlashBytes * shape.Layers;
        }

        public ModelShape Shape { get; }
        public TensorSlot TokenEmbedding { get; }
        public IReadOnlyList<LayerSlots> Layers { get; }
        public TensorSlot FinalNorm { get; }
        /// <summary>The output projection; the token embedding itself when embeddings are tied.</summary>
        public TensorSlot Classifier { get; }
        public IReadOnlyList<TensorSlot> ResidentTensors { get; }
        public long ResidentBytes { get; }
        public long FlashBytes { get; }
        public long FlashLayerBytes { get; }
        /// <summary>Bytes of one bundle's weights (the stride without its alignment padding).</summary>
        public long BundleBytes { get; }
        /// <summary>Distance in bytes between neighbouring neuron bundles.</summary>
        public long BundleStride { get; }
        public long BundleGate { get; }
        public long BundleUp { get; }
        public long BundleDown { get; }

        /// <summary>Elements per quantisation group of q8 and q4 rows, each group with one scale.</summary>
        public const int QuantGroup = 32;

        /// <summary>
        /// Bytes of one row (or bundle slice) of <paramref name="n"/> elements stored as <paramref name="t"/>.
        /// f32 and f16: the elements. q8 and q4 (n a multiple of <see cref="QuantGroup"/>): n / 32 half-precision
        /// scales, then the quants, contiguous for vector loads: q8 one int8 per element; q4 16 bytes per group, byte j
        /// holding element j in its low nibble and element j + 16 in its high nibble.
        /// </summary>
        public static long RowBytes(WeightType t, int n)
        {
            if ((t == WeightType.Q8 || t == WeightType.Q4) && n % QuantGroup != 0)
                throw new ArgumentException(t + " rows need a multiple of " + QuantGroup + " elements, not " + n, nameof(n));
            switch (t)
            {
                case WeightType.F32: return 4L * n;
                case WeightType.F16: return 2L * n;
                case WeightType.Q8: return 2L * (n / QuantGroup) + n;
                case WeightType.Q4: return 2L * (n / QuantGroup) + n / 2;
                default: throw new ArgumentOutOfRangeException(nameof(t), t, null);
            }
        }
        public static long AlignUp(long value, long alignment) => (value + alignment - 1) / alignment * alignment;
    }
}
