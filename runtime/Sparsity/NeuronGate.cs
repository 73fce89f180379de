using AotFlash.Flash;
using AotFlash.Kernels;

namespace AotFlash.Sparsity;

/// <summary>The part of a neuron bundle that decides whether the neuron is active: its gate row (llama's w1, OPT's
/// fc1) and, where the family has one, the gate's bias. What predictors are trained against and recall is measured by.</summary>
public static unsafe class NeuronGate
{
    /// <summary>dst[dim] = the gate row of a bundle (its first dim elements), as floats.</summary>
    public static void Row(float* dst, byte* bundle, int dim, WeightType type) => WeightRows.ToSingle(type, dst, bundle, dim);

    /// <summary>The gate's bias of a bundle (OPT's fc1 bias); 0 for families without one.</summary>
    public static float Bias(byte* bundle, Layout layout) => layout.BundleBias >= 0 ? *(float*)(bundle + layout.BundleBias) : 0f;

    /// <summary>gate · x + bias of one bundle: the value the activation decides on. <paramref name="row"/> is dim floats of scratch.</summary>
    public static float PreActivation(byte* bundle, float* x, float* row, Layout layout)
    {
        Row(row, bundle, layout.Shape.Dim, layout.Shape.Weights);
        return VectorOps.Dot(row, x, layout.Shape.Dim) + Bias(bundle, layout);
    }
}
