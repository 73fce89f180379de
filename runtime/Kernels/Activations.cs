namespace AotFlash.Kernels;

/// <summary>The FFN activation, applied per neuron; a struct type argument, so every model gets its own specialised code.</summary>
public unsafe interface IActivation
{
    /// <summary>One neuron's activation (a token's neurons, one at a time): bit for bit what the row form gives it.</summary>
    static abstract float Apply(float x);

    /// <summary>x[n] activated in place, a row of neurons at once (blocks of tokens). Each element's result does not
    /// depend on n or on where it falls.</summary>
    static abstract void Apply(float* x, int n);
}

public readonly unsafe struct Relu : IActivation
{
    public static float Apply(float x) => x > 0f ? x : 0f;
    public static void Apply(float* x, int n) => VectorOps.Relu(x, n, 0f);
}

public readonly unsafe struct Silu : IActivation
{
    // llama2.c's form through the vector exp, within 4 ulps of its expf (VectorOpsTests.Silu): logits move by far less
    // than the references' 1e-4. One neuron goes through a vector of its own, so that a token's sums are the same
    // one token at a time as in a block.
    public static float Apply(float x) => VectorOps.Silu(x);
    public static void Apply(float* x, int n) => VectorOps.Silu(x, n);
}

/// <summary>The exact GELU, x·Φ(x) = ½·x·erfc(-x/√2), as Hugging Face's "gelu" (not the tanh approximation, which
/// differs by up to about 5e-4).</summary>
public readonly unsafe struct Gelu : IActivation
{
    public static float Apply(float x) => (float)(0.5 * x * Erfc(-x * 0.70710678118654752));

    public static void Apply(float* x, int n)
    {
        for (int i = 0; i < n; i++) x[i] = Apply(x[i]);
    }

    /// <summary>erfc(z) by the Chebyshev fit of Numerical Recipes (§6.2, erfcc): relative error below 1.2e-7 for every
    /// z, evaluated in double; then GELU's error is far below a float's rounding of it.</summary>
    internal static double Erfc(double z)
    {
        double a = Math.Abs(z), t = 1.0 / (1.0 + 0.5 * a);
        double r = t * Math.Exp(-a * a - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 + t * (0.27886807 +
                   t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))));
        return z >= 0 ? r : 2.0 - r;
    }
}
