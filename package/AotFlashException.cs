namespace AotFlash;

/// <summary>A call into the model library failed; <see cref="Status"/> is its <c>aotflash_status</c> (aotflash.h), the
/// message the library's <c>aotflash_last_error()</c>.</summary>
public sealed class AotFlashException(int status, string message) : Exception(message)
{
    /// <summary>The <c>aotflash_status</c> the call returned.</summary>
    public int Status { get; } = status;
}
