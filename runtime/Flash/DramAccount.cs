using System.Runtime.InteropServices;

namespace AotFlash.Flash;

/// <summary>
/// Every byte the engine holds (mapped weights, KV cache, scratch buffers) is counted here, so
/// <c>peak_dram_bytes</c> is this accounting's measured peak rather than a formula.
/// </summary>
public sealed unsafe class DramAccount
{
    private long _current;
    private long _peak;

    public long Current => Interlocked.Read(ref _current);
    public long Peak => Interlocked.Read(ref _peak);

    /// <summary>Zeroed, 64-byte aligned native memory of <paramref name="bytes"/> bytes.</summary>
    public void* Allocate(long bytes)
    {
        void* p = NativeMemory.AlignedAlloc((nuint)Math.Max(bytes, 1), 64);
        NativeMemory.Clear(p, (nuint)bytes);
        Charge(bytes);
        return p;
    }

    public void Free(void* p, long bytes)
    {
        if (p == null) return;
        NativeMemory.AlignedFree(p);
        Release(bytes);
    }

    public void Charge(long bytes)
    {
        long now = Interlocked.Add(ref _current, bytes);
        long peak;
        while (now > (peak = Interlocked.Read(ref _peak)) && Interlocked.CompareExchange(ref _peak, now, peak) != peak) { }
    }

    public void Release(long bytes) => Interlocked.Add(ref _current, -bytes);
}
