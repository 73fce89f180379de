using System.Text;
using System.Text.Json;
using System.Text.Unicode;
using AotFlash.Convert;
using AotFlash.Flash;
using AotFlash.Inference;
using AotFlash.Tokenizers;

namespace AotFlash.Cli;

/// <summary>
/// <c>perplexity</c>: what flash mode's predictors or another binary's quantised weights cost in fidelity, as
/// llama.cpp's llama-perplexity --kl-divergence measures it: a text scored teacher-forced in each mode, with its
/// perplexity, and the KL divergence and top-1 agreement of each position's next-token distribution against a base (the
/// first mode, or logits saved by another binary).
/// </summary>
public static class PerplexityCommand
{
    private const string Continued = "\n                             ";

    internal static readonly Option[] Options =
    [
        ModelLoader.ModelOption,
        new(["-f", "--file"], "FILE", "the text to score (UTF-8)"),
        new(["--modes"], "LIST", "modes to score, in order; the first is the base (default: dense,flash when the model" + Continued +
                                 "file has predictors, else dense)"),
        new(["--dram-budget"], "B", "budget of flash mode (default: the spec's); naive and dense run without one"),
        new(["-c", "--context"], "N", "positions per chunk, BOS included (default and most: the model's context)"),
        new(["--tokens"], "N", "most tokens to score, the text's first (default 1024)"),
        new(["--kl-base"], "FILE", "compare every mode with the logits in FILE (see --save-kl-base) instead of the first mode"),
        new(["--save-kl-base"], "FILE", "write the first mode's logits at every scored position to FILE, for another binary's" + Continued +
                                        "--kl-base (e.g. the same model with q8 weights)"),
        new(["--force"], null, "with --save-kl-base: overwrite an existing file"),
        RunCommand.ThreadsOption,
        new(["--json"], null, "print one JSON object instead of the table"),
    ];

    public static string Help(CliContext ctx) => CommandLine.HelpText(
        $"{ctx.ProgramName} perplexity [--model FILE] -f TEXT [--modes dense,flash] [--context N] [--tokens N] [--kl-base FILE] [--json]",
        "Scores a text teacher-forced: its tokens are cut into chunks of --context positions, each run as a fresh sequence\n" +
        "from BOS, and every position is scored against the text's next token. Per mode (loaded one after the other): the\n" +
        "perplexity exp(mean NLL), and against the base's next-token distribution at the same positions the mean, 99th\n" +
        "percentile and largest KL(base || mode) in nats and the share of positions whose most likely token is the base's.\n" +
        "The base's logits of every scored position are held in memory (tokens x vocabulary floats).",
        Options);

    private sealed record ModeResult(string Mode, PerplexityScore Score, double MsPerToken, long PeakDram);

    public static int Execute(CliContext ctx, string[] args)
    {
        var a = new Arguments("perplexity", args, Options);
        a.NoPositional();
        var info = ctx.Model;
        string textPath = a.String("--file") ?? throw new BadInputException("perplexity needs -f FILE, the text to score");
        int context = a.Int("--context", info.Shape.Context, min: 2);
        if (context > info.Shape.Context)
            throw new BadInputException($"--context {context} is more than the model's context of {info.Shape.Context}");
        int maxTokens = a.Int("--tokens", 1024, min: 1, max: 1 << 20);
        int threads = RunCommand.Threads(a);
        string? budget = a.String("--dram-budget");
        string? modelPath = a.String("--model");
        string? basePath = a.String("--kl-base");
        string? savePath = a.String("--save-kl-base");
        bool force = a.Flag("--force");
        bool json = a.Flag("--json");
        string[] inputs = [.. new[] { modelPath ?? ctx.ExecutablePath, textPath, basePath }.OfType<string>()];
        // Checked now, as the write after the first mode will check it: a slip is reported before the scoring.
        if (savePath is not null) AtomicFile.CheckTarget(savePath, force, inputs);

        EngineOptions ModeOptions(EngineMode mode, Action<string>? warn) => new()
        {
            Mode = mode, Threads = threads,
            DramBudget = mode == EngineMode.Flash ? budget : null,
            Warn = warn,
        };

        // Everything that would stop a mode, or the comparison, is refused before the first mode runs.
        EngineMode[] modes;
        PerplexityText text;
        string? provenance;
        using (var file = ModelLoader.Open(ctx, modelPath))
        {
            provenance = ModelLoader.Provenance(ctx, file);
            modes = a.Modes("--modes", file.Has(SectionKind.Predictors) ? "dense,flash" : "dense");
            var tokenizer = ModelLoader.CheckModes(info, file, modes, ModeOptions(EngineMode.Flash, warn: null));
            text = PerplexityText.Of(ReadText(textPath, tokenizer, info.Tokenizer.Bos, maxTokens), info.Tokenizer.Bos, context, maxTokens);
        }
        var fileBase = basePath is null ? null : BaseLogits.Load(basePath, info.Shape.Vocab);
        fileBase?.RequireSamePositions(text, basePath!);

        BaseLogits? firstMode = null; // the first mode's logits: the base without --kl-base, and what --save-kl-base writes
        var results = new List<ModeResult>();
        foreach (var mode in modes)
        {
            string name = mode.ToString().ToLowerInvariant();
            bool first = results.Count == 0;
            if (first && (fileBase is null || savePath is not null)) firstMode = BaseLogits.For(text, info.Shape.Vocab);
            var reference = fileBase ?? firstMode!;
            using var file = ModelLoader.Open(ctx, modelPath);
            var model = Engine.Load(info, file, ModeOptions(mode, m => ctx.Stderr.WriteLine("warning: " + m)));
            using var weights = model.Weights;
            using var _ = model;
            var score = new PerplexityScore();
            double forwardMs = text.Score(model, (index, target, logits) =>
            {
                // Kept before it is compared, so that the base's own KL comes out 0 by construction.
                if (first && firstMode is not null) logits.CopyTo(firstMode[index]);
                score.Add(logits, target, reference[index]);
            }, scored =>
            {
                if (!json) ctx.Stderr.WriteLine($"perplexity: {name} mode, {scored}/{text.Targets.Length} tokens, perplexity {score.Perplexity:F4}");
            });
            results.Add(new ModeResult(name, score, forwardMs / score.Tokens, weights.Account.Peak));
            if (first && savePath is not null)
            {
                firstMode!.Save(savePath, force, inputs);
                if (!json) ctx.Stderr.WriteLine($"perplexity: wrote the {name} mode's logits of {text.Targets.Length} positions to {savePath}");
            }
        }

        string baseName = basePath is null ? results[0].Mode : "file:" + basePath;
        if (json) WriteJson(ctx, info, provenance, textPath, text, baseName, results);
        else WriteTable(ctx, info, provenance, textPath, text, baseName, results, threads);
        return 0;
    }

    /// <summary>The tokens (no BOS) of the text file's first bytes: as many as <paramref name="tokens"/> + 1 tokens could
    /// stand for, so that more tokens than are scored come out while a corpus is neither read nor tokenized whole.</summary>
    private static int[] ReadText(string path, ITokenizer tokenizer, int bos, int tokens)
    {
        long limit = (tokens + 2L) * tokenizer.LongestTokenBytes;
        byte[] bytes = ModelConverter.ReadFile(path, "text", limit);
        int end = bytes.Length;
        if (end == limit)
        {
            // Cut before the last character, which the limit may have split.
            while (end > 0 && (bytes[end - 1] & 0xC0) == 0x80) end--;
            if (end > 0 && bytes[end - 1] >= 0xC0) end--;
        }
        var utf8 = bytes.AsSpan(0, end);
        if (Utf8.ToUtf16(utf8, new char[utf8.Length], out int valid, out _, replaceInvalidSequences: false) != System.Buffers.OperationStatus.Done)
            throw new BadInputException($"{path}: not UTF-8 text (an invalid byte sequence at byte {valid})");
        int[] ids = tokenizer.Encode(utf8, addBos: false, bos);
        if (ids.Length < 2) throw new BadInputException($"{path}: the text holds {ids.Length} token{(ids.Length == 1 ? "" : "s")}; perplexity needs at least 2");
        return ids;
    }

    private static void WriteTable(CliContext ctx, ModelInfo info, string? provenance, string textPath, PerplexityText text, string baseName,
                                   List<ModeResult> results, int threads)
    {
        var o = new StringBuilder();
        o.AppendLine($"machine   {BenchCommand.Machine()}");
        o.AppendLine($"model     {info.Name}: {info.Shape.WeightsName} weights; {threads} compute threads");
        if (provenance is not null) o.AppendLine($"weights   {provenance}");
        o.AppendLine($"text      {textPath}: {text.Targets.Length} tokens scored in {text.Chunks} chunk{(text.Chunks == 1 ? "" : "s")} of up to {text.Context} positions (BOS first)");
        o.AppendLine($"base      {baseName}");
        o.AppendLine();
        o.AppendLine("mode     perplexity   mean_NLL     mean_KL      p99_KL      max_KL  top1_agree  ms/token   peak_DRAM");
        foreach (var r in results)
        {
            var s = r.Score;
            o.AppendLine($"{r.Mode,-7} {s.Perplexity,11:F4} {s.MeanNll,10:F5} {s.MeanKl,11:F6} {s.KlPercentile(99),11:F6} {s.MaxKl,11:F6} " +
                         $"{s.Top1Agreement,11:F4} {r.MsPerToken,9:F3} {DramAccount.Format(r.PeakDram),11}");
        }
        o.AppendLine("(NLL and KL(base || mode) in nats per scored token; top1_agree: share of positions whose most likely token is the base's;");
        o.AppendLine(" ms/token: mean forward pass)");
        CommandLine.Write(ctx, o.ToString());
    }

    private static void WriteJson(CliContext ctx, ModelInfo info, string? provenance, string textPath, PerplexityText text, string baseName, List<ModeResult> results)
    {
        using var w = new Utf8JsonWriter(ctx.Stdout);
        w.WriteStartObject();
        w.WriteString("model", info.Name);
        w.WriteString("weights_provenance", provenance);
        w.WriteString("text", textPath);
        w.WriteNumber("tokens_scored", text.Targets.Length);
        w.WriteNumber("context", text.Context);
        w.WriteString("base", baseName);
        w.WriteStartArray("modes");
        foreach (var r in results)
        {
            var s = r.Score;
            w.WriteStartObject();
            w.WriteString("mode", r.Mode);
            w.WriteNumber("perplexity", s.Perplexity);
            w.WriteNumber("mean_nll", s.MeanNll);
            w.WriteNumber("mean_kl", s.MeanKl);
            w.WriteNumber("p99_kl", s.KlPercentile(99));
            w.WriteNumber("max_kl", s.MaxKl);
            w.WriteNumber("top1_agreement", s.Top1Agreement);
            w.WriteNumber("ms_per_token", Math.Round(r.MsPerToken, 4));
            w.WriteNumber("peak_dram_bytes", r.PeakDram);
            w.WriteEndObject();
        }
        w.WriteEndArray();
        CommandLine.EndJson(ctx, w);
    }
}
