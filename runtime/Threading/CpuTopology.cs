namespace AotFlash.Threading;

/// <summary>What the machine offers for compute threads.</summary>
public static class CpuTopology
{
    /// <summary>
    /// Physical cores this process may use: distinct (package, core) pairs of the online CPUs in sysfs, capped by the
    /// CPUs the process is allowed (affinity, cgroup quota). SMT siblings share one core's vector units, so a
    /// memory-bound matvec gains nothing from them on small devices. Falls back to the logical count.
    /// </summary>
    public static int PhysicalCores { get; } = CountPhysicalCores();

    private static int CountPhysicalCores()
    {
        int logical = Math.Max(1, Environment.ProcessorCount);
        try
        {
            var cores = new HashSet<(string, string)>();
            foreach (var cpu in Directory.EnumerateDirectories("/sys/devices/system/cpu", "cpu*"))
            {
                string topology = Path.Combine(cpu, "topology");
                string coreId = Path.Combine(topology, "core_id"), package = Path.Combine(topology, "physical_package_id");
                if (!File.Exists(coreId) || !File.Exists(package)) continue;
                string online = Path.Combine(cpu, "online");
                if (File.Exists(online) && File.ReadAllText(online).Trim() == "0") continue;
                cores.Add((File.ReadAllText(package).Trim(), File.ReadAllText(coreId).Trim()));
            }
            return cores.Count == 0 ? logical : Math.Min(cores.Count, logical);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return logical;
        }
    }
}
