using System.Runtime.InteropServices;

namespace AotFlash;

/// <summary>
/// The functions of aotflash.h that the chat client calls, bound from one model library at run time (each model has a
/// library of its own name, so nothing can be bound by name at compile time), and the structs they pass, laid out as
/// the header declares them.
/// </summary>
internal sealed unsafe class NativeApi
{
    public const int Ok = 0, BufferTooSmall = 3;

    private readonly nint _library;

    public readonly delegate* unmanaged<byte*> LastError;
    public readonly delegate* unmanaged<Params> DefaultParams;
    public readonly delegate* unmanaged<byte*, Params*, nint*, int> ModelOpen;
    public readonly delegate* unmanaged<nint, int> ModelClose;
    public readonly delegate* unmanaged<nint, ModelDesc*, int> ModelInfo;
    public readonly delegate* unmanaged<nint, ChatMessage*, nuint, byte*, int*, nuint, nuint*, int*, byte**, int> ChatTokenize;
    public readonly delegate* unmanaged<nint, Params*, nint*, int> SessionNew;
    public readonly delegate* unmanaged<nint, int> SessionFree;
    public readonly delegate* unmanaged<nint, int*, nuint, int, delegate* unmanaged<int, byte*, nuint, void*, int>, void*, int*, int> Generate;

    /// <exception cref="DllNotFoundException">The library cannot be loaded.</exception>
    /// <exception cref="EntryPointNotFoundException">It is not an AotFlash model library, or one too old for this package.</exception>
    public NativeApi(string libraryPath)
    {
        _library = NativeLibrary.Load(libraryPath);
        try
        {
            LastError = (delegate* unmanaged<byte*>)Export("aotflash_last_error");
            DefaultParams = (delegate* unmanaged<Params>)Export("aotflash_default_params");
            ModelOpen = (delegate* unmanaged<byte*, Params*, nint*, int>)Export("aotflash_model_open");
            ModelClose = (delegate* unmanaged<nint, int>)Export("aotflash_model_close");
            ModelInfo = (delegate* unmanaged<nint, ModelDesc*, int>)Export("aotflash_model_info");
            ChatTokenize = (delegate* unmanaged<nint, ChatMessage*, nuint, byte*, int*, nuint, nuint*, int*, byte**, int>)Export("aotflash_chat_tokenize");
            SessionNew = (delegate* unmanaged<nint, Params*, nint*, int>)Export("aotflash_session_new");
            SessionFree = (delegate* unmanaged<nint, int>)Export("aotflash_session_free");
            Generate = (delegate* unmanaged<nint, int*, nuint, int, delegate* unmanaged<int, byte*, nuint, void*, int>, void*, int*, int>)Export("aotflash_generate");
        }
        catch
        {
            NativeLibrary.Free(_library);
            throw;
        }

        nint Export(string name) => NativeLibrary.TryGetExport(_library, name, out nint address) ? address
            : throw new EntryPointNotFoundException($"{libraryPath} has no function {name}: it is not an AotFlash model library " +
                                                    "(./publish.sh SPEC --lib builds one), or one older than this package");
    }

    /// <summary>Throws an <see cref="AotFlashException"/> for a failed status, with the library's message (read on the
    /// calling thread, as the library keeps it per thread).</summary>
    public void Check(int status, string call)
    {
        if (status != Ok) throw new AotFlashException(status, $"{call}: {Marshal.PtrToStringUTF8((nint)LastError())}");
    }

    /// <summary><c>aotflash_chat_message</c>.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct ChatMessage
    {
        public byte* Role;
        public byte* Content;
    }

    /// <summary><c>aotflash_params</c>.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct Params
    {
        public uint Size;
        public int Mode;
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
        public void* Progress;
        public void* ProgressUserData;
    }

    /// <summary><c>aotflash_model_desc</c>.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct ModelDesc
    {
        public uint Size;
        public int Vocab;
        public int Context;
        public int Bos;
        public int Eos;
        public int Mode;
        public int Dim;
        public int Layers;
        public byte* Name;
        public byte* SpecHash;
        public byte* Family;
    }
}
