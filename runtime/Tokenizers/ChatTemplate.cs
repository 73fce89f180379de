using System.Text;

namespace AotFlash.Tokenizers;

/// <summary>The prompt formats a spec's <c>chat_template</c> (and <c>serve --chat-template</c>) may name.</summary>
public enum ChatTemplateKind
{
    /// <summary>A base model: it continues text and has no chat format.</summary>
    None,
    /// <summary>Llama 2 chat: <c>&lt;s&gt;[INST] &lt;&lt;SYS&gt;&gt;…&lt;&lt;/SYS&gt;&gt; user [/INST] answer &lt;/s&gt;</c>, one BOS/EOS pair per exchange.</summary>
    Llama2,
    /// <summary>ChatML: <c>&lt;|im_start|&gt;role\ncontent&lt;|im_end|&gt;\n</c> per message, then <c>&lt;|im_start|&gt;assistant\n</c>.</summary>
    ChatMl,
}

/// <summary>One message of a conversation; roles are system, user and assistant.</summary>
public sealed record ChatMessage(string Role, string Content);

/// <summary>
/// Turns a conversation into the prompt ids a chat model was trained on, and says where its answer ends. Text is
/// encoded with the model's tokenizer piece by piece, as the reference implementations do (Llama 2's
/// <c>chat_completion</c> encodes each exchange on its own, BOS before and EOS after); ChatML's markers become their
/// own tokens where the vocabulary has them, and text otherwise.
/// </summary>
public sealed class ChatTemplate
{
    private const string ImStart = "<|im_start|>", ImEnd = "<|im_end|>";
    /// <summary>The most text a format adds to one message ("[INST] ", " [/INST] ", markers, newlines), rounded up.</summary>
    private const int MessageOverheadBytes = 32;
    private readonly ITokenizer _tokenizer;
    private readonly int _bos, _eos;
    private readonly int _imStart = -1, _imEnd = -1;

    /// <param name="bos">The model's BOS id, put before each Llama 2 exchange and before a ChatML conversation.</param>
    /// <param name="eos">The model's EOS id, put after each finished Llama 2 exchange.</param>
    public ChatTemplate(ChatTemplateKind kind, ITokenizer tokenizer, int bos, int eos)
    {
        Kind = kind;
        _tokenizer = tokenizer;
        _bos = bos;
        _eos = eos;
        if (kind == ChatTemplateKind.ChatMl)
        {
            _imStart = TokenOf(tokenizer, ImStart);
            _imEnd = TokenOf(tokenizer, ImEnd);
        }
    }

    public ChatTemplateKind Kind { get; }

    /// <summary>The names specs and the command line use: none, llama2, chatml.</summary>
    public static readonly string[] Names = ["none", "llama2", "chatml"];

    public static string NameOf(ChatTemplateKind kind) => Names[(int)kind];

    /// <exception cref="BadInputException">Not one of <see cref="Names"/>.</exception>
    public static ChatTemplateKind Parse(string name) => Array.IndexOf(Names, name) switch
    {
        < 0 => throw new BadInputException($"unknown chat template '{name}' (known: {string.Join(", ", Names)})"),
        var i => (ChatTemplateKind)i,
    };

    /// <summary>The template that a Jinja chat template (Hugging Face's tokenizer_config.json, GGUF's
    /// tokenizer.chat_template) spells: ChatML's markers, or Llama 2's [INST] with its &lt;&lt;SYS&gt;&gt; block; None for
    /// any other (Mistral's [INST] has no system block, and other formats are not built in).</summary>
    public static ChatTemplateKind Recognise(string? jinja) => jinja switch
    {
        null => ChatTemplateKind.None,
        _ when jinja.Contains(ImStart, StringComparison.Ordinal) && jinja.Contains(ImEnd, StringComparison.Ordinal) => ChatTemplateKind.ChatMl,
        _ when jinja.Contains("[INST]", StringComparison.Ordinal) && jinja.Contains("<<SYS>>", StringComparison.Ordinal) => ChatTemplateKind.Llama2,
        _ => ChatTemplateKind.None,
    };

    /// <summary>Text that ends the answer besides the model's stop tokens (the ChatML end marker, when the vocabulary
    /// spells it in pieces).</summary>
    public IReadOnlyList<string> StopStrings => Kind == ChatTemplateKind.ChatMl && _imEnd < 0 ? [ImEnd] : [];

    /// <summary>Tokens that end the answer besides the model's stop tokens: Llama 2 ends each answer with EOS (a spec may
    /// not list it as a stop token), ChatML with its end marker where the vocabulary holds it.</summary>
    public IReadOnlyList<int> StopTokens => Kind switch
    {
        ChatTemplateKind.Llama2 => [_eos],
        ChatTemplateKind.ChatMl when _imEnd >= 0 => [_imEnd],
        _ => [],
    };

    /// <summary>The conversation's prompt ids, ending where the assistant's next answer begins.</summary>
    /// <exception cref="BadInputException">The template is none, a role is unknown or out of order, or the messages'
    /// text is more than <paramref name="maxBytes"/> bytes (work stays bounded before anything is encoded).</exception>
    public int[] Encode(IReadOnlyList<ChatMessage> messages, long maxBytes)
    {
        if (Kind == ChatTemplateKind.None)
            throw new BadInputException("no chat template (none): a base model continues text; use completions, or name a template " +
                                        $"({string.Join(", ", Names.Skip(1))})");
        if (messages.Count == 0) throw new BadInputException("messages: at least one message is needed");
        // Each message's role and content, and what the format adds around them, count: a conversation of many empty
        // messages is bounded too.
        long bytes = messages.Sum(m => (long)Encoding.UTF8.GetByteCount(m.Content) + Encoding.UTF8.GetByteCount(m.Role) + MessageOverheadBytes);
        if (bytes > maxBytes)
            throw new BadInputException($"the messages hold {bytes} bytes of text, more than the model's context can hold ({maxBytes})");
        foreach (var m in messages)
            if (m.Role is not ("system" or "user" or "assistant"))
                throw new BadInputException($"messages: unknown role '{m.Role}' (system, user or assistant)");
        var ids = new List<int>();
        if (Kind == ChatTemplateKind.Llama2) EncodeLlama2(messages, ids);
        else EncodeChatMl(messages, ids);
        return [.. ids];
    }

    // Meta's llama/generation.py chat_completion: the system prompt joins the first user message; user and assistant
    // alternate; each finished exchange is "[INST] user [/INST] answer " between BOS and EOS, the last one ends at [/INST].
    private void EncodeLlama2(IReadOnlyList<ChatMessage> messages, List<int> ids)
    {
        var turns = messages.ToList();
        if (turns[0].Role == "system")
        {
            if (turns.Count < 2) throw new BadInputException("messages: a system message must be followed by a user message");
            turns = [new ChatMessage(turns[1].Role, $"<<SYS>>\n{turns[0].Content}\n<</SYS>>\n\n{turns[1].Content}"), .. turns.Skip(2)];
        }
        for (int i = 0; i < turns.Count; i++)
            if (turns[i].Role != (i % 2 == 0 ? "user" : "assistant"))
                throw new BadInputException("messages: the llama2 template needs user and assistant to take turns, starting and ending with " +
                                            $"user (an optional system message first); message {i + (messages[0].Role == "system" ? 1 : 0)} is {turns[i].Role}");
        if (turns.Count % 2 == 0) throw new BadInputException("messages: the llama2 template needs the last message to be the user's");
        for (int i = 0; i + 1 < turns.Count; i += 2)
        {
            Add(ids, $"[INST] {turns[i].Content.Trim()} [/INST] {turns[i + 1].Content.Trim()} ", bos: true);
            ids.Add(_eos);
        }
        Add(ids, $"[INST] {turns[^1].Content.Trim()} [/INST]", bos: true);
    }

    private void EncodeChatMl(IReadOnlyList<ChatMessage> messages, List<int> ids)
    {
        if (_imStart < 0 && _imEnd < 0)
        {
            // Neither marker is a token of its own: the whole conversation is one text after BOS.
            var text = new StringBuilder();
            foreach (var m in messages) text.Append(ImStart).Append(m.Role).Append('\n').Append(m.Content).Append(ImEnd).Append('\n');
            Add(ids, text.Append(ImStart).Append("assistant\n").ToString(), bos: true);
            return;
        }
        // The markers where the format puts them, as their tokens; the text between them encoded on its own, so that a
        // marker written inside a message stays text and cannot open a turn of another role.
        ids.Add(_bos);
        foreach (var m in messages)
        {
            Marker(ids, _imStart, ImStart);
            Add(ids, $"{m.Role}\n{m.Content}", bos: false);
            Marker(ids, _imEnd, ImEnd);
            Add(ids, "\n", bos: false);
        }
        Marker(ids, _imStart, ImStart);
        Add(ids, "assistant\n", bos: false);
    }

    /// <summary>A marker's token, or its text where the vocabulary spells it in pieces.</summary>
    private void Marker(List<int> ids, int token, string text)
    {
        if (token >= 0) ids.Add(token);
        else Add(ids, text, bos: false);
    }

    private void Add(List<int> ids, string text, bool bos) =>
        ids.AddRange(_tokenizer.Encode(Encoding.UTF8.GetBytes(text), bos, _bos));

    /// <summary>The id whose vocabulary entry is exactly <paramref name="text"/>, or -1.</summary>
    private static int TokenOf(ITokenizer tokenizer, string text)
    {
        byte[] utf8 = Encoding.UTF8.GetBytes(text);
        for (int id = 0; id < tokenizer.VocabSize; id++)
            if (tokenizer.Piece(id).SequenceEqual(utf8)) return id;
        return -1;
    }
}
