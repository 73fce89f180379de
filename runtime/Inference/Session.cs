using System.Diagnostics;
using AotFlash.Ffn;
using AotFlash.Sampling;
using AotFlash.Tokenizers;

namespace AotFlash.Inference;

/// <summary>Why a generation ended.</summary>
public enum StopReason
{
    /// <summary>The model sampled one of the spec's stop tokens.</summary>
    StopToken,
    /// <summary>The requested number of new tokens was reached.</summary>
    Length,
    /// <summary>The context was full.</summary>
    Context,
    /// <summary>The caller's token callback, or its cancellation token, asked to stop.</summary>
    Callback,
}

public static class StopReasonNames
{
    /// <summary>The reason as <c>run --json</c> writes it: stop_token, length, context or callback.</summary>
    public static string Name(this StopReason reason) => reason switch
    {
        StopReason.StopToken => "stop_token",
        StopReason.Length => "length",
        StopReason.Context => "context",
        StopReason.Callback => "callback",
        _ => throw new ArgumentOutOfRangeException(nameof(reason), reason, null),
    };
}

/// <summary>The forward passes of one phase of a generation, the time spent in them and what the FFN source did
/// during them (the difference of its counters, which keep running).</summary>
public sealed record GenerationPhase(int Forwards, double ForwardMs, FfnStats Ffn)
{
    public static GenerationPhase operator +(GenerationPhase a, GenerationPhase b) =>
        new(a.Forwards + b.Forwards, a.ForwardMs + b.ForwardMs, a.Ffn + b.Ffn);
}

/// <summary>What one generation produced, with its timings.</summary>
public sealed class Generation
{
    public required int[] PromptIds { get; init; }
    public List<int> GeneratedIds { get; } = [];
    public StopReason StopReason { get; set; } = StopReason.Length;
    /// <summary>Logits after positions 0, 1, … (only as many as were asked for).</summary>
    public List<float[]> Logits { get; } = [];
    /// <summary>From the start of generation to the first generated token (prompt processing included).</summary>
    public double TimeToFirstTokenMs { get; set; }
    /// <summary>Mean time of each generated token after the first.</summary>
    public double MsPerToken { get; set; }
    /// <summary>Prompt processing: the forward passes up to and including the one whose logits give the first generated
    /// token: the prompt's tokens, run in blocks of up to <see cref="Transformer.BlockTokens"/> (all of them when a token was
    /// sampled). <see cref="GenerationPhase.Forwards"/> counts tokens, not blocks.</summary>
    public GenerationPhase Prompt { get; set; } = new(0, 0, new FfnStats());
    /// <summary>Decoding: every forward pass after <see cref="Prompt"/>'s, one per generated token fed back (none when
    /// fewer than two tokens were sampled).</summary>
    public GenerationPhase Decode { get; set; } = new(0, 0, new FfnStats());
    /// <summary>Forward passes run (prompt and generated tokens) and the time spent in them.</summary>
    public int Forwards => Prompt.Forwards + Decode.Forwards;
    public double ForwardMs => Prompt.ForwardMs + Decode.ForwardMs;
}

/// <summary>Prompt in, tokens out: runs a <see cref="Transformer"/> position by position, forcing the prompt's tokens
/// and then sampling, until a stop token, <c>maxNewTokens</c> or the end of the context.</summary>
public sealed class Session(Transformer model, ITokenizer tokenizer, Sampler sampler)
{
    public Transformer Model { get; } = model;
    public ITokenizer Tokenizer { get; } = tokenizer;

    /// <summary>The longest prompt, in bytes, that could fit the context: one more byte needs more tokens than the
    /// context holds, so longer prompts are refused before they are read or tokenized.</summary>
    public long MaxPromptBytes => MaxPromptBytesOf(Model.Info, Tokenizer);

    /// <summary>As <see cref="MaxPromptBytes"/>, before any model is loaded.</summary>
    public static long MaxPromptBytesOf(ModelInfo info, ITokenizer tokenizer) => (long)info.Shape.Context * tokenizer.LongestTokenBytes;

    /// <summary>BOS + the prompt's tokens; fails when they do not fit the context.</summary>
    public int[] Tokenize(ReadOnlySpan<byte> prompt) => Tokenize(Model.Info, Tokenizer, prompt);

    /// <summary>As <see cref="Tokenize(ReadOnlySpan{byte})"/>, before any model is loaded.</summary>
    public static int[] Tokenize(ModelInfo info, ITokenizer tokenizer, ReadOnlySpan<byte> prompt)
    {
        int[] ids = TokenizeUncut(info, tokenizer, prompt);
        CheckFits(info, ids);
        return ids;
    }

    /// <summary>BOS + the prompt's tokens, however many there are, for a caller that cuts them to fit; the prompt's
    /// bytes are still bounded by what the context could hold, so the work stays bounded.</summary>
    public static int[] TokenizeUncut(ModelInfo info, ITokenizer tokenizer, ReadOnlySpan<byte> prompt)
    {
        if (prompt.Length > MaxPromptBytesOf(info, tokenizer))
            throw new BadInputException($"the prompt is {prompt.Length} bytes, more than the model's context of {info.Shape.Context} " +
                                        $"tokens can hold (a token stands for at most {tokenizer.LongestTokenBytes} bytes)");
        return tokenizer.Encode(prompt, addBos: true, info.Tokenizer.Bos);
    }

    private static void CheckFits(ModelInfo info, int[] promptIds)
    {
        int context = info.Shape.Context;
        if (promptIds.Length > context)
            throw new BadInputException($"the prompt is {promptIds.Length} tokens, longer than the model's context of {context}");
    }

    /// <param name="maxNewTokens">Most tokens to generate; negative = until a stop token or the context is full.</param>
    /// <param name="dumpLogits">How many positions' logits to keep, from position 0.</param>
    /// <param name="onToken">Called with (previous token, new token) as each token is generated; returning false stops
    /// the generation there.</param>
    /// <param name="endAtStopToken">False to keep a sampled stop token and go on (benchmarks that must run a fixed
    /// number of tokens).</param>
    /// <param name="cancel">Stops the generation (<see cref="StopReason.Callback"/>) before the next block of the prompt or
    /// the next token: a caller that goes away does not hold the model for the rest of a long prompt.</param>
    public Generation Generate(int[] promptIds, int maxNewTokens, int dumpLogits, Func<int, int, bool>? onToken = null, bool endAtStopToken = true,
        CancellationToken cancel = default)
    {
        var info = Model.Info;
        int context = info.Shape.Context;
        if (promptIds.Length == 0) throw new ArgumentException("the prompt has no tokens (not even BOS)", nameof(promptIds));
        CheckFits(info, promptIds);

        var result = new Generation { PromptIds = promptIds };
        Model.FfnSource.Reset(); // a new sequence: the neuron caches' window starts over
        var clock = Stopwatch.StartNew();
        double firstTokenAt = 0;
        int forwards = 0;
        long forwardTicks = 0;
        // The phases are differences of snapshots: the source's counters are copied, not cleared, so that whoever reads
        // its totals still sees them all.
        Mark Now() => new(forwards, forwardTicks, Model.FfnSource.Stats with { });
        var start = Now();
        Mark? firstToken = null;

        void Run(ReadOnlySpan<int> tokens, int at)
        {
            long before = Stopwatch.GetTimestamp();
            Model.Forward(tokens, at);
            forwardTicks += Stopwatch.GetTimestamp() - before;
            forwards += tokens.Length;
            int dumped = Math.Clamp(dumpLogits - at, 0, tokens.Length);
            for (int row = 0; row < dumped; row++)
            {
                if (tokens.Length > 1) Model.ComputeLogits(row);
                result.Logits.Add(Model.Logits.ToArray());
            }
            // Sampling reads the last row's logits, which computing an earlier row's replaced.
            if (dumped > 0 && dumped < tokens.Length) Model.ComputeLogits(tokens.Length - 1);
        }

        // The prompt in blocks: every block goes through each weight matrix once. With no token to generate, the last
        // prompt token is not run (its logits would be unused).
        int pos = 0;
        int promptRun = maxNewTokens == 0 ? promptIds.Length - 1 : promptIds.Length;
        while (pos < promptRun)
        {
            if (cancel.IsCancellationRequested)
            {
                result.StopReason = StopReason.Callback;
                maxNewTokens = 0;
                break;
            }
            int count = Math.Min(Model.BlockTokens, promptRun - pos);
            Run(promptIds.AsSpan(pos, count), pos);
            pos += count;
        }
        if (maxNewTokens != 0)
        {
            firstToken = Now();
            pos--; // the position whose logits are in Model.Logits, and the token run there
            int token = promptIds[pos];
            while (true)
            {
                if (cancel.IsCancellationRequested)
                {
                    result.StopReason = StopReason.Callback;
                    break;
                }
                int next = sampler.Sample(Model.Logits);
                if (result.GeneratedIds.Count == 0) firstTokenAt = clock.Elapsed.TotalMilliseconds;
                if (endAtStopToken && Array.IndexOf(info.Tokenizer.Stop, next) >= 0)
                {
                    result.StopReason = StopReason.StopToken;
                    break;
                }
                result.GeneratedIds.Add(next);
                if (onToken is not null && !onToken(token, next))
                {
                    result.StopReason = StopReason.Callback;
                    break;
                }
                if (++pos == context)
                {
                    result.StopReason = StopReason.Context;
                    break;
                }
                if (result.GeneratedIds.Count == maxNewTokens) break;
                Run([next], pos);
                token = next;
            }
        }
        double total = clock.Elapsed.TotalMilliseconds;
        var end = Now();
        result.Prompt = Mark.Between(start, firstToken ?? end);
        result.Decode = Mark.Between(firstToken ?? end, end);
        result.TimeToFirstTokenMs = firstTokenAt;
        int after = result.GeneratedIds.Count - 1;
        result.MsPerToken = after > 0 ? (total - firstTokenAt) / after : 0;
        return result;
    }

    /// <summary>A point in a generation: the forward passes run so far, their ticks, and the FFN source's counters.</summary>
    private readonly record struct Mark(int Forwards, long ForwardTicks, FfnStats Ffn)
    {
        public static GenerationPhase Between(Mark from, Mark to) =>
            new(to.Forwards - from.Forwards, FfnStats.Ms(to.ForwardTicks - from.ForwardTicks), to.Ffn - from.Ffn);
    }
}
