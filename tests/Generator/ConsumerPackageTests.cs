using AotFlash.Tests.Support;

namespace AotFlash.Tests.Generator;

/// <summary>
/// A clean consumer project that references the generator the way a user would, as a NuGet package, must get the
/// generated model class: this fails when YamlDotNet is not packed beside the generator (warning CS8785, no code).
/// </summary>
public sealed class ConsumerPackageTests
{
    [Fact]
    public void PackageReferenceGeneratesTheModel()
    {
        string dir = Published.TempDirectory();
        string feed = Path.Combine(dir, "feed");
        string version = "0.1.0-test" + DateTime.UtcNow.Ticks;
        var pack = ProcessRunner.Run("dotnet", ["pack", Path.Combine(TestPaths.RepoRoot, "generator", "AotFlash.Generator.csproj"),
            "-c", "Release", "-o", feed, $"-p:Version={version}", "--nologo"]);
        Assert.True(pack.ExitCode == 0, pack.Stdout + pack.Stderr);

        string consumer = Path.Combine(dir, "consumer");
        Directory.CreateDirectory(consumer);
        File.Copy(Path.Combine(TestPaths.RepoRoot, "modelspecs", "stories260K-relu.yaml"), Path.Combine(consumer, "model.yaml"));
        File.WriteAllText(Path.Combine(consumer, "Consumer.csproj"), $"""
            <Project Sdk="Microsoft.NET.Sdk">
              <PropertyGroup>
                <OutputType>Exe</OutputType>
                <TargetFramework>net10.0</TargetFramework>
                <AllowUnsafeBlocks>true</AllowUnsafeBlocks>
                <TreatWarningsAsErrors>true</TreatWarningsAsErrors>
                <RestorePackagesPath>{Path.Combine(dir, "packages")}</RestorePackagesPath>
                <RestoreAdditionalProjectSources>{feed}</RestoreAdditionalProjectSources>
              </PropertyGroup>
              <ItemGroup>
                <PackageReference Include="AotFlash.Generator" Version="{version}" />
                <ProjectReference Include="{Path.Combine(TestPaths.RepoRoot, "runtime", "AotFlash.Runtime.csproj")}" />
                <AdditionalFiles Include="model.yaml" />
              </ItemGroup>
            </Project>
            """);
        File.WriteAllText(Path.Combine(consumer, "Program.cs"), """
            using AotFlash.Models;
            System.Console.WriteLine($"{Stories260KReluModel.ModelName} dim={Stories260KReluModel.Dim} models={ModelCatalog.All.Count}");
            """);
        var run = ProcessRunner.Run("dotnet", ["run", "--project", consumer, "--nologo"], consumer);
        Assert.True(run.ExitCode == 0, run.Stdout + run.Stderr);
        Assert.DoesNotContain("CS8785", run.Stdout + run.Stderr);
        Assert.Contains("stories260K-relu dim=64 models=1", run.Stdout);
    }
}
