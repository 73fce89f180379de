using AotFlash.Inference;
using AotFlash.Sampling;

namespace AotFlash.Interop;

/// <summary>
/// What an <c>aotflash_session</c> handle stands for: one transformer (KV cache, FFN source) and sampler over the
/// model's shared weights. One thread at a time: <see cref="Enter"/> refuses a second caller with
/// <see cref="Status.Busy"/> instead of letting two threads share the caches.
/// </summary>
internal sealed unsafe class NativeSession
{
    private readonly Session _session;
    private int _busy;
    private bool _freed;
    private NativeSessionStats _last;
    private byte[] _piece = GC.AllocateArray<byte>(64, pinned: true);
    private delegate* unmanaged<int, byte*, nuint, void*, int> _onToken;
    private void* _userData;

    private NativeSession(NativeModel model, Session session, int threads)
    {
        Model = model;
        _session = session;
        _last = new NativeSessionStats { StopReason = NativeStopReason.None };
        Threads = threads;
    }

    public NativeModel Model { get; }
    public Transformer Transformer => _session.Model;
    public int Threads { get; }
    /// <summary>Positions whose keys and values are in the KV cache.</summary>
    public int Positions { get; private set; }

    public static NativeSession Create(NativeModel model, Settings settings)
    {
        var transformer = model.Loaded.NewTransformer(settings.Engine);
        try
        {
            var sampler = new Sampler(model.Info.Shape.Vocab, settings.Sampling);
            return new NativeSession(model, new Session(transformer, model.Tokenizer, sampler), settings.Engine.Threads);
        }
        catch
        {
            Dispose(transformer);
            throw;
        }
    }

    public void Enter()
    {
        if (Interlocked.CompareExchange(ref _busy, 1, 0) == 0) return;
        if (Volatile.Read(ref _freed)) throw new ApiException(Status.InvalidHandle, "the session was freed");
        throw new ApiException(Status.Busy, "the session is in use (by another thread, or this is its own token callback)");
    }

    public void Exit() => Volatile.Write(ref _busy, 0);

    /// <summary>Frees everything; the caller has entered and never exits, so that late callers are refused.</summary>
    public void Free()
    {
        Volatile.Write(ref _freed, true);
        Dispose(Transformer);
    }

    private static void Dispose(Transformer transformer)
    {
        transformer.Dispose();
        transformer.Weights.Dispose();
    }

    public NativeStopReason Generate(int[] prompt, int maxNewTokens, delegate* unmanaged<int, byte*, nuint, void*, int> onToken, void* userData)
    {
        _onToken = onToken;
        _userData = userData;
        try
        {
            Positions = 0;
            var result = _session.Generate(prompt, maxNewTokens, 0, onToken is null ? null : OnToken);
            Positions = result.Forwards;
            var stats = TokenStats.Of(result, Transformer);
            var reason = result.StopReason switch
            {
                StopReason.StopToken => NativeStopReason.Token,
                StopReason.Length => NativeStopReason.Length,
                StopReason.Context => NativeStopReason.Context,
                StopReason.Callback => NativeStopReason.Callback,
                _ => throw new ArgumentOutOfRangeException(nameof(result.StopReason), result.StopReason, null),
            };
            _last = new NativeSessionStats
            {
                PromptTokens = prompt.Length,
                GeneratedTokens = result.GeneratedIds.Count,
                StopReason = reason,
                TtftMs = result.TimeToFirstTokenMs,
                MsPerToken = result.MsPerToken,
                ForwardMsPerToken = stats.ForwardMs,
                IoMsPerToken = stats.IoMs,
                MemMsPerToken = stats.MemMs,
                ComputeMsPerToken = stats.ComputeMs,
                BytesReadPerToken = stats.BytesRead,
                FfnDensity = stats.Density,
                PredictorRecall = stats.Recall ?? -1,
                CacheHitRate = stats.HitRate ?? -1,
            };
            return reason;
        }
        finally
        {
            _onToken = null;
            _userData = null;
        }
    }

    /// <summary>Hands a generated token's text, NUL-terminated, to the C callback; true to go on.</summary>
    private bool OnToken(int previous, int token)
    {
        var piece = _session.Tokenizer.Decode(previous, token, Model.Info.Tokenizer.Bos);
        if (_piece.Length < piece.Length + 1) _piece = GC.AllocateArray<byte>(piece.Length + 1, pinned: true);
        piece.CopyTo(_piece);
        _piece[piece.Length] = 0;
        fixed (byte* text = _piece)
            return _onToken(token, text, (nuint)piece.Length, _userData) == 0;
    }

    /// <summary>Runs <paramref name="tokens"/> from position <paramref name="pos"/> (checked by the caller) and copies
    /// the last logits out.</summary>
    public void Evaluate(ReadOnlySpan<int> tokens, int pos, Span<float> logits)
    {
        if (pos == 0) Transformer.FfnSource.Reset();
        Positions = pos; // what follows pos is overwritten now
        for (int i = 0; i < tokens.Length; i += Transformer.BlockTokens)
        {
            int count = Math.Min(Transformer.BlockTokens, tokens.Length - i);
            Transformer.Forward(tokens.Slice(i, count), pos + i);
            Positions = pos + i + count;
        }
        Transformer.Logits.CopyTo(logits);
    }

    public NativeSessionStats Stats()
    {
        var account = Transformer.Weights.Account;
        var s = _last;
        s.Size = (uint)sizeof(NativeSessionStats);
        s.Mode = Exports.ToNative(Transformer.Mode);
        s.Threads = Threads;
        s.Positions = Positions;
        s.ODirect = Transformer.FfnSource.Stats.DirectIo switch { true => 1, false => 0, null => -1 };
        s.LoadMs = Model.LoadMs;
        s.PeakDramBytes = account.Peak;
        s.DramBudgetBytes = account.Limit == long.MaxValue ? -1 : account.Limit;
        return s;
    }
}
