using System.Text;
using AotFlash.Cli;
using AotFlash.Inference;
using AotFlash.Models;

namespace AotFlash.Tests.Support;

/// <summary>Runs the CLI inside the test process (JIT) for a model compiled into the test assembly.</summary>
public static class InProcess
{
    public static ModelInfo Model(string name) => ModelCatalog.All.Single(m => m.Name == name);

    public static ProcessResult Run(string model, params string[] args) => RunWithInput(model, [], args);

    /// <summary>As <see cref="Run"/>, with <paramref name="stdin"/> as standard input.</summary>
    public static ProcessResult RunWithInput(string model, byte[] stdin, params string[] args)
    {
        var stdout = new MemoryStream();
        var stderr = new StringWriter();
        int code = CommandLine.Run(new CliContext(Model(model), new MemoryStream(stdin), stdout, stderr, executablePath: null), args);
        return new ProcessResult(code, Encoding.UTF8.GetString(stdout.ToArray()), stderr.ToString());
    }

    private static readonly Dictionary<string, string> Converted = [];
    private static readonly object ConvertLock = new();

    /// <summary>The reference model converted to a model file once per test run (for the spec <paramref name="spec"/>).</summary>
    public static string ModelFile(string spec, string source)
    {
        lock (ConvertLock)
        {
            if (Converted.TryGetValue(spec, out var path)) return path;
            var (weights, tokenizer) = ModelSource.Of(source);
            path = Path.Combine(Published.TempDirectory(), spec + ".afm");
            var r = Run(spec, "convert", "--weights", weights, "--tokenizer", tokenizer, "-o", path);
            Assert.True(r.ExitCode == 0, r.Stderr);
            Converted[spec] = path;
            return path;
        }
    }
}
