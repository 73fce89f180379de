using System.Diagnostics;
using System.Text;

namespace AotFlash.Tests.Support;

public sealed record ProcessResult(int ExitCode, string Stdout, string Stderr)
{
    public string[] StderrLines => Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries);

    public void AssertSucceeded() => Assert.True(ExitCode == 0, $"exit code {ExitCode}, stderr: {Stderr}");

    /// <summary>The bad-input contract: exit code 2, nothing on stdout, exactly one "error: ..." line on stderr.</summary>
    public void AssertBadInput(string expectedFragment)
    {
        Assert.True(ExitCode == 2, $"exit code {ExitCode}, stderr: {Stderr}");
        Assert.Equal("", Stdout);
        var line = Assert.Single(StderrLines);
        Assert.StartsWith("error: ", line);
        Assert.Contains(expectedFragment, line);
    }
}

public static class ProcessRunner
{
    public static ProcessResult Run(string file, IEnumerable<string> args, string? workingDirectory = null, int timeoutSeconds = 600,
                                    IDictionary<string, string>? environment = null)
    {
        var psi = new ProcessStartInfo(file)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = workingDirectory ?? Environment.CurrentDirectory,
            StandardOutputEncoding = Encoding.UTF8,
            StandardErrorEncoding = Encoding.UTF8,
        };
        foreach (var a in args) psi.ArgumentList.Add(a);
        if (environment is not null)
            foreach (var (k, v) in environment) psi.Environment[k] = v;
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(timeoutSeconds * 1000))
        {
            p.Kill(entireProcessTree: true);
            throw new TimeoutException($"{file} {string.Join(' ', args)} did not finish in {timeoutSeconds} s");
        }
        return new ProcessResult(p.ExitCode, stdout.Result, stderr.Result);
    }
}
