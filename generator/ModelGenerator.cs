using System.IO;
using System.Linq;
using Microsoft.CodeAnalysis;

namespace AotFlash.Generator
{
    /// <summary>
    /// Incremental pipeline: every <c>*.yaml</c> AdditionalFile → <see cref="Parser"/> (validated, equatable
    /// <see cref="ModelSpec"/> + diagnostics) → <see cref="Emitter"/> (one specialised model class per spec) and one
    /// <c>ModelCatalog</c> listing them all.
    /// </summary>
    [Generator(LanguageNames.CSharp)]
    public sealed partial class ModelGenerator : IIncrementalGenerator
    {
        public void Initialize(IncrementalGeneratorInitializationContext context)
        {
            var parsed = context.AdditionalTextsProvider
                .Where(static file => file.Path.EndsWith(".yaml", System.StringComparison.OrdinalIgnoreCase)
                                      || file.Path.EndsWith(".yml", System.StringComparison.OrdinalIgnoreCase))
                .Select(static (file, ct) =>
                {
                    string text = file.GetText(ct)?.ToString() ?? "";
                    return Parser.Parse(file.Path, text);
                })
                .WithTrackingName(TrackingNames.Parsed);

            // What each spec needs to know of the others: which file declares each model class first (in path order), so
            // that a second spec declaring the same model is reported instead of emitting the class twice. An edit that
            // keeps a spec's name leaves this list equal, so every other spec's output stays cached.
            var declared = parsed
                .Select(static (result, _) => new DeclaredModel(result.Spec?.ClassName, result.NameSite.FilePath))
                .Collect()
                .Select(static (all, _) => new EquatableArray<DeclaredModel>(all
                    .Where(d => d.ClassName is not null)
                    .OrderBy(d => d.FilePath, System.StringComparer.Ordinal)
                    .GroupBy(d => d.ClassName)
                    .Select(g => g.First())));

            context.RegisterSourceOutput(parsed.Combine(declared).WithTrackingName(TrackingNames.ModelInputs), static (spc, input) =>
            {
                var (result, owners) = input;
                foreach (var d in result.Diagnostics) spc.ReportDiagnostic(d.ToDiagnostic());
                if (result.Spec is not { } spec) return;
                if (owners.First(o => o.ClassName == spec.ClassName).FilePath != result.NameSite.FilePath)
                {
                    spc.ReportDiagnostic(Parser.Info(DiagnosticDescriptors.DuplicateModelName, result.NameSite, spec.Name, spec.ClassName).ToDiagnostic());
                    return;
                }
                spc.AddSource(spec.ClassName + ".g.cs", Emitter.EmitModel(spec, Path.GetFileName(result.NameSite.FilePath)));
            });

            context.RegisterSourceOutput(declared, static (spc, owners) =>
                spc.AddSource("ModelCatalog.g.cs", Emitter.EmitCatalog(owners.Select(o => o.ClassName!))));
        }

        /// <summary>Names of the pipeline's steps, for tests of its caching.</summary>
        public static class TrackingNames
        {
            public const string Parsed = "Parsed";
            public const string ModelInputs = "ModelInputs";
        }

        /// <summary>A model class and the spec file that declares it (no class when the spec is invalid).</summary>
        private sealed record DeclaredModel(string? ClassName, string FilePath);
    }
}
