using AotFlash.Tests.Support;

namespace AotFlash.Tests.EndToEnd;

/// <summary>Bad input to the published binary: exit code 2, one clear line on stderr, nothing on stdout, no file written.</summary>
public sealed class BadInputTests
{
    private const string Model = "stories260K-relu";

    private static string Exe()
    {
        ModelSource.RequireShared();
        return Published.Executable(Model);
    }

    private static string Afm(string exe) => Path.Combine(Path.GetDirectoryName(exe)!, Model + ".afm");

    private static string CopyOf(string file, string dir)
    {
        string copy = Path.Combine(dir, Path.GetFileName(file));
        File.Copy(file, copy);
        return copy;
    }

    [SkippableFact]
    public void UnknownOptionAndBadNumbers()
    {
        string exe = Exe();
        ProcessRunner.Run(exe, ["run", "--bogus"]).AssertBadInput("unknown option '--bogus'");
        ProcessRunner.Run(exe, ["run", "-n", "many"]).AssertBadInput("'--n-predict' must be an integer");
        ProcessRunner.Run(exe, ["run", "--temp", "-1"]).AssertBadInput("temperature");
        ProcessRunner.Run(exe, ["run", "--top-p", "0"]).AssertBadInput("top-p");
        ProcessRunner.Run(exe, ["frobnicate"]).AssertBadInput("unknown command 'frobnicate'");
        ProcessRunner.Run(exe, ["run", "--mode", "warp"]).AssertBadInput("unknown --mode 'warp' (dense, naive, flash)");
        ProcessRunner.Run(exe, ["run", "--dram-budget", "lots"]).AssertBadInput("bad DRAM budget 'lots'");
    }

    [SkippableFact]
    public void PromptLongerThanTheContext()
    {
        // Short enough in bytes to be tokenized, too many tokens: "7 " is two tokens.
        string prompt = string.Concat(Enumerable.Repeat("7 ", 400));
        ProcessRunner.Run(Exe(), ["run", "-p", prompt, "-n", "1"]).AssertBadInput("longer than the model's context of 512");
        // Too long in bytes for any tokenization to fit: refused before it is tokenized.
        prompt = string.Concat(Enumerable.Repeat("Once upon a time there was a dog. ", 120));
        ProcessRunner.Run(Exe(), ["run", "-p", prompt, "-n", "1"]).AssertBadInput("the prompt is 4080 bytes, more than the model's context of 512 tokens can hold");
    }

    [SkippableFact]
    public void InvalidUtf8PromptIsTokenizedByByteFallback()
    {
        string dir = Published.TempDirectory();
        string file = Path.Combine(dir, "prompt.bin");
        File.WriteAllBytes(file, [0x4F, 0x6E, 0xC3, 0x28, 0xFF, 0xFE, 0x80, 0x00, 0x61]);
        var r = ProcessRunner.Run(Exe(), ["run", "-f", file, "-n", "3", "--temp", "0", "--json"]);
        Assert.True(r.ExitCode == 0, r.Stderr);
        var output = RunOutput.Parse(r.Stdout);
        Assert.Equal(3, output.GeneratedIds.Length);
        Assert.All(output.PromptIds, id => Assert.InRange(id, 0, 511));
    }

    [SkippableFact]
    public void MissingModelFile()
    {
        string exe = Exe();
        string bare = Path.Combine(Path.GetDirectoryName(exe)!, "build", Model);
        ProcessRunner.Run(bare, ["run", "-p", "x"]).AssertBadInput("carries no model file");
        ProcessRunner.Run(exe, ["run", "--model", "/nonexistent/m.afm"]).AssertBadInput("/nonexistent/m.afm: cannot open model file");
    }

    [SkippableFact]
    public void TruncatedModelFile()
    {
        string exe = Exe(), dir = Published.TempDirectory();
        string cut = CopyOf(Afm(exe), dir);
        using (var f = File.OpenWrite(cut)) f.SetLength(f.Length - 5000);
        ProcessRunner.Run(exe, ["run", "--model", cut]).AssertBadInput("truncated model file");
        using (var f = File.OpenWrite(cut)) f.SetLength(100);
        ProcessRunner.Run(exe, ["run", "--model", cut]).AssertBadInput("truncated model file");
    }

    [SkippableTheory]
    [InlineData(100, "header is corrupt")]          // inside the header
    [InlineData(4096 + 1000, "resident section is corrupt")]
    [InlineData(393216 + 12345, "flash section is corrupt")]
    public void CorruptModelFile(int offset, string expected)
    {
        string exe = Exe(), dir = Published.TempDirectory();
        string bad = CopyOf(Afm(exe), dir);
        using (var f = new FileStream(bad, FileMode.Open, FileAccess.ReadWrite))
        {
            f.Position = offset;
            int b = f.ReadByte();
            f.Position = offset;
            f.WriteByte((byte)(b ^ 0x10));
        }
        ProcessRunner.Run(exe, ["run", "--mode", "dense", "--model", bad]).AssertBadInput(expected);
    }

    [SkippableFact]
    public void NotAModelFile()
    {
        var (weights, _) = ModelSource.Of(Model);
        ProcessRunner.Run(Exe(), ["run", "--model", weights]).AssertBadInput("not an AotFlash model file");
    }

    [SkippableFact]
    public void ModelFileOfAnotherSpec()
    {
        // stories260K (silu) has the same shape as stories260K-relu: only the spec hash tells them apart.
        string other = InProcess.ModelFile("stories260K", "stories260K");
        ProcessRunner.Run(Exe(), ["run", "--model", other]).AssertBadInput("model file is for 'stories260K'");
    }

    [SkippableFact]
    public void ConvertRejectsWrongTruncatedOrMismatchedWeights()
    {
        string exe = Exe(), dir = Published.TempDirectory();
        var (weights, tokenizer) = ModelSource.Of(Model);
        string output = Path.Combine(dir, "out.afm");

        string truncated = CopyOf(weights, dir);
        using (var f = File.OpenWrite(truncated)) f.SetLength(f.Length - 4);
        ProcessRunner.Run(exe, ["convert", "-w", truncated, "-k", tokenizer, "-o", output]).AssertBadInput("truncated llama2.c v0 checkpoint");

        var (babyWeights, babyTokenizer) = ModelSource.Of("babyllama-relu");
        ProcessRunner.Run(exe, ["convert", "-w", babyWeights, "-k", tokenizer, "-o", output])
            .AssertBadInput("does not fit spec 'stories260K-relu': it has dim 128 (spec: 64)");
        ProcessRunner.Run(exe, ["convert", "-w", weights, "-k", babyTokenizer, "-o", output]).AssertBadInput("tokenizer");

        string garbage = Path.Combine(dir, "garbage.bin");
        File.WriteAllBytes(garbage, new byte[1000]);
        ProcessRunner.Run(exe, ["convert", "-w", garbage, "-k", tokenizer, "-o", output]).AssertBadInput("not a llama2.c checkpoint");
        ProcessRunner.Run(exe, ["convert", "-w", weights, "-k", garbage, "-o", output]).AssertBadInput("tokenizer");

        Assert.DoesNotContain(Directory.GetFiles(dir), f => f.EndsWith(".afm") || f.EndsWith(".tmp"));
    }

    [SkippableFact]
    public void ConvertAndPackRefuseToOverwriteWithoutForce()
    {
        string exe = Exe(), dir = Published.TempDirectory();
        var (weights, tokenizer) = ModelSource.Of(Model);
        string existing = Path.Combine(dir, "keep.afm");
        File.WriteAllText(existing, "precious");
        ProcessRunner.Run(exe, ["convert", "-w", weights, "-k", tokenizer, "-o", existing]).AssertBadInput("already exists (use --force");
        ProcessRunner.Run(exe, ["pack", Afm(exe), "-o", existing]).AssertBadInput("already exists (use --force");
        Assert.Equal("precious", File.ReadAllText(existing));
        Assert.Single(Directory.GetFiles(dir));
    }

    [SkippableFact]
    public void PackedCopyRunsWithoutModelOption()
    {
        string exe = Exe(), dir = Published.TempDirectory();
        string packed = Path.Combine(dir, "again");
        // Repacking a packed executable replaces its payload instead of stacking a second one.
        var r = ProcessRunner.Run(exe, ["pack", Afm(exe), "-o", packed]);
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Equal(new FileInfo(exe).Length, new FileInfo(packed).Length);
        var run = ProcessRunner.Run(packed, ["run", "-p", "Once upon a time", "-n", "8", "--temp", "0"]);
        Assert.True(run.ExitCode == 0, run.Stderr);
        Assert.StartsWith("Once upon a time, there was a little girl", run.Stdout);
    }
}
