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

    public static ModelFile Open(CliContext ctx, string? modelPath)
    {
        if (modelPath is not null) return ModelFile.Open(modelPath);
        if (ctx.ExecutablePath is not null && Payload.Find(ctx.ExecutablePath) is { } payload)
            return ModelFile.Open(ctx.ExecutablePath, payload.Offset, payload.Length);
        throw new BadInputException($"no model: this executable carries no model file; pass --model FILE " +
                                    $"(make one with '{ctx.ProgramName} convert')");
    }

    /// <summary>The loaded model with its tokenizer, and how long loading took.</summary>
    public static (Transformer Model, Llama2cTokenizer Tokenizer, double LoadMs) Load(CliContext ctx, string? modelPath, int threads, DramAccount account)
    {
        var clock = Stopwatch.StartNew();
        using var file = Open(ctx, modelPath);
        var weights = ModelWeights.Load(file, ctx.Model, account);
        try
        {
            Llama2cTokenizer tokenizer;
            try { tokenizer = Llama2cTokenizer.Load(weights.TokenizerData, ctx.Model.Shape.Vocab); }
            catch (InvalidDataException e) { throw new BadInputException($"{file.Source}: {e.Message}"); }
            var model = ctx.Model.Create(weights, threads);
            return (model, tokenizer, clock.Elapsed.TotalMilliseconds);
        }
        catch
        {
            weights.Dispose();
            throw;
        }
    }
}
