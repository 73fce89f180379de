using AotFlash.Sampling;

namespace AotFlash.Tests.Sampling;

public sealed class SamplerTests
{
    static float[] RandomLogits(int n, int seed, float scale = 3f)
    {
        var rng = new Random(seed);
        var l = new float[n];
        for (int i = 0; i < n; i++) l[i] = (float)(rng.NextDouble() * 2 - 1) * scale;
        return l;
    }

    static int Draw(Sampler s, float[] logits) => s.Sample((float[])logits.Clone());

    [Fact]
    public void Greedy_IsArgmax_FirstIndexOnTies()
    {
        var s = new Sampler(6, SamplerOptions.Greedy);
        Assert.True(s.IsGreedy);
        Assert.Equal(2, s.Sample(new float[] { 0f, 1f, 5f, 3f, 5f, 5f }));
        Assert.Equal(0, s.Sample(new float[] { 7f, 7f, 7f, 7f, 7f, 7f }));
        Assert.Equal(5, s.Sample(new float[] { -9f, -8f, -7f, -6f, -5f, -4f }));
        Assert.Equal(3, s.Sample(new float[] { float.NegativeInfinity, -1e30f, -1e30f, 0f, float.NegativeInfinity, -0f }));

        float[] big = RandomLogits(32000, 1);
        int expected = Array.IndexOf(big, big.Max());
        Assert.Equal(expected, new Sampler(32000, new SamplerOptions { Temperature = 0f }).Sample(big));
    }

    [Fact]
    public void SameSeed_SameSequence_DifferentSeed_DifferentSequence()
    {
        float[] logits = RandomLogits(512, 2, scale: 1.5f);
        var o = new SamplerOptions { Temperature = 0.9f, TopP = 0.95f, TopK = 100, MinP = 0.01f, Seed = 12345 };
        var a = new Sampler(512, o);
        var b = new Sampler(512, o);
        var c = new Sampler(512, new SamplerOptions { Temperature = 0.9f, TopP = 0.95f, TopK = 100, MinP = 0.01f, Seed = 54321 });
        int[] sa = Enumerable.Range(0, 200).Select(_ => Draw(a, logits)).ToArray();
        int[] sb = Enumerable.Range(0, 200).Select(_ => Draw(b, logits)).ToArray();
        int[] sc = Enumerable.Range(0, 200).Select(_ => Draw(c, logits)).ToArray();
        Assert.Equal(sa, sb);
        Assert.NotEqual(sa, sc);
        Assert.True(sa.Distinct().Count() > 10, "sampling should not collapse to a few tokens here");
    }

    [Fact]
    public void Rng_IsLlama2cXorshift()
    {
        // llama2.c: state ^= state >> 12; state ^= state << 25; state ^= state >> 27; (state * 0x2545F4914F6CDD1D) >> 32.
        ulong state = 42;
        var s = new Sampler(4, new SamplerOptions { Seed = 42 });
        for (int i = 0; i < 100; i++)
        {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            uint expected = (uint)((state * 0x2545F4914F6CDD1DUL) >> 32);
            Assert.Equal(expected, s.NextU32());
        }
        float f = s.NextF32();
        Assert.InRange(f, 0f, 0.99999994f);
        // Seed 0 would make xorshift stick at 0; it is replaced by a fixed constant.
        var z = new Sampler(4, new SamplerOptions { Seed = 0 });
        Assert.NotEqual(0u, z.NextU32() | z.NextU32());
    }

    [Theory]
    [InlineData(0.1f)]
    [InlineData(1f)]
    [InlineData(5f)]
    [InlineData(100f)]
    public void TopK1_IsArgmax_AtAnyTemperature(float temperature)
    {
        float[] logits = RandomLogits(1000, 3);
        int argmax = Sampler.Argmax(logits);
        var s = new Sampler(1000, new SamplerOptions { Temperature = temperature, TopK = 1, Seed = 7 });
        for (int i = 0; i < 50; i++) Assert.Equal(argmax, Draw(s, logits));
    }

    [Theory]
    [InlineData(0.5f)]
    [InlineData(2f)]
    public void TinyTopP_IsArgmax(float temperature)
    {
        float[] logits = RandomLogits(1000, 4);
        int argmax = Sampler.Argmax(logits);
        var s = new Sampler(1000, new SamplerOptions { Temperature = temperature, TopP = 1e-6f, Seed = 8 });
        for (int i = 0; i < 100; i++) Assert.Equal(argmax, Draw(s, logits));
        // With top-k too.
        var t = new Sampler(1000, new SamplerOptions { Temperature = temperature, TopP = 1e-6f, TopK = 50, Seed = 8 });
        for (int i = 0; i < 100; i++) Assert.Equal(argmax, Draw(t, logits));
    }

    [Fact]
    public void MinPNearOne_IsArgmax()
    {
        float[] logits = RandomLogits(1000, 5, scale: 1f);
        int argmax = Sampler.Argmax(logits);
        var s = new Sampler(1000, new SamplerOptions { Temperature = 1.5f, MinP = 0.999999f, Seed = 9 });
        for (int i = 0; i < 100; i++) Assert.Equal(argmax, Draw(s, logits));
    }

    static double[] Softmax(float[] logits, float temperature)
    {
        double max = logits.Max();
        double[] e = logits.Select(l => Math.Exp((l - max) / temperature)).ToArray();
        double sum = e.Sum();
        return e.Select(x => x / sum).ToArray();
    }

    static double[] Frequencies(Sampler s, float[] logits, int draws)
    {
        var counts = new double[logits.Length];
        for (int i = 0; i < draws; i++) counts[Draw(s, logits)]++;
        return counts.Select(c => c / draws).ToArray();
    }

    [Fact]
    public void Frequencies_MatchSoftmax_AtTemperature1()
    {
        float[] logits = { 1f, 2f, 0.5f, -1f, 3f, 2f, 0f, -3f };
        double[] p = Softmax(logits, 1f);
        double[] f = Frequencies(new Sampler(logits.Length, new SamplerOptions { Temperature = 1f, Seed = 2024 }), logits, 20000);
        for (int i = 0; i < p.Length; i++) Assert.True(Math.Abs(p[i] - f[i]) < 0.015, $"token {i}: p={p[i]:F4} freq={f[i]:F4}");
    }

    [Fact]
    public void Frequencies_MatchTruncatedSoftmax_WithFilters()
    {
        float[] logits = { 1f, 2f, 0.5f, -1f, 3f, 2f, 0f, -3f };
        double[] p = Softmax(logits, 1f);
        // Sorted: 4 (.494), 1 and 5 (.182 each), 0 (.067), 2 (.041), 6, 3, 7.
        // top-k 3 keeps {4, 1, 5}; top-p 0.6 then keeps {4, 1} (0.576 < 0.6 <= 0.788 of the kept mass); ties go to the lower index.
        double[] f = Frequencies(new Sampler(8, new SamplerOptions { TopK = 3, Seed = 1 }), logits, 20000);
        double z = p[4] + p[1] + p[5];
        Assert.InRange(f[4], p[4] / z - 0.015, p[4] / z + 0.015);
        Assert.InRange(f[1], p[1] / z - 0.015, p[1] / z + 0.015);
        Assert.InRange(f[5], p[5] / z - 0.015, p[5] / z + 0.015);

        f = Frequencies(new Sampler(8, new SamplerOptions { TopK = 3, TopP = 0.6f, Seed = 1 }), logits, 20000);
        z = p[4] + p[1];
        Assert.InRange(f[4], p[4] / z - 0.015, p[4] / z + 0.015);
        Assert.InRange(f[1], p[1] / z - 0.015, p[1] / z + 0.015);
        Assert.Equal(0, f[5]);

        // min-p 0.1 keeps p >= 0.1 * 0.494: {4, 1, 5, 0 (0.067)}, not 2 (0.041).
        f = Frequencies(new Sampler(8, new SamplerOptions { MinP = 0.1f, Seed = 3 }), logits, 20000);
        z = p[4] + p[1] + p[5] + p[0];
        foreach (int i in new[] { 4, 1, 5, 0 }) Assert.InRange(f[i], p[i] / z - 0.015, p[i] / z + 0.015);
        foreach (int i in new[] { 2, 3, 6, 7 }) Assert.Equal(0, f[i]);

        f = Frequencies(new Sampler(8, new SamplerOptions { TopP = 0.7f, Seed = 4 }), logits, 20000);
        z = p[4] + p[1] + p[5]; // 0.494 + 0.182 = 0.676 < 0.7 <= 0.858
        foreach (int i in new[] { 4, 1, 5 }) Assert.InRange(f[i], p[i] / z - 0.015, p[i] / z + 0.015);
        Assert.Equal(0, f[0] + f[2] + f[3] + f[6] + f[7]);
    }

    [Fact]
    public void Frequencies_AtTemperature2_OnALargeVocab()
    {
        float[] logits = RandomLogits(2048, 6, scale: 4f);
        logits[10] = 20f; logits[20] = 19.5f; logits[30] = 19f; // heavy tokens (p about .41, .32, .25) over a long tail
        double[] p = Softmax(logits, 2f);
        double[] f = Frequencies(new Sampler(2048, new SamplerOptions { Temperature = 2f, Seed = 77 }), logits, 20000);
        foreach (int i in new[] { 10, 20, 30 }) Assert.True(Math.Abs(p[i] - f[i]) < 0.015, $"token {i}: p={p[i]:F4} freq={f[i]:F4}");
        double tail = 1 - p[10] - p[20] - p[30];
        Assert.True(Math.Abs(tail - (1 - f[10] - f[20] - f[30])) < 0.02);
    }

    /// <summary>Straightforward reference: full sort, then top-k, min-p, top-p on the kept mass, draw.</summary>
    static int ReferenceSample(float[] logits, SamplerOptions o, float coin)
    {
        float scaledMax = logits.Max() / o.Temperature;
        float[] w = logits.Select(l => MathF.Exp(l / o.Temperature - scaledMax)).ToArray();
        int[] order = Enumerable.Range(0, w.Length).OrderByDescending(i => w[i]).ThenBy(i => i).ToArray();
        IEnumerable<int> kept = order.Where(i => w[i] > 0f);
        if (o.TopK > 0) kept = kept.Take(o.TopK);
        kept = kept.Where(i => w[i] >= o.MinP); // the largest weight is exactly 1
        int[] k = kept.ToArray();
        bool sorted = o.TopK > 0 || o.TopP < 1f;
        if (o.TopP < 1f)
        {
            double mass = k.Sum(i => (double)w[i]), cum = 0;
            for (int j = 0; j < k.Length; j++)
            {
                cum += w[k[j]];
                if (cum >= o.TopP * mass) { k = k[..(j + 1)]; break; }
            }
        }
        if (!sorted) Array.Sort(k);
        double total = k.Sum(i => (double)w[i]), r = coin * total, c = 0;
        foreach (int i in k)
        {
            c += w[i];
            if (r < c) return i;
        }
        return k[^1];
    }

    [Theory]
    [InlineData(1f, 0, 1f, 0f)]
    [InlineData(0.7f, 0, 0.9f, 0f)]
    [InlineData(1.3f, 0, 0.5f, 0f)]
    [InlineData(1f, 40, 1f, 0f)]
    [InlineData(0.8f, 40, 0.9f, 0.05f)]
    [InlineData(1f, 0, 1f, 0.1f)]
    [InlineData(2f, 5, 0.95f, 0f)]
    [InlineData(1f, 0, 0.99f, 0.01f)]
    public void MatchesAStraightforwardReference(float temperature, int topK, float topP, float minP)
    {
        var o = new SamplerOptions { Temperature = temperature, TopK = topK, TopP = topP, MinP = minP, Seed = 99 };
        var s = new Sampler(1000, o);
        var coins = new Sampler(1000, o); // same seed: one coin per non-greedy Sample call
        for (int n = 0; n < 300; n++)
        {
            float[] logits = RandomLogits(1000, 1000 + n, scale: 2f + n % 5);
            if (n % 7 == 0) logits[n] = logits[n + 1] = logits.Max(); // ties
            int expected = ReferenceSample(logits, o, coins.NextF32());
            Assert.Equal(expected, Draw(s, logits));
        }
    }

    [Fact]
    public void Sample_DoesNotAllocate()
    {
        float[] logits = RandomLogits(32000, 7);
        var s = new Sampler(32000, new SamplerOptions { Temperature = 0.8f, TopK = 40, TopP = 0.9f, MinP = 0.05f, Seed = 5 });
        var u = new Sampler(32000, new SamplerOptions { Temperature = 0.8f, TopP = 0.9f, Seed = 5 });
        var buffer = new float[32000];
        for (int i = 0; i < 3; i++) { logits.CopyTo(buffer, 0); s.Sample(buffer); logits.CopyTo(buffer, 0); u.Sample(buffer); }
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 20; i++) { logits.CopyTo(buffer, 0); s.Sample(buffer); logits.CopyTo(buffer, 0); u.Sample(buffer); }
        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
    }

    [Fact]
    public void Sample_HandlesExtremeLogits()
    {
        var s = new Sampler(4, new SamplerOptions { Temperature = 1e-30f, Seed = 1 });
        Assert.Equal(1, s.Sample(new float[] { 1f, 3e38f, 2f, 3f })); // overflow at a tiny temperature -> argmax
        var t = new Sampler(4, new SamplerOptions { Temperature = 1f, TopP = 0.5f, Seed = 1 });
        Assert.Equal(2, t.Sample(new float[] { float.NaN, 0f, float.PositiveInfinity, 1f }));
        Assert.InRange(t.Sample(new float[] { 0f, 0f, 0f, 0f }), 0, 3);
        Assert.InRange(t.Sample(new float[] { float.NegativeInfinity, 0f, float.NegativeInfinity, float.NaN }), 0, 3);
        Assert.Throws<ArgumentException>(() => t.Sample(new float[5]));
    }

    [Theory]
    [InlineData(-0.1f, 0, 1f, 0f)]
    [InlineData(float.NaN, 0, 1f, 0f)]
    [InlineData(float.PositiveInfinity, 0, 1f, 0f)]
    [InlineData(1f, -1, 1f, 0f)]
    [InlineData(1f, 0, 0f, 0f)]
    [InlineData(1f, 0, 1.01f, 0f)]
    [InlineData(1f, 0, float.NaN, 0f)]
    [InlineData(1f, 0, 1f, -0.01f)]
    [InlineData(1f, 0, 1f, 1f)]
    [InlineData(1f, 0, 1f, float.NaN)]
    public void InvalidOptions_Throw(float temperature, int topK, float topP, float minP)
    {
        var o = new SamplerOptions { Temperature = temperature, TopK = topK, TopP = topP, MinP = minP };
        var ex = Assert.ThrowsAny<ArgumentException>(() => new Sampler(10, o));
        Assert.StartsWith("sampler: ", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void InvalidConstructorArguments_Throw()
    {
        Assert.ThrowsAny<ArgumentException>(() => new Sampler(0, new SamplerOptions()));
        Assert.Throws<ArgumentNullException>(() => new Sampler(10, null!));
        // Boundary values are valid.
        _ = new Sampler(10, new SamplerOptions { Temperature = 0f, TopK = 0, TopP = 1f, MinP = 0f });
        _ = new Sampler(10, new SamplerOptions { TopK = 1000, TopP = 1e-9f, MinP = 0.99f });
    }
}

public sealed class DivergenceTests
{
    [Fact]
    public void KullbackLeiblerOfLogits()
    {
        // softmax([0, 0]) = (1/2, 1/2), softmax([ln 3, 0]) = (3/4, 1/4): KL = ½ ln(⅔) + ½ ln 2.
        Assert.Equal(0.5 * Math.Log(2.0 / 3) + 0.5 * Math.Log(2), Divergence.KullbackLeibler([0f, 0f], [MathF.Log(3), 0f]), 1e-7);
        // Shifting all logits changes nothing, and a distribution is at distance 0 from itself.
        Assert.Equal(0, Divergence.KullbackLeibler([1f, 2f, 3f], [101f, 102f, 103f]), 1e-9);
        Assert.Throws<ArgumentException>(() => Divergence.KullbackLeibler([1f], [1f, 2f]));
    }
}
