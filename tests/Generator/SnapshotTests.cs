namespace AotFlash.Tests.Generator;

/// <summary>
/// The emitted code of six specs (Llama f32, Llama FATReLU f16, OPT f32, Llama q4, Falcon f32, Llama f32 with q8 resident
/// matrices) against checked-in snapshots. When
/// the emitter changes on purpose, the test writes the new output beside the snapshot as <c>*.received.cs</c>; review it
/// and copy it over the snapshot.
/// </summary>
public sealed class SnapshotTests
{
    [Theory]
    [InlineData("modelspecs/stories260K-relu.yaml", "Stories260KReluModel.g.cs")]
    [InlineData("tests/specs/stories260K-fatrelu.yaml", "Stories260KFatreluModel.g.cs")]
    [InlineData("modelspecs/opt-tiny.yaml", "OptTinyModel.g.cs")]
    [InlineData("tests/specs/stories260K-relu-q4.yaml", "Stories260KReluQ4Model.g.cs")]
    [InlineData("modelspecs/falcon-tiny-relu.yaml", "FalconTinyReluModel.g.cs")]
    [InlineData("tests/specs/stories260K-relu-resident-q8.yaml", "Stories260KReluResidentQ8Model.g.cs")]
    public void EmittedModelMatchesSnapshot(string spec, string hintName)
    {
        var result = SpecGenerator.Run((spec, SpecGenerator.Spec(spec)));
        Assert.Empty(result.GeneratorDiagnostics);
        Assert.Empty(result.CompileErrors);
        AssertSnapshot(hintName, result.Sources[hintName]);
        AssertSnapshot("ModelCatalog." + Path.GetFileNameWithoutExtension(spec) + ".g.cs", result.Sources["ModelCatalog.g.cs"]);
    }

    private static void AssertSnapshot(string name, string actual)
    {
        string dir = Path.Combine(TestPaths.RepoRoot, "tests", "Generator", "Snapshots");
        string path = Path.Combine(dir, name);
        string received = Path.ChangeExtension(path, ".received.cs");
        string expected = File.Exists(path) ? File.ReadAllText(path) : "";
        if (expected.ReplaceLineEndings() == actual.ReplaceLineEndings())
        {
            File.Delete(received);
            return;
        }
        File.WriteAllText(received, actual);
        Assert.Fail($"generated {name} differs from its snapshot; the new output is in {received}");
    }

    [Fact]
    public void EverySpecOfTheRepositoryCompiles()
    {
        var specs = Directory.GetFiles(Path.Combine(TestPaths.RepoRoot, "modelspecs"), "*.yaml")
            .Select(p => (p, File.ReadAllText(p))).ToArray();
        var result = SpecGenerator.Run(specs);
        Assert.Empty(result.GeneratorDiagnostics);
        Assert.Empty(result.CompileErrors);
        Assert.Equal(specs.Length + 1, result.Sources.Count);
    }
}
