using System.Globalization;
using AotFlash.Tests.Support;
using Xunit.Abstractions;

namespace AotFlash.Tests.EndToEnd;

/// <summary>The DRAM budget against the published binary's real peak memory (its peak resident set, VmHWM), which
/// the engine's own accounting cannot see past: anything it failed to charge shows up here.</summary>
public sealed class DramBudgetTests(ITestOutputHelper output)
{
    private const string GnuTime = "/usr/bin/time";

    /// <summary>
    /// What the process holds besides the engine's charged memory: the Native AOT runtime, the GC heap, the executable's
    /// code pages, thread stacks and libc. Measured on x64 (2 cores, 260 MiB L3) with a 2 MiB budget and 200 tokens:
    /// peak RSS 7.4 to 8.1 MiB for -t 1 to -t 16 (5.4 to 6.1 MiB above the budget; 7.8 to 7.9 MiB with this test's
    /// -t 4); '--version' alone peaks at 4.6 MiB. 8 MiB leaves about 1.9 MiB of margin over the largest.
    /// </summary>
    internal const long RuntimeOverheadBytes = 8L << 20;

    [SkippableFact]
    public void FlashModePeakResidentSetStaysWithinTheBudgetPlusTheRuntime()
    {
        ModelSource.RequireShared();
        Skip.IfNot(File.Exists(GnuTime), "needs GNU time at /usr/bin/time (.ci/run installs it)");
        const long budget = 2L << 20; // near the smallest budget stories260K-relu loads under, so the caches are cut short
        string exe = Published.Executable("stories260K-relu");
        string rss = Path.Combine(Published.TempDirectory(), "maxrss");
        var r = ProcessRunner.Run(GnuTime, ["-f", "%M", "-o", rss, exe, "run", "--mode", "flash", "--dram-budget", budget.ToString(CultureInfo.InvariantCulture),
                                            "-p", "Once upon a time", "-n", "200", "--temp", "0", "-t", "4", "--json"]);
        Assert.True(r.ExitCode == 0, r.Stderr);
        var run = RunOutput.Parse(r.Stdout);
        Assert.Equal("flash", run.Stats.GetProperty("mode").GetString());
        Assert.Equal(budget, run.Stats.GetProperty("dram_budget_bytes").GetInt64());
        Assert.True(run.GeneratedIds.Length > 100);
        // GNU time writes the peak resident set in KiB (ru_maxrss of the one child it waited for) as its last line.
        long peakRss = long.Parse(File.ReadAllLines(rss).Last(l => l.Length > 0), CultureInfo.InvariantCulture) * 1024;
        output.WriteLine($"budget {budget} B: peak RSS {peakRss} B ({(peakRss - budget) / (double)(1 << 20):F2} MiB above the budget), " +
                         $"engine's peak {run.Stats.GetProperty("peak_dram_bytes").GetInt64()} B");
        Assert.True(peakRss <= budget + RuntimeOverheadBytes,
            $"peak RSS {peakRss} B is more than the budget {budget} B plus the runtime's {RuntimeOverheadBytes} B");
    }
}
