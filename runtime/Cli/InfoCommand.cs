using System.Text;
using AotFlash.Ffn;
using AotFlash.Flash;
using AotFlash.Inference;
using AotFlash.Kernels;
using AotFlash.Sparsity;

namespace AotFlash.Cli;

/// <summary><c>info</c>: the compiled-in spec, the weight layout, and the model file if one is found.</summary>
public static class InfoCommand
{
    internal static readonly Option[] Options =
    [
        ModelLoader.ModelOption,
        new(["--tensors"], null, "list every tensor of the resident section with its offset"),
        new(["--dram-budget"], "B", "plan the memory under this budget (50% of the model file, or a size): loads the model\n" +
                                    "                             the way run would and says how it splits; fails if it does not fit"),
        new(["--io-threads"], "N", "with --dram-budget: parallel flash reads to plan for (default: the spec's)"),
    ];

    public static string Help(CliContext ctx) => CommandLine.HelpText(
        $"{ctx.ProgramName} info [--model FILE] [--tensors] [--dram-budget B]",
        "Shows the spec compiled into this binary, where every weight lives, the CPU vector path in use, and the\n" +
        "model file (given with --model or packed into the executable) with its sections and checksums.",
        Options);

    public static int Execute(CliContext ctx, string[] args)
    {
        var a = new Arguments("info", args, Options);
        a.NoPositional();
        int ioThreads = a.Int("--io-threads", 0, min: 1, max: 256);
        var m = ctx.Model;
        var s = m.Shape;
        var layout = m.Layout;
        var o = new StringBuilder();
        o.AppendLine($"model          {m.Name} (AotFlash {ProductVersion.Text})");
        o.AppendLine($"spec hash      {m.SpecHash}");
        o.AppendLine($"family         {m.FamilyName}: dim {s.Dim}, hidden {s.HiddenDim}, {s.Layers} layers, {s.Heads} heads ({s.KvHeads} kv, head size {s.HeadSize}), " +
                     $"vocab {s.Vocab}, context {s.Context}");
        string architecture = m.Family switch
        {
            ModelFamily.Opt => $"layernorm (eps {m.NormEps}), learned positions, biases, plain ffn",
            ModelFamily.Falcon => $"layernorm (eps {m.NormEps}), rope (theta {m.RopeTheta}), plain ffn beside attention",
            _ => $"rmsnorm (eps {m.NormEps}), rope (theta {m.RopeTheta}), gated ffn",
        };
        o.AppendLine($"math           {architecture}, {m.Activation}, " +
                     $"{(s.TiedEmbeddings ? "tied" : "separate")} classifier, {s.WeightsName} weights");
        o.AppendLine($"tokenizer      {m.Tokenizer.Kind}, bos {m.Tokenizer.Bos}, eos {m.Tokenizer.Eos}, stop [{string.Join(", ", m.Tokenizer.Stop)}]");
        o.AppendLine($"flash defaults window {m.Flash.Window}, predictor rank {m.Flash.PredictorRank}, {m.Flash.IoThreads} I/O threads, DRAM budget {m.Flash.DramBudget}");
        o.AppendLine($"resident       {Bytes(layout.ResidentBytes)} (embeddings, attention, norms{(s.TiedEmbeddings ? "" : ", classifier")})");
        string bundle = string.Join(" | ", layout.BundleParts.Select(p => $"{p.Tensor} {p.Kind.ToString().ToLowerInvariant()}"));
        o.AppendLine($"flash          {Bytes(layout.FlashBytes)}: {s.Layers} layers x {s.HiddenDim} neuron bundles of {layout.BundleStride} bytes " +
                     $"[{bundle}], layer stride {layout.FlashLayerBytes}");
        o.AppendLine($"kv cache       {Bytes(m.KvCacheBytes)} ({m.KvCache.ToString().ToLowerInvariant()})");
        o.AppendLine($"cpu            {IsaSupport.Describe()}, {Environment.ProcessorCount} logical cores, {Threading.CpuTopology.PhysicalCores} physical (default threads)");
        if (a.Flag("--tensors"))
            foreach (var t in layout.ResidentTensors)
                o.AppendLine($"  {t.Name,-26} offset {t.Offset,12}  [{t.Rows}, {t.Cols}] {t.Type.ToString().ToLowerInvariant()}");

        string? modelPath = a.String("--model");
        bool embedded = modelPath is null && ctx.ExecutablePath is not null && Payload.Find(ctx.ExecutablePath) is not null;
        if (modelPath is not null || embedded)
        {
            using var file = ModelLoader.Open(ctx, modelPath);
            var h = file.Header;
            o.AppendLine($"model file     {file.Source}: '{h.ModelName}', spec {h.SpecHash}" +
                         (h.SpecHash == m.SpecHash ? " (matches this binary)" : " (DOES NOT match this binary)"));
            foreach (var sec in h.Sections)
                o.AppendLine($"  {sec.Kind.ToString().ToLowerInvariant(),-10} offset {sec.Offset,12}  {Bytes(sec.Length),12}  crc32c {sec.Crc:x8}");
            if (file.Provenance() is { } provenance) o.AppendLine($"weights        {provenance}");
        }
        else
        {
            o.AppendLine("model file     none packed into this executable (use --model FILE)");
        }
        if (a.String("--dram-budget") is { } budget)
        {
            if (modelPath is null && !embedded) throw new BadInputException("--dram-budget plans a model file: pass --model FILE");
            o.Append(Plan(ctx, modelPath, budget, ioThreads));
        }
        CommandLine.Write(ctx, o.ToString());
        return 0;
    }

    /// <summary>Loads the model as <c>run</c> would under <paramref name="budget"/> and reports where the bytes go.</summary>
    private static string Plan(CliContext ctx, string? modelPath, string budget, int ioThreads)
    {
        using var file = ModelLoader.Open(ctx, modelPath);
        long runtime = ProcessMemory.Read().Resident;
        var model = Engine.Load(ctx.Model, file, new EngineOptions { DramBudget = budget, IoThreads = ioThreads, Threads = RunCommand.DefaultThreads });
        using var weights = model.Weights;
        using var _ = model;
        var s = ctx.Model.Shape;
        var layout = ctx.Model.Layout;
        var account = weights.Account;
        long kv = ctx.Model.KvCacheBytes;
        long predictors = weights.Predictors?.Bytes ?? 0;
        var o = new StringBuilder();
        o.AppendLine($"plan           {model.Mode.ToString().ToLowerInvariant()} mode fits a budget of {DramAccount.Format(account.Limit)} " +
                     $"({DramAccount.Format(file.Header.FileLength)} model file); {DramAccount.Format(account.Current)} held after loading:");
        o.AppendLine($"  resident     {DramAccount.Format(layout.ResidentBytes)} (embeddings, attention, norms; mapped)");
        if (model.Mode == EngineMode.Dense) o.AppendLine($"  flash        {DramAccount.Format(layout.FlashBytes)} (all FFN weights, mapped)");
        if (predictors > 0) o.AppendLine($"  predictors   {DramAccount.Format(predictors)}");
        o.AppendLine($"  kv cache     {DramAccount.Format(kv)}");
        long other = account.Current - layout.ResidentBytes - kv - predictors - (model.Mode == EngineMode.Dense ? layout.FlashBytes : 0);
        if (model.FfnSource is FlashFfnSource flash)
        {
            long caches = NeuronCache.BytesFor(s.HiddenDim, flash.CacheRows, layout.BundleStride) * s.Layers;
            other -= caches;
            o.AppendLine($"  neuron cache {DramAccount.Format(caches)}: {flash.CacheRows} of {s.HiddenDim} neurons per layer " +
                         $"({100.0 * flash.CacheRows / s.HiddenDim:F1}%), window {(ctx.Model.Flash.Window)} tokens");
        }
        o.AppendLine($"  other        {DramAccount.Format(other)} (I/O buffers, activations, tokenizer, indexes)");
        o.AppendLine($"outside it     the runtime: {DramAccount.Format(runtime)} before loading (code, heap), then thread stacks and " +
                     "readahead, up to about 12 MiB in all, and the kernel's page tables (8 bytes per 4 KiB page held, 0.2%): under an " +
                     "OS memory limit, give a budget 16 MiB + 0.4% below it");
        return o.ToString();
    }

    private static string Bytes(long n) => n switch
    {
        >= 1L << 30 => $"{n / (double)(1L << 30):F2} GiB",
        >= 1L << 20 => $"{n / (double)(1L << 20):F2} MiB",
        >= 1L << 10 => $"{n / 1024.0:F1} KiB",
        _ => $"{n} B",
    };
}
