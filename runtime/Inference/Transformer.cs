using AotFlash.Ffn;

namespace AotFlash.Inference;

/// <summary>The model's output at a position is not a number (a NaN or an infinity in the logits): damaged weights, or
/// values beyond float range.</summary>
public sealed class NonFiniteLogitsException(int position)
    : Exception($"the model computed non-finite logits (NaN or infinity) at position {position}; its weights may be damaged")
{
    public int Position { get; } = position;
}

/// <summary>Receives x[dim], the input of layer <paramref name="layer"/>'s FFN.</summary>
public unsafe delegate void FfnInputObserver(int layer, float* x);

/// <summary>A model ready to run: one forward step per token, writing <see cref="Logits"/>. Not thread-safe; one per session.</summary>
public abstract unsafe class Transformer : IDisposable
{
    protected Transformer(ModelInfo info, ModelWeights weights)
    {
        Info = info;
        Weights = weights;
    }

    public ModelInfo Info { get; }
    public ModelWeights Weights { get; }

    /// <summary>Runs <paramref name="token"/> at position <paramref name="pos"/> (its keys and values go into the
    /// cache at <paramref name="pos"/>; positions before it must have been run already).</summary>
    /// <exception cref="NonFiniteLogitsException">The logits hold a NaN or an infinity.</exception>
    public void Forward(int token, int pos)
    {
        if ((uint)token >= (uint)Info.Shape.Vocab)
            throw new ArgumentOutOfRangeException(nameof(token), token, $"token id outside the vocabulary [0, {Info.Shape.Vocab})");
        if ((uint)pos >= (uint)Info.Shape.Context)
            throw new ArgumentOutOfRangeException(nameof(pos), pos, $"position outside the context [0, {Info.Shape.Context})");
        Compute(token, pos);
        // A NaN or an infinity anywhere in the model reaches the logits, where a sampler would quietly pick some token
        // (greedy: the first); one pass over vocab floats per token keeps that from passing for an answer.
        foreach (float logit in Logits)
            if (!float.IsFinite(logit)) throw new NonFiniteLogitsException(pos);
    }

    /// <summary>The generated model's forward step over checked inputs: writes <see cref="Logits"/>.</summary>
    protected abstract void Compute(int token, int pos);

    /// <summary>logits[vocab] of the last <see cref="Forward"/>.</summary>
    public abstract Span<float> Logits { get; }

    /// <summary>Called with each layer's FFN input (after its norm) during <see cref="Forward"/>; used by calibration.</summary>
    public FfnInputObserver? FfnProbe { get; set; }

    /// <summary>Called with (layer, neuron) for every FFN neuron whose activation is non-zero; slows the FFN down.</summary>
    public Action<int, int>? ActiveNeuronObserver { get; set; }

    /// <summary>The mode the engine loaded this model in.</summary>
    public EngineMode Mode { get; internal set; }

    /// <summary>Where the FFN bundles come from, with its statistics.</summary>
    public abstract IFfnSource FfnSource { get; }

    public abstract void Dispose();
}
