extern alias generator;
using System.Buffers.Binary;
using System.Diagnostics;
using System.Text;
using AotFlash.Convert;
using AotFlash.Flash;
using AotFlash.Sparsity;
using AotFlash.Tests.Generator;
using AotFlash.Tests.Sparsity;
using AotFlash.Tests.Support;
using AotFlash.Tokenizers;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Xunit.Abstractions;
using ModelGenerator = generator::AotFlash.Generator.ModelGenerator;

namespace AotFlash.Tests.Fuzz;

/// <summary>
/// Seeded mutation fuzzing of every parser of outside input: valid inputs are damaged (bit flips, interesting
/// values, truncation, extension, moved chunks) and each parser must answer with its documented error, never another
/// exception, a hang or a wrong kind of exit. Each target runs a fixed number of iterations from a fixed seed in the
/// suite, or for AOTFLASH_FUZZ_SECONDS each in a longer campaign, and reports its iterations. What a campaign finds
/// becomes a plain regression test at the end of this class.
/// </summary>
public sealed class ParserFuzzTests(ITestOutputHelper output)
{
    /// <summary>A longer campaign's length per target, from AOTFLASH_FUZZ_SECONDS; null in the suite, where each target
    /// runs a fixed number of iterations (the same ones every run, since the seeds are fixed), capped at 20 s.</summary>
    private static double? CampaignSeconds =>
        double.TryParse(Environment.GetEnvironmentVariable("AOTFLASH_FUZZ_SECONDS"), out double s) && s > 0 ? s : null;

    private static bool Continue(Stopwatch clock, int iterations, int suiteIterations) => CampaignSeconds is double seconds
        ? clock.Elapsed.TotalSeconds < seconds
        : iterations < suiteIterations && clock.Elapsed.TotalSeconds < 20;

    /// <summary>Damages a copy of <paramref name="input"/> with one to four mutations.</summary>
    internal static byte[] Mutate(Random random, byte[] input, int focus = int.MaxValue)
    {
        var data = new List<byte>(input);
        int mutations = 1 + random.Next(4);
        for (int m = 0; m < mutations; m++)
        {
            int span = Math.Min(focus, data.Count);
            int at = span == 0 ? 0 : random.Next(span);
            switch (random.Next(8))
            {
                case 0 when data.Count > 0:
                    data[at] ^= (byte)(1 << random.Next(8));
                    break;
                case 1 when data.Count > 0:
                    data[at] = (byte)(random.Next(4) switch { 0 => 0, 1 => 0xFF, 2 => 0x7F, _ => 0x80 });
                    break;
                case 2 when data.Count >= at + 4:
                    int value = random.Next(6) switch { 0 => 0, 1 => -1, 2 => int.MaxValue, 3 => int.MinValue, 4 => random.Next(1 << 16), _ => 1 << random.Next(31) };
                    var bytes = BitConverter.GetBytes(value);
                    for (int k = 0; k < 4; k++) data[at + k] = bytes[k];
                    break;
                case 3:
                    data.RemoveRange(at, data.Count - at); // truncate
                    break;
                case 4:
                    data.InsertRange(at, Enumerable.Range(0, 1 + random.Next(64)).Select(_ => (byte)random.Next(256)));
                    break;
                case 5 when data.Count > at:
                    data.RemoveRange(at, Math.Min(data.Count - at, 1 + random.Next(64)));
                    break;
                case 6 when data.Count > 8:
                    int from = random.Next(data.Count - 8), length = 1 + random.Next(Math.Min(32, data.Count - from));
                    data.InsertRange(at, data.GetRange(from, length));
                    break;
                default:
                    if (data.Count > 0) data[at] = (byte)random.Next(256);
                    break;
            }
        }
        return [.. data];
    }

    /// <summary>Runs <paramref name="iteration"/> with fresh mutations until the time is up; an exception other than
    /// those <paramref name="expected"/> allows fails the test with the seed and iteration that found it.</summary>
    private void Campaign(string target, int seed, int suiteIterations, Action<Random> iteration, Func<Exception, bool> expected)
    {
        var random = new Random(seed);
        var clock = Stopwatch.StartNew();
        int iterations = 0, refused = 0;
        while (Continue(clock, iterations, suiteIterations))
        {
            iterations++;
            var work = Task.Run(() =>
            {
                try { iteration(random); return (Exception?)null; }
                catch (Exception e) { return e; }
            });
            Assert.True(work.Wait(TimeSpan.FromSeconds(30)), $"{target}: iteration {iterations} (seed {seed}) did not finish within 30 s");
            if (work.Result is { } e)
            {
                if (!expected(e)) Assert.Fail($"{target}: iteration {iterations} (seed {seed}) threw {e.GetType().Name}: {e.Message}\n{e.StackTrace}");
                refused++;
            }
        }
        output.WriteLine($"{target}: {iterations} iterations in {clock.Elapsed.TotalSeconds:F1} s, {refused} refused, {iterations - refused} accepted");
        Assert.True(iterations > 10, $"{target}: only {iterations} iterations ran");
    }

    private static bool BadInput(Exception e) => e is BadInputException;
    private static bool InvalidData(Exception e) => e is InvalidDataException;

    private static string Shared(string relative) => TestPaths.SharedFile(relative) ?? throw new SkipException("../shared is absent");

    private static byte[] Afm(out string path)
    {
        path = InProcess.ModelFile("stories260K-relu", "stories260K-relu");
        return File.ReadAllBytes(path);
    }

    /// <summary>A header with its CRC made right again, so that the mutation reaches the checks after it.</summary>
    private static byte[] WithHeaderCrc(byte[] header)
    {
        if (header.Length >= ModelFileHeader.Size)
            BinaryPrimitives.WriteUInt32LittleEndian(header.AsSpan(ModelFileHeader.Size - 4), Crc32C.Compute(header.AsSpan(0, ModelFileHeader.Size - 4)));
        return header;
    }

    [SkippableFact]
    public void ModelFileHeaders()
    {
        ModelSource.RequireShared();
        byte[] header = Afm(out _)[..ModelFileHeader.Size];
        Campaign("model file header", 1, 20000, random =>
        {
            byte[] mutated = Mutate(random, header, focus: 600);
            if (random.Next(4) != 0) WithHeaderCrc(mutated);
            ModelFileHeader.Parse(mutated, "fuzz");
        }, BadInput);
    }

    /// <summary>Whole model files (header mutations with the CRC fixed, and damage anywhere) through the CLI: exit 0 or
    /// 2; exit 1 only for the runtime's one legitimate failure of damaged weights, non-finite logits.</summary>
    [SkippableFact]
    public void ModelFilesThroughTheCommandLine()
    {
        ModelSource.RequireShared();
        byte[] file = Afm(out _);
        string path = Path.Combine(Published.TempDirectory(), "fuzzed.afm");
        var random = new Random(2);
        var clock = Stopwatch.StartNew();
        int iterations = 0;
        var codes = new int[3];
        while (Continue(clock, iterations, 400))
        {
            iterations++;
            byte[] mutated = random.Next(3) == 0
                ? Mutate(random, file)
                : [.. WithHeaderCrc(Mutate(random, file[..ModelFileHeader.Size], focus: 600)), .. file.AsSpan(ModelFileHeader.Size)];
            File.WriteAllBytes(path, mutated);
            string[] args = random.Next(2) == 0
                ? ["info", "--model", path]
                : ["run", "--model", path, "--mode", random.Next(2) == 0 ? "dense" : "naive", "-p", "Once", "-n", "2", "--temp", "0"];
            var r = InProcess.Run("stories260K-relu", args);
            Assert.True(r.ExitCode is 0 or 2 || (r.ExitCode == 1 && r.Stderr.Contains("non-finite logits")),
                $"iteration {iterations}: {string.Join(' ', args)} exited {r.ExitCode}: {r.Stderr}");
            if (r.ExitCode == 2) Assert.Single(r.StderrLines);
            codes[r.ExitCode]++;
        }
        output.WriteLine($"model files: {iterations} iterations in {clock.Elapsed.TotalSeconds:F1} s, exits 0/1/2: {string.Join('/', codes)}");
    }

    [SkippableFact]
    public void Llama2cTokenizers()
    {
        ModelSource.RequireShared();
        byte[] tokenizer = File.ReadAllBytes(Shared("models/stories260K/tok512.bin"));
        Campaign("llama2.c tokenizer", 3, 20000, random =>
        {
            var t = Llama2cTokenizer.Load(Mutate(random, tokenizer), 512);
            t.Encode(Mutate(random, "Once upon a time"u8.ToArray()), addBos: true, 1);
        }, InvalidData);
    }

    [SkippableFact]
    public void SentencePieceModels()
    {
        ModelSource.RequireShared();
        byte[] model = File.ReadAllBytes(Shared("models/llama2-tokenizer/tokenizer.model"));
        Campaign("SentencePiece model", 4, 300, random => SentencePieceModel.ToLlama2c(Mutate(random, model)), InvalidData);
    }

    [SkippableFact]
    public void Gpt2Tokenizers()
    {
        ModelSource.RequireShared();
        byte[] vocab = File.ReadAllBytes(Shared("models/opt-tiny-hf/vocab.json"));
        byte[] merges = File.ReadAllBytes(Shared("models/opt-tiny-hf/merges.txt"));
        byte[] serialized = Gpt2BpeTokenizer.FromVocabAndMerges(vocab, merges).Serialize();
        Campaign("GPT-2 tokenizer section", 5, 500, random =>
        {
            var t = Gpt2BpeTokenizer.Load(Mutate(random, serialized), 50257);
            t.Encode("Hello world, once upon a time"u8, addBos: false, 0);
        }, InvalidData);
        Campaign("GPT-2 vocab.json + merges.txt", 6, 5000, random =>
            Gpt2BpeTokenizer.FromVocabAndMerges(Mutate(random, vocab[..4096].Concat("}"u8.ToArray()).ToArray()), Mutate(random, merges[..4096])),
            InvalidData);
    }

    [SkippableFact]
    public void PredictorSections()
    {
        ModelSource.RequireShared();
        string calibrated = FlashModeTests.Calibrated("stories260K-relu");
        byte[] section;
        using (var file = ModelFile.Open(calibrated))
        {
            var p = file.Header.Get(SectionKind.Predictors, calibrated);
            section = File.ReadAllBytes(calibrated).AsSpan((int)p.Offset, (int)p.Length).ToArray();
        }
        var s = InProcess.Model("stories260K-relu").Shape;
        Campaign("predictors section", 7, 3000, random => PredictorSet.Parse(Mutate(random, section, focus: 256), s.Layers, s.Dim, s.HiddenDim, "fuzz"), BadInput);
    }

    [SkippableFact]
    public void SafeTensorsHeaders()
    {
        ModelSource.RequireShared();
        byte[] file = File.ReadAllBytes(Shared("models/stories260K-hf/model.safetensors"));
        int headerEnd = 8 + (int)BinaryPrimitives.ReadUInt64LittleEndian(file);
        string path = Path.Combine(Published.TempDirectory(), "fuzzed.safetensors");
        Campaign("safetensors header", 8, 500, random =>
        {
            byte[] head = Mutate(random, file[..headerEnd]);
            if (random.Next(2) == 0 && head.Length >= 8) BinaryPrimitives.WriteUInt64LittleEndian(head, (ulong)(head.Length - 8)); // keep the length right
            File.WriteAllBytes(path, [.. head, .. file.AsSpan(headerEnd)]);
            using var checkpoint = SafeTensorsCheckpoint.Open(path);
        }, BadInput);
    }

    [SkippableFact]
    public void Llama2cCheckpointHeaders()
    {
        ModelSource.RequireShared();
        byte[] file = File.ReadAllBytes(ModelSource.Of("stories260K").Weights);
        string path = Path.Combine(Published.TempDirectory(), "fuzzed.bin");
        var info = InProcess.Model("stories260K");
        Campaign("llama2.c checkpoint", 9, 500, random =>
        {
            byte[] mutated = random.Next(4) == 0 ? Mutate(random, file) : [.. Mutate(random, file[..28], focus: 28), .. file.AsSpan(28)];
            File.WriteAllBytes(path, mutated);
            using var checkpoint = Llama2cCheckpoint.Open(path);
            checkpoint.CheckFits(info);
        }, BadInput);
    }

    /// <summary>Spec YAML through the generator alone (no compilation): diagnostics, never an exception of its own.</summary>
    [SkippableFact]
    public void ModelSpecs()
    {
        ModelSource.RequireShared();
        byte[] spec = Encoding.UTF8.GetBytes(SpecGenerator.Spec("modelspecs/stories260K-relu.yaml"));
        var compilation = CSharpCompilation.Create("Fuzz");
        int diagnosed = 0;
        Campaign("model spec", 10, 2000, random =>
        {
            string yaml = Encoding.UTF8.GetString(Mutate(random, spec));
            GeneratorDriver driver = CSharpGeneratorDriver.Create(new ModelGenerator().AsSourceGenerator())
                .AddAdditionalTexts([new SpecGenerator.YamlFile("/fuzz/spec.yaml", yaml)]);
            var run = driver.RunGenerators(compilation).GetRunResult();
            var result = Assert.Single(run.Results);
            if (result.Exception is { } e) throw new InvalidOperationException($"the generator failed on:\n{yaml}", e);
            if (!result.Diagnostics.IsEmpty)
            {
                Assert.All(result.Diagnostics, d => Assert.StartsWith("AF", d.Id));
                diagnosed++;
            }
        }, _ => false);
        output.WriteLine($"model spec: {diagnosed} mutated specs diagnosed");
    }

    /// <summary>Random command lines (options, junk, numbers, missing files): exit 0 (help, version) or 2, one line.</summary>
    [Fact]
    public void CommandLines()
    {
        string[] words = ["run", "convert", "calibrate", "pack", "bench", "info", "-p", "-f", "-n", "-t", "-s", "--temp", "--top-k", "--top-p",
                          "--min-p", "--mode", "dense", "flash", "naive", "--dram-budget", "50%", "0", "-1", "1e40", "nan", "--window",
                          "--io-threads", "--json", "--dump-logits", "--measure-recall", "--weights", "--hf", "--tokenizer", "-o", "--force",
                          "--text", "--tokens", "--recall", "--binary", "--tensors", "--modes", "--emit-spec", "--name", "--dtype", "q3",
                          "=", "--x=", "--json=1", "-", "--", "", "é", "\u001b[2J", "/nonexistent/file", "/dev/null", "9999999999999"];
        string[] commands = ["run", "convert", "calibrate", "pack", "bench", "info"];
        var random = new Random(11);
        var clock = Stopwatch.StartNew();
        int iterations = 0;
        while (Continue(clock, iterations, 20000))
        {
            iterations++;
            var args = new List<string> { commands[random.Next(commands.Length)] };
            for (int k = random.Next(8); k > 0; k--) args.Add(words[random.Next(words.Length)]);
            // Never a model that loads, so that nothing slow or writing runs: every command needs one.
            args.AddRange(["--model", "/nonexistent/model.afm"]);
            var r = InProcess.Run("stories260K-relu", [.. args]);
            Assert.True(r.ExitCode is 0 or 2, $"'{string.Join(' ', args)}' exited {r.ExitCode}: {r.Stderr}");
            if (r.ExitCode == 2) Assert.Single(r.StderrLines);
        }
        output.WriteLine($"command lines: {iterations} iterations in {clock.Elapsed.TotalSeconds:F1} s");
    }

    // What the campaigns above found, kept as plain regression tests.

    /// <summary>JSON whose strings are not valid Unicode (bytes that are not UTF-8, an escaped lone surrogate) is bad
    /// input, not an InvalidOperationException from System.Text.Json's lazy string decoding.</summary>
    [Theory]
    [InlineData(new byte[] { 0xFF, 0xFE })]
    [InlineData(new byte[] { (byte)'\\', (byte)'u', (byte)'d', (byte)'8', (byte)'0', (byte)'0' })]
    public void JsonStringsThatAreNotUnicodeAreBadInput(byte[] badName)
    {
        byte[] header = [.. "{\""u8, .. badName, .. "\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}"u8];
        string path = Path.Combine(Published.TempDirectory(), "bad-name.safetensors");
        File.WriteAllBytes(path, [.. BitConverter.GetBytes((ulong)header.Length), .. header, 0, 0, 0, 0]);
        Assert.Contains("not valid JSON", Assert.Throws<BadInputException>(() => SafeTensorsCheckpoint.Open(path)).Message);

        byte[] vocab = [.. "{\""u8, .. badName, .. "\": 0}"u8];
        Assert.Contains("not valid Unicode", Assert.Throws<InvalidDataException>(() => Gpt2BpeTokenizer.FromVocabAndMerges(vocab, "#version: 0.2\n"u8)).Message);
    }

    [SkippableFact]
    public void ACheckpointWhoseVocabularyIsTheSmallestIntegerIsRefused()
    {
        ModelSource.RequireShared();
        byte[] file = File.ReadAllBytes(ModelSource.Of("stories260K").Weights);
        BinaryPrimitives.WriteInt32LittleEndian(file.AsSpan(20), int.MinValue); // vocab: negative means a separate classifier
        string path = Path.Combine(Published.TempDirectory(), "min-vocab.bin");
        File.WriteAllBytes(path, file);
        Assert.Contains("implausible header", Assert.Throws<BadInputException>(() => Llama2cCheckpoint.Open(path)).Message);
    }

    [Fact]
    public void AnEmptyPathIsRefusedForEveryFileOption() =>
        InProcess.Run("stories260K-relu", "calibrate", "-o", "", "--recall", "0.9", "--model", "/nonexistent/model.afm")
            .AssertBadInput("option '-o' needs a FILE, not an empty string");
}
