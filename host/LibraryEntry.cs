// The shared library of one model (publish.sh --lib): hands the compiled-in model to the C API, whose exports live in
// the runtime assembly and cannot see the generated class.
using System.Runtime.CompilerServices;

namespace AotFlash.Host;

internal static class LibraryEntry
{
    // Native AOT runs module initializers before the first export runs; nothing else would run this code.
#pragma warning disable CA2255
    [ModuleInitializer]
    internal static void Register() => AotFlash.Interop.LibraryModel.Register(AotFlash.Models.ModelCatalog.All);
#pragma warning restore CA2255
}
