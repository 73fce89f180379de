using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text;
using AotFlash.Flash;
using AotFlash.Inference;
using AotFlash.Kernels;

namespace AotFlash.Convert;

/// <summary>
/// A GGUF file of llama.cpp's <c>llama</c> architecture read as an <see cref="IWeightSource"/>: its metadata gives the
/// shape, its <c>tokenizer.ggml.*</c> arrays a llama2c (SentencePiece) vocabulary, its tensors (F32, F16, Q8_0, Q4_0;
/// <see cref="GgufReader"/> refuses others) the weights. llama.cpp's llama files keep q and k rows in the interleaved
/// RoPE order llama2.c uses, so they are read as they are. Where the spec stores a tensor in the file's own type, its
/// rows are copied (<see cref="ReadStored"/>): Q8_0 and Q4_0 quants arrive bit for bit, except in the FFN's down
/// columns, which the model file quantises along the other axis. GGUF's llama architecture has no activation field:
/// the spec's applies (a ReLU model's GGUF runs as ReLU here).
/// </summary>
public sealed class GgufCheckpoint : IWeightSource
{
    private readonly GgufReader _file;
    private float[] _values = [];

    private GgufCheckpoint(GgufReader file, HfConfig config)
    {
        _file = file;
        Config = config;
    }

    public string Path => _file.Path;

    /// <summary>The file's model in the terms a Hugging Face config gives (for the spec check and --emit-spec); its
    /// activation is silu, llama.cpp's for this architecture, since the file does not say.</summary>
    public HfConfig Config { get; }

    /// <summary>The file's Jinja chat template (<c>tokenizer.chat_template</c>); null when it has none.</summary>
    public string? ChatTemplate => _file["tokenizer.chat_template"]?.Value as string;

    public static GgufCheckpoint Open(string path)
    {
        var file = GgufReader.Open(path);
        try { return new GgufCheckpoint(file, ReadConfig(file)); }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    private static HfConfig ReadConfig(GgufReader f)
    {
        string architecture = Text(f, "general.architecture");
        if (architecture != "llama") throw new BadInputException($"{f.Path}: GGUF architecture {architecture} is not supported (llama is)");
        int dim = Int(f, "llama.embedding_length"), heads = Int(f, "llama.attention.head_count");
        int kvHeads = f["llama.attention.head_count_kv"] is null ? heads : Int(f, "llama.attention.head_count_kv");
        if (heads <= 0 || dim % heads != 0) throw new BadInputException($"{f.Path}: GGUF llama.embedding_length {dim} is not a multiple of llama.attention.head_count {heads}");
        if (f["llama.rope.dimension_count"] is not null && Int(f, "llama.rope.dimension_count") != dim / heads)
            throw new BadInputException($"{f.Path}: GGUF llama.rope.dimension_count {Int(f, "llama.rope.dimension_count")} is not supported (RoPE over the whole head, {dim / heads}, is)");
        if (f["llama.rope.scaling.type"] is { } scaling && scaling.Value is string kind && kind != "none")
            throw new BadInputException($"{f.Path}: GGUF llama.rope.scaling.type {kind} is not supported (scaled RoPE)");
        string model = Text(f, "tokenizer.ggml.model");
        if (model != "llama") throw new BadInputException($"{f.Path}: GGUF tokenizer.ggml.model {model} is not supported (llama, a SentencePiece vocabulary, is)");
        int vocab = Array<string>(f, "tokenizer.ggml.tokens").Length;
        string dtype = GgufFormat.WeightTypeOf(f.Tensor(GgufFormat.LlamaTensorName(0, "w1")!).Type).ToString().ToLowerInvariant();
        return new HfConfig(ModelFamily.Llama, "llama (GGUF)", dim, Int(f, "llama.feed_forward_length"), Int(f, "llama.block_count"), heads, kvHeads,
            vocab, Int(f, "llama.context_length"), Number(f, "llama.attention.layer_norm_rms_epsilon", null),
            Number(f, "llama.rope.freq_base", 10000), "silu", !f.Tensors.Any(t => t.Name == GgufFormat.LlamaTensorName(null, "classifier")),
            Int(f, "tokenizer.ggml.bos_token_id", 1), [Int(f, "tokenizer.ggml.eos_token_id", 2)], dtype);
    }

    /// <summary>Fails with every difference between this file and the model's spec (the activation is the spec's).</summary>
    public void CheckFits(ModelInfo info)
    {
        var c = Config;
        var fit = new SpecFit(info, Path);
        fit.CheckShape(c.Family, new ModelShape(c.Dim, c.HiddenDim, c.Layers, c.Heads, c.KvHeads, c.Vocab, c.MaxPositions, WeightType.F32, c.TiedEmbeddings));
        fit.Check("tie_embeddings", c.TiedEmbeddings, info.Shape.TiedEmbeddings);
        if (Math.Abs(c.NormEps - info.NormEps) > 1e-3 * c.NormEps) fit.Check("norm_eps", c.NormEps, (double)info.NormEps);
        if (Math.Abs(c.RopeTheta - info.RopeTheta) > 1e-3 * c.RopeTheta) fit.Check("rope_theta", c.RopeTheta, (double)info.RopeTheta);
        fit.ThrowIfUnfit(c.MaxPositions);
    }

    /// <summary>The vocabulary as llama2.c's tokenizer.bin (what the model file's tokenizer section holds), as
    /// llama2.c exports a SentencePiece model: U+2581 as a space, BOS and EOS as "\n&lt;s&gt;\n" and "\n&lt;/s&gt;\n";
    /// checked to load for a vocabulary of <paramref name="vocab"/>.</summary>
    public byte[] Llama2cTokenizer(int vocab)
    {
        string[] tokens = Array<string>(_file, "tokenizer.ggml.tokens");
        float[] scores = Array<float>(_file, "tokenizer.ggml.scores");
        if (scores.Length != tokens.Length)
            throw new BadInputException($"{Path}: GGUF has {tokens.Length} tokens but {scores.Length} scores");
        byte[] bytes = Tokenizers.SentencePieceModel.Llama2cBytes([.. tokens.Select((t, i) => (t, scores[i]))], Config.Bos, Config.Eos[0]);
        try { Tokenizers.Llama2cTokenizer.Load(bytes, vocab); }
        catch (InvalidDataException e) { throw new BadInputException($"{Path}: {e.Message}"); }
        return bytes;
    }

    public void Check(string name, int rows, int cols) => Tensor(name, rows, cols);

    public ReadOnlySpan<float> Read(string name, int rows, int cols)
    {
        var tensor = Tensor(name, rows, cols);
        var type = GgufFormat.WeightTypeOf(tensor.Type);
        byte[] stored = Rows(tensor, type, rows, cols);
        long rowBytes = Layout.RowBytes(type, cols);
        if (_values.Length < (long)rows * cols) _values = new float[(long)rows * cols];
        unsafe
        {
            fixed (byte* s = stored)
            fixed (float* values = _values)
            {
                for (int i = 0; i < rows; i++) WeightRows.ToSingle(type, values + (long)i * cols, s + i * rowBytes, cols);
            }
        }
        return _values.AsSpan(0, rows * cols);
    }

    public byte[]? ReadStored(string name, int rows, int cols, WeightType type)
    {
        var tensor = Tensor(name, rows, cols);
        if (GgufFormat.WeightTypeOf(tensor.Type) != type) return null;
        byte[] stored = Rows(tensor, type, rows, cols);
        ReadOnlySpan<Half> halves = type == WeightType.F16 ? MemoryMarshal.Cast<byte, Half>(stored) : default;
        if (HalfBits.FirstNonFinite(halves) is var i and >= 0)
            throw new BadInputException($"{_file.Path}: {name} holds {halves[i]}, and a model's f16 weights must be finite");
        return stored;
    }

    /// <summary>The tensor's rows in the model file's layout of <paramref name="type"/>, its own type: f32 and f16 as they
    /// are, Q8_0 and Q4_0 blocks moved into rows of scales then quants.</summary>
    private byte[] Rows(GgufTensorInfo tensor, WeightType type, int rows, int cols)
    {
        byte[] data = _file.Read(tensor);
        if (type is WeightType.F32 or WeightType.F16) return data;
        long blockRow = GgufFormat.RowBytes(tensor.Type, cols), rowBytes = Layout.RowBytes(type, cols);
        var stored = new byte[rows * rowBytes];
        for (int i = 0; i < rows; i++)
        {
            var row = stored.AsSpan((int)(i * rowBytes), (int)rowBytes);
            GgufFormat.FromBlocks(type, data.AsSpan((int)(i * blockRow), (int)blockRow), cols, row);
            // A row starts with its groups' half scales, which the kernels widen as finite halves.
            var scales = MemoryMarshal.Cast<byte, Half>(row[..(cols / Quantization.Group * sizeof(ushort))]);
            if (HalfBits.FirstNonFinite(scales) is var g and >= 0)
                throw new BadInputException($"{_file.Path}: {tensor.Name} row {i} has a quantisation scale of {scales[g]}, and scales must be finite");
        }
        return stored;
    }

    public void Dispose() => _file.Dispose();

    /// <summary>The tensor the layout calls <paramref name="name"/>, checked to be [rows, cols] (GGUF: [cols, rows]).</summary>
    private GgufTensorInfo Tensor(string name, int rows, int cols)
    {
        var (layer, tensor) = WeightNames.Split(name);
        string gguf = GgufFormat.LlamaTensorName(layer, tensor)
            ?? throw new BadInputException($"{Path}: a GGUF llama model has no tensor for '{name}'");
        var info = _file.Tensor(gguf);
        long[] want = rows == 1 ? [cols] : [cols, rows];
        if (!info.Dims.SequenceEqual(want) && !(rows == 1 && info.Dims.SequenceEqual([cols, 1L])))
            throw new BadInputException($"{Path}: GGUF tensor {gguf} is [{string.Join(", ", info.Dims)}], the spec needs [{string.Join(", ", want)}]");
        return info;
    }

    private static GgufValue Value(GgufReader f, string key) =>
        f[key] ?? throw new BadInputException($"{f.Path}: GGUF metadata has no {key}");

    private static string Text(GgufReader f, string key) => Value(f, key).Value as string
        ?? throw new BadInputException($"{f.Path}: GGUF {key} is {Value(f, key)}, not a string");

    private static int Int(GgufReader f, string key, int? fallback = null)
    {
        if (f[key] is null && fallback is { } v) return v;
        var value = Value(f, key);
        long n = value.Value switch
        {
            byte b => b, sbyte b => b, ushort u => u, short s => s, uint u => u, int i => i, ulong u => u > int.MaxValue ? -1 : (long)u, long l => l,
            _ => throw new BadInputException($"{f.Path}: GGUF {key} is {value}, not an integer"),
        };
        return n is >= 0 and <= int.MaxValue ? (int)n : throw new BadInputException($"{f.Path}: GGUF {key} is {value}, out of range");
    }

    private static double Number(GgufReader f, string key, double? fallback)
    {
        if (f[key] is null && fallback is { } v) return v;
        var value = Value(f, key);
        double x = value.Value switch
        {
            // A float32 as the decimal it was written from (1e-05, not 9.999999747378752e-06), for the spec's YAML.
            float s => double.Parse(s.ToString("R", System.Globalization.CultureInfo.InvariantCulture), System.Globalization.CultureInfo.InvariantCulture),
            double d => d,
            _ => throw new BadInputException($"{f.Path}: GGUF {key} is {value}, not a number"),
        };
        return double.IsFinite(x) && x > 0 ? x : throw new BadInputException($"{f.Path}: GGUF {key} is {value}, not a positive number");
    }

    private static T[] Array<T>(GgufReader f, string key) => Value(f, key).Value as T[]
        ?? throw new BadInputException($"{f.Path}: GGUF {key} is {Value(f, key)}, not an array of {typeof(T).Name}");
}
