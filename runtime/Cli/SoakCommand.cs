using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using AotFlash.Flash;
using AotFlash.Inference;
using AotFlash.Sampling;

namespace AotFlash.Cli;

/// <summary>
/// <c>soak</c>: generates for a long time, session after session, each filling the context and ending (a new session
/// starts over), and samples the process's memory (RSS and its peak, VmHWM, from /proc/self/status) and the DRAM
/// account as it goes. Memory that grows with the number of sessions or tokens is a leak; a peak above the budget plus
/// the runtime's own overhead is memory the account does not see.
/// </summary>
public static class SoakCommand
{
    internal static readonly Option[] Options =
    [
        ModelLoader.ModelOption,
        new(["--seconds"], "S", "how long to run (default 60)"),
        new(["--sessions"], "N", "stop after N sessions, if that comes first (default: no limit)"),
        new(["--mode"], "MODE", "dense, naive or flash (default: flash when the model file has predictors, else dense)"),
        new(["--dram-budget"], "B", "the budget (default in flash mode: the spec's)"),
        RunCommand.ThreadsOption,
        new(["-s", "--seed"], "S", "sampling seed of the first session; each next session adds one (default 1)"),
        new(["--json"], null, "print one JSON object with every sample instead of a table"),
    ];

    public static string Help(CliContext ctx) => CommandLine.HelpText(
        $"{ctx.ProgramName} soak [--model FILE] [--seconds 60] [--sessions N] [--mode flash] [--dram-budget B] [--json]",
        "Runs session after session (each samples from BOS until the context is full, at temperature 1) for the given time,\n" +
        "and samples after each session: seconds, sessions, tokens, the process's resident memory (VmRSS) and its peak\n" +
        "(VmHWM), the engine's DRAM account, and the managed heap with its collections and allocations so far. Memory that grows from\n" +
        "session to session is a leak.",
        Options);

    private sealed record Sample(double Seconds, int Sessions, long Tokens, long RssBytes, long PeakRssBytes, long AccountBytes, long AccountPeakBytes,
                                 long ManagedHeapBytes, long AllocatedBytes, int Collections);

    public static int Execute(CliContext ctx, string[] args)
    {
        var a = new Arguments("soak", args, Options);
        a.NoPositional();
        double seconds = a.Int("--seconds", 60, min: 1, max: 7 * 24 * 3600);
        int maxSessions = a.Int("--sessions", int.MaxValue, min: 1);
        int threads = RunCommand.Threads(a);
        ulong seed = a.ULong("--seed", 1);
        bool json = a.Flag("--json");
        var options = new EngineOptions
        {
            Mode = a.Mode("--mode"),
            Threads = threads,
            DramBudget = a.String("--dram-budget"),
            Warn = message => ctx.Stderr.WriteLine("warning: " + message),
        };
        var info = ctx.Model;
        using var file = ModelLoader.Open(ctx, a.String("--model"));
        ModelLoader.Provenance(ctx, file);
        using var model = LoadedModel.Load(info, file, options);
        var tokenizer = info.LoadTokenizer(model.Weights, file.Source);

        var samples = new List<Sample>();
        var clock = Stopwatch.StartNew();
        long tokens = 0, accountPeak = 0;
        int sessions = 0;
        while (clock.Elapsed.TotalSeconds < seconds && sessions < maxSessions)
        {
            // A new session each time: its own transformer (KV cache, FFN source, caches, reader) and account.
            var transformer = model.NewTransformer(options);
            long account;
            try
            {
                var session = new Session(transformer, tokenizer, new Sampler(info.Shape.Vocab, new SamplerOptions { Temperature = 1f, Seed = seed + (ulong)sessions }));
                var generation = session.Generate([info.Tokenizer.Bos], -1, 0);
                tokens += generation.Forwards;
                account = transformer.Weights.Account.Current;
                accountPeak = Math.Max(accountPeak, transformer.Weights.Account.Peak);
            }
            finally
            {
                transformer.Dispose();
                transformer.Weights.Dispose();
            }
            sessions++;
            var (rss, peak) = ProcessMemory.Read();
            long heap = GC.GetGCMemoryInfo().HeapSizeBytes;
            long allocated = GC.GetTotalAllocatedBytes();
            samples.Add(new Sample(clock.Elapsed.TotalSeconds, sessions, tokens, rss, peak, account, accountPeak, heap, allocated, GC.CollectionCount(0)));
            if (!json) ctx.Stderr.WriteLine($"soak: {clock.Elapsed.TotalSeconds,6:F1} s, {sessions} sessions, {tokens} tokens, RSS {DramAccount.Format(rss)} " +
                                            $"(peak {DramAccount.Format(peak)}), account {DramAccount.Format(account)} (peak {DramAccount.Format(accountPeak)}), " +
                                            $"managed heap {DramAccount.Format(heap)} after {GC.CollectionCount(0)} collections, {DramAccount.Format(allocated)} allocated");
        }

        if (json) WriteJson(ctx, model, samples);
        else
        {
            var first = samples[0];
            var last = samples[^1];
            CommandLine.Write(ctx, string.Create(CultureInfo.InvariantCulture,
                $"{sessions} sessions, {tokens} tokens in {clock.Elapsed.TotalSeconds:F1} s ({model.Mode.ToString().ToLowerInvariant()} mode, budget " +
                $"{(model.Budget == long.MaxValue ? "none" : DramAccount.Format(model.Budget))})\n" +
                $"RSS after the first session {DramAccount.Format(first.RssBytes)}, largest {DramAccount.Format(samples.Max(s => s.RssBytes))}, " +
                $"at the end {DramAccount.Format(last.RssBytes)}; peak (VmHWM) {DramAccount.Format(last.PeakRssBytes)}; " +
                $"account peak {DramAccount.Format(last.AccountPeakBytes)}\n"));
        }
        return 0;
    }

    private static void WriteJson(CliContext ctx, LoadedModel model, List<Sample> samples)
    {
        using var w = new Utf8JsonWriter(ctx.Stdout);
        w.WriteStartObject();
        w.WriteString("mode", model.Mode.ToString().ToLowerInvariant());
        if (model.Budget != long.MaxValue) w.WriteNumber("dram_budget_bytes", model.Budget);
        w.WriteStartArray("samples");
        foreach (var s in samples)
        {
            w.WriteStartObject();
            w.WriteNumber("seconds", Math.Round(s.Seconds, 3));
            w.WriteNumber("sessions", s.Sessions);
            w.WriteNumber("tokens", s.Tokens);
            w.WriteNumber("rss_bytes", s.RssBytes);
            w.WriteNumber("peak_rss_bytes", s.PeakRssBytes);
            w.WriteNumber("account_bytes", s.AccountBytes);
            w.WriteNumber("account_peak_bytes", s.AccountPeakBytes);
            w.WriteNumber("managed_heap_bytes", s.ManagedHeapBytes);
            w.WriteNumber("allocated_bytes", s.AllocatedBytes);
            w.WriteNumber("collections", s.Collections);
            w.WriteEndObject();
        }
        w.WriteEndArray();
        CommandLine.EndJson(ctx, w);
    }
}
