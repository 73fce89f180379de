using System.Runtime.CompilerServices;

namespace AotFlash.Kernels;

/// <summary>
/// Every kernel body, written once over the vector width: S supplies Count lanes of float (TF) and int (TI).
/// Main loops take whole vectors; the last n mod Count elements go through a scalar tail.
/// </summary>
[SkipLocalsInit] // every stackalloc here is scratch written before it is read
internal static unsafe class SimdKernels<TF, TI, S>
    where TF : struct
    where TI : struct
    where S : struct, ISimd<TF, TI>
{
    // a[n] · b[n]
    public static float Dot(float* a, float* b, int n)
    {
        int c = S.Count, i = 0;
        // Four independent accumulators, so consecutive FMAs don't wait on each other's latency.
        TF acc0 = S.Zero, acc1 = S.Zero, acc2 = S.Zero, acc3 = S.Zero;
        for (; i <= n - 4 * c; i += 4 * c)
        {
            acc0 = S.MulAdd(S.Load(a + i), S.Load(b + i), acc0);
            acc1 = S.MulAdd(S.Load(a + i + c), S.Load(b + i + c), acc1);
            acc2 = S.MulAdd(S.Load(a + i + 2 * c), S.Load(b + i + 2 * c), acc2);
            acc3 = S.MulAdd(S.Load(a + i + 3 * c), S.Load(b + i + 3 * c), acc3);
        }
        for (; i <= n - c; i += c) acc0 = S.MulAdd(S.Load(a + i), S.Load(b + i), acc0);
        float sum = S.Sum(S.Add(S.Add(acc0, acc1), S.Add(acc2, acc3)));
        for (; i < n; i++) sum += a[i] * b[i];
        return sum;
    }

    // w[n] (half) · x[n]
    public static float DotF16(Half* w, float* x, int n) => DotHalves<HalfRows>(w, x, n);

    // w[n] (half, finite) · x[n] with xs = x · 2^112 (ScaledHalves): DotF16's sum bit for bit
    public static float DotF16Scaled(Half* w, float* xs, int n) => DotHalves<ScaledHalfRows>(w, xs, n);

    private static float DotHalves<R>(Half* w, float* x, int n) where R : struct, IFloatRows
    {
        int c = S.Count, i = 0, ahead = R.StreamAhead(n);
        TF acc0 = S.Zero, acc1 = S.Zero, acc2 = S.Zero, acc3 = S.Zero;
        // One load of 2·Count halves widens into two float vectors; four chains keep the FMA units busy while the
        // row streams in.
        for (; i <= n - 4 * c; i += 4 * c)
        {
            Prefetch.Stream((byte*)(w + i), ahead, 4 * c * sizeof(Half));
            var (lower, upper) = R.Values(w, i);
            acc0 = S.MulAdd(lower, S.Load(x + i), acc0);
            acc1 = S.MulAdd(upper, S.Load(x + i + c), acc1);
            (lower, upper) = R.Values(w, i + 2 * c);
            acc2 = S.MulAdd(lower, S.Load(x + i + 2 * c), acc2);
            acc3 = S.MulAdd(upper, S.Load(x + i + 3 * c), acc3);
        }
        for (; i <= n - 2 * c; i += 2 * c)
        {
            var (lower, upper) = R.Values(w, i);
            acc0 = S.MulAdd(lower, S.Load(x + i), acc0);
            acc1 = S.MulAdd(upper, S.Load(x + i + c), acc1);
        }
        float sum = S.Sum(S.Add(S.Add(acc0, acc1), S.Add(acc2, acc3)));
        for (; i < n; i++) sum += R.Value(w, i) * x[i];
        return sum;
    }

    // y[n] += a · x[n], each element a · x + y rounded once, as the reference (MathF.FusedMultiplyAdd) rounds it.
    public static void Axpy(float* y, float a, float* x, int n)
    {
        int c = S.Count, i = 0;
        TF av = S.Splat(a);
        for (; i <= n - c; i += c) S.Store(y + i, S.FusedMulAdd(av, S.Load(x + i), S.Load(y + i)));
        for (; i < n; i++) y[i] = MathF.FusedMultiplyAdd(a, x[i], y[i]);
    }

    // y[n] += a[0] · x[0][n] + a[1] · x[1][n] + … + a[count-1] · x[count-1][n], each product added in turn as Axpy adds it,
    // so the result is count Axpys' bit for bit; four rows per pass load and store y once for four products.
    public static void AxpyRows(float* y, float* a, float** x, int count, int n) => AxpyRows<SingleRows>(y, a, (void**)x, count, n);

    // y[n] += a · x[n] (x half); fused, as Axpy
    public static void AxpyF16(float* y, float a, Half* x, int n) => AxpyRows<HalfRows>(y, &a, (void**)&x, 1, n);

    // y[n] += Σ_k a[k] · x[k][n], x half rows; as AxpyRows: count AxpyF16s bit for bit
    public static void AxpyRowsF16(float* y, float* a, Half** x, int count, int n) => AxpyRows<HalfRows>(y, a, (void**)x, count, n);

    // y[n] += Σ_k a[k] · x[k][n], x half rows (finite), as = a · 2^112 (ScaledHalves): AxpyRowsF16 bit for bit
    public static void AxpyRowsF16Scaled(float* y, float* scaled, Half** x, int count, int n) => AxpyRows<ScaledHalfRows>(y, scaled, (void**)x, count, n);

    /// <summary>A row of floats or halves as floats: elements i .. i+2·Count-1 as two vectors, or element i alone.</summary>
    private interface IFloatRows
    {
        static abstract int ElementBytes { get; }
        /// <summary>How far ahead a loop over a row of <paramref name="n"/> elements asks for its lines (Prefetch.Stream).</summary>
        static abstract int StreamAhead(int n);
        static abstract (TF Low, TF High) Values(void* row, int i);
        static abstract float Value(void* row, int i);
    }

    private readonly struct SingleRows : IFloatRows
    {
        public static int ElementBytes => sizeof(float);
        public static int StreamAhead(int n) => Prefetch.SingleStreamAhead;
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static (TF Low, TF High) Values(void* row, int i) => (S.Load((float*)row + i), S.Load((float*)row + i + S.Count));
        public static float Value(void* row, int i) => ((float*)row)[i];
    }

    private readonly struct HalfRows : IFloatRows
    {
        public static int ElementBytes => sizeof(ushort);
        public static int StreamAhead(int n) => Prefetch.HalfStreamAhead((long)n * sizeof(ushort));
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static (TF Low, TF High) Values(void* row, int i) => S.LoadHalves((Half*)row + i);
        public static float Value(void* row, int i) => HalfBits.ToSingle(((Half*)row)[i]);
    }

    /// <summary>Half rows as <see cref="HalfBits.Scaled(Half)"/> values, w · 2^-112, for products whose other operand is
    /// scaled by 2^112 (<see cref="ScaledHalves"/>).</summary>
    private readonly struct ScaledHalfRows : IFloatRows
    {
        public static int ElementBytes => sizeof(ushort);
        public static int StreamAhead(int n) => Prefetch.HalfStreamAhead((long)n * sizeof(ushort));
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static (TF Low, TF High) Values(void* row, int i) => S.LoadScaledHalves((Half*)row + i);
        public static float Value(void* row, int i) => HalfBits.Scaled(((Half*)row)[i]);
    }

    // y[n] += Σ_k a[k] · x[k][n], each element a · x + y rounded once, the rows added in turn. Four rows per
    // pass, the next four fetched meanwhile (a down projection adds hundreds of neuron rows into one y).
    private static void AxpyRows<R>(float* y, float* a, void** x, int count, int n) where R : struct, IFloatRows
    {
        int c = S.Count, k = 0;
        long bytes = (long)n * R.ElementBytes;
        for (; k <= count - 4; k += 4)
        {
            for (int next = k + 4; next < Math.Min(k + 8, count); next++) Prefetch.Rows((byte*)x[next], 0, 1, bytes);
            void* x0 = x[k], x1 = x[k + 1], x2 = x[k + 2], x3 = x[k + 3];
            float a0 = a[k], a1 = a[k + 1], a2 = a[k + 2], a3 = a[k + 3];
            TF s0 = S.Splat(a0), s1 = S.Splat(a1), s2 = S.Splat(a2), s3 = S.Splat(a3);
            int i = 0;
            for (; i <= n - 2 * c; i += 2 * c)
            {
                TF low = S.Load(y + i), high = S.Load(y + i + c);
                var (l, h) = R.Values(x0, i);
                low = S.FusedMulAdd(s0, l, low);
                high = S.FusedMulAdd(s0, h, high);
                (l, h) = R.Values(x1, i);
                low = S.FusedMulAdd(s1, l, low);
                high = S.FusedMulAdd(s1, h, high);
                (l, h) = R.Values(x2, i);
                low = S.FusedMulAdd(s2, l, low);
                high = S.FusedMulAdd(s2, h, high);
                (l, h) = R.Values(x3, i);
                S.Store(y + i, S.FusedMulAdd(s3, l, low));
                S.Store(y + i + c, S.FusedMulAdd(s3, h, high));
            }
            for (; i < n; i++)
            {
                float v = MathF.FusedMultiplyAdd(a0, R.Value(x0, i), y[i]);
                v = MathF.FusedMultiplyAdd(a1, R.Value(x1, i), v);
                v = MathF.FusedMultiplyAdd(a2, R.Value(x2, i), v);
                y[i] = MathF.FusedMultiplyAdd(a3, R.Value(x3, i), v);
            }
        }
        for (; k < count; k++)
        {
            void* x0 = x[k];
            float a0 = a[k];
            TF s0 = S.Splat(a0);
            int i = 0, ahead = R.StreamAhead(n);
            for (; i <= n - 2 * c; i += 2 * c)
            {
                Prefetch.Stream((byte*)x0 + (long)i * R.ElementBytes, ahead, 2 * c * R.ElementBytes);
                var (l, h) = R.Values(x0, i);
                S.Store(y + i, S.FusedMulAdd(s0, l, S.Load(y + i)));
                S.Store(y + i + c, S.FusedMulAdd(s0, h, S.Load(y + i + c)));
            }
            for (; i < n; i++) y[i] = MathF.FusedMultiplyAdd(a0, R.Value(x0, i), y[i]);
        }
    }

    // Y[t, n] += Σ_k a[t·aStride + k] · x[k][n] for each of the tokens rows t: AxpyRows per token, bit for bit (each
    // element a chain of fused multiply-adds over k in order). The rows are taken a slice of 2 vectors at a time, which
    // every tile of six tokens then adds (the slices of all the rows stay in L1 meanwhile); the six tokens share each
    // load of a slice, their 6 × 2 vectors of y held in registers across all the rows: twelve chains, so that two FMAs a
    // cycle never wait on one another's latency (four tokens' eight chains left none to spare: 64 rows of 768 into 126
    // tokens, AMD EPYC, 70 → 75 GFLOP/s). Tokens past the last tile go through AxpyRows.
    public static void AxpyRowsBlock(float* y, long yStride, float* a, long aStride, float** x, int count, int tokens, int n)
    {
        int c = S.Count, i = 0, tiled = tokens - tokens % 6;
        for (; i <= n - 2 * c; i += 2 * c)
            for (int t = 0; t < tiled; t += 6)
            {
                float* y0 = y + t * yStride + i, y1 = y0 + yStride, y2 = y1 + yStride, y3 = y2 + yStride, y4 = y3 + yStride, y5 = y4 + yStride;
                float* a0 = a + t * aStride, a1 = a0 + aStride, a2 = a1 + aStride, a3 = a2 + aStride, a4 = a3 + aStride, a5 = a4 + aStride;
                TF l0 = S.Load(y0), h0 = S.Load(y0 + c), l1 = S.Load(y1), h1 = S.Load(y1 + c), l2 = S.Load(y2), h2 = S.Load(y2 + c);
                TF l3 = S.Load(y3), h3 = S.Load(y3 + c), l4 = S.Load(y4), h4 = S.Load(y4 + c), l5 = S.Load(y5), h5 = S.Load(y5 + c);
                for (int k = 0; k < count; k++)
                {
                    TF l = S.Load(x[k] + i), h = S.Load(x[k] + i + c);
                    TF s = S.Splat(a0[k]);
                    l0 = S.FusedMulAdd(s, l, l0);
                    h0 = S.FusedMulAdd(s, h, h0);
                    s = S.Splat(a1[k]);
                    l1 = S.FusedMulAdd(s, l, l1);
                    h1 = S.FusedMulAdd(s, h, h1);
                    s = S.Splat(a2[k]);
                    l2 = S.FusedMulAdd(s, l, l2);
                    h2 = S.FusedMulAdd(s, h, h2);
                    s = S.Splat(a3[k]);
                    l3 = S.FusedMulAdd(s, l, l3);
                    h3 = S.FusedMulAdd(s, h, h3);
                    s = S.Splat(a4[k]);
                    l4 = S.FusedMulAdd(s, l, l4);
                    h4 = S.FusedMulAdd(s, h, h4);
                    s = S.Splat(a5[k]);
                    l5 = S.FusedMulAdd(s, l, l5);
                    h5 = S.FusedMulAdd(s, h, h5);
                }
                S.Store(y0, l0);
                S.Store(y0 + c, h0);
                S.Store(y1, l1);
                S.Store(y1 + c, h1);
                S.Store(y2, l2);
                S.Store(y2 + c, h2);
                S.Store(y3, l3);
                S.Store(y3 + c, h3);
                S.Store(y4, l4);
                S.Store(y4 + c, h4);
                S.Store(y5, l5);
                S.Store(y5 + c, h5);
            }
        for (int t = 0; t < tiled; t++)
        {
            float* yt = y + t * yStride, at = a + t * aStride;
            for (int j = i; j < n; j++)
            {
                float v = yt[j];
                for (int k = 0; k < count; k++) v = MathF.FusedMultiplyAdd(at[k], x[k][j], v);
                yt[j] = v;
            }
        }
        for (int t = tiled; t < tokens; t++) AxpyRows(y + t * yStride, a + t * aStride, x, count, n);
    }

    // y[rows] = W[rows, cols] · x[cols]; row r at w + r·rowStride. y must not overlap x.
    public static void MatVec(float* y, float* w, long rowStride, float* x, int rows, int cols) =>
        MatMul(y, 0, w, rowStride, x, 0, 1, rows, cols);

    // Y[tokens, rows] = X[tokens, cols] · W[rows, cols]ᵀ: y[t·yStride + r] = W[r, :] · x[t·xStride, :]; row r at
    // w + r·rowStride. y must not overlap x or w.
    // Four rows per pass share each load of x, and three tokens (then two) share each load of the four rows, in twelve
    // (eight) independent accumulator chains: a product over a block of tokens runs at the FMA units' speed rather than
    // memory's; one token (decode) goes a row at a time. Every
    // (row, token) is summed the same way (one chain over the whole vectors, then the scalar tail), in whichever tile,
    // so a token's results do not depend on the block it is in.
    public static void MatMul(float* y, long yStride, float* w, long rowStride, float* x, long xStride, int tokens, int rows, int cols)
    {
        // A block's x rows go through in groups that L2 holds (XGroupBytes), each group past every row: wider models'
        // blocks (a 1.1B block of 300 tokens is 2.4 MiB of x) would otherwise come from L3 for every few rows. Groups
        // are whole sixes, so that tiles of three tokens (and pairs) leave none alone: 32 rows × 2048 columns by 300
        // tokens, 67.2 → 69.9 GFLOP/s against groups of 64.
        int group = Math.Max(6, (int)(XGroupBytes / Math.Max(1L, (long)cols * sizeof(float))) / 6 * 6);
        for (int t = 0; t < tokens; t += group)
            MatMulRows(y + t * yStride, yStride, w, rowStride, x + t * xStride, xStride, Math.Min(group, tokens - t), rows, cols);
    }

    private const long XGroupBytes = 512 << 10;

    private static void MatMulRows(float* y, long yStride, float* w, long rowStride, float* x, long xStride, int tokens, int rows, int cols)
    {
        int r = 0;
        // With AVX-512's 32 registers, eight rows by two tokens (16 chains): each load of x, which a block streams from
        // L2, serves eight rows. The eight rows must stay in L1 meanwhile: longer rows than EightRowsCols go a slice of
        // columns at a time through a batch of token pairs, the pairs' chains kept in memory between slices (the same
        // multiply-adds in the same order). 110M f32 128-token prompt, 1 thread: 0.93x the time of four rows.
        if (S.Count == 16 && tokens >= 2)
        {
            int c = S.Count, end = cols - cols % c, slice = cols <= EightRowsCols ? end : EightRowsCols;
            float* chains = stackalloc float[cols <= EightRowsCols ? 0 : PairBatch * 16 * c];
            for (; r <= rows - 8; r += 8)
            {
                float* w0 = w + r * rowStride;
                int pairs = tokens / 2;
                for (int p0 = 0; p0 < pairs; p0 += PairBatch)
                {
                    // One pass over [0, end) when the rows fit L1 (also when end is 0: the scalar tail alone).
                    int from = 0;
                    do
                    {
                        int to = Math.Min(end, from + slice);
                        for (int p = p0; p < Math.Min(pairs, p0 + PairBatch); p++)
                            EightRowsTwoTokens(y + 2 * p * yStride + r, yStride, w0, rowStride, x + 2 * p * xStride, xStride, cols, from, to,
                                chains + (p - p0) * 16 * c);
                        from = to;
                    }
                    while (from < end);
                }
                for (int t = 2 * pairs; t < tokens; t++)
                {
                    FourRowsOneToken(y + t * yStride + r, w0, rowStride, x + t * xStride, cols);
                    FourRowsOneToken(y + t * yStride + r + 4, w0 + 4 * rowStride, rowStride, x + t * xStride, cols);
                }
            }
        }
        if (tokens == 1)
        {
            // One token (decode) waits on memory, which streams fastest read in order: a row at a time, the rows'
            // independent chains overlapping in the core, not four rows side by side (four streams). 110M rows from
            // memory, AMD EPYC: 22-24 GB/s against 12-13 with four rows and prefetches. Short rows one after another
            // (an attention head's cached keys) are read in order four at a time too, and their four chains overlap
            // where a row's short chain alone would leave the core waiting.
            if (rowStride == cols && cols <= ShortRow)
                for (; r <= rows - 4; r += 4) FourRowsOneToken(y + r, w + r * rowStride, rowStride, x, cols);
            for (; r < rows; r++) y[r] = OneRow(w + r * rowStride, x, cols);
            return;
        }
        for (; r <= rows - 4; r += 4)
        {
            float* w0 = w + r * rowStride;
            int t = 0;
            for (; t <= tokens - 3; t += 3) FourRowsThreeTokens(y + t * yStride + r, yStride, w0, rowStride, x + t * xStride, xStride, cols);
            for (; t <= tokens - 2; t += 2) FourRowsTwoTokens(y + t * yStride + r, yStride, w0, rowStride, x + t * xStride, xStride, cols);
            for (; t < tokens; t++) FourRowsOneToken(y + t * yStride + r, w0, rowStride, x + t * xStride, cols);
        }
        for (; r < rows; r++)
            for (int t = 0; t < tokens; t++) y[t * yStride + r] = OneRow(w + r * rowStride, x + t * xStride, cols);
    }

    // Floats of a row that counts as short: four such rows one after another fill at most a 4 KiB page.
    private const int ShortRow = 256;

    // Columns of eight rows that L1 holds at once (32 KiB), and the token pairs that go through a slice of them in turn.
    // Slices of 512 columns were slower: 8 to 40 rows 2048 wide, 64 to 512 tokens, 92-129 GFLOP/s against 96-133.
    private const int EightRowsCols = 1024;
    private const int PairBatch = 16;

    // y[0..4), y[yStride..) and y[2·yStride..) = rows w0..w3 (rowStride apart) · xa, xb and xc (xStride apart): twelve
    // chains, so that two FMAs a cycle never wait on one another's latency (eight chains of four-cycle FMAs leave none to
    // spare), in the sixteen registers of AVX2: twelve chains, three x vectors, one row vector.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void FourRowsThreeTokens(float* y, long yStride, float* w0, long rowStride, float* xa, long xStride, int cols)
    {
        int c = S.Count, j = 0;
        float* w1 = w0 + rowStride, w2 = w1 + rowStride, w3 = w2 + rowStride, xb = xa + xStride, xc = xb + xStride;
        TF a0 = S.Zero, a1 = S.Zero, a2 = S.Zero, a3 = S.Zero, b0 = S.Zero, b1 = S.Zero, b2 = S.Zero, b3 = S.Zero;
        TF c0 = S.Zero, c1 = S.Zero, c2 = S.Zero, c3 = S.Zero;
        for (; j <= cols - c; j += c)
        {
            TF xu = S.Load(xa + j), xv = S.Load(xb + j), xw = S.Load(xc + j);
            TF v = S.Load(w0 + j);
            a0 = S.MulAdd(v, xu, a0);
            b0 = S.MulAdd(v, xv, b0);
            c0 = S.MulAdd(v, xw, c0);
            v = S.Load(w1 + j);
            a1 = S.MulAdd(v, xu, a1);
            b1 = S.MulAdd(v, xv, b1);
            c1 = S.MulAdd(v, xw, c1);
            v = S.Load(w2 + j);
            a2 = S.MulAdd(v, xu, a2);
            b2 = S.MulAdd(v, xv, b2);
            c2 = S.MulAdd(v, xw, c2);
            v = S.Load(w3 + j);
            a3 = S.MulAdd(v, xu, a3);
            b3 = S.MulAdd(v, xv, b3);
            c3 = S.MulAdd(v, xw, c3);
        }
        Store4(y, a0, a1, a2, a3, w0, w1, w2, w3, xa, j, cols);
        Store4(y + yStride, b0, b1, b2, b3, w0, w1, w2, w3, xb, j, cols);
        Store4(y + 2 * yStride, c0, c1, c2, c3, w0, w1, w2, w3, xc, j, cols);
    }

    // y[0..4) and y[yStride..yStride+4) = rows w0..w3 (rowStride apart) · xa and · xb (xStride apart)
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void FourRowsTwoTokens(float* y, long yStride, float* w0, long rowStride, float* xa, long xStride, int cols)
    {
        int c = S.Count, j = 0;
        float* w1 = w0 + rowStride, w2 = w1 + rowStride, w3 = w2 + rowStride, xb = xa + xStride;
        TF a0 = S.Zero, a1 = S.Zero, a2 = S.Zero, a3 = S.Zero, b0 = S.Zero, b1 = S.Zero, b2 = S.Zero, b3 = S.Zero;
        for (; j <= cols - c; j += c)
        {
            TF v0 = S.Load(w0 + j), v1 = S.Load(w1 + j), v2 = S.Load(w2 + j), v3 = S.Load(w3 + j);
            TF xv = S.Load(xa + j);
            a0 = S.MulAdd(v0, xv, a0);
            a1 = S.MulAdd(v1, xv, a1);
            a2 = S.MulAdd(v2, xv, a2);
            a3 = S.MulAdd(v3, xv, a3);
            xv = S.Load(xb + j);
            b0 = S.MulAdd(v0, xv, b0);
            b1 = S.MulAdd(v1, xv, b1);
            b2 = S.MulAdd(v2, xv, b2);
            b3 = S.MulAdd(v3, xv, b3);
        }
        Store4(y, a0, a1, a2, a3, w0, w1, w2, w3, xa, j, cols);
        Store4(y + yStride, b0, b1, b2, b3, w0, w1, w2, w3, xb, j, cols);
    }

    // As FourRowsTwoTokens for rows w0..w7: y[0..8) and y[yStride..yStride+8), over the vector columns [from, to):
    // the 16 chains start at zero when from is 0, else from chains; they end in y (with the scalar tail) when to is the
    // last vector column, else in chains.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void EightRowsTwoTokens(float* y, long yStride, float* w0, long rowStride, float* xa, long xStride, int cols, int from, int to, float* chains)
    {
        int c = S.Count, j = from;
        float* w1 = w0 + rowStride, w2 = w1 + rowStride, w3 = w2 + rowStride, w4 = w3 + rowStride, w5 = w4 + rowStride, w6 = w5 + rowStride,
            w7 = w6 + rowStride, xb = xa + xStride;
        TF a0 = S.Zero, a1 = S.Zero, a2 = S.Zero, a3 = S.Zero, a4 = S.Zero, a5 = S.Zero, a6 = S.Zero, a7 = S.Zero;
        TF b0 = S.Zero, b1 = S.Zero, b2 = S.Zero, b3 = S.Zero, b4 = S.Zero, b5 = S.Zero, b6 = S.Zero, b7 = S.Zero;
        if (from > 0)
        {
            a0 = S.Load(chains); a1 = S.Load(chains + c); a2 = S.Load(chains + 2 * c); a3 = S.Load(chains + 3 * c);
            a4 = S.Load(chains + 4 * c); a5 = S.Load(chains + 5 * c); a6 = S.Load(chains + 6 * c); a7 = S.Load(chains + 7 * c);
            b0 = S.Load(chains + 8 * c); b1 = S.Load(chains + 9 * c); b2 = S.Load(chains + 10 * c); b3 = S.Load(chains + 11 * c);
            b4 = S.Load(chains + 12 * c); b5 = S.Load(chains + 13 * c); b6 = S.Load(chains + 14 * c); b7 = S.Load(chains + 15 * c);
        }
        for (; j < to; j += c)
        {
            TF xv = S.Load(xa + j), xw = S.Load(xb + j);
            TF v = S.Load(w0 + j);
            a0 = S.MulAdd(v, xv, a0);
            b0 = S.MulAdd(v, xw, b0);
            v = S.Load(w1 + j);
            a1 = S.MulAdd(v, xv, a1);
            b1 = S.MulAdd(v, xw, b1);
            v = S.Load(w2 + j);
            a2 = S.MulAdd(v, xv, a2);
            b2 = S.MulAdd(v, xw, b2);
            v = S.Load(w3 + j);
            a3 = S.MulAdd(v, xv, a3);
            b3 = S.MulAdd(v, xw, b3);
            v = S.Load(w4 + j);
            a4 = S.MulAdd(v, xv, a4);
            b4 = S.MulAdd(v, xw, b4);
            v = S.Load(w5 + j);
            a5 = S.MulAdd(v, xv, a5);
            b5 = S.MulAdd(v, xw, b5);
            v = S.Load(w6 + j);
            a6 = S.MulAdd(v, xv, a6);
            b6 = S.MulAdd(v, xw, b6);
            v = S.Load(w7 + j);
            a7 = S.MulAdd(v, xv, a7);
            b7 = S.MulAdd(v, xw, b7);
        }
        if (to < cols - cols % c)
        {
            S.Store(chains, a0); S.Store(chains + c, a1); S.Store(chains + 2 * c, a2); S.Store(chains + 3 * c, a3);
            S.Store(chains + 4 * c, a4); S.Store(chains + 5 * c, a5); S.Store(chains + 6 * c, a6); S.Store(chains + 7 * c, a7);
            S.Store(chains + 8 * c, b0); S.Store(chains + 9 * c, b1); S.Store(chains + 10 * c, b2); S.Store(chains + 11 * c, b3);
            S.Store(chains + 12 * c, b4); S.Store(chains + 13 * c, b5); S.Store(chains + 14 * c, b6); S.Store(chains + 15 * c, b7);
            return;
        }
        Store4(y, a0, a1, a2, a3, w0, w1, w2, w3, xa, j, cols);
        Store4(y + 4, a4, a5, a6, a7, w4, w5, w6, w7, xa, j, cols);
        Store4(y + yStride, b0, b1, b2, b3, w0, w1, w2, w3, xb, j, cols);
        Store4(y + yStride + 4, b4, b5, b6, b7, w4, w5, w6, w7, xb, j, cols);
    }

    // y[0..4) = rows w0..w3 · x
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void FourRowsOneToken(float* y, float* w0, long rowStride, float* x, int cols)
    {
        int c = S.Count, j = 0;
        float* w1 = w0 + rowStride, w2 = w1 + rowStride, w3 = w2 + rowStride;
        TF a0 = S.Zero, a1 = S.Zero, a2 = S.Zero, a3 = S.Zero;
        for (; j <= cols - c; j += c)
        {
            TF xv = S.Load(x + j);
            a0 = S.MulAdd(S.Load(w0 + j), xv, a0);
            a1 = S.MulAdd(S.Load(w1 + j), xv, a1);
            a2 = S.MulAdd(S.Load(w2 + j), xv, a2);
            a3 = S.MulAdd(S.Load(w3 + j), xv, a3);
        }
        Store4(y, a0, a1, a2, a3, w0, w1, w2, w3, x, j, cols);
    }

    // y[k] = w · x[k] for k < count: one row against several tokens' rows, eight tokens per pass sharing each load of
    // the row, each (row, token) summed as MatMul sums it (one chain, then the scalar tail).
    public static void RowDots(float* y, float* w, float** x, int count, int cols)
    {
        int c = S.Count, k = 0;
        for (; k <= count - 8; k += 8)
        {
            float* x0 = x[k], x1 = x[k + 1], x2 = x[k + 2], x3 = x[k + 3], x4 = x[k + 4], x5 = x[k + 5], x6 = x[k + 6], x7 = x[k + 7];
            TF a0 = S.Zero, a1 = S.Zero, a2 = S.Zero, a3 = S.Zero, a4 = S.Zero, a5 = S.Zero, a6 = S.Zero, a7 = S.Zero;
            int j = 0;
            for (; j <= cols - c; j += c)
            {
                TF v = S.Load(w + j);
                a0 = S.MulAdd(v, S.Load(x0 + j), a0);
                a1 = S.MulAdd(v, S.Load(x1 + j), a1);
                a2 = S.MulAdd(v, S.Load(x2 + j), a2);
                a3 = S.MulAdd(v, S.Load(x3 + j), a3);
                a4 = S.MulAdd(v, S.Load(x4 + j), a4);
                a5 = S.MulAdd(v, S.Load(x5 + j), a5);
                a6 = S.MulAdd(v, S.Load(x6 + j), a6);
                a7 = S.MulAdd(v, S.Load(x7 + j), a7);
            }
            S.Sum4(y + k, a0, a1, a2, a3);
            S.Sum4(y + k + 4, a4, a5, a6, a7);
            for (; j < cols; j++)
                for (int t = 0; t < 8; t++) y[k + t] += w[j] * x[k + t][j];
        }
        for (; k < count; k++) y[k] = OneRow(w, x[k], cols);
    }

    // w0 · x, summed as one row of FourRowsOneToken: one chain, its sum (Sum4's lane, bit for bit), then the scalar tail
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static float OneRow(float* w0, float* x, int cols)
    {
        int c = S.Count, j = 0, ahead = Prefetch.SingleStreamAhead;
        TF a = S.Zero;
        for (; j <= cols - c; j += c)
        {
            Prefetch.Stream((byte*)(w0 + j), ahead, c * sizeof(float));
            a = S.MulAdd(S.Load(w0 + j), S.Load(x + j), a);
        }
        float y = S.Sum(a);
        for (; j < cols; j++) y += w0[j] * x[j];
        return y;
    }

    // y[0..4) = the four chains' sums plus the scalar tail x[j..cols) of each row
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void Store4(float* y, TF a0, TF a1, TF a2, TF a3, float* w0, float* w1, float* w2, float* w3, float* x, int j, int cols)
    {
        S.Sum4(y, a0, a1, a2, a3);
        for (; j < cols; j++)
        {
            float xj = x[j];
            y[0] += w0[j] * xj;
            y[1] += w1[j] * xj;
            y[2] += w2[j] * xj;
            y[3] += w3[j] * xj;
        }
    }

    // y[rows] = W[rows, cols] · x[cols], W half; row r at w + r·rowStride: DotF16 of each row, but for short rows one
    // after another (FourHalfRows).
    public static void MatVecF16(float* y, Half* w, long rowStride, float* x, int rows, int cols) => MatVecHalves<HalfRows>(y, w, rowStride, x, rows, cols);

    // y[rows] = W[rows, cols] (half, finite) · x[cols] with xs = x · 2^112 (ScaledHalves): MatVecF16's sums bit for bit
    public static void MatVecF16Scaled(float* y, Half* w, long rowStride, float* xs, int rows, int cols) => MatVecHalves<ScaledHalfRows>(y, w, rowStride, xs, rows, cols);

    private static void MatVecHalves<R>(float* y, Half* w, long rowStride, float* x, int rows, int cols) where R : struct, IFloatRows
    {
        int r = 0;
        if (rowStride == cols && cols <= ShortRow)
            for (; r <= rows - 4; r += 4) FourHalfRows<R>(y + r, w + r * rowStride, rowStride, x, cols);
        // A row at a time, as f32 decode: memory streams fastest read in order.
        for (; r < rows; r++) y[r] = DotHalves<R>(w + r * rowStride, x, cols);
    }

    // y[0..4) = rows w0..w3 (rowStride apart, short, one after another: an attention head's cached keys) · x. A row of
    // 64 is four loads of 16 halves (AVX2): its own four chains and horizontal sum would cost more than its products, so
    // four rows share each load of x in two chains each (the lower and upper vectors of a load of halves), then the
    // scalar tail.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void FourHalfRows<R>(float* y, Half* w0, long rowStride, float* x, int cols) where R : struct, IFloatRows
    {
        int c = S.Count, j = 0;
        Half* w1 = w0 + rowStride, w2 = w1 + rowStride, w3 = w2 + rowStride;
        TF l0 = S.Zero, l1 = S.Zero, l2 = S.Zero, l3 = S.Zero, h0 = S.Zero, h1 = S.Zero, h2 = S.Zero, h3 = S.Zero;
        for (; j <= cols - 2 * c; j += 2 * c)
        {
            TF xl = S.Load(x + j), xh = S.Load(x + j + c);
            var (l, h) = R.Values(w0, j);
            l0 = S.MulAdd(l, xl, l0);
            h0 = S.MulAdd(h, xh, h0);
            (l, h) = R.Values(w1, j);
            l1 = S.MulAdd(l, xl, l1);
            h1 = S.MulAdd(h, xh, h1);
            (l, h) = R.Values(w2, j);
            l2 = S.MulAdd(l, xl, l2);
            h2 = S.MulAdd(h, xh, h2);
            (l, h) = R.Values(w3, j);
            l3 = S.MulAdd(l, xl, l3);
            h3 = S.MulAdd(h, xh, h3);
        }
        y[0] = HalfRowTail<R>(S.Sum(S.Add(l0, h0)), w0, x, j, cols);
        y[1] = HalfRowTail<R>(S.Sum(S.Add(l1, h1)), w1, x, j, cols);
        y[2] = HalfRowTail<R>(S.Sum(S.Add(l2, h2)), w2, x, j, cols);
        y[3] = HalfRowTail<R>(S.Sum(S.Add(l3, h3)), w3, x, j, cols);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float HalfRowTail<R>(float sum, Half* w, float* x, int j, int cols) where R : struct, IFloatRows
    {
        for (; j < cols; j++) sum += R.Value(w, j) * x[j];
        return sum;
    }

    // y[n] += a · w[n], w one q8 row: a · (q · scale) + y, fused as Axpy, as the reference (and as a row ToSingleQ8 widened, then Axpy)
    public static void AxpyQ8(float* y, float a, byte* w, int n) => AxpyRow<Q8Values>(y, a, w, n / Quantization.Group);

    // y[n] += a · w[n], w one q4 row; as AxpyQ8
    public static void AxpyQ4(float* y, float a, byte* w, int n) => AxpyRow<Q4Values>(y, a, w, n / Quantization.Group);

    // y[n] += Σ_k a[k] · w[k][n], w q4 rows: count AxpyQ4s, bit for bit, four rows a pass
    public static void AxpyRowsQ4Each(float* y, float* a, byte** w, int count, int n) => AxpyRows<Q4Values>(y, a, w, count, n);

    // y[n] += a[0] · w[0][n] + … + a[count-1] · w[count-1][n], w q8 rows, each product added in turn as AxpyQ8 adds it
    public static void AxpyRowsQ8(float* y, float* a, byte** w, int count, int n) => AxpyRows<Q8Values>(y, a, w, count, n);

    /// <summary>A quantised row's weights as floats q (q - 8 for q4), before the group's scale: elements j .. j+Count-1
    /// of a group and the same Count elements of its second half, which a q4 byte holds in its high nibble.</summary>
    private interface IQuantValues
    {
        static abstract int Bytes { get; } // of a group's quants
        static abstract (TF Low, TF High) Values(byte* quants, int j);
    }

    private readonly struct Q8Values : IQuantValues
    {
        public static int Bytes => Quantization.Group;
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static (TF Low, TF High) Values(byte* quants, int j) =>
            (S.ToFloat(S.LoadSBytes((sbyte*)quants + j)), S.ToFloat(S.LoadSBytes((sbyte*)quants + Quantization.Group / 2 + j)));
    }

    private readonly struct Q4Values : IQuantValues
    {
        public static int Bytes => Quantization.Group / 2;
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static (TF Low, TF High) Values(byte* quants, int j) => S.Nibbles(S.LoadBytes(quants + j));
    }

    // y[n] += Σ_k a[k] · w[k][n], every element a · (q · scale) + y, the last multiply and the add fused, the rows'
    // products added in turn: count one-row Axpys bit for bit. Four rows per pass load and store y once for four rows (a down projection
    // adds hundreds of neuron rows into one y), and the next four rows are fetched while these are summed.
    private static void AxpyRows<V>(float* y, float* a, byte** w, int count, int n) where V : struct, IQuantValues
    {
        const int HalfGroup = Quantization.Group / 2;
        int c = S.Count, groups = n / Quantization.Group, k = 0;
        long quants = 2L * groups, bytes = quants + (long)groups * V.Bytes;
        float* scales = stackalloc float[4 * groups]; // [row, group] of the four rows
        float* c0 = scales, c1 = c0 + groups, c2 = c1 + groups, c3 = c2 + groups;
        for (; k <= count - 4; k += 4)
        {
            for (int next = k + 4; next < Math.Min(k + 8, count); next++) Prefetch.Rows(w[next], 0, 1, bytes);
            byte* w0 = w[k], w1 = w[k + 1], w2 = w[k + 2], w3 = w[k + 3];
            for (int r = 0; r < 4; r++) QuantScales(scales + r * groups, w[k + r], 0, 1, null, groups);
            TF a0 = S.Splat(a[k]), a1 = S.Splat(a[k + 1]), a2 = S.Splat(a[k + 2]), a3 = S.Splat(a[k + 3]);
            for (int g = 0; g < groups; g++)
            {
                TF s0 = S.Splat(c0[g]), s1 = S.Splat(c1[g]), s2 = S.Splat(c2[g]), s3 = S.Splat(c3[g]);
                long q = quants + (long)g * V.Bytes;
                float* yg = y + g * Quantization.Group;
                for (int j = 0; j < HalfGroup; j += c)
                {
                    TF low = S.Load(yg + j), high = S.Load(yg + HalfGroup + j);
                    var (l, h) = V.Values(w0 + q, j);
                    low = S.FusedMulAdd(a0, S.Mul(l, s0), low);
                    high = S.FusedMulAdd(a0, S.Mul(h, s0), high);
                    (l, h) = V.Values(w1 + q, j);
                    low = S.FusedMulAdd(a1, S.Mul(l, s1), low);
                    high = S.FusedMulAdd(a1, S.Mul(h, s1), high);
                    (l, h) = V.Values(w2 + q, j);
                    low = S.FusedMulAdd(a2, S.Mul(l, s2), low);
                    high = S.FusedMulAdd(a2, S.Mul(h, s2), high);
                    (l, h) = V.Values(w3 + q, j);
                    S.Store(yg + j, S.FusedMulAdd(a3, S.Mul(l, s3), low));
                    S.Store(yg + HalfGroup + j, S.FusedMulAdd(a3, S.Mul(h, s3), high));
                }
            }
        }
        for (; k < count; k++)
        {
            if (k + 1 < count) Prefetch.Rows(w[k + 1], 0, 1, bytes);
            AxpyRow<V>(y, a[k], w[k], groups);
        }
    }

    // y[groups·32] += a · w, one quantised row, as AxpyRows adds each row
    private static void AxpyRow<V>(float* y, float a, byte* w, int groups) where V : struct, IQuantValues
    {
        const int HalfGroup = Quantization.Group / 2;
        int c = S.Count;
        TF a0 = S.Splat(a);
        Half* scales = (Half*)w;
        byte* q = w + 2L * groups;
        for (int g = 0; g < groups; g++, q += V.Bytes, y += Quantization.Group)
        {
            TF s0 = S.Splat(HalfBits.FiniteToSingle(scales[g]));
            for (int j = 0; j < HalfGroup; j += c)
            {
                var (l, h) = V.Values(q, j);
                S.Store(y + j, S.FusedMulAdd(a0, S.Mul(l, s0), S.Load(y + j)));
                S.Store(y + HalfGroup + j, S.FusedMulAdd(a0, S.Mul(h, s0), S.Load(y + HalfGroup + j)));
            }
        }
    }

    // o[n] = weight[n] ⊙ (x[n] / sqrt(Σx²/n + eps)); o may alias x. Only Σx² is reordered; the rest is llama2.c's formula.
    public static void RmsNorm(float* o, float* x, float* weight, int n, float eps)
    {
        float ss = Dot(x, x, n);
        ss /= n;
        ss += eps;
        ss = 1f / MathF.Sqrt(ss);
        int c = S.Count, i = 0;
        TF sv = S.Splat(ss);
        for (; i <= n - c; i += c) S.Store(o + i, S.Mul(S.Load(weight + i), S.Mul(sv, S.Load(x + i))));
        for (; i < n; i++) o[i] = weight[i] * (ss * x[i]);
    }

    // o[n] = (x - mean) * rstd * weight + bias: two passes (mean, then the variance of x - mean, which stays accurate
    // where the mean is large), then one fused pass.
    public static void LayerNorm(float* o, float* x, float* weight, float* bias, int n, float eps)
    {
        int c = S.Count, i = 0;
        TF acc = S.Zero;
        for (; i <= n - c; i += c) acc = S.Add(acc, S.Load(x + i));
        float sum = S.Sum(acc);
        for (; i < n; i++) sum += x[i];
        float mean = sum / n;
        TF mv = S.Splat(mean);
        acc = S.Zero;
        for (i = 0; i <= n - c; i += c)
        {
            TF d = S.Sub(S.Load(x + i), mv);
            acc = S.MulAdd(d, d, acc);
        }
        float ss = S.Sum(acc);
        for (; i < n; i++) ss += (x[i] - mean) * (x[i] - mean);
        float rstd = 1f / MathF.Sqrt(ss / n + eps);
        TF rv = S.Splat(rstd);
        for (i = 0; i <= n - c; i += c)
            S.Store(o + i, S.MulAdd(S.Mul(S.Sub(S.Load(x + i), mv), rv), S.Load(weight + i), S.Load(bias + i)));
        for (; i < n; i++) o[i] = (x[i] - mean) * rstd * weight[i] + bias[i];
    }

    // x[n] = softmax(x / divisor), in place: the divisions (exact in any width) and the max in one pass, then the exps
    // by the vector exp (the last elements through one padded vector, as Silu), summed a lane at a time. C's scalar expf
    // in order took 8% of a 512-token 110M q4 prompt at 1 thread (every query's scores, 19M exps); the lanes' exps are
    // within an ulp or so of it, and a row's result depends only on its scores (a query's are the same in any block).
    public static void Softmax(float* x, int n, float divisor)
    {
        if (n == 0) return;
        int c = S.Count, i = 0;
        TF max = S.Splat(DivideAndMax(x, n, divisor)), sums = S.Zero;
        for (; i <= n - c; i += c)
        {
            TF e = S.Exp(S.Sub(S.Load(x + i), max));
            S.Store(x + i, e);
            sums = S.Add(sums, e);
        }
        float sum = S.Sum(sums);
        if (i < n)
        {
            float* tail = stackalloc float[c];
            new Span<float>(tail, c).Clear();
            Buffer.MemoryCopy(x + i, tail, (long)c * sizeof(float), (long)(n - i) * sizeof(float));
            S.Store(tail, S.Exp(S.Sub(S.Load(tail), max)));
            for (int k = 0; i + k < n; k++)
            {
                x[i + k] = tail[k];
                sum += tail[k];
            }
        }
        TF sv = S.Splat(sum);
        int j = 0;
        for (; j <= n - c; j += c) S.Store(x + j, S.Div(S.Load(x + j), sv));
        for (; j < n; j++) x[j] /= sum;
    }

    // x[n] = x where x > threshold, else 0, in place (ReLU at 0, FATReLU above)
    public static void Relu(float* x, int n, float threshold)
    {
        int c = S.Count, i = 0;
        TF t = S.Splat(threshold);
        for (; i <= n - c; i += c)
        {
            TF v = S.Load(x + i);
            S.Store(x + i, S.Select(S.GreaterThan(v, t), v, S.Zero));
        }
        for (; i < n; i++) x[i] = x[i] > threshold ? x[i] : 0f;
    }

    // x[n] = x · (1 / (1 + e^-x)), in place: SiLU in llama2.c's form, e^x by the vector exp. The last elements go through
    // one padded vector, so an element's result is the same wherever in x it falls (a neuron's activation must not
    // depend on the block or the chunk it is in).
    public static void Silu(float* x, int n)
    {
        int c = S.Count, i = 0;
        for (; i <= n - c; i += c) S.Store(x + i, Silu(S.Load(x + i)));
        if (i == n) return;
        float* tail = stackalloc float[c];
        new Span<float>(tail, c).Clear();
        Buffer.MemoryCopy(x + i, tail, (long)c * sizeof(float), (long)(n - i) * sizeof(float));
        S.Store(tail, Silu(S.Load(tail)));
        Buffer.MemoryCopy(tail, x + i, (long)(n - i) * sizeof(float), (long)(n - i) * sizeof(float));
    }

    // SiLU of one value, as Silu(x, n) gives it wherever it falls
    public static float Silu(float x)
    {
        float* v = stackalloc float[S.Count];
        S.Store(v, Silu(S.Splat(x)));
        return v[0];
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static TF Silu(TF v)
    {
        TF one = S.Splat(1f);
        return S.Mul(v, S.Div(one, S.Add(one, S.Exp(S.Sub(S.Zero, v)))));
    }

    // y[n] += x[n]
    public static void Add(float* y, float* x, int n)
    {
        int c = S.Count, i = 0;
        for (; i <= n - c; i += c) S.Store(y + i, S.Add(S.Load(y + i), S.Load(x + i)));
        for (; i < n; i++) y[i] += x[i];
    }

    // dst[n] = (Half)src[n]
    public static void ToHalf(Half* dst, float* src, long n)
    {
        int c = S.Count;
        long i = 0;
        for (; i <= n - 2 * c; i += 2 * c) S.StoreHalves(dst + i, SingleToHalf(S.Load(src + i)), SingleToHalf(S.Load(src + i + c)));
        for (; i < n; i++) dst[i] = (Half)src[i];
    }

    // dst[n] = (float)src[n]
    public static void ToSingle(float* dst, Half* src, long n)
    {
        int c = S.Count;
        long i = 0;
        for (; i <= n - 2 * c; i += 2 * c)
        {
            var (lower, upper) = S.LoadHalves(src + i);
            S.Store(dst + i, lower);
            S.Store(dst + i + c, upper);
        }
        for (; i < n; i++) dst[i] = (float)src[i];
    }

    // dst = x[n] as [n/32 f32 scales][n int8], bit for bit the reference's. A group's max|x| is the largest of its bit
    // patterns with the sign cleared (monotonic for finite values; a NaN or infinity sorts above them all). A group
    // whose max is not finite, or whose scale is too small to invert, takes the reference's own path; for every other
    // group round(x · (1/scale)) stays within [-127, 127], so the reference's clamp changes nothing.
    public static void QuantizeActivations(byte* dst, float* x, int n)
    {
        int c = S.Count, groups = n / Quantization.Group;
        float* scales = (float*)dst;
        sbyte* q = (sbyte*)(dst + sizeof(float) * (long)groups);
        TI magnitude = S.Splat(0x7FFFFFFF);
        int* lanes = stackalloc int[c];
        for (int g = 0; g < groups; g++, x += Quantization.Group, q += Quantization.Group)
        {
            TI max = S.Splat(0);
            for (int k = 0; k < Quantization.Group; k += c)
            {
                TI bits = S.And(S.AsInt(S.Load(x + k)), magnitude);
                max = S.Select(S.GreaterThan(bits, max), bits, max);
            }
            S.Store((float*)lanes, S.AsFloat(max));
            int top = 0;
            for (int i = 0; i < c; i++) top = Math.Max(top, lanes[i]);
            float scale = BitConverter.Int32BitsToSingle(top) / 127f;
            float inverse = scale > 0f ? 1f / scale : 0f;
            if (top >= 0x7F800000 || !float.IsFinite(inverse))
            {
                VectorOpsReference.QuantizeActivationGroup(scales + g, q, x);
                continue;
            }
            scales[g] = scale;
            TF factor = S.Splat(inverse);
            for (int k = 0; k < Quantization.Group; k += c) S.StoreSBytes(q + k, S.RoundToInt(S.Mul(S.Load(x + k), factor)));
        }
    }

    // dst[n] = w[n] dequantised, w one q8 row: q · scale, exactly as the reference
    public static void ToSingleQ8(float* dst, byte* w, int n)
    {
        int c = S.Count, groups = n / Quantization.Group;
        Half* scales = (Half*)w;
        sbyte* q = (sbyte*)(w + 2L * groups);
        for (int g = 0; g < groups; g++, q += Quantization.Group, dst += Quantization.Group)
        {
            TF scale = S.Splat(HalfBits.FiniteToSingle(scales[g]));
            for (int k = 0; k < Quantization.Group; k += c) S.Store(dst + k, S.Mul(S.ToFloat(S.LoadSBytes(q + k)), scale));
        }
    }

    // dst[n] = w[n] dequantised, w one q4 row: (q - 8) · scale
    public static void ToSingleQ4(float* dst, byte* w, int n)
    {
        int c = S.Count, groups = n / Quantization.Group;
        Half* scales = (Half*)w;
        byte* q = w + 2L * groups;
        for (int g = 0; g < groups; g++, q += Quantization.Group / 2, dst += Quantization.Group)
        {
            TF scale = S.Splat(HalfBits.FiniteToSingle(scales[g]));
            for (int k = 0; k < Quantization.Group / 2; k += c)
            {
                var (low, high) = S.Nibbles(S.LoadBytes(q + k));
                S.Store(dst + k, S.Mul(low, scale));
                S.Store(dst + Quantization.Group / 2 + k, S.Mul(high, scale));
            }
        }
    }

    // 2·Count quantisation scales as floats, each HalfBits.FiniteToSingle's value
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static (TF Lower, TF Upper) LoadScales(Half* p)
    {
        var (lower, upper) = S.LoadScaledHalves(p);
        TF up = S.Splat(HalfBits.Up);
        return (S.Mul(lower, up), S.Mul(upper, up));
    }

    // byGroup[4g + k] = the half scale of group g of row k, for four rows at w + k·rowStride, as a float, times xScales[g]
    // when given: QuantScales' products for four rows, stored group by group (the layout that multiplies four rows' sums
    // at once). The loads stay inside the rows as QuantScales' do.
    internal static void QuantScales4(float* byGroup, byte* w, long rowStride, float* xScales, int groups)
    {
        int c = S.Count, g = 0;
        Half* h0 = (Half*)w, h1 = (Half*)(w + rowStride), h2 = (Half*)(w + 2 * rowStride), h3 = (Half*)(w + 3 * rowStride);
        for (; g <= groups - c; g += 2 * c)
        {
            var (a0, b0) = LoadScales(h0 + g);
            var (a1, b1) = LoadScales(h1 + g);
            var (a2, b2) = LoadScales(h2 + g);
            var (a3, b3) = LoadScales(h3 + g);
            StoreScales4(byGroup, xScales, g, a0, a1, a2, a3);
            if (g + 2 * c > groups)
            {
                g += c;
                break;
            }
            StoreScales4(byGroup, xScales, g + c, b0, b1, b2, b3);
        }
        if (g < groups && groups >= c)
        {
            // The last Count groups again, as QuantScales takes them (a 110M row's 24 groups are 16 + 8 at 512 bits).
            int last = groups - c;
            StoreScales4(byGroup, xScales, last, LoadScales(h0 + last).Lower, LoadScales(h1 + last).Lower, LoadScales(h2 + last).Lower,
                         LoadScales(h3 + last).Lower);
            g = groups;
        }
        for (; g < groups; g++)
        {
            float x = xScales != null ? xScales[g] : 1f; // times 1 is exact
            byGroup[4 * g] = HalfBits.FiniteToSingle(h0[g]) * x;
            byGroup[4 * g + 1] = HalfBits.FiniteToSingle(h1[g]) * x;
            byGroup[4 * g + 2] = HalfBits.FiniteToSingle(h2[g]) * x;
            byGroup[4 * g + 3] = HalfBits.FiniteToSingle(h3[g]) * x;
        }
    }

    // QuantScales4's groups g .. g + Count - 1 of the four rows (a_k row k's scales), times xScales when given
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void StoreScales4(float* byGroup, float* xScales, int g, TF a0, TF a1, TF a2, TF a3)
    {
        if (xScales != null)
        {
            TF x = S.Load(xScales + g);
            a0 = S.Mul(a0, x); a1 = S.Mul(a1, x); a2 = S.Mul(a2, x); a3 = S.Mul(a3, x);
        }
        S.StoreTransposed4(byGroup + 4 * g, a0, a1, a2, a3);
    }

    // scales[k·groups + g] = the half scale of group g of row k (rows at w + k·rowStride) as a float, times xScales[g]
    // when given: the products the loops splat, a vector of halves at a time rather than one scalar conversion each
    // (every value exactly what HalfBits.ToSingle and the scalar product give). With Count to 2·Count groups left, the
    // load of 2·Count halves reaches at most Count halves (2·Count bytes) into the row's quants, which hold 16 bytes or
    // more per group: it stays inside the row. Inlined: DotQ8 takes it once per row (110M q8 decode, 1 thread, medians of
    // 7 alternating: 10.59 → 10.30 ms/token).
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void QuantScales(float* scales, byte* w, long rowStride, int rows, float* xScales, int groups)
    {
        int c = S.Count;
        for (int k = 0; k < rows; k++, scales += groups)
        {
            Half* h = (Half*)(w + k * rowStride);
            int g = 0;
            for (; g <= groups - c; g += 2 * c)
            {
                var (a, b) = LoadScales(h + g);
                if (xScales != null) a = S.Mul(a, S.Load(xScales + g));
                S.Store(scales + g, a);
                if (g + 2 * c > groups)
                {
                    g += c;
                    break;
                }
                if (xScales != null) b = S.Mul(b, S.Load(xScales + g + c));
                S.Store(scales + g + c, b);
            }
            if (g < groups && groups >= c)
            {
                // The last Count groups again, as a vector: the groups they share with the loop get the same values.
                var (a, _) = LoadScales(h + groups - c);
                if (xScales != null) a = S.Mul(a, S.Load(xScales + groups - c));
                S.Store(scales + groups - c, a);
                g = groups;
            }
            for (; g < groups; g++) scales[g] = xScales != null ? HalfBits.FiniteToSingle(h[g]) * xScales[g] : HalfBits.FiniteToSingle(h[g]);
        }
    }

    // q4 bytes (one per int lane) → their low and high nibbles as the signed values q - 8, in float: the portable form
    // behind ISimd.Nibbles
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static (TF Low, TF High) PortableNibbles(TI bytes)
    {
        TI eight = S.Splat(8);
        return (S.ToFloat(S.Sub(S.And(bytes, S.Splat(0xF)), eight)), S.ToFloat(S.Sub(S.ShiftRightLogical(bytes, 4), eight)));
    }

    // x[n] /= divisor, in place, and the max of the results, n ≥ 1, as C's `m = x[0]; if (x[i] > m) m = x[i]` finds it:
    // NaNs after x[0] are skipped
    static float DivideAndMax(float* x, int n, float divisor)
    {
        int c = S.Count, i = 0;
        TF d = S.Splat(divisor);
        float max = x[0] / divisor;
        if (n >= c)
        {
            TF m = S.Splat(max);
            for (; i <= n - c; i += c)
            {
                TF v = S.Div(S.Load(x + i), d);
                S.Store(x + i, v);
                m = S.Select(S.GreaterThan(v, m), v, m);
            }
            float* lanes = stackalloc float[c];
            S.Store(lanes, m);
            for (int k = 0; k < c; k++)
                if (lanes[k] > max) max = lanes[k];
        }
        for (; i < n; i++)
        {
            x[i] /= divisor;
            if (x[i] > max) max = x[i];
        }
        return max;
    }

    // Floats to half bit patterns (in the low 16 bits of each int lane), rounding to nearest even exactly as
    // (Half)float does, including subnormal results, overflow to inf, and NaN (quieted, top payload bits kept).
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static TI SingleToHalf(TF x)
    {
        TI f = S.AsInt(x);
        TI magnitude = S.And(f, S.Splat(0x7FFFFFFF));
        TI sign = S.ShiftRightLogical(S.Xor(f, magnitude), 16);
        // |x| < 2^-14 (subnormal or zero half): adding 0.5 puts the half's ulp, 2^-24, at the float's last
        // mantissa bit, so the FPU's own round-to-nearest-even rounds; subtracting 0.5's bits leaves the half.
        TI tiny = S.Sub(S.AsInt(S.Add(S.AsFloat(magnitude), S.Splat(0.5f))), S.Splat(0x3F000000));
        // Normal half: rebias the exponent (127 to 15, as -112 << 23), add 0xFFF plus the lowest kept bit
        // (ties to even), and drop 13 mantissa bits. A carry rounds up into the exponent, to inf from 65520.
        TI odd = S.And(S.ShiftRightLogical(magnitude, 13), S.Splat(1));
        TI normal = S.ShiftRightLogical(S.Add(S.Add(magnitude, S.Splat(unchecked((int)0xC8000FFF))), odd), 13);
        // |x| ≥ 65536, inf or NaN.
        TI special = S.Select(S.GreaterThan(magnitude, S.Splat(0x7F800000)),
            S.Or(S.Splat(0x7E00), S.And(S.ShiftRightLogical(magnitude, 13), S.Splat(0x3FF))), S.Splat(0x7C00));
        TI h = S.Select(S.LessThan(magnitude, S.Splat(0x38800000)), tiny, normal);
        h = S.Select(S.LessThan(magnitude, S.Splat(0x47800000)), h, special);
        return S.Or(h, sign);
    }
}
