using System.Diagnostics;
using System.Text.Json.Nodes;

namespace AotFlash.Bench.Report;

/// <summary>Builds what the report measures, once (later runs reuse artifacts/): synthetic models through
/// bench/synthetic.sh, their GGUF through our <c>export</c>, and the real small ReLU models through publish.sh.</summary>
public static class Models
{
    /// <param name="dtype">Another weight type than the spec's (a derived spec), or null.</param>
    /// <param name="calibrate">Train flash-mode predictors (ReLU-family specs); dense-only models skip it.</param>
    /// <param name="calibrationTokens">Tokens the predictors are trained on (a 7B shape takes about a second each, and
    /// training grows with them).</param>
    public static Prepared Synthetic(string spec, string? dtype, LlamaCpp? llama, Progress log, bool calibrate = true, int calibrationTokens = 1024)
    {
        var args = new List<string> { "bench/synthetic.sh", spec, "--calibrate-tokens", calibrationTokens.ToString(System.Globalization.CultureInfo.InvariantCulture) };
        if (dtype is not null) args.AddRange(["--dtype", dtype]);
        if (!calibrate) args.Add("--no-calibrate");
        log.Step($"preparing {Path.GetFileNameWithoutExtension(spec)}{(dtype is null ? "" : " " + dtype)} (bench/synthetic.sh)");
        var run = Script(args);
        var last = run.Stdout.Trim().Split('\n')[^1].Split(' ');
        string binary = last[0], model = last[1];
        JsonObject? preparation = File.Exists(model + ".prepared") ? JsonNode.Parse(File.ReadAllText(model + ".prepared"))!.AsObject() : null;
        string name = Path.GetFileNameWithoutExtension(model);
        string? gguf = null;
        if (llama is not null && IsLlama(binary))
        {
            gguf = Path.ChangeExtension(model, ".gguf");
            if (!File.Exists(gguf))
            {
                log.Step($"exporting {name} to GGUF for llama.cpp");
                var export = Processes.Run([binary, "export", "--model", model, "-o", gguf]);
                if (export.ExitCode != 0) throw new InvalidOperationException($"export of {name} failed: {export.Stderr.Trim()}");
            }
        }
        return new Prepared(name, binary, model, new FileInfo(model).Length, gguf, preparation, BundleBytes(binary));
    }

    /// <summary>A real ReLU model (stories260K-relu, babyllama-relu) published from its llama2.c checkpoint, f32 from
    /// modelspecs/ or q8/q4 from tests/specs/; publish.sh calibrates it.</summary>
    public static Prepared Reference(string name, string? dtype, Progress log)
    {
        string spec = dtype is null ? $"modelspecs/{name}.yaml" : $"tests/specs/{name}-{dtype}.yaml";
        string specName = Path.GetFileNameWithoutExtension(spec);
        string shared = Environment.GetEnvironmentVariable("SHARED") ?? "../shared";
        var (weights, tokenizer) = name switch
        {
            "stories260K-relu" => ("modelspecs/stories260K-relu/model.bin", "modelspecs/stories260K-relu/tokenizer.bin"),
            "babyllama-relu" => (Path.Combine(shared, "models/babyllama-relu/babyllama-relu.bin"), Path.Combine(shared, "models/babyllama-relu/tok105.bin")),
            _ => throw new InvalidOperationException($"no reference checkpoint is known for {name}"),
        };
        string binary = $"artifacts/{specName}/{specName}", model = $"artifacts/{specName}/{specName}.afm";
        if (!File.Exists(model) || IsStale(binary))
        {
            log.Step($"publishing {specName}");
            Script(["./publish.sh", spec, "--weights", weights, "--tokenizer", tokenizer]);
        }
        return new Prepared(specName, binary, model, new FileInfo(model).Length, null, null, BundleBytes(binary));
    }

    /// <summary>Whether a source file of the engine is newer than <paramref name="binary"/> (built before the last
    /// change, it may lack what the report asks of it), or it was built for another instruction set than
    /// $AOTFLASH_CPU (publish.sh's --cpu) asks.</summary>
    private static bool IsStale(string binary)
    {
        if (!File.Exists(binary)) return true;
        string stamp = Path.Combine(Path.GetDirectoryName(binary)!, "build", "cpu");
        string cpu = Environment.GetEnvironmentVariable("AOTFLASH_CPU") is { Length: > 0 } asked ? asked : "default";
        if (!File.Exists(stamp) || File.ReadAllText(stamp).Trim() != cpu) return true;
        var built = File.GetLastWriteTimeUtc(binary);
        return new[] { "runtime", "generator", "host" }.SelectMany(d => Directory.EnumerateFiles(d, "*.cs*", SearchOption.AllDirectories))
            .Where(f => !f.Contains("/obj/", StringComparison.Ordinal) && !f.Contains("/bin/", StringComparison.Ordinal))
            .Any(f => File.GetLastWriteTimeUtc(f) > built);
    }

    /// <summary>One neuron bundle's bytes, as <c>info</c> gives it ("neuron bundles of 12288 bytes").</summary>
    private static long BundleBytes(string binary)
    {
        var match = System.Text.RegularExpressions.Regex.Match(Processes.Run([binary, "info"]).Stdout, @"neuron bundles of (\d+) bytes");
        return match.Success ? long.Parse(match.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture) : 0;
    }

    private static bool IsLlama(string binary) =>
        System.Text.RegularExpressions.Regex.IsMatch(Processes.Run([binary, "info"]).Stdout, @"^family\s+llama:", System.Text.RegularExpressions.RegexOptions.Multiline);

    /// <summary>A build or preparation script; its progress goes to our stderr as it comes.</summary>
    private static RunResult Script(IReadOnlyList<string> args)
    {
        var start = new ProcessStartInfo(args[0]) { RedirectStandardOutput = true, RedirectStandardError = false };
        foreach (var a in args.Skip(1)) start.ArgumentList.Add(a);
        var clock = Stopwatch.StartNew();
        using var p = Process.Start(start)!;
        string stdout = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        if (p.ExitCode != 0) throw new InvalidOperationException($"{string.Join(' ', args)} failed (exit {p.ExitCode})");
        return new RunResult(string.Join(' ', args), 0, stdout, "", clock.Elapsed.TotalSeconds, null, null, false, false);
    }
}

/// <summary>What the figures were measured on.</summary>
public static class Machine
{
    public static JsonObject Describe(Sandbox sandbox)
    {
        string cpuinfo = File.ReadAllText("/proc/cpuinfo");
        string Field(string name) => cpuinfo.Split('\n').FirstOrDefault(l => l.StartsWith(name, StringComparison.Ordinal))?.Split(':', 2)[1].Trim() ?? "?";
        var flags = Field("flags").Split(' ');
        string[] isa = [.. new[] { "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512_vnni", "avx512_fp16", "asimd", "asimddp" }.Where(flags.Contains)];
        string memTotal = File.ReadLines("/proc/meminfo").First(l => l.StartsWith("MemTotal", StringComparison.Ordinal)).Split(':')[1].Trim();
        var df = Processes.Run(["df", "-h", "--output=source,fstype,size,avail", "artifacts"]).Stdout.Trim().Split('\n')[^1];
        return new JsonObject
        {
            ["cpu"] = Field("model name"),
            ["logical_cores"] = Environment.ProcessorCount,
            ["isa"] = string.Join(", ", isa),
            ["memory"] = memTotal,
            ["kernel"] = File.ReadAllText("/proc/sys/kernel/osrelease").Trim(),
            ["disk"] = System.Text.RegularExpressions.Regex.Replace(df, @"\s+", " "),
            ["memory_limits"] = sandbox.Description,
            ["page_cache_dropped_before_each_run"] = Sandbox.DropPageCache(),
            ["commit"] = Processes.Run(["git", "rev-parse", "--short", "HEAD"]).Stdout.Trim(),
        };
    }
}

/// <summary>Progress of a long run on stderr, with the time since the start.</summary>
public sealed class Progress
{
    private readonly Stopwatch _clock = Stopwatch.StartNew();

    public void Stage(string name) => Console.Error.WriteLine($"report [{_clock.Elapsed:hh\\:mm\\:ss}] == {name}");

    public void Step(string what) => Console.Error.WriteLine($"report [{_clock.Elapsed:hh\\:mm\\:ss}]    {what}");
}

public static class JsonRows
{
    /// <summary>The row with the weight type it was measured with.</summary>
    public static JsonObject Tagged(this JsonObject row, string weights)
    {
        row["weights"] = weights;
        return row;
    }
}
