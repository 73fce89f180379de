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

    // The OPT family and the GPT-2 tokenizer under Native AOT: publish.sh converts the Hugging Face folder (and
    // calibrates it); the binary then reproduces the reference from the prompt text, densely and in flash mode.
    [SkippableFact]
    public void PublishedOptBinaryReproducesReference()
    {
        ModelSource.RequireShared();
        string exe = Published.Executable("opt-tiny");
        foreach (var reference in Inference.OptReferenceTests.OptReference.Load())
        {
            var r = ProcessRunner.Run(exe, ["run", "--mode", "dense", "-p", reference.Prompt, "--temp", "0", "--json", "--dump-logits", "4",
                                            "-n", reference.Ids.Length.ToString()]);
            Assert.True(r.ExitCode == 0, r.Stderr);
            reference.AssertMatches(RunOutput.Parse(r.Stdout));
        }
        var flash = ProcessRunner.Run(exe, ["run", "-p", "Once upon a time", "-n", "16", "--json", "--measure-recall"]);
        Assert.True(flash.ExitCode == 0, flash.Stderr);
        var stats = RunOutput.Parse(flash.Stdout).Stats;
        Assert.Equal("flash", stats.GetProperty("mode").GetString());
        output.WriteLine($"opt-tiny AOT flash: recall {stats.GetProperty("predictor_recall").GetDouble():F3}, " +
                         $"FFN density {stats.GetProperty("ffn_density").GetDouble():F3}");
    }
}
