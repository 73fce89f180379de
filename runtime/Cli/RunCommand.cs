using System.Text;
using System.Text.Json;
using AotFlash.Flash;
using AotFlash.Inference;
using AotFlash.Sampling;

namespace AotFlash.Cli;

/// <summary><c>run</c>: prompt → generated text, streamed as it comes, or one JSON object with <c>--json</c>.</summary>
public static class RunCommand
{
    /// <summary>-f FILE, shared by the commands that also take -p TEXT (declared before the tables that hold it: static fields
    /// are initialised in order).</summary>
    internal static readonly Option PromptFileOption = new(["-f", "--file"], "FILE", "read the prompt from a file (raw bytes; - for standard input)");

    /// <summary>-t/--threads, as every command that computes takes it (declared before Options, which holds it).</summary>
    internal static readonly Option ThreadsOption = new(["-t", "--threads"], "N", $"compute threads (default: the physical cores, {DefaultThreads} here)");

    /// <summary>How the engine holds the model: the options of every command that loads one to generate.</summary>
    internal static readonly Option[] EngineSettings =
    [
        new(["--mode"], "MODE", "dense (all weights in DRAM), naive (whole FFN read from flash every token) or flash\n" +
                                "                             (predicted neurons, cached, read sparsely); default: flash when the model\n" +
                                "                             file has predictors (see calibrate), else dense"),
        new(["--dram-budget"], "B", "hard cap on the engine's memory: 50% (of the model file) or a size such as 512MiB\n" +
                                    "                             (default in flash mode: the spec's; otherwise none); the runtime's own\n" +
                                    "                             ~12 MiB and the kernel's page tables (0.2%) are outside\n" +
                                    "                             it: under an OS limit, give 16 MiB + 0.4% less"),
        new(["--window"], "K", "flash mode: keep neurons used in the last K tokens cached (default: the spec's)"),
        new(["--io-threads"], "N", "flash and naive modes: parallel flash reads (default: the spec's)"),
        new(["--measure-recall"], null, "flash mode: also compute the true active neurons (reads every gate row) to report predictor_recall"),
    ];

    internal static readonly Option[] Options =
    [
        new(["-p", "--prompt"], "TEXT", "prompt text (default: empty, i.e. start from BOS)"),
        PromptFileOption,
        new(["-n", "--n-predict"], "N", "most tokens to generate (default -1: until a stop token or the context is full)"),
        ThreadsOption,
        new(["-s", "--seed"], "S", "random seed (default: from the clock)"),
        new(["--temp"], "T", "temperature, 0 = greedy (default 0.8)"),
        new(["--top-k"], "K", "keep the K most likely tokens, 0 = off (default 40)"),
        new(["--top-p"], "P", "nucleus sampling mass, 1 = off (default 0.95)"),
        new(["--min-p"], "P", "drop tokens below P x the top probability, 0 = off (default 0.05)"),
        .. EngineSettings,
        new(["--json"], null, "print one JSON object (ids, text, stop reason, stats) instead of streaming text"),
        new(["--dump-logits"], "K", "with --json: include the logits after positions 0..K-1"),
        ModelLoader.ModelOption,
    ];

    public static int DefaultThreads => Threading.CpuTopology.PhysicalCores;

    internal static int Threads(Arguments a) => a.Int("--threads", DefaultThreads, min: 1, max: 1024);

    public static string Help(CliContext ctx) => CommandLine.HelpText(
        $"{ctx.ProgramName} run [-p PROMPT | -f FILE] [-n N] [--temp T --top-k K --top-p P --min-p P -s SEED] [-t N] [--json [--dump-logits K]]",
        "Generates text. The prompt is tokenized with BOS in front; generation ends at a stop token of the spec, after -n\n" +
        "tokens, or when the context is full. Without --json, text streams to stdout and a timing line goes to stderr.",
        Options);

    public static int Execute(CliContext ctx, string[] args)
    {
        var a = new Arguments("run", args, Options);
        a.NoPositional();
        var info = ctx.Model;
        var (promptText, promptFile) = PromptOptions(a);
        int maxNew = a.Int("--n-predict", -1, min: -1);
        int threads = Threads(a);
        bool json = a.Flag("--json");
        int dumpLogits = a.Int("--dump-logits", 0, min: 0, max: info.Shape.Context);
        if (dumpLogits > 0 && !json) throw new BadInputException("--dump-logits needs --json");
        var sampling = ReadSampling(a, seed: a.ULong("--seed", (ulong)DateTime.UtcNow.Ticks));

        var options = ReadEngineOptions(ctx, a, threads);
        var (model, tokenizer, loadMs, provenance) = ModelLoader.Load(ctx, a.String("--model"), options);
        using var weights = model.Weights;
        using var _ = model;
        var session = new Session(model, tokenizer, new Sampler(info.Shape.Vocab, sampling));
        byte[] prompt = promptFile is null ? Encoding.UTF8.GetBytes(promptText ?? "") : ReadPrompt(ctx, promptFile, session.MaxPromptBytes);
        int[] promptIds = session.Tokenize(prompt);

        var text = new MemoryStream();
        bool OnToken(int previous, int token)
        {
            var piece = tokenizer.Decode(previous, token, info.Tokenizer.Bos);
            text.Write(piece);
            if (json) return true;
            ctx.Stdout.Write(piece);
            ctx.Stdout.Flush();
            return true;
        }
        if (!json) CommandLine.Write(ctx, Encoding.UTF8.GetString(prompt));
        var result = session.Generate(promptIds, maxNew, dumpLogits, OnToken);

        if (json)
        {
            WriteJson(ctx, result, text.ToArray(), loadMs, model, threads, provenance);
        }
        else
        {
            CommandLine.Write(ctx, "\n");
            var st = TokenStats.Of(result, model);
            ctx.Stderr.WriteLine($"[{result.GeneratedIds.Count} tokens ({result.StopReason.Name()}), {st.Mode}, {threads} threads: load {loadMs:F1} ms, " +
                                 $"first token {result.TimeToFirstTokenMs:F1} ms, {result.MsPerToken:F2} ms/token " +
                                 $"({(result.MsPerToken > 0 ? 1000 / result.MsPerToken : 0):F1} tok/s); per forward: io {st.IoMs:F2} ms, mem {st.MemMs:F2} ms, " +
                                 $"compute {st.ComputeMs:F2} ms, {st.BytesRead / 1024.0:F0} KiB read, FFN density {st.Density:F3}; peak DRAM {DramAccount.Format(model.Weights.Account.Peak)}]");
        }
        return 0;
    }

    /// <summary>--temp, --top-k, --top-p and --min-p (llama.cpp's defaults where not given), checked, with <paramref name="seed"/>.</summary>
    internal static SamplerOptions ReadSampling(Arguments a, ulong seed)
    {
        var sampling = new SamplerOptions
        {
            Temperature = a.Float("--temp", 0.8f),
            TopK = a.Int("--top-k", 40),
            TopP = a.Float("--top-p", 0.95f),
            MinP = a.Float("--min-p", 0.05f),
            Seed = seed,
        };
        sampling.Validate();
        return sampling;
    }

    /// <summary>The engine options that <see cref="EngineSettings"/> give.</summary>
    internal static EngineOptions ReadEngineOptions(CliContext ctx, Arguments a, int threads) => new()
    {
        Mode = a.Mode("--mode"),
        Threads = threads,
        DramBudget = a.String("--dram-budget"),
        Window = a.Int("--window", 0, min: 1),
        IoThreads = a.Int("--io-threads", 0, min: 1, max: 256),
        MeasureRecall = a.Flag("--measure-recall"),
        Warn = message => ctx.Stderr.WriteLine("warning: " + message),
    };

    /// <summary>The prompt's text (-p) or file (-f), at most one of them given.</summary>
    internal static (string? Text, string? File) PromptOptions(Arguments a)
    {
        string? text = a.String("--prompt"), file = a.String("--file");
        if (text is not null && file is not null) throw new BadInputException("give the prompt with -p or -f, not both");
        return (text, file);
    }

    /// <summary>The prompt file (or standard input for "-"), read no further than <paramref name="maxBytes"/> + 1 bytes:
    /// a longer prompt cannot fit the context, so an endless source (/dev/zero, a pipe that never ends) is refused
    /// instead of filling memory.</summary>
    internal static byte[] ReadPrompt(CliContext ctx, string path, long maxBytes)
    {
        string name = path == "-" ? "standard input" : path;
        // Only regular files, or a pipe given as -f -.
        if (path != "-") Libc.RequireRegularFile(path, "a prompt file", " (to read a pipe, give it as standard input with -f -)");
        try
        {
            using var stream = path == "-" ? null : File.OpenRead(path);
            var source = stream ?? ctx.Stdin;
            var prompt = new MemoryStream();
            var buffer = new byte[64 * 1024];
            int n;
            while (prompt.Length <= maxBytes && (n = source.Read(buffer, 0, (int)Math.Min(buffer.Length, maxBytes + 1 - prompt.Length))) > 0)
                prompt.Write(buffer, 0, n);
            if (prompt.Length > maxBytes)
                throw new BadInputException($"{name}: the prompt is more than {maxBytes} bytes, more than the model's context of " +
                                            $"{ctx.Model.Shape.Context} tokens can hold");
            return prompt.ToArray();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        { throw new BadInputException($"{name}: cannot read prompt file ({e.Message})"); }
    }

    private static void WriteJson(CliContext ctx, Generation r, byte[] text, double loadMs, Transformer model, int threads, string? provenance)
    {
        using var w = new Utf8JsonWriter(ctx.Stdout);
        w.WriteStartObject();
        w.WriteStartArray("prompt_ids");
        foreach (int id in r.PromptIds) w.WriteNumberValue(id);
        w.WriteEndArray();
        w.WriteStartArray("generated_ids");
        foreach (int id in r.GeneratedIds) w.WriteNumberValue(id);
        w.WriteEndArray();
        // Invalid UTF-8 in generated bytes (a split multi-byte character) becomes U+FFFD here.
        w.WriteString("text", Encoding.UTF8.GetString(text));
        w.WriteString("stop_reason", r.StopReason.Name());
        w.WriteString("weights_provenance", provenance);
        if (r.Logits.Count > 0)
        {
            w.WriteStartArray("logits");
            foreach (var row in r.Logits)
            {
                w.WriteStartArray();
                foreach (float v in row) w.WriteNumberValue(v);
                w.WriteEndArray();
            }
            w.WriteEndArray();
        }
        WriteStats(w, r, model, threads, loadMs);
        CommandLine.EndJson(ctx, w);
    }

    /// <summary>The <c>stats</c> object of <c>run --json</c> (serve's responses carry the same).</summary>
    internal static void WriteStats(Utf8JsonWriter w, Generation r, Transformer model, int threads, double loadMs)
    {
        var st = TokenStats.Of(r, model);
        var account = model.Weights.Account;
        w.WriteStartObject("stats");
        w.WriteString("mode", st.Mode);
        w.WriteNumber("threads", threads);
        w.WriteNumber("load_ms", Math.Round(loadMs, 3));
        w.WriteNumber("ttft_ms", Math.Round(r.TimeToFirstTokenMs, 3));
        w.WriteNumber("ms_per_token", Math.Round(r.MsPerToken, 4));
        w.WriteNumber("forward_ms_per_token", Math.Round(st.ForwardMs, 4));
        w.WriteNumber("io_ms_per_token", Math.Round(st.IoMs, 4));
        w.WriteNumber("mem_ms_per_token", Math.Round(st.MemMs, 4));
        w.WriteNumber("compute_ms_per_token", Math.Round(st.ComputeMs, 4));
        w.WriteNumber("bytes_read_per_token", Math.Round(st.BytesRead));
        w.WriteNumber("peak_dram_bytes", account.Peak);
        if (account.Limit != long.MaxValue) w.WriteNumber("dram_budget_bytes", account.Limit);
        else w.WriteNull("dram_budget_bytes");
        w.WriteNumber("ffn_density", Math.Round(st.Density, 5));
        if (st.Recall is { } recall) w.WriteNumber("predictor_recall", Math.Round(recall, 5));
        else w.WriteNull("predictor_recall");
        if (st.HitRate is { } hit) w.WriteNumber("cache_hit_rate", Math.Round(hit, 5));
        else w.WriteNull("cache_hit_rate");
        if (model.FfnSource.Stats.DirectIo is { } direct) w.WriteBoolean("o_direct", direct);
        else w.WriteNull("o_direct");
        w.WriteEndObject();
    }
}
