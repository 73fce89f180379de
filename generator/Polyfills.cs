// Language features the netstandard2.0 generator uses that its framework lacks.
namespace System.Runtime.CompilerServices
{
    internal static class IsExternalInit { }
}
