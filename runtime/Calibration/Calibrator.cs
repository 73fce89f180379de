using System.Diagnostics;
using AotFlash.Inference;
using AotFlash.Sampling;
using AotFlash.Sparsity;
using AotFlash.Tokenizers;

namespace AotFlash.Calibration;

/// <summary>Per-layer result of calibration, measured on held-out tokens.</summary>
public sealed record LayerCalibration(int Layer, int Rank, PredictorQuality Quality, long Bytes);

/// <summary>
/// Trains one low-rank activation predictor per layer from the model's own activations: runs the model densely over
/// calibration tokens (its own samples from BOS, or a text), records every layer's FFN input, computes the true
/// pre-activations from the gate rows, and fits each predictor to reach the target recall.
/// </summary>
public static unsafe class Calibrator
{
    /// <summary>The active threshold of a model that can be calibrated; a clear error for one whose activation never gives zeros.</summary>
    public static float RequireActiveThreshold(ModelInfo info) => info.Activation.ActiveThreshold ?? throw new BadInputException(
        $"calibrate needs a ReLU-family activation (relu or fatrelu(t)); '{info.Name}' uses {info.Activation}, " +
        "whose activations are never exactly zero, so there is nothing to predict");

    /// <summary>x[n, dim] → [n, dim + 1] with a last column of ones.</summary>
    private static float[] WithConstantInput(float[] x, int n, int dim)
    {
        var wide = new float[(long)n * (dim + 1)];
        for (int t = 0; t < n; t++)
        {
            x.AsSpan(t * dim, dim).CopyTo(wide.AsSpan(t * (dim + 1)));
            wide[(long)t * (dim + 1) + dim] = 1f;
        }
        return wide;
    }

    /// <summary>A predictor of [x, 1] as one of x: A·(B·[x, 1]) = A·(B'·x) + A·c, with c the constant input's column of
    /// B, so c drops out of B and A·c moves into the thresholds.</summary>
    private static LowRankPredictor WithoutConstantInput(LowRankPredictor p)
    {
        int dim = p.Dim - 1;
        var b = new float[(long)p.Rank * dim];
        for (int a = 0; a < p.Rank; a++) p.B.AsSpan(a * p.Dim, dim).CopyTo(b.AsSpan(a * dim));
        var thresholds = new float[p.Hidden];
        for (int j = 0; j < p.Hidden; j++)
        {
            double shift = 0;
            for (int a = 0; a < p.Rank; a++) shift += (double)p.A[(long)j * p.Rank + a] * p.B[(long)a * p.Dim + dim];
            thresholds[j] = (float)(p.Thresholds[j] - shift);
        }
        return new LowRankPredictor(dim, p.Hidden, p.Rank, p.A, b, thresholds);
    }

    /// <summary>Rank for a layer: the spec's, doubled for the last quarter of the layers (as the paper gives its last
    /// layers larger predictors), never above half of min(dim, hidden): a predictor of full rank would be as large as
    /// the gate matrix it stands in for.</summary>
    public static int RankFor(int layer, ModelInfo info)
    {
        int rank = layer >= info.Shape.Layers * 3 / 4 ? 2 * info.Flash.PredictorRank : info.Flash.PredictorRank;
        return Math.Max(1, Math.Min(rank, Math.Min(info.Shape.Dim, info.Shape.HiddenDim) / 2));
    }

    /// <param name="text">Calibration text (tokenized and run in context-sized windows); null: the model's own samples.</param>
    public static (PredictorSet Set, LayerCalibration[] Layers) Run(Transformer model, ITokenizer tokenizer, byte[]? text, int tokens,
        float targetRecall, ulong seed, Action<string> progress)
    {
        var info = model.Info;
        var shape = info.Shape;
        float threshold = RequireActiveThreshold(info);
        if (model.Weights.Flash == null) throw new InvalidOperationException("calibration runs the model densely");

        // 1. FFN inputs of every layer, token by token.
        var inputs = new float[shape.Layers][];
        for (int l = 0; l < shape.Layers; l++) inputs[l] = new float[(long)tokens * shape.Dim];
        int seen = 0;                              // tokens through the last layer
        var recorded = new int[shape.Layers];      // per layer: a block runs all its tokens through a layer before the next
        var clock = Stopwatch.StartNew();
        model.FfnProbe = (layer, x) =>
        {
            int at = recorded[layer]++;
            if (at < tokens) new ReadOnlySpan<float>(x, shape.Dim).CopyTo(inputs[layer].AsSpan(at * shape.Dim));
            if (layer < shape.Layers - 1) return;
            seen++;
            // A large model takes seconds a token: a line every 32 tokens, not only after each context-sized window.
            if (seen % 32 == 0 && seen <= tokens)
                progress($"calibrate: recorded {seen}/{tokens} tokens ({clock.Elapsed.TotalSeconds:F1} s, {seen / clock.Elapsed.TotalSeconds:F1} tokens/s)");
        };
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
        }
        model.FfnProbe = null;

        // 2. One predictor per layer. Where the gates have biases (OPT), each neuron's threshold differs: train on
        // [x, 1] against [gate row, bias], then fold the constant input's column of B into the thresholds.
        var predictors = new LowRankPredictor[shape.Layers];
        var results = new LayerCalibration[shape.Layers];
        var layout = info.Layout;
        bool biased = layout.BundleBias >= 0;
        int width = biased ? shape.Dim + 1 : shape.Dim;
        var gate = new float[(long)shape.HiddenDim * width];
        for (int l = 0; l < shape.Layers; l++)
        {
            fixed (float* g = gate)
            {
                byte* first = model.Weights.Flash + layout.Layers[l].FfnBundles;
                for (int i = 0; i < shape.HiddenDim; i++)
                {
                    byte* bundle = first + i * layout.BundleStride;
                    NeuronGate.Row(g + (long)i * width, bundle, shape.Dim, shape.Weights);
                    if (biased) g[(long)i * width + shape.Dim] = NeuronGate.Bias(bundle, layout);
                }
            }
            float[] x = biased ? WithConstantInput(inputs[l], tokens, shape.Dim) : inputs[l];
            int rank = RankFor(l, info);
            var trained = PredictorTrainer.Train(x, tokens, gate, shape.HiddenDim, width, rank, threshold, targetRecall,
                seed: 17 + l, out var quality);
            predictors[l] = biased ? WithoutConstantInput(trained) : trained;
            results[l] = new LayerCalibration(l, predictors[l].Rank, quality, predictors[l].SerializedLength);
            progress($"calibrate: layer {l + 1}/{shape.Layers}: rank {rank}, recall {quality.Recall:F3}, precision {quality.Precision:F3}, " +
                     $"predicted density {quality.PredictedDensity:F3} (true {quality.TrueDensity:F3})");
        }
        return (new PredictorSet(predictors, targetRecall, tokens), results);
    }
}
