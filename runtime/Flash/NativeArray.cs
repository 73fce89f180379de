namespace AotFlash.Flash;

/// <summary>A fixed-size native array charged to a <see cref="DramAccount"/> for as long as it lives.</summary>
public sealed unsafe class NativeArray<T> : IDisposable where T : unmanaged
{
    private readonly DramAccount _account;

    public NativeArray(long length, DramAccount account, string what, int alignment = 64)
    {
        _account = account;
        Length = length;
        Pointer = (T*)account.Allocate(length * sizeof(T), what, alignment);
    }

    public T* Pointer { get; private set; }
    public long Length { get; }
    public long Bytes => Length * sizeof(T);
    public Span<T> Span => new(Pointer, checked((int)Length));
    public Span<T> Slice(long start, int length) => new(Pointer + start, length);

    public void Dispose()
    {
        if (Pointer == null) return;
        _account.Free(Pointer, Bytes);
        Pointer = null;
    }
}
