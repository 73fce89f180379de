using System.Globalization;
using System.Text.Json;
using AotFlash.Convert;
using AotFlash.Tests.Support;

namespace AotFlash.Tests.Convert;

/// <summary><c>convert --synthetic</c>: deterministic, marked as synthetic wherever used, and with the FFN activation
/// pattern it promises (sparsity, predictability) as measured by calibration, not as constructed.</summary>
public sealed class SyntheticWeightsTests
{
    private static string Tokenizer(string spec) => spec == "synthetic-opt-small"
        ? Path.Combine(TestPaths.Shared!, "models/opt-tiny-hf")
        : ModelSource.Of("stories260K").Tokenizer;

    private static string Convert(string spec, string dir, string seed, string name)
    {
        string afm = Path.Combine(dir, name);
        var r = InProcess.Run(spec, "convert", "--synthetic", seed, "-k", Tokenizer(spec), "-o", afm);
        Assert.True(r.ExitCode == 0, r.Stderr);
        return afm;
    }

    [SkippableFact]
    public void SameSeedSameFileOtherSeedOtherWeights()
    {
        ModelSource.RequireShared();
        string dir = Published.TempDirectory();
        byte[] a = File.ReadAllBytes(Convert("synthetic-llama-small", dir, "7", "a.afm"));
        byte[] b = File.ReadAllBytes(Convert("synthetic-llama-small", dir, "7", "b.afm"));
        byte[] c = File.ReadAllBytes(Convert("synthetic-llama-small", dir, "8", "c.afm"));
        Assert.Equal(a, b);
        Assert.Equal(a.Length, c.Length);
        Assert.NotEqual(a, c);
    }

    [SkippableFact]
    public void EveryOutputSaysTheWeightsAreSynthetic()
    {
        ModelSource.RequireShared();
        string dir = Published.TempDirectory();
        string afm = Convert("synthetic-llama-small", dir, "3", "s.afm");

        var run = InProcess.Run("synthetic-llama-small", "run", "--model", afm, "--mode", "dense", "-p", "a", "-n", "2", "--json");
        Assert.True(run.ExitCode == 0, run.Stderr);
        using var json = JsonDocument.Parse(run.Stdout);
        Assert.StartsWith("SYNTHETIC weights (seed 3)", json.RootElement.GetProperty("weights_provenance").GetString());
        Assert.Contains("SYNTHETIC weights", run.Stderr);

        var info = InProcess.Run("synthetic-llama-small", "info", "--model", afm);
        Assert.Contains("weights        SYNTHETIC weights (seed 3)", info.Stdout);

        // A converted checkpoint says nothing of the kind.
        var real = InProcess.Run("stories260K", "run", "--model", InProcess.ModelFile("stories260K", "stories260K"), "-p", "a", "-n", "1", "--json");
        Assert.True(real.ExitCode == 0, real.Stderr);
        using var realJson = JsonDocument.Parse(real.Stdout);
        Assert.Equal(JsonValueKind.Null, realJson.RootElement.GetProperty("weights_provenance").ValueKind);
    }

    [SkippableTheory]
    [InlineData("synthetic-opt-small", 0.015, 0.06)]   // ~3% with a gate bias
    [InlineData("synthetic-llama-small", 0.05, 0.18)]  // ~10% under fatrelu
    public void CalibrationMeasuresSparseAndPredictableNeurons(string spec, double minDensity, double maxDensity)
    {
        ModelSource.RequireShared();
        string dir = Published.TempDirectory();
        string afm = Convert(spec, dir, "1", "m.afm");
        // English text, so that consecutive tokens differ (a random model's own samples repeat themselves).
        var r = InProcess.Run(spec, "calibrate", "--model", afm, "--text", Path.Combine(TestPaths.RepoRoot, "README.md"), "--tokens", "512");
        Assert.True(r.ExitCode == 0, r.Stderr);
        // layer  rank   recall  precision  density(predicted)  density(true)  size
        var rows = r.Stdout.Split('\n').Where(l => l.Length > 0 && char.IsDigit(l.TrimStart()[0])).Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries)).ToList();
        Assert.Equal(InProcess.Model(spec).Shape.Layers, rows.Count);
        foreach (var row in rows)
        {
            double recall = double.Parse(row[2], CultureInfo.InvariantCulture), density = double.Parse(row[5], CultureInfo.InvariantCulture);
            Assert.InRange(density, minDensity, maxDensity);
            Assert.True(recall >= 0.85, $"layer {row[0]}: recall {recall} (the gates are to be predictable)\n{r.Stdout}");
        }
    }

    [Theory]
    [InlineData(0.5, 0.0)]
    [InlineData(0.95, 1.6448536)]
    [InlineData(0.97, 1.8807936)]
    [InlineData(0.1, -1.2815516)]
    public void NormalQuantileInvertsTheTail(double p, double z)
    {
        Assert.Equal(z, Normal.Quantile(p), 5);
        Assert.Equal(1 - p, Normal.UpperTail(z), 6);
    }
}
