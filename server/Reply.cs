using System.Text.Json;

namespace AotFlash.Server;

/// <summary>The JSON of one answer in OpenAI's shapes: <c>text_completion</c> or <c>chat.completion</c> whole, or its
/// <c>chat.completion.chunk</c> / <c>text_completion</c> stream events. Every piece names the same id, time and model.</summary>
internal sealed record Reply(bool Chat, string Id, long Created, string Model)
{
    private void WriteHead(Utf8JsonWriter w, bool chunk)
    {
        w.WriteString("id", Id);
        w.WriteString("object", Chat ? chunk ? "chat.completion.chunk" : "chat.completion" : "text_completion");
        w.WriteNumber("created", Created);
        w.WriteString("model", Model);
    }

    /// <summary>A whole answer's fields (the caller opened the object and may add more).</summary>
    public void WriteWhole(Utf8JsonWriter w, string text, string finish, (int Prompt, int Generated) usage)
    {
        WriteHead(w, chunk: false);
        WriteChoice(w, finish, () =>
        {
            if (!Chat)
            {
                w.WriteString("text", text);
                return;
            }
            w.WriteStartObject("message");
            w.WriteString("role", "assistant");
            w.WriteString("content", text);
            w.WriteEndObject();
        });
        WriteUsage(w, usage);
    }

    /// <summary>One stream event: a piece of text (chat's first event carries the role), or with
    /// <paramref name="finish"/> the last one. With <paramref name="closeObject"/> false the caller adds fields and closes it.</summary>
    public void WriteChunk(Utf8JsonWriter w, string text, bool role, string? finish, bool includeUsage, bool closeObject = true)
    {
        w.WriteStartObject();
        WriteHead(w, chunk: true);
        WriteChoice(w, finish, () =>
        {
            if (!Chat)
            {
                w.WriteString("text", text);
                return;
            }
            w.WriteStartObject("delta");
            if (role) w.WriteString("role", "assistant");
            if (finish is null) w.WriteString("content", text);
            w.WriteEndObject();
        });
        // With include_usage every event but the last has "usage": null, as OpenAI's do.
        if (includeUsage) w.WriteNull("usage");
        if (closeObject) w.WriteEndObject();
    }

    /// <summary><c>"choices": [{index 0, what <paramref name="writeText"/> writes, logprobs null, finish_reason}]</c>.</summary>
    private static void WriteChoice(Utf8JsonWriter w, string? finish, Action writeText)
    {
        w.WriteStartArray("choices");
        w.WriteStartObject();
        w.WriteNumber("index", 0);
        writeText();
        w.WriteNull("logprobs");
        w.WriteString("finish_reason", finish);
        w.WriteEndObject();
        w.WriteEndArray();
    }

    /// <summary>The event that stream_options.include_usage adds after the last: no choices, the usage.</summary>
    public void WriteUsageChunk(Utf8JsonWriter w, (int Prompt, int Generated) usage)
    {
        w.WriteStartObject();
        WriteHead(w, chunk: true);
        w.WriteStartArray("choices");
        w.WriteEndArray();
        WriteUsage(w, usage);
        w.WriteEndObject();
    }

    private static void WriteUsage(Utf8JsonWriter w, (int Prompt, int Generated) usage)
    {
        w.WriteStartObject("usage");
        w.WriteNumber("prompt_tokens", usage.Prompt);
        w.WriteNumber("completion_tokens", usage.Generated);
        w.WriteNumber("total_tokens", usage.Prompt + usage.Generated);
        w.WriteEndObject();
    }
}
