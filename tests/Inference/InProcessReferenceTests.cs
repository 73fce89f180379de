using AotFlash.Tests.Support;
using Xunit.Abstractions;

namespace AotFlash.Tests.Inference;

/// <summary>The same reference check in the test process (JIT), with one and with two compute threads.</summary>
public sealed class InProcessReferenceTests(ITestOutputHelper output)
{
    public static TheoryData<string, int> Cases()
    {
        var data = new TheoryData<string, int>();
        foreach (var model in ModelSource.ReferenceModels)
        {
            data.Add(model, 1);
            data.Add(model, 2);
        }
        return data;
    }

    [SkippableTheory]
    [MemberData(nameof(Cases))]
    public void MatchesReference(string model, int threads)
    {
        ModelSource.RequireShared();
        string afm = InProcess.ModelFile(model, model);
        float worst = 0;
        foreach (var reference in GreedyReference.Load(model))
        {
            var r = InProcess.Run(model, "run", "--model", afm, "-p", reference.Prompt, "--temp", "0", "--json", "--dump-logits", "4",
                "-n", reference.MaxNew.ToString(), "-t", threads.ToString());
            Assert.True(r.ExitCode == 0, r.Stderr);
            worst = Math.Max(worst, RunOutput.Parse(r.Stdout).AssertMatches(reference));
        }
        output.WriteLine($"{model}, {threads} threads: max logit error {worst:E2}");
    }

    [SkippableFact]
    public void HalfPrecisionWeightsStayCloseToTheReference()
    {
        ModelSource.RequireShared();
        string afm = InProcess.ModelFile("stories260K-f16", "stories260K");
        int agreeing = 0, total = 0;
        float worst = 0;
        foreach (var reference in GreedyReference.Load("stories260K"))
        {
            var r = InProcess.Run("stories260K-f16", "run", "--model", afm, "-p", reference.Prompt, "--temp", "0", "--json",
                "--dump-logits", "4", "-n", reference.MaxNew.ToString(), "-t", "1");
            Assert.True(r.ExitCode == 0, r.Stderr);
            var run = RunOutput.Parse(r.Stdout);
            Assert.Equal(reference.PromptIds, run.PromptIds);
            worst = Math.Max(worst, run.AssertLogits(reference, tolerance: 0.05f));
            int same = run.GeneratedIds.Zip(reference.Generated).TakeWhile(p => p.First == p.Second).Count();
            agreeing += same;
            total += reference.Generated.Length;
        }
        output.WriteLine($"f16: max logit error {worst:E2}; greedy tokens before first divergence {agreeing}/{total}");
        Assert.True(agreeing >= total / 4, $"f16 greedy output diverges too early ({agreeing}/{total})");
    }

    [SkippableFact]
    public void SamplingIsReproducibleWithASeed()
    {
        ModelSource.RequireShared();
        string afm = InProcess.ModelFile("stories260K", "stories260K");
        string[] args = ["run", "--model", afm, "-p", "Lily", "-n", "40", "--temp", "1", "--top-k", "20", "--top-p", "0.9", "-s", "42", "--json"];
        var a = RunOutput.Parse(InProcess.Run("stories260K", args).Stdout);
        var b = RunOutput.Parse(InProcess.Run("stories260K", args).Stdout);
        Assert.Equal(a.GeneratedIds, b.GeneratedIds);
        args[^2] = "43";
        var c = RunOutput.Parse(InProcess.Run("stories260K", args).Stdout);
        Assert.NotEqual(a.GeneratedIds, c.GeneratedIds);
    }
}
