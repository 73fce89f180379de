using AotFlash.Ffn;
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
    /// <summary>How flash reads are made: for tests that inject faults.</summary>
    internal ReaderOptions? Reader { get; init; }
    /// <summary>Receives one-line warnings (e.g. a fallback from O_DIRECT).</summary>
    public Action<string>? Warn { get; init; }
}

/// <summary>Loads a model file into a runnable <see cref="Transformer"/> in the requested mode, under the DRAM budget.</summary>
public static class Engine
{
    public static Transformer Load(ModelInfo info, ModelFile file, EngineOptions options)
    {
        using var model = LoadedModel.Load(info, file, options);
        return model.NewTransformer(options);
    }
}

/// <summary>
/// A model file's weights loaded once, in one mode under one DRAM budget, from which any number of transformers are
/// made (one per session, each with its own KV cache, FFN source and DRAM account). Its own calls are thread-safe.
/// </summary>
public sealed unsafe class LoadedModel : IDisposable
{
    private readonly string _path;
    private readonly long _baseOffset;
    private readonly long _flashSection;
    private readonly string _source;
    private readonly FlashChecksums? _checksums;

    private LoadedModel(ModelInfo info, ModelWeights weights, EngineMode mode, long budget, ModelFile file, FlashChecksums? checksums)
    {
        Info = info; Weights = weights; Mode = mode; Budget = budget;
        _path = file.Path; _baseOffset = file.BaseOffset; _flashSection = file.Header.Get(SectionKind.Flash, file.Source).Offset;
        _source = file.Source;
        _checksums = checksums;
    }

    public ModelInfo Info { get; }
    /// <summary>The mapped weights; each transformer holds its own share of them.</summary>
    public ModelWeights Weights { get; }
    public EngineMode Mode { get; }
    /// <summary>The DRAM budget of each transformer (the weights included); <see cref="long.MaxValue"/> when there is none.</summary>
    public long Budget { get; }

    /// <summary>Maps the weights; reads <see cref="EngineOptions.Mode"/> and <see cref="EngineOptions.DramBudget"/>.</summary>
    public static LoadedModel Load(ModelInfo info, ModelFile file, EngineOptions options)
    {
        var mode = options.Mode ?? (file.Has(SectionKind.Predictors) ? EngineMode.Flash : EngineMode.Dense);
        string? budget = options.DramBudget ?? (mode == EngineMode.Flash ? info.Flash.DramBudget : null);
        long limit = budget is null ? long.MaxValue : DramAccount.ParseBudget(budget, file.Header.FileLength);
        var weights = ModelWeights.Load(file, info, new DramAccount(limit), mapFlash: mode == EngineMode.Dense, readPredictors: mode == EngineMode.Flash);
        try
        {
            if (mode == EngineMode.Flash && weights.Predictors is null && !options.SelectAllNeurons)
                throw new BadInputException($"{file.Source} has no activation predictors, which flash mode needs: run " +
                                            "'calibrate --model FILE' first (or use --mode dense)");
            // Dense mode checked the whole flash section's checksum when it mapped it; the others check each read.
            var checksums = mode == EngineMode.Dense ? null : FlashChecksums.Load(file, info.Layout);
            return new LoadedModel(info, weights, mode, limit, file, checksums);
        }
        catch
        {
            weights.Dispose();
            throw;
        }
    }

    /// <summary>A new transformer over the weights, charged to a DRAM account of its own under <see cref="Budget"/>
    /// (the weights counted too); reads the options other than the mode and the budget. The caller disposes the
    /// transformer and then its <see cref="Transformer.Weights"/>, which keep the sections mapped until then, even
    /// after this model is disposed.</summary>
    public Transformer NewTransformer(EngineOptions options)
    {
        var account = new DramAccount(Budget);
        var weights = Weights.Share(account);
        IFfnSource? source = null;
        Transformer? model = null;
        try
        {
            if (Mode == EngineMode.Dense)
            {
                source = new MappedFfnSource(weights.Flash, Info.Shape.HiddenDim, account);
                return model = Create(weights, source, options);
            }
            int ioThreads = options.IoThreads > 0 ? options.IoThreads : Info.Flash.IoThreads;
            var checksums = _checksums!;
            account.Charge(checksums.Bytes, "the flash checksums");
            if (Mode == EngineMode.Naive)
            {
                source = new NaiveFfnSource(FlashReader.Open(_path, _baseOffset, ioThreads, account, options.Warn, options.Reader), _flashSection, checksums, _source,
                    Info.Layout, account, options.Threads, Info.KvCacheBytes);
                return model = Create(weights, source, options);
            }
            // Parsed once and shared (read-only), but each session's account covers what it computes with.
            var predictors = weights.Predictors;
            if (predictors is not null) account.Charge(predictors.Bytes, "the predictors");
            var flash = new FlashFfnSource(FlashReader.Open(_path, _baseOffset, ioThreads, account, options.Warn, options.Reader), _flashSection, checksums, _source,
                Info.Layout, predictors, options.Window > 0 ? options.Window : Info.Flash.Window, account,
                Info.Activation.ActiveThreshold ?? 0f, options.MeasureRecall, options.SelectAllNeurons, options.Threads, Info.KvCacheBytes);
            source = flash;
            model = Create(weights, source, options);
            // The caches get what the budget has left once everything else is allocated.
            flash.AllocateCaches();
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

    private Transformer Create(ModelWeights weights, IFfnSource source, EngineOptions options)
    {
        var model = Info.Create(weights, source, options.Threads);
        model.Mode = Mode;
        return model;
    }

    public void Dispose() => Weights.Dispose();
}
