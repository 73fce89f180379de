using AotFlash.Calibration;
using AotFlash.Convert;
using AotFlash.Flash;
using AotFlash.Inference;

namespace AotFlash.Cli;

/// <summary><c>calibrate</c>: trains the per-layer activation predictors that flash mode needs and stores them in the model file.</summary>
public static class CalibrateCommand
{
    internal static readonly Option[] Options =
    [
        ModelLoader.ModelOption,
        new(["-o", "--output"], "FILE", "write the calibrated model file here (default: update --model in place)"),
        new(["--text"], "FILE", "calibrate on this text instead of the model's own samples from BOS"),
        new(["--tokens"], "N", "calibration tokens (default 4096)"),
        new(["--recall"], "R", "target recall of each predictor (default 0.95)"),
        new(["-s", "--seed"], "S", "seed of the sampling and of the training (default 1)"),
        RunCommand.ThreadsOption,
        new(["--force"], null, "with -o: overwrite an existing file"),
    ];

    public static string Help(CliContext ctx) => CommandLine.HelpText(
        $"{ctx.ProgramName} calibrate --model MODEL.afm [-o OUT.afm] [--text FILE] [--tokens N] [--recall 0.95]",
        "Runs the model densely over calibration tokens, records each layer's FFN input and which neurons fire, and trains\n" +
        $"one low-rank predictor per layer (rank {ctx.Model.Flash.PredictorRank} from the spec, doubled for the last quarter of the layers)\n" +
        "with its threshold set for the target recall. Prints per-layer recall, precision and density measured on held-out\n" +
        "tokens, and writes the predictors into the model file's resident part (atomically). Flash mode needs them.",
        Options);

    public static int Execute(CliContext ctx, string[] args)
    {
        var a = new Arguments("calibrate", args, Options);
        a.NoPositional();
        string? modelPath = a.String("--model");
        string? output = a.String("--output") ?? modelPath
            ?? throw new BadInputException("calibrate needs --model FILE (or -o FILE to calibrate the packed model into a new file)");
        bool inPlace = modelPath is not null && Path.GetFullPath(output) == Path.GetFullPath(modelPath);
        // Checked now, as the write at the end will check it: calibrating takes a while and prints its results first.
        string? input = modelPath ?? ctx.ExecutablePath;
        if (!inPlace) AtomicFile.CheckTarget(output, a.Flag("--force"), input is null ? [] : [input]);
        int tokens = a.Int("--tokens", 4096, min: 16, max: 1 << 20);
        float recall = a.Float("--recall", 0.95f);
        if (recall is <= 0f or > 1f) throw new BadInputException("--recall must be in (0, 1]");
        string? textPath = a.String("--text");
        byte[]? text = textPath is null ? null : ModelConverter.ReadFile(textPath, "calibration text");
        Calibrator.RequireActiveThreshold(ctx.Model); // before loading anything

        using var file = ModelLoader.Open(ctx, modelPath);
        ModelLoader.Provenance(ctx, file);
        var model = Engine.Load(ctx.Model, file, new EngineOptions { Mode = EngineMode.Dense, Threads = RunCommand.Threads(a) });
        using var weights = model.Weights;
        using var _ = model;
        var tokenizer = ctx.Model.LoadTokenizer(weights, file.Source);
        var (set, layers) = Calibrator.Run(model, tokenizer, text, tokens, recall, a.ULong("--seed", 1), line => ctx.Stderr.WriteLine(line));
        // Written before the results are printed: the copy checks the sections dense mode did not read, and a damaged
        // one ends the command with its error alone.
        ModelFileWriter.CopyWithSection(file, output, a.Flag("--force"), inPlace, SectionKind.Predictors, set.Serialize());

        var o = new System.Text.StringBuilder();
        o.AppendLine($"layer  rank   recall  precision  density(predicted)  density(true)  size");
        foreach (var l in layers)
            o.AppendLine($"{l.Layer,5}  {l.Rank,4}  {l.Quality.Recall,7:F4}  {l.Quality.Precision,9:F4}  {l.Quality.PredictedDensity,18:F4}  " +
                         $"{l.Quality.TrueDensity,13:F4}  {DramAccount.Format(l.Bytes)}");
        o.AppendLine($"(measured on held-out calibration tokens; {tokens} tokens, target recall {recall})");
        CommandLine.Write(ctx, o.ToString());
        ctx.Stderr.WriteLine($"calibrate: wrote predictors ({DramAccount.Format(set.Bytes)}) into {output}");
        return 0;
    }
}
