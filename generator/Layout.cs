// Shared by the generator (which emits these offsets as constants) and the runtime (whose converter
// writes tensors at these offsets), so the two can never disagree. Keep it netstandard2.0-clean.
using System;
using System.Collections.Generic;

namespace AotFlash.Flash
{
    /// <summary>Element type of the large weight matrices. Norm weights and biases are always f32. Q8 and Q4 store each
    /// row (or bundle slice) as groups of <see cref="Layout.QuantGroup"/> elements with one half-precision scale per
    /// group; see <see cref="Layout.RowBytes"/>.</summary>
    public enum WeightType { F32 = 0, F16 = 1, Q8 = 2, Q4 = 3 }

    /// <summary>Which tensors a model has: llama (RMSNorm, RoPE, gated FFN, no biases), OPT (LayerNorm, learned
    /// positions, biases everywhere, plain FFN) or Falcon (one LayerNorm with bias feeding attention and a plain FFN in
    /// parallel, RoPE, no other biases).</summary>
    public enum ModelFamily { Llama = 0, Opt = 1, Falcon = 2 }

    /// <summary>How a bundle part is cut from its source tensor: row i, column i, or element i of a vector.</summary>
    public enum BundlePartKind { Row, Column, Element }

    /// <summary>One piece of every neuron bundle: where neuron i's slice of tensor <see cref="Tensor"/> ("w1", "fc1_bias", …)
    /// sits in the bundle, and in which element type.</summary>
    public sealed class BundlePart
    {
        public BundlePart(string tensor, BundlePartKind kind, long offset, WeightType type)
        { Tensor = tensor; Kind = kind; Offset = offset; Type = type; }
        public string Tensor { get; }
        public BundlePartKind Kind { get; }
        public long Offset { get; }
        public WeightType Type { get; }
    }

    /// <summary>The numbers that decide where every weight lives.</summary>
    public sealed class ModelShape : IEquatable<ModelShape>
    {
        /// <param name="residentWeights">The type of the resident section's matrices (embeddings, attention,
        /// classifier); null: the same as <paramref name="weights"/>, the FFN's.</param>
        public ModelShape(int dim, int hiddenDim, int layers, int heads, int kvHeads, int vocab, int context,
                          WeightType weights, bool tiedEmbeddings, WeightType? residentWeights = null)
        {
            Dim = dim; HiddenDim = hiddenDim; Layers = layers; Heads = heads; KvHeads = kvHeads;
            Vocab = vocab; Context = context; Weights = weights; TiedEmbeddings = tiedEmbeddings;
            ResidentWeights = residentWeights ?? weights;
        }

        public int Dim { get; }
        public int HiddenDim { get; }
        public int Layers { get; }
        public int Heads { get; }
        public int KvHeads { get; }
        public int Vocab { get; }
        public int Context { get; }
        /// <summary>Element type of the FFN's neuron bundles (the flash section).</summary>
        public WeightType Weights { get; }
        /// <summary>Element type of the resident section's matrices: the token and position embeddings, the attention
        /// projections and the classifier. A smaller type than the FFN's leaves more of a DRAM budget to the neuron
        /// caches.</summary>
        public WeightType ResidentWeights { get; }
        public bool TiedEmbeddings { get; }
        /// <summary>The weight types as messages name them: "f16", or "f16 (resident q8)" where the two differ.</summary>
        public string WeightsName => Name(Weights) + (ResidentWeights == Weights ? "" : " (resident " + Name(ResidentWeights) + ")");
        public int HeadSize => Dim / Heads;
        public int KvDim => Dim / Heads * KvHeads;

        public bool Equals(ModelShape? o) => o is not null && Dim == o.Dim && HiddenDim == o.HiddenDim && Layers == o.Layers
            && Heads == o.Heads && KvHeads == o.KvHeads && Vocab == o.Vocab && Context == o.Context
            && Weights == o.Weights && ResidentWeights == o.ResidentWeights && TiedEmbeddings == o.TiedEmbeddings;
        public override bool Equals(object? obj) => Equals(obj as ModelShape);
        public override int GetHashCode() => ((Dim * 31 + HiddenDim) * 31 + Layers) * 31 + Vocab;

        private static string Name(WeightType t) => t.ToString().ToLowerInvariant();
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
        public LayerSlots(TensorSlot attnNorm, TensorSlot wq, TensorSlot wk, TensorSlot wv, TensorSlot wo, TensorSlot? ffnNorm, long ffnBundles,
                          LayerBiases? biases = null)
        { AttnNorm = attnNorm; Wq = wq; Wk = wk; Wv = wv; Wo = wo; FfnNorm = ffnNorm; FfnBundles = ffnBundles; Biases = biases; }
        public TensorSlot AttnNorm { get; }
        public TensorSlot Wq { get; }
        public TensorSlot Wk { get; }
        public TensorSlot Wv { get; }
        public TensorSlot Wo { get; }
        /// <summary>The norm before the FFN; null for Falcon, whose FFN reads the attention norm's output.</summary>
        public TensorSlot? FfnNorm { get; }
        /// <summary>The OPT family's LayerNorm and projection biases, Falcon's LayerNorm bias; null for llama.</summary>
        public LayerBiases? Biases { get; }
        /// <summary>Byte offset of this layer's first neuron bundle from the start of the flash section.</summary>
        public long FfnBundles { get; }
    }

    /// <summary>Offsets of one layer's biases (all f32 vectors in the resident section): OPT has them all, Falcon only
    /// its LayerNorm's (the others null).</summary>
    public sealed class LayerBiases
    {
        public LayerBiases(TensorSlot attnNorm, TensorSlot? q = null, TensorSlot? k = null, TensorSlot? v = null, TensorSlot? o = null,
                           TensorSlot? ffnNorm = null, TensorSlot? ffnDown = null)
        { AttnNorm = attnNorm; Q = q; K = k; V = v; O = o; FfnNorm = ffnNorm; FfnDown = ffnDown; }
        public TensorSlot AttnNorm { get; }
        public TensorSlot? Q { get; }
        public TensorSlot? K { get; }
        public TensorSlot? V { get; }
        public TensorSlot? O { get; }
        public TensorSlot? FfnNorm { get; }
        /// <summary>fc2's bias, added once to the FFN's sum over neurons.</summary>
        public TensorSlot? FfnDown { get; }
    }

    /// <summary>
    /// Byte layout of a model file's two weight sections.
    /// Resident section: token embedding, [position embedding,] per layer [attention norm, wq, wk, wv, wo, ffn norm,
    /// and for OPT the norms' biases and the projections' biases; Falcon: attention norm and its bias, wq, wk, wv, wo],
    /// final norm [and its bias], classifier (unless tied); every tensor 64-byte aligned.
    /// Flash section: per layer (4 KiB aligned) one bundle per FFN neuron i, each 64-byte aligned, so the weights of one
    /// neuron are one contiguous read: llama [gate row i (w1) | up row i (w3) | down column i (w2)];
    /// OPT [fc1 row i | fc2 column i | fc1 bias i (f32)]; Falcon [fc1 row i | fc2 column i].
    /// </summary>
    public sealed class Layout
    {
        public const int TensorAlignment = 64;
        public const int FlashAlignment = 4096;

        /// <summary>OPT's learned position table starts this many rows in (a fairseq leftover for padding).</summary>
        public const int OptPositionOffset = 2;

        public Layout(ModelShape shape, ModelFamily family = ModelFamily.Llama)
        {
            Shape = shape;
            Family = family;
            bool opt = family == ModelFamily.Opt, falcon = family == ModelFamily.Falcon;
            var t = shape.ResidentWeights;
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
            if (opt) PositionEmbedding = Add("position_embedding", shape.Context + OptPositionOffset, shape.Dim, t);
            var layers = new LayerSlots[shape.Layers];
            var f = shape.Weights;
            long row = RowBytes(f, shape.Dim);
            BundleGate = 0;
            if (opt)
            {
                BundleUp = -1;
                BundleDown = row;
                BundleBias = 2 * row;
                BundleBytes = 2 * row + 4;
                BundleParts = new[]
                {
                    new BundlePart("fc1", BundlePartKind.Row, BundleGate, f),
                    new BundlePart("fc2", BundlePartKind.Column, BundleDown, f),
                    new BundlePart("fc1_bias", BundlePartKind.Element, BundleBias, WeightType.F32),
                };
            }
            else if (falcon)
            {
                BundleUp = -1;
                BundleDown = row;
                BundleBias = -1;
                BundleBytes = 2 * row;
                BundleParts = new[]
                {
                    new BundlePart("fc1", BundlePartKind.Row, BundleGate, f),
                    new BundlePart("fc2", BundlePartKind.Column, BundleDown, f),
                };
            }
            else
            {
                BundleUp = row;
                BundleDown = 2 * row;
                BundleBias = -1;
                BundleBytes = 3 * row;
                BundleParts = new[]
                {
                    new BundlePart("w1", BundlePartKind.Row, BundleGate, f),
                    new BundlePart("w3", BundlePartKind.Row, BundleUp, f),
                    new BundlePart("w2", BundlePartKind.Column, BundleDown, f),
                };
            }
            BundleStride = AlignUp(BundleBytes, TensorAlignment);
            long layerFlashBytes = AlignUp(BundleStride * shape.HiddenDim, FlashAlignment);
            for (int l = 0; l < shape.Layers; l++)
            {
                string p = "layers." + l + ".";
                TensorSlot Vector(string name, int n) => Add(p + name, 1, n, WeightType.F32);
                if (falcon)
                {
                    var norm = Vector("attention_norm", shape.Dim);
                    var normBias = Vector("attention_norm_bias", shape.Dim);
                    layers[l] = new LayerSlots(norm,
                        Add(p + "wq", shape.Dim, shape.Dim, t),
                        Add(p + "wk", shape.KvDim, shape.Dim, t),
                        Add(p + "wv", shape.KvDim, shape.Dim, t),
                        Add(p + "wo", shape.Dim, shape.Dim, t),
                        null, l * layerFlashBytes, new LayerBiases(normBias));
                    continue;
                }
                if (!opt)
                {
                    layers[l] = new LayerSlots(
                        Vector("attention_norm", shape.Dim),
                        Add(p + "wq", shape.Dim, shape.Dim, t),
                        Add(p + "wk", shape.KvDim, shape.Dim, t),
                        Add(p + "wv", shape.KvDim, shape.Dim, t),
                        Add(p + "wo", shape.Dim, shape.Dim, t),
                        Vector("ffn_norm", shape.Dim),
                        l * layerFlashBytes);
                    continue;
                }
                // Each projection's bias right after it, so a layer's attention is one stretch of the section.
                var attnNorm = Vector("attention_norm", shape.Dim);
                var attnNormBias = Vector("attention_norm_bias", shape.Dim);
                var wq = Add(p + "wq", shape.Dim, shape.Dim, t);
                var bq = Vector("bq", shape.Dim);
                var wk = Add(p + "wk", shape.KvDim, shape.Dim, t);
                var bk = Vector("bk", shape.KvDim);
                var wv = Add(p + "wv", shape.KvDim, shape.Dim, t);
                var bv = Vector("bv", shape.KvDim);
                var wo = Add(p + "wo", shape.Dim, shape.Dim, t);
                var bo = Vector("bo", shape.Dim);
                var ffnNorm = Vector("ffn_norm", shape.Dim);
                var ffnNormBias = Vector("ffn_norm_bias", shape.Dim);
                var ffnDownBias = Vector("ffn_down_bias", shape.Dim);
                layers[l] = new LayerSlots(attnNorm, wq, wk, wv, wo, ffnNorm, l * layerFlashBytes,
                    new LayerBiases(attnNormBias, bq, bk, bv, bo, ffnNormBias, ffnDownBias));
            }
            Layers = layers;
            FinalNorm = Add("final_norm", 1, shape.Dim, WeightType.F32);
            if (opt || falcon) FinalNormBias = Add("final_norm_bias", 1, shape.Dim, WeightType.F32);
            Classifier = shape.TiedEmbeddings ? TokenEmbedding : Add("classifier", shape.Vocab, shape.Dim, t);
            ResidentTensors = all;
            ResidentBytes = AlignUp(at, FlashAlignment);
            FlashLayerBytes = layerFlashBytes;
            FlashBytes = layerFlashBytes * shape.Layers;
        }

        public ModelShape Shape { get; }
        public ModelFamily Family { get; }
        public TensorSlot TokenEmbedding { get; }
        /// <summary>OPT's learned positions [context + <see cref="OptPositionOffset"/>, dim]; null for llama.</summary>
        public TensorSlot? PositionEmbedding { get; }
        public IReadOnlyList<LayerSlots> Layers { get; }
        public TensorSlot FinalNorm { get; }
        /// <summary>OPT's and Falcon's final LayerNorm bias; null for llama.</summary>
        public TensorSlot? FinalNormBias { get; }
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
        /// <summary>Offset of the gate row (llama's w1, OPT's fc1) in a bundle: the row whose dot product decides
        /// whether the neuron is active.</summary>
        public long BundleGate { get; }
        /// <summary>Offset of the up row (w3); -1 for OPT's and Falcon's plain FFN, which has none.</summary>
        public long BundleUp { get; }
        public long BundleDown { get; }
        /// <summary>Offset of the gate's f32 bias (OPT's fc1 bias); -1 for llama and Falcon, which have none.</summary>
        public long BundleBias { get; }
        /// <summary>What a bundle is made of, in file order.</summary>
        public IReadOnlyList<BundlePart> BundleParts { get; }

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
