using AotFlash.Ffn;

namespace AotFlash.Inference;

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
    public abstract void Forward(int token, int pos);

    /// <summary>logits[vocab] of the last <see cref="Forward"/>.</summary>
    public abstract Span<float> Logits { get; }

    protected void CheckInput(int token, int pos)
    {
        if ((uint)token >= (uint)Info.Shape.Vocab)
            throw new ArgumentOutOfRangeException(nameof(token), token, $"token id outside the vocabulary [0, {Info.Shape.Vocab})");
        if ((uint)pos >= (uint)Info.Shape.Context)
            throw new ArgumentOutOfRangeException(nameof(pos), pos, $"position outside the context [0, {Info.Shape.Context})");
    }

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
