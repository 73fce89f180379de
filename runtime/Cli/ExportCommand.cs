using AotFlash.Convert;
using AotFlash.Flash;
using AotFlash.Inference;

namespace AotFlash.Cli;

/// <summary><c>export</c>: the model file as a GGUF file for llama.cpp, on the same weights.</summary>
public static class ExportCommand
{
    internal static readonly Option[] Options =
    [
        ModelLoader.ModelOption,
        new(["-o", "--output"], "FILE", "GGUF file to write"),
        new(["--exact-ffn-down"], null, "q8 and q4: write ffn_down as F32 holding exactly this model's weights, instead of\n" +
                                        "                             quantising it again along llama.cpp's rows (see above)"),
        new(["--force"], null, "overwrite the output if it exists"),
    ];

    public static string Help(CliContext ctx) => CommandLine.HelpText(
        $"{ctx.ProgramName} export [--model FILE] -o OUT.gguf [--exact-ffn-down] [--force]",
        "Writes the model file as a GGUF file that llama.cpp runs (architecture llama), to compare the two on the same\n" +
        "weights: the metadata llama.cpp's converters write, the vocabulary, and every matrix in this model's weight type\n" +
        "(f32 F32, f16 F16, q8 Q8_0, q4 Q4_0; norms F32), the quantised ones moved byte for byte into GGUF's blocks.\n" +
        "ffn_down is the exception: this model file quantises w2 column by column (one neuron bundle each) and GGUF row\n" +
        "by row, so a q8 or q4 ffn_down is quantised again along its rows from this model's values, or with\n" +
        "--exact-ffn-down (or a hidden size that is no multiple of 32) written as F32. Llama models only (llama.cpp has\n" +
        "no OPT architecture); GGUF has no activation field, so llama.cpp runs the FFN as SiLU whatever the spec says.\n" +
        "Every section's checksum is checked as it is read; the file is written atomically (never half a file).",
        Options);

    public static int Execute(CliContext ctx, string[] args)
    {
        var a = new Arguments("export", args, Options);
        a.NoPositional();
        GgufExport.CheckExportable(ctx.Model);
        string output = a.String("--output") ?? throw new BadInputException("export needs -o OUT.gguf");
        bool exactFfnDown = a.Flag("--exact-ffn-down");
        using var file = ModelLoader.Open(ctx, a.String("--model"));
        GgufExport.Write(ctx.Model, file, output, a.Flag("--force"), exactFfnDown, step => ctx.Stderr.WriteLine($"export: {step}"));
        ctx.Stderr.WriteLine($"export: wrote {output} ({new FileInfo(output).Length} bytes)");
        // Notes on what was written come after it, so that a refused export says one line.
        ModelLoader.Provenance(ctx, file);
        if (ctx.Model.Shape.Weights is WeightType.Q8 or WeightType.Q4)
            ctx.Stderr.WriteLine(GgufExport.FfnDownType(ctx.Model.Shape, exactFfnDown) is var down && down == GgufTensorType.F32
                ? "export: note: ffn_down is F32, exactly this model's weights (the other matrices are its bytes in GGUF's blocks)"
                : $"export: note: ffn_down is quantised again to {down} along GGUF's rows (the other matrices are this model's bytes in GGUF's blocks)");
        if (ctx.Model.Activation.Kind != ActivationKind.Silu)
            ctx.Stderr.WriteLine($"export: note: the spec's activation is {ctx.Model.Activation}; llama.cpp runs a llama GGUF with SiLU, " +
                                 "so its text will differ from this binary's (its speed still compares)");
        return 0;
    }
}
