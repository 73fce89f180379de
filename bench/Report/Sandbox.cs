using System.Diagnostics;
using System.Globalization;

namespace AotFlash.Bench.Report;

/// <summary>How one command ran: its output, wall time, the memory limit it ran under and the most memory its cgroup
/// held (page cache included), and whether the kernel killed it for memory or it ran out of time.</summary>
public sealed record RunResult(string Command, int ExitCode, string Stdout, string Stderr, double WallSeconds, long? LimitBytes,
                               long? PeakBytes, bool OomKilled, bool TimedOut)
{
    public bool Ok => ExitCode == 0 && !OomKilled && !TimedOut;

    public string Status => OomKilled ? "killed: out of memory" : TimedOut ? "timed out" : ExitCode != 0 ? $"failed (exit {ExitCode})" : "ok";
}

/// <summary>
/// Runs every engine the same way: page cache dropped first (so a run measures the disk, not what the previous run
/// left in RAM), then inside one memory cgroup whose limit is the DRAM budget under test, with page cache charged to
/// it, as the kernel enforces it for any process. cgroup v1 (memory.limit_in_bytes, memory.max_usage_in_bytes) and v2
/// (memory.max, memory.peak) are both handled; without root or a memory controller, commands run unlimited and every
/// result says so.
/// </summary>
public sealed class Sandbox
{
    private readonly string? _group;
    private readonly bool _v2;

    public string Description { get; }

    private Sandbox(string? group, bool v2, string description)
    {
        _group = group; _v2 = v2; Description = description;
    }

    public bool EnforcesLimits => _group is not null;

    public static Sandbox Create(string name)
    {
        string v1 = "/sys/fs/cgroup/memory", v2Root = "/sys/fs/cgroup";
        try
        {
            if (Directory.Exists(v1) && File.Exists(Path.Combine(v1, "memory.limit_in_bytes")))
            {
                string group = Path.Combine(v1, name);
                Directory.CreateDirectory(group);
                return new Sandbox(group, false, $"cgroup v1 memory controller ({group}: memory.limit_in_bytes, peak memory.max_usage_in_bytes; page cache charged)");
            }
            if (File.Exists(Path.Combine(v2Root, "cgroup.controllers")) && File.ReadAllText(Path.Combine(v2Root, "cgroup.controllers")).Contains("memory"))
            {
                string group = Path.Combine(v2Root, name);
                Directory.CreateDirectory(group);
                return new Sandbox(group, true, $"cgroup v2 ({group}: memory.max, peak memory.peak; page cache charged)");
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return new Sandbox(null, false, $"NO memory limits: cannot create a memory cgroup ({e.Message}); runs are unlimited and peaks are not measured");
        }
        return new Sandbox(null, false, "NO memory limits: no memory cgroup controller; runs are unlimited and peaks are not measured");
    }

    /// <summary>Runs <paramref name="command"/> after dropping the page cache, under <paramref name="limitBytes"/> (null:
    /// unlimited), killed after <paramref name="timeout"/>.</summary>
    public RunResult Run(IReadOnlyList<string> command, long? limitBytes, TimeSpan timeout)
    {
        DropPageCache();
        long oomBefore = OomKills();
        if (_group is not null)
        {
            Write(_v2 ? "memory.max" : "memory.limit_in_bytes", limitBytes?.ToString(CultureInfo.InvariantCulture) ?? (_v2 ? "max" : "-1"));
            if (!_v2) Write("memory.max_usage_in_bytes", "0");
            else TryWrite("memory.peak", "0"); // resettable on recent kernels; on older ones the peak is since the group was made
        }
        // The shell joins the group, then becomes the command: nothing else is charged to it.
        IReadOnlyList<string> args = _group is null ? command
            : ["/bin/sh", "-c", $"echo $$ > {Path.Combine(_group, "cgroup.procs")} && exec \"$@\"", "sh", .. command];
        var run = Processes.Run(args, timeout);
        long? peak = _group is null ? null : ReadLong(_v2 ? "memory.peak" : "memory.max_usage_in_bytes");
        return run with { Command = string.Join(' ', command), LimitBytes = _group is null ? null : limitBytes, PeakBytes = peak, OomKilled = OomKills() > oomBefore };
    }

    /// <summary>Empties the page cache (root only; otherwise a later run may read what an earlier one cached, and the
    /// report's header says so).</summary>
    public static bool DropPageCache()
    {
        try
        {
            using (var sync = Process.Start("sync")!) sync.WaitForExit();
            File.WriteAllText("/proc/sys/vm/drop_caches", "3");
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or System.ComponentModel.Win32Exception)
        {
            return false;
        }
    }

    private long OomKills()
    {
        if (_group is null) return 0;
        string file = Path.Combine(_group, _v2 ? "memory.events" : "memory.oom_control");
        foreach (var line in File.ReadLines(file))
            if (line.StartsWith("oom_kill ", StringComparison.Ordinal)) return long.Parse(line[9..], CultureInfo.InvariantCulture);
        return 0;
    }

    private void Write(string file, string value) => File.WriteAllText(Path.Combine(_group!, file), value);

    private void TryWrite(string file, string value)
    {
        try { Write(file, value); }
        catch (IOException) { }
    }

    private long? ReadLong(string file)
    {
        string path = Path.Combine(_group!, file);
        return File.Exists(path) && long.TryParse(File.ReadAllText(path).Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out long v) ? v : null;
    }
}
