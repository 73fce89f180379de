using System.Numerics;
using AotFlash.Kernels;

namespace AotFlash.Sparsity;

/// <summary>
/// The few dense linear-algebra steps predictor training needs, on row-major float matrices, built on
/// <see cref="VectorOps"/> and run on all cores. Results do not depend on the thread count: every output element is
/// written by one work item, whose arithmetic order is fixed.
/// </summary>
internal static unsafe class DenseMath
{
    /// <summary>
    /// c[m, n] = a[m, k] · b[n, k]ᵀ, where row i of a is a[aRows[i]] when <paramref name="aRows"/> is given.
    /// Each row of c is <see cref="VectorOps.MatVec"/> of b with one row of a, in tiles of b's rows that start at
    /// multiples of 4, so every element is bit-identical to one MatVec over all of b (what the runtime computes).
    /// A tile of b's rows stays in L2 while a block of a's rows streams past it.
    /// </summary>
    public static void MulNT(float* c, float* a, int[]? aRows, float* b, int m, int n, int k)
    {
        if (m == 0 || n == 0) return;
        int tileN = Math.Clamp((1 << 16) / Math.Max(k, 1) & ~3, 4, 1024);
        const int TileM = 64;
        int tilesM = (m + TileM - 1) / TileM, tilesN = (n + tileN - 1) / tileN;
        // Work items run m-major, so the rows of a one worker touches stay in cache across consecutive column tiles.
        Parallel.For(0, (long)tilesM * tilesN, item =>
        {
            int i0 = (int)(item / tilesN) * TileM, j0 = (int)(item % tilesN) * tileN;
            int i1 = Math.Min(m, i0 + TileM), jn = Math.Min(tileN, n - j0);
            for (int i = i0; i < i1; i++)
            {
                long row = aRows is null ? i : aRows[i];
                VectorOps.MatVec(c + (long)i * n + j0, b + (long)j0 * k, k, a + row * k, jn, k);
            }
        });
    }

    /// <summary>
    /// c[m, n] = Σ_t a[ta]ᵀ b[tb] for t = 0..count-1 (a[·, m], b[·, n]), where ta = aRows[t] and tb = bRows[t] when
    /// those lists are given, else t: aᵀb over selected rows. Chunks of rows are transposed and handed to <see cref="MulNT"/>.
    /// </summary>
    public static void MulTN(float* c, float* a, int[]? aRows, float* b, int[]? bRows, int m, int n, int count)
    {
        new Span<float>(c, checked(m * n)).Clear();
        if (m == 0 || n == 0 || count == 0) return;
        int chunk = Math.Min(count, 512);
        var at = GC.AllocateUninitializedArray<float>(checked(m * chunk), pinned: true);
        var bt = GC.AllocateUninitializedArray<float>(checked(n * chunk), pinned: true);
        var part = GC.AllocateUninitializedArray<float>(m * n, pinned: true);
        fixed (float* atp = at, btp = bt, pp = part)
        {
            for (int t0 = 0; t0 < count; t0 += chunk)
            {
                int len = Math.Min(chunk, count - t0);
                float* atq = atp, btq = btp; // lambdas cannot capture fixed locals
                Parallel.Invoke(
                    () => GatherTransposed(atq, a, m, aRows, t0, len),
                    () => GatherTransposed(btq, b, n, bRows, t0, len));
                MulNT(pp, atp, null, btp, m, n, len);
                VectorOps.Add(c, pp, m * n);
            }
        }
    }

    // dst[cols, len] = rows t0..t0+len of src[·, cols] (through the row list when given), transposed.
    static void GatherTransposed(float* dst, float* src, int cols, int[]? rows, int t0, int len)
    {
        const int T = 32;
        for (int i0 = 0; i0 < len; i0 += T)
        {
            int i1 = Math.Min(len, i0 + T);
            for (int j0 = 0; j0 < cols; j0 += T)
            {
                int j1 = Math.Min(cols, j0 + T);
                for (int i = i0; i < i1; i++)
                {
                    float* s = src + (long)(rows is null ? t0 + i : rows[t0 + i]) * cols;
                    for (int j = j0; j < j1; j++) dst[(long)j * len + i] = s[j];
                }
            }
        }
    }

    /// <summary>dst[cols, rows] = src[rows, cols]ᵀ.</summary>
    public static void Transpose(float* dst, float* src, int rows, int cols)
    {
        const int T = 32;
        for (int i0 = 0; i0 < rows; i0 += T)
            for (int j0 = 0; j0 < cols; j0 += T)
                for (int i = i0; i < Math.Min(rows, i0 + T); i++)
                    for (int j = j0; j < Math.Min(cols, j0 + T); j++)
                        dst[(long)j * rows + i] = src[(long)i * cols + j];
    }

    /// <summary>
    /// Makes the rows of q[rows, cols] orthonormal (modified Gram–Schmidt, applied twice, which is enough in float).
    /// A row that collapses (linearly dependent on the ones before it) is replaced by a fresh random vector.
    /// </summary>
    public static void OrthonormalizeRows(float* q, int rows, int cols, Random rng)
    {
        for (int j = 0; j < rows; j++)
        {
            float* qj = q + (long)j * cols;
            float before = MathF.Sqrt(VectorOps.Dot(qj, qj, cols));
            for (int attempt = 0; ; attempt++)
            {
                for (int pass = 0; pass < 2; pass++)
                    for (int i = 0; i < j; i++)
                    {
                        float* qi = q + (long)i * cols;
                        VectorOps.Axpy(qj, -VectorOps.Dot(qi, qj, cols), qi, cols);
                    }
                float norm = MathF.Sqrt(VectorOps.Dot(qj, qj, cols));
                if (norm > 1e-5f * before && norm > 0f && float.IsFinite(norm))
                {
                    float inv = 1f / norm;
                    for (int t = 0; t < cols; t++) qj[t] *= inv;
                    break;
                }
                if (attempt == 8) throw new InvalidOperationException("orthonormalization failed: more rows than independent directions");
                for (int t = 0; t < cols; t++) qj[t] = Gaussian(rng);
                before = MathF.Sqrt(VectorOps.Dot(qj, qj, cols));
            }
        }
    }

    /// <summary>
    /// Eigen-decomposition of the symmetric a[n, n] by cyclic Jacobi rotations: returns the eigenvalues in
    /// descending order and the matching eigenvectors as the rows of vectors[n, n].
    /// </summary>
    public static double[] SymmetricEigen(double[] a, int n, out double[] vectors)
    {
        var m = (double[])a.Clone();
        var v = new double[n * n];
        for (int i = 0; i < n; i++) v[i * n + i] = 1;
        for (int sweep = 0; sweep < 100; sweep++)
        {
            double off = 0, diag = 0;
            for (int i = 0; i < n; i++)
            {
                diag += m[i * n + i] * m[i * n + i];
                for (int j = i + 1; j < n; j++) off += m[i * n + j] * m[i * n + j];
            }
            if (off <= 1e-30 * diag || off == 0) break;
            for (int p = 0; p < n; p++)
                for (int q = p + 1; q < n; q++)
                {
                    double apq = m[p * n + q];
                    if (apq == 0) continue;
                    double theta = (m[q * n + q] - m[p * n + p]) / (2 * apq);
                    double t = Math.Sign(theta) / (Math.Abs(theta) + Math.Sqrt(theta * theta + 1));
                    if (theta == 0) t = 1;
                    double cos = 1 / Math.Sqrt(t * t + 1), sin = t * cos;
                    for (int k = 0; k < n; k++)
                    {
                        double mkp = m[k * n + p], mkq = m[k * n + q];
                        m[k * n + p] = cos * mkp - sin * mkq;
                        m[k * n + q] = sin * mkp + cos * mkq;
                    }
                    for (int k = 0; k < n; k++)
                    {
                        double mpk = m[p * n + k], mqk = m[q * n + k];
                        m[p * n + k] = cos * mpk - sin * mqk;
                        m[q * n + k] = sin * mpk + cos * mqk;
                    }
                    for (int k = 0; k < n; k++)
                    {
                        double vpk = v[p * n + k], vqk = v[q * n + k];
                        v[p * n + k] = cos * vpk - sin * vqk;
                        v[q * n + k] = sin * vpk + cos * vqk;
                    }
                }
        }
        var order = Enumerable.Range(0, n).OrderByDescending(i => m[i * n + i]).ThenBy(i => i).ToArray();
        var values = new double[n];
        vectors = new double[n * n];
        for (int r = 0; r < n; r++)
        {
            values[r] = m[order[r] * n + order[r]];
            Array.Copy(v, order[r] * n, vectors, r * n, n);
        }
        return values;
    }

    /// <summary>
    /// Solves a[n, n] · x = b for a symmetric positive definite a, by Cholesky in double, reading only a's lower
    /// triangle; b is overwritten with x and a with the factor L (lower triangle). Returns false when a is not
    /// positive definite.
    /// </summary>
    public static bool CholeskySolve(double* a, int n, double* b)
    {
        for (int j = 0; j < n; j++)
        {
            double* lj = a + (long)j * n;
            double d = lj[j] - Dot(lj, lj, j);
            if (!(d > 0)) return false;
            d = Math.Sqrt(d);
            lj[j] = d;
            double inv = 1 / d;
            for (int i = j + 1; i < n; i++)
            {
                double* li = a + (long)i * n;
                li[j] = (li[j] - Dot(li, lj, j)) * inv;
            }
        }
        for (int i = 0; i < n; i++)
        {
            double* li = a + (long)i * n;
            b[i] = (b[i] - Dot(li, b, i)) / li[i];
        }
        for (int i = n - 1; i >= 0; i--)
        {
            double sum = b[i];
            for (int k = i + 1; k < n; k++) sum -= a[(long)k * n + i] * b[k];
            b[i] = sum / a[(long)i * n + i];
        }
        return true;
    }

    /// <summary>a[n] · b[n] in double.</summary>
    public static double Dot(double* a, double* b, int n)
    {
        int c = Vector<double>.Count, i = 0;
        Vector<double> acc0 = Vector<double>.Zero, acc1 = Vector<double>.Zero;
        for (; i <= n - 2 * c; i += 2 * c)
        {
            acc0 += Vector.Load(a + i) * Vector.Load(b + i);
            acc1 += Vector.Load(a + i + c) * Vector.Load(b + i + c);
        }
        for (; i <= n - c; i += c) acc0 += Vector.Load(a + i) * Vector.Load(b + i);
        double sum = Vector.Sum(acc0 + acc1);
        for (; i < n; i++) sum += a[i] * b[i];
        return sum;
    }

    /// <summary>
    /// The top <paramref name="r"/> right singular vectors of Gc = G[rows] − 1·meanᵀ (G is [·, cols]; the rows listed,
    /// each less the column means when <paramref name="mean"/> is given), as the rows of the returned [r, cols] array,
    /// largest singular value first. Randomized subspace iteration: a Gaussian start of r + oversample rows,
    /// <paramref name="powerIterations"/> rounds of q ← orth((Gc qᵀ)ᵀ Gc) (GcᵀGc is never formed, and Gc is never
    /// materialised: the mean enters as a rank-one correction), then Rayleigh–Ritz on the small projected problem.
    /// </summary>
    public static float[] TopRightSingularVectors(float* g, int[] rows, int cols, float[]? mean, int r, int oversample,
        int powerIterations, Random rng)
    {
        int n = rows.Length;
        int k = Math.Min(cols, r + oversample);
        r = Math.Min(r, k);
        var q = GC.AllocateUninitializedArray<float>(k * cols, pinned: true);
        var p = GC.AllocateUninitializedArray<float>(checked(n * k), pinned: true);
        var z = GC.AllocateUninitializedArray<float>(cols * k, pinned: true);
        var small = GC.AllocateUninitializedArray<float>(k * k, pinned: true);
        var shift = new float[k];
        fixed (float* qp = q, pp = p, zp = z, sp = small, mp = mean)
        {
            for (int i = 0; i < q.Length; i++) q[i] = Gaussian(rng);
            OrthonormalizeRows(qp, k, cols, rng);
            for (int it = 0; it <= powerIterations; it++)
            {
                MulNT(pp, g, rows, qp, n, k, cols);             // p = G[rows] qᵀ
                if (mp != null)
                {
                    for (int j = 0; j < k; j++) shift[j] = VectorOps.Dot(qp + (long)j * cols, mp, cols);
                    fixed (float* shp = shift)
                        for (int i = 0; i < n; i++) VectorOps.Axpy(pp + (long)i * k, -1f, shp, k); // p = Gc qᵀ
                }
                if (it == powerIterations) break;
                MulTN(zp, g, rows, pp, null, cols, k, n);        // z = G[rows]ᵀ p
                if (mp != null)
                {
                    // Gcᵀ p = G[rows]ᵀ p − mean (1ᵀ p); 1ᵀ p is zero in exact arithmetic, so this only removes rounding.
                    Array.Clear(shift);
                    fixed (float* shp = shift)
                    {
                        for (int i = 0; i < n; i++) VectorOps.Add(shp, pp + (long)i * k, k);
                        for (int h = 0; h < cols; h++) VectorOps.Axpy(zp + (long)h * k, -mp[h], shp, k);
                    }
                }
                Transpose(qp, zp, cols, k);
                OrthonormalizeRows(qp, k, cols, rng);
            }
            MulTN(sp, pp, null, pp, null, k, k, n);              // q Gcᵀ Gc qᵀ
            var m = new double[k * k];
            for (int i = 0; i < k; i++)
                for (int j = 0; j < k; j++) m[i * k + j] = 0.5 * ((double)small[i * k + j] + small[j * k + i]);
            SymmetricEigen(m, k, out double[] e);
            var v = new float[r * cols];
            fixed (float* vp = v)
            {
                for (int j = 0; j < r; j++)
                    for (int i = 0; i < k; i++) VectorOps.Axpy(vp + (long)j * cols, (float)e[j * k + i], qp + (long)i * cols, cols);
                OrthonormalizeRows(vp, r, cols, rng);
            }
            return v;
        }
    }

    /// <summary>A standard normal sample (Box–Muller), from a seeded generator so training is reproducible.</summary>
    public static float Gaussian(Random rng)
    {
        double u1 = 1.0 - rng.NextDouble(), u2 = rng.NextDouble();
        return (float)(Math.Sqrt(-2.0 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2));
    }
}
