using System.Runtime.InteropServices;

namespace AotFlash.Flash;

/// <summary>
/// Linux native asynchronous I/O (io_setup, io_submit, io_getevents) on one file opened with O_DIRECT: reads handed to
/// the device's queue all at once by one call, their completions taken by whoever waits. A fixed set of control
/// blocks, one per slot; nothing is allocated per read. .NET wraps none of these calls, so they go through syscall(2).
/// </summary>
internal sealed unsafe partial class KernelAio : IDisposable
{
    /// <summary>struct iocb (linux/aio_abi.h), little-endian: 64 bytes.</summary>
    [StructLayout(LayoutKind.Sequential)]
    private struct ControlBlock
    {
        public ulong Data;
        public uint Key;
        public uint ReadWriteFlags;
        public ushort Opcode;
        public short RequestPriority;
        public uint File;
        public ulong Buffer;
        public ulong Bytes;
        public long Offset;
        public ulong Reserved;
        public uint Flags;
        public uint ResultFile;
    }

    /// <summary>struct io_event: the Data of the finished read and its result (bytes read, or -errno).</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct Completion
    {
        public ulong Data;
        public ulong ControlBlock;
        public long Result;
        public long Result2;
    }

    private const ushort CommandRead = 0; // IOCB_CMD_PREAD
    private const ushort CommandReadVector = 7; // IOCB_CMD_PREADV

    private readonly ulong _context;
    private readonly uint _file;
    private readonly ControlBlock* _blocks;
    private readonly ControlBlock** _list;
    private bool _disposed;

    private KernelAio(ulong context, int file, int capacity)
    {
        _context = context;
        _file = (uint)file;
        Capacity = capacity;
        _blocks = (ControlBlock*)NativeMemory.AllocZeroed((nuint)capacity, (nuint)sizeof(ControlBlock));
        _list = (ControlBlock**)NativeMemory.AllocZeroed((nuint)capacity, (nuint)sizeof(nint));
    }

    /// <summary>Slots: reads that can be in flight at once.</summary>
    public int Capacity { get; }

    /// <summary>A context for <paramref name="capacity"/> reads in flight on <paramref name="file"/>; null where the
    /// kernel or the sandbox has no native AIO (ENOSYS, EPERM) or none left (EAGAIN: fs.aio-max-nr).</summary>
    public static KernelAio? TryCreate(int file, int capacity)
    {
        if (Calls is not { } calls) return null;
        ulong context = 0;
        if (Syscall(calls.Setup, capacity, (long)&context, 0, 0, 0) != 0) return null;
        return new KernelAio(context, file, capacity);
    }

    /// <summary>Fills slot <paramref name="slot"/>'s control block: read <paramref name="bytes"/> at
    /// <paramref name="offset"/> into <paramref name="buffer"/>, or with <paramref name="vectored"/> into the
    /// <paramref name="bytes"/> pieces that the struct iovec array at <paramref name="buffer"/> lists, one after the
    /// other; reported with <paramref name="data"/>.</summary>
    public void Prepare(int slot, ulong data, byte* buffer, int bytes, long offset, bool vectored = false)
    {
        ControlBlock* b = _blocks + slot;
        *b = default;
        b->Data = data;
        b->Opcode = vectored ? CommandReadVector : CommandRead;
        b->File = _file;
        b->Buffer = (ulong)buffer;
        b->Bytes = (ulong)bytes;
        b->Offset = offset;
    }

    /// <summary>Hands slots [first, first + count) to the kernel in one call; returns how many it took (fewer when it
    /// ran short of resources), or -errno when it took none.</summary>
    public int Submit(int first, int count)
    {
        for (int i = 0; i < count; i++) _list[i] = _blocks + first + i;
        long taken = Syscall(Calls!.Value.Submit, (long)_context, count, (long)_list, 0, 0);
        return taken >= 0 ? (int)taken : -Marshal.GetLastPInvokeError();
    }

    /// <summary>Waits up to <paramref name="timeoutNanoseconds"/> for at least one finished read and takes up to
    /// <paramref name="max"/>; returns how many (0 when the time ran out or a signal came), or -errno.</summary>
    public int Wait(Completion* completions, int max, long timeoutNanoseconds)
    {
        long* timeout = stackalloc long[2] { timeoutNanoseconds / 1_000_000_000, timeoutNanoseconds % 1_000_000_000 };
        long got = Syscall(Calls!.Value.GetEvents, (long)_context, 1, max, (long)completions, (long)timeout);
        if (got >= 0) return (int)got;
        int errno = Marshal.GetLastPInvokeError();
        return errno == Libc.EIntr ? 0 : -errno;
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        Syscall(Calls!.Value.Destroy, (long)_context, 0, 0, 0, 0);
        NativeMemory.Free(_blocks);
        NativeMemory.Free(_list);
    }

    /// <summary>The system call numbers: the same calls are numbered differently on each architecture.</summary>
    private static (long Setup, long Destroy, long Submit, long GetEvents)? Calls => RuntimeInformation.ProcessArchitecture switch
    {
        Architecture.X64 => (206, 207, 209, 208),
        Architecture.Arm64 => (0, 1, 2, 4),
        _ => null,
    };

    /// <summary>syscall(2) with integer and pointer arguments only, which every ABI this builds for passes the same way
    /// to a variadic function as to a fixed one.</summary>
    [LibraryImport("libc", EntryPoint = "syscall", SetLastError = true)]
    private static partial long Syscall(long number, long a1, long a2, long a3, long a4, long a5);
}
