using System.Buffers.Binary;
using System.Security.Cryptography;
using AotFlash.Flash;
using AotFlash.Tests.Support;
using Xunit.Abstractions;

namespace AotFlash.Tests.Catalogue;

/// <summary>
/// A catalogue of bad inputs, one theory row each, run in-process: every one must end with exit code 2, nothing on
/// stdout, exactly one "error: " line naming the problem (the case's fragment), and nothing written: the case's own
/// folder, where it puts its input files and points any output, holds exactly those files, unchanged, afterwards.
/// The groups live in the other parts of this class: options (Cli), model files (ModelFiles), checkpoints and
/// tokenizers (Checkpoints), Hugging Face folders (HuggingFace), GGUF files (Gguf), prompts and the other commands (Commands).
/// </summary>
public sealed partial class BadInputCatalogue(ITestOutputHelper output)
{
    private const string Relu = "stories260K-relu";
    private const string Silu = "stories260K";

    /// <summary>One bad input. <see cref="Args"/> gets the case's empty folder, puts its input files there and gives
    /// the command line; <see cref="Stdin"/> is standard input.</summary>
    public sealed record Case(string Fragment, Func<string, string[]> Args, string Model = Relu, byte[]? Stdin = null);

    // The only static field: the order in which the fields of partial parts are initialised is not defined, so the
    // other parts hold properties and methods only.
    private static readonly Dictionary<string, Case> Cases = Build();

    private static Dictionary<string, Case> Build()
    {
        var cases = new Dictionary<string, Case>(StringComparer.Ordinal);
        foreach (var (name, c) in CliCases().Concat(ModelFileCases()).Concat(DamagedModelFileCases()).Concat(CheckpointCases())
                     .Concat(TokenizerCases()).Concat(HuggingFaceCases()).Concat(GgufCases()).Concat(CommandCases()))
            cases.Add(name, c); // a duplicate name throws here
        return cases;
    }

    public static TheoryData<string> Names
    {
        get
        {
            var names = new TheoryData<string>();
            foreach (string name in Cases.Keys) names.Add(name);
            return names;
        }
    }

    [SkippableTheory]
    [MemberData(nameof(Names))]
    public void IsRefusedWithOneLineAndNothingWritten(string name)
    {
        ModelSource.RequireShared();
        var c = Cases[name];
        string dir = Published.TempDirectory();
        string[] args = c.Args(dir);
        foreach (var option in new[] { "-o", "--output", "--emit-spec" })
        {
            int i = Array.IndexOf(args, option);
            if (i >= 0 && i + 1 < args.Length && args[i + 1].Length > 0)
                Assert.True(args[i + 1].StartsWith(dir + "/", StringComparison.Ordinal), $"{option} {args[i + 1]} is not in the case's folder");
        }
        var inputs = Snapshot(dir);
        var task = Task.Run(() => InProcess.RunWithInput(c.Model, c.Stdin ?? [], args));
        Assert.True(task.Wait(TimeSpan.FromSeconds(120)), "the command did not finish within 120 s");
        var r = task.Result;
        output.WriteLine($"exit {r.ExitCode}: {r.Stderr.TrimEnd()}");
        r.AssertBadInput(c.Fragment);
        Assert.Equal(inputs, Snapshot(dir));
    }

    // xunit shows at most 50 characters of an argument: longer names would be cut in the test output.
    [Fact]
    public void EveryCaseNameShowsWhole() => Assert.All(Cases.Keys, name => Assert.InRange(name.Length, 1, 50));

    /// <summary>Every entry under <paramref name="dir"/>, with a hash of each regular file's content.</summary>
    private static string[] Snapshot(string dir) =>
    [
        .. Directory.EnumerateFileSystemEntries(dir, "*", SearchOption.AllDirectories).Order(StringComparer.Ordinal)
            .Select(p => Path.GetRelativePath(dir, p) + " " + (Libc.NotARegularFile(p) ?? System.Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(p))))),
    ];

    // ---- helpers shared by the groups ----

    private static (string, Case) C(string name, string fragment, Func<string, string[]> args, string model = Relu, byte[]? stdin = null) =>
        (name, new Case(fragment, args, model, stdin));

    /// <summary>The reference model of <paramref name="model"/>'s spec converted once per test run.</summary>
    private static string AfmPath(string model = Relu) => InProcess.ModelFile(model, model);

    private static byte[] AfmBytes(string model = Relu) => File.ReadAllBytes(AfmPath(model));

    /// <summary>The reference model calibrated once per test run (its last section holds the predictors).</summary>
    private static string CalibratedPath() => Sparsity.FlashModeTests.Calibrated(Relu);

    private static string Shared(string relative) => Path.Combine(TestPaths.Shared!, relative);

    /// <summary>Writes <paramref name="bytes"/> as <paramref name="name"/> in <paramref name="dir"/>; its path.</summary>
    private static string Put(string dir, string name, byte[] bytes)
    {
        string path = Path.Combine(dir, name);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllBytes(path, bytes);
        return path;
    }

    private static string Put(string dir, string name, string text) => Put(dir, name, System.Text.Encoding.UTF8.GetBytes(text));

    private static byte[] I32(byte[] b, long at, int value)
    {
        BinaryPrimitives.WriteInt32LittleEndian(b.AsSpan((int)at), value);
        return b;
    }

    private static byte[] I64(byte[] b, long at, long value)
    {
        BinaryPrimitives.WriteInt64LittleEndian(b.AsSpan((int)at), value);
        return b;
    }

    private static byte[] Flip(byte[] b, long at, byte mask = 0x10)
    {
        b[at] ^= mask;
        return b;
    }

    private static byte[] Cut(byte[] b, long length) => b[..(int)length];

    private static byte[] Append(byte[] b, int count) => [.. b, .. new byte[count]];

    /// <summary>Recomputes a model file header's checksum, so that only its content lies.</summary>
    private static byte[] FixCrc(byte[] b)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(ModelFileHeader.Size - 4), Crc32C.Compute(b.AsSpan(0, ModelFileHeader.Size - 4)));
        return b;
    }

    private static Section SectionOf(byte[] afm, SectionKind kind) =>
        ModelFileHeader.Parse(afm.AsSpan(0, ModelFileHeader.Size), "afm").Sections.Single(s => s.Kind == kind);
}
