using System.Globalization;
using System.Runtime.InteropServices;

namespace AotFlash.Flash;

/// <summary>
/// Every byte the engine holds (mapped weights, predictors, neuron caches, KV cache, scratch and I/O buffers) is
/// charged here, against an optional hard limit (the DRAM budget), so <c>peak_dram_bytes</c> is this accounting's
/// measured peak rather than a formula, and going over the budget is an error instead of a surprise.
/// </summary>
public sealed unsafe class DramAccount(long limit = long.MaxValue)
{
    private long _current;
    private long _peak;

    public long Limit { get; } = limit;
    public long Current => Interlocked.Read(ref _current);
    public long Peak => Interlocked.Read(ref _peak);
    public long Available => Limit - Current;

    /// <summary>Zeroed native memory of <paramref name="bytes"/> bytes, aligned to <paramref name="alignment"/> (64, or 4096 for O_DIRECT).</summary>
    public void* Allocate(long bytes, string what, int alignment = 64)
    {
        Charge(bytes, what);
        void* p = NativeMemory.AlignedAlloc((nuint)Math.Max(bytes, 1), (nuint)alignment);
        NativeMemory.Clear(p, (nuint)bytes);
        return p;
    }

    public void Free(void* p, long bytes)
    {
        if (p == null) return;
        NativeMemory.AlignedFree(p);
        Release(bytes);
    }

    /// <summary>Counts <paramref name="bytes"/> held by other means (a mapping); fails when the budget cannot take them.</summary>
    public void Charge(long bytes, string what)
    {
        long now = Interlocked.Add(ref _current, bytes);
        if (now > Limit)
        {
            Interlocked.Add(ref _current, -bytes);
            throw new BadInputException($"the DRAM budget of {Format(Limit)} is too small: {what} needs {Format(bytes)} more " +
                                        $"({Format(now - Limit)} missing, {Format(now - bytes)} already in use)");
        }
        long peak;
        while (now > (peak = Interlocked.Read(ref _peak)) && Interlocked.CompareExchange(ref _peak, now, peak) != peak) { }
    }

    public void Release(long bytes) => Interlocked.Add(ref _current, -bytes);

    public static string Format(long bytes) => bytes switch
    {
        >= 1L << 30 => (bytes / (double)(1L << 30)).ToString("F2", CultureInfo.InvariantCulture) + " GiB",
        >= 1L << 20 => (bytes / (double)(1L << 20)).ToString("F2", CultureInfo.InvariantCulture) + " MiB",
        >= 1L << 10 => (bytes / 1024.0).ToString("F1", CultureInfo.InvariantCulture) + " KiB",
        _ => bytes.ToString(CultureInfo.InvariantCulture) + " B",
    };

    /// <summary>A budget of the command line or the spec (<see cref="DramBudget"/>) in bytes for a model file of
    /// <paramref name="modelBytes"/>; a percentage may exceed 100 (up to 1000), so a tiny model can be given room.</summary>
    public static long ParseBudget(string text, long modelBytes) => DramBudget.TryParse(text, maxPercent: 1000, out var budget)
        ? budget.Resolve(modelBytes)
        : throw new BadInputException($"bad DRAM budget '{text}': use {DramBudget.Syntax}");
}
