using System.Buffers.Binary;
using System.Text;
using System.Text.Json.Nodes;
using AotFlash.Tests.Support;

namespace AotFlash.Tests.Catalogue;

// Group 6: Hugging Face folders that lie, converted with the stories260K spec (and opt-tiny for the GPT-2 tokenizer):
// config.json, the safetensors header, the shard index, the tokenizer files. Each case copies the folder into its own.
public sealed partial class BadInputCatalogue
{
    private static string HfFolder(string name) => Shared(Path.Combine("models", name));

    /// <summary>A copy of the shared folder <paramref name="name"/> in <paramref name="dir"/>/hf (its README left out).</summary>
    private static string CopyHf(string dir, string name = "stories260K-hf")
    {
        string copy = Path.Combine(dir, "hf");
        Directory.CreateDirectory(copy);
        foreach (string file in Directory.GetFiles(HfFolder(name)).Where(f => Path.GetFileName(f) != "README.md"))
            File.WriteAllBytes(Path.Combine(copy, Path.GetFileName(file)), File.ReadAllBytes(file));
        return copy;
    }

    private static string[] ConvertHf(string dir, string folder, bool tokenizer = true) =>
        ["convert", "--hf", folder, .. tokenizer ? new[] { "-k", ModelSource.Of(Silu).Tokenizer } : [], "-o", Path.Combine(dir, "out.afm")];

    /// <summary>The folder with its config.json changed by <paramref name="edit"/>.</summary>
    private static (string, Case) Config(string name, string fragment, Action<JsonObject> edit) => C($"hf: config.json {name}", fragment, dir =>
    {
        string folder = CopyHf(dir);
        string path = Path.Combine(folder, "config.json");
        var config = JsonNode.Parse(File.ReadAllText(path))!.AsObject();
        edit(config);
        File.WriteAllText(path, config.ToJsonString());
        return ConvertHf(dir, folder);
    }, Silu);

    /// <summary>The folder with model.safetensors's bytes changed by <paramref name="edit"/>.</summary>
    private static (string, Case) Tensors(string name, string fragment, Func<byte[], byte[]> edit) => C($"hf: safetensors {name}", fragment, dir =>
    {
        string folder = CopyHf(dir);
        string path = Path.Combine(folder, "model.safetensors");
        File.WriteAllBytes(path, edit(File.ReadAllBytes(path)));
        return ConvertHf(dir, folder);
    }, Silu);

    /// <summary>model.safetensors with its JSON header changed by <paramref name="edit"/> (the data as it was).</summary>
    private static (string, Case) Header(string name, string fragment, Action<JsonObject> edit) => Tensors(name, fragment, b =>
    {
        int length = (int)BinaryPrimitives.ReadUInt64LittleEndian(b);
        var header = JsonNode.Parse(b.AsSpan(8, length))!.AsObject();
        edit(header);
        byte[] json = Encoding.UTF8.GetBytes(header.ToJsonString());
        var prefix = new byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(prefix, (ulong)json.Length);
        return [.. prefix, .. json, .. b.AsSpan(8 + length)];
    });

    /// <summary>The sharded f16 folder with its index changed by <paramref name="edit"/>.</summary>
    private static (string, Case) Index(string name, string fragment, Action<string> edit) => C($"hf: sharded {name}", fragment, dir =>
    {
        string folder = CopyHf(dir, "stories260K-hf-f16");
        edit(folder);
        return ConvertHf(dir, folder);
    }, Silu);

    /// <summary>The falcon-tiny folder with its config.json changed by <paramref name="edit"/>, converted with its spec.</summary>
    private static (string, Case) FalconConfig(string name, string fragment, Action<JsonObject> edit) => C($"hf: falcon config {name}", fragment, dir =>
    {
        string folder = CopyHf(dir, "falcon-tiny-hf");
        string path = Path.Combine(folder, "config.json");
        var config = JsonNode.Parse(File.ReadAllText(path))!.AsObject();
        edit(config);
        File.WriteAllText(path, config.ToJsonString());
        return ["convert", "--hf", folder, "-o", Path.Combine(dir, "out.afm")];
    }, "falcon-tiny");

    private const string Embed = "model.embed_tokens.weight", Down4 = "model.layers.4.mlp.down_proj.weight";

    private static IEnumerable<(string, Case)> HuggingFaceCases()
    {
        yield return C("hf: config.json missing", "config.json: cannot read config", dir =>
        {
            string folder = CopyHf(dir);
            File.Delete(Path.Combine(folder, "config.json"));
            return ConvertHf(dir, folder);
        }, Silu);
        yield return C("hf: config.json not JSON", "config.json: not valid JSON", dir =>
        {
            string folder = CopyHf(dir);
            File.WriteAllText(Path.Combine(folder, "config.json"), "{ not json");
            return ConvertHf(dir, folder);
        }, Silu);
        yield return C("hf: config.json not an object", "config.json: not a JSON object", dir =>
        {
            string folder = CopyHf(dir);
            File.WriteAllText(Path.Combine(folder, "config.json"), "[1, 2]");
            return ConvertHf(dir, folder);
        }, Silu);
        yield return Config("of an unknown architecture", "architecture GPT2LMHeadModel is not supported (LlamaForCausalLM, OPTForCausalLM and FalconForCausalLM are)",
            c => c["architectures"] = new JsonArray("GPT2LMHeadModel"));
        yield return Config("naming no architecture", "names no architecture (neither \"architectures\" nor \"model_type\")", c =>
        {
            c.Remove("architectures");
            c.Remove("model_type");
        });
        yield return Config("with rope_scaling", "\"rope_scaling\": scaled RoPE is not supported",
            c => c["rope_scaling"] = new JsonObject { ["type"] = "linear", ["factor"] = 2.0 });
        yield return Config("with hidden_act gelu", "\"hidden_act\": activation gelu (silu and relu are) is not supported", c => c["hidden_act"] = "gelu");
        yield return Config("with attention_bias", "\"attention_bias\": biases on the attention projections is not supported", c => c["attention_bias"] = true);
        yield return Config("with head_dim 16", "\"head_dim\": a head size other than hidden_size / num_attention_heads is not supported", c => c["head_dim"] = 16);
        yield return Config("with hidden_size a string", "\"hidden_size\" is not a count", c => c["hidden_size"] = "64");
        yield return Config("with hidden_size -64", "\"hidden_size\" is not a count", c => c["hidden_size"] = -64);
        yield return Config("with hidden_size 60", "\"hidden_size\": 60 is not a multiple of num_attention_heads 8 is not supported", c => c["hidden_size"] = 60);
        yield return Config("with num_attention_heads 0", "\"num_attention_heads\": a model without attention heads is not supported", c => c["num_attention_heads"] = 0);
        yield return Config("without intermediate_size", "has no \"intermediate_size\"", c => c.Remove("intermediate_size"));
        yield return Config("with tie_word_embeddings \"yes\"", "\"tie_word_embeddings\" is not true or false", c => c["tie_word_embeddings"] = "yes");
        yield return Config("with an empty eos_token_id list", "\"eos_token_id\" is empty", c => c["eos_token_id"] = new JsonArray());
        yield return Config("with hidden_size 128", "checkpoint does not fit spec 'stories260K': it has dim 128 (spec: 64)", c =>
        {
            c["hidden_size"] = 128;
            c["head_dim"] = 16;
        });
        yield return Config("with hidden_act relu", "checkpoint does not fit spec 'stories260K': it has activation relu (spec: silu)", c => c["hidden_act"] = "relu");
        yield return Config("with 256 positions", "checkpoint was trained for 256 positions, spec 'stories260K' asks for context 512",
            c => c["max_position_embeddings"] = 256);

        yield return FalconConfig("new architecture", "\"new_decoder_architecture\": Falcon's new decoder architecture",
            c => c["new_decoder_architecture"] = true);
        yield return FalconConfig("with alibi", "\"alibi\": ALiBi position biases is not supported", c => c["alibi"] = true);
        yield return FalconConfig("with bias", "\"bias\": biases on the linear layers is not supported", c => c["bias"] = true);
        yield return FalconConfig("not multi-query", "\"multi_query\": a key/value head per query head is not supported", c => c["multi_query"] = false);
        yield return FalconConfig("sequential", "\"parallel_attn\": attention and MLP one after the other is not supported", c => c["parallel_attn"] = false);
        yield return FalconConfig("activation silu", "\"activation\": activation silu (gelu and relu are) is not supported", c => c["activation"] = "silu");
        yield return FalconConfig("relu for the gelu spec", "checkpoint does not fit spec 'falcon-tiny': it has activation relu (spec: gelu)",
            c => c["activation"] = "relu");

        yield return Tensors("header length 2^40", "not a safetensors file or truncated (header of 1099511627776 bytes", b => I64(b, 0, 1L << 40));
        yield return Tensors("header length past the end", "not a safetensors file or truncated (header of", b => I64(b, 0, b.Length));
        yield return Tensors("of 4 bytes", "too short for a safetensors file (4 bytes)", b => Cut(b, 4));
        yield return Tensors("truncated by 100 bytes", "lie outside the file's", b => Cut(b, b.Length - 100));
        yield return Tensors("header not JSON", "safetensors header is not valid JSON", b => { b[8] = (byte)'x'; return b; });
        yield return Tensors("header not an object", "safetensors header is not a JSON object", b =>
        {
            int length = (int)BinaryPrimitives.ReadUInt64LittleEndian(b);
            Encoding.ASCII.GetBytes("[1]".PadRight(length)).CopyTo(b, 8);
            return b;
        });
        yield return Header("dtype F64", $"tensor '{Embed}': dtype F64 is not supported (F32, F16 and BF16 are)", h => h[Embed]!["dtype"] = "F64");
        yield return Header("offsets past the data", $"tensor '{Down4}': data_offsets [", h => h[Down4]!["data_offsets"]![1] = 1 << 22);
        yield return Header("offsets negative", $"tensor '{Embed}': data_offsets holds a non-offset", h => h[Embed]!["data_offsets"]![0] = -4);
        yield return Header("shape not matching its bytes", $"tensor '{Embed}': holds 131072 bytes, but F32 [512, 65] needs 133120",
            h => h[Embed]!["shape"]![1] = 65);
        yield return Header("shape negative", $"tensor '{Embed}': shape holds a non-size", h => h[Embed]!["shape"]![0] = -512);
        yield return Header("entry without data_offsets", $"tensor '{Embed}': needs dtype, shape and data_offsets", h => h[Embed]!.AsObject().Remove("data_offsets"));
        yield return Header("a tensor missing", $"has no tensor '{Down4}'", h => h.Remove(Down4));
        yield return Header("a tensor transposed", $"tensor '{Down4}' has shape [172, 64], the model needs [64, 172]",
            h => h[Down4]!["shape"] = new JsonArray(172, 64));

        yield return Index("with a shard missing", "shard model-00002-of-00002.safetensors is missing",
            folder => File.Delete(Path.Combine(folder, "model-00002-of-00002.safetensors")));
        yield return Index("with an index that is not JSON", "model.safetensors.index.json: not valid JSON",
            folder => File.WriteAllText(Path.Combine(folder, "model.safetensors.index.json"), "{\"weight_map\": "));
        yield return Index("with an index without weight_map", "has no \"weight_map\" object",
            folder => File.WriteAllText(Path.Combine(folder, "model.safetensors.index.json"), "{\"metadata\": {}}"));
        yield return Index("index naming ../model.safetensors", "weight_map names '../model.safetensors', which is not a file beside the index",
            folder => EditIndex(folder, map => map[Embed] = "../model.safetensors"));
        yield return Index("with an index naming the wrong shard", $"names '{Embed}' in model-00002-of-00002.safetensors, which does not hold it",
            folder => EditIndex(folder, map => map[Embed] = "model-00002-of-00002.safetensors"));

        yield return C("hf: folder missing", "not a folder (--hf wants a Hugging Face model folder)", dir => ConvertHf(dir, Path.Combine(dir, "missing")), Silu);
        yield return C("hf: folder without safetensors", "holds neither model.safetensors nor model.safetensors.index.json", dir =>
        {
            string folder = CopyHf(dir);
            File.Delete(Path.Combine(folder, "model.safetensors"));
            return ConvertHf(dir, folder);
        }, Silu);
        yield return C("hf: no tokenizer.model and no --tokenizer", "has neither tokenizer.model nor tokenizer.json; pass --tokenizer",
            dir => ConvertHf(dir, HfFolder("stories260K-hf"), tokenizer: false), Silu);
        yield return C("hf: tokenizer.model of garbage", "not a SentencePiece model", dir =>
        {
            string folder = CopyHf(dir);
            File.WriteAllBytes(Path.Combine(folder, "tokenizer.model"), [.. Enumerable.Range(0, 1000).Select(i => (byte)(i * 37 + 11))]);
            return ConvertHf(dir, folder, tokenizer: false);
        }, Silu);
        yield return C("hf: opt folder without tokenizer files", "has neither tokenizer.json nor vocab.json + merges.txt; pass --tokenizer tokenizer.json", dir =>
        {
            string folder = CopyHf(dir, "opt-tiny-hf");
            File.Delete(Path.Combine(folder, "vocab.json"));
            return ["convert", "--hf", folder, "-o", Path.Combine(dir, "out.afm")];
        }, "opt-tiny");
        yield return C("hf: opt tokenizer.json not JSON", "tokenizer.json: tokenizer:", dir =>
            ["convert", "--hf", HfFolder("opt-tiny-hf"), "-k", Put(dir, "tokenizer.json", "{ not json"), "-o", Path.Combine(dir, "out.afm")], "opt-tiny");
        yield return C("hf: opt vocab.json not JSON", "vocab.json: tokenizer:", dir =>
        {
            string folder = CopyHf(dir, "opt-tiny-hf");
            File.WriteAllText(Path.Combine(folder, "vocab.json"), "[");
            return ["convert", "--hf", folder, "-o", Path.Combine(dir, "out.afm")];
        }, "opt-tiny");
        yield return C("hf: --emit-spec onto an existing file", "already exists (use --force to overwrite it)",
            dir => ["convert", "--hf", HfFolder("stories260K-hf"), "--emit-spec", Put(dir, "spec.yaml", "name: x\n")], Silu);
        yield return C("hf: --emit-spec into a missing folder", "cannot write",
            dir => ["convert", "--hf", HfFolder("stories260K-hf"), "--emit-spec", Path.Combine(dir, "missing", "spec.yaml")], Silu);
    }

    private static void EditIndex(string folder, Action<JsonObject> edit)
    {
        string path = Path.Combine(folder, "model.safetensors.index.json");
        var index = JsonNode.Parse(File.ReadAllText(path))!.AsObject();
        edit(index["weight_map"]!.AsObject());
        File.WriteAllText(path, index.ToJsonString());
    }
}
