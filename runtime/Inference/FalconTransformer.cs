using AotFlash.Ffn;
using AotFlash.Flash;
using AotFlash.Kernels;

namespace AotFlash.Inference;

/// <summary>
/// The Falcon family (Hugging Face's FalconForCausalLM, classic Falcon-7B architecture): one LayerNorm with bias per
/// layer whose output feeds attention and the FFN side by side (x = x + attention + FFN), multi-query attention with
/// RoPE, no biases on the projections, and a plain FFN fc2(act(fc1 x)) over neuron bundles [fc1 row | fc2 column].
/// The converter puts q and k rows into the interleaved RoPE order, as for Hugging Face Llama folders.
/// </summary>
public abstract unsafe class FalconTransformer<TWeights, TResident, TActivation> : DecoderTransformer<TWeights, TResident, TActivation>
    where TWeights : struct, IWeightFormat
    where TResident : struct, IWeightFormat
    where TActivation : struct, IActivation
{
    protected FalconTransformer(ModelInfo info, ModelWeights weights, IFfnSource ffnSource, int threads)
        : base(info, weights, ffnSource, threads) { }
}
