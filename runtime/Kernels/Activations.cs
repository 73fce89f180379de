namespace AotFlash.Kernels;

/// <summary>The FFN activation, applied per neuron; a struct type argument, so every model gets its own specialised code.</summary>
public interface IActivation
{
    static abstract float Apply(float x);
}

public readonly struct Relu : IActivation
{
    public static float Apply(float x) => x > 0f ? x : 0f;
}

public readonly struct Silu : IActivation
{
    // The form llama2.c uses, so results agree to the last bit where expf does.
    public static float Apply(float x) => x * (1.0f / (1.0f + MathF.Exp(-x)));
}

public readonly struct Gelu : IActivation
{
    public static float Apply(float x) => 0.5f * x * (1f + MathF.Tanh(0.7978845608f * (x + 0.044715f * x * x * x)));
}
