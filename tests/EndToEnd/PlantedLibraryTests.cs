using AotFlash.Tests.Support;

namespace AotFlash.Tests.EndToEnd;

/// <summary>A libc.so put beside the executable is never loaded: libc is bound when the executable is linked.</summary>
public sealed class PlantedLibraryTests
{
    [SkippableFact]
    public void ALibcBesideTheExecutableIsNotLoaded()
    {
        ModelSource.RequireShared();
        string exe = Published.Executable("stories260K-relu");
        string dir = Published.TempDirectory();
        string copy = Path.Combine(dir, Path.GetFileName(exe));
        File.Copy(exe, copy);
        string source = Path.Combine(dir, "planted.c");
        File.WriteAllText(source, """
            #include <stdio.h>
            __attribute__((constructor)) static void planted(void) { fputs("PLANTED LIBRARY LOADED\n", stderr); }
            """);
        foreach (string name in new[] { "libc.so", "liblibc.so", "libc" })
            ProcessRunner.Run("cc", ["-shared", "-fPIC", "-o", Path.Combine(dir, name), source]).AssertSucceeded();

        var r = ProcessRunner.Run(copy, ["run", "-p", "Once upon a time", "-n", "8", "--temp", "0"], workingDirectory: dir);
        r.AssertSucceeded();
        Assert.DoesNotContain("PLANTED", r.Stderr);
        Assert.StartsWith("Once upon a time", r.Stdout);
    }
}
