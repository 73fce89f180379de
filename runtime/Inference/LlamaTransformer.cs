using AotFlash.Ffn;
using AotFlash.Flash;
using AotFlash.Kernels;

namespace AotFlash.Inference;

/// <summary>
/// The llama family (llama2.c's model): RMSNorm, RoPE on q and k, grouped-query attention, and a gated FFN
/// w2(act(w1 x) · w3 x) over neuron bundles [w1 row | w3 row | w2 column]; no biases.
/// </summary>
public abstract unsafe class LlamaTransformer<TWeights, TResident, TActivation> : DecoderTransformer<TWeights, TResident, TActivation>
    where TWeights : struct, IWeightFormat
    where TResident : struct, IWeightFormat
    where TActivation : struct, IActivation
{
    protected LlamaTransformer(ModelInfo info, ModelWeights weights, IFfnSource ffnSource, int threads)
        : base(info, weights, ffnSource, threads) { }

    /// <summary>o[t, n] = rmsnorm(x[t, n]) * weight[n] for each row t, weight in the resident section; o may be x.</summary>
    protected void RmsNorm(float* o, float* x, long weight, int count, int n, float eps)
    {
        for (int t = 0; t < count; t++) VectorOps.RmsNorm(o + (long)t * n, x + (long)t * n, (float*)(R + weight), n, eps);
    }
}
