using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace AotFlash.Flash;

/// <summary>
/// A file written whole or not at all. The content goes to an unnamed file in the target's folder (O_TMPFILE), which
/// only <see cref="Commit"/> names: fsync, link under a temporary name, rename over the target. A process killed at
/// any moment before that leaves nothing behind (the kernel drops an unnamed file with its last descriptor) and the
/// target as it was. Where the file system has no unnamed files, a named temporary file stands in; those left by a
/// killed process are removed by the next writer to the same target.
/// </summary>
public sealed class AtomicFile : IDisposable
{
    private readonly string _path;
    private readonly string _tempPath; // named at commit (unnamed files), or from the start (the fallback)
    private readonly bool _unnamed;
    private bool _committed;

    private AtomicFile(string path, string tempPath, SafeFileHandle handle, bool unnamed)
    {
        _path = path; _tempPath = tempPath; Handle = handle; _unnamed = unnamed;
    }

    /// <summary>Where to write; positions are the caller's (RandomAccess).</summary>
    public SafeFileHandle Handle { get; }

    /// <summary>Starts replacing <paramref name="path"/>: refuses an existing file unless <paramref name="force"/>, and
    /// always refuses one that is not a regular file (a device, a FIFO) or that is one of <paramref name="inputs"/> (the
    /// files the command reads), so a slip of -o never destroys what it was made from.</summary>
    public static AtomicFile Create(string path, bool force, params string[] inputs)
    {
        CheckTarget(path, force, inputs);
        string full = Path.GetFullPath(path);
        string dir = Path.GetDirectoryName(full)!;
        string temp = Path.Combine(dir, $".{Path.GetFileName(full)}.{Environment.ProcessId}.tmp");
        RemoveStaleTemporaries(dir, Path.GetFileName(full));
        if (Libc.OpenUnnamed(dir) is { } unnamed) return new AtomicFile(full, temp, unnamed, unnamed: true);
        try
        {
            return new AtomicFile(full, temp, File.OpenHandle(temp, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None), unnamed: false);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new BadInputException($"{path}: cannot write ({e.Message})");
        }
    }

    /// <summary>The checks of <see cref="Create"/> on the target alone, for a command that works long before it writes
    /// (so that a slip of -o is reported first, not after the work).</summary>
    public static void CheckTarget(string path, bool force, params string[] inputs)
    {
        if (path.Length == 0) throw new BadInputException("the output path is empty");
        string full = Path.GetFullPath(path);
        if (File.Exists(full) || Directory.Exists(full))
        {
            if (Libc.NotARegularFile(full) is { } what) throw new BadInputException($"{path}: is {what}; refusing to replace it");
            if (inputs.FirstOrDefault(input => Libc.SameFile(input, full)) is { } input)
                throw new BadInputException($"{path}: is this command's input {input}; write the output elsewhere");
            if (!force) throw new BadInputException($"{path} already exists (use --force to overwrite it)");
        }
        string dir = Path.GetDirectoryName(full)!;
        if (!Directory.Exists(dir)) throw new BadInputException($"{path}: directory {dir} does not exist");
    }

    /// <summary>Flushes the content to disk and puts it in place of the target, with <paramref name="mode"/> if given.</summary>
    public void Commit(UnixFileMode? mode = null)
    {
        if (mode is { } m && !OperatingSystem.IsWindows()) File.SetUnixFileMode(Handle, m);
        RandomAccess.FlushToDisk(Handle);
        // From the link to the rename the content has a temporary name, which a process ended in between would leave
        // behind: Ctrl-C, SIGTERM and the like wait until the file is in place. SIGKILL cannot wait; the window is
        // two system calls, and the next writer removes what it leaves.
        using (new SignalsHeld())
        {
            if (_unnamed && !Libc.NameUnnamed(Handle, _tempPath, out int errno))
                throw new IOException($"{_path}: cannot name the written file ({Marshal.GetPInvokeErrorMessage(errno)})");
            try
            {
                File.Move(_tempPath, _path, overwrite: true);
                _committed = true;
            }
            finally
            {
                if (!_committed) File.Delete(_tempPath);
            }
        }
        Handle.Dispose();
    }

    public void Dispose()
    {
        Handle.Dispose();
        if (!_unnamed && !_committed) File.Delete(_tempPath);
    }

    /// <summary>Named temporaries of <paramref name="name"/> whose process is gone (".name.PID.tmp").</summary>
    private static void RemoveStaleTemporaries(string dir, string name)
    {
        foreach (string stale in Directory.EnumerateFiles(dir, $".{name}.*.tmp"))
        {
            string pid = Path.GetFileName(stale)[(name.Length + 2)..^4];
            if (int.TryParse(pid, out int id) && id != Environment.ProcessId && !Directory.Exists($"/proc/{id}"))
            {
                try { File.Delete(stale); }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException) { } // someone else's: leave it
            }
        }
    }

    /// <summary>The signals that end a process by default and that a process can catch (SIGINT, SIGTERM, SIGHUP,
    /// SIGQUIT), held while it lives: one that arrives is sent again, to the process's usual end, when it is disposed.</summary>
    private sealed class SignalsHeld : IDisposable
    {
        private static readonly (PosixSignal Signal, int Number)[] Held =
            [(PosixSignal.SIGINT, 2), (PosixSignal.SIGTERM, 15), (PosixSignal.SIGHUP, 1), (PosixSignal.SIGQUIT, 3)];

        private readonly PosixSignalRegistration[] _registrations;
        private int _arrived; // the first held signal's number, 0 while none

        public SignalsHeld() =>
            _registrations = Held.Select(h => PosixSignalRegistration.Create(h.Signal, context =>
            {
                context.Cancel = true;
                Interlocked.CompareExchange(ref _arrived, h.Number, 0);
            })).ToArray();

        public void Dispose()
        {
            foreach (var registration in _registrations) registration.Dispose();
            if (Volatile.Read(ref _arrived) is int number and not 0) Libc.kill(Environment.ProcessId, number);
        }
    }
}
