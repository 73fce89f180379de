using System.Runtime.InteropServices;
using AotFlash.Flash;
using AotFlash.Inference;

namespace AotFlash.Interop;

/// <summary>
/// The model compiled into this shared library. The exports live in the runtime assembly, which cannot see the
/// generated model class, so the library's host assembly hands its <c>ModelCatalog.All</c> over in a module
/// initializer (Native AOT runs those before the first export runs).
/// </summary>
public static unsafe partial class LibraryModel
{
    private static IReadOnlyList<ModelInfo>? s_models;

    public static void Register(IReadOnlyList<ModelInfo> models) => s_models = models;

    internal static ModelInfo Info => s_models switch
    {
        [var only] => only,
        null => throw new ApiException(Status.Runtime, "no model is registered in this library"),
        var models => throw new ApiException(Status.Runtime, $"this library was built with {models.Count} model specs; publish exactly one"),
    };

    /// <summary>The model file at <paramref name="path"/>, or with null the one packed into this library (see <c>pack --binary</c>).</summary>
    internal static ModelFile Open(string? path) =>
        ModelFile.OpenOrPacked(path, LibraryPath)
        ?? throw new BadInputException($"no model: {LibraryPath()} carries no model file; pass the path of a model file (.afm)");

    /// <summary>This shared library's file, found from the address of one of its own functions.</summary>
    private static string LibraryPath()
    {
        DlInfo info;
        if (dladdr((delegate* unmanaged<byte*>)&Exports.Version, &info) == 0 || info.FileName == null)
            throw new ApiException(Status.Runtime, "cannot find the library's own file (dladdr failed)");
        return Marshal.PtrToStringUTF8((nint)info.FileName)!;
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct DlInfo
    {
        public byte* FileName;
        public void* FileBase;
        public byte* SymbolName;
        public void* SymbolAddress;
    }

    [LibraryImport("libc")]
    private static partial int dladdr(void* address, DlInfo* info);
}
