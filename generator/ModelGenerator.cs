using System.Collections.Immutable;
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
                });

            // Collected so that two specs declaring the same model are reported instead of emitting the class twice.
            context.RegisterSourceOutput(parsed.Collect(), static (spc, results) =>
            {
                var names = new System.Collections.Generic.HashSet<string>();
                var emitted = ImmutableArray.CreateBuilder<ModelSpec>();
                foreach (var result in results.OrderBy(r => r.NameSite.FilePath, System.StringComparer.Ordinal))
                {
                    foreach (var d in result.Diagnostics) spc.ReportDiagnostic(d.ToDiagnostic());
                    if (result.Spec is not { } spec) continue;
                    if (!names.Add(spec.ClassName))
                    {
                        spc.ReportDiagnostic(Parser.Info(DiagnosticDescriptors.DuplicateModelName, result.NameSite, spec.Name, spec.ClassName).ToDiagnostic());
                        continue;
                    }
                    spc.AddSource(spec.ClassName + ".g.cs", Emitter.EmitModel(spec, Path.GetFileName(result.NameSite.FilePath)));
                    emitted.Add(spec);
                }
                spc.AddSource("ModelCatalog.g.cs", Emitter.EmitCatalog(emitted.ToImmutable()));
            });
        }
    }
}
