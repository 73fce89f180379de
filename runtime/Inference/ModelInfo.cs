using AotFlash.Flash;

namespace AotFlash.Inference;

public sealed record TokenizerConfig(string Kind, int Bos, int Eos, int[] Stop);

/// <summary>Flash-mode defaults from the spec's <c>flash:</c> block.</summary>
public sealed record FlashDefaults(int Window, int PredictorRank, int IoThreads, string DramBudget);

/// <summary>Everything the runtime knows about a model compiled into this binary; one per spec, emitted by the generator.</summary>
public sealed class ModelInfo(
    string name, string specHash, ModelFamily family, ModelShape shape, float normEps, float ropeTheta, string activation,
    TokenizerConfig tokenizer, FlashDefaults flash, Func<ModelWeights, IFfnSource, int, Transformer> create)
{
    public string Name { get; } = name;
    public string SpecHash { get; } = specHash;
    public ModelFamily Family { get; } = family;
    /// <summary>The family as specs write it ("llama", "opt").</summary>
    public string FamilyName => Family.ToString().ToLowerInvariant();
    public ModelShape Shape { get; } = shape;
    public float NormEps { get; } = normEps;
    public float RopeTheta { get; } = ropeTheta;
    public string Activation { get; } = activation;
    public TokenizerConfig Tokenizer { get; } = tokenizer;
    public FlashDefaults Flash { get; } = flash;
    public Layout Layout { get; } = new(shape, family);

    /// <summary>The generated model class over loaded weights, its FFN fed by <paramref name="ffn"/> (which it then owns),
    /// computing with <paramref name="threads"/> threads.</summary>
    public Transformer Create(ModelWeights weights, IFfnSource ffn, int threads) => create(weights, ffn, threads);
}
