using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Text;
using System.Threading.Channels;
using AotFlash.Tokenizers;
using Microsoft.Extensions.AI;

namespace AotFlash;

/// <summary>How the model holds its weights (aotflash.h's <c>aotflash_mode</c>).</summary>
public enum AotFlashMode
{
    /// <summary>Flash when the model file has predictors, dense otherwise.</summary>
    Auto,
    /// <summary>Every weight mapped in DRAM.</summary>
    Dense,
    /// <summary>Each layer's whole FFN read from flash every token.</summary>
    Naive,
    /// <summary>Predicted neurons, cached, read sparsely from flash.</summary>
    Flash,
}

/// <summary>How <see cref="AotFlashChatClient"/> opens its model.</summary>
public sealed record AotFlashChatClientOptions
{
    /// <summary>A model file (.afm) for the library's spec; null: the model packed into the library.</summary>
    public string? ModelPath { get; init; }
    /// <summary>The prompt format: "llama2" or "chatml"; null: the one the spec names.</summary>
    public string? ChatTemplate { get; init; }
    /// <summary>How the weights are held (default <see cref="AotFlashMode.Auto"/>).</summary>
    public AotFlashMode Mode { get; init; }
    /// <summary>Compute threads of each request; 0: the physical cores.</summary>
    public int Threads { get; init; }
    /// <summary>A DRAM budget such as "50%" (of the model file) or "512MiB"; null: the spec's in flash mode.</summary>
    public string? DramBudget { get; init; }
}

/// <summary>
/// <see cref="IChatClient"/> over a model's C library (<c>./publish.sh SPEC --lib</c> builds <c>lib&lt;name&gt;.so</c>). The
/// model is opened once; each request generates in a session of its own (KV cache, FFN source, sampler), so requests may
/// run at once. <see cref="ChatOptions"/>: temperature, top-p, top-k, seed, max output tokens and stop sequences.
/// Text only: other content, tools and penalties are refused. Disposing closes the model; the library stays loaded
/// (a Native AOT library cannot be unloaded).
/// </summary>
public sealed class AotFlashChatClient : IChatClient
{
    private readonly NativeApi _api;
    private readonly nint _model;
    private readonly byte[]? _template;
    private readonly int _threads;
    private int _disposed;

    /// <param name="libraryPath">The model's library, <c>lib&lt;name&gt;.so</c>.</param>
    /// <param name="options">The model file, chat template, mode, threads and DRAM budget; null: the defaults.</param>
    /// <exception cref="DllNotFoundException">The library cannot be loaded.</exception>
    /// <exception cref="AotFlashException">The model cannot be opened (missing or damaged file, budget too small).</exception>
    public unsafe AotFlashChatClient(string libraryPath, AotFlashChatClientOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(libraryPath);
        options ??= new AotFlashChatClientOptions();
        _api = new NativeApi(libraryPath);
        _template = options.ChatTemplate is null ? null : Utf8z(options.ChatTemplate);
        var p = _api.DefaultParams();
        p.Mode = (int)options.Mode;
        p.Threads = options.Threads;
        byte[]? budget = options.DramBudget is null ? null : Utf8z(options.DramBudget);
        byte[]? path = options.ModelPath is null ? null : Utf8z(options.ModelPath);
        nint model;
        fixed (byte* b = budget)
        fixed (byte* m = path)
        {
            p.DramBudget = b;
            _api.Check(_api.ModelOpen(m, &p, &model), "aotflash_model_open");
        }
        _model = model;
        _threads = options.Threads;
        var desc = new NativeApi.ModelDesc { Size = (uint)sizeof(NativeApi.ModelDesc) };
        try { _api.Check(_api.ModelInfo(_model, &desc), "aotflash_model_info"); }
        catch
        {
            _api.ModelClose(_model);
            throw;
        }
        Metadata = new ChatClientMetadata("aotflash", null, Marshal.PtrToStringUTF8((nint)desc.Name)!);
    }

    /// <summary>Provider "aotflash", the model's spec name as its id.</summary>
    public ChatClientMetadata Metadata { get; }

    /// <summary>The whole answer: the streamed updates gathered.</summary>
    public async Task<ChatResponse> GetResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null,
        CancellationToken cancellationToken = default) =>
        await GetStreamingResponseAsync(messages, options, cancellationToken).ToChatResponseAsync(cancellationToken).ConfigureAwait(false);

    /// <summary>The answer as it is generated: one update per piece of text (whole characters), then one with the finish
    /// reason (<see cref="ChatFinishReason.Length"/> at MaxOutputTokens or the context's end) and the usage. Cancelling stops the
    /// generation at its next token (a prompt being processed is finished first) and throws
    /// <see cref="OperationCanceledException"/>; a caller that stops reading ends it too. ChatOptions.Instructions become the
    /// system message (joined to the conversation's own).</summary>
    /// <exception cref="AotFlashException">The library refused the conversation (roles out of the format's order, a
    /// model without a chat template, too long) or failed while generating.</exception>
    /// <exception cref="NotSupportedException">Content other than text, tools, penalties or a response format.</exception>
    public async IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        ArgumentNullException.ThrowIfNull(messages);
        var (prompt, stopToken, stopText) = Prompt(WithInstructions(messages, options?.Instructions));
        var stops = new List<string>(options?.StopSequences ?? []);
        if (stopText is not null) stops.Add(stopText);
        if (stops.Any(s => s.Length == 0)) throw new ArgumentException("stop sequences must not be empty", nameof(options));
        var run = new Generation(new AnswerText(stops), stopToken, cancellationToken);
        var p = SessionParams(options);
        int maxTokens = options?.MaxOutputTokens is { } max ? max > 0 ? max : throw new ArgumentOutOfRangeException(nameof(options), max, "MaxOutputTokens must be positive") : -1;

        string id = "chatcmpl-" + Guid.NewGuid().ToString("N");
        var created = DateTimeOffset.UtcNow;
        // Generation computes for as long as the answer takes: a thread of its own, not one of the pool's.
        var generating = Task.Factory.StartNew(() => run.Run(_api, _model, p, prompt, maxTokens), CancellationToken.None,
            TaskCreationOptions.LongRunning, TaskScheduler.Default);
        int reason;
        try
        {
            await foreach (string text in run.Pieces.Reader.ReadAllAsync(CancellationToken.None).ConfigureAwait(false))
                yield return Update(text);
            reason = await generating.ConfigureAwait(false);
        }
        finally
        {
            // A caller that stops reading early ends the generation too (its thread frees the session; a failure there
            // has no one left to tell).
            run.Abandon();
            _ = generating.ContinueWith(static t => t.Exception, TaskContinuationOptions.OnlyOnFaulted);
        }
        cancellationToken.ThrowIfCancellationRequested();
        string tail = run.Answer.Finish();
        if (tail.Length > 0) yield return Update(tail);
        var last = Update(null);
        last.FinishReason = reason == 1 || reason == 2 ? ChatFinishReason.Length : ChatFinishReason.Stop;
        last.Contents.Add(new UsageContent(new UsageDetails
        {
            InputTokenCount = prompt.Length,
            OutputTokenCount = run.Generated,
            TotalTokenCount = prompt.Length + run.Generated,
        }));
        yield return last;

        ChatResponseUpdate Update(string? text) => new(ChatRole.Assistant, text is null ? [] : [new TextContent(text)])
        {
            ResponseId = id,
            MessageId = id,
            CreatedAt = created,
            ModelId = Metadata.DefaultModelId,
        };
    }

    /// <summary>ChatOptions.Instructions as the system message, before the conversation's own if it has one.</summary>
    private static IEnumerable<ChatMessage> WithInstructions(IEnumerable<ChatMessage> messages, string? instructions)
    {
        if (string.IsNullOrEmpty(instructions)) return messages;
        var list = messages.ToList();
        if (list.Count > 0 && list[0].Role == ChatRole.System)
            return [new ChatMessage(ChatRole.System, instructions + "\n\n" + list[0].Text), .. list.Skip(1)];
        return [new ChatMessage(ChatRole.System, instructions), .. list];
    }

    /// <summary>The conversation's prompt ids in the model's chat format, and what ends the answer besides its stop tokens.</summary>
    private unsafe (int[] Ids, int StopToken, string? StopText) Prompt(IEnumerable<ChatMessage> messages)
    {
        var texts = new List<(byte[] Role, byte[] Content)>();
        foreach (var m in messages)
        {
            string role = m.Role == ChatRole.System ? "system" : m.Role == ChatRole.User ? "user" : m.Role == ChatRole.Assistant ? "assistant"
                : throw new NotSupportedException($"role '{m.Role}': the model reads system, user and assistant messages");
            if (m.Contents.FirstOrDefault(c => c is not TextContent) is { } other)
                throw new NotSupportedException($"{other.GetType().Name} in a {role} message: the model reads text only");
            string text = m.Text;
            if (text.Contains('\0')) throw new ArgumentException($"a {role} message holds a NUL character, which the library cannot take", nameof(messages));
            texts.Add((Utf8z(role), Utf8z(text)));
        }
        var handles = texts.SelectMany(t => new[] { GCHandle.Alloc(t.Role, GCHandleType.Pinned), GCHandle.Alloc(t.Content, GCHandleType.Pinned) }).ToArray();
        try
        {
            var list = new NativeApi.ChatMessage[texts.Count];
            for (int i = 0; i < list.Length; i++)
                list[i] = new NativeApi.ChatMessage { Role = (byte*)handles[2 * i].AddrOfPinnedObject(), Content = (byte*)handles[2 * i + 1].AddrOfPinnedObject() };
            fixed (NativeApi.ChatMessage* messagesPtr = list)
            fixed (byte* template = _template)
            {
                nuint count = 0;
                int stopToken;
                byte* stopText;
                int status = _api.ChatTokenize(_model, messagesPtr, (nuint)list.Length, template, null, 0, &count, null, null);
                if (status != NativeApi.BufferTooSmall) _api.Check(status, "aotflash_chat_tokenize");
                var ids = new int[(int)count];
                fixed (int* idsPtr = ids)
                    _api.Check(_api.ChatTokenize(_model, messagesPtr, (nuint)list.Length, template, idsPtr, count, &count, &stopToken, &stopText),
                        "aotflash_chat_tokenize");
                return (ids, stopToken, stopText is null ? null : Marshal.PtrToStringUTF8((nint)stopText));
            }
        }
        finally
        {
            foreach (var h in handles) h.Free();
        }
    }

    private unsafe NativeApi.Params SessionParams(ChatOptions? options)
    {
        var p = _api.DefaultParams();
        p.Threads = _threads;
        if (options is null) return p;
        if (options.Tools is { Count: > 0 }) throw new NotSupportedException("tools: this model answers in text only");
        if (options.FrequencyPenalty is { } f && f != 0 || options.PresencePenalty is { } pp && pp != 0)
            throw new NotSupportedException("frequency and presence penalties are not supported");
        if (options.ResponseFormat is not null and not ChatResponseFormatText)
            throw new NotSupportedException("response formats other than text are not supported");
        if (options.Temperature is { } t) p.Temperature = t;
        if (options.TopP is { } topP) p.TopP = topP;
        if (options.TopK is { } topK) p.TopK = topK;
        // The library reads seed 0 as "from the clock"; a caller's 0 is a seed like any other.
        if (options.Seed is { } seed) p.Seed = unchecked((ulong)seed) is 0 ? 1 : unchecked((ulong)seed);
        return p;
    }

    /// <summary>This client, or its <see cref="ChatClientMetadata"/>.</summary>
    public object? GetService(Type serviceType, object? serviceKey = null)
    {
        ArgumentNullException.ThrowIfNull(serviceType);
        if (serviceKey is not null) return null;
        if (serviceType == typeof(ChatClientMetadata)) return Metadata;
        return serviceType.IsInstanceOfType(this) ? this : null;
    }

    /// <summary>Closes the model; answers still streaming finish first (their sessions keep the weights mapped).</summary>
    public unsafe void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0) _api.ModelClose(_model);
    }

    private static byte[] Utf8z(string text)
    {
        var bytes = new byte[Encoding.UTF8.GetByteCount(text) + 1];
        Encoding.UTF8.GetBytes(text, bytes);
        return bytes;
    }

    /// <summary>One answer being generated: the session runs on its own thread and hands each token's text to
    /// <see cref="Pieces"/>, whole characters only and cut at the first stop sequence.</summary>
    private sealed unsafe class Generation(AnswerText answer, int stopToken, CancellationToken cancel)
    {
        private readonly int _stopToken = stopToken;
        private readonly CancellationToken _cancel = cancel;
        private volatile bool _abandoned;

        public AnswerText Answer { get; } = answer;
        public Channel<string> Pieces { get; } = Channel.CreateUnbounded<string>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });
        public int Generated { get; private set; }

        /// <summary>Stops the generation at its next token (nothing happens once it has ended).</summary>
        public void Abandon() => _abandoned = true;

        /// <summary>Runs the session to the end and returns its <c>aotflash_stop_reason</c>.</summary>
        public int Run(NativeApi api, nint model, NativeApi.Params p, int[] prompt, int maxTokens)
        {
            nint session = 0;
            var self = GCHandle.Alloc(this);
            try
            {
                api.Check(api.SessionNew(model, &p, &session), "aotflash_session_new");
                int reason;
                fixed (int* ids = prompt)
                    api.Check(api.Generate(session, ids, (nuint)prompt.Length, maxTokens, &OnToken, (void*)GCHandle.ToIntPtr(self), &reason), "aotflash_generate");
                return reason;
            }
            finally
            {
                if (session != 0) api.SessionFree(session);
                self.Free();
                Pieces.Writer.Complete();
            }
        }

        [UnmanagedCallersOnly]
        private static int OnToken(int token, byte* piece, nuint length, void* user)
        {
            var run = (Generation)GCHandle.FromIntPtr((nint)user).Target!;
            if (run._abandoned || run._cancel.IsCancellationRequested || token == run._stopToken) return 1;
            run.Generated++;
            string text = run.Answer.Add(new ReadOnlySpan<byte>(piece, (int)length));
            if (text.Length > 0) run.Pieces.Writer.TryWrite(text);
            return run.Answer.Stopped ? 1 : 0;
        }
    }
}
