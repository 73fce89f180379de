// The benchmark report: every figure of docs/benchmarks-PROFILE.md measured in one run, on this machine, with the
// command above each table; the raw rows beside it (benchmarks-PROFILE.json) and the charts in docs/charts-PROFILE/.
//   bench/report.sh [--profile quick|full] [--stages LIST] [--out DIR] [--cpu ISA]
//   bench/report.sh --render RESULTS.json [--out DIR]     (the Markdown and charts again from a run's rows)
//   bench/report.sh --add-to RESULTS.json --stages LIST   (measure some stages again, or ones a run left out, into
//                                                          an earlier run's rows; each stage says when it was measured)
// quick: the 1.1B llama shape (minutes); full: OPT-6.7B and Llama-2-7B shapes (hours, ~60 GB of disk).
// Peers are optional: LLAMA_CPP=DIR (a llama.cpp build with bin/llama-bench and bin/llama-simple) adds llama.cpp on
// the same weights (exported to GGUF); without it the report says it is missing.
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using AotFlash.Bench.Report;

CultureInfo.DefaultThreadCurrentCulture = CultureInfo.InvariantCulture;
string profile = "quick", outDir = "docs";
string? render = null, addTo = null;
// Our binaries are built for this machine's instruction set, as llama.cpp's GGML_NATIVE build is (the shipped default,
// x86-64-v3, leaves AVX-512 unused); publish.sh and bench/synthetic.sh read it from the environment.
string cpu = "native";
string[] allStages = ["probe", "paper", "sweeps", "prompts", "dense", "fidelity"];
var stages = allStages.ToHashSet();
for (int i = 0; i < args.Length; i++)
{
    switch (args[i])
    {
        case "--profile" when i + 1 < args.Length: profile = args[++i]; break;
        case "--out" when i + 1 < args.Length: outDir = args[++i]; break;
        case "--stages" when i + 1 < args.Length: stages = args[++i].Split(',').ToHashSet(); break;
        case "--render" when i + 1 < args.Length: render = args[++i]; break;
        case "--add-to" when i + 1 < args.Length: addTo = args[++i]; break;
        case "--cpu" when i + 1 < args.Length: cpu = args[++i]; break;
        default:
            Console.Error.WriteLine($"report: unknown argument '{args[i]}' (usage: bench/report.sh [--profile quick|full] [--stages LIST] [--out DIR] [--cpu ISA])");
            return 2;
    }
}
if (profile is not ("quick" or "full"))
{
    Console.Error.WriteLine($"report: unknown profile '{profile}' (quick or full)");
    return 2;
}
if (stages.Except(allStages).FirstOrDefault() is { } unknown)
{
    Console.Error.WriteLine($"report: unknown stage '{unknown}' ({string.Join(", ", allStages)})");
    return 2;
}
if (render is not null)
{
    var saved = JsonNode.Parse(File.ReadAllText(render))!.AsObject();
    Publish(saved, (string)saved["profile"]!);
    return 0;
}
bool full = profile == "full";
Environment.SetEnvironmentVariable("AOTFLASH_CPU", cpu);
Directory.CreateDirectory("artifacts/report");
var log = new Progress();
var sandbox = Sandbox.Create("aotflash-bench");
var llama = LlamaCpp.Find();
var machine = Machine.Describe(sandbox);
var results = addTo is null ? new JsonObject
{
    ["profile"] = profile,
    ["stages"] = string.Join(",", allStages.Where(stages.Contains)),
    ["started"] = DateTime.UtcNow.ToString("u"),
    ["machine"] = machine,
    ["peers"] = new JsonObject
    {
        ["llama.cpp"] = llama?.Version ?? "missing (set LLAMA_CPP to a llama.cpp build folder with bin/llama-bench)",
    },
} : JsonNode.Parse(File.ReadAllText(addTo))!.AsObject();
if ((string?)results["profile"] != profile)
{
    Console.Error.WriteLine($"report: {addTo} is of the {results["profile"]} profile, not {profile}");
    return 2;
}
if (addTo is not null)
{
    var earlier = ((string)results["stages"]!).Split(',');
    results["stages"] = string.Join(",", allStages.Where(s => stages.Contains(s) || earlier.Contains(s)));
}
var measured = results["measured"] as JsonObject ?? new JsonObject();
results["measured"] = measured;
const int Threads = 2, Decode = 64, DenseRounds = 5;
string story = Path.GetFullPath("bench/texts/story.txt"), prose = Path.GetFullPath("bench/texts/prose.txt");

var used = new List<Prepared>();
Prepared Use(Prepared m) { if (!used.Contains(m)) used.Add(m); return m; }

// Each stage's rows are saved as soon as it ends, and a stage that fails is recorded as such, not the end of the run.
void RunStage(string name, Action stage)
{
    if (!stages.Contains(name)) return;
    results.Remove(name + "_error");
    measured[name] = $"{DateTime.UtcNow:u}, commit {machine["commit"]}, ours built with publish.sh --cpu {cpu}";
    try { stage(); }
    catch (Exception e) when (e is InvalidOperationException or IOException or JsonException)
    {
        results[name + "_error"] = e.Message;
        log.Step($"stage {name} failed: {e.Message}");
    }
    // Models of an earlier run (--add-to) stay listed unless this one prepared them again.
    var models = used.Select(m => (JsonNode)new JsonObject
    {
        ["name"] = m.Name, ["file_bytes"] = m.FileBytes, ["bundle_bytes"] = m.BundleBytes, ["gguf"] = m.Gguf is null ? null : Path.GetFileName(m.Gguf),
        ["preparation"] = m.Preparation?.DeepClone(),
    }).ToList();
    var earlierModels = (results["models"] as JsonArray ?? []).Where(e => !used.Any(m => m.Name == (string?)e!["name"])).Select(e => e!.DeepClone());
    results["models"] = new JsonArray([.. earlierModels, .. models]);
    Directory.CreateDirectory("artifacts/report");
    File.WriteAllText("artifacts/report/results.json", results.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
}

// 1. Models: synthetic weights of real shapes (and their GGUF for llama.cpp), and the real small ReLU models.
log.Stage("models");
// 7B shapes calibrate on 512 tokens: recording takes about a second a token there, and training grows with the tokens.
var paperModel = new Lazy<Prepared>(() => Use(full
    ? Models.Synthetic("modelspecs/synthetic-opt-6.7b.yaml", null, llama, log, calibrationTokens: 512)
    : Models.Synthetic("modelspecs/synthetic-1b-fatrelu.yaml", null, llama, log)));
var llamaModel = new Lazy<Prepared>(() => full ? Use(Models.Synthetic("modelspecs/synthetic-llama2-7b.yaml", null, llama, log, calibrationTokens: 512)) : paperModel.Value);

// 2. The disk: random O_DIRECT reads by size and queue depth (the paper's Figure 2b).
RunStage("probe", () =>
{
    log.Stage("I/O probe");
    results["io_probe"] = Ours.Probe(sandbox, paperModel.Value);
});

// 3. The paper's setting: naive vs flash at half the model's size, and what each technique adds (Tables 2 and 3); dense
// with the whole model in DRAM (no limit) is the line flash mode means to beat.
long Half(Prepared m) => m.FileBytes / 2;
var fixedPrompt = new Workload(prose, 38, Decode);
RunStage("paper", () =>
{
    log.Stage("the paper's tables");
    var paper = paperModel.Value;
    var paperRows = new JsonArray();
    foreach (var (mode, window) in new (string, int?)[] { ("naive", null), ("flash", 1), ("flash", null) })
    {
        log.Step($"{paper.Name}: {mode}{(window is null ? "" : $" window {window}")} at 50%");
        paperRows.Add(Ours.Bench(sandbox, paper, mode, fixedPrompt, Half(paper), Threads, budget: mode == "flash" ? "50%" : null, window: window));
    }
    log.Step($"{paper.Name}: dense, no limit");
    paperRows.Add(Ours.Bench(sandbox, paper, "dense", fixedPrompt, null, Threads));
    results["paper"] = paperRows;
});

// 4. Sweeps on the paper model: DRAM budget, window, I/O threads.
RunStage("sweeps", () =>
{
    log.Stage("sweeps");
    var paper = paperModel.Value;
    var budgetRows = new JsonArray();
    foreach (int percent in full ? new[] { 30, 40, 50, 60, 70, 80, 100 } : [40, 50, 60, 80, 100])
    {
        log.Step($"{paper.Name}: flash at {percent}%");
        budgetRows.Add(Ours.Bench(sandbox, paper, "flash", fixedPrompt, paper.FileBytes * percent / 100, Threads, budget: $"{percent}%"));
        if (llama is null || paper.Gguf is null) continue;
        log.Step($"{paper.Name}: llama.cpp (mmap) at {percent}%");
        budgetRows.Add(llama.Bench(sandbox, paper, "mmap", 38, Decode, paper.FileBytes * percent / 100, Threads));
    }
    results["budget_sweep"] = budgetRows;
    var windowRows = new JsonArray();
    foreach (int window in new[] { 1, 2, 3, 5, 8 })
    {
        log.Step($"{paper.Name}: flash window {window}");
        windowRows.Add(Ours.Bench(sandbox, paper, "flash", fixedPrompt, Half(paper), Threads, budget: "50%", window: window));
    }
    results["window_sweep"] = windowRows;
    var ioRows = new JsonArray();
    foreach (int io in new[] { 1, 4, 16, 32, 64 })
    {
        log.Step($"{paper.Name}: flash with {io} I/O threads");
        ioRows.Add(Ours.Bench(sandbox, paper, "flash", fixedPrompt, Half(paper), Threads, budget: "50%", ioThreads: io));
    }
    results["io_threads_sweep"] = ioRows;
});

// 5. The case this project exists for: the Llama shape inside half its size, every engine, prompts of 38, 128, 512.
// The 7B shape leaves out 512: flash mode's FFN runs a prompt one token at a time (about a second each there), so
// those rows alone would take most of an hour; the quick profile measures 512 on the 1.1B shape.
RunStage("prompts", () =>
{
    log.Stage("prompts, every engine");
    var llamaShape = llamaModel.Value;
    var promptRows = new JsonArray();
    foreach (int tokens in full ? new[] { 38, 128 } : [38, 128, 512])
    {
        var work = new Workload(prose, tokens, Decode);
        log.Step($"{llamaShape.Name}: flash, {tokens}-token prompt, at 50%");
        promptRows.Add(Ours.Bench(sandbox, llamaShape, "flash", work, Half(llamaShape), Threads, budget: "50%"));
        log.Step($"{llamaShape.Name}: dense, {tokens}-token prompt, unlimited");
        promptRows.Add(Ours.Bench(sandbox, llamaShape, "dense", work, null, Threads));
        if (llama is null || llamaShape.Gguf is null) continue;
        foreach (var load in new[] { "mmap", "none" })
        {
            log.Step($"{llamaShape.Name}: llama.cpp ({load}), {tokens}-token prompt, at 50%");
            promptRows.Add(llama.Bench(sandbox, llamaShape, load, tokens, Decode, Half(llamaShape), Threads));
        }
        log.Step($"{llamaShape.Name}: llama.cpp, {tokens}-token prompt, unlimited");
        promptRows.Add(llama.Bench(sandbox, llamaShape, "mmap", tokens, Decode, null, Threads));
    }
    results["prompts"] = promptRows;
});

// 6. Dense side by side on the 110M shape, every weight type, 1 and 2 threads, interleaved run by run, each pair of
// runs DenseRounds times, the engine that runs first alternating round by round: the machine's speed wanders by 5-20%
// from minute to minute, more than one run apart can tell, and a cell near parity moved by 0.1-0.3 between reports of
// three rounds each.
RunStage("dense", () =>
{
    log.Stage("dense side by side");
    var denseRows = new JsonArray();
    var denseModels = new[] { "f32", "f16", "q8", "q4" }.Select(t => Use(Models.Synthetic("modelspecs/stories110M.yaml", t, llama, log, calibrate: false))).ToArray();
    var denseWork = new Workload(prose, 128, Decode);
    string[] medianOf = ["decode_ms_per_token", "ttft_ms", "prompt_ms_per_token"];
    foreach (int threads in new[] { 1, 2 })
    foreach (var model in denseModels)
    {
        log.Step($"{model.Name}: dense, {threads} thread(s), {DenseRounds} rounds");
        List<JsonObject> ours = [], theirs = [];
        for (int round = 0; round < DenseRounds; round++)
        {
            bool peer = llama is not null && model.Gguf is not null;
            if (peer && round % 2 == 1) theirs.Add(llama!.Bench(sandbox, model, "mmap", 128, Decode, null, threads));
            ours.Add(Ours.Bench(sandbox, model, "dense", denseWork, null, threads));
            if (peer && round % 2 == 0) theirs.Add(llama!.Bench(sandbox, model, "mmap", 128, Decode, null, threads));
        }
        var row = Row.Median(ours, medianOf);
        row["start_to_first_token_ms"] = threads == 1 ? Math.Round(Ours.StartToFirstToken(model, threads), 1) : null;
        denseRows.Add(row);
        if (theirs.Count == 0) continue;
        row = Row.Median(theirs, medianOf);
        row["start_to_first_token_ms"] = threads == 1 ? Math.Round(llama!.StartToFirstToken(model), 1) : null;
        denseRows.Add(row);
    }
    results["dense"] = denseRows;
});

// 7. Fidelity: perplexity and KL against dense f32, for flash mode, q8/q4, and q8/q4 resident matrices with an f32 FFN
// (weights: { resident: ... }), on the real ReLU models.
RunStage("fidelity", () =>
{
    log.Stage("fidelity");
    var fidelityRows = new JsonArray();
    foreach (var name in full ? new[] { "stories260K-relu", "babyllama-relu" } : ["stories260K-relu"])
    foreach (var text in new[] { story, prose })
    {
        var f32 = Models.Reference(name, null, log);
        string klBase = Path.Combine("artifacts/report", $"{name}-{Path.GetFileNameWithoutExtension(text)}.klbase");
        log.Step($"{name}: perplexity of {Path.GetFileName(text)}, f32 dense and flash");
        foreach (var row in Ours.Perplexity(f32, text, "dense,flash", null, klBase, 1024)) fidelityRows.Add(row.Tagged("f32"));
        foreach (var dtype in new[] { "q8", "q4", "resident-q8", "resident-q4" })
        {
            log.Step($"{name}: perplexity of {Path.GetFileName(text)}, {dtype} dense and flash");
            foreach (var row in Ours.Perplexity(Models.Reference(name, dtype, log), text, "dense,flash", klBase, null, 1024)) fidelityRows.Add(row.Tagged(dtype));
        }
    }
    results["fidelity"] = fidelityRows;
});

results["finished"] = DateTime.UtcNow.ToString("u");

File.WriteAllText("artifacts/report/results.json", results.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
Publish(results, profile);
log.Stage($"wrote {outDir}/benchmarks-{profile}.md, its JSON and charts");
return 0;

// docs/benchmarks-PROFILE.md, .json and charts-PROFILE/ from a run's rows.
void Publish(JsonObject rows, string name)
{
    string charts = Path.Combine(outDir, $"charts-{name}");
    Directory.CreateDirectory(charts);
    File.WriteAllText(Path.Combine(outDir, $"benchmarks-{name}.json"), rows.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
    Charts.Write(rows, charts);
    File.WriteAllText(Path.Combine(outDir, $"benchmarks-{name}.md"), Markdown.Write(rows, $"charts-{name}"));
}
