using AotFlash.Convert;

namespace AotFlash.Cli;

/// <summary><c>convert</c>: llama2.c checkpoint (v0 or v1) + tokenizer.bin → model file for this binary's spec.</summary>
public static class ConvertCommand
{
    private static readonly Option[] Options =
    [
        new(["-w", "--weights"], "FILE", "llama2.c checkpoint (.bin, format v0 or v1, float32)"),
        new(["-k", "--tokenizer"], "FILE", "llama2.c tokenizer.bin"),
        new(["-o", "--output"], "FILE", "model file to write (.afm)"),
        new(["--force"], null, "overwrite the output if it exists"),
    ];

    public static string Help(CliContext ctx) => CommandLine.HelpText(
        $"{ctx.ProgramName} convert --weights CKPT --tokenizer TOK -o MODEL.afm [--force]",
        $"Converts a llama2.c checkpoint into a model file for '{ctx.Model.Name}' ({ctx.Model.Shape.Weights.ToString().ToLowerInvariant()} weights):\n" +
        "resident section (embeddings, attention, norms), tokenizer, and the flash section of FFN neuron bundles.\n" +
        "The checkpoint must have the spec's shape. The file is written atomically (never half a file).",
        Options);

    public static int Execute(CliContext ctx, string[] args)
    {
        var a = new Arguments("convert", args, Options);
        a.NoPositional();
        string weights = a.String("--weights") ?? throw new BadInputException("convert needs --weights CKPT");
        string tokenizer = a.String("--tokenizer") ?? throw new BadInputException("convert needs --tokenizer TOK");
        string output = a.String("--output") ?? throw new BadInputException("convert needs -o MODEL.afm");
        ModelConverter.FromLlama2c(ctx.Model, weights, tokenizer, output, a.Flag("--force"),
            step => ctx.Stderr.WriteLine($"convert: {step}"));
        ctx.Stderr.WriteLine($"convert: wrote {output} ({new FileInfo(output).Length} bytes)");
        return 0;
    }
}
