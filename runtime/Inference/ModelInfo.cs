using System.Globalization;
using AotFlash.Ffn;
using AotFlash.Flash;
using AotFlash.Tokenizers;

namespace AotFlash.Inference;

/// <summary>The spec's tokenizer section: its kind, BOS/EOS ids, the ids that end a generation, and the prompt format of a
/// chat model.</summary>
public sealed record TokenizerConfig(TokenizerKind Kind, int Bos, int Eos, int[] Stop, ChatTemplateKind ChatTemplate = ChatTemplateKind.None);

/// <summary>The FFN activations a spec can name.</summary>
public enum ActivationKind { Relu, Silu, Gelu, FatRelu }

/// <summary>A model's FFN activation: its kind and, for FATReLU, the threshold at or below which it gives 0.</summary>
public readonly record struct Activation(ActivationKind Kind, float Threshold = 0f)
{
    /// <summary>The gate pre-activation a neuron must exceed to be active (its output not exactly zero); null for
    /// activations that are never exactly zero (silu, gelu), whose neurons cannot be predicted away.</summary>
    public float? ActiveThreshold => Kind switch
    {
        ActivationKind.Relu => 0f,
        ActivationKind.FatRelu => Threshold,
        _ => null,
    };

    /// <summary>As specs write it: relu, silu, gelu or fatrelu(t).</summary>
    public override string ToString() => Kind == ActivationKind.FatRelu
        ? "fatrelu(" + Threshold.ToString("R", CultureInfo.InvariantCulture) + ")"
        : Kind.ToString().ToLowerInvariant();
}

/// <summary>Flash-mode defaults from the spec's <c>flash:</c> block.</summary>
public sealed record FlashDefaults(int Window, int PredictorRank, int IoThreads, string DramBudget);

/// <summary>Everything the runtime knows about a model compiled into this binary; one per spec, emitted by the generator.</summary>
public sealed class ModelInfo(
    string name, string specHash, ModelFamily family, ModelShape shape, float normEps, float ropeTheta, Activation activation,
    TokenizerConfig tokenizer, FlashDefaults flash, Func<ModelWeights, IFfnSource, int, Transformer> create,
    WeightType kvCache = WeightType.F32)
{
    public string Name { get; } = name;
    public string SpecHash { get; } = specHash;
    public ModelFamily Family { get; } = family;
    /// <summary>The family as specs write it ("llama", "opt").</summary>
    public string FamilyName => Family.ToString().ToLowerInvariant();
    public ModelShape Shape { get; } = shape;
    public float NormEps { get; } = normEps;
    public float RopeTheta { get; } = ropeTheta;
    public Activation Activation { get; } = activation;
    public TokenizerConfig Tokenizer { get; } = tokenizer;
    public FlashDefaults Flash { get; } = flash;
    /// <summary>Element type of the KV cache (the spec's <c>kv_cache</c>): f32, or f16 for half the memory and half the
    /// bytes a token's attention reads.</summary>
    public WeightType KvCache { get; } = kvCache;
    /// <summary>Bytes of the KV cache: keys and values of every layer at every position of the context.</summary>
    public long KvCacheBytes => 2L * Shape.Layers * Shape.Context * Shape.KvDim * (KvCache == WeightType.F16 ? sizeof(ushort) : sizeof(float));
    public Layout Layout { get; } = new(shape, family);

    /// <summary>The generated model class over loaded weights, its FFN fed by <paramref name="ffn"/> (which it then owns),
    /// computing with <paramref name="threads"/> threads.</summary>
    public Transformer Create(ModelWeights weights, IFfnSource ffn, int threads) => create(weights, ffn, threads);

    /// <summary>The tokenizer stored in loaded weights of this model (<paramref name="source"/> names the file in messages).</summary>
    public ITokenizer LoadTokenizer(ModelWeights weights, string source)
    {
        try { return TokenizerSection.Load(Tokenizer.Kind, weights.TokenizerData, Shape.Vocab); }
        catch (InvalidDataException e) { throw new BadInputException($"{source}: {e.Message}"); }
    }
}
