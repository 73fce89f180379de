using System.Diagnostics;
using System.Text;
using System.Text.Json;
using AotFlash.Ffn;
using AotFlash.Flash;
using AotFlash.Inference;
using AotFlash.Sampling;
using AotFlash.Tokenizers;

namespace AotFlash.Cli;

/// <summary>
/// <c>bench</c>: the paper's comparison in one run — the machine, an I/O probe of the model file's disk, then the same
/// greedy generation in each mode (naive baseline, flash, and dense where it fits) with the per-token breakdown.
/// </summary>
public static class BenchCommand
{
    internal static readonly Option[] Options =
    [
        ModelLoader.ModelOption,
        new(["--modes"], "LIST", "modes to run, in order (default naive,flash)"),
        new(["--dram-budget"], "B", "budget of flash mode (default: the spec's); naive and dense run without one"),
        new(["-n", "--n-predict"], "N", "tokens to generate per mode, exactly: a stop token does not end the run; the prompt\n" +
                                         "                             and N - 1 more must fit the context (default 16)"),
        new(["-p", "--prompt"], "TEXT", $"prompt (default \"{DefaultPrompt}\")"),
        RunCommand.PromptFileOption,
        new(["--prompt-tokens"], "N", "cut the tokenized prompt to exactly N tokens, BOS included (the text must give at least N)"),
        RunCommand.ThreadsOption,
        new(["--io-threads"], "N", "parallel flash reads (default: the spec's)"),
        new(["--window"], "K", "flash mode's window (default: the spec's)"),
        new(["--no-probe"], null, "skip the I/O probe"),
        new(["--probe-only"], null, "only the I/O probe, over more chunk sizes (4 KiB to 1 MiB and the model's bundle) and queue depths (1 to 64)"),
        new(["--json"], null, "print one JSON object instead of the tables"),
    ];

    private const string DefaultPrompt = "Once upon a time";

    public static string Help(CliContext ctx) => CommandLine.HelpText(
        $"{ctx.ProgramName} bench [--model FILE] [--modes naive,flash,dense] [--dram-budget 50%] [-n 16] [-p TEXT | -f FILE] [--prompt-tokens N] [--json]",
        "Measures, side by side in one run: random-read bandwidth of the disk holding the model (O_DIRECT, by chunk size\n" +
        "and queue depth), then the same greedy generation in each mode, in two phases. Prompt: the prompt's tokens, up to\n" +
        $"the first generated token, run in blocks of up to {FfnBlocks.InMemory} tokens (where layers stream from flash, as many\n" +
        $"as the DRAM budget holds, up to {FfnBlocks.Streamed}) (time to first token). Decode: every forward pass after it, one\n" +
        "per generated token after the first (the steady state the paper measures; none with -n 1). Per phase: ms per\n" +
        "token with its io / memory-management / compute breakdown and bytes read per token; for decode also the achieved\n" +
        "read bandwidth, FFN density and cache hit rate; peak DRAM; the speed-up over naive (decode ms/token, prompt\n" +
        "time to first token). Each mode generates exactly -n tokens: a stop token is kept and generation goes on, since\n" +
        "only the speed is measured. The JSON's per-mode \"prompt\" and \"decode\" objects hold the phases (decode is\n" +
        "null without a pass); its other per-mode numbers are means over all forward passes, both phases together.",
        Options);

    private sealed record ModeResult(string Mode, Generation Generation, TokenStats All, TokenStats? Prompt, TokenStats? Decode, long PeakDram, long Budget);

    public static int Execute(CliContext ctx, string[] args)
    {
        var a = new Arguments("bench", args, Options);
        a.NoPositional();
        var info = ctx.Model;
        var modes = a.Modes("--modes", "naive,flash");
        int n = a.Int("--n-predict", 16, min: 1);
        int threads = RunCommand.Threads(a);
        int ioThreads = a.Int("--io-threads", 0, min: 1, max: 256);
        int window = a.Int("--window", 0, min: 1);
        string? budget = a.String("--dram-budget");
        var (promptText, promptFile) = RunCommand.PromptOptions(a);
        int promptTokens = a.Int("--prompt-tokens", 0, min: 1, max: info.Shape.Context);
        bool json = a.Flag("--json");
        bool probeOnly = a.Flag("--probe-only");
        if (probeOnly && a.Flag("--no-probe")) throw new BadInputException("--probe-only and --no-probe leave nothing to do: give one of them");

        EngineOptions ModeOptions(EngineMode mode, Action<string>? warn) => new()
        {
            Mode = mode, Threads = threads, IoThreads = ioThreads, Window = window,
            DramBudget = mode == EngineMode.Flash ? budget : null,
            Warn = warn,
        };

        // BOS + the prompt's tokens (cut to --prompt-tokens), which every mode then runs; they must leave room for n tokens.
        int[] PromptIds(ITokenizer tokenizer)
        {
            byte[] prompt = promptFile is null ? Encoding.UTF8.GetBytes(promptText ?? DefaultPrompt)
                : RunCommand.ReadPrompt(ctx, promptFile, Session.MaxPromptBytesOf(info, tokenizer));
            int[] ids;
            if (promptTokens == 0) ids = Session.Tokenize(info, tokenizer, prompt);
            else
            {
                ids = Session.TokenizeUncut(info, tokenizer, prompt);
                if (ids.Length < promptTokens)
                    throw new BadInputException($"--prompt-tokens {promptTokens}: the prompt is {ids.Length} tokens (BOS included); give a longer one");
                ids = ids[..promptTokens];
            }
            // The last generated token is not fed back, so n tokens take prompt + n - 1 positions.
            if (ids.Length + n - 1 > info.Shape.Context)
                throw new BadInputException($"-n {n} is more tokens than fit after a prompt of {ids.Length} tokens in the model's context of " +
                                            $"{info.Shape.Context} (at most {info.Shape.Context - ids.Length + 1})");
            return ids;
        }

        string machine = Machine();
        long fileBytes;
        int[] promptIds;
        List<(int Chunk, int Depth, double MBps)> probe = [];
        string? provenance;
        using (var file = ModelLoader.Open(ctx, a.String("--model")))
        {
            fileBytes = file.Header.FileLength;
            provenance = ModelLoader.Provenance(ctx, file);
            // Refused here, before the probe and the modes before it have run and printed: also a prompt that does not fit.
            promptIds = PromptIds(ModelLoader.CheckModes(info, file, modes, ModeOptions(EngineMode.Flash, warn: null)));
            void Log(string line) { if (!json) ctx.Stderr.WriteLine(line); }
            if (probeOnly) probe = Probe(file, Log, WithBundle(info, [4096, 16384, 65536, 262144, 1 << 20]), [1, 4, 16, 64]);
            else if (!a.Flag("--no-probe")) probe = Probe(file, Log, WithBundle(info, [4096, 65536, 262144]), [1, 8]);
        }

        var results = new List<ModeResult>();
        foreach (var mode in probeOnly ? [] : modes)
        {
            if (!json) ctx.Stderr.WriteLine($"bench: {mode.ToString().ToLowerInvariant()} mode, {promptIds.Length} prompt tokens, {n} generated...");
            using var file = ModelLoader.Open(ctx, a.String("--model"));
            var model = Engine.Load(info, file, ModeOptions(mode, m => ctx.Stderr.WriteLine("warning: " + m)));
            using var weights = model.Weights;
            using var _ = model;
            var session = new Session(model, info.LoadTokenizer(weights, file.Source), new Sampler(info.Shape.Vocab, SamplerOptions.Greedy));
            var generation = session.Generate(promptIds, n, 0, endAtStopToken: false);
            results.Add(new ModeResult(model.Mode.ToString().ToLowerInvariant(), generation, TokenStats.Of(generation, model),
                TokenStats.Of(generation.Prompt, model), TokenStats.Of(generation.Decode, model), weights.Account.Peak, weights.Account.Limit));
        }

        if (json) WriteJson(ctx, machine, info, fileBytes, provenance, probe, results, threads);
        else WriteTable(ctx, machine, info, fileBytes, provenance, probe, results, threads);
        return 0;
    }

    /// <summary>Bytes read per second of waiting for them, in MiB/s; 0 when nothing was waited for.</summary>

    /// <summary>The CPU, cores, memory, architecture and vector path, for a result's first line.</summary>
    internal static string Machine()
    {
        string cpu = "unknown CPU";
        try
        {
            cpu = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal))?.Split(':', 2)[1].Trim()
                  ?? File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("CPU part", StringComparison.Ordinal)) ?? cpu;
        }
        catch (IOException) { }
        long memory = GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;
        return $"{cpu}, {Environment.ProcessorCount} logical cores ({Threading.CpuTopology.PhysicalCores} physical), {DramAccount.Format(memory)} RAM, " +
               $"{System.Runtime.InteropServices.RuntimeInformation.OSArchitecture}, vector path {Kernels.IsaSupport.Describe()}";
    }

    /// <summary><paramref name="sizes"/> and the model's own request, one bundle's 4 KiB-aligned bytes, in order: flash
    /// decode reads single bundles, and a device bound by requests per second gives a 12 KiB read three quarters of a
    /// 16 KiB one's MB/s, so the nearest probed size would not be a fair yardstick for it.</summary>
    internal static int[] WithBundle(ModelInfo info, int[] sizes) =>
        [.. sizes.Append((int)Math.Min(1 << 30, ReadPlanner.AlignUp(info.Layout.BundleBytes))).Distinct().Order()];

    /// <summary>Random reads of the flash section through the engine's own reader: MB/s by chunk size and queue depth.</summary>
    private static unsafe List<(int, int, double)> Probe(ModelFile file, Action<string> log, int[] chunkSizes, int[] depths)
    {
        var section = file.Header.Get(SectionKind.Flash, file.Source);
        var result = new List<(int, int, double)>();
        foreach (int chunk in chunkSizes)
        foreach (int depth in depths)
        {
            long chunks = section.Length / chunk;
            if (chunks < 2) continue;
            var account = new DramAccount();
            using var reader = FlashReader.Open(file.Path, file.BaseOffset, depth, account, null,
                new ReaderOptions { MaxChunkBytes = chunk, MaxGapBytes = 0 });
            int count = (int)Math.Min(chunks, Math.Max(16, (64L << 20) / chunk)); // up to 64 MiB per measurement
            var random = new Random(chunk + depth);
            var picks = new SortedSet<int>();
            while (picks.Count < count) picks.Add(random.Next((int)Math.Min(chunks, int.MaxValue)));
            int[] bundles = [.. picks];
            // Every read lands in the same place, on the 2 MiB pages of the engine's streamed pieces: a small buffer on
            // 4 KiB pages gave 12 KiB reads 519-621 MB/s at 64 in flight where these got 752-759.
            using var target = NativeArray<byte>.ForReads(Math.Max(chunk, DramAccount.LargeBytes), account, "probe buffer");
            var destinations = Enumerable.Repeat((nint)target.Pointer, count).ToArray();
            var clock = Stopwatch.StartNew();
            reader.ReadBundles(section.Offset, chunk, chunk, bundles, destinations);
            double mbps = (double)count * chunk / (1 << 20) / clock.Elapsed.TotalSeconds;
            result.Add((chunk, depth, mbps));
            log($"bench: I/O probe {chunk / 1024} KiB reads, {depth} in flight: {mbps:F0} MB/s{(reader.Direct ? "" : " (buffered: O_DIRECT refused)")}");
        }
        return result;
    }

    private static void WriteTable(CliContext ctx, string machine, ModelInfo info, long fileBytes, string? provenance, List<(int Chunk, int Depth, double MBps)> probe,
                                   List<ModeResult> results, int threads)
    {
        static string Cell(double? value, string format, int width) => (value is { } v ? v.ToString(format) : "-").PadLeft(width);
        static string Speedup(double? baseline, double? value) => baseline is { } b && value is { } v && v > 0 ? $"{b / v:F2}x" : "-";

        var o = new StringBuilder();
        o.AppendLine($"machine   {machine}");
        o.AppendLine($"model     {info.Name}: {DramAccount.Format(fileBytes)} model file, {info.Shape.WeightsName}, " +
                     $"{info.Shape.Layers} layers x {info.Shape.HiddenDim} FFN neurons; {threads} compute threads");
        if (provenance is not null) o.AppendLine($"weights   {provenance}");
        if (probe.Count > 0)
            o.AppendLine("I/O probe " + string.Join(", ", probe.Select(p => $"{p.Chunk / 1024} KiB x{p.Depth}: {p.MBps:F0} MB/s")));

        if (results.Count == 0) // --probe-only
        {
            CommandLine.Write(ctx, o.ToString());
            return;
        }
        var naive = results.FirstOrDefault(r => r.Mode == "naive");
        o.AppendLine();
        o.AppendLine("decode: per generated token after the first (the steady state)");
        o.AppendLine("mode     tokens  ms/token   io_ms  mem_ms  compute_ms  MiB_read/token  read_MB/s  ffn_density  cache_hits  peak_DRAM      budget  vs_naive");
        foreach (var r in results)
        {
            var d = r.Decode;
            o.AppendLine($"{r.Mode,-7} {r.Generation.Decode.Forwards,7} {Cell(d?.ForwardMs, "F1", 9)} {Cell(d?.IoMs, "F1", 7)} {Cell(d?.MemMs, "F2", 7)} " +
                         $"{Cell(d?.ComputeMs, "F1", 11)} {Cell(d?.BytesRead / (1 << 20), "F2", 15)} {Cell(d is { } x ? x.ReadMBps : null, "F0", 10)} " +
                         $"{Cell(d?.Density, "F4", 12)} {Cell(d?.HitRate, "F3", 11)} {DramAccount.Format(r.PeakDram),10} " +
                         $"{(r.Budget == long.MaxValue ? "none" : DramAccount.Format(r.Budget)),11} {Speedup(naive?.Decode?.ForwardMs, d?.ForwardMs),9}");
        }
        o.AppendLine();
        o.AppendLine("prompt: per prompt token, up to the first generated token (time to first token), run in blocks");
        o.AppendLine("mode     tokens   TTFT_ms  ms/token   io_ms  mem_ms  compute_ms  MiB_read/token  vs_naive");
        foreach (var r in results)
        {
            var p = r.Prompt;
            o.AppendLine($"{r.Mode,-7} {r.Generation.Prompt.Forwards,7} {r.Generation.TimeToFirstTokenMs,9:F1} {Cell(p?.ForwardMs, "F1", 9)} " +
                         $"{Cell(p?.IoMs, "F1", 7)} {Cell(p?.MemMs, "F2", 7)} {Cell(p?.ComputeMs, "F1", 11)} {Cell(p?.BytesRead / (1 << 20), "F2", 15)} " +
                         $"{Speedup(naive?.Generation.TimeToFirstTokenMs, r.Generation.TimeToFirstTokenMs),9}");
        }
        o.AppendLine("(ms/token: mean forward pass; io: waiting for flash reads (flash mode computes its cached neurons while the missing " +
                     "ones are read); mem: neuron-cache management; compute: the rest; read_MB/s: bytes over the time reads were in flight, " +
                     "waited for or not; vs_naive: naive's decode ms/token or time to first token over this mode's; -: no forward pass in the phase)");
        CommandLine.Write(ctx, o.ToString());
    }

    private static void WriteJson(CliContext ctx, string machine, ModelInfo info, long fileBytes, string? provenance, List<(int Chunk, int Depth, double MBps)> probe,
                                  List<ModeResult> results, int threads)
    {
        using var w = new Utf8JsonWriter(ctx.Stdout);

        // The per-token breakdown shared by the whole generation and its phases.
        void Breakdown(TokenStats s)
        {
            w.WriteNumber("ms_per_token", Math.Round(s.ForwardMs, 3));
            w.WriteNumber("io_ms_per_token", Math.Round(s.IoMs, 3));
            w.WriteNumber("mem_ms_per_token", Math.Round(s.MemMs, 3));
            w.WriteNumber("compute_ms_per_token", Math.Round(s.ComputeMs, 3));
            w.WriteNumber("bytes_read_per_token", Math.Round(s.BytesRead));
        }

        void Flash(TokenStats s)
        {
            w.WriteNumber("read_mb_per_s", Math.Round(s.ReadMBps, 1));
            w.WriteNumber("ffn_density", Math.Round(s.Density, 5));
            if (s.HitRate is { } h) w.WriteNumber("cache_hit_rate", Math.Round(h, 5)); else w.WriteNull("cache_hit_rate");
        }

        w.WriteStartObject();
        w.WriteString("machine", machine);
        w.WriteString("model", info.Name);
        w.WriteNumber("model_file_bytes", fileBytes);
        w.WriteString("weights_provenance", provenance);
        w.WriteNumber("threads", threads);
        w.WriteStartArray("io_probe");
        foreach (var p in probe)
        {
            w.WriteStartObject();
            w.WriteNumber("chunk_bytes", p.Chunk);
            w.WriteNumber("queue_depth", p.Depth);
            w.WriteNumber("mb_per_s", Math.Round(p.MBps, 1));
            w.WriteEndObject();
        }
        w.WriteEndArray();
        w.WriteStartArray("modes");
        foreach (var r in results)
        {
            w.WriteStartObject();
            w.WriteString("mode", r.Mode);
            Breakdown(r.All);
            Flash(r.All);
            w.WriteNumber("peak_dram_bytes", r.PeakDram);
            if (r.Budget == long.MaxValue) w.WriteNull("dram_budget_bytes"); else w.WriteNumber("dram_budget_bytes", r.Budget);
            w.WriteNumber("generated_tokens", r.Generation.GeneratedIds.Count);
            if (r.Prompt is { } prompt)
            {
                w.WriteStartObject("prompt");
                w.WriteNumber("tokens", r.Generation.Prompt.Forwards);
                w.WriteNumber("ttft_ms", Math.Round(r.Generation.TimeToFirstTokenMs, 3));
                Breakdown(prompt);
                w.WriteEndObject();
            }
            else w.WriteNull("prompt");
            if (r.Decode is { } decode)
            {
                w.WriteStartObject("decode");
                w.WriteNumber("tokens", r.Generation.Decode.Forwards);
                Breakdown(decode);
                Flash(decode);
                w.WriteEndObject();
            }
            else w.WriteNull("decode");
            w.WriteEndObject();
        }
        w.WriteEndArray();
        CommandLine.EndJson(ctx, w);
    }
}
