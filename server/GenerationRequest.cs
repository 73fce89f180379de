using System.Text;
using System.Text.Json;
using AotFlash.Inference;
using AotFlash.Sampling;
using AotFlash.Tokenizers;

namespace AotFlash.Server;

/// <summary>What a completions or chat completions request asks for, read from its JSON body and checked: the prompt's
/// ids, how many tokens at most, how to sample, where to stop, and how to answer.</summary>
internal sealed record GenerationRequest(
    bool Chat, int[] PromptIds, int MaxTokens, SamplerOptions Sampling, IReadOnlyList<string> Stop, bool Stream, bool IncludeUsage)
{
    /// <summary>OpenAI's default <c>max_tokens</c> for completions; chat answers run to a stop or the context's end.</summary>
    public const int CompletionsDefaultMaxTokens = 16;
    private const int MaxStopStrings = 4;

    /// <summary>What the server needs to read a request.</summary>
    internal sealed record Context(ModelInfo Info, ITokenizer Tokenizer, ChatTemplate Template, SamplerOptions Defaults);

    /// <exception cref="ApiException">Malformed JSON, a field of the wrong type or out of range, a feature this server
    /// does not have, or a prompt longer than the context (400).</exception>
    public static GenerationRequest Parse(ReadOnlyMemory<byte> body, bool chat, Context ctx)
    {
        JsonDocument doc;
        try { doc = JsonDocument.Parse(body, new JsonDocumentOptions { MaxDepth = 16 }); }
        catch (JsonException e) { throw ApiException.Invalid($"the body is not valid JSON ({e.Message})"); }
        using (doc)
        {
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object) throw ApiException.Invalid("the body must be a JSON object");
            try { return Parse(root, chat, ctx); }
            catch (InvalidOperationException e) { throw ApiException.Invalid($"the body holds a string that is not valid text ({e.Message})"); }
        }
    }

    private static GenerationRequest Parse(JsonElement root, bool chat, Context ctx)
    {
        Optional(root, "model", JsonValueKind.String);
        foreach (var (name, isDefault) in Unsupported)
            if (root.TryGetProperty(name, out var v) && v.ValueKind != JsonValueKind.Null && !isDefault(v))
                throw ApiException.Invalid($"'{name}' is not supported by this server", name);
        if (Integer(root, "n", 1, int.MaxValue) is { } n && n != 1)
            throw ApiException.Invalid("'n' must be 1: this server generates one choice per request", "n");

        int? maxTokens = Integer(root, "max_tokens", 1, int.MaxValue);
        if (chat) maxTokens = Integer(root, "max_completion_tokens", 1, int.MaxValue) ?? maxTokens;
        var d = ctx.Defaults;
        var sampling = new SamplerOptions
        {
            Temperature = (float)(Number(root, "temperature", 0, 2) ?? d.Temperature),
            TopP = (float)(Number(root, "top_p", 0, 1, minExclusive: true) ?? d.TopP),
            TopK = Integer(root, "top_k", 0, int.MaxValue) ?? d.TopK,
            MinP = (float)(Number(root, "min_p", 0, 1, maxExclusive: true) ?? d.MinP),
            Seed = Seed(root) ?? (ulong)Random.Shared.NextInt64(1, long.MaxValue),
        };
        bool stream = Optional(root, "stream", JsonValueKind.True, JsonValueKind.False)?.GetBoolean() ?? false;
        bool includeUsage = false;
        if (Optional(root, "stream_options", JsonValueKind.Object) is { } options)
        {
            if (!stream) throw ApiException.Invalid("'stream_options' is only allowed when 'stream' is true", "stream_options");
            includeUsage = Optional(options, "include_usage", JsonValueKind.True, JsonValueKind.False)?.GetBoolean() ?? false;
        }
        var stop = new List<string>(Stops(root));
        int[] ids = chat ? ChatPrompt(root, ctx) : CompletionPrompt(root, ctx);
        if (chat) stop.AddRange(ctx.Template.StopStrings);
        int context = ctx.Info.Shape.Context;
        if (ids.Length > context)
            throw ApiException.Invalid($"the prompt is {ids.Length} tokens, longer than the model's context of {context}",
                chat ? "messages" : "prompt", "context_length_exceeded");
        return new GenerationRequest(chat, ids, maxTokens ?? (chat ? -1 : CompletionsDefaultMaxTokens), sampling, stop, stream, includeUsage);
    }

    /// <summary>Fields of OpenAI's API this server does not implement, accepted only at the value that means "off".</summary>
    private static readonly (string Name, Func<JsonElement, bool> IsDefault)[] Unsupported =
    [
        ("logprobs", v => v.ValueKind == JsonValueKind.False || v.ValueKind == JsonValueKind.Number && v.GetDouble() == 0),
        ("top_logprobs", v => v.ValueKind == JsonValueKind.Number && v.GetDouble() == 0),
        ("echo", v => v.ValueKind == JsonValueKind.False),
        ("best_of", v => v.ValueKind == JsonValueKind.Number && v.GetDouble() == 1),
        ("suffix", v => v.ValueKind == JsonValueKind.String && v.GetString() == ""),
        ("presence_penalty", v => v.ValueKind == JsonValueKind.Number && v.GetDouble() == 0),
        ("frequency_penalty", v => v.ValueKind == JsonValueKind.Number && v.GetDouble() == 0),
        ("logit_bias", v => v.ValueKind == JsonValueKind.Object && !v.EnumerateObject().Any()),
        ("tools", v => v.ValueKind == JsonValueKind.Array && v.GetArrayLength() == 0),
        ("functions", v => v.ValueKind == JsonValueKind.Array && v.GetArrayLength() == 0),
        ("tool_choice", v => v.ValueKind == JsonValueKind.String && v.GetString() == "none"),
        ("function_call", v => v.ValueKind == JsonValueKind.String && v.GetString() == "none"),
        ("response_format", v => v.ValueKind == JsonValueKind.Object && v.TryGetProperty("type", out var t) && t.ValueKind == JsonValueKind.String && t.GetString() == "text"),
    ];

    /// <summary>Completions' <c>prompt</c>: a string, an array of one string, token ids, or an array of one array of token
    /// ids. Text gets BOS in front; ids are taken as they are.</summary>
    private static int[] CompletionPrompt(JsonElement root, Context ctx)
    {
        if (!root.TryGetProperty("prompt", out var prompt)) throw ApiException.Invalid("'prompt' is required", "prompt");
        if (prompt.ValueKind == JsonValueKind.Array && prompt.GetArrayLength() == 1 && prompt[0].ValueKind is JsonValueKind.String or JsonValueKind.Array)
            prompt = prompt[0];
        if (prompt.ValueKind == JsonValueKind.String)
        {
            byte[] text = Encoding.UTF8.GetBytes(prompt.GetString()!);
            try { return Session.TokenizeUncut(ctx.Info, ctx.Tokenizer, text); }
            catch (BadInputException e) { throw ApiException.Invalid(e.Message, "prompt", "context_length_exceeded"); }
        }
        if (prompt.ValueKind == JsonValueKind.Array && prompt.GetArrayLength() > 0)
        {
            var ids = new int[prompt.GetArrayLength()];
            int vocab = ctx.Info.Shape.Vocab, i = 0;
            foreach (var id in prompt.EnumerateArray())
            {
                if (id.ValueKind != JsonValueKind.Number || !id.TryGetInt32(out ids[i]) || ids[i] < 0 || ids[i] >= vocab)
                    throw ApiException.Invalid($"'prompt' token {i} must be a token id in [0, {vocab})", "prompt");
                i++;
            }
            return ids;
        }
        throw ApiException.Invalid("'prompt' must be a string, an array of one string, or a non-empty array of token ids", "prompt");
    }

    private static int[] ChatPrompt(JsonElement root, Context ctx)
    {
        if (ctx.Template.Kind == ChatTemplateKind.None)
            throw ApiException.Invalid($"model {ctx.Info.Name} has no chat template (a base model: its spec names none); use " +
                                       "/v1/completions, or start serve with --chat-template llama2 or chatml", "messages", "no_chat_template");
        if (Optional(root, "messages", JsonValueKind.Array) is not { } list) throw ApiException.Invalid("'messages' is required", "messages");
        var messages = new List<ChatMessage>();
        foreach (var m in list.EnumerateArray())
        {
            string at = $"messages[{messages.Count}]";
            if (m.ValueKind != JsonValueKind.Object) throw ApiException.Invalid($"'{at}' must be an object", at);
            string role = Optional(m, "role", JsonValueKind.String)?.GetString() ?? throw ApiException.Invalid($"'{at}.role' is required", at);
            messages.Add(new ChatMessage(role == "developer" ? "system" : role, Content(m, at)));
        }
        try { return ctx.Template.Encode(messages, Session.MaxPromptBytesOf(ctx.Info, ctx.Tokenizer)); }
        catch (BadInputException e) { throw ApiException.Invalid(e.Message, "messages"); }
    }

    /// <summary>A message's text: a string, null, or an array of text parts.</summary>
    private static string Content(JsonElement message, string at)
    {
        if (!message.TryGetProperty("content", out var content) || content.ValueKind == JsonValueKind.Null) return "";
        if (content.ValueKind == JsonValueKind.String) return content.GetString()!;
        if (content.ValueKind != JsonValueKind.Array) throw ApiException.Invalid($"'{at}.content' must be a string or an array of parts", at);
        var text = new StringBuilder();
        foreach (var part in content.EnumerateArray())
        {
            if (part.ValueKind != JsonValueKind.Object || Optional(part, "type", JsonValueKind.String)?.GetString() != "text"
                || Optional(part, "text", JsonValueKind.String) is not { } t)
                throw ApiException.Invalid($"'{at}.content' parts must be {{\"type\": \"text\", \"text\": ...}}: this model reads text only", at);
            text.Append(t.GetString());
        }
        return text.ToString();
    }

    private static IEnumerable<string> Stops(JsonElement root)
    {
        if (!root.TryGetProperty("stop", out var stop) || stop.ValueKind == JsonValueKind.Null) return [];
        if (stop.ValueKind == JsonValueKind.String) return NonEmpty(stop.GetString()!);
        if (stop.ValueKind != JsonValueKind.Array || stop.GetArrayLength() > MaxStopStrings || stop.EnumerateArray().Any(s => s.ValueKind != JsonValueKind.String))
            throw ApiException.Invalid($"'stop' must be a string or an array of at most {MaxStopStrings} strings", "stop");
        return stop.EnumerateArray().SelectMany(s => NonEmpty(s.GetString()!)).ToList();

        static string[] NonEmpty(string s) => s.Length > 0 ? [s] : throw ApiException.Invalid("'stop' strings must not be empty", "stop");
    }

    /// <summary>The field when present and not null, checked to be of one of <paramref name="kinds"/>.</summary>
    private static JsonElement? Optional(JsonElement obj, string name, params JsonValueKind[] kinds)
    {
        if (!obj.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null) return null;
        if (Array.IndexOf(kinds, v.ValueKind) < 0)
            throw ApiException.Invalid($"'{name}' must be {string.Join(" or ", kinds.Select(KindName).Distinct())}", name);
        return v;
    }

    private static string KindName(JsonValueKind kind) => kind switch
    {
        JsonValueKind.True or JsonValueKind.False => "a boolean",
        JsonValueKind.String => "a string",
        JsonValueKind.Number => "a number",
        JsonValueKind.Array => "an array",
        _ => "an object",
    };

    private static double? Number(JsonElement obj, string name, double min, double max, bool minExclusive = false, bool maxExclusive = false)
    {
        if (Optional(obj, name, JsonValueKind.Number) is not { } v) return null;
        double x = v.GetDouble();
        if (x < min || x > max || minExclusive && x == min || maxExclusive && x == max)
            throw ApiException.Invalid($"'{name}' must be in {(minExclusive ? "(" : "[")}{min}, {max}{(maxExclusive ? ")" : "]")}, got {v.GetRawText()}", name);
        return x;
    }

    private static int? Integer(JsonElement obj, string name, int min, int max)
    {
        if (Optional(obj, name, JsonValueKind.Number) is not { } v) return null;
        if (!v.TryGetInt64(out long x) || x < min || x > max)
            throw ApiException.Invalid($"'{name}' must be an integer in [{min}, {max}], got {v.GetRawText()}", name);
        return (int)x;
    }

    /// <summary><c>seed</c>, any 64-bit integer, as the sampler's unsigned seed.</summary>
    private static ulong? Seed(JsonElement obj)
    {
        if (Optional(obj, "seed", JsonValueKind.Number) is not { } v) return null;
        if (v.TryGetInt64(out long signed)) return unchecked((ulong)signed);
        if (v.TryGetUInt64(out ulong unsigned)) return unsigned;
        throw ApiException.Invalid($"'seed' must be a 64-bit integer, got {v.GetRawText()}", "seed");
    }
}
