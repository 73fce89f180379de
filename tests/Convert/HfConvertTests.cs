using AotFlash.Tokenizers;
using System.Text;
using AotFlash.Convert;
using AotFlash.Tests.Support;
using Xunit.Abstractions;

namespace AotFlash.Tests.Convert;

/// <summary><c>convert --hf</c>: Hugging Face Llama folders against the llama2.c checkpoints they were made from, and
/// the safetensors reader's checks on damaged or unsupported input.</summary>
public sealed class HfConvertTests(ITestOutputHelper output)
{
    private static string Folder(string name) => Path.Combine(TestPaths.Shared!, "models", name);

    // The f32 folders hold the llama2.c weights with q/k rows permuted for rotate-half RoPE; undoing that must give back
    // every bit, so the model file equals the one converted from the llama2.c checkpoint.
    [SkippableTheory]
    [InlineData("stories260K-hf", "stories260K")]
    [InlineData("stories260K-relu-hf", "stories260K-relu")]
    public void F32FolderGivesTheSameModelFileAsTheLlama2cCheckpoint(string folder, string model)
    {
        ModelSource.RequireShared();
        string afm = Path.Combine(Published.TempDirectory(), folder + ".afm");
        var r = InProcess.Run(model, "convert", "--hf", Folder(folder), "--tokenizer", ModelSource.Of(model).Tokenizer, "-o", afm);
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Equal(File.ReadAllBytes(InProcess.ModelFile(model, model)), File.ReadAllBytes(afm));
    }

    // float16 weights in two shards: converted to the f32 spec, they stay within the folder README's measured error.
    [SkippableTheory]
    [InlineData("stories260K-hf-f16", "stories260K")]
    [InlineData("stories260K-relu-hf-f16", "stories260K-relu")]
    public void ShardedF16FolderFollowsTheReference(string folder, string model)
    {
        ModelSource.RequireShared();
        string afm = Path.Combine(Published.TempDirectory(), folder + ".afm");
        var r = InProcess.Run(model, "convert", "--hf", Folder(folder), "--tokenizer", ModelSource.Of(model).Tokenizer, "-o", afm);
        Assert.True(r.ExitCode == 0, r.Stderr);
        int agreeing = 0, total = 0;
        float worst = 0;
        foreach (var reference in GreedyReference.Load(model))
        {
            var run = InProcess.Run(model, "run", "--model", afm, "-p", reference.Prompt, "--temp", "0", "--json", "--dump-logits", "4",
                "-n", reference.MaxNew.ToString(), "--mode", "dense");
            Assert.True(run.ExitCode == 0, run.Stderr);
            var o = RunOutput.Parse(run.Stdout);
            Assert.Equal(reference.PromptIds, o.PromptIds);
            // The shared README measured 0.017 (silu) and 0.038 (relu) for a float32 forward over these weights.
            worst = Math.Max(worst, o.AssertLogits(reference, tolerance: 0.05f));
            agreeing += o.GeneratedIds.Zip(reference.Generated).TakeWhile(p => p.First == p.Second).Count();
            total += reference.Generated.Length;
        }
        output.WriteLine($"{folder}: max logit error {worst:E2} over positions 0..3; greedy tokens before first divergence {agreeing}/{total}");
    }

    // The emitted spec compiles cleanly and to the same math and layout as the shipped one: the generator gives it the
    // same hash.
    [SkippableTheory]
    [InlineData("opt-tiny-hf", "opt-tiny", "OptTinyModel.g.cs")]
    [InlineData("stories260K-hf", "stories260K", "Stories260KModel.g.cs")]
    public void EmittedSpecDescribesTheFolder(string folder, string model, string generated)
    {
        ModelSource.RequireShared();
        string spec = Path.Combine(Published.TempDirectory(), $"emitted-{folder}.yaml");
        var r = InProcess.Run(model, "convert", "--hf", Folder(folder), "--emit-spec", spec, "--name", model);
        Assert.True(r.ExitCode == 0, r.Stderr);
        var result = Generator.SpecGenerator.Run((spec, File.ReadAllText(spec)));
        Assert.Empty(result.GeneratorDiagnostics);
        Assert.Empty(result.CompileErrors);
        Assert.Contains($"public const string SpecHash = \"{InProcess.Model(model).SpecHash}\";", result.Sources[generated]);
        InProcess.Run(model, "convert", "--hf", Folder(folder), "--emit-spec", spec).AssertBadInput("already exists");
    }

    // tokenizer_config.json's chat template names the spec's chat_template when it is one of the built-in formats.
    [SkippableTheory]
    [InlineData("\"{% if messages[0]['role'] == 'system' %}{% set system_message = '<<SYS>>\\\\n' + messages[0]['content'] + '\\\\n<</SYS>>\\\\n\\\\n' %}{% endif %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}\"", "llama2")]
    [InlineData("[{\"name\": \"tool_use\", \"template\": \"x\"}, {\"name\": \"default\", \"template\": \"{% for m in messages %}<|im_start|>{{ m.role }}\\\\n{{ m.content }}<|im_end|>{% endfor %}\"}]", "chatml")]
    [InlineData("\"{% for m in messages %}<|user|>{{ m.content }}</s>{% endfor %}\"", null)]
    public void EmittedSpecNamesTheFoldersChatTemplate(string chatTemplateJson, string? expected)
    {
        ModelSource.RequireShared();
        string dir = Published.TempDirectory(), folder = Path.Combine(dir, "hf");
        Directory.CreateDirectory(folder);
        File.Copy(Path.Combine(Folder("stories260K-hf"), "config.json"), Path.Combine(folder, "config.json"));
        File.WriteAllText(Path.Combine(folder, "tokenizer_config.json"), $"{{\"bos_token\": \"<s>\", \"chat_template\": {chatTemplateJson}}}");
        string spec = Path.Combine(dir, "chat.yaml");
        var r = InProcess.Run("stories260K", "convert", "--hf", folder, "--emit-spec", spec, "--name", "chat");
        Assert.True(r.ExitCode == 0, r.Stderr);
        string yaml = File.ReadAllText(spec);
        if (expected is null)
        {
            Assert.DoesNotContain("chat_template:", yaml.Replace("# chat_template", ""));
            Assert.Contains("none of the built-in ones", yaml);
            return;
        }
        Assert.Contains($", chat_template: {expected} }}", yaml);
        var result = Generator.SpecGenerator.Run((spec, yaml));
        Assert.Empty(result.GeneratorDiagnostics);
        Assert.Contains($"ChatTemplateKind.{ChatTemplate.NameOf(ChatTemplate.Parse(expected)) switch { "llama2" => "Llama2", _ => "ChatMl" }}",
            result.Sources.Values.Single(v => v.Contains("TokenizerConfig(")));

        File.WriteAllText(Path.Combine(folder, "tokenizer_config.json"), "{\"chat_template\": ");
        InProcess.Run("stories260K", "convert", "--hf", folder, "--emit-spec", spec, "--force").AssertBadInput("tokenizer_config.json: cannot read its chat template");
    }

    [SkippableFact]
    public void MismatchedSpecIsRefusedWithEveryDifference()
    {
        ModelSource.RequireShared();
        string dir = Published.TempDirectory();
        InProcess.Run("stories260K-relu", "convert", "--hf", Folder("stories260K-hf"), "-k", ModelSource.Of("stories260K").Tokenizer,
            "-o", Path.Combine(dir, "mismatch.afm")).AssertBadInput("activation silu (spec: relu)");
        InProcess.Run("stories260K", "convert", "--hf", Folder("opt-tiny-hf"), "-k", ModelSource.Of("stories260K").Tokenizer,
            "-o", Path.Combine(dir, "mismatch.afm")).AssertBadInput("family opt (spec: llama)");
        Assert.False(File.Exists(Path.Combine(dir, "mismatch.afm")));
    }

    [SkippableFact]
    public void TruncatedShardIsRefused()
    {
        ModelSource.RequireShared();
        string copy = CopyFolder("stories260K-hf-f16");
        string shard = Path.Combine(copy, "model-00002-of-00002.safetensors");
        using (var f = File.OpenWrite(shard)) f.SetLength(f.Length - 100);
        string afm = Path.Combine(copy, "out.afm");
        InProcess.Run("stories260K", "convert", "--hf", copy, "-k", ModelSource.Of("stories260K").Tokenizer, "-o", afm)
            .AssertBadInput("(truncated file?)");
        Assert.False(File.Exists(afm));

        File.Delete(shard);
        InProcess.Run("stories260K", "convert", "--hf", copy, "-k", ModelSource.Of("stories260K").Tokenizer, "-o", afm)
            .AssertBadInput("shard model-00002-of-00002.safetensors is missing");
    }

    [Fact]
    public void UnsupportedArchitectureIsNamed()
    {
        string dir = Directory.CreateTempSubdirectory("aotflash-hf").FullName;
        try
        {
            File.WriteAllText(Path.Combine(dir, "config.json"), """{"architectures": ["GPT2LMHeadModel"], "n_embd": 64}""");
            var e = Assert.Throws<BadInputException>(() => HfCheckpoint.ReadConfig(Path.Combine(dir, "config.json")));
            Assert.Contains("architecture GPT2LMHeadModel is not supported", e.Message);
            File.WriteAllText(Path.Combine(dir, "config.json"), """{"architectures": ["LlamaForCausalLM"], "hidden_size": 64, "num_attention_heads": 8, "rope_scaling": {"type": "linear", "factor": 2.0}}""");
            e = Assert.Throws<BadInputException>(() => HfCheckpoint.ReadConfig(Path.Combine(dir, "config.json")));
            Assert.Contains("\"rope_scaling\": scaled RoPE is not supported", e.Message);
            File.WriteAllText(Path.Combine(dir, "config.json"), "{ not json");
            e = Assert.Throws<BadInputException>(() => HfCheckpoint.ReadConfig(Path.Combine(dir, "config.json")));
            Assert.Contains("not valid JSON", e.Message);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    public static TheoryData<string, string> DamagedHeaders => new()
    {
        { """{"w": {"dtype": "I64", "shape": [2], "data_offsets": [0, 16]}}""", "dtype I64 is not supported" },
        { """{"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}""", "holds 8 bytes, but F32 [3] needs 12" },
        { """{"w": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]}}""", "lie outside the file's 8 data bytes" },
        { """{"w": {"dtype": "F32", "shape": [2]}}""", "needs dtype, shape and data_offsets" },
        { """{"w": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}}""", "shape holds a non-size" },
        { """[1, 2]""", "header is not a JSON object" },
        { """{"w": """, "header is not valid JSON" },
    };

    [Theory]
    [MemberData(nameof(DamagedHeaders))]
    public void DamagedHeaderIsRefused(string header, string expected)
    {
        string path = Path.Combine(Published.TempDirectory(), $"damaged-{Guid.NewGuid():N}.safetensors");
        WriteSafeTensors(path, header, new byte[8]);
        var e = Assert.Throws<BadInputException>(() => SafeTensorsCheckpoint.Open(path).Dispose());
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void ImplausibleHeaderLengthIsRefused()
    {
        string path = Path.Combine(Published.TempDirectory(), $"huge-{Guid.NewGuid():N}.safetensors");
        File.WriteAllBytes(path, [.. BitConverter.GetBytes(1L << 40), .. "{}"u8]);
        var e = Assert.Throws<BadInputException>(() => SafeTensorsCheckpoint.Open(path).Dispose());
        Assert.Contains("not a safetensors file or truncated", e.Message);
    }

    [Fact]
    public void HalfPrecisionTypesWidenExactly()
    {
        // 1.5 and -2 as F16 (0x3E00, 0xC000) and as BF16 (0x3FC0, 0xC000); 0.1 as BF16 is 0x3DCC.
        string path = Path.Combine(Published.TempDirectory(), $"types-{Guid.NewGuid():N}.safetensors");
        WriteSafeTensors(path, """
            {"__metadata__": {"format": "pt"},
             "h": {"dtype": "F16", "shape": [2], "data_offsets": [0, 4]},
             "b": {"dtype": "BF16", "shape": [1, 3], "data_offsets": [4, 10]},
             "f": {"dtype": "F32", "shape": [1], "data_offsets": [10, 14]}}
            """, [0x00, 0x3E, 0x00, 0xC0, 0xC0, 0x3F, 0x00, 0xC0, 0xCC, 0x3D, .. BitConverter.GetBytes(0.25f)]);
        using var st = SafeTensorsCheckpoint.Open(path);
        Assert.Equal([1.5f, -2f], st.ReadF32("h", 1, 2).ToArray());
        Assert.Equal([1.5f, -2f, BitConverter.Int32BitsToSingle(0x3DCC0000)], st.ReadF32("b", 1, 3).ToArray());
        Assert.Equal([0.25f], st.ReadF32("f", 1, 1).ToArray());
        Assert.Contains("has shape [2], the model needs [2, 1]", Assert.Throws<BadInputException>(() => st.ReadF32("h", 2, 1).ToArray()).Message);
    }

    private static void WriteSafeTensors(string path, string header, byte[] data)
    {
        byte[] json = Encoding.UTF8.GetBytes(header);
        File.WriteAllBytes(path, [.. BitConverter.GetBytes((long)json.Length), .. json, .. data]);
    }

    private static string CopyFolder(string name)
    {
        string copy = Path.Combine(Published.TempDirectory(), name + "-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(copy);
        foreach (var f in Directory.GetFiles(Folder(name))) File.Copy(f, Path.Combine(copy, Path.GetFileName(f)));
        return copy;
    }
}
