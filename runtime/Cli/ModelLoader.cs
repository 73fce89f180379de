using System.Diagnostics;
using AotFlash.Flash;
using AotFlash.Inference;
using AotFlash.Tokenizers;

namespace AotFlash.Cli;

/// <summary>Finds the model file (<c>--model</c>, else the payload appended to the executable) and loads it.</summary>
public static class ModelLoader
{
    public static readonly Option ModelOption = new(["-m", "--model"], "FILE",
        "model file (.afm); default: the model packed into this executable");

    public static ModelFile Open(CliContext ctx, string? modelPath) =>
        ModelFile.OpenOrPacked(modelPath, () => ctx.ExecutablePath)
        ?? throw new BadInputException($"no model: this executable carries no model file; pass --model FILE " +
                                       $"(make one with '{ctx.ProgramName} convert')");

    /// <summary>The file's provenance line (synthetic weights), also shown on stderr, so that no figure measured on
    /// such a model is mistaken for a trained model's; null for converted checkpoints.</summary>
    public static string? Provenance(CliContext ctx, ModelFile file)
    {
        string? provenance = file.Provenance();
        if (provenance is not null) ctx.Stderr.WriteLine($"note: {file.Source}: {provenance}");
        return provenance;
    }

    /// <summary>What would stop one of <paramref name="modes"/> partway through a command that runs them one after the
    /// other, refused before the first one runs and prints: a file of another spec, damaged resident or tokenizer
    /// sections, a budget that does not parse, flash mode without predictors or with a budget it does not fit (it is
    /// loaded once, with <paramref name="flashOptions"/>, to see). Returns the file's tokenizer.</summary>
    public static ITokenizer CheckModes(ModelInfo info, ModelFile file, IReadOnlyList<EngineMode> modes, EngineOptions flashOptions)
    {
        if (flashOptions.DramBudget is { } budget) DramAccount.ParseBudget(budget, file.Header.FileLength);
        if (!modes.Contains(EngineMode.Flash))
        {
            using var weights = ModelWeights.Load(file, info, new DramAccount(), mapFlash: false, readPredictors: false);
            return info.LoadTokenizer(weights, file.Source);
        }
        if (!file.Has(SectionKind.Predictors))
            throw new BadInputException($"{file.Source} has no activation predictors, which flash mode needs: run 'calibrate --model FILE' " +
                                        "first (or leave flash out of --modes)");
        var trial = Engine.Load(info, file, flashOptions);
        try { return info.LoadTokenizer(trial.Weights, file.Source); }
        finally
        {
            trial.Dispose();
            trial.Weights.Dispose();
            // The trial's predictors are managed arrays (200 MiB at 7B) that no allocation pressure would collect before
            // the run loads its own: collected now, they do not sit outside the run's budget.
            GC.Collect(GC.MaxGeneration, GCCollectionMode.Forced, blocking: true, compacting: true);
        }
    }

    /// <summary>The loaded model with its tokenizer, how long loading took, and its <see cref="Provenance"/>.</summary>
    public static (Transformer Model, ITokenizer Tokenizer, double LoadMs, string? Provenance) Load(CliContext ctx, string? modelPath, EngineOptions options)
    {
        var clock = Stopwatch.StartNew();
        using var file = Open(ctx, modelPath);
        string? provenance = Provenance(ctx, file);
        var model = Engine.Load(ctx.Model, file, options);
        try
        {
            return (model, ctx.Model.LoadTokenizer(model.Weights, file.Source), clock.Elapsed.TotalMilliseconds, provenance);
        }
        catch
        {
            model.Dispose();
            model.Weights.Dispose();
            throw;
        }
    }
}
