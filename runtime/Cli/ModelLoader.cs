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
