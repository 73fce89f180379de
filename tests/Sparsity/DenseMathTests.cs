using AotFlash.Kernels;
using AotFlash.Sparsity;

namespace AotFlash.Tests.Sparsity;

/// <summary>The linear-algebra steps of predictor training (<see cref="DenseMath"/>) against plain definitions.</summary>
public unsafe class DenseMathTests
{
    static float[] Random(Random rng, int n)
    {
        var a = new float[n];
        for (int i = 0; i < n; i++) a[i] = (float)(rng.NextDouble() * 2 - 1);
        return a;
    }

    // c[i, j] = a[rows[i]] · b[j] against a double-precision triple loop. Odd sizes reach the kernels' remainder paths;
    // float sums in any order stay within k·2⁻²⁴·Σ|a·b| of the exact value (the reference is exact enough).
    [Theory]
    [InlineData(70, 1031, 67)] // two tiles of b's rows (976 rows each at k = 67), two of a's (64 rows each)
    [InlineData(3, 5, 7)]      // shorter than one vector
    [InlineData(1, 13, 33)]
    public void MulNT_MatchesADoublePrecisionTripleLoop(int m, int n, int k)
    {
        var rng = new Random(1);
        float[] a = Random(rng, 200 * k), b = Random(rng, n * k);
        int[] rows = Enumerable.Range(0, m).Select(i => (i * 37) % 200).ToArray();
        var c = new float[m * n];
        fixed (float* ap = a, bp = b, cp = c) DenseMath.MulNT(cp, ap, rows, bp, m, n, k);
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
            {
                double sum = 0, magnitude = 0;
                for (int t = 0; t < k; t++)
                {
                    double p = (double)a[rows[i] * k + t] * b[j * k + t];
                    sum += p;
                    magnitude += Math.Abs(p);
                }
                double error = Math.Abs(c[i * n + j] - sum), bound = k * Math.ScaleB(1.0, -24) * magnitude;
                Assert.True(error <= bound, $"c[{i}, {j}] = {c[i * n + j]}, exact {sum}: error {error:E2} over {bound:E2}");
            }
    }

    // The tiling (tiles of b's rows starting at multiples of 4) leaves every element bit-identical to one MatVec over
    // all of b, so the gate pre-activations calibration trains on are those the runtime computes.
    [Fact]
    public void MulNT_TilesGiveTheBitsOfOneMatVecOverAllOfB()
    {
        var rng = new Random(1);
        const int M = 70, N = 1031, K = 67;
        float[] a = Random(rng, 200 * K), b = Random(rng, N * K);
        int[] rows = Enumerable.Range(0, M).Select(i => (i * 37) % 200).ToArray();
        var c = new float[M * N];
        var want = new float[N];
        fixed (float* ap = a, bp = b, cp = c, wp = want)
        {
            DenseMath.MulNT(cp, ap, rows, bp, M, N, K);
            for (int i = 0; i < M; i++)
            {
                VectorOps.MatVec(wp, bp, K, ap + rows[i] * K, N, K);
                Assert.True(want.AsSpan().SequenceEqual(c.AsSpan(i * N, N)), $"row {i} differs from one MatVec over all of b");
            }
        }
    }

    [Fact]
    public void MulTN_SumsOuterProductsOfSelectedRows()
    {
        var rng = new Random(2);
        const int M = 13, N = 9, Count = 1100, Rows = 1500; // more rows than one 512-row chunk
        float[] a = Random(rng, Rows * M), b = Random(rng, Rows * N);
        int[] aRows = Enumerable.Range(0, Count).Select(t => (t * 7) % Rows).ToArray();
        int[] bRows = Enumerable.Range(0, Count).Select(t => (t * 11 + 3) % Rows).ToArray();
        var c = new float[M * N];
        fixed (float* ap = a, bp = b, cp = c) DenseMath.MulTN(cp, ap, aRows, bp, bRows, M, N, Count);
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++)
            {
                double sum = 0;
                for (int t = 0; t < Count; t++) sum += (double)a[aRows[t] * M + i] * b[bRows[t] * N + j];
                Assert.Equal(sum, c[i * N + j], 3);
            }
    }

    [Fact]
    public void SymmetricEigen_DecomposesAndSortsDescending()
    {
        var rng = new Random(3);
        const int N = 24;
        var a = new double[N * N];
        for (int i = 0; i < N; i++)
            for (int j = 0; j <= i; j++) a[i * N + j] = a[j * N + i] = rng.NextDouble() * 2 - 1;
        double[] values = DenseMath.SymmetricEigen(a, N, out double[] vectors);
        for (int r = 0; r < N; r++)
        {
            if (r > 0) Assert.True(values[r] <= values[r - 1]);
            for (int i = 0; i < N; i++)
            {
                double av = 0;
                for (int j = 0; j < N; j++) av += a[i * N + j] * vectors[r * N + j];
                Assert.Equal(values[r] * vectors[r * N + i], av, 9);
            }
            for (int s = 0; s < N; s++)
            {
                double dot = 0;
                for (int i = 0; i < N; i++) dot += vectors[r * N + i] * vectors[s * N + i];
                Assert.Equal(r == s ? 1 : 0, dot, 9);
            }
        }
    }

    [Fact]
    public void CholeskySolve_SolvesPositiveDefiniteAndRefusesIndefinite()
    {
        var rng = new Random(4);
        const int N = 31;
        var f = new double[N * N];
        for (int i = 0; i < f.Length; i++) f[i] = rng.NextDouble() - 0.5;
        var a = new double[N * N];
        for (int i = 0; i < N; i++)
            for (int j = 0; j < N; j++)
            {
                for (int k = 0; k < N; k++) a[i * N + j] += f[i * N + k] * f[j * N + k];
                if (i == j) a[i * N + j] += 0.1;
            }
        var x = Enumerable.Range(0, N).Select(i => rng.NextDouble()).ToArray();
        var b = new double[N];
        for (int i = 0; i < N; i++)
            for (int j = 0; j < N; j++) b[i] += a[i * N + j] * x[j];
        var factor = (double[])a.Clone();
        fixed (double* fp = factor, bp = b) Assert.True(DenseMath.CholeskySolve(fp, N, bp));
        for (int i = 0; i < N; i++) Assert.Equal(x[i], b[i], 8);

        var indefinite = new double[] { 1, 2, 2, 1 };
        var rhs = new double[] { 1, 1 };
        fixed (double* ip = indefinite, rp = rhs) Assert.False(DenseMath.CholeskySolve(ip, 2, rp));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void TopRightSingularVectors_FindThePlantedSubspace(bool centred)
    {
        // G = U·diag(s)·Vᵀ (+ a constant row offset when centred), with orthonormal U (orthogonal to the all-ones
        // column, so the centred G is exactly U·diag(s)·Vᵀ) and V: its top right singular vectors are V's rows.
        var rng = new Random(5);
        const int Rows = 400, Cols = 90, Planted = 6;
        float[] s = [10, 8, 6, 4, 3, 2];
        var v = Random(rng, Planted * Cols);
        fixed (float* vp = v) DenseMath.OrthonormalizeRows(vp, Planted, Cols, rng);
        var ut = Random(rng, (Planted + 1) * Rows); // ut[0] = ones, then U's columns
        ut.AsSpan(0, Rows).Fill(1f);
        fixed (float* up = ut) DenseMath.OrthonormalizeRows(up, Planted + 1, Rows, rng);
        var offset = Random(rng, Cols);
        var g = new float[Rows * Cols];
        for (int t = 0; t < Rows; t++)
        {
            for (int j = 0; j < Cols; j++) g[t * Cols + j] = 1e-4f * (float)(rng.NextDouble() - 0.5) + (centred ? 0.5f * offset[j] : 0);
            for (int p = 0; p < Planted; p++)
            {
                float u = ut[(p + 1) * Rows + t] * s[p];
                for (int j = 0; j < Cols; j++) g[t * Cols + j] += u * v[p * Cols + j];
            }
        }
        float[]? mean = null;
        if (centred)
        {
            mean = new float[Cols];
            for (int t = 0; t < Rows; t++)
                for (int j = 0; j < Cols; j++) mean[j] += g[t * Cols + j] / Rows;
        }
        int[] rows = Enumerable.Range(0, Rows).ToArray();
        float[] found;
        fixed (float* gp = g) found = DenseMath.TopRightSingularVectors(gp, rows, Cols, mean, Planted, 10, 3, new Random(6));
        // Every planted direction lies in the span of the found ones, and each is found in its place.
        for (int p = 0; p < Planted; p++)
        {
            double inSpan = 0;
            for (int r = 0; r < Planted; r++)
            {
                double dot = 0;
                for (int j = 0; j < Cols; j++) dot += (double)found[r * Cols + j] * v[p * Cols + j];
                inSpan += dot * dot;
                if (r == p) Assert.True(Math.Abs(dot) > 0.999, $"direction {p}: |cos| = {Math.Abs(dot):F5}");
            }
            Assert.True(inSpan > 0.999, $"planted direction {p}: {inSpan:F5} of it in the found subspace");
        }
    }
}
