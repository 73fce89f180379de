namespace AotFlash.Flash;

/// <summary>A fixed-size native array charged to a <see cref="DramAccount"/> for as long as it lives.</summary>
public sealed unsafe class NativeArray<T> : IDisposable where T : unmanaged
{
    private readonly DramAccount _account;

    public NativeArray(long length, DramAccount account, string what, int alignment = 64)
        : this(length, account, account.Allocate(length * sizeof(T), what, alignment)) { }

    private NativeArray(long length, DramAccount account, void* pointer)
    {
        _account = account;
        Length = length;
        Pointer = (T*)pointer;
    }

    /// <summary>An array that large O_DIRECT reads land in (<see cref="DramAccount.AllocateForReads"/>).</summary>
    public static NativeArray<T> ForReads(long length, DramAccount account, string what) =>
        new(length, account, account.AllocateForReads(length * sizeof(T), what));

    /// <summary>An array whose pages are made resident where they are first used, not here
    /// (<see cref="DramAccount.Allocate"/>'s populate): for rows sized for the largest block.</summary>
    public static NativeArray<T> OnFirstUse(long length, DramAccount account, string what) =>
        new(length, account, account.Allocate(length * sizeof(T), what, populate: false));

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
