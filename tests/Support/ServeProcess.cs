using System.Diagnostics;
using System.Text.RegularExpressions;

namespace AotFlash.Tests.Support;

/// <summary>A published executable's <c>serve</c> running on a free loopback port; disposing kills it if it still runs.</summary>
public sealed partial class ServeProcess : IDisposable
{
    private readonly Process _process;
    private readonly Task<string> _restOfStderr;

    [GeneratedRegex(@"listening on (http://\S+)")]
    private static partial Regex Listening();

    /// <summary>Starts <c>EXE serve --port 0 ARGS</c> and waits until it says where it listens.</summary>
    public ServeProcess(string executable, params string[] args) : this([], executable, args) { }

    /// <summary>As the other constructor, through <paramref name="launcher"/> (e.g. qemu-aarch64 and its options).</summary>
    public ServeProcess(string[] launcher, string executable, string[] args)
    {
        var psi = new ProcessStartInfo(launcher.Length > 0 ? launcher[0] : executable)
            { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        foreach (var a in launcher.Skip(1).Concat(launcher.Length > 0 ? [executable] : []).Concat(["serve", "--port", "0"]).Concat(args))
            psi.ArgumentList.Add(a);
        _process = Process.Start(psi)!;
        var lines = new List<string>();
        while (Url is null && _process.StandardError.ReadLine() is { } line)
        {
            lines.Add(line);
            Url = Listening().Match(line) is { Success: true } m ? m.Groups[1].Value : null;
        }
        if (Url is null)
        {
            _process.Kill();
            Assert.Fail("serve did not say where it listens:\n" + string.Join('\n', lines));
        }
        _restOfStderr = _process.StandardError.ReadToEndAsync();
    }

    /// <summary>The address it listens on, e.g. http://127.0.0.1:41234.</summary>
    public string? Url { get; }

    /// <summary>Sends SIGTERM and waits for the exit; returns the exit code and what it wrote to stderr after listening.</summary>
    public (int ExitCode, string Stderr) Stop()
    {
        Assert.Equal(0, Kill(_process.Id, 15));
        Assert.True(_process.WaitForExit(30_000), "serve did not stop on SIGTERM");
        return (_process.ExitCode, _restOfStderr.Result);
    }

    public void Dispose()
    {
        if (!_process.HasExited) _process.Kill();
        _process.Dispose();
    }

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "kill")]
    private static extern int Kill(int pid, int signal);
}
