using System.Diagnostics;
using AotFlash.Tests.Support;
using Xunit.Abstractions;

namespace AotFlash.Tests.EndToEnd;

/// <summary>The published binary killed (SIGKILL, SIGTERM or SIGINT) at random moments while it writes a model file:
/// the previous file stays whole and no temporary file is left beside it.</summary>
public sealed class InterruptedWriteTests(ITestOutputHelper output)
{
    private const string Model = "stories260K-relu";

    [SkippableFact]
    public void KilledCalibrationLeavesTheOldFileAndNoDebris()
    {
        ModelSource.RequireShared();
        string exe = Published.Executable(Model);
        string dir = Directory.CreateTempSubdirectory("aotflash-killed").FullName;
        string target = Path.Combine(dir, "calibrated.afm");
        string[] args = ["calibrate", "-o", target, "--force", "--tokens", "1024", "-t", "1"];
        // The fastest of three whole runs: the first is slower (cold caches) and other tests share the machine, so a
        // delay drawn from the slowest could fall after most runs had ended.
        double fullMs = double.MaxValue;
        for (int i = 0; i < 3; i++)
        {
            var clock = Stopwatch.StartNew();
            ProcessRunner.Run(exe, args).AssertSucceeded();
            fullMs = Math.Min(fullMs, clock.Elapsed.TotalMilliseconds);
        }
        byte[] before = File.ReadAllBytes(target);
        var random = new Random(5);
        string[] signals = ["KILL", "TERM", "INT"];
        int interrupted = 0;
        for (int round = 0; round < 9; round++)
        {
            string signal = signals[round % signals.Length];
            int delay = random.Next((int)(fullMs * 1.1));
            using var p = Process.Start(new ProcessStartInfo(exe) { RedirectStandardError = true, RedirectStandardOutput = true }
                .WithArguments(args))!;
            _ = p.StandardOutput.ReadToEndAsync();
            _ = p.StandardError.ReadToEndAsync();
            Thread.Sleep(delay);
            bool running = !p.HasExited;
            if (running) Process.Start("kill", ["-" + signal, p.Id.ToString()])!.WaitForExit();
            Assert.True(p.WaitForExit(60_000), "the killed process did not end");
            interrupted += running ? 1 : 0;
            output.WriteLine($"round {round}: SIG{signal} after {delay} ms ({(running ? "while running" : "after it had finished")}), exit {p.ExitCode}");
            Assert.Equal([Path.GetFileName(target)], Directory.GetFileSystemEntries(dir).Select(Path.GetFileName));
            // Whatever happened, the target is a whole, valid model file: the old one, or a new one with the same bytes
            // (calibration is deterministic).
            Assert.True(before.AsSpan().SequenceEqual(File.ReadAllBytes(target)), $"round {round}: the model file changed");
        }
        Assert.True(interrupted >= 3, $"only {interrupted} of 9 rounds caught the process running");
        Directory.Delete(dir, recursive: true);
    }
}

internal static class StartInfoExtensions
{
    public static ProcessStartInfo WithArguments(this ProcessStartInfo psi, IEnumerable<string> args)
    {
        foreach (var a in args) psi.ArgumentList.Add(a);
        return psi;
    }
}
