using System.Runtime.InteropServices;
using System.Text.Unicode;
using AotFlash.Inference;
using AotFlash.Tokenizers;

namespace AotFlash.Interop;

/// <summary>
/// The C API of aotflash.h, exported from the model's shared library (<c>publish.sh --lib</c>). Each export catches
/// everything and returns a status (details in <c>aotflash_last_error</c>); handles go through
/// <see cref="HandleTable{T}"/>, so misuse is refused rather than crashing.
/// </summary>
public static unsafe class Exports
{
    private static readonly HandleTable<NativeModel> Models = new(0xA1, "model", static m => m.Dispose());
    private static readonly HandleTable<NativeSession> Sessions = new(0xA5, "session", static s => s.Free());

    // Strings handed to C live as long as the library.
    private static readonly byte* VersionText = NativeText(ProductVersion.Text);
    private static readonly byte* EmptyText = NativeText("");
    private static readonly byte* UnknownStatus = NativeText("unknown status");
    private static readonly byte*[] StatusTexts =
    [
        NativeText("ok"), NativeText("invalid argument"), NativeText("invalid handle"), NativeText("buffer too small"),
        NativeText("token id out of range"), NativeText("invalid UTF-8"), NativeText("context full"), NativeText("session busy"),
        NativeText("bad input"), NativeText("cancelled"), NativeText("runtime failure"),
    ];
    private static readonly byte* ImEndText = NativeText("<|im_end|>");
    private static readonly Lock ModelTextLock = new();
    private static byte* s_specHash, s_name, s_family;

    private static byte* NativeText(string text) => (byte*)Marshal.StringToCoTaskMemUTF8(text);

    [UnmanagedCallersOnly(EntryPoint = "aotflash_version")]
    public static byte* Version() => VersionText;

    [UnmanagedCallersOnly(EntryPoint = "aotflash_spec_hash")]
    public static byte* SpecHash()
    {
        try
        {
            MakeModelText();
            return s_specHash;
        }
        catch (Exception) { return EmptyText; } // no model registered: nothing to report
    }

    [UnmanagedCallersOnly(EntryPoint = "aotflash_last_error")]
    public static byte* LastErrorText() => LastError.Pointer;

    [UnmanagedCallersOnly(EntryPoint = "aotflash_status_string")]
    public static byte* StatusString(Status status) => (uint)status < (uint)StatusTexts.Length ? StatusTexts[(int)status] : UnknownStatus;

    [UnmanagedCallersOnly(EntryPoint = "aotflash_default_params")]
    public static NativeParams DefaultParams() => Settings.Defaults;

    [UnmanagedCallersOnly(EntryPoint = "aotflash_model_open")]
    public static Status ModelOpen(byte* path, NativeParams* parameters, nint* outModel)
    {
        try
        {
            if (outModel is null) throw Null("out_model");
            var settings = Settings.From(parameters);
            *outModel = Models.Add(NativeModel.Open(path is null ? null : Marshal.PtrToStringUTF8((nint)path), settings));
            return LastError.Success();
        }
        catch (Exception e) { return LastError.Set(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "aotflash_model_close")]
    public static Status ModelClose(nint model)
    {
        try
        {
            Models.Remove(model).Dispose();
            return LastError.Success();
        }
        catch (Exception e) { return LastError.Set(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "aotflash_model_info")]
    public static Status ModelDescription(nint model, NativeModelDesc* outDesc)
    {
        try
        {
            var m = Models.Get(model);
            if (outDesc is null) throw Null("out_desc");
            var info = m.Info;
            MakeModelText();
            var desc = new NativeModelDesc
            {
                Size = (uint)sizeof(NativeModelDesc),
                Vocab = info.Shape.Vocab,
                Context = info.Shape.Context,
                Bos = info.Tokenizer.Bos,
                Eos = info.Tokenizer.Eos,
                Mode = ToNative(m.Loaded.Mode),
                Dim = info.Shape.Dim,
                Layers = info.Shape.Layers,
                Name = s_name,
                SpecHash = s_specHash,
                Family = s_family,
            };
            CopyOut(&desc, outDesc, "aotflash_model_desc");
            return LastError.Success();
        }
        catch (Exception e) { return LastError.Set(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "aotflash_tokenize")]
    public static Status Tokenize(nint model, byte* text, nuint textLength, int addBos, int* ids, nuint idsCapacity, nuint* outCount)
    {
        try
        {
            var m = Models.Get(model);
            if (outCount is null) throw Null("out_count");
            var utf8 = Input(text, textLength, "text");
            if (!Utf8.IsValid(utf8)) throw new ApiException(Status.InvalidUtf8, "the text is not valid UTF-8");
            int[] tokens = m.Tokenizer.Encode(utf8, addBos != 0, m.Info.Tokenizer.Bos);
            *outCount = (nuint)tokens.Length;
            Output(ids, idsCapacity, (nuint)tokens.Length, "ids", "token ids");
            tokens.CopyTo(new Span<int>(ids, tokens.Length));
            return LastError.Success();
        }
        catch (Exception e) { return LastError.Set(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "aotflash_detokenize")]
    public static Status Detokenize(nint model, int* ids, nuint idCount, byte* text, nuint textCapacity, nuint* outLength)
    {
        try
        {
            var m = Models.Get(model);
            if (outLength is null) throw Null("out_len");
            var tokens = Input(ids, idCount, "ids");
            CheckTokens(tokens, m.Info.Shape.Vocab);
            var bytes = new MemoryStream();
            int bos = m.Info.Tokenizer.Bos, eos = m.Info.Tokenizer.Eos, previous = -1;
            foreach (int token in tokens)
            {
                if (token != bos && token != eos) bytes.Write(m.Tokenizer.Decode(previous, token, bos));
                previous = token;
            }
            *outLength = (nuint)bytes.Length;
            Output(text, textCapacity, (nuint)bytes.Length + 1, "text", "bytes (with the NUL)");
            bytes.GetBuffer().AsSpan(0, (int)bytes.Length).CopyTo(new Span<byte>(text, (int)bytes.Length));
            text[bytes.Length] = 0;
            return LastError.Success();
        }
        catch (Exception e) { return LastError.Set(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "aotflash_chat_tokenize")]
    public static Status ChatTokenize(nint model, NativeChatMessage* messages, nuint messageCount, byte* chatTemplate, int* ids, nuint idsCapacity,
                                      nuint* outCount, int* outStopToken, byte** outStopText)
    {
        try
        {
            var m = Models.Get(model);
            if (outCount is null) throw Null("out_count");
            var kind = chatTemplate is null ? m.Info.Tokenizer.ChatTemplate : ChatTemplate.Parse(Text(chatTemplate, "chat_template"));
            var list = new List<ChatMessage>();
            foreach (var message in Input(messages, messageCount, "messages"))
                list.Add(new ChatMessage(Text(message.Role, $"messages[{list.Count}].role"), Text(message.Content, $"messages[{list.Count}].content")));
            var template = m.Template(kind);
            int[] tokens = template.Encode(list, Session.MaxPromptBytesOf(m.Info, m.Tokenizer));
            *outCount = (nuint)tokens.Length;
            Output(ids, idsCapacity, (nuint)tokens.Length, "ids", "token ids");
            tokens.CopyTo(new Span<int>(ids, tokens.Length));
            if (outStopToken is not null) *outStopToken = template.StopTokens.Count > 0 ? template.StopTokens[0] : -1;
            if (outStopText is not null) *outStopText = template.StopStrings.Count > 0 ? ImEndText : null;
            return LastError.Success();
        }
        catch (Exception e) { return LastError.Set(e); }
    }

    /// <summary>A caller's NUL-terminated UTF-8 string.</summary>
    private static string Text(byte* text, string name)
    {
        if (text is null) throw Null(name);
        var utf8 = MemoryMarshal.CreateReadOnlySpanFromNullTerminated(text);
        if (!Utf8.IsValid(utf8)) throw new ApiException(Status.InvalidUtf8, $"{name} is not valid UTF-8");
        return System.Text.Encoding.UTF8.GetString(utf8);
    }

    [UnmanagedCallersOnly(EntryPoint = "aotflash_session_new")]
    public static Status SessionNew(nint model, NativeParams* parameters, nint* outSession)
    {
        try
        {
            var m = Models.Get(model);
            if (outSession is null) throw Null("out_session");
            *outSession = Sessions.Add(NativeSession.Create(m, parameters is null ? m.Settings : Settings.From(parameters)));
            return LastError.Success();
        }
        catch (Exception e) { return LastError.Set(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "aotflash_session_free")]
    public static Status SessionFree(nint session)
    {
        try
        {
            var s = Sessions.Get(session);
            s.Enter();
            Sessions.Remove(session);
            s.Free();
            return LastError.Success();
        }
        catch (Exception e) { return LastError.Set(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "aotflash_generate")]
    public static Status Generate(nint session, int* prompt, nuint promptCount, int maxNewTokens,
                                  delegate* unmanaged<int, byte*, nuint, void*, int> onToken, void* userData, NativeStopReason* outStopReason)
    {
        try
        {
            var s = Sessions.Get(session);
            var ids = Input(prompt, promptCount, "prompt");
            if (ids.IsEmpty) throw new ApiException(Status.InvalidArgument, "the prompt has no tokens (not even BOS)");
            var shape = s.Model.Info.Shape;
            CheckTokens(ids, shape.Vocab);
            if (ids.Length > shape.Context)
                throw new ApiException(Status.ContextFull, $"the prompt is {ids.Length} tokens, longer than the model's context of {shape.Context}");
            int[] copy = ids.ToArray();
            s.Enter();
            try
            {
                var reason = s.Generate(copy, maxNewTokens, onToken, userData);
                if (outStopReason is not null) *outStopReason = reason;
            }
            finally
            {
                s.Exit();
            }
            return LastError.Success();
        }
        catch (Exception e) { return LastError.Set(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "aotflash_eval_logits")]
    public static Status EvalLogits(nint session, int* tokens, nuint tokenCount, int pos, float* logits, nuint logitsCapacity, nuint* outCount)
    {
        try
        {
            var s = Sessions.Get(session);
            if (outCount is null) throw Null("out_count");
            var shape = s.Model.Info.Shape;
            *outCount = (nuint)shape.Vocab;
            Output(logits, logitsCapacity, (nuint)shape.Vocab, "logits", "floats");
            var ids = Input(tokens, tokenCount, "tokens");
            if (ids.IsEmpty) throw new ApiException(Status.InvalidArgument, "no tokens to evaluate");
            CheckTokens(ids, shape.Vocab);
            s.Enter();
            try
            {
                if (pos < 0 || pos > s.Positions)
                    throw new ApiException(Status.InvalidArgument, $"pos {pos} is outside [0, {s.Positions}], the positions this session holds");
                if ((long)pos + ids.Length > shape.Context)
                    throw new ApiException(Status.ContextFull, $"positions {pos}..{(long)pos + ids.Length - 1} go past the model's context of {shape.Context}");
                s.Evaluate(ids, pos, new Span<float>(logits, shape.Vocab));
            }
            finally
            {
                s.Exit();
            }
            return LastError.Success();
        }
        catch (Exception e) { return LastError.Set(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "aotflash_stats")]
    public static Status Stats(nint session, NativeSessionStats* outStats)
    {
        try
        {
            var s = Sessions.Get(session);
            if (outStats is null) throw Null("out_stats");
            s.Enter();
            NativeSessionStats stats;
            try
            {
                stats = s.Stats();
            }
            finally
            {
                s.Exit();
            }
            CopyOut(&stats, outStats, "aotflash_session_stats");
            return LastError.Success();
        }
        catch (Exception e) { return LastError.Set(e); }
    }

    internal static NativeMode ToNative(EngineMode mode) => mode switch
    {
        EngineMode.Dense => NativeMode.Dense,
        EngineMode.Naive => NativeMode.Naive,
        _ => NativeMode.Flash,
    };

    private static ApiException Null(string name) => new(Status.InvalidArgument, $"{name} is NULL");

    /// <summary>A caller's array; NULL only when empty.</summary>
    private static ReadOnlySpan<T> Input<T>(T* items, nuint count, string name) where T : unmanaged
    {
        if (count == 0) return [];
        if (items is null) throw Null(name);
        if (count > int.MaxValue) throw new ApiException(Status.InvalidArgument, $"{name}: {count} elements are too many");
        return new ReadOnlySpan<T>(items, (int)count);
    }

    /// <summary>Checks that a caller's buffer holds <paramref name="needed"/> elements (the size output is already set).</summary>
    private static void Output<T>(T* buffer, nuint capacity, nuint needed, string name, string unit) where T : unmanaged
    {
        if (capacity < needed)
            throw new ApiException(Status.BufferTooSmall, $"{name} holds {capacity} {unit}, {needed} are needed");
        if (buffer is null && needed > 0) throw Null(name);
    }

    private static void CheckTokens(ReadOnlySpan<int> tokens, int vocab)
    {
        foreach (int token in tokens)
            if ((uint)token >= (uint)vocab)
                throw new ApiException(Status.TokenOutOfRange, $"token id {token} is outside the vocabulary [0, {vocab})");
    }

    /// <summary>Copies a struct out to a caller that may know an older, shorter version of it (its size field).</summary>
    private static void CopyOut<T>(T* value, T* destination, string name) where T : unmanaged
    {
        uint size = *(uint*)destination;
        if (size < sizeof(uint) || size > (uint)sizeof(T))
            throw new ApiException(Status.InvalidArgument, $"{name}.size is {size}, not sizeof({name}) = {sizeof(T)}");
        *(uint*)value = size;
        Buffer.MemoryCopy(value, destination, size, size);
    }

    /// <summary>Makes the compiled model's strings once.</summary>
    private static void MakeModelText()
    {
        lock (ModelTextLock)
        {
            if (s_family is not null) return;
            var info = LibraryModel.Info;
            s_specHash = NativeText(info.SpecHash);
            s_name = NativeText(info.Name);
            s_family = NativeText(info.FamilyName);
        }
    }
}
