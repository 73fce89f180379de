using System.Buffers.Binary;
using AotFlash.Tests.Support;

namespace AotFlash.Tests.Inference;

/// <summary>Logits that are not numbers end generation with an error; no sampler gets to pick a token from them.</summary>
public sealed class NonFiniteTests
{
    [SkippableFact]
    public void NonFiniteLogitsEndTheRunWithAnError()
    {
        ModelSource.RequireShared();
        const string model = "stories260K";
        var (weights, tokenizer) = ModelSource.Of(model);
        var s = InProcess.Model(model).Shape;
        // The final RMSNorm weights of the llama2.c v0 checkpoint set to 3e38, so x·w overflows to infinity. The file's
        // checksums are right: only the values are wrong.
        byte[] bytes = File.ReadAllBytes(weights);
        Assert.Equal(s.Dim, BinaryPrimitives.ReadInt32LittleEndian(bytes)); // v0: the header starts with dim
        long d = s.Dim, l = s.Layers, kv = s.KvDim, hd = s.HiddenDim, v = s.Vocab;
        long rmsFinal = 28 + 4 * (v * d + l * d + 2 * l * d * d + 2 * l * kv * d + l * d + 3 * l * hd * d);
        for (int i = 0; i < d; i++) BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan((int)(rmsFinal + 4 * i)), 3e38f);
        string dir = Published.TempDirectory();
        string checkpoint = Path.Combine(dir, "huge-final-norm.bin"), afm = Path.Combine(dir, "huge-final-norm.afm");
        File.WriteAllBytes(checkpoint, bytes);
        var convert = InProcess.Run(model, "convert", "--weights", checkpoint, "--tokenizer", tokenizer, "-o", afm);
        Assert.True(convert.ExitCode == 0, convert.Stderr);

        var run = InProcess.Run(model, "run", "--model", afm, "-p", "Once upon a time", "-n", "8", "--temp", "0", "--json");
        Assert.Equal(1, run.ExitCode);
        Assert.Equal("", run.Stdout);
        Assert.Equal("error: the model computed non-finite logits (NaN or infinity) at position 0; its weights may be damaged",
                     run.Stderr.Trim());
    }
}
