using System.Diagnostics;
using AotFlash.Flash;
using AotFlash.Tests.Support;

namespace AotFlash.Tests.Cli;

/// <summary>Inputs that used to hang, fill memory or pass unnoticed: each ends with exit 2 and one line naming the
/// problem, quickly (in-process).</summary>
public sealed class HostileInputTests
{
    private const string Model = "stories260K-relu";

    /// <summary>Runs the CLI on a worker thread and fails the test, instead of hanging it, after 60 s.</summary>
    private static ProcessResult Bounded(Func<ProcessResult> run)
    {
        var task = Task.Run(run);
        Assert.True(task.Wait(TimeSpan.FromSeconds(60)), "the command did not finish within 60 s");
        return task.Result;
    }

    private static void AssertRefused(ProcessResult r, string message)
    {
        Assert.Equal(2, r.ExitCode);
        Assert.Equal("", r.Stdout);
        string line = Assert.Single(r.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.StartsWith("error: ", line);
        Assert.True(line.Contains(message, StringComparison.Ordinal), $"expected \"{message}\" in: {line}");
    }

    private static string Afm() => InProcess.ModelFile(Model, Model);

    private static string[] Run(params string[] rest) => ["run", "--model", Afm(), "-n", "4", "--temp", "0", "--mode", "dense", .. rest];

    [SkippableFact]
    public void AMegabytePromptIsRefusedBeforeItIsTokenized()
    {
        ModelSource.RequireShared();
        var clock = Stopwatch.StartNew();
        var r = Bounded(() => InProcess.Run(Model, Run("-p", new string('a', 1 << 20))));
        AssertRefused(r, "the prompt is 1048576 bytes, more than the model's context of 512 tokens can hold");
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(30), $"took {clock.Elapsed}");
    }

    [SkippableFact]
    public void PromptFilesThatAreNotRegularFilesAreRefused()
    {
        ModelSource.RequireShared();
        AssertRefused(Bounded(() => InProcess.Run(Model, Run("-f", "/dev/zero"))), "/dev/zero: is a character device, not a prompt file");
        string fifo = Path.Combine(Published.TempDirectory(), "prompt.fifo");
        File.Delete(fifo);
        Assert.Equal(0, Process.Start("mkfifo", fifo)!.WaitForExitAndCode());
        AssertRefused(Bounded(() => InProcess.Run(Model, Run("-f", fifo))), $"{fifo}: is a FIFO (named pipe), not a prompt file");
        AssertRefused(Bounded(() => InProcess.Run(Model, Run("-f", Path.GetTempPath()))), "is a directory");
        AssertRefused(InProcess.Run(Model, Run("-f", "")), "option '-f' needs a FILE, not an empty string");
    }

    [SkippableFact]
    public void InputFilesOfOtherCommandsMustBeRegularFiles()
    {
        ModelSource.RequireShared();
        string output = Path.Combine(Published.TempDirectory(), "never-written.afm");
        AssertRefused(Bounded(() => InProcess.Run(Model, "calibrate", "--model", Afm(), "-o", output, "--text", "/dev/zero")),
            "/dev/zero: is a character device, not a calibration text file");
        AssertRefused(Bounded(() => InProcess.Run(Model, "convert", "--weights", ModelSource.Of(Model).Weights, "--tokenizer", "/dev/urandom",
            "-o", output)), "/dev/urandom: is a character device, not a tokenizer file");
        Assert.False(File.Exists(output));
    }

    [SkippableFact]
    public void OutputsThatWouldDestroyAnInputOrADeviceAreRefused()
    {
        ModelSource.RequireShared();
        string dir = Published.TempDirectory();
        var (weights, tokenizer) = ModelSource.Of(Model);
        string checkpoint = Path.Combine(dir, "own-input.bin");
        File.Copy(weights, checkpoint, overwrite: true);
        byte[] original = File.ReadAllBytes(checkpoint);
        AssertRefused(InProcess.Run(Model, "convert", "--weights", checkpoint, "--tokenizer", tokenizer, "-o", checkpoint, "--force"),
            $"is this command's input {checkpoint}");
        Assert.Equal(original, File.ReadAllBytes(checkpoint));
        AssertRefused(InProcess.Run(Model, "convert", "--weights", checkpoint, "--tokenizer", tokenizer, "-o", "/dev/null", "--force"),
            "/dev/null: is a character device; refusing to replace it");
        Assert.Equal("a character device", Libc.NotARegularFile("/dev/null"));

        // pack: onto the model it packs, or onto the binary it copies.
        string model = Path.Combine(dir, "own-input.afm");
        File.Copy(Afm(), model, overwrite: true);
        string binary = Path.Combine(dir, "binary");
        File.WriteAllBytes(binary, new byte[12345]);
        AssertRefused(InProcess.Run(Model, "pack", model, "-o", model, "--binary", binary, "--force"), $"is this command's input {model}");
        AssertRefused(InProcess.Run(Model, "pack", model, "-o", binary, "--binary", binary, "--force"), $"is this command's input {binary}");
        Assert.Equal(12345, new FileInfo(binary).Length);
    }

    [SkippableFact]
    public void PackRefusesADamagedModelFile()
    {
        ModelSource.RequireShared();
        string dir = Published.TempDirectory();
        string model = Path.Combine(dir, "damaged.afm"), binary = Path.Combine(dir, "binary-for-damaged"), output = Path.Combine(dir, "packed");
        File.Copy(Afm(), model, overwrite: true);
        File.WriteAllBytes(binary, new byte[100]);
        using (var f = File.Open(model, FileMode.Open, FileAccess.ReadWrite))
        {
            f.Position = f.Length - 100; // in the last section (the flash checksums)
            int b = f.ReadByte();
            f.Position = f.Length - 100;
            f.WriteByte((byte)(b ^ 1));
        }
        AssertRefused(InProcess.Run(Model, "pack", model, "-o", output, "--binary", binary), "section is corrupt (checksum mismatch)");
        Assert.False(File.Exists(output));
        Assert.Empty(Directory.GetFiles(dir, ".packed.*"));
    }

    // calibrate copies the sections it does not rewrite under a new checksum: one that dense mode never read (the flash
    // checksums) is checked as it is copied, so damage is refused rather than given a valid checksum.
    [SkippableFact]
    public void CalibrateRefusesToCopyADamagedSection()
    {
        ModelSource.RequireShared();
        string dir = Published.TempDirectory();
        string model = Path.Combine(dir, "damaged-checksums.afm"), output = Path.Combine(dir, "calibrated.afm");
        File.Copy(Afm(), model, overwrite: true);
        using (var f = File.Open(model, FileMode.Open, FileAccess.ReadWrite))
        {
            f.Position = f.Length - 100; // in the last section (the flash checksums)
            int b = f.ReadByte();
            f.Position = f.Length - 100;
            f.WriteByte((byte)(b ^ 1));
        }
        // Found after calibrating (its progress lines come first), so the error is the last line, and nothing is written.
        var r = InProcess.Run(Model, "calibrate", "--model", model, "-o", output, "--tokens", "64", "-t", "1");
        Assert.Equal(2, r.ExitCode);
        Assert.Equal("", r.Stdout);
        Assert.EndsWith("flash checksums section is corrupt (checksum mismatch)", r.StderrLines[^1]);
        Assert.Equal([Path.GetFileName(model)], Directory.GetFileSystemEntries(dir).Select(Path.GetFileName));
    }

    [SkippableFact]
    public void TemporaryFilesOfAKilledWriterAreRemovedByTheNext()
    {
        ModelSource.RequireShared();
        string dir = Directory.CreateTempSubdirectory("aotflash-stale").FullName;
        string stale = Path.Combine(dir, ".model.afm.999999999.tmp"); // no such process
        File.WriteAllBytes(stale, [1, 2, 3]);
        var (weights, tokenizer) = ModelSource.Of(Model);
        var r = InProcess.Run(Model, "convert", "--weights", weights, "--tokenizer", tokenizer, "-o", Path.Combine(dir, "model.afm"));
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Equal(["model.afm"], Directory.GetFileSystemEntries(dir).Select(Path.GetFileName));
        Directory.Delete(dir, recursive: true);
    }

    [SkippableFact]
    public void StandardInputIsReadUpToWhatTheContextCanHold()
    {
        ModelSource.RequireShared();
        var ok = InProcess.RunWithInput(Model, "Once upon a time"u8.ToArray(), [.. Run("-f", "-", "--json")]);
        Assert.True(ok.ExitCode == 0, ok.Stderr);
        Assert.True(RunOutput.Parse(ok.Stdout).PromptIds.Length > 2);
        var endless = Bounded(() => InProcess.RunWithInput(Model, new byte[10 << 20], Run("-f", "-")));
        AssertRefused(endless, "standard input: the prompt is more than");
    }

    [SkippableFact]
    public void ModelPathsThatCannotBeAModelFileAreRefused()
    {
        ModelSource.RequireShared();
        string[] args(string model) => ["run", "--model", model, "-p", "x", "-n", "1"];
        AssertRefused(InProcess.Run(Model, args("")), "option '--model' needs a FILE, not an empty string");
        AssertRefused(InProcess.Run(Model, args(Path.GetTempPath())), "is a directory, not a model file");
        string fifo = Path.Combine(Published.TempDirectory(), "model.fifo");
        File.Delete(fifo);
        Assert.Equal(0, Process.Start("mkfifo", fifo)!.WaitForExitAndCode());
        AssertRefused(Bounded(() => InProcess.Run(Model, args(fifo))), "is a FIFO (named pipe), not a model file");
    }

    /// <summary>A copy of the converted model whose header <paramref name="change"/> rewrites (with a valid header
    /// checksum: only the content lies).</summary>
    private static string WithHeader(string name, Func<ModelFileHeader, ModelFileHeader> change, int appendBytes = 0)
    {
        string path = Path.Combine(Published.TempDirectory(), name + ".afm");
        File.Copy(Afm(), path, overwrite: true);
        using var stream = File.Open(path, FileMode.Open, FileAccess.ReadWrite);
        var buffer = new byte[ModelFileHeader.Size];
        stream.ReadExactly(buffer);
        stream.Position = 0;
        stream.Write(change(ModelFileHeader.Parse(buffer, path)).Serialize());
        stream.Seek(0, SeekOrigin.End);
        stream.Write(new byte[appendBytes]);
        return path;
    }

    private static ModelFileHeader With(ModelFileHeader h, IReadOnlyList<Section> sections, string? name = null) => new()
    {
        ModelName = name ?? h.ModelName, SpecHash = h.SpecHash, Shape = h.Shape, Sections = sections,
    };

    [SkippableFact]
    public void HeadersThatLieAboutTheirSectionsAreRefused()
    {
        ModelSource.RequireShared();
        string[] info(string path) => ["info", "--model", path];
        Section Of(ModelFileHeader h, SectionKind kind) => h.Sections.Single(s => s.Kind == kind);

        AssertRefused(InProcess.Run(Model, info(WithHeader("unknown-kind", h =>
            With(h, [.. h.Sections, new Section((SectionKind)77, h.FileLength, 0, 0)])))), "section 4 has unknown kind 77");
        AssertRefused(InProcess.Run(Model, info(WithHeader("duplicate-kind", h =>
            With(h, [.. h.Sections, Of(h, SectionKind.Tokenizer) with { Offset = Layout.AlignUp(h.FileLength, 4096) }])))),
            "two tokenizer sections");
        AssertRefused(InProcess.Run(Model, info(WithHeader("overlapping", h =>
            With(h, [.. h.Sections.Select(s => s.Kind == SectionKind.Tokenizer ? s with { Offset = Of(h, SectionKind.Resident).Offset } : s)])))),
            "sections overlap");
        AssertRefused(InProcess.Run(Model, info(WithHeader("trailing", h => h, appendBytes: 4096))),
            "model file has 4096 bytes after its last section");
        AssertRefused(InProcess.Run(Model, info(WithHeader("escape-name", h => With(h, h.Sections, name: "x\u001b[31mred")))),
            "the model name or spec hash holds characters a spec never has");
    }

    [SkippableFact]
    public void APredictorsSectionLongerThanFullRankPredictorsIsRefusedUnread()
    {
        ModelSource.RequireShared();
        var s = InProcess.Model(Model).Shape;
        long most = AotFlash.Sparsity.PredictorSet.MaxSectionLength(s.Layers, s.Dim, s.HiddenDim);
        long length = Layout.AlignUp(most + 1, 4096);
        string path = WithHeader("huge-predictors", h =>
            With(h, [.. h.Sections, new Section(SectionKind.Predictors, Layout.AlignUp(h.FileLength, 4096), length, 0)]),
            appendBytes: checked((int)(Layout.AlignUp(new FileInfo(Afm()).Length, 4096) - new FileInfo(Afm()).Length + length)));
        AssertRefused(InProcess.Run(Model, "run", "--model", path, "--mode", "flash", "-p", "x", "-n", "1"),
            $"predictors section is {length} bytes, more than predictors of full rank take ({most})");
        // Dense mode does not read the predictors at all.
        var dense = InProcess.Run(Model, "run", "--model", path, "--mode", "dense", "-p", "x", "-n", "1", "--temp", "0");
        Assert.True(dense.ExitCode == 0, dense.Stderr);
    }
}

internal static class ProcessExtensions
{
    public static int WaitForExitAndCode(this Process process)
    {
        process.WaitForExit();
        return process.ExitCode;
    }
}
