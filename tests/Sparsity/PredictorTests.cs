using System.Runtime.InteropServices;
using AotFlash.Kernels;
using AotFlash.Sparsity;
using Xunit.Abstractions;

namespace AotFlash.Tests.Sparsity;

/// <summary>
/// <see cref="PredictorTrainer"/> and <see cref="LowRankPredictor"/> on synthetic layers: a planted low-rank
/// structure is learned to the target recall with high precision on tokens it never saw; a rank that covers the space
/// reproduces the exact activity; Select matches a plain scalar evaluation of A·(B·x) &gt; threshold; the serialized
/// form round-trips bit for bit and every truncation or corruption is rejected with a clear message.
/// </summary>
public unsafe class PredictorTests(ITestOutputHelper output)
{
    // x = latent mix + small noise, with x[0] = 1 so w1[·, 0] acts as a bias that leaves ~8% of the pairs active.
    // Every pre-activation lies in a (latent + 1)-dimensional subspace, up to the noise.
    static (float[] X, float[] W1) Planted(int n, int dim, int hidden, int latent, float noise, int seed, float[]? w1 = null)
    {
        var rng = new Random(seed);
        var mixRng = new Random(1000 + latent); // the same latent directions for every draw of tokens
        var mix = new float[latent * dim];
        for (int i = 0; i < mix.Length; i++) mix[i] = Gaussian(mixRng);
        var x = new float[n * dim];
        for (int t = 0; t < n; t++)
        {
            Span<float> row = x.AsSpan(t * dim, dim);
            for (int j = 0; j < dim; j++) row[j] = noise * Gaussian(rng);
            for (int a = 0; a < latent; a++)
            {
                float u = Gaussian(rng);
                for (int j = 0; j < dim; j++) row[j] += u * mix[a * dim + j];
            }
            row[0] = 1f;
        }
        if (w1 is null)
        {
            var wRng = new Random(2000 + hidden);
            w1 = new float[hidden * dim];
            for (int i = 0; i < w1.Length; i++) w1[i] = Gaussian(wRng) / MathF.Sqrt(dim);
            for (int i = 0; i < hidden; i++) w1[i * dim] = -1.4f * MathF.Sqrt(latent); // P(N(0, latent) > 1.4·√latent) ≈ 8%
        }
        return (x, w1);
    }

    static float Gaussian(Random rng)
    {
        double u1 = 1.0 - rng.NextDouble(), u2 = rng.NextDouble();
        return (float)(Math.Sqrt(-2.0 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2));
    }

    [Fact]
    public void PlantedLowRankStructure_ReachesTargetRecallOnHeldOutTokensWithHighPrecision()
    {
        const int Dim = 64, Hidden = 256, Latent = 8, Rank = 12, N = 3000;
        const float Target = 0.95f;
        var (x, w1) = Planted(N, Dim, Hidden, Latent, 0.05f, seed: 1);
        var predictor = PredictorTrainer.Train(x, N, w1, Hidden, Dim, Rank, 0f, Target, seed: 7, out var heldOut);
        output.WriteLine($"held out: {heldOut}");
        Assert.Equal(Rank, predictor.Rank);
        Assert.InRange(heldOut.Tokens, N / 6, N / 4);
        Assert.InRange(heldOut.TrueDensity, 0.04, 0.15);
        Assert.True(heldOut.Recall >= Target - 0.02, $"held-out recall {heldOut.Recall:F4} misses the target {Target}");
        Assert.True(heldOut.Precision >= 0.9, $"held-out precision {heldOut.Precision:F4}");

        // Fresh tokens from the same distribution, never seen by either fit.
        var (fresh, _) = Planted(2000, Dim, Hidden, Latent, 0.05f, seed: 99, w1);
        var q = PredictorTrainer.Evaluate(predictor, fresh, 2000, w1, 0f);
        output.WriteLine($"fresh tokens: {q}");
        Assert.True(q.Recall >= Target - 0.02, $"fresh recall {q.Recall:F4} misses the target {Target}");
        Assert.True(q.Precision >= 0.9, $"fresh precision {q.Precision:F4}");
        Assert.True(q.PredictedDensity < 1.2 * q.TrueDensity, $"predicted density {q.PredictedDensity:F4} vs true {q.TrueDensity:F4}");
    }

    [Fact]
    public void TooSmallRank_StillReachesTargetRecall_FatRelu()
    {
        // Rank well below the planted structure and a FATReLU threshold: precision drops, but the recall target
        // still holds on held-out tokens because κ is chosen from out-of-fold scores.
        const int Dim = 48, Hidden = 200, Latent = 16, Rank = 6, N = 3000;
        const float Target = 0.9f, Threshold = 0.25f;
        var (x, w1) = Planted(N, Dim, Hidden, Latent, 0.1f, seed: 3);
        PredictorTrainer.Train(x, N, w1, Hidden, Dim, Rank, Threshold, Target, seed: 1, out var heldOut);
        output.WriteLine($"held out: {heldOut}");
        Assert.True(heldOut.Recall >= Target - 0.03, $"held-out recall {heldOut.Recall:F4} misses the target {Target}");
        Assert.True(heldOut.PredictedDensity < 1, "predicts everything");
        Assert.True(heldOut.Precision > heldOut.TrueDensity * 2, $"precision {heldOut.Precision:F4} is no better than chance ({heldOut.TrueDensity:F4})");
    }

    [Fact]
    public void ConstantNeurons_AreNeverOrAlwaysPredicted()
    {
        const int Dim = 32, Hidden = 64, N = 800;
        var (x, w1) = Planted(N, Dim, Hidden, 6, 0.2f, seed: 12);
        w1 = (float[])w1.Clone();
        w1.AsSpan(3 * Dim, Dim).Clear();          // g ≡ 0: never active
        w1.AsSpan(7 * Dim, Dim).Clear();
        w1[7 * Dim] = 2f;                         // g ≡ 2 (x[0] = 1): always active
        var predictor = PredictorTrainer.Train(x, N, w1, Hidden, Dim, 5, 0f, 0.95f, seed: 1, out var q);
        output.WriteLine($"held out: {q}");
        var active = new int[Hidden];
        var scratch = new float[predictor.ScratchLength];
        fixed (float* xp = x, sp = scratch)
            for (int t = 0; t < N; t++)
            {
                var chosen = active.AsSpan(0, predictor.Select(xp + t * Dim, active, sp)).ToArray();
                Assert.DoesNotContain(3, chosen);
                Assert.Contains(7, chosen);
            }
    }

    [Theory]
    [InlineData(48, 32, 48, 0f)]   // hidden > dim, rank = hidden
    [InlineData(48, 32, 32, 0.1f)] // rank = dim < hidden, FATReLU
    [InlineData(24, 32, 40, 0f)]   // hidden < dim, rank > hidden
    public void RankCoveringTheSpace_ReproducesExactActivity(int hidden, int dim, int rank, float threshold)
    {
        const int N = 400;
        var (x, w1) = Planted(N, dim, hidden, 6, 0.5f, seed: 5);
        var predictor = PredictorTrainer.Train(x, N, w1, hidden, dim, rank, threshold, 0.95f, seed: 1, out var q);
        Assert.Equal(Math.Min(hidden, dim), predictor.Rank);
        Assert.Equal(1.0, q.Recall);
        Assert.Equal(1.0, q.Precision);

        var active = new int[hidden];
        var scratch = new float[predictor.ScratchLength];
        var g = new float[hidden];
        int activePairs = 0;
        fixed (float* xp = x, wp = w1, sp = scratch, gp = g)
            for (int t = 0; t < N; t++)
            {
                VectorOps.MatVec(gp, wp, dim, xp + t * dim, hidden, dim);
                var expected = Enumerable.Range(0, hidden).Where(i => g[i] > threshold).ToArray();
                int count = predictor.Select(xp + t * dim, active, sp);
                Assert.Equal(expected, active.AsSpan(0, count).ToArray());
                activePairs += count;
            }
        Assert.InRange(activePairs, 1, N * hidden - 1); // neither trivially empty nor full
    }

    [Fact]
    public void Select_MatchesScalarEvaluation()
    {
        const int Dim = 37, Hidden = 101, Rank = 13;
        var rng = new Random(11);
        var predictor = RandomPredictor(rng, Dim, Hidden, Rank);
        var active = new int[Hidden];
        // Scratch between NaN guards: Select must stay inside ScratchLength.
        var buffer = new float[predictor.ScratchLength + 2];
        buffer[0] = buffer[^1] = float.NaN;
        var x = new float[Dim];
        int checkedPairs = 0, predicted = 0;
        fixed (float* xp = x, bp = buffer)
            for (int trial = 0; trial < 200; trial++)
            {
                for (int j = 0; j < Dim; j++) x[j] = Gaussian(rng);
                int count = predictor.Select(xp, active, bp + 1);
                predicted += count;
                for (int c = 1; c < count; c++) Assert.True(active[c - 1] < active[c], "indices not ascending");
                var chosen = new HashSet<int>(active.AsSpan(0, count).ToArray());
                for (int i = 0; i < Hidden; i++)
                    Assert.True(bp[1 + i] > 0 == chosen.Contains(i), $"neuron {i}: margin {bp[1 + i]} left in scratch disagrees with the selection");

                // Plain double-precision evaluation of the same formula.
                var z = new double[Rank];
                for (int r = 0; r < Rank; r++)
                    for (int j = 0; j < Dim; j++) z[r] += (double)predictor.B[r * Dim + j] * x[j];
                for (int i = 0; i < Hidden; i++)
                {
                    double score = 0, magnitude = 0;
                    for (int r = 0; r < Rank; r++)
                    {
                        score += predictor.A[i * Rank + r] * z[r];
                        magnitude += Math.Abs(predictor.A[i * Rank + r] * z[r]);
                    }
                    bool expected = score > predictor.Thresholds[i];
                    if (chosen.Contains(i) != expected)
                        Assert.True(Math.Abs(score - predictor.Thresholds[i]) <= 1e-4 * (magnitude + 1),
                            $"neuron {i}: score {score} vs threshold {predictor.Thresholds[i]}, Select says {chosen.Contains(i)}");
                    checkedPairs++;
                }
            }
        Assert.Equal(200 * Hidden, checkedPairs);
        Assert.InRange(predicted, 200 * Hidden / 10, 200 * Hidden * 9 / 10);
        Assert.True(float.IsNaN(buffer[0]) && float.IsNaN(buffer[^1]), "Select wrote outside its scratch");
    }

    [Fact]
    public void Evaluate_CountsWhatSelectPredicts()
    {
        const int Dim = 40, Hidden = 90, N = 500;
        var (x, w1) = Planted(N, Dim, Hidden, 10, 0.2f, seed: 21);
        var predictor = PredictorTrainer.Train(x, N, w1, Hidden, Dim, 6, 0f, 0.9f, seed: 2, out _);
        var quality = PredictorTrainer.Evaluate(predictor, x, N, w1, 0f);

        long tp = 0, fp = 0, fn = 0;
        var active = new int[Hidden];
        var scratch = new float[predictor.ScratchLength];
        var g = new float[Hidden];
        fixed (float* xp = x, wp = w1, sp = scratch, gp = g)
            for (int t = 0; t < N; t++)
            {
                VectorOps.MatVec(gp, wp, Dim, xp + t * Dim, Hidden, Dim);
                var chosen = new bool[Hidden];
                int count = predictor.Select(xp + t * Dim, active, sp);
                for (int c = 0; c < count; c++) chosen[active[c]] = true;
                for (int i = 0; i < Hidden; i++)
                {
                    bool truth = g[i] > 0;
                    if (truth && chosen[i]) tp++;
                    else if (chosen[i]) fp++;
                    else if (truth) fn++;
                }
            }
        Assert.Equal(N, quality.Tokens);
        Assert.Equal((double)tp / (tp + fn), quality.Recall, 12);
        Assert.Equal((double)tp / (tp + fp), quality.Precision, 12);
        Assert.Equal((double)(tp + fp) / (N * Hidden), quality.PredictedDensity, 12);
        Assert.Equal((double)(tp + fn) / (N * Hidden), quality.TrueDensity, 12);
    }

    [Fact]
    public void Train_IsDeterministicForASeed()
    {
        const int Dim = 32, Hidden = 64, N = 600;
        var (x, w1) = Planted(N, Dim, Hidden, 6, 0.2f, seed: 8);
        byte[] Bytes(int seed)
        {
            var p = PredictorTrainer.Train(x, N, w1, Hidden, Dim, 4, 0f, 0.95f, seed, out _);
            using var stream = new MemoryStream();
            p.WriteTo(stream);
            return stream.ToArray();
        }
        Assert.Equal(Bytes(3), Bytes(3));
    }

    [Fact]
    public void Train_RejectsBadArguments()
    {
        var (x, w1) = Planted(100, 16, 32, 4, 0.1f, seed: 1);
        Assert.Throws<ArgumentOutOfRangeException>(() => PredictorTrainer.Train(x.AsSpan(0, 5 * 16), 5, w1, 32, 16, 4, 0f, 0.95f, 1, out _));
        Assert.Throws<ArgumentException>(() => PredictorTrainer.Train(x.AsSpan(1), 100, w1, 32, 16, 4, 0f, 0.95f, 1, out _));
        Assert.Throws<ArgumentException>(() => PredictorTrainer.Train(x, 100, w1.AsSpan(1), 32, 16, 4, 0f, 0.95f, 1, out _));
        Assert.Throws<ArgumentOutOfRangeException>(() => PredictorTrainer.Train(x, 100, w1, 32, 16, 4, 0f, 1.5f, 1, out _));
        Assert.Throws<ArgumentOutOfRangeException>(() => PredictorTrainer.Train(x, 100, w1, 32, 16, 0, 0f, 0.95f, 1, out _));
    }

    [Fact]
    public void Serialization_RoundTripsBitExactly()
    {
        var rng = new Random(4);
        var predictor = RandomPredictor(rng, 29, 53, 7);
        predictor.Thresholds[3] = float.PositiveInfinity; // constant neurons get ±inf
        predictor.Thresholds[4] = float.NegativeInfinity;
        predictor.A[5] = -0f;
        byte[] bytes = Serialize(predictor);
        Assert.Equal(predictor.SerializedLength, bytes.Length);

        // Trailing bytes (the next record) are left alone.
        byte[] padded = [.. bytes, 1, 2, 3];
        var copy = LowRankPredictor.ReadFrom(padded, out int consumed);
        Assert.Equal(bytes.Length, consumed);
        Assert.Equal((predictor.Dim, predictor.Hidden, predictor.Rank), (copy.Dim, copy.Hidden, copy.Rank));
        Assert.True(MemoryMarshal.AsBytes(predictor.A.AsSpan()).SequenceEqual(MemoryMarshal.AsBytes(copy.A.AsSpan())));
        Assert.True(MemoryMarshal.AsBytes(predictor.B.AsSpan()).SequenceEqual(MemoryMarshal.AsBytes(copy.B.AsSpan())));
        Assert.True(MemoryMarshal.AsBytes(predictor.Thresholds.AsSpan()).SequenceEqual(MemoryMarshal.AsBytes(copy.Thresholds.AsSpan())));
        Assert.Equal(bytes, Serialize(copy));
    }

    [Fact]
    public void Serialization_RejectsTruncatedBytes()
    {
        byte[] bytes = Serialize(RandomPredictor(new Random(5), 9, 17, 3));
        foreach (int length in new[] { 0, 1, 4, 19, 20, 21, 100, bytes.Length - 4, bytes.Length - 1 })
        {
            var e = Assert.Throws<InvalidDataException>(() => LowRankPredictor.ReadFrom(bytes.AsSpan(0, length), out _));
            Assert.Contains("truncated", e.Message);
        }
    }

    [Theory]
    [InlineData(0, "magic")]
    [InlineData(4, "version")]
    [InlineData(11, "dimensions")]   // dim's high byte: negative
    [InlineData(13, "truncated")]    // hidden grows past the data
    [InlineData(16, "checksum")]     // rank 3 → 2: fits the data, fails the checksum
    [InlineData(30, "checksum")]     // inside A
    [InlineData(-80, "checksum")]    // inside B
    [InlineData(-10, "checksum")]    // inside the thresholds
    [InlineData(-2, "checksum")]     // the checksum itself
    public void Serialization_RejectsCorruptBytes(int offset, string expected)
    {
        byte[] bytes = Serialize(RandomPredictor(new Random(6), 9, 17, 3));
        int at = offset >= 0 ? offset : bytes.Length + offset;
        bytes[at] ^= at == 16 ? (byte)0x01 : (byte)0x80;
        var e = Assert.Throws<InvalidDataException>(() => LowRankPredictor.ReadFrom(bytes, out _));
        output.WriteLine(e.Message);
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void Constructor_ValidatesArraySizes()
    {
        Assert.Throws<ArgumentException>(() => new LowRankPredictor(4, 3, 2, new float[5], new float[8], new float[3]));
        Assert.Throws<ArgumentException>(() => new LowRankPredictor(4, 3, 2, new float[6], new float[7], new float[3]));
        Assert.Throws<ArgumentException>(() => new LowRankPredictor(4, 3, 2, new float[6], new float[8], new float[2]));
        var p = new LowRankPredictor(4, 3, 2, new float[6], new float[8], new float[3]);
        Assert.Throws<ArgumentException>(() =>
        {
            var scratch = new float[p.ScratchLength];
            var x = new float[4];
            fixed (float* xp = x, sp = scratch) p.Select(xp, new int[2], sp);
        });
    }

    static LowRankPredictor RandomPredictor(Random rng, int dim, int hidden, int rank)
    {
        var a = new float[hidden * rank];
        var b = new float[rank * dim];
        var thresholds = new float[hidden];
        for (int i = 0; i < a.Length; i++) a[i] = Gaussian(rng);
        for (int i = 0; i < b.Length; i++) b[i] = Gaussian(rng) / MathF.Sqrt(dim);
        for (int i = 0; i < hidden; i++) thresholds[i] = Gaussian(rng) * MathF.Sqrt(rank);
        return new LowRankPredictor(dim, hidden, rank, a, b, thresholds);
    }

    static byte[] Serialize(LowRankPredictor p)
    {
        using var stream = new MemoryStream();
        p.WriteTo(stream);
        return stream.ToArray();
    }
}
