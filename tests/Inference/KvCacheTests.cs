using System.Globalization;
using AotFlash.Flash;
using AotFlash.Inference;
using AotFlash.Tests.Support;
using Xunit.Abstractions;

namespace AotFlash.Tests.Inference;

/// <summary>A spec's <c>kv_cache: f16</c>: tests/specs/babyllama-relu-kvf16.yaml is babyllama-relu with an f16 cache. The
/// cache's type is not part of the layout, so one model file serves both specs and only the cache differs. That blocks
/// of tokens give the logits of token by token with it, bit for bit, is in <see cref="BlockForwardTests"/>.</summary>
public sealed class KvCacheTests(ITestOutputHelper output)
{
    private const string Spec = "babyllama-relu", HalfSpec = "babyllama-relu-kvf16";

    // Against the f32 reference over its 5 prompts: the largest logit error at positions 0..3, and the greedy tokens before
    // the first divergence. Measured: 0.0014 (rounding a key or value to a half moves it by up to 2^-11 of itself), and all
    // 1149 tokens the reference generates. Bounds: about 3x the error (it must not be 0: the cache is half), a third of the
    // agreement.
    [SkippableFact]
    public void AnF16CacheMovesTheLogitsByItsRounding()
    {
        ModelSource.RequireShared();
        string afm = InProcess.ModelFile(Spec, Spec);
        float worst = 0;
        int agreeing = 0, total = 0;
        foreach (var reference in GreedyReference.Load(Spec))
        {
            var r = InProcess.Run(HalfSpec, "run", "--model", afm, "-p", reference.Prompt, "--temp", "0", "--json", "--dump-logits", "4",
                "-n", reference.MaxNew.ToString(CultureInfo.InvariantCulture), "-t", "2");
            Assert.True(r.ExitCode == 0, r.Stderr);
            var run = RunOutput.Parse(r.Stdout);
            Assert.Equal(reference.PromptIds, run.PromptIds);
            worst = Math.Max(worst, run.AssertLogits(reference, 0.005f));
            agreeing += run.GeneratedIds.Zip(reference.Generated).TakeWhile(p => p.First == p.Second).Count();
            total += reference.Generated.Length;
        }
        output.WriteLine($"f16 cache against the f32 reference: max logit error {worst:E2}; greedy tokens before first divergence {agreeing}/{total}");
        Assert.True(worst > 0, "an f16 cache rounds the keys and values, so the logits must move");
        Assert.True(worst <= 0.005f, $"max logit error {worst}");
        Assert.True(agreeing >= 383, $"greedy output diverges too early ({agreeing}/{total})");
    }

    [SkippableFact]
    public void TheCacheTakesHalfTheBytesInInfoAndInTheAccount()
    {
        ModelSource.RequireShared();
        // 2 (keys, values) x 5 layers x 256 positions x 64 (4 kv heads of 16) x 4 or 2 bytes
        const long Elements = 2L * 5 * 256 * 64;
        Assert.Contains($"kv cache       {Elements * 4 / 1024}.0 KiB (f32)", InProcess.Run(Spec, "info").Stdout);
        Assert.Contains($"kv cache       {Elements * 2 / 1024}.0 KiB (f16)", InProcess.Run(HalfSpec, "info").Stdout);
        string afm = InProcess.ModelFile(Spec, Spec);
        long Held(string spec)
        {
            using var file = ModelFile.Open(afm);
            var t = Engine.Load(InProcess.Model(spec), file, new EngineOptions { Mode = EngineMode.Dense, Threads = 1 });
            try { return t.Weights.Account.Current; }
            finally { t.Dispose(); t.Weights.Dispose(); }
        }
        Assert.Equal(Elements * 2, Held(Spec) - Held(HalfSpec));
    }
}
