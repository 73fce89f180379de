using System.Text;
using AotFlash.Flash;
using AotFlash.Kernels;

namespace AotFlash.Cli;

/// <summary><c>info</c>: the compiled-in spec, the weight layout, and the model file if one is found.</summary>
public static class InfoCommand
{
    private static readonly Option[] Options =
    [
        ModelLoader.ModelOption,
        new(["--tensors"], null, "list every tensor of the resident section with its offset"),
    ];

    public static string Help(CliContext ctx) => CommandLine.HelpText(
        $"{ctx.ProgramName} info [--model FILE] [--tensors]",
        "Shows the spec compiled into this binary, where every weight lives, the CPU vector path in use, and the\n" +
        "model file (given with --model or packed into the executable) with its sections and checksums.",
        Options);

    public static int Execute(CliContext ctx, string[] args)
    {
        var a = new Arguments("info", args, Options);
        a.NoPositional();
        var m = ctx.Model;
        var s = m.Shape;
        var layout = m.Layout;
        var o = new StringBuilder();
        o.AppendLine($"model          {m.Name} (AotFlash {CommandLine.Version})");
        o.AppendLine($"spec hash      {m.SpecHash}");
        o.AppendLine($"family         {m.Family}: dim {s.Dim}, hidden {s.HiddenDim}, {s.Layers} layers, {s.Heads} heads ({s.KvHeads} kv, head size {s.HeadSize}), " +
                     $"vocab {s.Vocab}, context {s.Context}");
        o.AppendLine($"math           rmsnorm (eps {m.NormEps}), rope (theta {m.RopeTheta}), gated ffn, {m.Activation}, " +
                     $"{(s.TiedEmbeddings ? "tied" : "separate")} classifier, {s.Weights.ToString().ToLowerInvariant()} weights");
        o.AppendLine($"tokenizer      {m.Tokenizer.Kind}, bos {m.Tokenizer.Bos}, eos {m.Tokenizer.Eos}, stop [{string.Join(", ", m.Tokenizer.Stop)}]");
        o.AppendLine($"flash defaults window {m.Flash.Window}, predictor rank {m.Flash.PredictorRank}, {m.Flash.IoThreads} I/O threads, DRAM budget {m.Flash.DramBudget}");
        o.AppendLine($"resident       {Bytes(layout.ResidentBytes)} (embeddings, attention, norms{(s.TiedEmbeddings ? "" : ", classifier")})");
        o.AppendLine($"flash          {Bytes(layout.FlashBytes)}: {s.Layers} layers x {s.HiddenDim} neuron bundles of {layout.BundleStride} bytes " +
                     $"[gate row | up row | down column], layer stride {layout.FlashLayerBytes}");
        o.AppendLine($"kv cache       {Bytes(2L * s.Layers * s.Context * s.KvDim * 4)} (f32)");
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
        }
        else
        {
            o.AppendLine("model file     none packed into this executable (use --model FILE)");
        }
        CommandLine.Write(ctx, o.ToString());
        return 0;
    }

    private static string Bytes(long n) => n switch
    {
        >= 1L << 30 => $"{n / (double)(1L << 30):F2} GiB",
        >= 1L << 20 => $"{n / (double)(1L << 20):F2} MiB",
        >= 1L << 10 => $"{n / 1024.0:F1} KiB",
        _ => $"{n} B",
    };
}
