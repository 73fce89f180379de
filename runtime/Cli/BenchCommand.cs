using System.Diagnostics;
using System.Text;
using System.Text.Json;
using AotFlash.Flash;
using AotFlash.Inference;
using AotFlash.Sampling;

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
        new(["-n", "--n-predict"], "N", "tokens to generate per mode (default 16)"),
        new(["-p", "--prompt"], "TEXT", "prompt (default \"Once upon a time\")"),
        new(["-t", "--threads"], "N", $"compute threads (default {RunCommand.DefaultThreads})"),
        new(["--io-threads"], "N", "parallel flash reads (default: the spec's)"),
        new(["--window"], "K", "flash mode's window (default: the spec's)"),
        new(["--no-probe"], null, "skip the I/O probe"),
        new(["--json"], null, "print one JSON object instead of the table"),
    ];

    public static string Help(CliContext ctx) => CommandLine.HelpText(
        $"{ctx.ProgramName} bench [--model FILE] [--modes naive,flash,dense] [--dram-budget 50%] [-n 16] [--json]",
        "Measures, side by side in one run: random-read bandwidth of the disk holding the model (O_DIRECT, by chunk size\n" +
        "and queue depth), then ms per token of each mode with its io / memory-management / compute breakdown, bytes read\n" +
        "per token, achieved read bandwidth, FFN density, cache hit rate and peak DRAM, and the speed-up over naive.",
        Options);

    private sealed record ModeResult(string Mode, double MsPerToken, TokenStats Stats, long PeakDram, long Budget, double ReadMBps, int Generated);

    public static int Execute(CliContext ctx, string[] args)
    {
        var a = new Arguments("bench", args, Options);
        a.NoPositional();
        var modes = a.Modes("--modes", "naive,flash");
        int n = a.Int("--n-predict", 16, min: 1);
        int threads = a.Int("--threads", RunCommand.DefaultThreads, min: 1);
        int ioThreads = a.Int("--io-threads", 0, min: 1, max: 256);
        int window = a.Int("--window", 0, min: 1);
        string? budget = a.String("--dram-budget");
        byte[] prompt = Encoding.UTF8.GetBytes(a.String("--prompt") ?? "Once upon a time");
        bool json = a.Flag("--json");
        var info = ctx.Model;

        EngineOptions ModeOptions(EngineMode mode, Action<string>? warn) => new()
        {
            Mode = mode, Threads = threads, IoThreads = ioThreads, Window = window,
            DramBudget = mode == EngineMode.Flash ? budget : null,
            Warn = warn,
        };

        string machine = Machine();
        long fileBytes;
        List<(int Chunk, int Depth, double MBps)> probe = [];
        using (var file = ModelLoader.Open(ctx, a.String("--model")))
        {
            fileBytes = file.Header.FileLength;
            // Refused here, before the probe and the modes before it have run and printed: also a prompt over the context.
            Session.Tokenize(info, ModelLoader.CheckModes(info, file, modes, ModeOptions(EngineMode.Flash, warn: null)), prompt);
            if (!a.Flag("--no-probe")) probe = Probe(file, line => { if (!json) ctx.Stderr.WriteLine(line); });
        }

        var results = new List<ModeResult>();
        foreach (var mode in modes)
        {
            if (!json) ctx.Stderr.WriteLine($"bench: {mode.ToString().ToLowerInvariant()} mode, {n} tokens...");
            using var file = ModelLoader.Open(ctx, a.String("--model"));
            var model = Engine.Load(info, file, ModeOptions(mode, m => ctx.Stderr.WriteLine("warning: " + m)));
            using var weights = model.Weights;
            using var _ = model;
            var tokenizer = info.LoadTokenizer(weights, file.Source);
            var session = new Session(model, tokenizer, new Sampler(info.Shape.Vocab, SamplerOptions.Greedy));
            var generation = session.Generate(session.Tokenize(prompt), n, 0);
            var st = TokenStats.Of(generation, model);
            double mbps = st.IoMs > 0 ? st.BytesRead / (1 << 20) / (st.IoMs / 1000) : 0;
            results.Add(new ModeResult(st.Mode, st.ForwardMs, st, weights.Account.Peak, weights.Account.Limit, mbps, generation.GeneratedIds.Count));
        }

        if (json) WriteJson(ctx, machine, info, fileBytes, probe, results, threads);
        else WriteTable(ctx, machine, info, fileBytes, probe, results, threads);
        return 0;
    }

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

    /// <summary>Random reads of the flash section through the engine's own reader: MB/s by chunk size and queue depth.</summary>
    private static unsafe List<(int, int, double)> Probe(ModelFile file, Action<string> log)
    {
        var section = file.Header.Get(SectionKind.Flash, file.Source);
        var result = new List<(int, int, double)>();
        foreach (int chunk in new[] { 4096, 65536, 262144 })
        foreach (int depth in new[] { 1, 8 })
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
            using var target = new NativeArray<byte>(chunk, account, "probe buffer", Layout.FlashAlignment);
            var destinations = Enumerable.Repeat((nint)target.Pointer, count).ToArray();
            var clock = Stopwatch.StartNew();
            reader.ReadBundles(section.Offset, chunk, chunk, bundles, destinations);
            double mbps = (double)count * chunk / (1 << 20) / clock.Elapsed.TotalSeconds;
            result.Add((chunk, depth, mbps));
            log($"bench: I/O probe {chunk / 1024} KiB reads, {depth} in flight: {mbps:F0} MB/s{(reader.Direct ? "" : " (buffered: O_DIRECT refused)")}");
        }
        return result;
    }

    private static void WriteTable(CliContext ctx, string machine, ModelInfo info, long fileBytes, List<(int Chunk, int Depth, double MBps)> probe,
                                   List<ModeResult> results, int threads)
    {
        var o = new StringBuilder();
        o.AppendLine($"machine   {machine}");
        o.AppendLine($"model     {info.Name}: {DramAccount.Format(fileBytes)} model file, {info.Shape.Weights.ToString().ToLowerInvariant()}, " +
                     $"{info.Shape.Layers} layers x {info.Shape.HiddenDim} FFN neurons; {threads} compute threads");
        if (probe.Count > 0)
            o.AppendLine("I/O probe " + string.Join(", ", probe.Select(p => $"{p.Chunk / 1024} KiB x{p.Depth}: {p.MBps:F0} MB/s")));
        o.AppendLine();
        o.AppendLine("mode     ms/token   io_ms  mem_ms  compute_ms  MiB_read/token  read_MB/s  ffn_density  cache_hits  peak_DRAM      budget      vs_naive");
        double? naive = results.FirstOrDefault(r => r.Mode == "naive")?.MsPerToken;
        foreach (var r in results)
        {
            var s = r.Stats;
            o.AppendLine($"{r.Mode,-7} {r.MsPerToken,9:F1} {s.IoMs,7:F1} {s.MemMs,7:F2} {s.ComputeMs,11:F1} {s.BytesRead / (1 << 20),15:F2} {r.ReadMBps,10:F0} " +
                         $"{s.Density,12:F4} {(s.HitRate is { } h ? h.ToString("F3") : "-"),11} {DramAccount.Format(r.PeakDram),10} " +
                         $"{(r.Budget == long.MaxValue ? "none" : DramAccount.Format(r.Budget)),11} {(naive is { } b ? $"{b / r.MsPerToken:F2}x" : "-"),12}");
        }
        o.AppendLine("(ms/token: mean forward pass over the prompt and the generated tokens; io: waiting for flash reads; mem: neuron-cache management)");
        CommandLine.Write(ctx, o.ToString());
    }

    private static void WriteJson(CliContext ctx, string machine, ModelInfo info, long fileBytes, List<(int Chunk, int Depth, double MBps)> probe,
                                  List<ModeResult> results, int threads)
    {
        using var w = new Utf8JsonWriter(ctx.Stdout);
        w.WriteStartObject();
        w.WriteString("machine", machine);
        w.WriteString("model", info.Name);
        w.WriteNumber("model_file_bytes", fileBytes);
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
            w.WriteNumber("ms_per_token", Math.Round(r.MsPerToken, 3));
            w.WriteNumber("io_ms_per_token", Math.Round(r.Stats.IoMs, 3));
            w.WriteNumber("mem_ms_per_token", Math.Round(r.Stats.MemMs, 3));
            w.WriteNumber("compute_ms_per_token", Math.Round(r.Stats.ComputeMs, 3));
            w.WriteNumber("bytes_read_per_token", Math.Round(r.Stats.BytesRead));
            w.WriteNumber("read_mb_per_s", Math.Round(r.ReadMBps, 1));
            w.WriteNumber("ffn_density", Math.Round(r.Stats.Density, 5));
            if (r.Stats.HitRate is { } h) w.WriteNumber("cache_hit_rate", Math.Round(h, 5)); else w.WriteNull("cache_hit_rate");
            w.WriteNumber("peak_dram_bytes", r.PeakDram);
            if (r.Budget == long.MaxValue) w.WriteNull("dram_budget_bytes"); else w.WriteNumber("dram_budget_bytes", r.Budget);
            w.WriteNumber("generated_tokens", r.Generated);
            w.WriteEndObject();
        }
        w.WriteEndArray();
        w.WriteEndObject();
        w.Flush();
        ctx.Stdout.Write("\n"u8);
        ctx.Stdout.Flush();
    }
}
