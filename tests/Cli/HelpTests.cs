using AotFlash.Tests.Support;

namespace AotFlash.Tests.Cli;

/// <summary><c>--help</c> and <c>-h</c> ask for a command's help only where an option name is expected, not as the
/// value of an option that takes one (in-process).</summary>
public sealed class HelpTests
{
    private const string Model = "stories260K-relu";

    private static void AssertHelp(ProcessResult r, string command)
    {
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.StartsWith($"usage: {Model} {command} ", r.Stdout);
        Assert.Equal("", r.Stderr);
    }

    [Theory]
    [InlineData("run", "--help")]
    [InlineData("run", "-h")]
    [InlineData("run", "-n", "1", "--help")]
    [InlineData("run", "--temp", "0", "-h", "-n", "1")]
    [InlineData("run", "--prompt=x", "--help")]
    [InlineData("run", "--bogus", "--help")]
    [InlineData("info", "--tensors", "--help")]
    [InlineData("pack", "model.afm", "-h")]
    [InlineData("bench", "-f", "prompt.txt", "--prompt-tokens", "64", "--help")]
    [InlineData("perplexity", "-f", "story.txt", "--kl-base", "base.klbase", "--help")]
    [InlineData("export", "-o", "out.gguf", "--help")]
    [InlineData("serve", "--port", "1", "--help")]
    public void HelpWhereAnOptionNameIsExpected(params string[] args) => AssertHelp(InProcess.Run(Model, args), args[0]);

    [SkippableTheory]
    [InlineData("-p", "--help")]
    [InlineData("--prompt", "-h")]
    public void HelpAsThePromptIsThePrompt(string option, string prompt)
    {
        ModelSource.RequireShared();
        var r = InProcess.Run(Model, "run", option, prompt, "-n", "1", "--temp", "0", "--json", "--mode", "dense",
                              "--model", InProcess.ModelFile(Model, Model));
        Assert.True(r.ExitCode == 0, r.Stderr);
        var run = RunOutput.Parse(r.Stdout);
        Assert.Single(run.GeneratedIds);
        Assert.True(run.PromptIds.Length > 1, "the prompt was tokenized to BOS alone");
    }

    [Fact]
    public void HelpAsAnotherOptionsValueIsThatValue()
    {
        InProcess.Run(Model, "info", "--model", "--help").AssertBadInput("--help: cannot open model file");
        InProcess.Run(Model, "run", "-n", "-h").AssertBadInput("'--n-predict' must be an integer");
    }

    // Nothing to do is a usage error like any other: one line on stderr, exit 2, nothing on stdout.
    [Fact]
    public void NoArgumentsIsOneErrorLine() => InProcess.Run(Model).AssertBadInput(
        "no command given (commands: run, convert, calibrate, pack, bench, perplexity, export, info, soak, serve; see --help)");

    [Fact]
    public void TopLevelHelpGoesToStdout()
    {
        var r = InProcess.Run(Model, "--help");
        Assert.Equal(0, r.ExitCode);
        Assert.Contains("usage: " + Model + " <command> [options]", r.Stdout);
        Assert.Equal("", r.Stderr);
    }
}
