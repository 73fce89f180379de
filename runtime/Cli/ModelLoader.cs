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

    /// <summary>The loaded model with its tokenizer, and how long loading took.</summary>
    public static (Transformer Model, ITokenizer Tokenizer, double LoadMs) Load(CliContext ctx, string? modelPath, EngineOptions options)
    {
        var clock = Stopwatch.StartNew();
        using var file = Open(ctx, modelPath);
        var model = Engine.Load(ctx.Model, file, options);
        try
        {
            return (model, ctx.Model.LoadTokenizer(model.Weights, file.Source), clock.Elapsed.TotalMilliseconds);
        }
        catch
        {
            model.Dispose();
            model.Weights.Dispose();
            throw;
        }
    }
}
