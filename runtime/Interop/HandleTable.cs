namespace AotFlash.Interop;

/// <summary>
/// The opaque handles given to C: a slot index, the slot's generation and a tag for the kind of object, packed into
/// a pointer-sized value that is only ever looked up here, never dereferenced. So a freed or closed handle (its
/// slot's generation has moved on), a handle of the other kind, or any foreign pointer is refused with
/// <see cref="Status.InvalidHandle"/> instead of crashing. Thread-safe.
/// </summary>
/// <param name="release">Frees an object that could not be given a handle, so that nothing leaks.</param>
internal sealed class HandleTable<T>(byte tag, string what, Action<T> release) where T : class
{
    private const int SlotBits = 24;
    private const ulong SlotMask = (1UL << SlotBits) - 1;

    private readonly Lock _lock = new();
    private readonly List<Entry> _slots = [];
    private readonly Stack<int> _free = [];

    private record struct Entry(T? Target, uint Generation);

    /// <summary>A new handle for <paramref name="target"/>; when none can be made, the target is released.</summary>
    public nint Add(T target)
    {
        try
        {
            lock (_lock)
            {
                if (!_free.TryPop(out int slot))
                {
                    slot = _slots.Count;
                    if ((ulong)slot + 1 > SlotMask) throw new ApiException(Status.Runtime, $"too many open {what}s");
                    _slots.Add(default);
                }
                uint generation = _slots[slot].Generation;
                _slots[slot] = new Entry(target, generation);
                return (nint)(((ulong)tag << 56) | ((ulong)generation << SlotBits) | ((ulong)slot + 1));
            }
        }
        catch
        {
            release(target);
            throw;
        }
    }

    /// <summary>The object behind a live handle.</summary>
    public T Get(nint handle)
    {
        lock (_lock) return _slots[Find(handle)].Target!;
    }

    /// <summary>Ends the handle (its slot's generation moves on, so it is never valid again) and gives its object.</summary>
    public T Remove(nint handle)
    {
        lock (_lock)
        {
            int slot = Find(handle);
            var entry = _slots[slot];
            _slots[slot] = new Entry(null, entry.Generation + 1);
            _free.Push(slot);
            return entry.Target!;
        }
    }

    private int Find(nint handle)
    {
        if (handle == 0) throw new ApiException(Status.InvalidHandle, $"the {what} handle is NULL");
        ulong value = (ulong)handle;
        long slot = (long)(value & SlotMask) - 1;
        uint generation = (uint)(value >> SlotBits);
        if ((byte)(value >> 56) != tag || slot < 0 || slot >= _slots.Count || _slots[(int)slot].Target is null
            || _slots[(int)slot].Generation != generation)
            throw new ApiException(Status.InvalidHandle, $"not a live {what} handle (freed, closed, or not from this library)");
        return (int)slot;
    }
}
