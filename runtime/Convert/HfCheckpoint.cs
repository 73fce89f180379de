using System.Globalization;
using System.Text;
using System.Text.Json;
using AotFlash.Flash;
using AotFlash.Inference;
using AotFlash.Tokenizers;

namespace AotFlash.Convert;

/// <summary>What a Hugging Face <c>config.json</c> says about a model, in spec terms.</summary>
public sealed record HfConfig(
    ModelFamily Family, string Architecture, int Dim, int HiddenDim, int Layers, int Heads, int KvHeads, int Vocab,
    int MaxPositions, double NormEps, double RopeTheta, string Activation, bool TiedEmbeddings, int Bos, int[] Eos, string Dtype);

/// <summary>
/// A Hugging Face checkpoint folder (<c>config.json</c> + safetensors) of a supported architecture, read as an
/// <see cref="IWeightSource"/>: <c>LlamaForCausalLM</c> (gated FFN with silu or relu; q and k rows are turned back from
/// Hugging Face's rotate-half order into llama2.c's interleaved RoPE order) and <c>OPTForCausalLM</c> (LayerNorm
/// before each block, learned positions, biases, plain FFN with relu). Anything else is refused with the reason.
/// </summary>
public sealed class HfCheckpoint : IWeightSource
{
    private readonly SafeTensorsCheckpoint _tensors;
    private float[] _permuted = [];

    private HfCheckpoint(string folder, HfConfig config, SafeTensorsCheckpoint tensors)
    {
        Folder = folder;
        Config = config;
        _tensors = tensors;
    }

    public string Folder { get; }
    public HfConfig Config { get; }

    public static HfCheckpoint Open(string folder)
    {
        if (!Directory.Exists(folder)) throw new BadInputException($"{folder}: not a folder (--hf wants a Hugging Face model folder)");
        var config = ReadConfig(Path.Combine(folder, "config.json"));
        return new HfCheckpoint(folder, config, SafeTensorsCheckpoint.Open(folder));
    }

    /// <summary>Parses and checks <c>config.json</c>; unsupported architectures and options fail with one line.</summary>
    public static HfConfig ReadConfig(string path)
    {
        byte[] json = ModelConverter.ReadFile(path, "config");
        JsonDocument doc;
        try { doc = JsonDocument.Parse(json); }
        catch (Exception e) when (e is JsonException or InvalidOperationException) // InvalidOperation: a string that is not UTF-8
        { throw new BadInputException($"{path}: not valid JSON ({e.Message})"); }
        using (doc)
        {
            var c = new ConfigReader(path, doc.RootElement);
            string architecture = c.Architecture();
            return architecture switch
            {
                "LlamaForCausalLM" => Llama(c, architecture),
                "OPTForCausalLM" => Opt(c, architecture),
                "FalconForCausalLM" => Falcon(c, architecture),
                _ => throw new BadInputException($"{path}: architecture {architecture} is not supported (LlamaForCausalLM, OPTForCausalLM and FalconForCausalLM are)"),
            };
        }
    }

    private static HfConfig Llama(ConfigReader c, string architecture)
    {
        int dim = c.Int("hidden_size"), heads = c.Heads();
        int kvHeads = c.Int("num_key_value_heads", heads);
        if (dim % heads != 0) c.Unsupported("hidden_size", $"{dim} is not a multiple of num_attention_heads {heads}");
        if (c.Int("head_dim", dim / heads) != dim / heads) c.Unsupported("head_dim", "a head size other than hidden_size / num_attention_heads");
        if (!c.IsNull("rope_scaling")) c.Unsupported("rope_scaling", "scaled RoPE");
        if (c.Bool("attention_bias", false)) c.Unsupported("attention_bias", "biases on the attention projections");
        if (c.Bool("mlp_bias", false)) c.Unsupported("mlp_bias", "biases on the MLP");
        string act = c.String("hidden_act", "silu");
        if (act is not ("silu" or "relu")) c.Unsupported("hidden_act", $"activation {act} (silu and relu are)");
        return new HfConfig(ModelFamily.Llama, architecture, dim, c.Int("intermediate_size"), c.Int("num_hidden_layers"), heads, kvHeads,
            c.Int("vocab_size"), c.Int("max_position_embeddings"), c.Number("rms_norm_eps", 1e-6), c.Number("rope_theta", 10000),
            act, c.Bool("tie_word_embeddings", false), c.Int("bos_token_id", 1), c.Ids("eos_token_id", 2), c.Dtype());
    }

    private static HfConfig Opt(ConfigReader c, string architecture)
    {
        int dim = c.Int("hidden_size"), heads = c.Heads();
        if (dim % heads != 0) c.Unsupported("hidden_size", $"{dim} is not a multiple of num_attention_heads {heads}");
        if (c.Int("word_embed_proj_dim", dim) != dim) c.Unsupported("word_embed_proj_dim", "embedding projections (project_in/project_out)");
        if (!c.Bool("do_layer_norm_before", true)) c.Unsupported("do_layer_norm_before", "LayerNorm after each block");
        if (c.Bool("_remove_final_layer_norm", false)) c.Unsupported("_remove_final_layer_norm", "a model without its final LayerNorm");
        if (!c.Bool("enable_bias", true)) c.Unsupported("enable_bias", "projections without biases");
        if (!c.Bool("layer_norm_elementwise_affine", true)) c.Unsupported("layer_norm_elementwise_affine", "LayerNorms without weights");
        string act = c.String("activation_function", "relu");
        if (act != "relu") c.Unsupported("activation_function", $"activation {act} (relu is)");
        return new HfConfig(ModelFamily.Opt, architecture, dim, c.Int("ffn_dim"), c.Int("num_hidden_layers"), heads, heads,
            c.Int("vocab_size"), c.Int("max_position_embeddings"), 1e-5, 0, act, c.Bool("tie_word_embeddings", true),
            c.Int("bos_token_id", 2), c.Ids("eos_token_id", 2), c.Dtype());
    }

    /// <summary>The classic Falcon-7B architecture as transformers' FalconForCausalLM runs it: one key/value head
    /// (multi_query; num_kv_heads is then ignored, as transformers ignores it), attention and MLP side by side on one
    /// LayerNorm, rotary embeddings, no linear biases, exact GELU or ReLU.</summary>
    private static HfConfig Falcon(ConfigReader c, string architecture)
    {
        int dim = c.Int("hidden_size"), heads = c.Heads();
        if (dim % heads != 0) c.Unsupported("hidden_size", $"{dim} is not a multiple of num_attention_heads {heads}");
        if (c.Bool("new_decoder_architecture", false)) c.Unsupported("new_decoder_architecture", "Falcon's new decoder architecture (grouped key/value heads, two LayerNorms)");
        if (c.Bool("alibi", false)) c.Unsupported("alibi", "ALiBi position biases");
        if (c.Bool("bias", false)) c.Unsupported("bias", "biases on the linear layers");
        if (!c.Bool("multi_query", true)) c.Unsupported("multi_query", "a key/value head per query head");
        if (!c.Bool("parallel_attn", true)) c.Unsupported("parallel_attn", "attention and MLP one after the other");
        if (c.Bool("apply_residual_connection_post_layernorm", false))
            c.Unsupported("apply_residual_connection_post_layernorm", "a residual taken after the LayerNorm");
        if (!c.IsNull("rope_scaling")) c.Unsupported("rope_scaling", "scaled RoPE");
        string act = c.String("activation", "gelu");
        if (act is not ("gelu" or "relu")) c.Unsupported("activation", $"activation {act} (gelu and relu are)");
        return new HfConfig(ModelFamily.Falcon, architecture, dim, c.Int("ffn_hidden_size", 4 * dim), c.Int("num_hidden_layers"), heads, 1,
            c.Int("vocab_size"), c.Int("max_position_embeddings", 2048), c.Number("layer_norm_epsilon", 1e-5), c.Number("rope_theta", 10000),
            act, c.Bool("tie_word_embeddings", true), c.Int("bos_token_id", 11), c.Ids("eos_token_id", 11), c.Dtype());
    }

    /// <summary>Fails with every difference between this checkpoint and the model's spec.</summary>
    public void CheckFits(ModelInfo info)
    {
        var c = Config;
        var fit = new SpecFit(info, Folder);
        fit.CheckShape(c.Family, new ModelShape(c.Dim, c.HiddenDim, c.Layers, c.Heads, c.KvHeads, c.Vocab, c.MaxPositions, WeightType.F32, c.TiedEmbeddings));
        fit.Check("activation", c.Activation, info.Activation.ToString());
        fit.Check("tie_embeddings", c.TiedEmbeddings, info.Shape.TiedEmbeddings);
        if (Math.Abs(c.NormEps - info.NormEps) > 1e-3 * c.NormEps) fit.Check("norm_eps", c.NormEps, (double)info.NormEps);
        if (c.Family != ModelFamily.Opt && Math.Abs(c.RopeTheta - info.RopeTheta) > 1e-3 * c.RopeTheta) fit.Check("rope_theta", c.RopeTheta, (double)info.RopeTheta);
        fit.ThrowIfUnfit(c.MaxPositions);
    }

    /// <summary>The Jinja chat template of a folder's tokenizer_config.json (<c>chat_template</c>: a string, or a list of
    /// named templates, of which "default" or else the first); null when the folder has none.</summary>
    public static string? ReadChatTemplate(string folder)
    {
        string path = Path.Combine(folder, "tokenizer_config.json");
        if (!File.Exists(path)) return null;
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllBytes(path));
            if (doc.RootElement.ValueKind != JsonValueKind.Object || !doc.RootElement.TryGetProperty("chat_template", out var t)) return null;
            if (t.ValueKind == JsonValueKind.String) return t.GetString();
            if (t.ValueKind != JsonValueKind.Array) return null;
            var named = t.EnumerateArray().Where(e => e.ValueKind == JsonValueKind.Object && e.TryGetProperty("template", out var v) && v.ValueKind == JsonValueKind.String).ToList();
            var chosen = named.FirstOrDefault(e => e.TryGetProperty("name", out var n) && n.ValueKind == JsonValueKind.String && n.GetString() == "default");
            return chosen.ValueKind == JsonValueKind.Object ? chosen.GetProperty("template").GetString()
                 : named.Count > 0 ? named[0].GetProperty("template").GetString() : null;
        }
        catch (Exception e) when (e is JsonException or IOException or UnauthorizedAccessException or InvalidOperationException)
        { throw new BadInputException($"{path}: cannot read its chat template ({e.Message})"); }
    }

    /// <summary>A model spec (YAML) for this checkpoint, so a folder becomes a binary with <c>publish.sh</c>;
    /// <paramref name="chatTemplate"/> is the source's Jinja chat template, if it has one.</summary>
    public static string SpecYaml(HfConfig c, string name, string source, TokenizerKind tokenizer, string? chatTemplate = null)
    {
        string F(double v) => v.ToString("R", CultureInfo.InvariantCulture);
        var y = new StringBuilder();
        y.AppendLine($"# {name}: {c.Architecture}, written by 'convert --emit-spec' from {source}.");
        y.AppendLine($"name: {name}");
        y.AppendLine($"family: {c.Family.ToString().ToLowerInvariant()}");
        y.AppendLine($"dim: {c.Dim}");
        y.AppendLine($"hidden_dim: {c.HiddenDim}");
        y.AppendLine($"layers: {c.Layers}");
        y.AppendLine($"heads: {c.Heads}");
        y.AppendLine($"kv_heads: {c.KvHeads}");
        y.AppendLine($"vocab: {c.Vocab}");
        y.AppendLine($"context: {c.MaxPositions}");
        y.AppendLine($"norm_eps: {F(c.NormEps)}");
        if (c.Family != ModelFamily.Opt) y.AppendLine($"rope_theta: {F(c.RopeTheta)}");
        y.AppendLine($"activation: {c.Activation}");
        y.AppendLine($"tie_embeddings: {(c.TiedEmbeddings ? "true" : "false")}");
        var chat = ChatTemplate.Recognise(chatTemplate);
        if (chatTemplate is not null)
            y.AppendLine(chat == ChatTemplateKind.None
                ? "# The source's chat template is none of the built-in ones (llama2, chatml): chat is off until one is named."
                : $"# chat_template: the source's chat template is {ChatTemplate.NameOf(chat)}'s format.");
        y.AppendLine($"tokenizer: {{ kind: {tokenizer.ToString().ToLowerInvariant()}, bos: {c.Bos}, eos: {c.Eos[0]}, stop: [{string.Join(", ", c.Eos)}]" +
                     (chat == ChatTemplateKind.None ? "" : $", chat_template: {ChatTemplate.NameOf(chat)}") + " }");
        y.AppendLine($"weights: {{ dtype: {c.Dtype} }}");
        // No flash block, so the defaults apply (see the README), unless the resident section (embeddings, attention)
        // alone is over the default budget, half the file: a small model with a large vocabulary. Its budget is then
        // absolute: the resident section, the KV cache, half the FFN and 4 MiB for buffers and caches.
        var dtype = Enum.Parse<WeightType>(c.Dtype, ignoreCase: true);
        var layout = new Layout(new ModelShape(c.Dim, c.HiddenDim, c.Layers, c.Heads, c.KvHeads, c.Vocab, c.MaxPositions, dtype, c.TiedEmbeddings), c.Family);
        if (layout.ResidentBytes > (layout.ResidentBytes + layout.FlashBytes) / 2)
        {
            long kvCache = 2L * c.Layers * c.MaxPositions * layout.Shape.KvDim * sizeof(float);
            long budget = (layout.ResidentBytes + kvCache + layout.FlashBytes / 2 + (4 << 20) + (1 << 20) - 1) >> 20;
            y.AppendLine("# The resident section (embeddings, attention) is most of the model, so the budget is absolute.");
            y.AppendLine($"flash: {{ dram_budget: {budget}MiB }}");
        }
        return y.ToString();
    }

    public ReadOnlySpan<float> Read(string name, int rows, int cols)
    {
        string tensor = WeightNames.Split(name).Tensor;
        string hf = HfName(name);
        if (Config.Family == ModelFamily.Opt)
            return tensor == "position_embedding"
                ? _tensors.ReadF32(hf, PositionRows(hf, rows, cols), cols)[..(rows * cols)]
                : _tensors.ReadF32(hf, rows, cols);
        if (Config.Family == ModelFamily.Falcon && tensor is "wq" or "wk" or "wv")
        {
            // One fused matrix: the query heads' rows, then the key head's, then the value head's.
            int headSize = Config.Dim / Config.Heads;
            var fused = _tensors.ReadF32(hf, Config.Dim + 2 * headSize, cols);
            int first = tensor switch { "wq" => 0, "wk" => Config.Dim, _ => Config.Dim + headSize };
            var part = fused.Slice(first * cols, rows * cols);
            return tensor == "wv" ? part : Interleave(part, rows / headSize, cols);
        }
        var values = _tensors.ReadF32(hf, rows, cols);
        return tensor is "wq" or "wk" ? Interleave(values, rows / (Config.Dim / Config.Heads), cols) : values;
    }

    public void Check(string name, int rows, int cols)
    {
        string hf = HfName(name);
        if (Config.Family == ModelFamily.Opt && WeightNames.Split(name).Tensor == "position_embedding") rows = PositionRows(hf, rows, cols);
        if (Config.Family == ModelFamily.Falcon && WeightNames.Split(name).Tensor is "wq" or "wk" or "wv") rows = Config.Dim + 2 * (Config.Dim / Config.Heads);
        _tensors.CheckShape(hf, rows, cols);
    }

    /// <summary>The Hugging Face name of the tensor the layout calls <paramref name="name"/>.</summary>
    private string HfName(string name)
    {
        var (layer, tensor) = WeightNames.Split(name);
        if (Config.Family == ModelFamily.Opt) return OptName(name, layer, tensor);
        if (Config.Family == ModelFamily.Falcon) return FalconName(name, layer, tensor);
        return (layer, tensor) switch
        {
            (null, "token_embedding") => "model.embed_tokens.weight",
            (null, "classifier") => "lm_head.weight",
            (null, "final_norm") => "model.norm.weight",
            ({ } l, "attention_norm") => $"model.layers.{l}.input_layernorm.weight",
            ({ } l, "wq") => $"model.layers.{l}.self_attn.q_proj.weight",
            ({ } l, "wk") => $"model.layers.{l}.self_attn.k_proj.weight",
            ({ } l, "wv") => $"model.layers.{l}.self_attn.v_proj.weight",
            ({ } l, "wo") => $"model.layers.{l}.self_attn.o_proj.weight",
            ({ } l, "ffn_norm") => $"model.layers.{l}.post_attention_layernorm.weight",
            ({ } l, "w1") => $"model.layers.{l}.mlp.gate_proj.weight",
            ({ } l, "w2") => $"model.layers.{l}.mlp.down_proj.weight",
            ({ } l, "w3") => $"model.layers.{l}.mlp.up_proj.weight",
            _ => throw new BadInputException($"{Folder}: a Llama checkpoint has no tensor for '{name}'"),
        };
    }

    private string OptName(string name, int? layer, string tensor)
    {
        string p = $"model.decoder.layers.{layer}.";
        return (layer, tensor) switch
        {
            (null, "token_embedding") => "model.decoder.embed_tokens.weight",
            (null, "position_embedding") => "model.decoder.embed_positions.weight",
            (null, "classifier") => "lm_head.weight",
            (null, "final_norm") => "model.decoder.final_layer_norm.weight",
            (null, "final_norm_bias") => "model.decoder.final_layer_norm.bias",
            (_, "attention_norm") => p + "self_attn_layer_norm.weight",
            (_, "attention_norm_bias") => p + "self_attn_layer_norm.bias",
            (_, "wq") => p + "self_attn.q_proj.weight",
            (_, "bq") => p + "self_attn.q_proj.bias",
            (_, "wk") => p + "self_attn.k_proj.weight",
            (_, "bk") => p + "self_attn.k_proj.bias",
            (_, "wv") => p + "self_attn.v_proj.weight",
            (_, "bv") => p + "self_attn.v_proj.bias",
            (_, "wo") => p + "self_attn.out_proj.weight",
            (_, "bo") => p + "self_attn.out_proj.bias",
            (_, "ffn_norm") => p + "final_layer_norm.weight",
            (_, "ffn_norm_bias") => p + "final_layer_norm.bias",
            (_, "fc1") => p + "fc1.weight",
            (_, "fc1_bias") => p + "fc1.bias",
            (_, "fc2") => p + "fc2.weight",
            (_, "ffn_down_bias") => p + "fc2.bias",
            _ => throw new BadInputException($"{Folder}: an OPT checkpoint has no tensor for '{name}'"),
        };
    }

    private string FalconName(string name, int? layer, string tensor)
    {
        string p = $"transformer.h.{layer}.";
        return (layer, tensor) switch
        {
            (null, "token_embedding") => "transformer.word_embeddings.weight",
            (null, "classifier") => "lm_head.weight",
            (null, "final_norm") => "transformer.ln_f.weight",
            (null, "final_norm_bias") => "transformer.ln_f.bias",
            (_, "attention_norm") => p + "input_layernorm.weight",
            (_, "attention_norm_bias") => p + "input_layernorm.bias",
            (_, "wq" or "wk" or "wv") => p + "self_attention.query_key_value.weight",
            (_, "wo") => p + "self_attention.dense.weight",
            (_, "fc1") => p + "mlp.dense_h_to_4h.weight",
            (_, "fc2") => p + "mlp.dense_4h_to_h.weight",
            _ => throw new BadInputException($"{Folder}: a Falcon checkpoint has no tensor for '{name}'"),
        };
    }

    /// <summary>The rows of OPT's position table: max_position_embeddings + 2; a spec with a shorter context uses the
    /// first <paramref name="rows"/>.</summary>
    private int PositionRows(string hf, int rows, int cols)
    {
        long[] shape = _tensors.Get(hf).Shape;
        if (shape.Length != 2 || shape[0] < rows || shape[0] > int.MaxValue)
            throw new BadInputException($"{Folder}: tensor '{hf}' has shape {_tensors.Get(hf).ShapeText}, the model needs at least {rows} rows of {cols}");
        return (int)shape[0];
    }

    /// <summary>Hugging Face's q/k rows hold, per head, the first halves of all rotation pairs and then the second
    /// halves (rotate-half RoPE); llama2.c rotates neighbours. Row [h, p, i] (p in {0,1}, i &lt; headSize/2) goes
    /// back to row [h, i, p].</summary>
    private ReadOnlySpan<float> Interleave(ReadOnlySpan<float> hf, int heads, int cols)
    {
        int headSize = Config.Dim / Config.Heads, half = headSize / 2;
        if (_permuted.Length < hf.Length) _permuted = new float[hf.Length];
        for (int h = 0; h < heads; h++)
            for (int p = 0; p < 2; p++)
                for (int i = 0; i < half; i++)
                    hf.Slice((h * headSize + p * half + i) * cols, cols).CopyTo(_permuted.AsSpan((h * headSize + 2 * i + p) * cols, cols));
        return _permuted.AsSpan(0, hf.Length);
    }

    public void Dispose() => _tensors.Dispose();

    /// <summary>Typed reads of config.json with one-line errors naming the key.</summary>
    private readonly struct ConfigReader(string path, JsonElement root)
    {
        public string Architecture()
        {
            if (root.ValueKind != JsonValueKind.Object) throw new BadInputException($"{path}: not a JSON object");
            if (root.TryGetProperty("architectures", out var a) && a.ValueKind == JsonValueKind.Array && a.GetArrayLength() == 1
                && a[0].ValueKind == JsonValueKind.String)
                return a[0].GetString()!;
            string type = String("model_type", "");
            return type switch
            {
                "llama" => "LlamaForCausalLM",
                "opt" => "OPTForCausalLM",
                "falcon" => "FalconForCausalLM",
                "" => throw new BadInputException($"{path}: names no architecture (neither \"architectures\" nor \"model_type\")"),
                _ => type,
            };
        }

        private JsonElement? Get(string key) =>
            root.TryGetProperty(key, out var v) && v.ValueKind != JsonValueKind.Null ? v : null;

        public bool IsNull(string key) => Get(key) is null;

        public int Int(string key, int? fallback = null)
        {
            if (Get(key) is not { } v) return fallback ?? throw new BadInputException($"{path}: has no \"{key}\"");
            return v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out int i) && i >= 0 ? i
                : throw new BadInputException($"{path}: \"{key}\" is not a count");
        }

        /// <summary>num_attention_heads, which everything else is divided by: at least 1.</summary>
        public int Heads()
        {
            int heads = Int("num_attention_heads");
            if (heads == 0) Unsupported("num_attention_heads", "a model without attention heads");
            return heads;
        }

        public double Number(string key, double fallback)
        {
            if (Get(key) is not { } v) return fallback;
            return v.ValueKind == JsonValueKind.Number ? v.GetDouble() : throw new BadInputException($"{path}: \"{key}\" is not a number");
        }

        public bool Bool(string key, bool fallback)
        {
            if (Get(key) is not { } v) return fallback;
            return v.ValueKind switch
            {
                JsonValueKind.True => true,
                JsonValueKind.False => false,
                _ => throw new BadInputException($"{path}: \"{key}\" is not true or false"),
            };
        }

        public string String(string key, string fallback)
        {
            if (Get(key) is not { } v) return fallback;
            return v.ValueKind == JsonValueKind.String ? v.GetString()! : throw new BadInputException($"{path}: \"{key}\" is not a string");
        }

        /// <summary>A token id or a list of them (eos_token_id may be either).</summary>
        public int[] Ids(string key, int fallback)
        {
            if (Get(key) is not { } v) return [fallback];
            if (v.ValueKind != JsonValueKind.Array) return [Int(key)];
            var ids = new List<int>();
            foreach (var e in v.EnumerateArray())
                ids.Add(e.ValueKind == JsonValueKind.Number && e.TryGetInt32(out int i) && i >= 0 ? i
                    : throw new BadInputException($"{path}: \"{key}\" holds a non-id"));
            return ids.Count > 0 ? [.. ids] : throw new BadInputException($"{path}: \"{key}\" is empty");
        }

        /// <summary>The spec dtype for the checkpoint's torch_dtype: f16 for half-precision checkpoints (bf16 included), else f32.</summary>
        public string Dtype() => String("torch_dtype", "float32") switch
        {
            "float16" or "bfloat16" => "f16",
            _ => "f32",
        };

        public void Unsupported(string key, string what) =>
            throw new BadInputException($"{path}: \"{key}\": {what} is not supported");
    }
}
