extern alias generator;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Xunit.Abstractions;
using ModelGenerator = generator::AotFlash.Generator.ModelGenerator;

namespace AotFlash.Tests.Generator;

/// <summary>The generator's incremental pipeline: an edit of one spec parses and emits that spec again, and leaves
/// every other spec's work cached.</summary>
public sealed class IncrementalTests(ITestOutputHelper output)
{
    [Fact]
    public void EditingOneSpecReEmitsOnlyThatSpec()
    {
        var plain = new SpecGenerator.YamlFile("/specs/stories260K.yaml", SpecGenerator.Spec("modelspecs/stories260K.yaml"));
        var relu = new SpecGenerator.YamlFile("/specs/stories260K-relu.yaml", SpecGenerator.Spec("modelspecs/stories260K-relu.yaml"));
        var compilation = CSharpCompilation.Create("Consumer");
        GeneratorDriver driver = CSharpGeneratorDriver.Create([new ModelGenerator().AsSourceGenerator()], [plain, relu],
            driverOptions: new GeneratorDriverOptions(IncrementalGeneratorOutputKind.None, trackIncrementalGeneratorSteps: true));
        driver = driver.RunGenerators(compilation);

        var edited = new SpecGenerator.YamlFile(relu.Path, relu.Text.Replace("context: 512", "context: 256"));
        Assert.NotEqual(relu.Text, edited.Text);
        driver = driver.ReplaceAdditionalText(relu, edited).RunGenerators(compilation);
        var run = Assert.Single(driver.GetRunResult().Results);
        Assert.Null(run.Exception);

        foreach (var name in new[] { ModelGenerator.TrackingNames.Parsed, ModelGenerator.TrackingNames.ModelInputs })
        {
            var reasons = run.TrackedSteps[name].SelectMany(step => step.Outputs).Select(o => o.Reason).ToArray();
            output.WriteLine($"{name}: {string.Join(", ", reasons)}");
            Assert.Equal(2, reasons.Length);
            Assert.Single(reasons, IncrementalStepRunReason.Modified);
            Assert.Single(reasons, r => r is IncrementalStepRunReason.Cached or IncrementalStepRunReason.Unchanged);
        }
        // The edited spec's class changes; the other one's is not emitted again.
        var outputs = run.TrackedOutputSteps["SourceOutput"].SelectMany(step => step.Outputs).ToArray();
        foreach (var o in outputs) output.WriteLine($"output: {o.Reason}");
        Assert.Equal(3, outputs.Length); // one class per spec and the catalog
        Assert.Single(outputs, o => o.Reason == IncrementalStepRunReason.Modified);
        Assert.Contains(run.GeneratedSources, s => s.HintName == "Stories260KReluModel.g.cs" && s.SourceText.ToString().Contains("Context = 256"));
        Assert.Contains(run.GeneratedSources, s => s.HintName == "Stories260KModel.g.cs");
    }
}
