using System.Runtime.InteropServices;

namespace AotFlash.Flash;

/// <summary>The few libc calls .NET does not wrap: mapping the resident section without copying it, and opening the
/// flash section with O_DIRECT (<see cref="FlashReader"/>).</summary>
internal static unsafe partial class Libc
{
    public const int ProtRead = 1;
    public const int ProtWrite = 2;
    public const int MapPrivate = 2;
    /// <summary>MAP_ANONYMOUS, the same on x64 and arm64.</summary>
    public const int MapAnonymous = 0x20;

    [LibraryImport("libc", SetLastError = true)]
    public static partial void* mmap(void* addr, nuint length, int prot, int flags, int fd, long offset);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int munmap(void* addr, nuint length);

    public static readonly void* MapFailed = (void*)-1;

    public const int MadvHugePage = 14;
    public const int MadvPopulateWrite = 23;

    /// <summary>madvise(2): advice, except MADV_POPULATE_WRITE, which faults the range in (and fails where it cannot).</summary>
    [LibraryImport("libc")]
    public static partial int madvise(void* addr, nuint length, int advice);

    public const int PosixFadvDontNeed = 4;

    /// <summary>posix_fadvise(2); off_t is 64 bits on every architecture this builds for.</summary>
    [LibraryImport("libc")]
    public static partial int posix_fadvise(int fd, long offset, long length, int advice);

    public const int ORdOnly = 0;
    /// <summary>AT_FDCWD: a path relative to the current directory, for the *at calls.</summary>
    private const int AtFdCwd = -100;
    public const int OCloExec = 0x80000;
    public const int EIntr = 4;
    public const int EInval = 22;
    /// <summary>tmpfs and ramfs: the file is memory, so O_DIRECT (which newer kernels accept there) reads RAM.</summary>
    public const long TmpfsMagic = 0x01021994;
    public const long RamfsMagic = 0x858458f6;

    /// <summary>O_DIRECT differs by architecture; null where this build does not know it.</summary>
    public static int? ODirect => RuntimeInformation.ProcessArchitecture switch
    {
        Architecture.X64 => 0x4000,
        Architecture.Arm64 => 0x10000,
        _ => null,
    };

    /// <summary>open(2) without O_CREAT, so the variadic mode argument is left out.</summary>
    [LibraryImport("libc", EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int open(string path, int flags);

    /// <summary>statx(2) into a buffer of 256 bytes (struct statx, the same on every architecture).</summary>
    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int statx(int dirfd, string path, int flags, uint mask, byte* buffer);

    /// <summary>What <paramref name="path"/> is when it exists and is not a regular file (after following links), in
    /// words for an error message ("a directory", "a FIFO (named pipe)", …); null for a regular file or when it cannot
    /// be told (a missing file: opening it will say so).</summary>
    public static string? NotARegularFile(string path)
    {
        const uint StatxType = 1;
        byte* buffer = stackalloc byte[256];
        if (statx(AtFdCwd, path, 0, StatxType, buffer) != 0) return null;
        int type = *(ushort*)(buffer + 28) & 0xF000; // stx_mode & S_IFMT
        return type switch
        {
            0x8000 => null,
            0x4000 => "a directory",
            0x1000 => "a FIFO (named pipe)",
            0x2000 => "a character device",
            0x6000 => "a block device",
            0xC000 => "a socket",
            _ => "not a regular file",
        };
    }

    /// <summary>Refuses an input that is not a regular file before it is opened: opening a FIFO waits for a writer, a
    /// device may never end, a directory is never a file. The error reads "PATH: is a directory, not WHAT HINT".</summary>
    public static void RequireRegularFile(string path, string what, string hint = "")
    {
        if (NotARegularFile(path) is { } kind) throw new BadInputException($"{path}: is {kind}, not {what}{hint}");
    }

    /// <summary>Whether two paths name the same file (device and inode, after following links); false when either
    /// cannot be looked at.</summary>
    public static bool SameFile(string a, string b)
    {
        const uint StatxIno = 0x100;
        byte* x = stackalloc byte[256], y = stackalloc byte[256];
        if (statx(AtFdCwd, a, 0, StatxIno, x) != 0 || statx(AtFdCwd, b, 0, StatxIno, y) != 0) return false;
        // stx_ino at 32, stx_dev_major and stx_dev_minor at 136 and 140.
        return *(ulong*)(x + 32) == *(ulong*)(y + 32) && *(ulong*)(x + 136) == *(ulong*)(y + 136);
    }

    /// <summary>O_TMPFILE (with O_DIRECTORY, which it includes) differs by architecture; null where unknown.</summary>
    private static int? OTmpFile => RuntimeInformation.ProcessArchitecture switch
    {
        Architecture.X64 => 0x410000,
        Architecture.Arm64 => 0x404000,
        _ => null,
    };

    [LibraryImport("libc", EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int open(string path, int flags, int mode);

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int linkat(int olddirfd, string oldpath, int newdirfd, string newpath, int flags);

    /// <summary>An unnamed regular file in <paramref name="dir"/> (open with O_TMPFILE, mode 0644 before the umask),
    /// or null where the file system or kernel has none.</summary>
    public static Microsoft.Win32.SafeHandles.SafeFileHandle? OpenUnnamed(string dir)
    {
        const int ORdWr = 2;
        if (OTmpFile is not int tmpFile) return null;
        int fd = open(dir, tmpFile | ORdWr | OCloExec, 0b110_100_100);
        return fd < 0 ? null : new Microsoft.Win32.SafeHandles.SafeFileHandle(fd, ownsHandle: true);
    }

    /// <summary>Gives a file opened by <see cref="OpenUnnamed"/> the name <paramref name="path"/> (which must not exist).</summary>
    public static bool NameUnnamed(Microsoft.Win32.SafeHandles.SafeFileHandle handle, string path, out int errno)
    {
        const int AtSymlinkFollow = 0x400;
        errno = 0;
        if (linkat(AtFdCwd, $"/proc/self/fd/{handle.DangerousGetHandle()}", AtFdCwd, path, AtSymlinkFollow) == 0) return true;
        errno = Marshal.GetLastPInvokeError();
        return false;
    }

    /// <summary>kill(2): sends signal <paramref name="signal"/> to process <paramref name="pid"/>.</summary>
    [LibraryImport("libc", SetLastError = true)]
    public static partial int kill(int pid, int signal);

    /// <summary>fstatfs(2) into a buffer of at least 128 bytes (sizeof(struct statfs) is 120 on x64 and arm64);
    /// <c>f_type</c> is its first field, a long on both.</summary>
    [LibraryImport("libc", SetLastError = true)]
    public static partial int fstatfs(int fd, void* buffer);
}
