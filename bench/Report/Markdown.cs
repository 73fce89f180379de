using System.Text;
using System.Text.Json.Nodes;

namespace AotFlash.Bench.Report;

/// <summary>docs/benchmarks-PROFILE.md from the results: the headline first, then each table with the command that
/// measured its rows and the chart drawn from them.</summary>
public static class Markdown
{
    public static string Write(JsonObject r, string charts)
    {
        var o = new StringBuilder();
        string profile = (string)r["profile"]!;
        o.AppendLine($"# Benchmarks ({profile} profile)");
        o.AppendLine();
        string runs = r["measured"] is JsonObject { Count: > 0 } again
            ? $"first run at commit {r["machine"]!["commit"]}; stages measured again later ({string.Join(", ", again.Select(s => s.Key))}) say when, " +
              "at which commit and with which build under Machine; every figure comes from one of those runs"
            : $"commit {r["machine"]!["commit"]}; every figure below comes from that one run";
        o.AppendLine($"Measured by `bench/report.sh --profile {profile} --stages {r["stages"]}` from {r["started"]} to {r["finished"]}, {runs} " +
                     "(raw rows: the JSON beside this file). Models named `synthetic-…` have " +
                     "**SYNTHETIC weights** (`convert --synthetic`, see the README's \"Synthetic models of real shapes\"): they measure speed, " +
                     "not quality; quality is measured on the real small models (Fidelity).");
        o.AppendLine();
        foreach (var (key, value) in r.Where(kv => kv.Key.EndsWith("_error", StringComparison.Ordinal)))
            o.AppendLine($"**Stage {key[..^6]} failed:** {value}").AppendLine();
        Machine(o, r);
        Headline(o, r);
        Probe(o, r, charts);
        Paper(o, r, charts);
        Sweeps(o, r, charts);
        Prompts(o, r);
        Dense(o, r, charts);
        Fidelity(o, r);
        Preparation(o, r);
        return o.ToString();
    }

    private static void Machine(StringBuilder o, JsonObject r)
    {
        var m = r["machine"]!;
        o.AppendLine("## Machine");
        o.AppendLine();
        o.AppendLine("| | |");
        o.AppendLine("| --- | --- |");
        foreach (var (key, label) in new[] { ("cpu", "CPU"), ("logical_cores", "logical cores"), ("isa", "vector ISA"), ("memory", "memory"),
                                             ("kernel", "kernel"), ("disk", "disk (source, type, size, free)"), ("memory_limits", "memory limits"),
                                             ("page_cache_dropped_before_each_run", "page cache dropped before each run") })
            o.AppendLine($"| {label} | {m[key]} |");
        if (r["measured"] is JsonObject measured)
            o.AppendLine($"| stages measured | {string.Join("; ", measured.Select(s => $"{s.Key}: {s.Value}"))} |");
        string? build = Rows(r, "prompts").Concat(Rows(r, "dense")).Select(x => Str(x, "llama_cpp_build")).FirstOrDefault(b => b.Length > 0);
        o.AppendLine($"| llama.cpp | {(build is null ? r["peers"]!["llama.cpp"] : "build " + build)} |");
        o.AppendLine();
    }

    private static void Headline(StringBuilder o, JsonObject r)
    {
        o.AppendLine("## Headline");
        o.AppendLine();
        var paper = Rows(r, "paper");
        var naive = paper.FirstOrDefault(x => Str(x, "mode") == "naive");
        var flash = paper.LastOrDefault(x => Str(x, "mode") == "flash");
        if (naive is not null && flash is not null)
        {
            double? a = Row.Number(naive, "decode_ms_per_token"), b = Row.Number(flash, "decode_ms_per_token");
            o.AppendLine($"- **{flash["model"]} at half its size** (cgroup limit {Bytes(Row.Number(flash, "limit_bytes"))}): naive {Ms(a)} ms/token, " +
                         $"flash {Ms(b)} ms/token: **{Ratio(a, b)}** faster decoding (the paper: 4.8x on CPU for OPT-6.7B). Flash reads " +
                         $"{Bytes(Row.Number(flash, "decode_bytes_read_per_token"))} per token at {Ms(Row.Number(flash, "decode_read_mb_per_s"))} MB/s; " +
                         ProbeAtBundle(r, BundleBytes(r, Str(flash, "model")), Row.Number(flash, "decode_read_mb_per_s")) + ".");
            if (paper.FirstOrDefault(x => Str(x, "mode") == "dense") is { } dense)
                o.AppendLine($"- **{flash["model"]}, flash at half its size vs dense with all of it in DRAM**: {Ms(b)} vs " +
                             $"{Ms(Row.Number(dense, "decode_ms_per_token"))} ms/token decode: flash runs at {Ratio(Row.Number(dense, "decode_ms_per_token"), b)} dense's speed.");
        }
        var prompts = Rows(r, "prompts").Where(x => Row.Number(x, "prompt_tokens") == 38).ToList();
        var ours = prompts.FirstOrDefault(x => Str(x, "engine") == "aotflash" && Str(x, "mode") == "flash");
        foreach (var theirs in prompts.Where(x => Str(x, "engine") == "llama.cpp" && x["limit_bytes"] is not null))
        {
            o.AppendLine($"- **{theirs["model"]} inside {Bytes(Row.Number(theirs, "limit_bytes"))}**, llama.cpp {theirs["mode"]}: " +
                         (theirs["status"]!.ToString() == "ok"
                             ? $"decode {Ms(Row.Number(theirs, "decode_ms_per_token"))} ms/token vs our flash {Ms(Row.Number(ours, "decode_ms_per_token"))} " +
                               $"(**{Ratio(Row.Number(theirs, "decode_ms_per_token"), Row.Number(ours, "decode_ms_per_token"))}**); time to first token (38 tokens) " +
                               $"{Ms(Row.Number(theirs, "ttft_ms"))} ms vs {Ms(Row.Number(ours, "ttft_ms"))} ms ({Ratio(Row.Number(theirs, "ttft_ms"), Row.Number(ours, "ttft_ms"))})."
                             : $"{theirs["status"]}; our flash: decode {Ms(Row.Number(ours, "decode_ms_per_token"))} ms/token, time to first token {Ms(Row.Number(ours, "ttft_ms"))} ms."));
        }
        if (r["peers"]!["llama.cpp"]!.ToString().StartsWith("missing", StringComparison.Ordinal))
            o.AppendLine("- llama.cpp was missing, so there are no side-by-side rows (set LLAMA_CPP to a build and run again).");
        o.AppendLine();
    }

    private static void Probe(StringBuilder o, JsonObject r, string charts)
    {
        if (r["io_probe"] is null) return;
        o.AppendLine("## The disk: random reads by size and queue depth (the paper's Figure 2b)");
        o.AppendLine();
        o.AppendLine("`bench --probe-only`: O_DIRECT reads at random bundle-aligned offsets of the flash section, through the engine's own reader.");
        o.AppendLine();
        var probe = r["io_probe"]!.AsArray();
        var depths = probe.Select(p => (int)Row.Number(p, "queue_depth")!).Distinct().ToArray();
        o.AppendLine("| request | " + string.Join(" | ", depths.Select(d => $"depth {d} (MB/s)")) + " |");
        o.AppendLine("| ---: |" + string.Concat(depths.Select(_ => " ---: |")));
        foreach (var chunk in probe.Select(p => Row.Number(p, "chunk_bytes")).Distinct())
            o.AppendLine($"| {Bytes(chunk)} | " + string.Join(" | ", depths.Select(d => Ms(probe.Where(p => Row.Number(p, "chunk_bytes") == chunk && Row.Number(p, "queue_depth") == d)
                .Select(p => Row.Number(p, "mb_per_s")).FirstOrDefault()))) + " |");
        o.AppendLine();
        o.AppendLine($"![I/O probe]({charts}/io_probe.svg)");
        o.AppendLine();
    }

    private static void Paper(StringBuilder o, JsonObject r, string charts)
    {
        var rows = Rows(r, "paper");
        if (rows.Count == 0) return;
        o.AppendLine("## The paper's tables, measured");
        o.AppendLine();
        o.AppendLine("Each row is its own process under a cgroup limit of half the model file (flash mode's `--dram-budget` 16 MiB + 0.4% below it, " +
                     "room for the runtime and the kernel's page tables), page cache dropped first; 38-token prompt, 64 generated tokens, decode figures over the 63 tokens after the " +
                     "first. Command of the last row:");
        o.AppendLine();
        o.AppendLine($"    {rows[^1]["command"]}");
        o.AppendLine();
        o.AppendLine("**I/O per token (Table 2 analogue).** Naive is the paper's hybrid baseline (attention resident, the whole FFN read from flash " +
                     "each token). Bundling has no row: the model file stores each neuron's up/gate row and down column as one bundle, so every " +
                     "read is bundled.");
        o.AppendLine();
        o.AppendLine("| configuration | read per token | read MB/s | I/O ms/token | cache hits | status |");
        o.AppendLine("| --- | ---: | ---: | ---: | ---: | --- |");
        foreach (var x in rows)
            o.AppendLine($"| {Label(x)} | {Bytes(Row.Number(x, "decode_bytes_read_per_token"))} | {Ms(Row.Number(x, "decode_read_mb_per_s"))} | " +
                         $"{Ms(Row.Number(x, "decode_io_ms_per_token"))} | {Frac(Row.Number(x, "decode_cache_hit_rate"))} | {x["status"]} |");
        o.AppendLine();
        o.AppendLine("**Latency per token (Table 3 analogue)**, decode:");
        o.AppendLine();
        o.AppendLine("| configuration | ms/token | I/O | memory management | compute | accounted peak | cgroup peak | vs naive |");
        o.AppendLine("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
        double? naive = Row.Number(rows[0], "decode_ms_per_token");
        foreach (var x in rows)
            o.AppendLine($"| {Label(x)} | {Ms(Row.Number(x, "decode_ms_per_token"))} | {Ms(Row.Number(x, "decode_io_ms_per_token"))} | " +
                         $"{Ms(Row.Number(x, "decode_mem_ms_per_token"))} | {Ms(Row.Number(x, "decode_compute_ms_per_token"))} | " +
                         $"{Bytes(Row.Number(x, "accounted_peak_bytes"))} | {Bytes(Row.Number(x, "cgroup_peak_bytes"))} | {Ratio(naive, Row.Number(x, "decode_ms_per_token"))} |");
        o.AppendLine();
        o.AppendLine($"![breakdown]({charts}/breakdown.svg)");
        o.AppendLine();
    }

    private static void Sweeps(StringBuilder o, JsonObject r, string charts)
    {
        if (r["budget_sweep"] is null) return;
        o.AppendLine("## Sweeps");
        o.AppendLine();
        o.AppendLine("**DRAM budget**: flash mode inside a cgroup limit of P% of the model file, its `--dram-budget` 16 MiB + 0.4% below the limit " +
                     "(the runtime's own code, heap and stacks and the kernel's page tables are outside the engine's budget), llama.cpp, where present, with mmap inside the same limit.");
        o.AppendLine();
        Table(o, Rows(r, "budget_sweep"), ("limit", x => Bytes(Row.Number(x, "limit_bytes"))));
        o.AppendLine($"![budget sweep]({charts}/budget.svg)");
        o.AppendLine();
        o.AppendLine("**Window** (the paper's Figures 7 and 8): DRAM the engine holds vs bytes read per token, at 50%.");
        o.AppendLine();
        Table(o, Rows(r, "window_sweep"), ("window", x => x["window"]?.ToString() ?? "-"));
        o.AppendLine($"![window sweep]({charts}/window.svg)");
        o.AppendLine();
        o.AppendLine("**I/O threads** (reads in flight), at 50%.");
        o.AppendLine();
        Table(o, Rows(r, "io_threads_sweep"), ("I/O threads", x => x["io_threads"]?.ToString() ?? "-"));
    }

    private static void Prompts(StringBuilder o, JsonObject r)
    {
        if (r["prompts"] is null) return;
        o.AppendLine("## Prompt and decode, every engine");
        o.AppendLine();
        var lengths = Rows(r, "prompts").Select(x => Row.Number(x, "prompt_tokens")).OfType<double>().Distinct().Order().ToList();
        o.AppendLine($"Time to first token for prompts of {string.Join(", ", lengths)} tokens and decode over 64 generated tokens. Ours runs a prompt in " +
                     "blocks (64 tokens in dense mode until 2026-11-30, then 128, and 512 from 2026-12-02; in flash mode up to 512 as the budget allows, each layer's FFN streamed once a block); llama.cpp's figures come from `llama-bench` (its prompt test is one batch; its " +
                     "time to first token here is prompt tokens / its prompt tokens per second, model loading excluded on both sides; its generation test runs after a context of the " +
                     "prompt's length, `-d`, as ours decodes after its prompt). Dense has no limit.");
        o.AppendLine();
        Table(o, Rows(r, "prompts"), ("prompt", x => x["prompt_tokens"]?.ToString() ?? "-"));
    }

    /// <summary>slow / fast of <paramref name="key"/>: with rounds on both sides, the median of each round's own ratio
    /// (the two runs of a round are minutes apart at most) and, with more than one round, the lowest and highest of them,
    /// so that a cell near parity shows whether the rounds agree; else the ratio of the two figures.</summary>
    private static string PairedRatio(JsonNode slow, JsonNode fast, string key)
    {
        if (slow[key + "_runs"] is JsonArray a && fast[key + "_runs"] is JsonArray b && a.Count == b.Count && a.Count > 0)
        {
            var ratios = a.Zip(b, (p, q) => (double?)p?.GetValue<double>() / q?.GetValue<double>()).OfType<double>().ToArray();
            if (ratios.Length == a.Count)
                return ratios.Length == 1 ? $"{ratios[0]:F2}x" : $"{Row.MedianOf(ratios):F2}x ({ratios.Min():F2}-{ratios.Max():F2})";
        }
        return Ratio(Row.Number(slow, key), Row.Number(fast, key));
    }

    private static void Dense(StringBuilder o, JsonObject r, string charts)
    {
        var rows = Rows(r, "dense");
        if (rows.Count == 0) return;
        o.AppendLine("## Dense, side by side (110M shape, synthetic weights)");
        o.AppendLine();
        int rounds = rows.Select(x => (int?)Row.Number(x, "runs")).Min() ?? 1;
        o.AppendLine("128-token prompt, 64 generated tokens, no memory limit, ours and llama.cpp alternating run by run" +
                     (rounds > 1 ? $", each figure the median of {rounds} such rounds and each ratio the median of the rounds' own ratios, their lowest and highest in brackets (every round's figures are in the JSON: `*_runs`; the machine's speed wanders from minute to minute; reports from 2026-12-02 on alternate which engine runs first in a round)" : "") +
                     ". Prompt tokens/s = 128 / time to " +
                     "first token; decode is over the 64 tokens after the prompt's 128 on both sides (llama.cpp: `llama-bench -p 0 -n 64 -d 128`; reports " +
                     "before 2026-11-30 took its decode from an empty context, where attention reads less); start → first token: a whole `run -n 1` process " +
                     "(ours) or `llama-simple -n 1` (llama.cpp), median of 5, page cache warm.");
        o.AppendLine();
        o.AppendLine("| weights | threads | engine | decode tok/s | prompt tok/s | start → first token | decode vs llama.cpp | prompt vs llama.cpp |");
        o.AppendLine("| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: |");
        foreach (var x in rows)
        {
            var peer = Str(x, "engine") == "aotflash" ? rows.FirstOrDefault(y => Str(y, "engine") == "llama.cpp" && Str(y, "model") == Str(x, "model")
                                                                                  && Row.Number(y, "threads") == Row.Number(x, "threads")) : null;
            o.AppendLine($"| {Weights(Str(x, "model"))} | {x["threads"]} | {x["engine"]} | {Ms(PerSecond(Row.Number(x, "decode_ms_per_token")))} | " +
                         $"{Ms(PerSecond(Row.Number(x, "prompt_ms_per_token")))} | {(Row.Number(x, "start_to_first_token_ms") is { } s ? Ms(s) + " ms" : "-")} | " +
                         $"{(peer is null ? "" : PairedRatio(peer, x, "decode_ms_per_token"))} | " +
                         $"{(peer is null ? "" : PairedRatio(peer, x, "prompt_ms_per_token"))} |");
        }
        o.AppendLine();
        o.AppendLine($"![dense]({charts}/dense.svg)");
        o.AppendLine();
    }

    private static void Fidelity(StringBuilder o, JsonObject r)
    {
        var rows = Rows(r, "fidelity");
        if (rows.Count == 0) return;
        o.AppendLine("## Fidelity");
        o.AppendLine();
        o.AppendLine("`perplexity` (teacher-forced, up to 1024 tokens) on real ReLU models: each weight type's dense and flash modes against the f32 " +
                     "binary's dense next-token distributions (`--save-kl-base` / `--kl-base`); `resident-q8`/`resident-q4` quantise only the embedding and " +
                     "attention (`weights: { dtype: f32, resident: q4 }`), the FFN stays f32. `story.txt` is a TinyStories-like story (held-in " +
                     "style), `prose.txt` expository prose (held-out).");
        o.AppendLine();
        o.AppendLine("| model | text | weights | mode | tokens | perplexity | mean KL (nats) | p99 KL | top-1 agreement |");
        o.AppendLine("| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: |");
        foreach (var x in rows)
            o.AppendLine($"| {x["model"]} | {x["text"]} | {x["weights"]} | {x["mode"]} | {x["tokens_scored"]} | {F(Row.Number(x, "perplexity"), "F3")} | " +
                         $"{F(Row.Number(x, "mean_kl"), "F5")} | {F(Row.Number(x, "p99_kl"), "F4")} | {F(Row.Number(x, "top1_agreement"), "F4")} |");
        o.AppendLine();
    }

    private static void Preparation(StringBuilder o, JsonObject r)
    {
        o.AppendLine("## Models");
        o.AppendLine();
        o.AppendLine("| model | file | bundle | weights generated in | calibrated in | calibration tokens |");
        o.AppendLine("| --- | ---: | ---: | ---: | ---: | ---: |");
        foreach (var m in r["models"]!.AsArray())
            o.AppendLine($"| {m!["name"]} | {Bytes(Row.Number(m, "file_bytes"))} | {Bytes(Row.Number(m, "bundle_bytes"))} | " +
                         $"{Seconds(m["preparation"]?["generate_seconds"])} | {Seconds(m["preparation"]?["calibrate_seconds"])} | {m["preparation"]?["calibrate_tokens"]} |");
        o.AppendLine();
    }

    /// <summary>The common speed table: one row per run, with a leading column that says what varies.</summary>
    private static void Table(StringBuilder o, List<JsonNode> rows, (string Name, Func<JsonNode, string> Value) lead)
    {
        if (rows.Count == 0) return;
        o.AppendLine($"    {rows[0]["command"]}");
        o.AppendLine();
        o.AppendLine($"| {lead.Name} | engine | mode | decode ms/token | TTFT ms | read/token | accounted peak | cgroup peak | status |");
        o.AppendLine("| ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | --- |");
        foreach (var x in rows)
            o.AppendLine($"| {lead.Value(x)} | {x["engine"]} | {x["mode"]} | {Ms(Row.Number(x, "decode_ms_per_token"))} | {Ms(Row.Number(x, "ttft_ms"))} | " +
                         $"{Bytes(Row.Number(x, "decode_bytes_read_per_token"))} | {Bytes(Row.Number(x, "accounted_peak_bytes"))} | " +
                         $"{Bytes(Row.Number(x, "cgroup_peak_bytes"))} | {x["status"]}{(Str(x, "error") is { Length: > 0 } e ? ": " + e : "")} |");
        o.AppendLine();
    }

    internal static List<JsonNode> Rows(JsonObject r, string key) => r[key] is JsonArray a ? [.. a.Where(x => x is not null).Select(x => x!)] : [];

    internal static string Str(JsonNode? x, string key) => x?[key]?.ToString() ?? "";

    private static string Label(JsonNode x) => Str(x, "mode") switch
    {
        "naive" => "naive (hybrid)",
        "dense" => "dense, the whole model in DRAM (no limit)",
        _ => $"flash, predictor + window {(x["window"] is { } w ? w.ToString() : "(spec's)")}",
    };

    private static string Weights(string model) => model.Split('-')[^1] is var t && t is "q8" or "q4" or "f16" ? t : "f32";

    private static long BundleBytes(JsonObject r, string model) =>
        (long)(r["models"]!.AsArray().Where(m => Str(m, "name") == model).Select(m => Row.Number(m, "bundle_bytes")).FirstOrDefault() ?? 0);

    /// <summary>The probe's best MB/s at the smallest probed request that holds one bundle (<paramref name="bytes"/>,
    /// 4 KiB-aligned), at what size when that is not the bundle's own (the probe of an older build), and the share of
    /// it that flash decode's <paramref name="read"/> MB/s is.</summary>
    private static string ProbeAtBundle(JsonObject r, long bytes, double? read)
    {
        long aligned = (bytes + 4095) & ~4095L;
        if (r["io_probe"] is not JsonArray probe || probe.Count == 0) return $"no probe ran to compare with one bundle's read ({Bytes(aligned)})";
        var size = probe.Select(p => Row.Number(p, "chunk_bytes")).Where(c => c >= aligned).DefaultIfEmpty(probe.Max(p => Row.Number(p, "chunk_bytes"))).Min();
        double? best = probe.Where(p => Row.Number(p, "chunk_bytes") == size).Max(p => Row.Number(p, "mb_per_s"));
        string at = size == aligned ? Bytes(aligned) : $"{Bytes(aligned)}, probed at {Bytes(size)}";
        string share = read is > 0 && best is > 0 ? $", {100 * read / best:F0}% of it" : "";
        return $"the probe's best at one bundle's read ({at}) is {Ms(best)} MB/s{share}";
    }

    private static string Seconds(JsonNode? v) => v is null ? "-" : $"{v} s";

    internal static string Ms(double? v) => v is { } x ? (x >= 100 ? x.ToString("F0") : x.ToString("F1")) : "-";
    private static string F(double? v, string format) => v is { } x ? x.ToString(format) : "-";
    private static string Frac(double? v) => v is { } x ? x.ToString("F3") : "-";
    private static double? PerSecond(double? msPerToken) => msPerToken is > 0 ? 1000 / msPerToken : null;
    internal static string Ratio(double? slow, double? fast) => slow is > 0 && fast is > 0 ? $"{slow / fast:F2}x" : "-";

    internal static string Bytes(double? n) => n switch
    {
        null => "-",
        >= 1L << 30 => $"{n / (1L << 30):F2} GiB",
        >= 1L << 20 => $"{n / (1L << 20):F1} MiB",
        >= 1L << 10 => $"{n / 1024:F0} KiB",
        _ => $"{n:F0} B",
    };
}
