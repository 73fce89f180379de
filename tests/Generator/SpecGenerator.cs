extern alias generator;
using System.Collections.Immutable;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.Text;

namespace AotFlash.Tests.Generator;

/// <summary>Runs the model-spec generator in memory over YAML texts and compiles its output against the runtime.</summary>
internal static class SpecGenerator
{
    internal sealed class YamlFile(string path, string text) : AdditionalText
    {
        public override string Path { get; } = path;
        public string Text { get; } = text;
        public override SourceText GetText(CancellationToken cancellationToken = default) => SourceText.From(Text);
    }

    public sealed record Result(ImmutableArray<Diagnostic> GeneratorDiagnostics, ImmutableArray<Diagnostic> CompileErrors,
                                IReadOnlyDictionary<string, string> Sources);

    public static Result Run(params (string Path, string Yaml)[] specs)
    {
        // The framework and the runtime only: the test assembly has its own generated models.
        var references = ((string)AppContext.GetData("TRUSTED_PLATFORM_ASSEMBLIES")!).Split(Path.PathSeparator)
            .Where(p => Path.GetFileName(p) is var f && (f.StartsWith("System.", StringComparison.Ordinal) || f is "netstandard.dll" or "mscorlib.dll"))
            .Select(p => MetadataReference.CreateFromFile(p))
            .Append(MetadataReference.CreateFromFile(typeof(AotFlash.Inference.ModelInfo).Assembly.Location));
        var compilation = CSharpCompilation.Create("Consumer", [], references,
            new CSharpCompilationOptions(OutputKind.DynamicallyLinkedLibrary, allowUnsafe: true));
        GeneratorDriver driver = CSharpGeneratorDriver.Create(
            [new generator::AotFlash.Generator.ModelGenerator().AsSourceGenerator()],
            specs.Select(s => (AdditionalText)new YamlFile(s.Path, s.Yaml)));
        driver = driver.RunGeneratorsAndUpdateCompilation(compilation, out var output, out var diagnostics);
        var run = driver.GetRunResult();
        var sources = run.Results.SelectMany(r => r.GeneratedSources).ToDictionary(s => s.HintName, s => s.SourceText.ToString());
        var errors = output.GetDiagnostics().Where(d => d.Severity == DiagnosticSeverity.Error).ToImmutableArray();
        return new Result(diagnostics, errors, sources);
    }

    public static string Spec(string name) => File.ReadAllText(Path.Combine(TestPaths.RepoRoot, name));
}
