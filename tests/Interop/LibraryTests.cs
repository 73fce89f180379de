using AotFlash.Tests.Support;
using Xunit.Abstractions;

namespace AotFlash.Tests.Interop;

/// <summary>The published C library of the shipped default model, driven by the C and Python examples and by a C
/// program that misuses the API and generates on two threads at once.</summary>
public sealed class LibraryTests(ITestOutputHelper output)
{
    private const string Model = "stories260K-relu";
    private const string Prompt = "Once upon a time";

    private static PublishedLibrary Library()
    {
        ModelSource.RequireShared();
        return Published.Library(Model);
    }

    /// <summary>The executable's streamed greedy output, published with the library (same model file, same predictors).</summary>
    private static string CliStory(PublishedLibrary lib)
    {
        var r = ProcessRunner.Run(lib.Executable, ["run", "-p", Prompt, "-n", "100", "--temp", "0"]);
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.True(r.Stdout.Length > Prompt.Length + 100, $"the CLI wrote too little: {r.Stdout}");
        return r.Stdout;
    }

    /// <summary>Compiles C sources against the library with the system compiler.</summary>
    private static string CompileC(PublishedLibrary lib, string source, params string[] flags)
    {
        string exe = Path.Combine(Published.TempDirectory(), Path.GetFileNameWithoutExtension(source));
        var r = ProcessRunner.Run("cc", ["-std=c99", "-Wall", "-Werror", "-pedantic", .. flags, "-I", lib.Directory, "-o", exe, source,
                                         "-L", lib.Directory, $"-l:{Path.GetFileName(lib.Path)}", $"-Wl,-rpath,{lib.Directory}", "-lm"]);
        Assert.True(r.ExitCode == 0, $"cc {source} failed:\n{r.Stderr}{r.Stdout}");
        return exe;
    }

    [SkippableFact]
    public void PublishShipsTheHeaderBesideTheLibrary()
    {
        var lib = Library();
        Assert.Equal($"lib{Model}.so", Path.GetFileName(lib.Path));
        Assert.Equal(File.ReadAllText(Path.Combine(TestPaths.RepoRoot, "runtime", "Interop", "aotflash.h")),
                     File.ReadAllText(Path.Combine(lib.Directory, "aotflash.h")));
        output.WriteLine($"{lib.Path}: {new FileInfo(lib.Path).Length} bytes with the model packed in");
    }

    [SkippableFact]
    public void CExampleStreamsTheCliGreedyStory()
    {
        var lib = Library();
        string example = CompileC(lib, Path.Combine(TestPaths.RepoRoot, "examples", "c", "stream.c"));
        var r = ProcessRunner.Run(example, [Prompt, "100", "0"]);
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Equal(CliStory(lib), r.Stdout);
        Assert.Contains("[100 tokens, flash mode", r.Stderr);
        output.WriteLine(r.Stdout + r.Stderr);
    }

    [SkippableFact]
    public void CExampleReadsAModelFileToo()
    {
        var lib = Library();
        string example = CompileC(lib, Path.Combine(TestPaths.RepoRoot, "examples", "c", "stream.c"));
        var r = ProcessRunner.Run(example, [Prompt, "100", "0"], environment: new Dictionary<string, string> { ["AOTFLASH_MODEL"] = lib.ModelFile });
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Equal(CliStory(lib), r.Stdout);

        var missing = ProcessRunner.Run(example, [Prompt], environment: new Dictionary<string, string> { ["AOTFLASH_MODEL"] = "/nonexistent.afm" });
        Assert.Equal(1, missing.ExitCode);
        Assert.Equal("", missing.Stdout);
        var line = Assert.Single(missing.StderrLines);
        Assert.StartsWith("error: opening the model: /nonexistent.afm: cannot open model file", line);
    }

    [SkippableFact]
    public void PythonExampleStreamsTheCliGreedyStory()
    {
        var lib = Library();
        bool hasPython = Environment.GetEnvironmentVariable("PATH")!.Split(':').Any(dir => File.Exists(Path.Combine(dir, "python3")));
        Skip.IfNot(hasPython, "python3 is not on PATH");
        var r = ProcessRunner.Run("python3", [Path.Combine(TestPaths.RepoRoot, "examples", "python", "stream.py"), lib.Path, Prompt, "100", "0"]);
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Equal(CliStory(lib), r.Stdout);
        Assert.Contains("[100 tokens, flash mode", r.Stderr);
    }

    [SkippableFact]
    public void MisuseGivesStatusesAndTwoThreadsMatchTheirSingleThreadedOutput()
    {
        var lib = Library();
        string program = CompileC(lib, Path.Combine(TestPaths.RepoRoot, "tests", "Interop", "misuse.c"), "-pthread");
        var r = ProcessRunner.Run(program, [lib.ModelFile]);
        output.WriteLine(r.Stdout + r.Stderr);
        Assert.True(r.ExitCode == 0, $"exit code {r.ExitCode}:\n{r.Stdout}{r.Stderr}");
        string[] lines = r.Stdout.TrimEnd('\n').Split('\n');
        Assert.DoesNotContain(lines, l => l.StartsWith("FAIL", StringComparison.Ordinal));
        Assert.Matches(@"^passed (\d+) of \1 checks$", lines[^1]);
        // The concurrent part ran: three rounds of two threads.
        Assert.Equal(6, lines.Count(l => l.Contains("same tokens as alone", StringComparison.Ordinal) && l.StartsWith("ok", StringComparison.Ordinal)));
    }
}
