using AotFlash.Flash;
using AotFlash.Kernels;
using AotFlash.Threading;

namespace AotFlash.Inference;

/// <summary>
/// The llama family's building blocks (RMSNorm, RoPE, grouped-query attention with a KV cache, gated FFN over neuron
/// bundles) for the generated model classes, which call them with constant shapes and offsets, one call per layer.
/// Heavy kernels run on a <see cref="ThreadTeam"/>; everything is allocated once, nothing per token.
/// </summary>
public abstract unsafe class LlamaTransformer<TWeights, TActivation> : Transformer
    where TWeights : struct, IWeightFormat
    where TActivation : struct, IActivation
{
    // Below this many multiply-adds a kernel runs on the calling thread: waking the team would cost more.
    private const long ParallelThreshold = 1 << 15;

    protected readonly byte* R;
    protected readonly float* X;
    protected readonly float* Xb;
    protected readonly float* Xb2;
    protected readonly float* Q;
    protected readonly float* KeyCache;
    protected readonly float* ValueCache;
    private readonly float* _logits;
    private readonly float* _scores;      // [heads, context]
    private readonly float* _partials;    // [team, dim] per-member FFN sums
    private readonly float* _ropeFreq;    // [headSize / 2]
    private readonly List<NativeArray<float>> _buffers = [];
    private readonly IFfnSource _ffnSource;
    private readonly ThreadTeam _team;
    private readonly MatVecWork _matVec;
    private readonly AttentionWork _attention;
    private readonly FfnWork _ffn;

    protected LlamaTransformer(ModelInfo info, ModelWeights weights, IFfnSource ffnSource, int threads) : base(info, weights)
    {
        var s = info.Shape;
        if (TWeights.Type != s.Weights) throw new InvalidOperationException("weight format does not match the spec");
        R = weights.Resident;
        _ffnSource = ffnSource;
        _team = new ThreadTeam(Math.Max(1, threads));
        X = Alloc(s.Dim, "activations");
        Xb = Alloc(s.Dim, "activations");
        Xb2 = Alloc(s.Dim, "activations");
        Q = Alloc(s.Dim, "activations");
        _logits = Alloc(s.Vocab, "logits");
        KeyCache = Alloc((long)s.Layers * s.Context * s.KvDim, "the KV cache");
        ValueCache = Alloc((long)s.Layers * s.Context * s.KvDim, "the KV cache");
        _scores = Alloc((long)s.Heads * s.Context, "attention scores");
        _partials = Alloc((long)_team.Size * s.Dim, "FFN partial sums");
        _ropeFreq = Alloc(s.HeadSize / 2, "RoPE frequencies");
        // As llama2.c: freq = 1 / theta^(2i / head_size), in float.
        for (int i = 0; i < s.HeadSize / 2; i++) _ropeFreq[i] = 1.0f / MathF.Pow(info.RopeTheta, 2 * i / (float)s.HeadSize);
        _matVec = new MatVecWork();
        _attention = new AttentionWork(this);
        _ffn = new FfnWork(this);
    }

    public override Span<float> Logits => new(_logits, Info.Shape.Vocab);

    protected float* LogitsPointer => _logits;

    public override IFfnSource FfnSource => _ffnSource;

    private float* Alloc(long floats, string what)
    {
        var buffer = new NativeArray<float>(floats, Weights.Account, what);
        _buffers.Add(buffer);
        return buffer.Pointer;
    }

    /// <summary>x[dim] = table[token, :]</summary>
    protected void Embed(long table, int token, int dim) => TWeights.ToSingle(X, R + table + token * Layout.RowBytes(TWeights.Type, dim), dim);

    /// <summary>o[n] = rmsnorm(x[n]) * weight[n], weight in the resident section.</summary>
    protected void RmsNorm(float* o, float* x, long weight, int n, float eps) => VectorOps.RmsNorm(o, x, (float*)(R + weight), n, eps);

    protected static void Add(float* y, float* x, int n) => VectorOps.Add(y, x, n);

    /// <summary>y[rows] = W[rows, cols] · x[cols], W in the resident section.</summary>
    protected void MatVec(float* y, long w, float* x, int rows, int cols)
    {
        if (_team.Size == 1 || (long)rows * cols < ParallelThreshold)
        {
            TWeights.MatVec(y, R + w, Layout.RowBytes(TWeights.Type, cols), x, rows, cols);
            return;
        }
        _matVec.Set(y, R + w, x, rows, cols);
        _team.Run(_matVec);
    }

    /// <summary>Rotates q[dim] and k[kvDim] in place by position (pairs (2i, 2i+1) within each head, as llama2.c).</summary>
    protected void Rope(float* q, float* k, int pos, int dim, int kvDim, int headSize)
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

    /// <summary>output[dim] = per head h: softmax(q_h · K_h[0..pos] / √headSize) · V_h[0..pos]; heads share kv heads in groups.</summary>
    protected void Attention(float* output, int layer, int pos, int heads, int kvHeads, int headSize, int context)
    {
        _attention.Set(output, layer, pos, heads, kvHeads, headSize, context);
        if (_team.Size == 1 || (long)heads * headSize * (pos + 1) < ParallelThreshold) _attention.Execute(0, 1);
        else _team.Run(_attention);
    }

    /// <summary>output[dim] = Σ_i act(gate_i · x) (up_i · x) down_i over the neurons the FFN source selects.</summary>
    protected void GatedFfn(float* output, float* x, int layer, long ffn, int dim, long stride, long up, long down)
    {
        FfnProbe?.Invoke(layer, x);
        var selection = _ffnSource.Prepare(new FfnLayer(layer, ffn, stride), x);
        NativeZero(output, dim);
        int count = selection.Neurons.Length;
        fixed (nint* bundles = selection.Bundles)
        fixed (int* neurons = selection.Neurons)
        {
            var observer = ActiveNeuronObserver is null ? null : neurons;
            if (_team.Size == 1 || 3L * count * dim < ParallelThreshold)
            {
                FfnRange(output, x, bundles, 0, count, dim, up, down, observer, layer);
                return;
            }
            _ffn.Set(x, bundles, count, dim, up, down, observer, layer);
            _team.Run(_ffn);
        }
        for (int m = 0; m < _team.Size; m++) VectorOps.Add(output, _partials + (long)m * dim, dim);
    }

    /// <summary>acc[dim] += Σ_{j in [from, to)} act(gate_j · x) (up_j · x) down_j; neurons the activation zeroes are
    /// skipped. With <paramref name="neurons"/>, reports each neuron whose activation is non-zero.</summary>
    private void FfnRange(float* acc, float* x, nint* bundles, int from, int to, int dim, long up, long down, int* neurons, int layer)
    {
        for (int j = from; j < to; j++)
        {
            byte* b = (byte*)bundles[j];
            float a = TActivation.Apply(TWeights.Dot(b, x, dim));
            if (a == 0f) continue;
            if (neurons != null) ActiveNeuronObserver!(layer, neurons[j]);
            TWeights.Axpy(acc, a * TWeights.Dot(b + up, x, dim), b + down, dim);
        }
    }

    private static void NativeZero(float* p, int n) => new Span<float>(p, n).Clear();

    public override void Dispose()
    {
        _team.Dispose();
        foreach (var buffer in _buffers) buffer.Dispose();
        _buffers.Clear();
        _ffnSource.Dispose();
    }

    private sealed class MatVecWork : ITeamWork
    {
        private float* _y, _x;
        private byte* _w;
        private int _rows, _cols;

        public void Set(float* y, byte* w, float* x, int rows, int cols) { _y = y; _w = w; _x = x; _rows = rows; _cols = cols; }

        public void Execute(int member, int members)
        {
            var (start, end) = ThreadTeam.Share(_rows, member, members, grain: 4);
            long rowBytes = Layout.RowBytes(TWeights.Type, _cols);
            if (end > start) TWeights.MatVec(_y + start, _w + start * rowBytes, rowBytes, _x, end - start, _cols);
        }
    }

    private sealed class AttentionWork(LlamaTransformer<TWeights, TActivation> model) : ITeamWork
    {
        private float* _output;
        private int _layer, _pos, _heads, _kvHeads, _headSize, _context;

        public void Set(float* output, int layer, int pos, int heads, int kvHeads, int headSize, int context)
        {
            _output = output; _layer = layer; _pos = pos; _heads = heads; _kvHeads = kvHeads; _headSize = headSize; _context = context;
        }

        public void Execute(int member, int members)
        {
            var (start, end) = ThreadTeam.Share(_heads, member, members);
            int kvDim = _kvHeads * _headSize;
            int group = _heads / _kvHeads;
            float scale = MathF.Sqrt(_headSize);
            float* keys = model.KeyCache + (long)_layer * _context * kvDim;
            float* values = model.ValueCache + (long)_layer * _context * kvDim;
            for (int h = start; h < end; h++)
            {
                float* q = model.Q + h * _headSize;
                float* scores = model._scores + (long)h * _context;
                int kvOffset = h / group * _headSize;
                for (int t = 0; t <= _pos; t++) scores[t] = VectorOps.Dot(q, keys + (long)t * kvDim + kvOffset, _headSize) / scale;
                VectorOps.Softmax(scores, _pos + 1);
                float* o = _output + h * _headSize;
                NativeZero(o, _headSize);
                for (int t = 0; t <= _pos; t++) VectorOps.Axpy(o, scores[t], values + (long)t * kvDim + kvOffset, _headSize);
            }
        }
    }

    private sealed class FfnWork(LlamaTransformer<TWeights, TActivation> model) : ITeamWork
    {
        private float* _x;
        private nint* _bundles;
        private int* _observed;
        private int _count, _dim, _layer;
        private long _up, _down;

        public void Set(float* x, nint* bundles, int count, int dim, long up, long down, int* observed, int layer)
        {
            _x = x; _bundles = bundles; _count = count; _dim = dim; _up = up; _down = down; _observed = observed; _layer = layer;
        }

        public void Execute(int member, int members)
        {
            float* acc = model._partials + (long)member * _dim;
            NativeZero(acc, _dim);
            var (start, end) = ThreadTeam.Share(_count, member, members);
            model.FfnRange(acc, _x, _bundles, start, end, _dim, _up, _down, _observed, _layer);
        }
    }
}
