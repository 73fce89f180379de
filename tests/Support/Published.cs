namespace AotFlash.Tests.Support;

/// <summary>
/// The Native AOT executables of the reference models, published once per test run by publish.sh (the same command a
/// user runs) and shared by every end-to-end test. Publishes run one at a time: they share the build's obj folder.
/// </summary>
public static class Published
{
    private static readonly SemaphoreSlim Gate = new(1, 1);
    private static readonly Dictionary<string, string> Executables = [];
    private static readonly string Root = CreateRoot();

    /// <summary>A per-run folder, removed when the test process exits.</summary>
    private static string CreateRoot()
    {
        string root = Path.Combine(Path.GetTempPath(), "aotflash-tests-" + Environment.ProcessId);
        AppDomain.CurrentDomain.ProcessExit += (_, _) =>
        {
            try { Directory.Delete(root, recursive: true); }
            catch (IOException) { }
        };
        return root;
    }

    /// <summary>Path of the packed executable of <paramref name="model"/> (spec modelspecs/&lt;model&gt;.yaml, weights from ../shared).</summary>
    public static string Executable(string model, string rid = "linux-x64")
    {
        Gate.Wait();
        try
        {
            string key = model + "/" + rid;
            if (Executables.TryGetValue(key, out var exe)) return exe;
            var (weights, tokenizer) = ModelSource.Of(model);
            string output = Path.Combine(Root, rid, model);
            var r = ProcessRunner.Run(Path.Combine(TestPaths.RepoRoot, "publish.sh"),
                [Path.Combine(TestPaths.RepoRoot, "modelspecs", model + ".yaml"), "--weights", weights, "--tokenizer", tokenizer,
                 "--output", output, "--rid", rid],
                TestPaths.RepoRoot, timeoutSeconds: 900);
            Assert.True(r.ExitCode == 0, $"publish.sh {model} failed ({r.ExitCode}):\n{r.Stderr}\n{r.Stdout}");
            exe = r.Stdout.TrimEnd('\n').Split('\n')[^1];
            Assert.True(File.Exists(exe), $"publish.sh printed '{exe}', which does not exist");
            Executables[key] = exe;
            return exe;
        }
        finally
        {
            Gate.Release();
        }
    }

    /// <summary>A fresh folder for a test's own files (on the same disk as the published binaries).</summary>
    public static string TempDirectory()
    {
        string dir = Path.Combine(Root, "t" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(dir);
        return dir;
    }
}
