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

    /// <summary>Most tokens one <see cref="Forward(ReadOnlySpan{int}, int)"/> runs: the rows of the activation buffers,
    /// as the FFN source asks (<see cref="IFfnSource.BlockTokens"/>).</summary>
    public abstract int BlockTokens { get; }

    private int _blockStart, _blockCount; // the last block's positions

    /// <summary>Runs <paramref name="token"/> at position <paramref name="pos"/> (its keys and values go into the
    /// cache at <paramref name="pos"/>; positions before it must have been run already).</summary>
    /// <exception cref="NonFiniteLogitsException">The logits hold a NaN or an infinity.</exception>
    public void Forward(int token, int pos) => Forward([token], pos);

    /// <summary>Runs a block of up to <see cref="BlockTokens"/> tokens at positions pos, pos + 1, … in one pass through
    /// the weights; <see cref="Logits"/> are then the last position's, and <see cref="ComputeLogits"/> gives the
    /// others'. The results are those of running the tokens one by one.</summary>
    /// <exception cref="NonFiniteLogitsException">The logits hold a NaN or an infinity.</exception>
    public void Forward(ReadOnlySpan<int> tokens, int pos)
    {
        int count = tokens.Length;
        if (count < 1 || count > BlockTokens)
            throw new ArgumentOutOfRangeException(nameof(tokens), count, $"a block runs 1 to {BlockTokens} tokens");
        foreach (int token in tokens)
            if ((uint)token >= (uint)Info.Shape.Vocab)
                throw new ArgumentOutOfRangeException(nameof(tokens), token, $"token id outside the vocabulary [0, {Info.Shape.Vocab})");
        if (pos < 0 || pos > Info.Shape.Context - count)
            throw new ArgumentOutOfRangeException(nameof(pos), pos, $"positions {pos}..{pos + count - 1} outside the context [0, {Info.Shape.Context})");
        fixed (int* ids = tokens) Compute(ids, count, pos);
        (_blockStart, _blockCount) = (pos, count);
        ClassifyChecked(count - 1);
    }

    /// <summary>Writes <see cref="Logits"/> for row <paramref name="row"/> of the last block, the position that
    /// block started at plus <paramref name="row"/>.</summary>
    /// <exception cref="NonFiniteLogitsException">The logits hold a NaN or an infinity.</exception>
    public void ComputeLogits(int row)
    {
        if ((uint)row >= (uint)_blockCount) throw new ArgumentOutOfRangeException(nameof(row), row, $"the last block had {_blockCount} rows");
        ClassifyChecked(row);
    }

    private void ClassifyChecked(int row)
    {
        Classify(row);
        if (LogitsAreFinite()) return;
        // A NaN in one row reaches every later row through attention: name the first row that has one.
        int first = 0;
        for (; first < row; first++)
        {
            Classify(first);
            if (!LogitsAreFinite()) break;
        }
        throw new NonFiniteLogitsException(_blockStart + first);
    }

    // A NaN or an infinity anywhere in the model reaches the logits, where a sampler would quietly pick some token
    // (greedy: the first); one pass over vocab floats per token keeps that from passing for an answer.
    private bool LogitsAreFinite()
    {
        foreach (float logit in Logits)
            if (!float.IsFinite(logit)) return false;
        return true;
    }

    /// <summary>The generated model's forward pass over checked inputs: runs tokens[count] at positions pos, pos + 1, …
    /// up to the final norm of each row.</summary>
    protected abstract void Compute(int* tokens, int count, int pos);

    /// <summary>The generated model's classifier: <see cref="Logits"/> from row <paramref name="row"/> of the last
    /// <see cref="Compute"/>'s final hidden states.</summary>
    protected abstract void Classify(int row);

    /// <summary>logits[vocab] of the last <see cref="Forward"/>.</summary>
    public abstract Span<float> Logits { get; }

    /// <summary>Called with each token's FFN input of each layer (after its norm) during a forward pass: a block runs
    /// all its tokens through a layer before the next layer. Used by calibration.</summary>
    public FfnInputObserver? FfnProbe { get; set; }

    /// <summary>Called with (layer, neuron) for every FFN neuron whose activation is non-zero; slows the FFN down.</summary>
    public Action<int, int>? ActiveNeuronObserver { get; set; }

    /// <summary>The mode the engine loaded this model in.</summary>
    public EngineMode Mode { get; internal set; }

    /// <summary>Where the FFN bundles come from, with its statistics.</summary>
    public abstract IFfnSource FfnSource { get; }

    public abstract void Dispose();
}
