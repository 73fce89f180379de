using Microsoft.CodeAnalysis;

namespace AotFlash.Generator
{
    /// <summary>Every diagnostic the model-spec generator reports; each points at the YAML file, line and column.</summary>
    internal static class DiagnosticDescriptors
    {
        private const string Category = "AotFlash.ModelSpec";

        private static DiagnosticDescriptor Error(string id, string title, string message) =>
            new DiagnosticDescriptor(id, title, message, Category, DiagnosticSeverity.Error, isEnabledByDefault: true);

        public static readonly DiagnosticDescriptor MalformedYaml =
            Error("AF0001", "Malformed YAML", "Malformed YAML: {0}");
        public static readonly DiagnosticDescriptor UnknownKey =
            Error("AF0002", "Unknown key", "Unknown key '{0}' in {1}; expected one of: {2}");
        public static readonly DiagnosticDescriptor MissingKey =
            Error("AF0003", "Missing required key", "Missing required key '{0}' in {1}");
        public static readonly DiagnosticDescriptor WrongType =
            Error("AF0004", "Wrong type", "'{0}' must be {1}, but is '{2}'");
        public static readonly DiagnosticDescriptor NotPositive =
            Error("AF0005", "Size must be positive", "'{0}' must be a positive integer, but is {1}");
        public static readonly DiagnosticDescriptor DimNotDivisibleByHeads =
            Error("AF0006", "dim not divisible by heads", "dim ({0}) must be divisible by heads ({1})");
        public static readonly DiagnosticDescriptor HeadsNotDivisibleByKvHeads =
            Error("AF0007", "heads not divisible by kv_heads", "heads ({0}) must be divisible by kv_heads ({1})");
        public static readonly DiagnosticDescriptor Unsupported =
            Error("AF0008", "Unsupported value", "Unsupported {0} '{1}'; supported: {2}");
        public static readonly DiagnosticDescriptor InvalidValue =
            Error("AF0009", "Invalid value", "Invalid value for '{0}': {1}");
        public static readonly DiagnosticDescriptor DuplicateModelName =
            Error("AF0010", "Duplicate model name", "Another spec also declares the model name '{0}' (class {1})");
        public static readonly DiagnosticDescriptor DimNotDivisibleByQuantGroup =
            Error("AF0011", "dim not a multiple of the quantisation group",
                "{0} weights are stored in groups of {2} elements per row, so dim ({1}) must be a multiple of {2}");
        public static readonly DiagnosticDescriptor ImpliedByFamily =
            Error("AF0012", "Key implied by the family", "'{0}' is implied by the family ({1}); remove it");
    }
}
