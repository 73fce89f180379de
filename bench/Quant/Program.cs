// f32 against q8 and q4 weights on the ReLU reference models (llama2.c checkpoints in ../shared/models): per prompt of
// ../shared/reference/<model>.greedy.jsonl the greedy tokens generated before the first divergence from f32, the mean
// KL(f32 || q) of the next-token distributions along the f32 greedy path, the model file's size, and dense decode
// tokens/s with 1 and 2 threads. Runs in one process (JIT, after warm-up), the three types interleaved so that load
// from other processes falls on all of them alike.
//   dotnet run -c Release --project bench/Quant -- [SHARED_DIR] [OUT_DIR]
using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using AotFlash.Convert;
using AotFlash.Flash;
using AotFlash.Inference;
using AotFlash.Models;
using AotFlash.Sampling;
using AotFlash.Tokenizers;

CultureInfo.DefaultThreadCurrentCulture = CultureInfo.InvariantCulture;
string shared = args.Length > 0 ? args[0] : "../shared";
string outDir = args.Length > 1 ? args[1] : "artifacts/bench/quant";
Directory.CreateDirectory(outDir);
const int SpeedTokens = 128, SpeedRepeats = 5;
string[] dtypes = ["f32", "q8", "q4"];
var models = new (string Name, string Checkpoint, string Tokenizer)[]
{
    ("stories260K-relu", "models/stories260K-relu/stories260K-relu.bin", "models/stories260K-relu/tok512.bin"),
    ("babyllama-relu", "models/babyllama-relu/babyllama-relu.bin", "models/babyllama-relu/tok105.bin"),
};

Console.WriteLine($"machine: {CpuName()}, {Environment.ProcessorCount} cores; {AotFlash.Kernels.IsaSupport.Describe()}; JIT (dotnet {Environment.Version})");
var table = new StringBuilder();
table.AppendLine("| model | weights | file bytes | greedy tokens before first divergence from f32, per prompt | mean KL(f32‖q) nats | tok/s -t 1 | tok/s -t 2 |");
table.AppendLine("| --- | --- | ---: | --- | ---: | ---: | ---: |");
foreach (var (name, checkpoint, tokenizerPath) in models)
{
    var prompts = File.ReadLines(Path.Combine(shared, "reference", name + ".greedy.jsonl")).Where(l => l.Length > 0)
        .Select(l => JsonDocument.Parse(l).RootElement.GetProperty("prompt").GetString()!).ToArray();
    var files = new Dictionary<string, string>();
    foreach (var dtype in dtypes)
    {
        string spec = dtype == "f32" ? name : name + "-" + dtype;
        files[dtype] = Path.Combine(outDir, spec + ".afm");
        var errors = ModelConverter.FromLlama2c(Info(spec), Path.Combine(shared, checkpoint), Path.Combine(shared, tokenizerPath), files[dtype], force: true);
        foreach (var e in errors)
            Console.WriteLine($"{spec,-20} {e.Kind,-16} rms relative error {e.RmsRelative * 100,6:F3}%, max abs {e.MaxAbs:E2}");
    }

    // The f32 greedy path and its distributions, then each quantised type along the same path.
    using var f32 = Load(name, files["f32"], threads: 1);
    var paths = prompts.Select(p => Greedy(f32, p)).ToArray();
    var logits = paths.Select(p => Forced(f32, p)).ToArray();
    var quality = new Dictionary<string, (int[] Agreeing, double Kl)> { ["f32"] = (paths.Select(p => p.GeneratedIds.Count).ToArray(), 0) };
    foreach (var dtype in dtypes[1..])
    {
        string spec = name + "-" + dtype;
        using var q = Load(spec, files[dtype], threads: 1);
        var agreeing = new int[prompts.Length];
        double kl = 0;
        int positions = 0;
        for (int i = 0; i < prompts.Length; i++)
        {
            var g = Greedy(q, prompts[i]);
            agreeing[i] = g.GeneratedIds.Zip(paths[i].GeneratedIds).TakeWhile(p => p.First == p.Second).Count();
            var forced = Forced(q, paths[i]);
            for (int pos = 0; pos < forced.Length; pos++, positions++) kl += Divergence.KullbackLeibler(logits[i][pos], forced[pos]);
        }
        quality[dtype] = (agreeing, kl / positions);
    }

    // Decode speed: every type and thread count once per round, the median of the rounds.
    var speeds = new Dictionary<(string, int), List<double>>();
    var runners = new Dictionary<(string, int), LoadedModel>();
    foreach (var dtype in dtypes)
        foreach (int threads in new[] { 1, 2 })
        {
            runners[(dtype, threads)] = Load(dtype == "f32" ? name : name + "-" + dtype, files[dtype], threads);
            speeds[(dtype, threads)] = [];
            Speed(runners[(dtype, threads)], prompts[0]); // warm-up: the JIT's tiers settle
        }
    for (int round = 0; round < SpeedRepeats; round++)
        foreach (var key in runners.Keys) speeds[key].Add(Speed(runners[key], prompts[0]));
    foreach (var r in runners.Values) r.Dispose();

    foreach (var dtype in dtypes)
    {
        var (agreeing, kl) = quality[dtype];
        string agreement = dtype == "f32" ? $"(f32 path: {string.Join(", ", agreeing)} tokens)" : $"{string.Join(", ", agreeing)} of {string.Join(", ", paths.Select(p => p.GeneratedIds.Count))}";
        table.AppendLine($"| {name} | {dtype} | {new FileInfo(files[dtype]).Length} | {agreement} | {(dtype == "f32" ? "0" : kl.ToString("F4"))} | " +
                         $"{Median(speeds[(dtype, 1)]):F0} | {Median(speeds[(dtype, 2)]):F0} |");
    }
}
Console.WriteLine();
Console.Write(table);
return 0;

static ModelInfo Info(string spec) => ModelCatalog.All.Single(m => m.Name == spec);

static LoadedModel Load(string spec, string path, int threads)
{
    using var file = ModelFile.Open(path);
    var model = Engine.Load(Info(spec), file, new EngineOptions { Mode = EngineMode.Dense, Threads = threads });
    var tokenizer = Llama2cTokenizer.Load(model.Weights.TokenizerData, model.Info.Shape.Vocab);
    return new LoadedModel(model, new Session(model, tokenizer, new Sampler(model.Info.Shape.Vocab, SamplerOptions.Greedy)));
}

// Greedy over the prompt to the end of the context or a stop token, as the reference files were made.
static Generation Greedy(LoadedModel m, string prompt) =>
    m.Session.Generate(m.Session.Tokenize(Encoding.UTF8.GetBytes(prompt)), -1, 0);

// The next-token logits at every position of the prompt + generated tokens (the last token is not fed: nothing follows it).
static float[][] Forced(LoadedModel m, Generation path)
{
    int[] fed = [.. path.PromptIds, .. path.GeneratedIds[..^1]];
    return [.. m.Session.Generate(fed, 0, fed.Length).Logits];
}

static double Speed(LoadedModel m, string prompt)
{
    var g = m.Session.Generate(m.Session.Tokenize(Encoding.UTF8.GetBytes(prompt)), SpeedTokens, 0);
    return 1000 / g.MsPerToken;
}

static double Median(List<double> values) => values.Order().ElementAt(values.Count / 2);

static string CpuName() => File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name"))?.Split(':')[1].Trim() ?? "unknown CPU";

sealed record LoadedModel(Transformer Model, Session Session) : IDisposable
{
    public void Dispose()
    {
        Model.Dispose();
        Model.Weights.Dispose();
    }
}
