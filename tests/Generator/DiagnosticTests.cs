using Microsoft.CodeAnalysis;

namespace AotFlash.Tests.Generator;

/// <summary>One test per diagnostic: its id, and the YAML file, line and column it points at.</summary>
public sealed class DiagnosticTests
{
    private const string Valid = """
        name: tiny
        family: llama
        dim: 64
        hidden_dim: 172
        layers: 2
        heads: 8
        kv_heads: 4
        vocab: 512
        context: 128
        activation: relu
        tokenizer: { kind: llama2c, bos: 1, eos: 2, stop: [1] }
        weights: { dtype: f32 }
        flash: { window: 4, predictor_rank: 32, io_threads: 8, dram_budget: 50% }
        """;

    /// <summary>Replaces the line that starts with <paramref name="key"/> (or appends when null).</summary>
    private static string With(string? key, string? line)
    {
        var lines = Valid.Split('\n').ToList();
        int i = key is null ? -1 : lines.FindIndex(l => l.StartsWith(key + ":", StringComparison.Ordinal));
        if (i >= 0 && line is null) lines.RemoveAt(i);
        else if (i >= 0) lines[i] = line!;
        else lines.Add(line!);
        return string.Join('\n', lines);
    }

    private static Diagnostic Single(string yaml, string id)
    {
        var result = SpecGenerator.Run(("/specs/tiny.yaml", yaml));
        var d = Assert.Single(result.GeneratorDiagnostics);
        Assert.True(d.Id == id, d.ToString());
        Assert.Equal(DiagnosticSeverity.Error, d.Severity);
        Assert.Equal("/specs/tiny.yaml", d.Location.GetLineSpan().Path);
        Assert.DoesNotContain(result.Sources.Keys, k => k.StartsWith("Tiny", StringComparison.Ordinal));
        return d;
    }

    /// <summary>1-based line and column, as an editor shows them.</summary>
    private static (int Line, int Column) At(Diagnostic d)
    {
        var p = d.Location.GetLineSpan().StartLinePosition;
        return (p.Line + 1, p.Character + 1);
    }

    [Fact]
    public void ValidSpecHasNoDiagnostics() => Assert.Empty(SpecGenerator.Run(("/specs/tiny.yaml", Valid)).GeneratorDiagnostics);

    [Fact]
    public void AF0001_MalformedYaml()
    {
        var d = Single(With("dim", "dim: 64: 3"), "AF0001");
        Assert.Equal(3, At(d).Line);
        Assert.Equal("AF0001", Single(With("dim", "dim: [64"), "AF0001").Id);
        Assert.Equal("AF0001", Single("", "AF0001").Id);
        Assert.Contains("Duplicate key dim", Single(With(null, "dim: 32"), "AF0001").GetMessage());
    }

    [Fact]
    public void AF0002_UnknownKey()
    {
        var d = Single(With(null, "dimension: 64"), "AF0002");
        Assert.Equal((14, 1), At(d));
        Assert.Contains("'dimension'", d.GetMessage());
        var nested = Single(With("flash", "flash: { window: 4, windw: 2 }"), "AF0002");
        Assert.Equal((13, 21), At(nested));
    }

    [Fact]
    public void AF0003_MissingKey() => Assert.Contains("'vocab'", Single(With("vocab", null), "AF0003").GetMessage());

    [Fact]
    public void AF0004_WrongType()
    {
        var d = Single(With("layers", "layers: two"), "AF0004");
        Assert.Equal((5, 9), At(d));
        Assert.Contains("must be an integer", d.GetMessage());
        Assert.Equal("AF0004", Single(With("dim", "dim: \"64\""), "AF0004").Id);
        Assert.Equal("AF0004", Single(With("tokenizer", "tokenizer: llama2c"), "AF0004").Id);
        Assert.Equal("AF0004", Single(With("flash", "flash: { dram_budget: lots }"), "AF0004").Id);
    }

    [Fact]
    public void AF0005_NonPositiveSize()
    {
        var d = Single(With("hidden_dim", "hidden_dim: 0"), "AF0005");
        Assert.Equal((4, 13), At(d));
        Assert.Equal("AF0005", Single(With("context", "context: -5"), "AF0005").Id);
        // A control character (here NUL, which made YamlDotNet throw an ArgumentException) is named where it stands.
        var control = Single(With("hidden_dim", "hidden_dim: \u000072"), "AF0001");
        Assert.Equal((4, 13), At(control));
        Assert.Contains("control character U+0000 is not allowed in YAML", control.GetMessage());
    }

    [Fact]
    public void AF0006_DimNotDivisibleByHeads() => Assert.Equal((6, 8), At(Single(With("heads", "heads: 12"), "AF0006")));

    [Fact]
    public void AF0007_HeadsNotDivisibleByKvHeads() => Assert.Equal((7, 11), At(Single(With("kv_heads", "kv_heads: 3"), "AF0007")));

    [Theory]
    [InlineData("family", "family: gpt", 2, 9)]
    [InlineData("activation", "activation: tanh", 10, 13)]
    [InlineData("weights", "weights: { dtype: q3 }", 12, 19)]
    [InlineData("weights", "weights: { dtype: f32, resident: q3 }", 12, 34)]
    [InlineData(null, "kv_cache: q8", 14, 11)]
    [InlineData("tokenizer", "tokenizer: { kind: llama2c, bos: 1, eos: 2, stop: [1], chat_template: alpaca }", 11, 71)]
    public void AF0008_Unsupported(string? key, string line, int row, int column) =>
        Assert.Equal((row, column), At(Single(With(key, line), "AF0008")));

    [Fact]
    public void AF0009_InvalidValue()
    {
        Assert.Contains("outside the vocabulary", Single(With("tokenizer", "tokenizer: { kind: llama2c, bos: 1, eos: 2, stop: [600] }"), "AF0009").GetMessage());
        Assert.Contains("even head size", Single(With("heads", "heads: 64"), "AF0009").GetMessage()); // head size 1
        Assert.Contains("kv_heads must equal heads", Single(With("family", "family: opt"), "AF0009").GetMessage()); // Valid has kv_heads 4 of 8
    }

    [Fact]
    public void AChatTemplateReachesTheModelsTokenizerConfig()
    {
        var result = SpecGenerator.Run(("/specs/tiny.yaml", With("tokenizer", "tokenizer: { kind: llama2c, bos: 1, eos: 2, stop: [1], chat_template: chatml }")));
        Assert.Empty(result.GeneratorDiagnostics);
        Assert.Empty(result.CompileErrors);
        Assert.Contains("ChatTemplate: global::AotFlash.Tokenizers.ChatTemplateKind.ChatMl", result.Sources.Values.Single(s => s.Contains("TokenizerConfig(")));
    }

    // The family decides norm, position encoding and FFN; a spec that writes one is told so, whatever the value.
    [Theory]
    [InlineData("norm: rmsnorm")]
    [InlineData("position: learned")]
    [InlineData("ffn: gated")]
    public void AF0012_ImpliedByFamily(string line)
    {
        var d = Single(With(null, line), "AF0012");
        Assert.Equal((14, 1), At(d));
        Assert.Contains($"'{line.Split(':')[0]}' is implied by the family (llama: rmsnorm, rope, gated FFN", d.GetMessage());
    }

    [Fact]
    public void AF0010_DuplicateModelName()
    {
        var result = SpecGenerator.Run(("/specs/a.yaml", Valid), ("/specs/b.yaml", Valid));
        var d = Assert.Single(result.GeneratorDiagnostics);
        Assert.Equal("AF0010", d.Id);
        Assert.Equal("/specs/b.yaml", d.Location.GetLineSpan().Path);
        Assert.Empty(result.CompileErrors);
    }

    [Fact]
    public void AF0011_DimNotAMultipleOfTheQuantisationGroup()
    {
        // dim 48: heads 8 give head size 6 (even), but 48 is not a multiple of 32.
        var d = Single(With("dim", "dim: 48").Replace("weights: { dtype: f32 }", "weights: { dtype: q4 }"), "AF0011");
        Assert.Equal((12, 19), At(d));
        Assert.Contains("dim (48) must be a multiple of 32", d.GetMessage());
        Assert.Equal("AF0011", Single(With("dim", "dim: 80").Replace("dtype: f32", "dtype: q8"), "AF0011").Id);
        Assert.Empty(SpecGenerator.Run(("/specs/tiny.yaml", With("dim", "dim: 48"))).GeneratorDiagnostics);
        Assert.Empty(SpecGenerator.Run(("/specs/tiny.yaml", With("dim", "dim: 96").Replace("dtype: f32", "dtype: q8"))).GeneratorDiagnostics);
        // The resident matrices are quantised by the same rows.
        Assert.Equal((12, 34), At(Single(With("dim", "dim: 48").Replace("dtype: f32", "dtype: f32, resident: q8"), "AF0011")));
    }

    // A spec whose resident type is its FFN's, written or not, keeps the hash (and so the model files) it had before
    // the two could differ; another resident type is another layout, and another hash.
    [Fact]
    public void TheResidentTypeEntersTheSpecHashOnlyWhereItDiffers()
    {
        string Hash(string weights)
        {
            var result = SpecGenerator.Run(("/specs/tiny.yaml", Valid.Replace("weights: { dtype: f32 }", weights)));
            Assert.Empty(result.GeneratorDiagnostics);
            Assert.Empty(result.CompileErrors);
            return System.Text.RegularExpressions.Regex.Match(string.Concat(result.Sources.Values), "SpecHash = \"([0-9a-f]+)\"").Groups[1].Value;
        }
        Assert.Equal(Hash("weights: { dtype: q8 }"), Hash("weights: { dtype: q8, resident: q8 }"));
        Assert.NotEqual(Hash("weights: { dtype: q8 }"), Hash("weights: { dtype: q8, resident: q4 }"));
        Assert.NotEqual(Hash("weights: { dtype: q8, resident: q4 }"), Hash("weights: { dtype: q4, resident: q8 }"));
    }

    // The KV cache's type reaches the model's definition and leaves the hash alone: any weights serve either cache.
    [Fact]
    public void TheKvCacheTypeReachesTheModelButNotTheSpecHash()
    {
        string Emitted(string spec)
        {
            var result = SpecGenerator.Run(("/specs/tiny.yaml", spec));
            Assert.Empty(result.GeneratorDiagnostics);
            Assert.Empty(result.CompileErrors);
            return string.Concat(result.Sources.Values);
        }
        string plain = Emitted(Valid), half = Emitted(With(null, "kv_cache: f16")), full = Emitted(With(null, "kv_cache: f32"));
        Assert.Contains("kvCache: global::AotFlash.Flash.WeightType.F16", half);
        Assert.DoesNotContain("kvCache:", plain);
        Assert.Equal(plain, full);
        string Hash(string code) => System.Text.RegularExpressions.Regex.Match(code, "SpecHash = \"([0-9a-f]+)\"").Groups[1].Value;
        Assert.Equal(Hash(plain), Hash(half));
    }
}
