using AotFlash.Ffn;
using AotFlash.Flash;
using AotFlash.Kernels;

namespace AotFlash.Inference;

/// <summary>
/// The llama family (llama2.c's model): RMSNorm, RoPE on q and k, grouped-query attention, and a gated FFN
/// w2(act(w1 x) · w3 x) over neuron bundles [w1 row | w3 row | w2 column]; no biases.
/// </summary>
public abstract unsafe class LlamaTransformer<TWeights, TActivation> : DecoderTransformer<TWeights, TActivation>
    where TWeights : struct, IWeightFormat
    where TActivation : struct, IActivation
{
    private readonly float* _ropeFreq;    // [headSize / 2]

    protected LlamaTransformer(ModelInfo info, ModelWeights weights, IFfnSource ffnSource, int threads)
        : base(info, weights, ffnSource, threads)
    {
        int headSize = info.Shape.HeadSize;
        _ropeFreq = Alloc(headSize / 2, "RoPE frequencies");
        // As llama2.c: freq = 1 / theta^(2i / head_size), in float.
        for (int i = 0; i < headSize / 2; i++) _ropeFreq[i] = 1.0f / MathF.Pow(info.RopeTheta, 2 * i / (float)headSize);
    }

    /// <summary>o[t, n] = rmsnorm(x[t, n]) * weight[n] for each row t, weight in the resident section; o may be x.</summary>
    protected void RmsNorm(float* o, float* x, long weight, int count, int n, float eps)
    {
        for (int t = 0; t < count; t++) VectorOps.RmsNorm(o + (long)t * n, x + (long)t * n, (float*)(R + weight), n, eps);
    }

    /// <summary>Rotates q[count, dim] and k[count, kvDim] in place, row t by position pos + t (pairs (2i, 2i+1) within
    /// each head, as llama2.c).</summary>
    protected void Rope(float* q, float* k, int pos, int count, int dim, int kvDim, int headSize)
    {
        for (int t = 0; t < count; t++) Rope(q + (long)t * dim, k + (long)t * kvDim, pos + t, dim, kvDim, headSize);
    }

    private void Rope(float* q, float* k, int pos, int dim, int kvDim, int headSize)
    {
        for (int i = 0; i < dim; i += 2)
        {
            float angle = pos * _ropeFreq[(i % headSize) / 2];
            float cos = MathF.Cos(angle), sin = MathF.Sin(angle);
            Rotate(q + i, cos, sin);
            if (i < kvDim) Rotate(k + i, cos, sin);
        }

        static void Rotate(float* v, float cos, float sin)
        {
            float v0 = v[0], v1 = v[1];
            v[0] = v0 * cos - v1 * sin;
            v[1] = v0 * sin + v1 * cos;
        }
    }
}
