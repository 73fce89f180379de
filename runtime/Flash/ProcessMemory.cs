using System.Globalization;

namespace AotFlash.Flash;

/// <summary>This process's memory as the kernel counts it (/proc/self/status), including what no DRAM account sees:
/// the runtime's own code, heap and thread stacks.</summary>
public static class ProcessMemory
{
    /// <summary>Resident bytes now (VmRSS) and at most so far (VmHWM); 0 where /proc does not say.</summary>
    public static (long Resident, long Peak) Read()
    {
        long rss = 0, peak = 0;
        try
        {
            foreach (string line in File.ReadLines("/proc/self/status"))
            {
                if (line.StartsWith("VmRSS:", StringComparison.Ordinal)) rss = Kilobytes(line);
                else if (line.StartsWith("VmHWM:", StringComparison.Ordinal)) peak = Kilobytes(line);
            }
        }
        catch (IOException) { }
        return (rss, peak);
    }

    private static long Kilobytes(string line) =>
        long.TryParse(line.Split(':')[1].Trim().Split(' ')[0], NumberStyles.None, CultureInfo.InvariantCulture, out long kb) ? kb * 1024 : 0;
}
