using System.Globalization;
using System.Text.Json.Nodes;

namespace AotFlash.Bench.Report;

/// <summary>A model ready to measure: our binary and model file, its size, and (llama shapes, when llama.cpp is
/// present) the same weights as GGUF.</summary>
public sealed record Prepared(string Name, string Binary, string ModelFile, long FileBytes, string? Gguf, JsonObject? Preparation, long BundleBytes);

/// <summary>How a generation is asked for: the prompt's first <see cref="PromptTokens"/> tokens of a text, then
/// <see cref="Generate"/> tokens.</summary>
public sealed record Workload(string PromptFile, int PromptTokens, int Generate);

/// <summary>One measured row: who ran what under which limit, and what came out; the same fields for every engine, so
/// that rows compare.</summary>
public static class Row
{
    public static JsonObject Of(string engine, string mode, Prepared model, RunResult run) => new()
    {
        ["engine"] = engine, ["mode"] = mode, ["model"] = model.Name,
        ["limit_bytes"] = run.LimitBytes, ["cgroup_peak_bytes"] = run.PeakBytes,
        ["status"] = run.Status, ["wall_s"] = Math.Round(run.WallSeconds, 2), ["command"] = run.Command,
    };

    /// <summary>The row of a run that did not finish well, with the last line it wrote on stderr.</summary>
    public static JsonObject Failed(JsonObject row, RunResult run)
    {
        row["error"] = run.Stderr.Trim().Split('\n').LastOrDefault() ?? "";
        return row;
    }

    /// <summary>One row for several runs of the same measurement: the first run's row with each of
    /// <paramref name="keys"/> the median over the runs that finished well, and every run's value beside it
    /// (<c>KEY_runs</c>); the first failed run's row when none did.</summary>
    public static JsonObject Median(IReadOnlyList<JsonObject> runs, params string[] keys)
    {
        var ok = runs.Where(x => x["error"] is null).ToList();
        if (ok.Count == 0) return runs[0];
        var row = ok[0].DeepClone().AsObject();
        row["runs"] = ok.Count;
        foreach (var key in keys)
        {
            var values = ok.Select(x => Number(x, key)).OfType<double>().ToArray();
            if (values.Length == 0) continue;
            row[key] = MedianOf(values);
            row[key + "_runs"] = new JsonArray([.. ok.Select(x => (JsonNode?)JsonValue.Create(Number(x, key)))]);
        }
        return row;
    }

    /// <summary>The middle value, or the mean of the two middle ones; <paramref name="values"/> must not be empty.</summary>
    public static double MedianOf(IEnumerable<double> values)
    {
        var sorted = values.Order().ToArray();
        return sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[sorted.Length / 2 - 1] + sorted[sorted.Length / 2]) / 2;
    }

    /// <summary>A number of a row, whether it was parsed from JSON text or set from a long or an int.</summary>
    public static double? Number(JsonNode? node, string key) => node?[key] is not JsonValue v ? null
        : v.TryGetValue(out double d) ? d : v.TryGetValue(out long l) ? l : v.TryGetValue(out int i) ? i : null;
}

/// <summary>Our binaries: <c>bench</c> for speed (one mode per process, so each has its own cgroup and page cache),
/// <c>perplexity</c> for fidelity.</summary>
public static class Ours
{
    /// <summary>What our process holds outside the engine's DRAM budget under a memory limit of <paramref name="limit"/>:
    /// the runtime's code, heap and thread stacks and readahead around the mapped weights (12 MiB measured at 1.1B and
    /// 6.7B; <c>info --dram-budget</c> says so), and the kernel's page tables and other memory the cgroup charges (6 MiB
    /// at 6.7B: 8 bytes per 4 KiB page held). Under a limit the engine is given the limit less this, so that the whole
    /// process fits it: a process over its limit has its mapped weights evicted and read again on every token.</summary>
    public static long RuntimeReserveBytes(long limit) => (16L << 20) + limit / 256;

    /// <param name="budget">The budget's name in the tables ("50%"): the engine gets <paramref name="limit"/> less
    /// <see cref="RuntimeReserveBytes"/>, or this, as written, without a limit.</param>
    public static JsonObject Bench(Sandbox sandbox, Prepared model, string mode, Workload work, long? limit, int threads,
                                   string? budget = null, int? window = null, int? ioThreads = null)
    {
        var args = new List<string>
        {
            model.Binary, "bench", "--model", model.ModelFile, "--modes", mode, "--no-probe", "--json", "-t", Str(threads),
            "-f", work.PromptFile, "--prompt-tokens", Str(work.PromptTokens), "-n", Str(work.Generate),
        };
        if (budget is not null) args.AddRange(["--dram-budget", limit is null ? budget : (limit.Value - RuntimeReserveBytes(limit.Value)).ToString(CultureInfo.InvariantCulture)]);
        if (window is not null) args.AddRange(["--window", Str(window.Value)]);
        if (ioThreads is not null) args.AddRange(["--io-threads", Str(ioThreads.Value)]);
        var run = sandbox.Run(args, limit, TimeSpan.FromMinutes(30));
        var row = Row.Of("aotflash", mode, model, run);
        row["threads"] = threads;
        row["budget"] = budget; row["window"] = window; row["io_threads"] = ioThreads;
        if (!run.Ok) return Row.Failed(row, run);
        var m = JsonNode.Parse(run.Stdout)!["modes"]![0]!;
        var prompt = m["prompt"]; var decode = m["decode"];
        row["prompt_tokens"] = Row.Number(prompt, "tokens");
        row["ttft_ms"] = Row.Number(prompt, "ttft_ms");
        row["prompt_ms_per_token"] = Row.Number(prompt, "ms_per_token");
        row["decode_tokens"] = Row.Number(decode, "tokens");
        foreach (var key in new[] { "ms_per_token", "io_ms_per_token", "mem_ms_per_token", "compute_ms_per_token", "bytes_read_per_token",
                                    "read_mb_per_s", "ffn_density", "cache_hit_rate" })
            row["decode_" + key] = Row.Number(decode, key);
        row["accounted_peak_bytes"] = Row.Number(m, "peak_dram_bytes");
        row["accounted_budget_bytes"] = Row.Number(m, "dram_budget_bytes");
        return row;
    }

    /// <summary>The I/O probe of the disk holding the model: MB/s by request size and queue depth.</summary>
    public static JsonArray Probe(Sandbox sandbox, Prepared model)
    {
        var run = sandbox.Run([model.Binary, "bench", "--model", model.ModelFile, "--probe-only", "--json"], null, TimeSpan.FromMinutes(10));
        if (!run.Ok) throw new InvalidOperationException($"the I/O probe failed: {run.Stderr.Trim()}");
        return JsonNode.Parse(run.Stdout)!["io_probe"]!.AsArray().DeepClone().AsArray();
    }

    /// <summary>Process start to the first generated token and exit (<c>run -n 1</c>), page cache warm: start-up, not
    /// the disk.</summary>
    public static double StartToFirstToken(Prepared model, int threads)
    {
        var args = new[] { model.Binary, "run", "--model", model.ModelFile, "--mode", "dense", "-p", "Once upon a time", "-n", "1", "-t", Str(threads) };
        Processes.Run(args); // warm the page cache
        return Processes.Median(5, () => Processes.Run(args).WallSeconds * 1000);
    }

    /// <summary><c>perplexity --json</c>: one row per mode.</summary>
    public static IEnumerable<JsonObject> Perplexity(Prepared model, string text, string modes, string? klBase, string? saveKlBase, int tokens)
    {
        var args = new List<string> { model.Binary, "perplexity", "--model", model.ModelFile, "-f", text, "--modes", modes, "--tokens", Str(tokens), "--json" };
        if (klBase is not null) args.AddRange(["--kl-base", klBase]);
        if (saveKlBase is not null) args.AddRange(["--save-kl-base", saveKlBase, "--force"]);
        var run = Processes.Run(args);
        if (run.ExitCode != 0) throw new InvalidOperationException($"perplexity failed: {run.Stderr.Trim()}");
        var result = JsonNode.Parse(run.Stdout)!;
        foreach (var mode in result["modes"]!.AsArray())
        {
            var row = mode!.DeepClone().AsObject();
            row["model"] = model.Name;
            row["text"] = Path.GetFileName(text);
            row["tokens_scored"] = result["tokens_scored"]!.DeepClone();
            row["base"] = result["base"]!.DeepClone();
            yield return row;
        }
    }

    internal static string Str(int v) => v.ToString(CultureInfo.InvariantCulture);
}

/// <summary>llama.cpp's <c>llama-bench</c> (prompt processing and generation, as tokens/s) and <c>llama-simple</c>
/// (start-up), from a build named by LLAMA_CPP (a folder with bin/llama-bench).</summary>
public sealed class LlamaCpp(string bin, string version)
{
    /// <summary>What the report's header says of it; the build number and commit come with each row.</summary>
    public string Version { get; } = version;

    public static LlamaCpp? Find()
    {
        string? dir = Environment.GetEnvironmentVariable("LLAMA_CPP");
        if (string.IsNullOrEmpty(dir)) return null;
        string bin = Path.Combine(dir, "bin");
        if (!File.Exists(Path.Combine(bin, "llama-bench"))) return null;
        return new LlamaCpp(bin, $"present ({dir}; each row records its build)");
    }

    /// <summary>llama-bench's prompt test, <paramref name="promptTokens"/> tokens from an empty context (batched, as
    /// llama.cpp processes prompts), then its generation test, <paramref name="generate"/> tokens after a context of
    /// the prompt's length (<c>-d</c>): ours decodes after its prompt, so both sides' attention reads the same context.
    /// Two processes, each test measured once after its warm-up run.</summary>
    /// <param name="loadMode">"mmap" (its default) or "none" (read into memory: --no-mmap).</param>
    public JsonObject Bench(Sandbox sandbox, Prepared model, string loadMode, int promptTokens, int generate, long? limit, int threads)
    {
        var runs = new List<RunResult>();
        if (promptTokens > 0) runs.Add(Run(["-p", Ours.Str(promptTokens), "-n", "0"]));
        if (generate > 0 && runs.All(r => r.Ok)) runs.Add(Run(["-p", "0", "-n", Ours.Str(generate), "-d", Ours.Str(promptTokens)]));
        var failed = runs.FirstOrDefault(r => !r.Ok);
        var row = Row.Of("llama.cpp", loadMode == "none" ? "no-mmap" : "mmap", model, failed ?? runs[0]);
        row["command"] = string.Join(" ; ", runs.Select(r => r.Command));
        row["wall_s"] = Math.Round(runs.Sum(r => r.WallSeconds), 2);
        row["cgroup_peak_bytes"] = runs.Max(r => r.PeakBytes);
        row["threads"] = threads;
        if (failed is not null) return Row.Failed(row, failed);
        foreach (var test in runs.SelectMany(r => JsonNode.Parse(r.Stdout)!.AsArray()))
        {
            row["llama_cpp_build"] = $"{test!["build_number"]} ({test["build_commit"]})";
            double ts = Row.Number(test, "avg_ts") ?? 0;
            if (Row.Number(test, "n_prompt") is double p and > 0)
            {
                row["prompt_tokens"] = p;
                row["ttft_ms"] = ts > 0 ? Math.Round(p / ts * 1000, 3) : null;
                row["prompt_ms_per_token"] = ts > 0 ? Math.Round(1000 / ts, 3) : null;
            }
            else if (Row.Number(test, "n_gen") is double g and > 0)
            {
                row["decode_tokens"] = g;
                row["decode_depth"] = Row.Number(test, "n_depth");
                row["decode_ms_per_token"] = ts > 0 ? Math.Round(1000 / ts, 3) : null;
            }
        }
        return row;

        RunResult Run(string[] test) => sandbox.Run(
            [Path.Combine(bin, "llama-bench"), "-m", model.Gguf!, .. test, "-t", Ours.Str(threads), "-r", "1", "--load-mode", loadMode, "-o", "json"],
            limit, TimeSpan.FromMinutes(30));
    }

    /// <summary>Process start to the first generated token and exit (<c>llama-simple -n 1</c>), page cache warm.</summary>
    public double StartToFirstToken(Prepared model)
    {
        var args = new[] { Path.Combine(bin, "llama-simple"), "-m", model.Gguf!, "-n", "1", "Once upon a time" };
        Processes.Run(args);
        return Processes.Median(5, () => Processes.Run(args).WallSeconds * 1000);
    }
}

/// <summary>Runs a process to its end (or kills it, with its children, at the timeout) and collects its output.</summary>
public static class Processes
{
    public static RunResult Run(IReadOnlyList<string> args, TimeSpan? timeout = null)
    {
        var start = new System.Diagnostics.ProcessStartInfo(args[0]) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args.Skip(1)) start.ArgumentList.Add(a);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        using var p = System.Diagnostics.Process.Start(start)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        bool timedOut = !p.WaitForExit(timeout ?? Timeout.InfiniteTimeSpan);
        if (timedOut)
        {
            p.Kill(entireProcessTree: true);
            p.WaitForExit();
        }
        return new RunResult(string.Join(' ', args), p.ExitCode, stdout.Result, stderr.Result, clock.Elapsed.TotalSeconds, null, null, false, timedOut);
    }

    public static double Median(int runs, Func<double> measure) => Row.MedianOf(Enumerable.Range(0, runs).Select(_ => measure()).ToArray());
}
