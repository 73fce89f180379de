using System.Runtime.InteropServices;

namespace AotFlash.Flash;

/// <summary>The few libc calls .NET does not wrap: mapping the resident section without copying it.</summary>
internal static unsafe partial class Libc
{
    public const int ProtRead = 1;
    public const int MapPrivate = 2;

    [LibraryImport("libc", SetLastError = true)]
    public static partial void* mmap(void* addr, nuint length, int prot, int flags, int fd, long offset);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int munmap(void* addr, nuint length);

    public static readonly void* MapFailed = (void*)-1;
}
