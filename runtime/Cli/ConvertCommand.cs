using System.Globalization;
using AotFlash.Convert;
using AotFlash.Inference;
using AotFlash.Tokenizers;

namespace AotFlash.Cli;

/// <summary><c>convert</c>: a llama2.c checkpoint or a Hugging Face folder → model file for this binary's spec; or,
/// with <c>--emit-spec</c>, a spec for a Hugging Face folder.</summary>
public static class ConvertCommand
{
    internal static readonly Option[] Options =
    [
        new(["-w", "--weights"], "FILE", "llama2.c checkpoint (.bin, format v0 or v1, float32)"),
        new(["--hf"], "DIR", "Hugging Face folder: config.json + model.safetensors or a sharded model.safetensors.index.json " +
                             "(LlamaForCausalLM, OPTForCausalLM, FalconForCausalLM; f32, f16 or bf16)"),
        new(["--gguf"], "FILE", "GGUF file of llama.cpp's llama architecture (F32, F16, Q8_0, Q4_0 tensors; its vocabulary " +
                                "becomes the tokenizer); where the spec's type matches a tensor's, its rows are copied bit for bit"),
        new(["--synthetic"], "SEED", "no checkpoint: SYNTHETIC weights of the spec's shape, deterministic by SEED, with sparse, " +
                                     "predictable FFN activations (for speed measurements; the file says so wherever it is used)"),
        new(["-k", "--tokenizer"], "FILE", "llama2c tokenizer: tokenizer.bin, a SentencePiece .model or a Llama tokenizer.json (default with --hf: " +
                                           "the folder's tokenizer.model, else its tokenizer.json; with --gguf: the file's vocabulary); gpt2 tokenizer: tokenizer.json, or a folder with tokenizer.json or " +
                                           "vocab.json + merges.txt (default: the --hf folder)"),
        new(["-o", "--output"], "FILE", "model file to write (.afm)"),
        new(["--dtype"], "TYPE", "f32, f16, q8 or q4: check that this binary stores its weights so (the spec decides)"),
        new(["--emit-spec"], "FILE", "with --hf or --gguf: write a model spec (YAML) for the model instead of converting; publish.sh builds it"),
        new(["--name"], "NAME", "with --emit-spec: the model's name (default: the folder's or file's name)"),
        new(["--force"], null, "overwrite the output if it exists"),
    ];

    public static string Help(CliContext ctx) => CommandLine.HelpText(
        $"{ctx.ProgramName} convert (--weights CKPT | --hf DIR | --gguf FILE | --synthetic SEED) [--tokenizer TOK] -o MODEL.afm [--dtype TYPE] [--force]\n" +
        $"       {ctx.ProgramName} convert (--hf DIR | --gguf FILE) --emit-spec SPEC.yaml [--name NAME] [--force]",
        $"Converts a checkpoint into a model file for '{ctx.Model.Name}' ({ctx.Model.Shape.WeightsName} weights):\n" +
        "resident section (embeddings, attention, norms), tokenizer, and the flash section of FFN neuron bundles.\n" +
        "The checkpoint must have the spec's shape. The file is written atomically (never half a file).\n" +
        "The weight types are compiled in from the spec's weights: { dtype: ..., resident: ... } (the FFN's, and the\n" +
        "embeddings' and attention's); q8 and q4 quantise each row in groups of 32 with a half-precision scale per group,\n" +
        "and convert prints each tensor kind's rounding error.\n" +
        "With --emit-spec, writes the spec of a Hugging Face folder or GGUF file, so that './publish.sh SPEC.yaml --weights DIR|FILE'\n" +
        "builds its binary. A GGUF file does not say its FFN activation: the spec's applies (the emitted spec says silu, llama.cpp's).\n" +
        "From GGUF, Q8_0 and Q4_0 quants are copied where the spec's type matches, except the FFN's down columns, which the model\n" +
        "file quantises along the other axis (their error is printed).\n" +
        "With --synthetic, no checkpoint is read: the weights are generated tensor by tensor straight into the file (no\n" +
        "full-size intermediate). They are random except for the FFN, whose neurons fire sparsely (~3% with a gate bias, like\n" +
        "OPT; ~10% under fatrelu, like a ReLU Llama), with hot neurons, clusters that fire together, and gates a low-rank\n" +
        "predictor can learn; they measure speed, not quality.",
        Options);

    public static int Execute(CliContext ctx, string[] args)
    {
        var a = new Arguments("convert", args, Options);
        a.NoPositional();
        string? weights = a.String("--weights"), hf = a.String("--hf"), gguf = a.String("--gguf"), tokenizer = a.String("--tokenizer"),
            synthetic = a.String("--synthetic");
        bool force = a.Flag("--force");
        if ((weights is null ? 0 : 1) + (hf is null ? 0 : 1) + (gguf is null ? 0 : 1) + (synthetic is null ? 0 : 1) != 1)
            throw new BadInputException("convert needs one of --weights CKPT, --hf DIR, --gguf FILE and --synthetic SEED");
        if (a.String("--emit-spec") is { } specPath)
        {
            if (hf is null && gguf is null) throw new BadInputException("--emit-spec needs --hf DIR or --gguf FILE");
            EmitSpec(ctx, hf, gguf, specPath, a.String("--name"), force);
            return 0;
        }
        string output = a.String("--output") ?? throw new BadInputException("convert needs -o MODEL.afm");
        string dtype = ctx.Model.Shape.Weights.ToString().ToLowerInvariant();
        if (a.String("--dtype") is { } asked && asked != dtype)
            throw new BadInputException(asked is "f32" or "f16" or "q8" or "q4"
                ? $"convert --dtype {asked}: this binary's spec '{ctx.Model.Name}' stores {dtype} weights; the layout is compiled in, " +
                  $"so build a binary from a spec with weights: {{ dtype: {asked} }}"
                : $"convert --dtype {asked}: unknown weight type (f32, f16, q8 or q4)");
        void Progress(string step) => ctx.Stderr.WriteLine($"convert: {step}");
        IReadOnlyList<ConversionError> errors;
        if (weights is not null)
        {
            errors = ModelConverter.FromLlama2c(ctx.Model, weights, tokenizer ?? throw new BadInputException("convert needs --tokenizer TOK"),
                output, force, Progress);
        }
        else if (synthetic is not null)
        {
            if (!ulong.TryParse(synthetic, NumberStyles.None, CultureInfo.InvariantCulture, out ulong seed))
                throw new BadInputException($"--synthetic {synthetic}: the seed is a whole number");
            byte[] tokenizerSection = BuildTokenizerSection(ctx.Model, null,
                tokenizer ?? throw new BadInputException("convert --synthetic needs --tokenizer TOK (prompts are still tokenized)"));
            using var source = new SyntheticWeights(ctx.Model, seed);
            if (!source.ControlsSparsity)
                ctx.Stderr.WriteLine($"convert: warning: activation {ctx.Model.Activation} without a gate bias: the synthetic FFN is not sparse " +
                                     "(use relu with a bias, as OPT has, or fatrelu(t))");
            errors = ModelConverter.Write(ctx.Model, source, $"synthetic weights (seed {seed})", tokenizerSection, output, force, [tokenizer], Progress);
        }
        else if (gguf is not null)
        {
            if (ctx.Model.Tokenizer.Kind != TokenizerKind.Llama2c)
                throw new BadInputException($"convert --gguf reads a llama (SentencePiece) vocabulary, and spec '{ctx.Model.Name}' has a {ctx.Model.Tokenizer.Kind} tokenizer");
            using var checkpoint = GgufCheckpoint.Open(gguf);
            checkpoint.CheckFits(ctx.Model);
            byte[] tokenizerSection = tokenizer is null
                ? checkpoint.Llama2cTokenizer(ctx.Model.Shape.Vocab)
                : ModelConverter.ReadLlama2cTokenizer(tokenizer, ctx.Model);
            errors = ModelConverter.Write(ctx.Model, checkpoint, gguf, tokenizerSection, output, force,
                tokenizer is null ? [gguf] : [gguf, tokenizer], Progress);
        }
        else
        {
            using var checkpoint = HfCheckpoint.Open(hf!);
            checkpoint.CheckFits(ctx.Model);
            byte[] tokenizerSection = BuildTokenizerSection(ctx.Model, hf!, tokenizer);
            string[] inputs = [.. Directory.GetFiles(hf!), .. tokenizer is null ? Array.Empty<string>() : [tokenizer]];
            errors = ModelConverter.Write(ctx.Model, checkpoint, hf!, tokenizerSection, output, force, inputs, Progress);
        }
        foreach (var e in errors)
            ctx.Stderr.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"convert: {e.Type.ToString().ToLowerInvariant()} error {e.Kind,-15} rms relative {e.RmsRelative * 100,7:F3}%, max abs {e.MaxAbs:E2} ({e.Weights} weights)"));
        ctx.Stderr.WriteLine($"convert: wrote {output} ({new FileInfo(output).Length} bytes)");
        return 0;
    }

    /// <summary>The tokenizer section for the spec's tokenizer kind, from <paramref name="tokenizer"/> or else the
    /// Hugging Face <paramref name="folder"/>'s files (one of the two is given).</summary>
    private static byte[] BuildTokenizerSection(ModelInfo model, string? folder, string? tokenizer) => model.Tokenizer.Kind switch
    {
        TokenizerKind.Llama2c => ModelConverter.ReadLlama2cTokenizer(tokenizer ?? (File.Exists(Path.Combine(folder!, "tokenizer.model"))
                ? Path.Combine(folder!, "tokenizer.model")
                : File.Exists(Path.Combine(folder!, "tokenizer.json")) ? Path.Combine(folder!, "tokenizer.json")
                : throw new BadInputException($"{folder}: has neither tokenizer.model nor tokenizer.json; pass --tokenizer tokenizer.bin (or a SentencePiece .model)")),
            model),
        TokenizerKind.Gpt2 => Directory.Exists(tokenizer) ? Gpt2Section(model, tokenizer, null) : Gpt2Section(model, folder, tokenizer),
        var kind => throw new InvalidOperationException($"no converter for tokenizer kind '{kind}'"),
    };

    /// <summary>A GPT-2 byte-level BPE tokenizer from --tokenizer (tokenizer.json) when given, else from the folder's
    /// tokenizer.json, else from its vocab.json + merges.txt; serialised for the model file.</summary>
    private static byte[] Gpt2Section(ModelInfo model, string? folder, string? tokenizer)
    {
        string json = tokenizer ?? Path.Combine(folder!, "tokenizer.json");
        bool fromJson = tokenizer is not null || File.Exists(json);
        string source = fromJson ? json : Path.Combine(folder!, "vocab.json");
        try
        {
            Gpt2BpeTokenizer bpe;
            if (fromJson) bpe = Gpt2BpeTokenizer.FromTokenizerJson(ModelConverter.ReadFile(json, "tokenizer"));
            else if (Path.Combine(folder!, "merges.txt") is var merges && File.Exists(source) && File.Exists(merges))
                bpe = Gpt2BpeTokenizer.FromVocabAndMerges(ModelConverter.ReadFile(source, "vocabulary"), ModelConverter.ReadFile(merges, "merges"));
            else throw new BadInputException($"{folder}: has neither tokenizer.json nor vocab.json + merges.txt; pass --tokenizer tokenizer.json");
            if (bpe.VocabSize > model.Shape.Vocab)
                throw new BadInputException($"{source}: the tokenizer has {bpe.VocabSize} tokens, more than the model's vocabulary of {model.Shape.Vocab}");
            return bpe.Serialize();
        }
        catch (InvalidDataException e)
        {
            throw new BadInputException($"{source}: {e.Message}");
        }
    }

    private static void EmitSpec(CliContext ctx, string? folder, string? gguf, string specPath, string? name, bool force)
    {
        HfConfig config;
        string? chatTemplate;
        if (gguf is not null)
        {
            using var file = GgufCheckpoint.Open(gguf);
            config = file.Config;
            chatTemplate = file.ChatTemplate;
        }
        else
        {
            config = HfCheckpoint.ReadConfig(Path.Combine(folder!, "config.json"));
            chatTemplate = HfCheckpoint.ReadChatTemplate(folder!);
        }
        name ??= gguf is not null ? Path.GetFileNameWithoutExtension(gguf) : Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(folder!)));
        if (!force && File.Exists(specPath)) throw new BadInputException($"{specPath} already exists (use --force to overwrite it)");
        string yaml = HfCheckpoint.SpecYaml(config, name, gguf ?? Path.Combine(folder!, "config.json"),
            config.Family == Flash.ModelFamily.Llama ? TokenizerKind.Llama2c : TokenizerKind.Gpt2, chatTemplate);
        if (gguf is not null)
            yaml = yaml.Replace("activation: silu\n", "activation: silu  # GGUF does not record it; llama.cpp runs its llama architecture with silu\n");
        try { File.WriteAllText(specPath, yaml); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        { throw new BadInputException($"{specPath}: cannot write ({e.Message})"); }
        ctx.Stderr.WriteLine($"convert: wrote spec {specPath} for {config.Architecture} ({config.Layers} layers, dim {config.Dim})");
    }
}
