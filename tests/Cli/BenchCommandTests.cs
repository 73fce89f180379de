using System.Text.Json;
using AotFlash.Ffn;
using AotFlash.Tests.Sparsity;
using AotFlash.Tests.Support;
using Xunit.Abstractions;

namespace AotFlash.Tests.Cli;

/// <summary><c>bench</c> reports prompt processing and decoding apart (in-process, JIT, on stories260K-relu).</summary>
public sealed class BenchCommandTests(ITestOutputHelper output)
{
    private const string Model = "stories260K-relu";

    private JsonElement Bench(params string[] args)
    {
        var r = InProcess.Run(Model, ["bench", "--model", FlashModeTests.Calibrated(Model), "--no-probe", "-t", "1", "--json", .. args]);
        Assert.True(r.ExitCode == 0, r.Stderr);
        output.WriteLine(r.Stdout);
        using var doc = JsonDocument.Parse(r.Stdout);
        return doc.RootElement.Clone();
    }

    [Fact]
    public void HelpSaysWhatEachPhaseMeasures()
    {
        var r = InProcess.Run(Model, "bench", "--help");
        output.WriteLine(r.Stdout);
        Assert.Contains($"Prompt: the prompt's tokens, up to\nthe first generated token, run in blocks of up to {FfnBlocks.InMemory} tokens", r.Stdout);
        Assert.Contains("Decode: every forward pass after it", r.Stdout);
        Assert.Contains("a stop token is kept and generation goes on", r.Stdout);
        Assert.Contains("means over all forward passes", r.Stdout);
        Assert.Contains("--prompt-tokens N", r.Stdout);
    }

    [Fact]
    public void TheProbeMeasuresTheModelsOwnBundleSize()
    {
        var info = InProcess.Model(Model);
        // stories260K-relu's f32 bundle of 3 × 64 floats is one 4 KiB block once aligned: added, in order, once
        Assert.Equal(4096, AotFlash.Flash.ReadPlanner.AlignUp(info.Layout.BundleBytes));
        Assert.Equal([4096, 16384, 65536], AotFlash.Cli.BenchCommand.WithBundle(info, [65536, 16384]));
        Assert.Equal([4096, 65536], AotFlash.Cli.BenchCommand.WithBundle(info, [4096, 65536]));
    }

    [SkippableFact]
    public void JsonHasAPromptAndADecodeObjectPerMode()
    {
        ModelSource.RequireShared();
        string text = string.Join(" ", Enumerable.Repeat("Lily and Tom went to the park to play with a big red ball.", 4));
        var bench = Bench("--modes", "naive,flash,dense", "-n", "8", "-p", text, "--prompt-tokens", "12");
        var modes = bench.GetProperty("modes").EnumerateArray().ToDictionary(m => m.GetProperty("mode").GetString()!);
        Assert.Equal(["naive", "flash", "dense"], modes.Keys);
        long flashBytes = InProcess.Model(Model).Layout.FlashBytes;
        foreach (var (mode, m) in modes)
        {
            var prompt = m.GetProperty("prompt");
            var decode = m.GetProperty("decode");
            Assert.Equal(8, m.GetProperty("generated_tokens").GetInt32());
            Assert.Equal(12, prompt.GetProperty("tokens").GetInt32());
            Assert.Equal(7, decode.GetProperty("tokens").GetInt32());
            // ms_per_token is rounded to 3 decimals: 12 of them may overstate the prompt by 12 × 0.0005 ms, which on a dense
            // prompt of a fraction of a millisecond is more than 1%.
            Assert.True(prompt.GetProperty("ttft_ms").GetDouble() >= (prompt.GetProperty("ms_per_token").GetDouble() - 0.0005) * 12 * 0.99, mode);
            foreach (var (name, phase) in new[] { ("prompt", prompt), ("decode", decode) })
            {
                double ms = phase.GetProperty("ms_per_token").GetDouble();
                Assert.True(ms > 0, mode);
                double parts = phase.GetProperty("io_ms_per_token").GetDouble() + phase.GetProperty("mem_ms_per_token").GetDouble() +
                               phase.GetProperty("compute_ms_per_token").GetDouble();
                Assert.InRange(parts, ms - 0.002, ms + 0.002); // each rounded to 3 decimals
                double bytes = phase.GetProperty("bytes_read_per_token").GetDouble();
                switch (mode)
                {
                    // the whole FFN once per pass: the prompt's 12 tokens are one block
                    case "naive":
                        double expected = name == "prompt" ? flashBytes / 12.0 : flashBytes;
                        Assert.InRange(bytes, expected - 1, expected + 1);
                        break;
                    case "dense": Assert.Equal(0, bytes); break;
                    default: Assert.InRange(bytes, 1, flashBytes - 1); break;
                }
            }
            Assert.InRange(decode.GetProperty("ffn_density").GetDouble(), mode == "flash" ? 0.001 : 1, mode == "flash" ? 0.999 : 1);
            if (mode == "flash") Assert.InRange(decode.GetProperty("cache_hit_rate").GetDouble(), 0, 1);
            else Assert.Equal(JsonValueKind.Null, decode.GetProperty("cache_hit_rate").ValueKind);
            // The top-level numbers stay, as the mean over all the passes of both phases.
            double all = m.GetProperty("ms_per_token").GetDouble();
            Assert.InRange(all, Math.Min(prompt.GetProperty("ms_per_token").GetDouble(), decode.GetProperty("ms_per_token").GetDouble()) - 0.001,
                           Math.Max(prompt.GetProperty("ms_per_token").GetDouble(), decode.GetProperty("ms_per_token").GetDouble()) + 0.001);
        }
    }

    [SkippableFact]
    public void OneTokenHasNoDecodeNumbers()
    {
        ModelSource.RequireShared();
        var m = Bench("--modes", "dense", "-n", "1").GetProperty("modes")[0];
        Assert.Equal(JsonValueKind.Null, m.GetProperty("decode").ValueKind);
        Assert.Equal(5, m.GetProperty("prompt").GetProperty("tokens").GetInt32()); // BOS + "Once upon a time"

        var r = InProcess.Run(Model, "bench", "--model", FlashModeTests.Calibrated(Model), "--no-probe", "--modes", "dense", "-n", "1");
        Assert.True(r.ExitCode == 0, r.Stderr);
        output.WriteLine(r.Stdout);
        string[] lines = r.Stdout.Split('\n');
        int decode = Array.FindIndex(lines, l => l.StartsWith("decode:", StringComparison.Ordinal));
        Assert.True(decode >= 0, "no decode table");
        Assert.Matches(@"^dense\s+0\s+-\s+-\s+-", lines[decode + 2]);
    }

    [SkippableFact]
    public void PromptTokensCutsAPromptFile()
    {
        ModelSource.RequireShared();
        string file = Path.Combine(Published.TempDirectory(), "prompt.txt");
        File.WriteAllText(file, string.Join(" ", Enumerable.Repeat("The little dog was very happy because the sun was out.", 10)));
        var m = Bench("--modes", "dense", "-n", "4", "-f", file, "--prompt-tokens", "100").GetProperty("modes")[0];
        Assert.Equal(100, m.GetProperty("prompt").GetProperty("tokens").GetInt32());
        Assert.Equal(3, m.GetProperty("decode").GetProperty("tokens").GetInt32());
    }

    [SkippableFact]
    public void TablesShowDecodeAndPromptApart()
    {
        ModelSource.RequireShared();
        var r = InProcess.Run(Model, "bench", "--model", FlashModeTests.Calibrated(Model), "--no-probe", "-t", "1", "--modes", "naive,flash,dense", "-n", "8");
        Assert.True(r.ExitCode == 0, r.Stderr);
        output.WriteLine(r.Stdout);
        Assert.Matches(@"\ndecode: [^\n]+\nmode +tokens +ms/token[^\n]+vs_naive\nnaive +7 [^\n]+ 1\.00x\nflash +7 [^\n]+x\ndense +7 [^\n]+x\n", r.Stdout);
        Assert.Matches(@"\nprompt: [^\n]+\nmode +tokens +TTFT_ms +ms/token[^\n]+vs_naive\nnaive +5 [^\n]+ 1\.00x\nflash +5 [^\n]+x\ndense +5 [^\n]+x\n", r.Stdout);
    }
}
