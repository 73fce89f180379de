using AotFlash.Flash;
using AotFlash.Kernels;

namespace AotFlash.Tests.Flash;

/// <summary>F16's products through its prepared input (x scaled by 2^112 where <see cref="ScaledHalves.Enabled"/>, and
/// where that is exact) against the converting kernels: bit for bit, whether the input was scaled or, past 2^16, not.</summary>
public unsafe class WeightFormatTests
{
    const int Rows = 7, Cols = 77;

    [Theory]
    [InlineData(1f)]
    [InlineData(70000f)] // one element of x, or one coefficient, past 2^16: x · 2^112 would overflow
    public void F16ProductsAreTheConvertingOnes(float large)
    {
        var rng = new Random(5);
        Half[] w = new Half[Rows * Cols];
        float[] x = new float[Cols], a = new float[Rows];
        for (int i = 0; i < w.Length; i++) w[i] = (Half)(rng.NextSingle() * 2 - 1) * (i % 9 == 0 ? (Half)1e-4f : (Half)1f);
        for (int i = 0; i < Cols; i++) x[i] = rng.NextSingle() * 2 - 1;
        for (int i = 0; i < Rows; i++) a[i] = rng.NextSingle() * 2 - 1;
        x[5] = large;
        a[3] = large;
        byte[] prepared = new byte[F16.InputBytes(Cols)];
        float[] want = new float[Rows], got = new float[Rows], wantAxpy = new float[Cols], gotAxpy = new float[Cols];
        fixed (Half* pw = w)
        fixed (float* px = x, pa = a, pWant = want, pGot = got, pWantAxpy = wantAxpy, pGotAxpy = gotAxpy)
        fixed (byte* pp = prepared)
        {
            F16.PrepareInput(pp, px, Cols);
            VectorOps.MatVecF16(pWant, pw, Cols, px, Rows, Cols);
            F16.MatVec(pGot, (byte*)pw, Cols * sizeof(Half), px, pp, Rows, Cols);
            Assert.Equal(want, got);
            for (int r = 0; r < Rows; r++) Assert.Equal(VectorOps.DotF16(pw + r * Cols, px, Cols), F16.Dot((byte*)(pw + r * Cols), px, pp, Cols));
            Half** halfRows = stackalloc Half*[Rows];
            for (int r = 0; r < Rows; r++) halfRows[r] = pw + r * Cols;
            VectorOps.AxpyRowsF16(pWantAxpy, pa, halfRows, Rows, Cols);
            F16.AxpyRows(pGotAxpy, pa, (byte**)halfRows, Rows, Cols);
            Assert.Equal(wantAxpy, gotAxpy);
        }
    }
}
