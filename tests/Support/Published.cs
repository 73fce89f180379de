namespace AotFlash.Tests.Support;

/// <summary>
/// The Native AOT executables (and C libraries) of the reference models, published once per test run by publish.sh
/// (the same command a user runs) and shared by every end-to-end test. Publishes run one at a time: they share the
/// build's obj folder.
/// </summary>
public static class Published
{
    private static readonly SemaphoreSlim Gate = new(1, 1);
    private static readonly Dictionary<string, string> Outputs = [];
    private static readonly string Root = CreateRoot();

    /// <summary>A per-run folder, removed when the test process exits. The test host is often ended without running its
    /// exit handlers, so the folders of earlier runs whose process is gone are removed here too (each holds published
    /// binaries and model files, about half a gigabyte).</summary>
    private static string CreateRoot()
    {
        const string Prefix = "aotflash-tests-";
        foreach (string stale in Directory.GetDirectories(Path.GetTempPath(), Prefix + "*"))
            if (int.TryParse(Path.GetFileName(stale)[Prefix.Length..], out int pid) && pid != Environment.ProcessId && !Directory.Exists($"/proc/{pid}"))
            {
                try { Directory.Delete(stale, recursive: true); }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
            }
        string root = Path.Combine(Path.GetTempPath(), Prefix + Environment.ProcessId);
        AppDomain.CurrentDomain.ProcessExit += (_, _) =>
        {
            try { Directory.Delete(root, recursive: true); }
            catch (IOException) { }
        };
        return root;
    }

    /// <summary>Path of the packed executable of <paramref name="model"/> (spec modelspecs/&lt;model&gt;.yaml, weights from ../shared).</summary>
    public static string Executable(string model, string rid = "linux-x64") => Publish(model, rid, lib: false);

    /// <summary>The packed executable of <paramref name="model"/> with the HTTP server compiled in (publish.sh --server).</summary>
    public static string ServerExecutable(string model, string rid = "linux-x64") => Publish(model, rid, lib: false, server: true);

    /// <summary>A test-only spec (tests/specs/&lt;spec&gt;.yaml) published uncalibrated with the weights of reference model
    /// <paramref name="source"/>.</summary>
    public static string TestSpecExecutable(string spec, string source, string rid) =>
        Publish(spec, rid, lib: false, Path.Combine("tests", "specs", spec + ".yaml"), [.. ModelSource.PublishArguments(source), "--no-calibrate"]);

    /// <summary>The C shared library of <paramref name="model"/> (publish.sh --lib, the model packed in); its folder also
    /// holds aotflash.h, the model file and the executable of the same publish.</summary>
    public static PublishedLibrary Library(string model)
    {
        string library = Publish(model, "linux-x64", lib: true);
        string dir = Path.GetDirectoryName(library)!;
        return new PublishedLibrary(library, dir, Path.Combine(dir, model), Path.Combine(dir, model + ".afm"));
    }

    private static string Publish(string model, string rid, bool lib, string? spec = null, string[]? weights = null, bool server = false)
    {
        Gate.Wait();
        try
        {
            string key = model + "/" + rid + (lib ? "/lib" : "") + (server ? "/server" : "");
            if (Outputs.TryGetValue(key, out var exe)) return exe;
            string output = Path.Combine(Root, rid, model + (lib ? "-lib" : "") + (server ? "-server" : ""));
            var r = ProcessRunner.Run(Path.Combine(TestPaths.RepoRoot, "publish.sh"),
                [Path.Combine(TestPaths.RepoRoot, spec ?? Path.Combine("modelspecs", model + ".yaml")), .. weights ?? ModelSource.PublishArguments(model),
                 "--output", output, "--rid", rid, .. (lib ? ["--lib"] : Array.Empty<string>()), .. (server ? ["--server"] : Array.Empty<string>())],
                TestPaths.RepoRoot, timeoutSeconds: 900);
            Assert.True(r.ExitCode == 0, $"publish.sh {model} failed ({r.ExitCode}):\n{r.Stderr}\n{r.Stdout}");
            exe = r.Stdout.TrimEnd('\n').Split('\n')[^1];
            Assert.True(File.Exists(exe), $"publish.sh printed '{exe}', which does not exist");
            Outputs[key] = exe;
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

/// <summary>A published model library: <c>lib&lt;model&gt;.so</c> in <see cref="Directory"/> beside aotflash.h, and the
/// executable and model file published with it.</summary>
public sealed record PublishedLibrary(string Path, string Directory, string Executable, string ModelFile);
