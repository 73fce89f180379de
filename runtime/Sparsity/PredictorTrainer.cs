using AotFlash.Kernels;

namespace AotFlash.Sparsity;

/// <summary>
/// How well a predictor's active sets match the true ones over some tokens, counted over (token, neuron) pairs.
/// Recall = TP / (TP + FN) (1 when nothing is truly active), Precision = TP / (TP + FP) (1 when nothing is predicted),
/// densities are fractions of all pairs: predicted (TP + FP), true (TP + FN).
/// </summary>
public readonly record struct PredictorQuality(double Recall, double Precision, double PredictedDensity, double TrueDensity, int Tokens)
{
    public override string ToString() =>
        $"recall {Recall:F4}, precision {Precision:F4}, predicted density {PredictedDensity:F4}, true density {TrueDensity:F4} ({Tokens} tokens)";
}

/// <summary>
/// Trains a <see cref="LowRankPredictor"/> for one FFN layer from calibration inputs x[n, dim] and the layer's gate
/// weights w1[hidden, dim]; neuron i is truly active for x when w1_i · x &gt; activationThreshold (0 for ReLU, t for
/// FATReLU). Plain C#, deterministic for a given seed (the result does not depend on the core count).
/// <para>Method (each step kept because it raised held-out precision at the same recall over the plain projection
/// with one threshold per layer, on the real activations of the stories260K-relu and babyllama-relu models):</para>
/// <list type="number">
/// <item>G = X·w1ᵀ (the true pre-activations). Subspace: the top-rank right singular vectors V of G less its column
/// means (randomized subspace iteration); B = V·w1, so z = B·x is the projection of the centred pre-activation onto the
/// data's top-rank subspace. B's rows are scaled so each feature has unit variance on the calibration tokens.</item>
/// <item>Head: per neuron, a ridge-regularised weighted least-squares fit of g_i on [z, 1], with weight 1 on tokens
/// where g_i is above or near the threshold (g_i &gt; t − ½·sd(g_i)) and <see cref="FarWeight"/> on the rest. Far-negative
/// tokens decide nothing, so the fit spends its rank on the boundary; this is where the precision gain comes from.</item>
/// <item>Thresholds: per neuron t + κ·σ_i − b_i, with σ_i the neuron's out-of-fold residual on its near tokens
/// (<see cref="Folds"/>-fold cross-fitting over token blocks) and one κ per layer: the (1 − targetRecall) quantile of
/// the truly active pairs' out-of-fold (score − t)/σ_i. Choosing κ on in-sample scores overfits and misses the target
/// recall on new tokens; out-of-fold scores do not.</item>
/// </list>
/// Quality is measured on a held-out 20% of the tokens (whole blocks of up to <see cref="BlockTokens"/> consecutive
/// tokens, chosen by the seed) by a predictor fitted on the other 80%; the predictor returned is then refitted the
/// same way on all tokens. When rank ≥ min(hidden, dim) the predictor is the exact factorisation (A = I, B = w1 or
/// A = w1, B = I, threshold t) and reproduces the true activity exactly.
/// </summary>
public static unsafe class PredictorTrainer
{
    /// <summary>Tokens per block of the held-out split and of the cross-fitting folds (consecutive tokens are correlated).</summary>
    public const int BlockTokens = 32;
    public const double HeldOutFraction = 0.2;
    public const int Folds = 4;
    public const int MinTokens = 10;
    /// <summary>Weight of the tokens far below the threshold in the head's fit (those near or above it weigh 1).</summary>
    public const float FarWeight = 0.01f;
    /// <summary>A token counts as near neuron i when g_i &gt; t − NearBand·sd(g_i).</summary>
    public const float NearBand = 0.5f;
    /// <summary>Ridge added to the head's normal equations, relative to their mean diagonal.</summary>
    public const double Ridge = 1e-3;
    const int Oversample = 10, PowerIterations = 4;

    public static LowRankPredictor Train(ReadOnlySpan<float> x, int n, ReadOnlySpan<float> w1, int hidden, int dim, int rank,
        float activationThreshold, float targetRecall, int seed, out PredictorQuality quality)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(hidden);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(dim);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(rank);
        if (n < MinTokens) throw new ArgumentOutOfRangeException(nameof(n), n, $"training needs at least {MinTokens} tokens");
        if (x.Length != (long)n * dim) throw new ArgumentException($"x has {x.Length} floats, expected n·dim = {(long)n * dim}", nameof(x));
        if (w1.Length != (long)hidden * dim) throw new ArgumentException($"w1 has {w1.Length} floats, expected hidden·dim = {(long)hidden * dim}", nameof(w1));
        if (!(targetRecall > 0f && targetRecall <= 1f)) throw new ArgumentOutOfRangeException(nameof(targetRecall), targetRecall, "target recall must be in (0, 1]");
        if (!float.IsFinite(activationThreshold)) throw new ArgumentOutOfRangeException(nameof(activationThreshold), activationThreshold, "activation threshold must be finite");
        if ((long)n * hidden > Array.MaxLength) throw new ArgumentException($"n·hidden = {(long)n * hidden} pre-activations exceed one array; train on fewer tokens", nameof(n));

        var (train, trainFolds, held, allFolds) = Split(n, seed);
        fixed (float* xp = x, wp = w1)
        {
            if (rank >= Math.Min(hidden, dim))
            {
                var exact = Exact(wp, hidden, dim, activationThreshold);
                quality = EvaluateRows(exact, xp, held, wp, activationThreshold);
                return exact;
            }
            var g = GC.AllocateUninitializedArray<float>(n * hidden, pinned: true);
            fixed (float* gp = g)
            {
                DenseMath.MulNT(gp, xp, null, wp, n, hidden, dim);
                var measured = Fit(xp, gp, wp, train, trainFolds, hidden, dim, rank, activationThreshold, targetRecall, seed);
                quality = Count(measured, xp, gp, held, activationThreshold);
                int[] all = Enumerable.Range(0, n).ToArray();
                return Fit(xp, gp, wp, all, allFolds, hidden, dim, rank, activationThreshold, targetRecall, seed);
            }
        }
    }

    /// <summary>The quality of <paramref name="predictor"/> on tokens x[n, dim], with the truth computed from w1[hidden, dim].</summary>
    public static PredictorQuality Evaluate(LowRankPredictor predictor, ReadOnlySpan<float> x, int n, ReadOnlySpan<float> w1, float activationThreshold)
    {
        ArgumentNullException.ThrowIfNull(predictor);
        int dim = predictor.Dim, hidden = predictor.Hidden;
        if (x.Length != (long)n * dim) throw new ArgumentException($"x has {x.Length} floats, expected n·dim = {(long)n * dim}", nameof(x));
        if (w1.Length != (long)hidden * dim) throw new ArgumentException($"w1 has {w1.Length} floats, expected hidden·dim = {(long)hidden * dim}", nameof(w1));
        fixed (float* xp = x, wp = w1)
            return EvaluateRows(predictor, xp, Enumerable.Range(0, n).ToArray(), wp, activationThreshold);
    }

    // Blocks of consecutive tokens, shuffled by the seed: the first 20% are held out; the others are spread over the
    // folds in shuffled order, once for the training part and once for all tokens. Rows come back ascending.
    internal static (int[] Train, int[] TrainFolds, int[] Held, int[] AllFolds) Split(int n, int seed)
    {
        int blockTokens = Math.Clamp(n / 40, 1, BlockTokens);
        int blocks = (n + blockTokens - 1) / blockTokens;
        var order = Enumerable.Range(0, blocks).ToArray();
        new Random(seed).Shuffle(order);
        int heldBlocks = Math.Max(1, (int)Math.Round(blocks * HeldOutFraction));
        var heldBlock = new bool[blocks];
        var trainFold = new int[blocks];
        var allFold = new int[blocks];
        for (int i = 0; i < blocks; i++)
        {
            int b = order[i];
            heldBlock[b] = i < heldBlocks;
            if (i >= heldBlocks) trainFold[b] = (i - heldBlocks) % Folds;
            allFold[b] = i % Folds;
        }
        var train = new List<int>();
        var trainFolds = new List<int>();
        var held = new List<int>();
        var allFolds = new int[n];
        for (int t = 0; t < n; t++)
        {
            int b = t / blockTokens;
            allFolds[t] = allFold[b];
            if (heldBlock[b]) held.Add(t);
            else { train.Add(t); trainFolds.Add(trainFold[b]); }
        }
        return (train.ToArray(), trainFolds.ToArray(), held.ToArray(), allFolds);
    }

    // Rank covers the whole space: score = w1·x exactly, threshold t.
    static LowRankPredictor Exact(float* w1, int hidden, int dim, float t)
    {
        var thresholds = new float[hidden];
        Array.Fill(thresholds, t);
        var weights = new ReadOnlySpan<float>(w1, hidden * dim).ToArray();
        int r = Math.Min(hidden, dim);
        var identity = new float[r * r];
        for (int i = 0; i < r; i++) identity[i * r + i] = 1f;
        return hidden <= dim
            ? new LowRankPredictor(dim, hidden, hidden, identity, weights, thresholds)
            : new LowRankPredictor(dim, hidden, dim, weights, identity, thresholds);
    }

    // Fits a predictor on the listed tokens (folds[i] is the fold of rows[i]); g = x·w1ᵀ for all tokens.
    static LowRankPredictor Fit(float* x, float* g, float* w1, int[] rows, int[] folds, int hidden, int dim, int rank,
        float t, float targetRecall, int seed)
    {
        int count = rows.Length, k = rank + 1;
        var (mean, sd) = ColumnMoments(g, rows, hidden);

        // Subspace and features.
        float[] meanF = Array.ConvertAll(mean, m => (float)m);
        float[] v = DenseMath.TopRightSingularVectors(g, rows, hidden, meanF, rank, Oversample, PowerIterations, new Random(seed));
        var vt = GC.AllocateUninitializedArray<float>(hidden * rank, pinned: true);
        var b = GC.AllocateUninitializedArray<float>(rank * dim, pinned: true);
        var z = GC.AllocateUninitializedArray<float>(checked(count * rank), pinned: true);
        var features = GC.AllocateUninitializedArray<float>(checked(count * k), pinned: true);
        var featureMean = new double[rank];
        fixed (float* vp = v, vtp = vt, bp = b, zp = z, fp = features)
        {
            DenseMath.Transpose(vtp, vp, rank, hidden);
            DenseMath.MulTN(bp, vtp, null, w1, null, rank, dim, hidden);          // B = V·w1
            DenseMath.MulNT(zp, x, rows, bp, count, rank, dim);                   // z = B·x
            var (zMean, zSd) = ColumnMoments(zp, null, count, rank);
            var scale = new float[rank];
            for (int a = 0; a < rank; a++)
            {
                scale[a] = zSd[a] > 0 ? (float)(1 / zSd[a]) : 1f;
                for (int j = 0; j < dim; j++) bp[(long)a * dim + j] *= scale[a];
                featureMean[a] = zMean[a] * scale[a];
            }
            // Features: z scaled as B now scales it, centred (the intercept takes the mean), then a constant 1.
            for (int i = 0; i < count; i++)
            {
                for (int a = 0; a < rank; a++) fp[(long)i * k + a] = (float)(zp[(long)i * rank + a] * scale[a] - featureMean[a]);
                fp[(long)i * k + rank] = 1f;
            }
        }

        var head = FitHead(features, g, rows, folds, hidden, k, mean, sd, t);

        // One κ per layer from the out-of-fold scores of the truly active pairs.
        float kappa = Quantile(head.Standardized, 1 - targetRecall);
        var a2 = new float[hidden * rank];
        var thresholds = new float[hidden];
        for (int j = 0; j < hidden; j++)
        {
            double[] beta = head.Beta[j];
            if (beta is null)
            {
                // A constant neuron (sd within rounding of 0): it is always or never active, and its score is 0.
                thresholds[j] = mean[j] > t ? float.NegativeInfinity : float.PositiveInfinity;
                continue;
            }
            double bias = beta[rank];
            for (int a = 0; a < rank; a++)
            {
                a2[(long)j * rank + a] = (float)beta[a];
                bias -= beta[a] * featureMean[a];
            }
            thresholds[j] = (float)(t + (double)kappa * head.Sigma[j] - bias);
        }
        return new LowRankPredictor(dim, hidden, rank, a2, b, thresholds);
    }

    sealed class Head
    {
        public required double[][] Beta;       // [hidden][k]: weights on the standardised features, then the intercept; null for a constant neuron
        public required double[] Sigma;        // [hidden]: out-of-fold residual rms on the near tokens
        public required float[] Standardized;  // out-of-fold (score − t)/σ of every truly active pair
    }

    // The weighted, cross-fitted least-squares head; see the class summary.
    static Head FitHead(float[] features, float* g, int[] rows, int[] folds, int hidden, int k, double[] mean, double[] sd, float t)
    {
        int count = rows.Length;
        var foldRows = new int[Folds][];
        var foldGlobal = new int[Folds][];
        for (int f = 0; f < Folds; f++)
        {
            var local = new List<int>();
            for (int i = 0; i < count; i++) if (folds[i] == f) local.Add(i);
            foldRows[f] = local.ToArray();
            foldGlobal[f] = local.Select(i => rows[i]).ToArray();
        }
        // Unweighted per-fold sums over all tokens: S_f = Σ f fᵀ [k, k] and T_f = Σ f gᵀ [k, hidden].
        var s = new float[Folds][];
        var tSums = new float[Folds][];
        fixed (float* fp = features)
            for (int f = 0; f < Folds; f++)
            {
                s[f] = GC.AllocateUninitializedArray<float>(k * k, pinned: true);
                tSums[f] = GC.AllocateUninitializedArray<float>(k * hidden, pinned: true);
                fixed (float* sp = s[f], tp = tSums[f])
                {
                    DenseMath.MulTN(sp, fp, foldRows[f], fp, foldRows[f], k, k, foldRows[f].Length);
                    DenseMath.MulTN(tp, fp, foldRows[f], g, foldGlobal[f], k, hidden, foldRows[f].Length);
                }
            }

        var beta = new double[hidden][];
        var sigma = new double[hidden];
        var positives = new float[hidden][];
        const int Strip = 16; // neurons per work item: one cache line of a row of g
        Parallel.For(0, (hidden + Strip - 1) / Strip, () => new HeadScratch(k), (strip, _, scratch) =>
        {
            for (int j = strip * Strip; j < Math.Min(hidden, (strip + 1) * Strip); j++)
                FitNeuron(j, scratch, features, g, rows, folds, s, tSums, hidden, k, mean[j], sd[j], t,
                    out beta[j], out sigma[j], out positives[j]);
            return scratch;
        }, _ => { });

        // Neurons with no near tokens have no residual of their own: give them the median.
        var finite = sigma.Where(v => double.IsFinite(v) && v > 0).Order().ToArray();
        double typical = finite.Length > 0 ? finite[finite.Length / 2] : 1;
        var standardized = new List<float>();
        for (int j = 0; j < hidden; j++)
        {
            if (!(double.IsFinite(sigma[j]) && sigma[j] > 0)) sigma[j] = typical;
            sigma[j] = Math.Max(sigma[j], 1e-6 * typical);
            foreach (float d in positives[j]) standardized.Add(float.IsPositiveInfinity(d) ? d : (float)(d / sigma[j]));
        }
        return new Head { Beta = beta, Sigma = sigma, Standardized = standardized.ToArray() };
    }

    sealed class HeadScratch(int k)
    {
        public readonly float[] NearGram = GC.AllocateUninitializedArray<float>(Folds * k * k, pinned: true);
        public readonly float[] NearCross = GC.AllocateUninitializedArray<float>(Folds * k, pinned: true);
        public readonly double[] Total = GC.AllocateUninitializedArray<double>(k * k, pinned: true);
        public readonly double[] TotalCross = GC.AllocateUninitializedArray<double>(k, pinned: true);
        public readonly double[] Normal = GC.AllocateUninitializedArray<double>(k * k, pinned: true);
        public readonly double[] Solution = GC.AllocateUninitializedArray<double>(k, pinned: true);
        public readonly List<int> Near = new();
        public readonly List<float> OutOfFold = new();
    }

    const double NearWeight = 1 - FarWeight;

    static void FitNeuron(int j, HeadScratch w, float[] features, float* g, int[] rows, int[] folds, float[][] s, float[][] tSums, int hidden, int k, double mean, double sd, float t,
        out double[] beta, out double sigma, out float[] positives)
    {
        int count = rows.Length;
        if (!(sd > 1e-6 * Math.Abs(mean)))
        {
            beta = null!;
            sigma = double.NaN;
            positives = mean > t ? Enumerable.Repeat(float.PositiveInfinity, count).ToArray() : [];
            return;
        }
        float lo = (float)(t - NearBand * sd);
        var near = w.Near;
        near.Clear();
        for (int i = 0; i < count; i++)
            if (g[(long)rows[i] * hidden + j] > lo) near.Add(i);

        // Per-fold sums over the near tokens (lower triangles), which get weight 1 − FarWeight on top of FarWeight.
        Array.Clear(w.NearGram);
        Array.Clear(w.NearCross);
        Span<int> nearPerFold = stackalloc int[Folds];
        fixed (float* fp = features, gram = w.NearGram, cross = w.NearCross)
        fixed (double* total = w.Total, totalCross = w.TotalCross)
        {
            foreach (int i in near)
            {
                int f = folds[i];
                nearPerFold[f]++;
                float* row = fp + (long)i * k;
                float* gf = gram + (long)f * k * k;
                for (int a = 0; a < k; a++) VectorOps.Axpy(gf + (long)a * k, row[a], row, a + 1);
                VectorOps.Axpy(cross + f * k, g[(long)rows[i] * hidden + j], row, k);
            }
            new Span<double>(total, k * k).Clear();
            new Span<double>(totalCross, k).Clear();
            for (int f = 0; f < Folds; f++) AddFold(total, totalCross, 1, s[f], tSums[f], gram, cross, hidden, k, j, f);

            // Out-of-fold scores of the near tokens: each from the fit that left its fold out.
            var oof = w.OutOfFold;
            oof.Clear();
            for (int i = 0; i < near.Count; i++) oof.Add(0f);
            for (int f = 0; f < Folds; f++)
            {
                if (nearPerFold[f] == 0) continue;
                Solve(w, s, tSums, gram, cross, hidden, k, j, f);
                for (int q = 0; q < near.Count; q++)
                {
                    int i = near[q];
                    if (folds[i] != f) continue;
                    double score = 0;
                    for (int a = 0; a < k; a++) score += w.Solution[a] * fp[(long)i * k + a];
                    oof[q] = (float)score;
                }
            }
            Solve(w, s, tSums, gram, cross, hidden, k, j, -1);
            beta = (double[])w.Solution.Clone();

            double sq = 0;
            var pos = new List<float>();
            for (int q = 0; q < near.Count; q++)
            {
                float gv = g[(long)rows[near[q]] * hidden + j];
                double d = gv - oof[q];
                sq += d * d;
                if (gv > t) pos.Add(oof[q] - t);
            }
            sigma = near.Count > 0 ? Math.Sqrt(sq / near.Count) : double.NaN;
            positives = pos.ToArray();
        }
    }

    // total += sign · (FarWeight·S_f + NearWeight·NearGram_f) (lower triangle), cross likewise with T_f[·, j].
    static void AddFold(double* total, double* totalCross, double sign, float[] sf, float[] tf, float* nearGram, float* nearCross,
        int hidden, int k, int j, int f)
    {
        float* gf = nearGram + (long)f * k * k, cf = nearCross + f * k;
        double far = sign * FarWeight, nearW = sign * NearWeight;
        for (int a = 0; a < k; a++)
            for (int c = 0; c <= a; c++) total[a * k + c] += far * sf[a * k + c] + nearW * gf[a * k + c];
        for (int a = 0; a < k; a++) totalCross[a] += far * tf[(long)a * hidden + j] + nearW * cf[a];
    }

    // Solves the weighted ridge normal equations over every fold except `leaveOut` (-1: all folds) into w.Solution.
    static void Solve(HeadScratch w, float[][] s, float[][] tSums, float* nearGram, float* nearCross, int hidden, int k, int j, int leaveOut)
    {
        fixed (double* m = w.Normal, v = w.Solution, total = w.Total, totalCross = w.TotalCross)
        {
            new Span<double>(total, k * k).CopyTo(new Span<double>(m, k * k));
            new Span<double>(totalCross, k).CopyTo(new Span<double>(v, k));
            if (leaveOut >= 0) AddFold(m, v, -1, s[leaveOut], tSums[leaveOut], nearGram, nearCross, hidden, k, j, leaveOut);
            double trace = 0;
            for (int a = 0; a < k; a++) trace += m[a * k + a];
            double ridge = Ridge * trace / k + 1e-30;
            for (int a = 0; a < k; a++) m[a * k + a] += ridge;
            if (!DenseMath.CholeskySolve(m, k, v))
                throw new InvalidOperationException("predictor head: normal equations are not positive definite");
        }
    }

    // Per-column mean and standard deviation of the listed rows of a[·, cols] (all `rows.Length` rows).
    static (double[] Mean, double[] Sd) ColumnMoments(float* a, int[] rows, int cols) => ColumnMoments(a, rows, rows.Length, cols);

    static (double[] Mean, double[] Sd) ColumnMoments(float* a, int[]? rows, int count, int cols)
    {
        var mean = new double[cols];
        var sd = new double[cols];
        const int Strip = 256;
        Parallel.For(0, (cols + Strip - 1) / Strip, strip =>
        {
            int j0 = strip * Strip, j1 = Math.Min(cols, j0 + Strip);
            Span<double> sum = stackalloc double[Strip], sq = stackalloc double[Strip];
            for (int i = 0; i < count; i++)
            {
                float* row = a + (long)(rows is null ? i : rows[i]) * cols;
                for (int j = j0; j < j1; j++)
                {
                    double value = row[j];
                    sum[j - j0] += value;
                    sq[j - j0] += value * value;
                }
            }
            for (int j = j0; j < j1; j++)
            {
                double m = sum[j - j0] / count;
                mean[j] = m;
                sd[j] = Math.Sqrt(Math.Max(0, sq[j - j0] / count - m * m));
            }
        });
        return (mean, sd);
    }

    // The largest κ such that the fraction of values above κ is at least 1 − q; 0 when there are none.
    static float Quantile(float[] values, double q)
    {
        if (values.Length == 0) return 0f;
        Array.Sort(values);
        int drop = (int)Math.Floor(q * values.Length + 1e-9);
        drop = Math.Clamp(drop, 0, values.Length - 1);
        float below = drop == 0 ? MathF.BitDecrement(values[0]) : values[drop - 1], above = values[drop];
        float kappa = float.IsFinite(below) && float.IsFinite(above) && drop > 0 ? below + 0.5f * (above - below) : below;
        return Math.Clamp(kappa, -float.MaxValue, float.MaxValue); // an infinity only from always-active constant neurons
    }

    // Quality over the listed tokens, computing the truth from w1 chunk by chunk.
    static PredictorQuality EvaluateRows(LowRankPredictor p, float* x, int[] rows, float* w1, float t)
    {
        const int Chunk = 256;
        var g = GC.AllocateUninitializedArray<float>(Math.Min(Chunk, Math.Max(1, rows.Length)) * p.Hidden, pinned: true);
        var counts = new Counts();
        fixed (float* gp = g)
            for (int c0 = 0; c0 < rows.Length; c0 += Chunk)
            {
                int[] chunk = rows.AsSpan(c0, Math.Min(Chunk, rows.Length - c0)).ToArray();
                DenseMath.MulNT(gp, x, chunk, w1, chunk.Length, p.Hidden, p.Dim);
                Accumulate(ref counts, p, x, chunk, gp, null, t);
            }
        return counts.Quality(rows.Length, p.Hidden);
    }

    // Quality over the listed tokens, the truth read from g[n, hidden].
    static PredictorQuality Count(LowRankPredictor p, float* x, float* g, int[] rows, float t)
    {
        var counts = new Counts();
        Accumulate(ref counts, p, x, rows, g, rows, t);
        return counts.Quality(rows.Length, p.Hidden);
    }

    struct Counts
    {
        public long TruePositive, FalsePositive, FalseNegative;

        public readonly PredictorQuality Quality(int tokens, int hidden)
        {
            double pairs = Math.Max(1.0, (double)tokens * hidden);
            long predicted = TruePositive + FalsePositive, actual = TruePositive + FalseNegative;
            return new PredictorQuality(
                actual == 0 ? 1 : (double)TruePositive / actual,
                predicted == 0 ? 1 : (double)TruePositive / predicted,
                predicted / pairs, actual / pairs, tokens);
        }
    }

    // Scores the listed tokens as Select does (the same two MatVecs per token, bit for bit) and counts against the
    // truth: row i of g, or row gRows[i] when given.
    static void Accumulate(ref Counts counts, LowRankPredictor p, float* x, int[] rows, float* g, int[]? gRows, float t)
    {
        const int Chunk = 256;
        int hidden = p.Hidden, rank = p.Rank;
        int size = Math.Min(Chunk, Math.Max(1, rows.Length));
        var z = GC.AllocateUninitializedArray<float>(size * rank, pinned: true);
        var scores = GC.AllocateUninitializedArray<float>(size * hidden, pinned: true);
        fixed (float* zp = z, sp = scores, ap = p.A, bp = p.B, th = p.Thresholds)
            for (int c0 = 0; c0 < rows.Length; c0 += Chunk)
            {
                int len = Math.Min(Chunk, rows.Length - c0);
                int[] chunk = rows.AsSpan(c0, len).ToArray();
                DenseMath.MulNT(zp, x, chunk, bp, len, rank, p.Dim);
                DenseMath.MulNT(sp, zp, null, ap, len, hidden, rank);
                for (int i = 0; i < len; i++)
                {
                    float* truth = g + (long)(gRows is null ? i : gRows[c0 + i]) * hidden;
                    float* score = sp + (long)i * hidden;
                    for (int j = 0; j < hidden; j++)
                    {
                        bool active = truth[j] > t, predicted = score[j] > th[j];
                        if (active && predicted) counts.TruePositive++;
                        else if (predicted) counts.FalsePositive++;
                        else if (active) counts.FalseNegative++;
                    }
                }
            }
    }
}
