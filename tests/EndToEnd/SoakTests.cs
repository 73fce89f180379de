using System.Text.Json;
using AotFlash.Tests.Support;
using Xunit.Abstractions;

namespace AotFlash.Tests.EndToEnd;

/// <summary>The published binary's <c>soak</c> in flash mode for 30 sessions, each filling the context: resident memory
/// stays flat once warm, and its peak stays under the DRAM budget plus the runtime's own overhead.</summary>
public sealed class SoakTests(ITestOutputHelper output)
{
    // Growth allowed between the first and the second half of the samples, once warm: page-granular noise of the
    // allocator and the GC. Measured flat to 10 KiB over 140 sessions (stories260K-relu, 4 MiB budget).
    private const long FlatSlackBytes = 512 << 10;

    [SkippableFact]
    public void MemoryStaysFlatAndUnderTheBudgetSessionAfterSession()
    {
        ModelSource.RequireShared();
        string exe = Published.Executable("stories260K-relu");
        const int sessions = 30;
        var r = ProcessRunner.Run(exe, ["soak", "--sessions", sessions.ToString(), "--seconds", "600", "--mode", "flash", "-t", "1", "--json"]);
        r.AssertSucceeded();
        using var doc = JsonDocument.Parse(r.Stdout);
        var samples = doc.RootElement.GetProperty("samples").EnumerateArray()
            .Select(s => (Sessions: s.GetProperty("sessions").GetInt32(), Rss: s.GetProperty("rss_bytes").GetInt64(),
                          Peak: s.GetProperty("peak_rss_bytes").GetInt64(), Account: s.GetProperty("account_peak_bytes").GetInt64()))
            .ToArray();
        long budget = doc.RootElement.GetProperty("dram_budget_bytes").GetInt64();
        Assert.Equal(sessions, samples.Length);
        var warm = samples[(samples.Length / 5)..];
        var (early, late) = (warm[..(warm.Length / 2)], warm[(warm.Length / 2)..]);
        long earlyMax = early.Max(s => s.Rss), lateMax = late.Max(s => s.Rss), peak = samples[^1].Peak;
        output.WriteLine($"{samples.Length} sessions: RSS after the first {samples[0].Rss} B, largest {samples.Max(s => s.Rss)} B, at the end " +
                         $"{samples[^1].Rss} B; warm early max {earlyMax} B, late max {lateMax} B; VmHWM {peak} B; account peak " +
                         $"{samples[^1].Account} B; budget {budget} B");
        Assert.True(lateMax <= earlyMax + FlatSlackBytes, $"resident memory grew from {earlyMax} B to {lateMax} B over the run");
        Assert.True(peak <= budget + DramBudgetTests.RuntimeOverheadBytes,
            $"peak RSS {peak} B is more than the budget {budget} B plus the runtime's {DramBudgetTests.RuntimeOverheadBytes} B");
    }
}
