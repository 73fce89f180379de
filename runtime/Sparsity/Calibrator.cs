using System.Diagnostics;
using System.Globalization;
using AotFlash.Flash;
using AotFlash.Inference;
using AotFlash.Sampling;
using AotFlash.Tokenizers;

namespace AotFlash.Sparsity;

/// <summary>Per-layer result of calibration, measured on held-out tokens.</summary>
public sealed record LayerCalibration(int Layer, int Rank, PredictorQuality Quality, long Bytes);

/// <summary>
/// Trains one low-rank activation predictor per layer from the model's own activations: runs the model densely over
/// calibration tokens (its own samples from BOS, or a text), records every layer's FFN input, computes the true
/// pre-activations from the gate rows, and fits each predictor to reach the target recall.
/// </summary>
public static unsafe class Calibrator
{
    /// <summary>The activation's "active" threshold (gate pre-activation above it), or null when it never produces exact zeros.</summary>
    public static float? ActiveThreshold(string activation) => activation switch
    {
        "relu" => 0f,
        _ when activation.StartsWith("fatrelu(", StringComparison.Ordinal) =>
            float.Parse(activation[8..^1], NumberStyles.Float, CultureInfo.InvariantCulture),
        _ => null,
    };

    /// <summary>The active threshold of a model that can be calibrated; a clear error for one whose activation never gives zeros.</summary>
    public static float RequireActiveThreshold(ModelInfo info) => ActiveThreshold(info.Activation)
        ?? throw new BadInputException($"calibrate needs a ReLU-family activation (relu or fatrelu(t)); '{info.Name}' uses " +
                                       $"{info.Activation}, whose activations are never exactly zero, so there is nothing to predict");

    /// <summary>dst[dim] = the gate row of a bundle (its first dim elements), as floats.</summary>
    public static void GateRow(float* dst, byte* bundle, int dim, WeightType type) => WeightRows.ToSingle(type, dst, bundle, dim);

    /// <summary>Rank for a layer: the spec's, doubled for the last quarter of the layers (as the paper gives its last
    /// layers larger predictors), never above half of min(dim, hidden): a predictor of full rank would be as large as
    /// the gate matrix it stands in for.</summary>
    public static int RankFor(int layer, ModelInfo info)
    {
        int rank = layer >= info.Shape.Layers * 3 / 4 ? 2 * info.Flash.PredictorRank : info.Flash.PredictorRank;
        return Math.Max(1, Math.Min(rank, Math.Min(info.Shape.Dim, info.Shape.HiddenDim) / 2));
    }

    /// <param name="text">Calibration text (tokenized and run in context-sized windows); null: the model's own samples.</param>
    public static (PredictorSet Set, LayerCalibration[] Layers) Run(Transformer model, Llama2cTokenizer tokenizer, byte[]? text, int tokens,
        float targetRecall, ulong seed, Action<string> progress)
    {
        var info = model.Info;
        var shape = info.Shape;
        float threshold = RequireActiveThreshold(info);
        if (model.Weights.Flash == null) throw new InvalidOperationException("calibration runs the model densely");

        // 1. FFN inputs of every layer, token by token.
        var inputs = new float[shape.Layers][];
        for (int l = 0; l < shape.Layers; l++) inputs[l] = new float[(long)tokens * shape.Dim];
        int seen = 0;
        model.FfnProbe = (layer, x) =>
        {
            if (seen < tokens) new ReadOnlySpan<float>(x, shape.Dim).CopyTo(inputs[layer].AsSpan(seen * shape.Dim));
            if (layer == shape.Layers - 1) seen++;
        };
        var clock = Stopwatch.StartNew();
        var session = new Session(model, tokenizer, new Sampler(shape.Vocab, new SamplerOptions { Temperature = 1f, Seed = seed }));
        int[] textIds = text is null ? [] : tokenizer.Encode(text, addBos: false, info.Tokenizer.Bos);
        if (text is not null && textIds.Length < 1) throw new BadInputException("the calibration text holds no tokens");
        int textAt = 0;
        while (seen < tokens)
        {
            int before = seen;
            if (text is null)
            {
                session.Generate([info.Tokenizer.Bos], Math.Min(shape.Context - 1, tokens - seen), 0);
            }
            else
            {
                // Forced windows of the text, each starting from BOS like a fresh prompt.
                int take = Math.Min(shape.Context - 1, textIds.Length - textAt);
                int[] window = [info.Tokenizer.Bos, .. textIds.AsSpan(textAt, take)];
                textAt = (textAt + take) % textIds.Length;
                session.Generate(window, 0, 0);
            }
            if (seen == before) throw new InvalidOperationException("calibration made no progress");
            progress($"calibrate: recorded {Math.Min(seen, tokens)}/{tokens} tokens ({clock.Elapsed.TotalSeconds:F1} s)");
        }
        model.FfnProbe = null;

        // 2. One predictor per layer.
        var predictors = new LowRankPredictor[shape.Layers];
        var results = new LayerCalibration[shape.Layers];
        var gate = new float[(long)shape.HiddenDim * shape.Dim];
        var layout = info.Layout;
        for (int l = 0; l < shape.Layers; l++)
        {
            fixed (float* g = gate)
            {
                byte* first = model.Weights.Flash + layout.Layers[l].FfnBundles;
                for (int i = 0; i < shape.HiddenDim; i++)
                    GateRow(g + (long)i * shape.Dim, first + i * layout.BundleStride, shape.Dim, shape.Weights);
            }
            int rank = RankFor(l, info);
            predictors[l] = PredictorTrainer.Train(inputs[l], tokens, gate, shape.HiddenDim, shape.Dim, rank, threshold, targetRecall,
                seed: 17 + l, out var quality);
            results[l] = new LayerCalibration(l, predictors[l].Rank, quality, predictors[l].SerializedLength);
            progress($"calibrate: layer {l + 1}/{shape.Layers}: rank {rank}, recall {quality.Recall:F3}, precision {quality.Precision:F3}, " +
                     $"predicted density {quality.PredictedDensity:F3} (true {quality.TrueDensity:F3})");
        }
        return (new PredictorSet(predictors, targetRecall, tokens), results);
    }
}
