using AotFlash.Kernels;

namespace AotFlash.Tests.Kernels;

/// <summary>The activations against their definitions, computed in double here.</summary>
public sealed class ActivationTests
{
    /// <summary>erf(z) by its Taylor series, summed in double: for |z| ≤ 4 the largest term is below 1e7, so the sum
    /// keeps about nine significant digits, far more than a float has.</summary>
    private static double Erf(double z)
    {
        double term = z, sum = z;
        for (int n = 1; n < 200; n++)
        {
            term *= -z * z / n;
            sum += term / (2 * n + 1);
        }
        return 2 / Math.Sqrt(Math.PI) * sum;
    }

    // Falcon's (and Hugging Face's) "gelu" is x·Φ(x), not the tanh approximation: the two differ by up to ~5e-4, and the
    // falcon-tiny fixtures cannot tell them apart (2.2e-5 in the logits), so the activation is checked here.
    [Fact]
    public void GeluIsTheExactOne()
    {
        double worst = 0, fromTanh = 0;
        for (double x = -5.5; x <= 5.5; x += 1.0 / 64)
        {
            double want = 0.5 * x * (1 + Erf(x / Math.Sqrt(2)));
            float got = Gelu.Apply((float)x);
            worst = Math.Max(worst, Math.Abs(got - want) / Math.Max(1, Math.Abs(want)));
            double tanh = 0.5 * x * (1 + Math.Tanh(Math.Sqrt(2 / Math.PI) * (x + 0.044715 * x * x * x)));
            fromTanh = Math.Max(fromTanh, Math.Abs(tanh - want));
        }
        Assert.True(worst < 3e-7, $"largest error {worst:E2}");
        Assert.True(fromTanh > 1e-4, $"the tanh approximation is within {fromTanh:E2}: this grid cannot tell the two apart");
        Assert.Equal(0f, Gelu.Apply(0f));
        Assert.Equal(0f, Gelu.Apply(-30f));
        Assert.Equal(30f, Gelu.Apply(30f));
    }

    [Fact]
    public void ReluAndSiluFollowTheirDefinitions()
    {
        foreach (float x in new[] { -3f, -0.5f, 0f, 0.25f, 2f })
        {
            Assert.Equal(Math.Max(0f, x), Relu.Apply(x));
            Assert.Equal(x / (1 + Math.Exp(-x)), Silu.Apply(x), 6);
        }
    }
}
