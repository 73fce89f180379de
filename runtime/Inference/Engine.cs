using AotFlash.Flash;
using AotFlash.Sparsity;

namespace AotFlash.Inference;

/// <summary>How the FFN weights are held: all in DRAM, read whole from flash every token (the paper's baseline), or
/// predicted, cached and read sparsely from flash.</summary>
public enum EngineMode { Dense, Naive, Flash }

public sealed class EngineOptions
{
    /// <summary>Null: flash when the model file has predictors, dense otherwise.</summary>
    public EngineMode? Mode { get; init; }
    public int Threads { get; init; } = 1;
    /// <summary>"50%" of the model file, or a size; null: the spec's budget in flash mode, none otherwise.</summary>
    public string? DramBudget { get; init; }
    /// <summary>Tokens a neuron stays cached after it was last active; 0: the spec's window.</summary>
    public int Window { get; init; }
    /// <summary>Parallel flash reads; 0: the spec's count.</summary>
    public int IoThreads { get; init; }
    /// <summary>Also compute the true active set each token (reading every gate row) to measure predictor recall.</summary>
    public bool MeasureRecall { get; init; }
    /// <summary>Flash mode with every neuron selected instead of the predictor's choice: for tests only.</summary>
    internal bool SelectAllNeurons { get; init; }
    /// <summary>Receives one-line warnings (e.g. a fallback from O_DIRECT).</summary>
    public Action<string>? Warn { get; init; }
}

/// <summary>Loads a model file into a runnable <see cref="Transformer"/> in the requested mode, under the DRAM budget.</summary>
public static unsafe class Engine
{
    public static Transformer Load(ModelInfo info, ModelFile file, EngineOptions options)
    {
        var mode = options.Mode ?? (file.Has(SectionKind.Predictors) ? EngineMode.Flash : EngineMode.Dense);
        string? budget = options.DramBudget ?? (mode == EngineMode.Flash ? info.Flash.DramBudget : null);
        var account = new DramAccount(budget is null ? long.MaxValue : DramAccount.ParseBudget(budget, file.Header.FileLength));
        var weights = ModelWeights.Load(file, info, account, mapFlash: mode == EngineMode.Dense);
        IFfnSource? source = null;
        Transformer? model = null;
        try
        {
            if (mode == EngineMode.Dense)
            {
                source = new MappedFfnSource(weights.Flash, info.Shape.HiddenDim, account);
                return model = Create(info, weights, source, options, mode);
            }
            long flashSection = file.Header.Get(SectionKind.Flash, file.Source).Offset;
            int ioThreads = options.IoThreads > 0 ? options.IoThreads : info.Flash.IoThreads;
            if (mode == EngineMode.Naive)
            {
                source = new NaiveFfnSource(FlashReader.Open(file.Path, file.BaseOffset, ioThreads, account, options.Warn), flashSection, info.Layout, account);
                return model = Create(info, weights, source, options, mode);
            }
            if (weights.PredictorData is null && !options.SelectAllNeurons)
                throw new BadInputException($"{file.Source} has no activation predictors, which flash mode needs: run " +
                                            "'calibrate --model FILE' first (or use --mode dense)");
            var s = info.Shape;
            PredictorSet? predictors = null;
            if (weights.PredictorData is not null)
            {
                predictors = PredictorSet.Parse(weights.PredictorData, s.Layers, s.Dim, s.HiddenDim, file.Source);
                account.Charge(predictors.Bytes, "the predictors");
            }
            var flash = new FlashFfnSource(FlashReader.Open(file.Path, file.BaseOffset, ioThreads, account, options.Warn), flashSection,
                info.Layout, predictors, options.Window > 0 ? options.Window : info.Flash.Window, account,
                Calibrator.ActiveThreshold(info.Activation) ?? 0f, options.MeasureRecall, options.SelectAllNeurons);
            source = flash;
            model = Create(info, weights, source, options, mode);
            // The caches get what the budget has left once everything else is allocated.
            flash.AllocateCaches(options.SelectAllNeurons ? s.HiddenDim : Math.Min(s.HiddenDim, Math.Max(32, s.HiddenDim / 16)));
            return model;
        }
        catch
        {
            if (model is not null) model.Dispose(); // it owns the source
            else source?.Dispose();
            weights.Dispose();
            throw;
        }
    }

    private static Transformer Create(ModelInfo info, ModelWeights weights, IFfnSource source, EngineOptions options, EngineMode mode)
    {
        var model = info.Create(weights, source, options.Threads);
        model.Mode = mode;
        return model;
    }
}
