using System.Globalization;
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
        new(["--dtype"], "TYPE", "f32, f16, q8 or q4: check that this binary stores its weights so (the spec decides)"),
        new(["--force"], null, "overwrite the output if it exists"),
    ];

    public static string Help(CliContext ctx) => CommandLine.HelpText(
        $"{ctx.ProgramName} convert --weights CKPT --tokenizer TOK -o MODEL.afm [--dtype TYPE] [--force]",
        $"Converts a llama2.c checkpoint into a model file for '{ctx.Model.Name}' ({ctx.Model.Shape.Weights.ToString().ToLowerInvariant()} weights):\n" +
        "resident section (embeddings, attention, norms), tokenizer, and the flash section of FFN neuron bundles.\n" +
        "The checkpoint must have the spec's shape. The file is written atomically (never half a file).\n" +
        "The weight type is compiled in from the spec's weights: { dtype: ... }; q8 and q4 quantise each row in groups of\n" +
        "32 with a half-precision scale per group, and convert prints each tensor kind's quantisation error.",
        Options);

    public static int Execute(CliContext ctx, string[] args)
    {
        var a = new Arguments("convert", args, Options);
        a.NoPositional();
        string weights = a.String("--weights") ?? throw new BadInputException("convert needs --weights CKPT");
        string tokenizer = a.String("--tokenizer") ?? throw new BadInputException("convert needs --tokenizer TOK");
        string output = a.String("--output") ?? throw new BadInputException("convert needs -o MODEL.afm");
        string dtype = ctx.Model.Shape.Weights.ToString().ToLowerInvariant();
        if (a.String("--dtype") is { } asked && asked != dtype)
            throw new BadInputException(asked is "f32" or "f16" or "q8" or "q4"
                ? $"convert --dtype {asked}: this binary's spec '{ctx.Model.Name}' stores {dtype} weights; the layout is compiled in, " +
                  $"so build a binary from a spec with weights: {{ dtype: {asked} }}"
                : $"convert --dtype {asked}: unknown weight type (f32, f16, q8 or q4)");
        var errors = ModelConverter.FromLlama2c(ctx.Model, weights, tokenizer, output, a.Flag("--force"),
            step => ctx.Stderr.WriteLine($"convert: {step}"));
        foreach (var e in errors)
            ctx.Stderr.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"convert: {dtype} error {e.Kind,-15} rms relative {e.RmsRelative * 100,7:F3}%, max abs {e.MaxAbs:E2} ({e.Weights} weights)"));
        ctx.Stderr.WriteLine($"convert: wrote {output} ({new FileInfo(output).Length} bytes)");
        return 0;
    }
}
