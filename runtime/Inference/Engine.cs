using AotFlash.Flash;

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
        try
        {
            source = mode switch
            {
                EngineMode.Dense => new MappedFfnSource(weights.Flash, info.Shape.HiddenDim, account),
                _ => throw new BadInputException($"--mode {mode.ToString().ToLowerInvariant()} is not available in this build yet"),
            };
            var model = info.Create(weights, source, options.Threads);
            model.Mode = mode;
            return model;
        }
        catch
        {
            source?.Dispose();
            weights.Dispose();
            throw;
        }
    }
}
