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
}
