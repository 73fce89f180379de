using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using AotFlash.Flash;
using AotFlash.Kernels;
using Xunit.Abstractions;

namespace AotFlash.Tests.Kernels;

/// <summary>
/// Every Isa body of <see cref="VectorOps"/> against <see cref="VectorOpsReference"/> on odd sizes with
/// seeded random data: reductions to a relative tolerance, elementwise ops and conversions bit for bit.
/// Buffers start one element past an aligned address and are followed by NaN guards, so a kernel that
/// assumes alignment, reads past its end (the NaN would leak into the result) or writes past it fails.
/// Every Isa runs on every machine: where .NET does not accelerate a vector width it emulates it with the same
/// results, so the wide paths are checked for correctness even on hardware that will not use them.
/// </summary>
public unsafe class VectorOpsTests(ITestOutputHelper output)
{
    static readonly int[] Sizes = [0, 1, 3, 7, 15, 17, 31, 33, 63, 65, 127, 129, 1000, 1031];
    const float Tolerance = 1e-5f;

    public static TheoryData<Isa> Isas => new() { Isa.Scalar, Isa.V128, Isa.V256, Isa.V512 };

    [Theory, MemberData(nameof(Isas))]
    public void Dot(Isa isa)
    {
        var rng = new Random(1);
        foreach (int n in Sizes)
        {
            using Buf<float> a = Floats(rng, n), b = Floats(rng, n);
            float scale = 0f;
            for (int i = 0; i < n; i++) scale += MathF.Abs(a[i] * b[i]);
            AssertClose(VectorOpsReference.Dot(a.P, b.P, n), VectorOps.Dot(isa, a.P, b.P, n), scale, $"n={n}");
        }
    }

    [Theory, MemberData(nameof(Isas))]
    public void DotF16(Isa isa)
    {
        var rng = new Random(2);
        foreach (int n in Sizes)
        {
            using Buf<Half> w = Halves(rng, n);
            using Buf<float> x = Floats(rng, n);
            float scale = 0f;
            for (int i = 0; i < n; i++) scale += MathF.Abs((float)w[i] * x[i]);
            AssertClose(VectorOpsReference.DotF16(w.P, x.P, n), VectorOps.DotF16(isa, w.P, x.P, n), scale, $"n={n}");
        }
    }

    // The scaled products are the converting ones bit for bit, on every path (x scaled as ScaledHalves.Scale does).
    [Theory, MemberData(nameof(Isas))]
    public void DotF16Scaled(Isa isa)
    {
        var rng = new Random(41);
        foreach (int n in Sizes)
        {
            using Buf<Half> w = Halves(rng, n);
            using Buf<float> x = Floats(rng, n), xs = Scaled(x);
            Assert.Equal(VectorOps.DotF16(isa, w.P, x.P, n), VectorOps.DotF16Scaled(isa, w.P, xs.P, n));
        }
    }

    [Theory, MemberData(nameof(Isas))]
    public void Axpy(Isa isa)
    {
        var rng = new Random(3);
        foreach (int n in Sizes)
        {
            using Buf<float> want = Floats(rng, n), got = want.Clone(), x = Floats(rng, n);
            float a = NextFloat(rng);
            VectorOpsReference.Axpy(want.P, a, x.P, n);
            VectorOps.Axpy(isa, got.P, a, x.P, n);
            AssertBitsEqual(want, got, $"n={n}");
        }
    }

    // Several rows added at once: bit for bit the reference's Axpys in turn; counts across the four-row passes, each
    // row in a buffer of its own with guards after it.
    [Theory, MemberData(nameof(Isas))]
    public void AxpyRows(Isa isa)
    {
        var rng = new Random(31);
        float** x = stackalloc float*[9];
        foreach (int count in new[] { 0, 1, 3, 4, 5, 9 })
            foreach (int n in Sizes)
            {
                var rows = new Buf<float>[count];
                for (int k = 0; k < count; k++) rows[k] = Floats(rng, n);
                for (int k = 0; k < count; k++) x[k] = rows[k].P;
                AssertRowsAdded(rows, rng, n, $"count={count} n={n}", (y, a) => VectorOpsReference.AxpyRows(y, a, x, count, n),
                                (y, a) => VectorOps.AxpyRows(isa, y, a, x, count, n));
            }
    }

    // Several tokens' rows added at once (a block's down projection): bit for bit the reference's AxpyRows per token,
    // over token counts across the six-token tiles, strided rows of y (the gaps untouched) and zero coefficients.
    [Theory, MemberData(nameof(Isas))]
    public void AxpyRowsBlock(Isa isa)
    {
        var rng = new Random(33);
        float** x = stackalloc float*[6];
        foreach (int tokens in new[] { 1, 5, 6, 7, 13 })
            foreach (int count in new[] { 0, 1, 6 })
                foreach (int n in Sizes)
                {
                    var rows = new Buf<float>[count];
                    for (int k = 0; k < count; k++) rows[k] = Floats(rng, n);
                    for (int k = 0; k < count; k++) x[k] = rows[k].P;
                    long yStride = n + 3, aStride = count + 2;
                    using Buf<float> want = Floats(rng, (int)(tokens * yStride)), got = want.Clone(), a = Floats(rng, (int)(tokens * aStride));
                    for (int i = 0; i < tokens * aStride; i += 3) a[i] = 0f;
                    VectorOpsReference.AxpyRowsBlock(want.P, yStride, a.P, aStride, x, count, tokens, n);
                    VectorOps.AxpyRowsBlock(isa, got.P, yStride, a.P, aStride, x, count, tokens, n);
                    AssertBitsEqual(want, got, $"tokens={tokens} count={count} n={n}");
                    foreach (var row in rows) row.Dispose();
                }
    }

    // Converting, and scaled (ScaledHalves: the coefficients times 2^112, the halves' bits as they are): the same sums.
    [Theory, MemberData(nameof(IsasBothHalfForms))]
    public void AxpyRowsF16(Isa isa, bool scaledForm)
    {
        var rng = new Random(32);
        Half** x = stackalloc Half*[9];
        float* scaled = stackalloc float[9];
        foreach (int count in new[] { 0, 1, 3, 4, 5, 9 })
            foreach (int n in Sizes)
            {
                var rows = new Buf<Half>[count];
                for (int k = 0; k < count; k++) rows[k] = Halves(rng, n);
                for (int k = 0; k < count; k++) x[k] = rows[k].P;
                AssertRowsAdded(rows, rng, n, $"count={count} n={n}", (y, a) => VectorOpsReference.AxpyRowsF16(y, a, x, count, n), (y, a) =>
                {
                    if (!scaledForm)
                    {
                        VectorOps.AxpyRowsF16(isa, y, a, x, count, n);
                        return;
                    }
                    Assert.True(ScaledHalves.Scale(scaled, a, count));
                    VectorOps.AxpyRowsF16Scaled(isa, y, scaled, x, count, n);
                });
            }
    }

    public static TheoryData<Isa, bool> IsasBothHalfForms => new()
    {
        { Isa.Scalar, false }, { Isa.V128, false }, { Isa.V256, false }, { Isa.V512, false },
        { Isa.Scalar, true }, { Isa.V128, true }, { Isa.V256, true }, { Isa.V512, true },
    };

    // Runs want and got over the same y and coefficients (one per row) and compares them bit for bit; disposes the rows.
    static void AssertRowsAdded<T>(Buf<T>[] rows, Random rng, int n, string what, RowsAdder want, RowsAdder got)
        where T : unmanaged
    {
        try
        {
            using Buf<float> expected = Floats(rng, n), actual = expected.Clone(), a = Floats(rng, rows.Length);
            want(expected.P, a.P);
            got(actual.P, a.P);
            actual.AssertGuardIntact();
            AssertBitsEqual(expected, actual, what);
        }
        finally
        {
            foreach (var row in rows) row.Dispose();
        }
    }

    delegate void RowsAdder(float* y, float* a);

    [Theory, MemberData(nameof(Isas))]
    public void AxpyF16(Isa isa)
    {
        var rng = new Random(4);
        foreach (int n in Sizes)
        {
            using Buf<float> want = Floats(rng, n), got = want.Clone();
            using Buf<Half> x = Halves(rng, n);
            float a = NextFloat(rng);
            VectorOpsReference.AxpyF16(want.P, a, x.P, n);
            VectorOps.AxpyF16(isa, got.P, a, x.P, n);
            AssertBitsEqual(want, got, $"n={n}");
        }
    }

    // rows not a multiple of 4 exercise the single-row tail; the padding between rows (rowStride > cols) is NaN,
    // so a kernel that reads past cols in a row fails.
    static readonly int[] MatVecRows = [0, 1, 3, 4, 5, 7, 8, 13];

    [Theory, MemberData(nameof(Isas))]
    public void MatVec(Isa isa)
    {
        var rng = new Random(5);
        foreach (int rows in MatVecRows)
            foreach (int cols in Sizes)
                foreach (int pad in new[] { 0, 3 })
                {
                    long stride = cols + pad;
                    using Buf<float> w = Floats(rng, (int)(rows * stride)), x = Floats(rng, cols);
                    for (int r = 0; r < rows; r++)
                        for (int j = cols; j < stride; j++) w[r * stride + j] = float.NaN;
                    using Buf<float> want = new(rows, float.NaN), got = new(rows, float.NaN);
                    VectorOpsReference.MatVec(want.P, w.P, stride, x.P, rows, cols);
                    VectorOps.MatVec(isa, got.P, w.P, stride, x.P, rows, cols);
                    got.AssertGuardIntact();
                    for (int r = 0; r < rows; r++)
                    {
                        float scale = 0f;
                        for (int j = 0; j < cols; j++) scale += MathF.Abs(w[r * stride + j] * x[j]);
                        AssertClose(want[r], got[r], scale, $"rows={rows} cols={cols} stride={stride} r={r}");
                    }
                }
    }

    // Several tokens at once: each token's row of Y bit for bit what MatVec gives it (on the same Isa), and close to the
    // reference; odd token counts exercise the single-token tile, padded x and y rows the strides, rows of 2053 and
    // 40001 floats the slices of wide rows (35 tokens: more token pairs than a batch) and tokens taken in groups.
    [Theory, MemberData(nameof(Isas))]
    public void MatMul(Isa isa)
    {
        var rng = new Random(51);
        foreach (int tokens in new[] { 0, 1, 2, 3, 5, 35 })
            foreach (int rows in MatVecRows)
                foreach (int cols in new[] { 0, 1, 7, 17, 33, 129, 2053, 40001 })
                {
                    long stride = cols + 3, xStride = cols + 2, yStride = rows + 1;
                    using Buf<float> w = Floats(rng, (int)(rows * stride)), x = Floats(rng, (int)(tokens * xStride));
                    using Buf<float> want = new((int)(tokens * yStride), float.NaN), got = new((int)(tokens * yStride), float.NaN);
                    using Buf<float> one = new(rows, float.NaN);
                    VectorOpsReference.MatMul(want.P, yStride, w.P, stride, x.P, xStride, tokens, rows, cols);
                    VectorOps.MatMul(isa, got.P, yStride, w.P, stride, x.P, xStride, tokens, rows, cols);
                    got.AssertGuardIntact();
                    for (int t = 0; t < tokens; t++)
                    {
                        VectorOps.MatVec(isa, one.P, w.P, stride, x.P + t * xStride, rows, cols);
                        for (int r = 0; r < rows; r++)
                        {
                            string where = $"tokens={tokens} rows={rows} cols={cols} t={t} r={r}";
                            Assert.True(BitConverter.SingleToInt32Bits(one[r]) == BitConverter.SingleToInt32Bits(got[(int)(t * yStride + r)]), where);
                            float scale = 0f;
                            for (int j = 0; j < cols; j++) scale += MathF.Abs(w[r * stride + j] * x[t * xStride + j]);
                            AssertClose(want[(int)(t * yStride + r)], got[(int)(t * yStride + r)], scale, where);
                        }
                        Assert.True(float.IsNaN(got[(int)(t * yStride + rows)]), "the padding after a token's row of y is not written");
                    }
                }
    }

    [Theory, MemberData(nameof(Isas))]
    public void MatVecF16(Isa isa)
    {
        var rng = new Random(6);
        foreach (int rows in MatVecRows)
            foreach (int cols in Sizes)
                foreach (int pad in new[] { 0, 3 })
                {
                    long stride = cols + pad;
                    using Buf<Half> w = Halves(rng, (int)(rows * stride));
                    using Buf<float> x = Floats(rng, cols);
                    for (int r = 0; r < rows; r++)
                        for (int j = cols; j < stride; j++) w[r * stride + j] = Half.NaN;
                    using Buf<float> want = new(rows, float.NaN), got = new(rows, float.NaN);
                    VectorOpsReference.MatVecF16(want.P, w.P, stride, x.P, rows, cols);
                    VectorOps.MatVecF16(isa, got.P, w.P, stride, x.P, rows, cols);
                    got.AssertGuardIntact();
                    for (int r = 0; r < rows; r++)
                    {
                        float scale = 0f;
                        for (int j = 0; j < cols; j++) scale += MathF.Abs((float)w[r * stride + j] * x[j]);
                        AssertClose(want[r], got[r], scale, $"rows={rows} cols={cols} stride={stride} r={r}");
                    }
                }
    }

    // One row against several tokens' rows: each (row, token) as MatMul sums it, bit for bit.
    [Theory, MemberData(nameof(Isas))]
    public void RowDots(Isa isa)
    {
        var rng = new Random(44);
        float** rows = stackalloc float*[19];
        foreach (int count in new[] { 0, 1, 7, 8, 9, 19 })
            foreach (int cols in Sizes)
            {
                using Buf<float> w = Floats(rng, cols), x = Floats(rng, count * cols);
                for (int k = 0; k < count; k++) rows[k] = x.P + k * cols;
                using Buf<float> want = new(count, float.NaN), got = new(count, float.NaN);
                VectorOps.MatMul(isa, want.P, 1, w.P, cols, x.P, cols, count, 1, cols);
                VectorOps.RowDots(isa, got.P, w.P, rows, count, cols);
                got.AssertGuardIntact();
                AssertBitsEqual(want, got, $"count={count} cols={cols}");
            }
    }

    // Rows one after another (an attention head's cached keys, short rows read four at a time): each row sums as it
    // does alone, bit for bit.
    [Theory, MemberData(nameof(Isas))]
    public void MatVecOfConsecutiveRowsSumsEachRowAsAlone(Isa isa)
    {
        var rng = new Random(46);
        foreach (int rows in MatVecRows)
            foreach (int cols in Sizes)
            {
                using Buf<float> w = Floats(rng, rows * cols), x = Floats(rng, cols);
                using Buf<float> want = new(rows, float.NaN), got = new(rows, float.NaN);
                for (int r = 0; r < rows; r++) VectorOps.MatVec(isa, want.P + r, w.P + r * cols, cols, x.P, 1, cols);
                VectorOps.MatVec(isa, got.P, w.P, cols, x.P, rows, cols);
                got.AssertGuardIntact();
                AssertBitsEqual(want, got, $"rows={rows} cols={cols}");
            }
    }

    [Theory, MemberData(nameof(Isas))]
    public void MatVecF16Scaled(Isa isa)
    {
        var rng = new Random(43);
        foreach (int rows in MatVecRows)
            foreach (int cols in Sizes)
            {
                long stride = cols + 3;
                using Buf<Half> w = Halves(rng, (int)(rows * stride));
                using Buf<float> x = Floats(rng, cols), xs = Scaled(x);
                using Buf<float> want = new(rows, float.NaN), got = new(rows, float.NaN);
                VectorOps.MatVecF16(isa, want.P, w.P, stride, x.P, rows, cols);
                VectorOps.MatVecF16Scaled(isa, got.P, w.P, stride, xs.P, rows, cols);
                got.AssertGuardIntact();
                AssertBitsEqual(want, got, $"rows={rows} cols={cols}");
            }
    }

    // Every finite half's bits moved to a float's place are its value times 2^-112; infinities and NaNs are left out
    // (the converter stores none).
    [Fact]
    public void ScaledHalfExhaustive()
    {
        for (int i = 0; i < 65536; i++)
        {
            Half h = BitConverter.UInt16BitsToHalf((ushort)i);
            if (!Half.IsFinite(h)) continue;
            float want = (float)((double)(float)h * Math.Pow(2, -112)), got = HalfBits.Scaled(h);
            if (BitConverter.SingleToInt32Bits(want) != BitConverter.SingleToInt32Bits(got))
                Assert.Fail($"half 0x{i:X4} · 2^-112: want 0x{BitConverter.SingleToInt32Bits(want):X8}, got 0x{BitConverter.SingleToInt32Bits(got):X8}");
        }
    }

    // ... and times 2^112 again they are exactly (float)h: the widening of quantisation scales.
    [Fact]
    public void FiniteHalfToSingleExhaustive()
    {
        for (int i = 0; i < 65536; i++)
        {
            Half h = BitConverter.UInt16BitsToHalf((ushort)i);
            if (!Half.IsFinite(h)) continue;
            float want = (float)h, got = HalfBits.FiniteToSingle(h);
            if (BitConverter.SingleToInt32Bits(want) != BitConverter.SingleToInt32Bits(got))
                Assert.Fail($"half 0x{i:X4}: want 0x{BitConverter.SingleToInt32Bits(want):X8}, got 0x{BitConverter.SingleToInt32Bits(got):X8}");
        }
    }

    // Every half pattern alone among finite halves, at each place of a row of 7 (four to a word, then the tail): found
    // exactly where Half.IsFinite says it is not finite, at its place.
    [Fact]
    public void FirstNonFiniteExhaustive()
    {
        var row = new Half[7];
        for (int i = 0; i < 65536; i++)
        {
            Half h = BitConverter.UInt16BitsToHalf((ushort)i);
            for (int at = 0; at < 7; at++)
            {
                for (int k = 0; k < 7; k++) row[k] = k == at ? h : (Half)(k - 3.5f);
                int want = Half.IsFinite(h) ? -1 : at;
                if (HalfBits.FirstNonFinite(row) != want) Assert.Fail($"half 0x{i:X4} at {at}");
            }
        }
    }

    // x · 2^112 is exact below 2^16; a finite x at or past it would overflow, and the caller must convert instead.
    // Infinities and NaNs scale to themselves.
    [Fact]
    public void ScaleForHalvesRefusesOverflow()
    {
        float up = MathF.Pow(2, 112);
        float* s = stackalloc float[3], x = stackalloc float[] { 1f, 0f, -2f };
        foreach (float fits in new[] { 0f, -0f, float.Epsilon, 1.5f, MathF.BitDecrement(65536f), -MathF.BitDecrement(65536f), float.PositiveInfinity, float.NegativeInfinity, float.NaN })
        {
            x[1] = fits;
            Assert.True(ScaledHalves.Scale(s, x, 3), $"{fits:R}");
            Assert.Equal(fits * up, s[1]);
        }
        foreach (float overflows in new[] { 65536f, -65536f, float.MaxValue })
        {
            x[1] = overflows;
            Assert.False(ScaledHalves.Scale(s, x, 3), $"{overflows:R}");
        }
    }

    [Theory, MemberData(nameof(Isas))]
    public void RmsNorm(Isa isa)
    {
        var rng = new Random(7);
        foreach (int n in Sizes)
        {
            using Buf<float> x = Floats(rng, n), weight = Floats(rng, n);
            using Buf<float> want = new(n, float.NaN), got = new(n, float.NaN), inPlace = x.Clone();
            VectorOpsReference.RmsNorm(want.P, x.P, weight.P, n, 1e-5f);
            VectorOps.RmsNorm(isa, got.P, x.P, weight.P, n, 1e-5f);
            VectorOps.RmsNorm(isa, inPlace.P, inPlace.P, weight.P, n, 1e-5f);
            got.AssertGuardIntact();
            inPlace.AssertGuardIntact();
            for (int i = 0; i < n; i++)
            {
                AssertClose(want[i], got[i], MathF.Abs(want[i]), $"n={n} i={i}");
                Assert.Equal(BitConverter.SingleToInt32Bits(got[i]), BitConverter.SingleToInt32Bits(inPlace[i]));
            }
        }
    }

    [Theory, MemberData(nameof(Isas))]
    public void LayerNorm(Isa isa)
    {
        var rng = new Random(17);
        foreach (int n in Sizes)
        {
            // An offset mean, so a one-pass variance (E[x²] - mean²) would lose digits and fail.
            using Buf<float> x = Floats(rng, n), weight = Floats(rng, n), bias = Floats(rng, n);
            for (int i = 0; i < n; i++) x[i] += 8f;
            using Buf<float> want = new(n, float.NaN), got = new(n, float.NaN), inPlace = x.Clone();
            VectorOpsReference.LayerNorm(want.P, x.P, weight.P, bias.P, n, 1e-5f);
            VectorOps.LayerNorm(isa, got.P, x.P, weight.P, bias.P, n, 1e-5f);
            VectorOps.LayerNorm(isa, inPlace.P, inPlace.P, weight.P, bias.P, n, 1e-5f);
            got.AssertGuardIntact();
            inPlace.AssertGuardIntact();
            for (int i = 0; i < n; i++)
            {
                AssertClose(want[i], got[i], MathF.Abs(want[i]) + 1f, $"n={n} i={i}");
                Assert.Equal(BitConverter.SingleToInt32Bits(got[i]), BitConverter.SingleToInt32Bits(inPlace[i]));
            }
        }
    }

    // Softmax by the vector exp and lane sums: each weight within 1e-5 of the reference's (C's expf, summed in order),
    // relatively; divisors √64 (a power of two) and √48 (one whose quotients round), scores far enough apart that some
    // weights underflow.
    [Theory, MemberData(nameof(Isas))]
    public void Softmax(Isa isa)
    {
        var rng = new Random(8);
        foreach (float divisor in new[] { 8f, MathF.Sqrt(48) })
            foreach (int n in Sizes)
            {
                using Buf<float> want = Floats(rng, n, 800f), got = want.Clone();
                VectorOpsReference.Softmax(want.P, n, divisor);
                VectorOps.Softmax(isa, got.P, n, divisor);
                for (int i = 0; i < n; i++)
                    Assert.True(Math.Abs(got[i] - want[i]) <= 1e-5f * want[i] + 1e-30f, $"n={n} divisor={divisor} i={i}: want {want[i]:R}, got {got[i]:R}");
            }
    }

    // ReLU and FATReLU (a threshold above 0): bit for bit; zeros, the threshold itself and NaN included.
    [Theory, MemberData(nameof(Isas))]
    public void Relu(Isa isa)
    {
        var rng = new Random(10);
        foreach (float threshold in new[] { 0f, 0.25f })
            foreach (int n in Sizes)
            {
                using Buf<float> want = Floats(rng, n), got = want.Clone();
                if (n > 3)
                {
                    want[0] = got[0] = threshold;
                    want[1] = got[1] = -0f;
                    want[2] = got[2] = float.NaN;
                }
                VectorOpsReference.Relu(want.P, n, threshold);
                VectorOps.Relu(isa, got.P, n, threshold);
                AssertBitsEqual(want, got, $"n={n} threshold={threshold}");
            }
    }

    // SiLU by the vector exp: within a few float ulps of the reference's expf form, with saturating inputs; and each
    // element's result is the one it gets alone, wherever it falls (a body lane or the padded tail).
    [Theory, MemberData(nameof(Isas))]
    public void Silu(Isa isa)
    {
        var rng = new Random(11);
        foreach (int n in Sizes)
        {
            using Buf<float> want = Floats(rng, n, 12f);
            if (n > 3)
            {
                want[0] = -100f;
                want[1] = 100f;
                want[2] = -0f;
            }
            using Buf<float> got = want.Clone(), alone = want.Clone(), one = want.Clone();
            VectorOpsReference.Silu(want.P, n);
            VectorOps.Silu(isa, got.P, n);
            for (int i = 0; i < n; i++)
            {
                int ulps = Math.Abs(BitConverter.SingleToInt32Bits(want[i]) - BitConverter.SingleToInt32Bits(got[i]));
                Assert.True(ulps <= 4, $"n={n} i={i}: want {want[i]:R}, got {got[i]:R}, {ulps} ulps apart");
                VectorOps.Silu(isa, alone.P + i, 1);
            }
            AssertBitsEqual(alone, got, $"n={n}, each element alone");
            for (int i = 0; i < n; i++) one[i] = VectorOps.Silu(isa, one[i]);
            AssertBitsEqual(one, got, $"n={n}, each element as one value");
        }
    }

    [Theory, MemberData(nameof(Isas))]
    public void Add(Isa isa)
    {
        var rng = new Random(9);
        foreach (int n in Sizes)
        {
            using Buf<float> want = Floats(rng, n), got = want.Clone(), x = Floats(rng, n);
            VectorOpsReference.Add(want.P, x.P, n);
            VectorOps.Add(isa, got.P, x.P, n);
            AssertBitsEqual(want, got, $"n={n}");
        }
    }

    // Every half bit pattern, converted by the kernel and by (float)Half: bit for bit, except that any NaN matches any NaN.
    [Theory, MemberData(nameof(Isas))]
    public void ToSingleExhaustive(Isa isa)
    {
        using Buf<Half> src = new(65536, Half.NaN);
        for (int i = 0; i < 65536; i++) src[i] = BitConverter.UInt16BitsToHalf((ushort)i);
        using Buf<float> want = new(65536, float.NaN), got = new(65536, float.NaN);
        VectorOpsReference.ToSingle(want.P, src.P, 65536);
        VectorOps.ToSingle(isa, got.P, src.P, 65536);
        got.AssertGuardIntact();
        for (int i = 0; i < 65536; i++)
        {
            bool same = float.IsNaN(want[i]) ? float.IsNaN(got[i]) : BitConverter.SingleToInt32Bits(want[i]) == BitConverter.SingleToInt32Bits(got[i]);
            if (!same) Assert.Fail($"(float)half 0x{i:X4}: want 0x{BitConverter.SingleToInt32Bits(want[i]):X8}, got 0x{BitConverter.SingleToInt32Bits(got[i]):X8}");
        }
    }

    // Sum4 reduces four vectors together with the same additions as Sum: bit for bit the same sums, on values
    // whose sums depend on the order of additions (magnitudes 2^-20 to 2^20, both signs).
    [Theory, InlineData(Isa.V128), InlineData(Isa.V256), InlineData(Isa.V512)]
    public void Sum4SameAsSum(Isa isa)
    {
        switch (isa)
        {
            case Isa.V128: CheckSum4<Vector128<float>, Vector128<int>, Simd128>(); break;
            case Isa.V256: CheckSum4<Vector256<float>, Vector256<int>, Simd256>(); break;
            case Isa.V512: CheckSum4<Vector512<float>, Vector512<int>, Simd512>(); break;
        }
    }

    // StoreTransposed4 (four rows' group scales stored group by group): dst[4i + k] = lane i of vector k.
    [Theory, InlineData(Isa.V128), InlineData(Isa.V256), InlineData(Isa.V512)]
    public void StoreTransposed4(Isa isa)
    {
        switch (isa)
        {
            case Isa.V128: CheckTransposed4<Vector128<float>, Vector128<int>, Simd128>(); break;
            case Isa.V256: CheckTransposed4<Vector256<float>, Vector256<int>, Simd256>(); break;
            case Isa.V512: CheckTransposed4<Vector512<float>, Vector512<int>, Simd512>(); break;
        }
    }

    static void CheckTransposed4<TF, TI, S>() where TF : struct where TI : struct where S : ISimd<TF, TI>
    {
        int c = S.Count;
        float* lanes = stackalloc float[4 * c];
        float* dst = stackalloc float[4 * c + 1];
        for (int i = 0; i < 4 * c; i++) lanes[i] = i;
        dst[4 * c] = float.NaN;
        S.StoreTransposed4(dst, S.Load(lanes), S.Load(lanes + c), S.Load(lanes + 2 * c), S.Load(lanes + 3 * c));
        for (int i = 0; i < c; i++)
            for (int k = 0; k < 4; k++) Assert.Equal(lanes[k * c + i], dst[4 * i + k]);
        Assert.True(float.IsNaN(dst[4 * c]), "wrote past the four vectors");
    }

    static void CheckSum4<TF, TI, S>() where TF : struct where TI : struct where S : ISimd<TF, TI>
    {
        var rng = new Random(41);
        int c = S.Count;
        float* lanes = stackalloc float[4 * c];
        float* sums = stackalloc float[4];
        for (int round = 0; round < 1000; round++)
        {
            for (int i = 0; i < 4 * c; i++) lanes[i] = (rng.NextSingle() - 0.5f) * MathF.ScaleB(1f, rng.Next(-20, 21));
            TF v0 = S.Load(lanes), v1 = S.Load(lanes + c), v2 = S.Load(lanes + 2 * c), v3 = S.Load(lanes + 3 * c);
            S.Sum4(sums, v0, v1, v2, v3);
            float[] want = [S.Sum(v0), S.Sum(v1), S.Sum(v2), S.Sum(v3)];
            for (int k = 0; k < 4; k++)
                Assert.True(BitConverter.SingleToInt32Bits(want[k]) == BitConverter.SingleToInt32Bits(sums[k]),
                    $"round {round}, vector {k}: Sum {want[k]:R}, Sum4 {sums[k]:R}");
        }
    }

    // SumLanes4 and SumQuads4 (the quantised kernels' integer group sums): each vector's lanes (or each 128 bits' four
    // lanes) summed exactly, negative lanes included.
    [Fact]
    public void SumLanes4Exact()
    {
        var rng = new Random(42);
        int* lanes = stackalloc int[32];
        for (int round = 0; round < 1000; round++)
        {
            for (int i = 0; i < 32; i++) lanes[i] = rng.Next(-70000, 70000);
            var narrow = Simd128.SumLanes4(Vector128.Load(lanes), Vector128.Load(lanes + 4), Vector128.Load(lanes + 8), Vector128.Load(lanes + 12));
            var wide = Simd256.SumLanes4(Vector256.Load(lanes), Vector256.Load(lanes + 8), Vector256.Load(lanes + 16), Vector256.Load(lanes + 24));
            for (int k = 0; k < 4; k++)
            {
                int want4 = 0, want8 = 0;
                for (int i = 0; i < 4; i++) want4 += lanes[4 * k + i];
                for (int i = 0; i < 8; i++) want8 += lanes[8 * k + i];
                Assert.Equal(want4, narrow[k]);
                Assert.Equal(want8, wide[k]);
            }
            var quads = Simd256.SumQuads4(Vector256.Load(lanes), Vector256.Load(lanes + 8), Vector256.Load(lanes + 16), Vector256.Load(lanes + 24));
            for (int half = 0; half < 2; half++)
                for (int k = 0; k < 4; k++)
                {
                    int want = 0;
                    for (int i = 0; i < 4; i++) want += lanes[8 * k + 4 * half + i];
                    Assert.Equal(want, quads[4 * half + k]);
                }
        }
    }

    // The scalar conversion the quantised kernels use for group scales, on every half bit pattern, against (float)Half:
    // bit for bit, except that any NaN matches any NaN.
    [Fact]
    public void ScalarHalfToSingleExhaustive()
    {
        for (int i = 0; i < 65536; i++)
        {
            Half h = BitConverter.UInt16BitsToHalf((ushort)i);
            float want = (float)h, got = HalfBits.ToSingle(h);
            bool same = float.IsNaN(want) ? float.IsNaN(got) : BitConverter.SingleToInt32Bits(want) == BitConverter.SingleToInt32Bits(got);
            if (!same) Assert.Fail($"(float)half 0x{i:X4}: want 0x{BitConverter.SingleToInt32Bits(want):X8}, got 0x{BitConverter.SingleToInt32Bits(got):X8}");
        }
    }

    // Every half value, the midpoints to its neighbours (ties to even) and one float ulp either side of them,
    // plus random float bit patterns: the kernel against (Half)float.
    [Theory, MemberData(nameof(Isas))]
    public void ToHalfExhaustive(Isa isa)
    {
        var values = new List<float>();
        for (int i = 0; i < 65536; i++)
        {
            float f = (float)BitConverter.UInt16BitsToHalf((ushort)i);
            float next = (float)BitConverter.UInt16BitsToHalf((ushort)(i + 1));
            values.Add(f);
            if ((i & 0x7FFF) >= 0x7C00 || (i & 0x7FFF) == 0x7BFF) continue;
            float mid = (f + next) / 2; // exact: halves have 11 significant bits
            values.AddRange([mid, MathF.BitDecrement(mid), MathF.BitIncrement(mid)]);
        }
        // The largest half's midpoint to infinity, 65520, which rounds to infinity.
        values.AddRange([65520f, MathF.BitDecrement(65520f), -65520f, float.MaxValue, float.Epsilon]);
        var rng = new Random(16);
        for (int i = 0; i < 200_000; i++) values.Add(BitConverter.Int32BitsToSingle(rng.Next() ^ (rng.Next(2) << 31)));
        int n = values.Count;
        using Buf<float> src = new(n, float.NaN);
        values.CopyTo(src.Span);
        using Buf<Half> want = new(n, Half.NaN), got = new(n, Half.NaN);
        VectorOpsReference.ToHalf(want.P, src.P, n);
        VectorOps.ToHalf(isa, got.P, src.P, n);
        got.AssertGuardIntact();
        for (int i = 0; i < n; i++)
        {
            bool same = Half.IsNaN(want[i]) ? Half.IsNaN(got[i]) : BitConverter.HalfToUInt16Bits(want[i]) == BitConverter.HalfToUInt16Bits(got[i]);
            if (!same)
                Assert.Fail($"(Half){src[i]:R} (0x{BitConverter.SingleToUInt32Bits(src[i]):X8}): want 0x{BitConverter.HalfToUInt16Bits(want[i]):X4}, got 0x{BitConverter.HalfToUInt16Bits(got[i]):X4}");
        }
    }

    [Theory, MemberData(nameof(Isas))]
    public void ConversionsOnOddSizes(Isa isa)
    {
        var rng = new Random(17);
        foreach (int n in Sizes)
        {
            using Buf<Half> halves = Halves(rng, n), wantHalves = new(n, Half.NaN), gotHalves = new(n, Half.NaN);
            using Buf<float> floats = Floats(rng, n, 100f), wantFloats = new(n, float.NaN), gotFloats = new(n, float.NaN);
            VectorOpsReference.ToSingle(wantFloats.P, halves.P, n);
            VectorOps.ToSingle(isa, gotFloats.P, halves.P, n);
            AssertBitsEqual(wantFloats, gotFloats, $"ToSingle n={n}");
            VectorOpsReference.ToHalf(wantHalves.P, floats.P, n);
            VectorOps.ToHalf(isa, gotHalves.P, floats.P, n);
            gotHalves.AssertGuardIntact();
            for (int i = 0; i < n; i++)
                Assert.Equal(BitConverter.HalfToUInt16Bits(wantHalves[i]), BitConverter.HalfToUInt16Bits(gotHalves[i]));
        }
    }

    // Quantised rows: whole groups of 32 only. Odd group counts leave a part-vector group count for every width,
    // and 33 groups make a row longer than one pass of the four-row blocks.
    static readonly int[] GroupCounts = [0, 1, 3, 5, 12, 24, 33];
    public static TheoryData<Isa, WeightType> IsasAndQuants()
    {
        var data = new TheoryData<Isa, WeightType>();
        foreach (var isa in Enum.GetValues<Isa>())
        {
            data.Add(isa, WeightType.Q8);
            data.Add(isa, WeightType.Q4);
        }
        return data;
    }

    [Theory, MemberData(nameof(IsasAndQuants))]
    public void DotQuantised(Isa isa, WeightType type)
    {
        var rng = new Random(20);
        foreach (int groups in GroupCounts)
        {
            int n = groups * Quantization.Group;
            using Buf<byte> w = QuantRows(rng, type, 1, n, Layout.RowBytes(type, n));
            using Buf<byte> x = QuantActivations(rng, n);
            float want = type == WeightType.Q8 ? VectorOpsReference.DotQ8(w.P, x.P, n) : VectorOpsReference.DotQ4(w.P, x.P, n);
            float got = type == WeightType.Q8 ? VectorOps.DotQ8(isa, w.P, x.P, n) : VectorOps.DotQ4(isa, w.P, x.P, n);
            AssertClose(want, got, QuantProductScale(type, w.P, x.P, n), $"{type} n={n}");
        }
    }

    [Theory, MemberData(nameof(IsasAndQuants))]
    public void AxpyQuantised(Isa isa, WeightType type)
    {
        var rng = new Random(21);
        foreach (int groups in GroupCounts)
        {
            int n = groups * Quantization.Group;
            using Buf<byte> w = QuantRows(rng, type, 1, n, Layout.RowBytes(type, n));
            using Buf<float> want = Floats(rng, n), got = want.Clone();
            float a = NextFloat(rng);
            if (type == WeightType.Q8) VectorOpsReference.AxpyQ8(want.P, a, w.P, n); else VectorOpsReference.AxpyQ4(want.P, a, w.P, n);
            if (type == WeightType.Q8) VectorOps.AxpyQ8(isa, got.P, a, w.P, n); else VectorOps.AxpyQ4(isa, got.P, a, w.P, n);
            AssertBitsEqual(want, got, $"{type} n={n}");
        }
    }

    // Several q8 rows added at once (a down projection's neurons): bit for bit the reference's Axpys in turn; counts
    // across the four-row passes, each row in a buffer of its own with guards after it.
    [Theory, MemberData(nameof(Isas))]
    public void AxpyRowsQ8(Isa isa)
    {
        var rng = new Random(23);
        byte** w = stackalloc byte*[9];
        foreach (int count in new[] { 0, 1, 3, 4, 5, 9 })
            foreach (int groups in GroupCounts)
            {
                int n = groups * Quantization.Group;
                var rows = new Buf<byte>[count];
                for (int k = 0; k < count; k++) rows[k] = QuantRows(rng, WeightType.Q8, 1, n, Layout.RowBytes(WeightType.Q8, n));
                for (int k = 0; k < count; k++) w[k] = rows[k].P;
                AssertRowsAdded(rows, rng, n, $"count={count} n={n}", (y, a) => VectorOpsReference.AxpyRowsQ8(y, a, w, count, n),
                                (y, a) => VectorOps.AxpyRowsQ8(isa, y, a, w, count, n));
            }
    }

    // q4 rows added in blocks whose coefficients are quantised: bit for bit the reference for every token; each token's
    // row the same as alone; and within the quantisation's error of the exact sum. Counts around the block (16) leave
    // short blocks; token 1 has a zero coefficient and token 2 one past 2^64 in different blocks (added as Axpys),
    // token 3 a zero in every block (all its rows floats, four a pass); 33 groups leave a tail past the vectors.
    [Theory, MemberData(nameof(Isas))]
    public void AxpyRowsQ4(Isa isa)
    {
        var rng = new Random(24);
        const int Tokens = 4;
        byte** w = stackalloc byte*[40];
        foreach (int count in new[] { 0, 1, 15, 16, 17, 40 })
            foreach (int groups in GroupCounts)
            {
                int n = groups * Quantization.Group;
                var rows = new Buf<byte>[count];
                try
                {
                    for (int k = 0; k < count; k++) rows[k] = QuantRows(rng, WeightType.Q4, 1, n, Layout.RowBytes(WeightType.Q4, n));
                    for (int k = 0; k < count; k++) w[k] = rows[k].P;
                    using Buf<float> a = Floats(rng, Tokens * count), want = Floats(rng, Tokens * n), start = want.Clone(), got = want.Clone(), alone = want.Clone();
                    if (count > 1) a[count + 1] = 0f;
                    if (count > 17) a[2 * count + 17] = 3e19f;
                    for (int r = 5; r < count; r += Quantization.DownRows) a[3 * count + r] = 0f;
                    string what = $"count={count} n={n}";
                    VectorOpsReference.AxpyRowsQ4(want.P, n, a.P, count, w, count, Tokens, n);
                    VectorOps.AxpyRowsQ4(isa, got.P, n, a.P, count, w, count, Tokens, n);
                    got.AssertGuardIntact();
                    AssertBitsEqual(want, got, what);
                    for (int t = 0; t < Tokens; t++) VectorOps.AxpyRowsQ4(isa, alone.P + t * n, 0, a.P + t * count, 0, w, count, 1, n);
                    AssertBitsEqual(want, alone, what + " alone");
                    for (int t = 0; t < Tokens; t++) AssertWithinQuantisation(want.P + t * n, start.P + t * n, a.P + t * count, w, count, n, $"{what} t={t}");
                }
                finally
                {
                    foreach (var row in rows) row?.Dispose();
                }
            }
    }

    // y[n] (from start[n]) against start + the exact Σ_k a_k·w_k: within, per element, float rounding and each
    // quantised block's rounding of its coefficients, half a step (m/127 of the group) times |q - 8| of each row.
    static void AssertWithinQuantisation(float* y, float* start, float* a, byte** w, int count, int n, string what)
    {
        int groups = n / Quantization.Group;
        for (int j = 0; j < n; j++)
        {
            int g = j / Quantization.Group;
            double exact = start[j], size = Math.Abs(start[j]), bound = 0;
            for (int r = 0; r < count; r++)
            {
                double term = a[r] * (double)(float)((Half*)w[r])[g] * (Q4Quant(w[r], groups, j) - 8);
                exact += term;
                size += Math.Abs(term);
            }
            for (int r0 = 0; r0 + Quantization.DownRows <= count; r0 += Quantization.DownRows)
            {
                double m = 0;
                bool quantised = true;
                for (int r = r0; r < r0 + Quantization.DownRows; r++)
                {
                    quantised &= a[r] != 0f && Math.Abs(a[r]) <= Quantization.DownLimit;
                    m = Math.Max(m, Math.Abs(a[r] * (double)(float)((Half*)w[r])[g]));
                }
                if (!quantised) continue;
                for (int r = r0; r < r0 + Quantization.DownRows; r++) bound += 0.5 * m / 127 * Math.Abs(Q4Quant(w[r], groups, j) - 8);
            }
            bound += 1e-5 * size;
            Assert.True(Math.Abs(y[j] - exact) <= bound, $"{what} j={j}: {y[j]} against {exact}, bound {bound}");
        }
    }

    static int Q4Quant(byte* w, int groups, int j)
    {
        int inGroup = j % Quantization.Group;
        byte b = w[2L * groups + j / Quantization.Group * (Quantization.Group / 2) + inGroup % (Quantization.Group / 2)];
        return inGroup < Quantization.Group / 2 ? b & 0xF : b >> 4;
    }

    // The padding between rows (stride > row bytes) is 0xFF: as a scale a NaN, as quants -1 or 15, so a kernel that
    // reads past its row fails.
    [Theory, MemberData(nameof(IsasAndQuants))]
    public void MatVecQuantised(Isa isa, WeightType type)
    {
        var rng = new Random(22);
        foreach (int rows in MatVecRows)
            foreach (int groups in GroupCounts)
                foreach (int pad in new[] { 0, 7 })
                {
                    int cols = groups * Quantization.Group;
                    long stride = Layout.RowBytes(type, cols) + pad;
                    using Buf<byte> w = QuantRows(rng, type, rows, cols, stride);
                    using Buf<byte> x = QuantActivations(rng, cols);
                    using Buf<float> want = new(rows, float.NaN), got = new(rows, float.NaN);
                    if (type == WeightType.Q8) VectorOpsReference.MatVecQ8(want.P, w.P, stride, x.P, rows, cols);
                    else VectorOpsReference.MatVecQ4(want.P, w.P, stride, x.P, rows, cols);
                    if (type == WeightType.Q8) VectorOps.MatVecQ8(isa, got.P, w.P, stride, x.P, rows, cols);
                    else VectorOps.MatVecQ4(isa, got.P, w.P, stride, x.P, rows, cols);
                    got.AssertGuardIntact();
                    for (int r = 0; r < rows; r++)
                        AssertClose(want[r], got[r], QuantProductScale(type, w.P + r * stride, x.P, cols), $"{type} rows={rows} cols={cols} stride={stride} r={r}");
                    // q4 sums each row in one chain over its groups in order at every width (Q4Kernels), so the widths
                    // agree bit for bit however many groups a register packs.
                    if (type != WeightType.Q4 || isa == Isa.Scalar || !IsaSupport.IsAvailable(Isa.V128)) continue;
                    using Buf<float> narrow = new(rows, float.NaN);
                    VectorOps.MatVecQ4(Isa.V128, narrow.P, w.P, stride, x.P, rows, cols);
                    for (int r = 0; r < rows; r++)
                        Assert.True(BitConverter.SingleToInt32Bits(narrow[r]) == BitConverter.SingleToInt32Bits(got[r]), $"{isa} against V128: rows={rows} cols={cols} r={r}");
                }
    }

    // Several tokens at once: each token's row of Y bit for bit what MatVec gives it (on the same Isa), and close to the
    // reference; odd token counts exercise the single-token tile, padded rows (0xFF) the strides, 8 to 35 tokens q4's
    // token lanes (4, 8 or 16 per vector) and the tokens past them.
    [Theory, MemberData(nameof(IsasAndQuants))]
    public void MatMulQuantised(Isa isa, WeightType type)
    {
        var rng = new Random(23);
        foreach (int tokens in new[] { 0, 1, 2, 3, 5, 8, 19, 35 })
            foreach (int rows in MatVecRows)
                foreach (int groups in new[] { 0, 1, 3, 5, 12 })
                {
                    int cols = groups * Quantization.Group;
                    long stride = Layout.RowBytes(type, cols) + 7, yStride = rows + 1;
                    long xStride = Quantization.ActivationBytes(cols) + 12;
                    using Buf<byte> w = QuantRows(rng, type, rows, cols, stride);
                    using Buf<byte> x = new((int)(tokens * xStride), 0xFF);
                    for (int t = 0; t < tokens; t++)
                    {
                        using Buf<byte> row = QuantActivations(rng, cols);
                        Buffer.MemoryCopy(row.P, x.P + t * xStride, xStride, Quantization.ActivationBytes(cols));
                    }
                    using Buf<float> want = new((int)(tokens * yStride), float.NaN), got = new((int)(tokens * yStride), float.NaN);
                    using Buf<float> one = new(rows, float.NaN);
                    if (type == WeightType.Q8) VectorOpsReference.MatMulQ8(want.P, yStride, w.P, stride, x.P, xStride, tokens, rows, cols);
                    else VectorOpsReference.MatMulQ4(want.P, yStride, w.P, stride, x.P, xStride, tokens, rows, cols);
                    if (type == WeightType.Q8) VectorOps.MatMulQ8(isa, got.P, yStride, w.P, stride, x.P, xStride, tokens, rows, cols);
                    else VectorOps.MatMulQ4(isa, got.P, yStride, w.P, stride, x.P, xStride, tokens, rows, cols);
                    got.AssertGuardIntact();
                    for (int t = 0; t < tokens; t++)
                    {
                        byte* xt = x.P + t * xStride;
                        if (type == WeightType.Q8) VectorOps.MatVecQ8(isa, one.P, w.P, stride, xt, rows, cols);
                        else VectorOps.MatVecQ4(isa, one.P, w.P, stride, xt, rows, cols);
                        for (int r = 0; r < rows; r++)
                        {
                            string where = $"{type} tokens={tokens} rows={rows} cols={cols} t={t} r={r}";
                            float value = got[(int)(t * yStride + r)];
                            Assert.True(BitConverter.SingleToInt32Bits(one[r]) == BitConverter.SingleToInt32Bits(value), where);
                            AssertClose(want[(int)(t * yStride + r)], value, QuantProductScale(type, w.P + r * stride, xt, cols), where);
                        }
                        for (long r = rows; r < yStride; r++) Assert.True(float.IsNaN(got[(int)(t * yStride + r)]), "wrote past the row's outputs");
                    }
                }
    }

    // q4 token lanes and packed groups (the tokens past the lanes: 5 groups are a register of four and one alone at 512
    // bits) at the largest sums a group makes: every nibble 15, or 0 (-8), against activations of 127 and -127
    // (quantisation's range), where partial sums kept in int16 lanes for longer than a group would overflow. Scales of 1
    // keep every result an exact integer.
    [Theory, MemberData(nameof(Isas))]
    public void MatMulQ4AtTheExtremes(Isa isa)
    {
        const int tokens = 35, rows = 5, groups = 5, cols = groups * Quantization.Group;
        long stride = Layout.RowBytes(WeightType.Q4, cols), xStride = Quantization.ActivationBytes(cols);
        foreach (byte quants in new byte[] { 0xFF, 0x00, 0x0F })
            foreach (sbyte value in new sbyte[] { 127, -127 })
            {
                using Buf<byte> w = new((int)(rows * stride), quants);
                for (int r = 0; r < rows; r++)
                    for (int g = 0; g < groups; g++) ((Half*)(w.P + r * stride))[g] = (Half)1f;
                using Buf<byte> x = new((int)(tokens * xStride), (byte)value);
                for (int t = 0; t < tokens; t++)
                    for (int g = 0; g < groups; g++) ((float*)(x.P + t * xStride))[g] = 1f;
                using Buf<float> want = new(tokens * rows, float.NaN), got = new(tokens * rows, float.NaN);
                VectorOpsReference.MatMulQ4(want.P, rows, w.P, stride, x.P, xStride, tokens, rows, cols);
                VectorOps.MatMulQ4(isa, got.P, rows, w.P, stride, x.P, xStride, tokens, rows, cols);
                got.AssertGuardIntact();
                for (int i = 0; i < tokens * rows; i++) Assert.True(want[i] == got[i], $"quants 0x{quants:X2} x {value} i={i}: {want[i]} != {got[i]}");
            }
    }

    // Activations quantised bit for bit as the reference does it, group by group: random values, ties at .5 steps, all
    // zeros, values too small for their scale to be inverted, and groups holding a NaN or an infinity.
    [Theory, MemberData(nameof(Isas))]
    public void QuantizeActivations(Isa isa)
    {
        var rng = new Random(29);
        foreach (int groups in GroupCounts)
        {
            int n = groups * Quantization.Group;
            using Buf<float> x = Floats(rng, n, 3f);
            for (int g = 0; g < groups; g++)
            {
                float* group = x.P + g * Quantization.Group;
                switch (g % 6)
                {
                    case 1: for (int j = 0; j < Quantization.Group; j++) group[j] = (j - 15) * 0.5f; break; // max 8: steps of 127/16, ties
                    case 2: for (int j = 0; j < Quantization.Group; j++) group[j] = j % 2 == 0 ? 0f : -0f; break;
                    case 3: for (int j = 0; j < Quantization.Group; j++) group[j] *= 1e-38f; break; // subnormal scale
                    case 4: group[g % Quantization.Group] = float.NaN; break;
                    case 5: group[(g * 7) % Quantization.Group] = g % 2 == 0 ? float.PositiveInfinity : float.NegativeInfinity; break;
                }
            }
            int bytes = Quantization.ActivationBytes(n);
            using Buf<byte> want = new(bytes, 0xAB), got = new(bytes, 0xAB);
            VectorOpsReference.QuantizeActivations(want.P, x.P, n);
            VectorOps.QuantizeActivations(isa, got.P, x.P, n);
            got.AssertGuardIntact();
            for (int i = 0; i < bytes; i++) Assert.True(want[i] == got[i], $"groups={groups} byte {i}: {got[i]}, the reference has {want[i]}");
        }
    }

    [Theory, MemberData(nameof(IsasAndQuants))]
    public void ToSingleQuantised(Isa isa, WeightType type)
    {
        var rng = new Random(23);
        foreach (int groups in GroupCounts)
        {
            int n = groups * Quantization.Group;
            using Buf<byte> w = QuantRows(rng, type, 1, n, Layout.RowBytes(type, n));
            using Buf<float> want = Dequantised(type, w.P, n), got = new(n, float.NaN);
            if (type == WeightType.Q8) VectorOps.ToSingleQ8(isa, got.P, w.P, n); else VectorOps.ToSingleQ4(isa, got.P, w.P, n);
            AssertBitsEqual(want, got, $"{type} n={n}");
        }
    }

    // The documented layout, built by hand: q8 [scale][int8 quants]; q4 [scale][byte j = element j | element j + 16 << 4], value (q - 8) · scale.
    // The kernels define the group; the model file's layout (shared with the generator, which cannot see the kernels)
    // must size rows by the same one.
    [Fact]
    public void QuantisedRowLayoutIsTheDocumentedOne()
    {
        Assert.Equal(Quantization.Group, Layout.QuantGroup);
        using Buf<float> x = new(32, float.NaN), back = new(32, float.NaN);
        for (int j = 0; j < 32; j++) x[j] = j == 0 ? 127f : j - 16;
        using Buf<byte> q8 = new((int)Layout.RowBytes(WeightType.Q8, 32), 0xEE);
        Quantization.QuantizeQ8(q8.P, x.P, 32);
        Assert.Equal(34, q8.Length);
        Assert.Equal(1f, (float)((Half*)q8.P)[0]); // max|x| / 127
        for (int j = 0; j < 32; j++) Assert.Equal((sbyte)x[j], (sbyte)q8[2 + j]);
        q8.AssertGuardIntact();

        for (int j = 0; j < 32; j++) x[j] = j < 16 ? j - 8 : 0f; // the extreme, -8, sets scale = -8 / -8 = 1
        using Buf<byte> q4 = new((int)Layout.RowBytes(WeightType.Q4, 32), 0xEE);
        Quantization.QuantizeQ4(q4.P, x.P, 32);
        Assert.Equal(18, q4.Length);
        Assert.Equal(1f, (float)((Half*)q4.P)[0]);
        for (int j = 0; j < 16; j++) Assert.Equal((byte)(j | 8 << 4), q4[2 + j]);
        q4.AssertGuardIntact();
        VectorOpsReference.ToSingleQ4(back.P, q4.P, 32);
        for (int j = 0; j < 32; j++) Assert.Equal(x[j], back[j]);
    }

    // q4's scale search keeps each group's squared error at or below that of the plain Q4_0 rule (scale = m / -8), and
    // below it on most groups of Gaussian-like weights.
    [Fact]
    public void Q4ScaleSearchBeatsTheMaxRule()
    {
        var rng = new Random(31);
        const int groups = 200, n = groups * 32;
        using Buf<float> x = Floats(rng, n, 1f), back = new(n, float.NaN);
        for (int j = 0; j < n; j++) x[j] = (float)(x[j] * x[j] * x[j]); // heavier tails than uniform, as real weights have
        using Buf<byte> w = new((int)Layout.RowBytes(WeightType.Q4, n), 0xEE);
        Quantization.QuantizeQ4(w.P, x.P, n);
        VectorOpsReference.ToSingleQ4(back.P, w.P, n);
        int better = 0;
        for (int g = 0; g < groups; g++)
        {
            float extreme = 0f;
            for (int j = 0; j < 32; j++) if (MathF.Abs(x[g * 32 + j]) > MathF.Abs(extreme)) extreme = x[g * 32 + j];
            float maxRule = (float)(Half)(extreme / -8f);
            double searched = 0, plain = 0;
            for (int j = 0; j < 32; j++)
            {
                float v = x[g * 32 + j];
                float q = maxRule == 0f ? 0f : Math.Clamp(MathF.Round(v / maxRule), -8f, 7f) * maxRule;
                plain += (v - q) * (v - q);
                searched += (v - back[g * 32 + j]) * (v - back[g * 32 + j]);
            }
            Assert.True(searched <= plain * 1.001 + 1e-12, $"group {g}: searched scale error {searched}, max rule {plain}");
            if (searched < plain * 0.99) better++;
        }
        Assert.True(better > groups / 2, $"the search improved only {better} of {groups} groups");
    }

    // Round trip of random rows (with one group of zeros and one spanning many magnitudes): q8 within half a step
    // of its group's scale, q4 within one step (the side opposite the extreme reaches only +7 steps).
    [Theory]
    [InlineData(WeightType.Q8, 0.5f)]
    [InlineData(WeightType.Q4, 1f)]
    public void QuantisationErrorIsBoundedByTheGroupScale(WeightType type, float steps)
    {
        var rng = new Random(24);
        const int n = 7 * 32;
        using Buf<float> x = Floats(rng, n, 3f);
        for (int j = 32; j < 64; j++) x[j] = 0f;
        for (int j = 64; j < 96; j++) x[j] = MathF.Pow(10f, -4 + (j - 64) / 8f) * (j % 2 == 0 ? 1 : -1);
        using Buf<byte> w = new((int)Layout.RowBytes(type, n), 0xEE);
        if (type == WeightType.Q8) Quantization.QuantizeQ8(w.P, x.P, n); else Quantization.QuantizeQ4(w.P, x.P, n);
        w.AssertGuardIntact();
        using Buf<float> back = Dequantised(type, w.P, n);
        for (int j = 0; j < n; j++)
        {
            float step = MathF.Abs((float)((Half*)w.P)[j / 32]);
            Assert.True(MathF.Abs(x[j] - back[j]) <= steps * step * 1.001f, $"{type} j={j}: {x[j]} came back as {back[j]} (step {step})");
        }
        for (int j = 32; j < 64; j++) Assert.Equal(0f, back[j]);
    }

    // Activations: each within half a step of its group's f32 scale, a group of zeros exact, and a group holding a
    // non-finite value NaN (scale NaN), so the products are NaN as float products would be.
    [Fact]
    public void ActivationQuantisationErrorIsHalfAStep()
    {
        var rng = new Random(25);
        const int n = 5 * 32;
        using Buf<float> x = Floats(rng, n, 3f);
        for (int j = 32; j < 64; j++) x[j] = 0f;
        for (int j = 64; j < 96; j++) x[j] = MathF.Pow(10f, -4 + (j - 64) / 8f) * (j % 2 == 0 ? 1 : -1);
        x[100] = float.PositiveInfinity;
        using Buf<byte> xq = new(Quantization.ActivationBytes(n), 0xEE);
        VectorOps.QuantizeActivations(xq.P, x.P, n);
        xq.AssertGuardIntact();
        float* scales = (float*)xq.P;
        sbyte* q = (sbyte*)(xq.P + 4 * (n / 32));
        Assert.True(float.IsNaN(scales[3]));
        for (int j = 0; j < n; j++)
        {
            if (j / 32 == 3) continue;
            float back = q[j] * scales[j / 32];
            Assert.True(MathF.Abs(x[j] - back) <= 0.5f * scales[j / 32] * 1.001f, $"j={j}: {x[j]} came back as {back}");
        }
        Assert.Equal(0f, scales[1]);
    }

    [Fact]
    public void QuantisationRefusesWeightsItCannotStore()
    {
        using Buf<float> x = new(32, 0f);
        using Buf<byte> w = new(34, 0);
        x[5] = float.NaN;
        Assert.Throws<OverflowException>(() => Quantization.QuantizeQ8(w.P, x.P, 32));
        x[5] = 1e10f; // its scale, 1e10 / 127, is beyond half's 65504
        Assert.Throws<OverflowException>(() => Quantization.QuantizeQ8(w.P, x.P, 32));
        Assert.Throws<ArgumentException>(() => Quantization.QuantizeQ4(w.P, x.P, 31));
    }

    // Rows of random bytes after scales drawn from normal and subnormal halves (and zero): every quant value occurs.
    // x[n] prepared as the q8·q8 and q4·q8 kernels read it, with a guard after it
    static Buf<byte> QuantActivations(Random rng, int n)
    {
        using Buf<float> x = Floats(rng, n);
        var b = new Buf<byte>(Quantization.ActivationBytes(n), 0xFF);
        VectorOps.QuantizeActivations(b.P, x.P, n);
        return b;
    }

    // Σ_j |w_j · x_j| of a quantised row and prepared activations: the integer parts are exact, so the kernels differ
    // from the reference only in how the per-group float terms are summed, a rounding relative to this.
    static float QuantProductScale(WeightType type, byte* w, byte* xq, int n)
    {
        using Buf<float> values = Dequantised(type, w, n);
        int groups = n / Quantization.Group;
        float scale = 0f;
        for (int j = 0; j < n; j++) scale += MathF.Abs(values[j] * ((float*)xq)[j / Quantization.Group] * ((sbyte*)(xq + 4L * groups))[j]);
        return scale;
    }

    static Buf<byte> QuantRows(Random rng, WeightType type, int rows, int n, long stride)
    {
        var b = new Buf<byte>((int)(rows * stride), 0xFF);
        int groups = n / Quantization.Group;
        for (int r = 0; r < rows; r++)
        {
            byte* row = b.P + r * stride;
            for (long i = 0; i < stride; i++) row[i] = i < Layout.RowBytes(type, n) ? (byte)rng.Next(256) : (byte)0xFF;
            for (int g = 0; g < groups; g++)
                ((Half*)row)[g] = g % 7 == 3 ? (Half)0f : (Half)NextFloat(rng, g % 5 == 4 ? 6e-6f : 0.05f);
        }
        return b;
    }

    static Buf<float> Dequantised(WeightType type, byte* w, int n)
    {
        var b = new Buf<float>(n, float.NaN);
        if (type == WeightType.Q8) VectorOpsReference.ToSingleQ8(b.P, w, n); else VectorOpsReference.ToSingleQ4(b.P, w, n);
        return b;
    }

    [Fact]
    public void IsaSupportIsConsistent()
    {
        output.WriteLine(IsaSupport.Describe());
        Assert.True(IsaSupport.IsAvailable(Isa.Scalar));
        Assert.True(IsaSupport.IsAvailable(IsaSupport.Best));
        Assert.StartsWith(IsaSupport.Best.ToString(), IsaSupport.Describe());
        foreach (Isa isa in Enum.GetValues<Isa>())
            if (isa > IsaSupport.Best) Assert.False(IsaSupport.IsAvailable(isa));
    }

    static float NextFloat(Random rng, float scale = 1f) => (float)(rng.NextDouble() * 2 - 1) * scale;

    static Buf<float> Floats(Random rng, int n, float scale = 1f)
    {
        var b = new Buf<float>(n, float.NaN);
        for (int i = 0; i < n; i++) b[i] = NextFloat(rng, scale);
        return b;
    }

    // x · 2^112, as ScaledHalves.Scale makes a scaled products' input.
    static Buf<float> Scaled(Buf<float> x)
    {
        var b = new Buf<float>(x.Length, float.NaN);
        Assert.True(ScaledHalves.Scale(b.P, x.P, x.Length));
        return b;
    }

    // Mostly normal halves in (-2, 2), with every seventh tiny enough to be subnormal.
    static Buf<Half> Halves(Random rng, int n)
    {
        var b = new Buf<Half>(n, Half.NaN);
        for (int i = 0; i < n; i++) b[i] = (Half)NextFloat(rng, i % 7 == 6 ? 6e-5f : 2f);
        return b;
    }

    // Overwrites the first few elements with the values activations must treat exactly as C does.
    static Buf<float> WithSpecials(Buf<float> b)
    {
        float[] specials = [float.NaN, -0f, 0f, float.PositiveInfinity, float.NegativeInfinity, float.Epsilon, -float.Epsilon, 100f, -100f];
        for (int i = 0; i < Math.Min(b.Length, specials.Length); i++) b[i] = specials[i];
        return b;
    }

    static void AssertClose(float want, float got, float scale, string what)
    {
        float error = MathF.Abs(want - got);
        if (!(error <= Tolerance * scale)) Assert.Fail($"{what}: want {want:R}, got {got:R}, error {error:R} > {Tolerance} * {scale:R}");
    }

    static void AssertBitsEqual(Buf<float> want, Buf<float> got, string what)
    {
        got.AssertGuardIntact();
        for (int i = 0; i < want.Length; i++)
        {
            int w = BitConverter.SingleToInt32Bits(want[i]), g = BitConverter.SingleToInt32Bits(got[i]);
            if (w != g) Assert.Fail($"{what} i={i}: want {want[i]:R} (0x{w:X8}), got {got[i]:R} (0x{g:X8})");
        }
    }
}

/// <summary>
/// n elements of pinned native-layout memory, starting one element past the array's (aligned) start so
/// kernels see an unaligned pointer, followed by guard elements that must survive untouched.
/// </summary>
sealed unsafe class Buf<T>(int n, T guard) : IDisposable where T : unmanaged
{
    const int Guard = 64;
    readonly T[] array = CreateArray(n, guard);

    public int Length => n;
    public T* P => (T*)Unsafe.AsPointer(ref array[1]);
    public Span<T> Span => array.AsSpan(1, n);

    public T this[long i]
    {
        get => array[1 + i];
        set => array[1 + i] = value;
    }

    public Buf<T> Clone()
    {
        var copy = new Buf<T>(n, guard);
        Span.CopyTo(copy.Span);
        return copy;
    }

    // Compared bit for bit: the guard is usually NaN.
    public void AssertGuardIntact()
    {
        ReadOnlySpan<byte> expected = MemoryMarshal.AsBytes(new ReadOnlySpan<T>(in guard));
        if (!MemoryMarshal.AsBytes(array.AsSpan(0, 1)).SequenceEqual(expected)) Assert.Fail("kernel wrote before its output");
        for (int i = 1 + n; i < array.Length; i++)
            if (!MemoryMarshal.AsBytes(array.AsSpan(i, 1)).SequenceEqual(expected)) Assert.Fail($"kernel wrote past its output, at element {i - 1}");
    }

    // The kernels hold only raw pointers; `using` keeps the pinned array reachable (not collected) until the scope ends.
    public void Dispose() => GC.KeepAlive(array);

    static T[] CreateArray(int n, T guard)
    {
        var a = GC.AllocateArray<T>(1 + n + Guard, pinned: true);
        a.AsSpan().Fill(guard);
        return a;
    }
}
