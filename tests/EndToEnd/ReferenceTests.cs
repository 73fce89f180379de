using AotFlash.Tests.Support;
using Xunit.Abstractions;

namespace AotFlash.Tests.EndToEnd;

/// <summary>The published Native AOT binaries against ../shared/reference: greedy ids exact, logits within 1e-4.</summary>
public sealed class ReferenceTests(ITestOutputHelper output)
{
    public static TheoryData<string> Models => new(ModelSource.ReferenceModels);

    [SkippableTheory]
    [MemberData(nameof(Models))]
    public void PublishedBinaryReproducesReference(string model)
    {
        ModelSource.RequireShared();
        string exe = Published.Executable(model);
        float worst = 0;
        foreach (var reference in GreedyReference.Load(model))
        {
            var r = ProcessRunner.Run(exe, ["run", "--mode", "dense", "-p", reference.Prompt, "--temp", "0", "--json", "--dump-logits", "4",
                                            "-n", reference.MaxNew.ToString(), "-t", "1"]);
            Assert.True(r.ExitCode == 0, r.Stderr);
            worst = Math.Max(worst, RunOutput.Parse(r.Stdout).AssertMatches(reference));
        }
        output.WriteLine($"{model}: all prompts match; max logit error {worst:E2}");
    }

    // The OPT and Falcon families and the GPT-2 tokenizer under Native AOT: publish.sh converts the Hugging Face folder
    // (and calibrates a ReLU model); the binary then reproduces the reference from the prompt text, and runs in flash
    // mode when it has predictors.
    [SkippableTheory]
    [InlineData("opt-tiny")]
    [InlineData("falcon-tiny")]
    [InlineData("falcon-tiny-relu")]
    public void PublishedHfBinaryReproducesReference(string model)
    {
        ModelSource.RequireShared();
        string exe = Published.Executable(model);
        foreach (var reference in HfReference.Load(model + "-hf"))
        {
            var r = ProcessRunner.Run(exe, ["run", "--mode", "dense", "-p", reference.Prompt, "--temp", "0", "--json", "--dump-logits", "4",
                                            "-n", reference.Ids.Length.ToString()]);
            Assert.True(r.ExitCode == 0, r.Stderr);
            reference.AssertMatches(RunOutput.Parse(r.Stdout));
        }
        var run = ProcessRunner.Run(exe, ["run", "-p", "Once upon a time", "-n", "16", "--json", "--measure-recall"]);
        Assert.True(run.ExitCode == 0, run.Stderr);
        var stats = RunOutput.Parse(run.Stdout).Stats;
        if (model == "falcon-tiny")
        {
            Assert.Equal("dense", stats.GetProperty("mode").GetString()); // GELU: no predictors to train
            return;
        }
        Assert.Equal("flash", stats.GetProperty("mode").GetString());
        output.WriteLine($"{model} AOT flash: recall {stats.GetProperty("predictor_recall").GetDouble():F3}, " +
                         $"FFN density {stats.GetProperty("ffn_density").GetDouble():F3}");
    }
}
