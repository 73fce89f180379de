using System.Runtime.InteropServices;

namespace AotFlash.Interop;

// The C API's types, laid out exactly as in aotflash.h (a test compares the two field by field).

/// <summary><c>aotflash_status</c>.</summary>
public enum Status
{
    Ok = 0,
    InvalidArgument = 1,
    InvalidHandle = 2,
    BufferTooSmall = 3,
    TokenOutOfRange = 4,
    InvalidUtf8 = 5,
    ContextFull = 6,
    Busy = 7,
    BadInput = 8,
    Cancelled = 9,
    Runtime = 10,
}

/// <summary><c>aotflash_mode</c>.</summary>
public enum NativeMode
{
    Auto = 0,
    Dense = 1,
    Naive = 2,
    Flash = 3,
}

/// <summary><c>aotflash_stop_reason</c>.</summary>
public enum NativeStopReason
{
    None = -1,
    Token = 0,
    Length = 1,
    Context = 2,
    Callback = 3,
}

/// <summary><c>aotflash_chat_message</c>.</summary>
[StructLayout(LayoutKind.Sequential)]
public unsafe struct NativeChatMessage
{
    public byte* Role;
    public byte* Content;
}

/// <summary><c>aotflash_params</c>.</summary>
[StructLayout(LayoutKind.Sequential)]
public unsafe struct NativeParams
{
    public uint Size;
    public NativeMode Mode;
    public int Threads;
    public int Window;
    public int IoThreads;
    public int TopK;
    public float Temperature;
    public float TopP;
    public float MinP;
    public int MeasureRecall;
    public ulong Seed;
    public byte* DramBudget;
    public delegate* unmanaged<float, void*, int> Progress;
    public void* ProgressUserData;
}

/// <summary><c>aotflash_model_desc</c>.</summary>
[StructLayout(LayoutKind.Sequential)]
public unsafe struct NativeModelDesc
{
    public uint Size;
    public int Vocab;
    public int Context;
    public int Bos;
    public int Eos;
    public NativeMode Mode;
    public int Dim;
    public int Layers;
    public byte* Name;
    public byte* SpecHash;
    public byte* Family;
}

/// <summary><c>aotflash_session_stats</c>.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct NativeSessionStats
{
    public uint Size;
    public NativeMode Mode;
    public int Threads;
    public int Positions;
    public int PromptTokens;
    public int GeneratedTokens;
    public NativeStopReason StopReason;
    public int ODirect;
    public double LoadMs;
    public double TtftMs;
    public double MsPerToken;
    public double ForwardMsPerToken;
    public double IoMsPerToken;
    public double MemMsPerToken;
    public double ComputeMsPerToken;
    public double BytesReadPerToken;
    public double FfnDensity;
    public double PredictorRecall;
    public double CacheHitRate;
    public long PeakDramBytes;
    public long DramBudgetBytes;
}
