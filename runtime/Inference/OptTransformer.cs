using AotFlash.Ffn;
using AotFlash.Flash;
using AotFlash.Kernels;

namespace AotFlash.Inference;

/// <summary>
/// The OPT family (Hugging Face's OPTForCausalLM with the LayerNorm before each block): learned positions added to the
/// token embedding, LayerNorm with bias, biases on every projection, multi-head attention without rotation, and a plain
/// FFN fc2(act(fc1 x + b1)) + b2 over neuron bundles [fc1 row | fc2 column | fc1 bias].
/// </summary>
public abstract unsafe class OptTransformer<TWeights, TResident, TActivation> : DecoderTransformer<TWeights, TResident, TActivation>
    where TWeights : struct, IWeightFormat
    where TResident : struct, IWeightFormat
    where TActivation : struct, IActivation
{
    protected OptTransformer(ModelInfo info, ModelWeights weights, IFfnSource ffnSource, int threads)
        : base(info, weights, ffnSource, threads) { }
}
