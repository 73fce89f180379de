using System.Runtime.InteropServices;
using System.Text;
using AotFlash.Sampling;

namespace AotFlash.Interop;

/// <summary>A failure of a C API call, with the status the call returns.</summary>
public sealed class ApiException(Status status, string message) : Exception(message)
{
    public Status Status { get; } = status;
}

/// <summary>
/// <c>aotflash_last_error</c>: one line per thread describing the last failed call, kept in a pinned array so that the
/// pointer handed to C stays valid until the thread's next call replaces it. Exceptions end here: every export
/// catches everything and turns it into a status with <see cref="Set"/>, since none may cross into C.
/// </summary>
internal static unsafe class LastError
{
    [ThreadStatic] private static byte[]? t_message;
    private static readonly byte[] Empty = GC.AllocateArray<byte>(1, pinned: true);

    /// <summary>A call that succeeded: clears the message (set last, so that a failed call made from inside a callback
    /// of this one does not outlive it).</summary>
    public static Status Success()
    {
        t_message = null;
        return Status.Ok;
    }

    /// <summary>The NUL-terminated message, "" when the thread's last call succeeded.</summary>
    public static byte* Pointer => (byte*)Marshal.UnsafeAddrOfPinnedArrayElement(t_message ?? Empty, 0);

    /// <summary>Records <paramref name="e"/> as this thread's last error and returns the status it means.</summary>
    public static Status Set(Exception e)
    {
        var (status, message) = e switch
        {
            ApiException api => (api.Status, api.Message),
            BadInputException => (Status.BadInput, e.Message),
            // A model closed on another thread while this call was using it.
            ObjectDisposedException => (Status.InvalidHandle, "the model was closed"),
            InvalidSamplerOptionException => (Status.InvalidArgument, e.Message),
            OutOfMemoryException => (Status.Runtime, "out of memory"),
            _ => (Status.Runtime, e.Message),
        };
        byte[] text = Encoding.UTF8.GetBytes(message.ReplaceLineEndings(" "));
        var buffer = GC.AllocateArray<byte>(text.Length + 1, pinned: true);
        text.CopyTo(buffer, 0);
        t_message = buffer;
        return status;
    }
}
