using System.Text;
using AotFlash.Flash;
using AotFlash.Inference;
using AotFlash.Sampling;
using AotFlash.Tests.Sparsity;
using AotFlash.Tests.Support;
using AotFlash.Tokenizers;

namespace AotFlash.Tests.Inference;

/// <summary><see cref="Session.Generate"/> splits its forward passes into the prompt phase (up to and including the
/// pass that gives the first token) and the decode phase (every pass after it), each with its own FFN counters
/// (in-process, JIT).</summary>
public sealed class SessionPhaseTests
{
    private const string Model = "stories260K-relu";

    private static Transformer Load(string afm, EngineMode mode)
    {
        using var file = ModelFile.Open(afm);
        return Engine.Load(InProcess.Model(Model), file, new EngineOptions { Mode = mode, Threads = 1 });
    }

    private static Session Greedy(Transformer t) =>
        new(t, TokenizerSection.Load(t.Info.Tokenizer.Kind, t.Weights.TokenizerData, t.Info.Shape.Vocab), new Sampler(t.Info.Shape.Vocab, SamplerOptions.Greedy));

    private static void Dispose(Transformer t)
    {
        t.Dispose();
        t.Weights.Dispose();
    }

    [SkippableTheory]
    [InlineData(EngineMode.Naive)]
    [InlineData(EngineMode.Flash)]
    public void ThePhasesPartitionTheForwardPassesAndTheCounters(EngineMode mode)
    {
        ModelSource.RequireShared();
        var t = Load(mode == EngineMode.Flash ? FlashModeTests.Calibrated(Model) : InProcess.ModelFile(Model, Model), mode);
        try
        {
            var session = Greedy(t);
            int[] prompt = session.Tokenize("Lily and Tom went to the park"u8);
            var first = session.Generate(prompt, 20, 0, endAtStopToken: false);
            Assert.Equal(20, first.GeneratedIds.Count);
            // Prompt: one pass per prompt token, the last of which gives the first token; decode: one per generated
            // token fed back, which is all but the last.
            Assert.Equal(prompt.Length, first.Prompt.Forwards);
            Assert.Equal(first.GeneratedIds.Count - 1, first.Decode.Forwards);
            Assert.Equal(first.Prompt.Forwards + first.Decode.Forwards, first.Forwards);
            Assert.True(first.Prompt.ForwardMs > 0 && first.Decode.ForwardMs > 0);
            // The source's counters are not cleared: a fresh source's totals are the two phases' sum, and a second
            // generation adds to them.
            Assert.Equal(t.FfnSource.Stats, first.Prompt.Ffn + first.Decode.Ffn);
            var second = session.Generate(prompt, 5, 0);
            Assert.Equal(t.FfnSource.Stats, first.Prompt.Ffn + first.Decode.Ffn + second.Prompt.Ffn + second.Decode.Ffn);
            foreach (var phase in new[] { first.Prompt, first.Decode, second.Prompt, second.Decode })
            {
                Assert.Equal(phase.Forwards * t.Info.Shape.Layers * (long)t.Info.Shape.HiddenDim, phase.Ffn.NeuronsTotal);
                // Naive mode reads every layer's whole FFN once per pass: once for the prompt (one block), once per
                // decoded token.
                long passes = phase == first.Prompt || phase == second.Prompt ? 1 : phase.Forwards;
                if (mode == EngineMode.Naive) Assert.Equal(passes * t.Info.Layout.FlashBytes, phase.Ffn.BytesRead);
                else Assert.True(phase.Ffn.CacheHits + phase.Ffn.CacheMisses > 0);
            }
            var decode = TokenStats.Of(first.Decode, t);
            Assert.NotNull(decode);
            Assert.Equal(first.Decode.Ffn.BytesRead / (double)first.Decode.Forwards, decode.Value.BytesRead);
        }
        finally { Dispose(t); }
    }

    [SkippableFact]
    public void OneTokenHasNoDecodePhase()
    {
        ModelSource.RequireShared();
        var t = Load(InProcess.ModelFile(Model, Model), EngineMode.Dense);
        try
        {
            var session = Greedy(t);
            var g = session.Generate(session.Tokenize("Once upon a time"u8), 1, 0);
            Assert.Single(g.GeneratedIds);
            Assert.Equal(g.PromptIds.Length, g.Prompt.Forwards);
            Assert.Equal(0, g.Decode.Forwards);
            Assert.Null(TokenStats.Of(g.Decode, t));
            Assert.NotNull(TokenStats.Of(g.Prompt, t));
        }
        finally { Dispose(t); }
    }

    // The reference's greedy continuation of this prompt ends with a stop token after 216 tokens: kept going, the
    // generation keeps the stop token and runs the asked number of tokens, as bench needs.
    [SkippableFact]
    public void NotEndingAtAStopTokenGeneratesTheAskedNumberOfTokens()
    {
        ModelSource.RequireShared();
        var reference = GreedyReference.Load(Model).Single(r => r.Prompt == "One day, a big red ball");
        Assert.True(reference.Generated.Length < reference.MaxNew, "the reference no longer ends at a stop token");
        var t = Load(InProcess.ModelFile(Model, Model), EngineMode.Dense);
        try
        {
            var session = Greedy(t);
            int[] prompt = session.Tokenize(Encoding.UTF8.GetBytes(reference.Prompt));
            var ended = session.Generate(prompt, reference.Generated.Length + 3, 0);
            Assert.Equal(StopReason.StopToken, ended.StopReason);
            Assert.Equal(reference.Generated, ended.GeneratedIds);
            Assert.Equal(reference.Generated.Length, ended.Decode.Forwards); // the pass that sampled the stop token counts

            var kept = session.Generate(prompt, reference.Generated.Length + 3, 0, endAtStopToken: false);
            Assert.Equal(StopReason.Length, kept.StopReason);
            Assert.Equal(reference.Generated.Length + 3, kept.GeneratedIds.Count);
            Assert.Equal(reference.Generated, kept.GeneratedIds.Take(reference.Generated.Length));
            Assert.Contains(kept.GeneratedIds[reference.Generated.Length], t.Info.Tokenizer.Stop);
            Assert.Equal(kept.GeneratedIds.Count - 1, kept.Decode.Forwards);
        }
        finally { Dispose(t); }
    }

    [SkippableFact]
    public void CancellingStopsBetweenPromptBlocksAndTokens()
    {
        ModelSource.RequireShared();
        var t = Load(InProcess.ModelFile(Model, Model), EngineMode.Dense);
        try
        {
            var session = Greedy(t);
            int[] prompt = session.Tokenize("Lily and Tom went to the park"u8);
            using var cancelled = new CancellationTokenSource();
            cancelled.Cancel();
            var none = session.Generate(prompt, 20, 0, cancel: cancelled.Token);
            Assert.Equal(StopReason.Callback, none.StopReason);
            Assert.Equal(0, none.Forwards);
            Assert.Empty(none.GeneratedIds);

            using var later = new CancellationTokenSource();
            int countdown = 3;
            var some = session.Generate(prompt, 20, 0, (_, _) =>
            {
                if (--countdown == 0) later.Cancel();
                return true;
            }, cancel: later.Token);
            Assert.Equal(StopReason.Callback, some.StopReason);
            Assert.Equal(3, some.GeneratedIds.Count);
        }
        finally { Dispose(t); }
    }
}
