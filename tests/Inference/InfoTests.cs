using AotFlash.Tests.Support;

namespace AotFlash.Tests.Inference;

/// <summary><c>info</c> describes each family's math and bundle layout from the compiled spec.</summary>
public sealed class InfoTests
{
    [Theory]
    [InlineData("stories260K-relu", "rmsnorm (eps 1E-05), rope (theta 10000), gated ffn, relu", "[w1 row | w3 row | w2 column]")]
    [InlineData("opt-tiny", "layernorm (eps 1E-05), learned positions, biases, plain ffn, relu", "[fc1 row | fc2 column | fc1_bias element]")]
    public void DescribesTheFamily(string model, string math, string bundle)
    {
        var r = InProcess.Run(model, "info");
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Contains("math           " + math, r.Stdout);
        Assert.Contains(bundle, r.Stdout);
    }

    [SkippableFact]
    public void NamesTheModelFileItReads()
    {
        ModelSource.RequireShared();
        string afm = InProcess.ModelFile("stories260K", "stories260K");
        var r = InProcess.Run("stories260K", "info", "--model", afm);
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Contains("(matches this binary)", r.Stdout);
        // info describes rather than refuses: a file made for another spec is named as such.
        var other = InProcess.Run("stories260K-relu", "info", "--model", afm);
        Assert.True(other.ExitCode == 0, other.Stderr);
        Assert.Contains("'stories260K', spec " + InProcess.Model("stories260K").SpecHash + " (DOES NOT match this binary)", other.Stdout);
    }
}
