using System.Text;
using System.Text.Json;

namespace AotFlash.Tokenizers;

public sealed partial class Gpt2BpeTokenizer
{
    // ---------- construction ----------

    /// <summary>
    /// From GPT-2's <c>vocab.json</c> (token string → id, ids 0..N-1) and <c>merges.txt</c> (an
    /// optional <c>#version</c> line, then one merge "left right" per line, in rank order).
    /// </summary>
    /// <param name="specialTokens">The control tokens (e.g. from tokenizer_config.json); null: <see cref="EndOfText"/> when the vocabulary holds it.</param>
    /// <exception cref="InvalidDataException">A file is malformed or the two do not fit together.</exception>
    public static Gpt2BpeTokenizer FromVocabAndMerges(ReadOnlySpan<byte> vocabJson, ReadOnlySpan<byte> mergesText, IEnumerable<string>? specialTokens = null)
    {
        try { return VocabAndMerges(vocabJson, mergesText, specialTokens); }
        catch (InvalidOperationException e) { throw NotUnicode("vocab.json", e); }
    }

    static Gpt2BpeTokenizer VocabAndMerges(ReadOnlySpan<byte> vocabJson, ReadOnlySpan<byte> mergesText, IEnumerable<string>? specialTokens)
    {
        using var doc = ParseJson(vocabJson, "vocab.json");
        var (tokens, ids) = ReadVocab(doc.RootElement, "vocab.json", extra: []);
        var special = new bool[tokens.Length];
        if (specialTokens is null)
        {
            if (ids.TryGetValue(EndOfText, out int eot)) special[eot] = true;
        }
        else
        {
            foreach (string s in specialTokens)
            {
                if (!ids.TryGetValue(s, out int id))
                    throw new InvalidDataException($"tokenizer: special token '{s}' is not in vocab.json.");
                special[id] = true;
            }
        }
        return Build(tokens, ids, special, ReadMergesText(mergesText));
    }

    /// <summary>
    /// From a Hugging Face <c>tokenizer.json</c> whose model is a byte-level BPE: model.type "BPE",
    /// pre_tokenizer "ByteLevel" (GPT-2's pattern, no prefix space), no normalizer. Its added tokens
    /// must be special; they are control tokens (see the class remarks). The post-processor is not
    /// read: whether a BOS comes first is the caller's choice in <see cref="Encode"/>.
    /// </summary>
    /// <exception cref="InvalidDataException">The file is malformed or describes another kind of tokenizer.</exception>
    public static Gpt2BpeTokenizer FromTokenizerJson(ReadOnlySpan<byte> tokenizerJson)
    {
        try { return TokenizerJson(tokenizerJson); }
        catch (InvalidOperationException e) { throw NotUnicode("tokenizer.json", e); }
    }

    /// <summary>System.Text.Json reads a string lazily and throws InvalidOperationException for one that is not valid
    /// UTF-8 or holds an escaped lone surrogate: bad input like any other.</summary>
    static InvalidDataException NotUnicode(string file, InvalidOperationException e) => Malformed(file, $"holds text that is not valid Unicode ({e.Message})");

    static Gpt2BpeTokenizer TokenizerJson(ReadOnlySpan<byte> tokenizerJson)
    {
        using var doc = ParseJson(tokenizerJson, "tokenizer.json");
        JsonElement root = doc.RootElement;
        if (root.ValueKind != JsonValueKind.Object) throw Malformed("tokenizer.json", "is not a JSON object");
        JsonElement model = Property(root, "model", JsonValueKind.Object, "tokenizer.json");

        string? type = OptionalString(model, "type");
        if (type != "BPE") throw Unsupported($"model.type is '{type}', not 'BPE'");
        if (Has(root, "normalizer")) throw Unsupported("it has a normalizer");
        if (Has(model, "dropout")) throw Unsupported("model.dropout is set");
        if (!string.IsNullOrEmpty(OptionalString(model, "continuing_subword_prefix")) || !string.IsNullOrEmpty(OptionalString(model, "end_of_word_suffix")))
            throw Unsupported("model has a subword prefix or suffix");
        if (OptionalBool(model, "byte_fallback") == true) throw Unsupported("model.byte_fallback is set");
        if (OptionalBool(model, "ignore_merges") == true) throw Unsupported("model.ignore_merges is set");
        if (!root.TryGetProperty("pre_tokenizer", out JsonElement pre) || pre.ValueKind != JsonValueKind.Object || OptionalString(pre, "type") != "ByteLevel")
            throw Unsupported("its pre_tokenizer is not ByteLevel");
        if (OptionalBool(pre, "add_prefix_space") == true) throw Unsupported("pre_tokenizer.add_prefix_space is set");
        if (OptionalBool(pre, "use_regex") == false) throw Unsupported("pre_tokenizer.use_regex is off");

        var added = new List<(string Content, int Id)>();
        if (root.TryGetProperty("added_tokens", out JsonElement addedTokens) && addedTokens.ValueKind != JsonValueKind.Null)
        {
            if (addedTokens.ValueKind != JsonValueKind.Array) throw Malformed("tokenizer.json", "added_tokens is not an array");
            foreach (JsonElement t in addedTokens.EnumerateArray())
            {
                if (t.ValueKind != JsonValueKind.Object) throw Malformed("tokenizer.json", "an added token is not an object");
                string content = OptionalString(t, "content") ?? throw Malformed("tokenizer.json", "an added token has no content");
                if (!t.TryGetProperty("id", out JsonElement idElement) || idElement.ValueKind != JsonValueKind.Number
                    || !idElement.TryGetInt32(out int id) || id < 0)
                    throw Malformed("tokenizer.json", $"added token '{content}' has no valid id");
                if (OptionalBool(t, "special") != true)
                    throw Unsupported($"added token '{content}' (id {id}) is not special, and matching added tokens in text is not supported");
                added.Add((content, id));
            }
        }

        var (tokens, ids) = ReadVocab(Property(model, "vocab", JsonValueKind.Object, "tokenizer.json"), "tokenizer.json", added);
        var special = new bool[tokens.Length];
        foreach (var (_, id) in added) special[id] = true;

        JsonElement merges = Property(model, "merges", JsonValueKind.Array, "tokenizer.json");
        var pairs = new List<(string, string)>(merges.GetArrayLength());
        foreach (JsonElement m in merges.EnumerateArray())
        {
            int line = pairs.Count;
            if (m.ValueKind == JsonValueKind.String)
            {
                pairs.Add(SplitMerge(m.GetString()!, $"tokenizer.json merge {line}"));
            }
            else if (m.ValueKind == JsonValueKind.Array && m.GetArrayLength() == 2
                     && m[0].ValueKind == JsonValueKind.String && m[1].ValueKind == JsonValueKind.String)
            {
                pairs.Add((m[0].GetString()!, m[1].GetString()!));
            }
            else
            {
                throw Malformed("tokenizer.json", $"merge {line} is neither \"left right\" nor [left, right]");
            }
        }
        return Build(tokens, ids, special, pairs);

        static InvalidDataException Unsupported(string why) =>
            new($"tokenizer: tokenizer.json is not a GPT-2 byte-level BPE: {why}.");
    }

    // ---------- reading vocab.json, merges.txt and tokenizer.json ----------

    /// <summary>
    /// Token strings by id from a vocabulary object, with the added tokens that lie past it; checks
    /// that ids run 0..N-1 without gaps or repeats.
    /// </summary>
    static (string[] Tokens, Dictionary<string, int> Ids) ReadVocab(JsonElement vocab, string file, List<(string Content, int Id)> extra)
    {
        if (vocab.ValueKind != JsonValueKind.Object) throw Malformed(file, "the vocabulary is not a JSON object");
        var ids = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (JsonProperty p in vocab.EnumerateObject())
        {
            if (p.Value.ValueKind != JsonValueKind.Number || !p.Value.TryGetInt32(out int id) || id < 0)
                throw Malformed(file, $"token '{p.Name}' has no valid id");
            if (!ids.TryAdd(p.Name, id))
                throw Malformed(file, $"token '{p.Name}' appears twice");
        }
        foreach (var (content, id) in extra)
        {
            if (ids.TryGetValue(content, out int existing))
            {
                if (existing != id) throw Malformed(file, $"added token '{content}' has id {id}, the vocabulary {existing}");
            }
            else
            {
                ids.Add(content, id);
            }
        }
        // N distinct ids below N fill every slot.
        var tokens = new string[ids.Count];
        foreach (var (token, id) in ids)
        {
            if (id >= tokens.Length)
                throw Malformed(file, $"token ids must run 0..{tokens.Length - 1} without gaps; '{token}' has id {id}");
            if (tokens[id] is not null)
                throw Malformed(file, $"tokens '{tokens[id]}' and '{token}' share id {id}");
            tokens[id] = token;
        }
        return (tokens, ids);
    }

    static List<(string, string)> ReadMergesText(ReadOnlySpan<byte> mergesText)
    {
        string text;
        try { text = new UTF8Encoding(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true).GetString(mergesText); }
        catch (DecoderFallbackException) { throw Malformed("merges.txt", "is not valid UTF-8"); }
        var merges = new List<(string, string)>();
        string[] lines = text.Split('\n');
        for (int i = 0; i < lines.Length; i++)
        {
            string line = lines[i].TrimEnd('\r');
            if (line.Length == 0 || (i == 0 && line.StartsWith("#version", StringComparison.Ordinal))) continue;
            merges.Add(SplitMerge(line, $"merges.txt line {i + 1}"));
        }
        return merges;
    }

    static (string, string) SplitMerge(string merge, string where)
    {
        int space = merge.IndexOf(' ');
        if (space <= 0 || space == merge.Length - 1 || merge.IndexOf(' ', space + 1) >= 0)
            throw new InvalidDataException($"tokenizer: {where} is not two tokens separated by one space: '{merge}'.");
        return (merge[..space], merge[(space + 1)..]);
    }

    /// <summary>Token strings (GPT-2's byte alphabet, or a special token's text) and merges → the tokenizer.</summary>
    static Gpt2BpeTokenizer Build(string[] tokens, Dictionary<string, int> ids, bool[] special, List<(string Left, string Right)> merges)
    {
        var offsets = new int[tokens.Length + 1];
        using var blob = new MemoryStream();
        for (int id = 0; id < tokens.Length; id++)
        {
            offsets[id] = (int)blob.Length;
            if (special[id])
            {
                blob.Write(Encoding.UTF8.GetBytes(tokens[id]));
            }
            else
            {
                foreach (Rune rune in tokens[id].EnumerateRunes())
                {
                    int b = ByteLevel.ByteOf(rune);
                    if (b < 0)
                        throw new InvalidDataException($"tokenizer: token '{tokens[id]}' (id {id}) has '{rune}', which is not in GPT-2's byte alphabet.");
                    blob.WriteByte((byte)b);
                }
            }
            if (blob.Length - offsets[id] > ushort.MaxValue)
                throw new InvalidDataException($"tokenizer: token {id} is longer than {ushort.MaxValue} bytes.");
        }
        offsets[tokens.Length] = (int)blob.Length;

        var left = new int[merges.Count];
        var right = new int[merges.Count];
        var result = new int[merges.Count];
        for (int rank = 0; rank < merges.Count; rank++)
        {
            var (a, b) = merges[rank];
            left[rank] = IdOf(a);
            right[rank] = IdOf(b);
            result[rank] = IdOf(a + b);

            int IdOf(string token) => ids.TryGetValue(token, out int id) ? id
                : throw new InvalidDataException($"tokenizer: merge {rank} ('{a} {b}') needs '{token}', which is not in the vocabulary.");
        }
        return new Gpt2BpeTokenizer(tokens.Length, blob.ToArray(), offsets, special, left, right, result);
    }

    static JsonDocument ParseJson(ReadOnlySpan<byte> json, string file)
    {
        if (json.StartsWith("\xEF\xBB\xBF"u8)) json = json.Slice(3);
        try
        {
            var reader = new Utf8JsonReader(json);
            var doc = JsonDocument.ParseValue(ref reader);
            if (reader.Read())
            {
                doc.Dispose();
                throw Malformed(file, "has data after its JSON value");
            }
            return doc;
        }
        catch (JsonException e)
        {
            throw Malformed(file, $"is not valid JSON ({e.Message})");
        }
    }

    static JsonElement Property(JsonElement obj, string name, JsonValueKind kind, string file) =>
        obj.TryGetProperty(name, out JsonElement value) && value.ValueKind == kind ? value
            : throw Malformed(file, $"has no {kind.ToString().ToLowerInvariant()} '{name}'");

    static bool Has(JsonElement obj, string name) =>
        obj.TryGetProperty(name, out JsonElement value) && value.ValueKind != JsonValueKind.Null;

    static string? OptionalString(JsonElement obj, string name) =>
        obj.TryGetProperty(name, out JsonElement value) && value.ValueKind == JsonValueKind.String ? value.GetString() : null;

    static bool? OptionalBool(JsonElement obj, string name) =>
        obj.TryGetProperty(name, out JsonElement value) && value.ValueKind is JsonValueKind.True or JsonValueKind.False
            ? value.GetBoolean() : null;

    static InvalidDataException Malformed(string file, string what) => new($"tokenizer: {file} {what}.");
}
