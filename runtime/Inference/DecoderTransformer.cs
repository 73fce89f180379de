using AotFlash.Ffn;
using AotFlash.Flash;
using AotFlash.Kernels;
using AotFlash.Threading;

namespace AotFlash.Inference;

/// <summary>
/// What every decoder-only family shares, for the generated model classes, which call these blocks with constant
/// shapes and offsets, one call per layer: embedding lookup, matrix-vector products over the resident section,
/// grouped-query attention with a KV cache, and the FFN as a sum over the neuron bundles its source selects.
/// Heavy kernels run on a <see cref="ThreadTeam"/>; everything is allocated once, nothing per token.
/// </summary>
public abstract unsafe class DecoderTransformer<TWeights, TActivation> : Transformer
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
    private readonly byte* _prepared;     // the current MatVec's or FFN layer's x as TWeights.PrepareInput makes it; null if unused
    private readonly List<NativeArray<float>> _buffers = [];
    private readonly IFfnSource _ffnSource;
    private readonly ThreadTeam _team;
    private readonly MatVecWork _matVec;
    private readonly AttentionWork _attention;
    private readonly FfnWork _ffn;

    protected DecoderTransformer(ModelInfo info, ModelWeights weights, IFfnSource ffnSource, int threads) : base(info, weights)
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
        // Every MatVec and FFN input is dim long (the generated code's shapes).
        if (TWeights.InputBytes(s.Dim) > 0) _prepared = (byte*)Alloc((TWeights.InputBytes(s.Dim) + 3) / sizeof(float), "activations");
        _matVec = new MatVecWork();
        _attention = new AttentionWork(this);
        _ffn = new FfnWork(this);
    }

    public override Span<float> Logits => new(_logits, Info.Shape.Vocab);

    protected float* LogitsPointer => _logits;

    public override IFfnSource FfnSource => _ffnSource;

    protected float* Alloc(long floats, string what)
    {
        var buffer = new NativeArray<float>(floats, Weights.Account, what);
        _buffers.Add(buffer);
        return buffer.Pointer;
    }

    /// <summary>o[dim] = table[row, :], the table in the resident section.</summary>
    protected void Embed(float* o, long table, int row, int dim) => TWeights.ToSingle(o, R + table + row * Layout.RowBytes(TWeights.Type, dim), dim);

    protected static void Add(float* y, float* x, int n) => VectorOps.Add(y, x, n);

    /// <summary>y[n] += b[n], the f32 vector b in the resident section.</summary>
    protected void AddBias(float* y, long b, int n) => VectorOps.Add(y, (float*)(R + b), n);

    /// <summary>y[rows] = W[rows, cols] · x[cols], W in the resident section.</summary>
    protected void MatVec(float* y, long w, float* x, int rows, int cols)
    {
        TWeights.PrepareInput(_prepared, x, cols);
        if (_team.Size == 1 || (long)rows * cols < ParallelThreshold)
        {
            TWeights.MatVec(y, R + w, Layout.RowBytes(TWeights.Type, cols), x, _prepared, rows, cols);
            return;
        }
        _matVec.Set(y, R + w, x, _prepared, rows, cols);
        _team.Run(_matVec);
    }

    /// <summary>output[dim] = per head h: softmax(q_h · K_h[0..pos] / √headSize) · V_h[0..pos]; heads share kv heads in groups.</summary>
    protected void Attention(float* output, int layer, int pos, int heads, int kvHeads, int headSize, int context)
    {
        _attention.Set(output, layer, pos, heads, kvHeads, headSize, context);
        if (_team.Size == 1 || (long)heads * headSize * (pos + 1) < ParallelThreshold) _attention.Execute(0, 1);
        else _team.Run(_attention);
    }

    /// <summary>output[dim] = Σ_i act(gate_i · x) (up_i · x) down_i over the neurons the FFN source selects (llama).</summary>
    protected void GatedFfn(float* output, float* x, int layer, long ffn, int dim, long stride, long up, long down) =>
        SparseFfn(output, x, layer, ffn, dim, stride, up, down, bias: -1);

    /// <summary>output[dim] = Σ_i act(gate_i · x + bias_i) down_i over the neurons the FFN source selects (OPT).</summary>
    protected void PlainFfn(float* output, float* x, int layer, long ffn, int dim, long stride, long down, long bias) =>
        SparseFfn(output, x, layer, ffn, dim, stride, up: -1, down, bias);

    /// <summary>The FFN over selected bundles; <paramref name="up"/> or <paramref name="bias"/> is -1 where the
    /// family's bundles have no such part.</summary>
    private void SparseFfn(float* output, float* x, int layer, long ffn, int dim, long stride, long up, long down, long bias)
    {
        FfnProbe?.Invoke(layer, x);
        var selection = _ffnSource.Prepare(new FfnLayer(layer, ffn, stride), x);
        TWeights.PrepareInput(_prepared, x, dim); // once per layer, for every gate and up row
        NativeZero(output, dim);
        int count = selection.Neurons.Length;
        fixed (nint* bundles = selection.Bundles)
        fixed (int* neurons = selection.Neurons)
        {
            var observer = ActiveNeuronObserver is null ? null : neurons;
            var parts = new BundleShape(dim, up, down, bias);
            if (_team.Size == 1 || 3L * count * dim < ParallelThreshold)
            {
                FfnRange(output, x, bundles, 0, count, parts, observer, layer);
                return;
            }
            _ffn.Set(x, bundles, count, parts, observer, layer);
            _team.Run(_ffn);
        }
        for (int m = 0; m < _team.Size; m++) VectorOps.Add(output, _partials + (long)m * dim, dim);
    }

    /// <summary>Where a bundle's parts are: gate row at 0, then the up row, down column and gate bias (-1: absent).</summary>
    private readonly record struct BundleShape(int Dim, long Up, long Down, long Bias);

    /// <summary>acc[dim] += Σ_{j in [from, to)} a_j down_j with a_j = act(gate_j · x [+ bias_j]) [· (up_j · x)];
    /// neurons the activation zeroes are skipped. With <paramref name="neurons"/>, reports each neuron whose
    /// activation is non-zero.</summary>
    private void FfnRange(float* acc, float* x, nint* bundles, int from, int to, BundleShape p, int* neurons, int layer)
    {
        for (int j = from; j < to; j++)
        {
            byte* b = (byte*)bundles[j];
            float pre = TWeights.Dot(b, x, _prepared, p.Dim);
            float a = TActivation.Apply(p.Bias >= 0 ? pre + *(float*)(b + p.Bias) : pre);
            if (a == 0f) continue;
            if (neurons != null) ActiveNeuronObserver!(layer, neurons[j]);
            if (p.Up >= 0) a *= TWeights.Dot(b + p.Up, x, _prepared, p.Dim);
            TWeights.Axpy(acc, a, b + p.Down, p.Dim);
        }
    }

    private static void NativeZero(float* p, int n) => new Span<float>(p, n).Clear();

    public override void Dispose()
    {
        _team.Dispose();
        foreach (var buffer in _buffers) buffer.Dispose();
        _buffers.Clear();
        _ffnSource.Dispose();
        // A session leaves about 100 KB of managed garbage (its threads' starts, mostly), and the first collection of
        // a Native AOT process comes only after tens of MB: a host that runs session after session would see its
        // resident memory climb far past the DRAM account. Collecting here, where a session's
        // garbage has just died, keeps it flat (see soak); it costs well under a millisecond.
        GC.Collect();
    }

    private sealed class MatVecWork : ITeamWork
    {
        private float* _y, _x;
        private byte* _w, _prepared;
        private int _rows, _cols;

        public void Set(float* y, byte* w, float* x, byte* prepared, int rows, int cols) { _y = y; _w = w; _x = x; _prepared = prepared; _rows = rows; _cols = cols; }

        public void Execute(int member, int members)
        {
            var (start, end) = ThreadTeam.Share(_rows, member, members, grain: 4);
            long rowBytes = Layout.RowBytes(TWeights.Type, _cols);
            if (end > start) TWeights.MatVec(_y + start, _w + start * rowBytes, rowBytes, _x, _prepared, end - start, _cols);
        }
    }

    private sealed class AttentionWork(DecoderTransformer<TWeights, TActivation> model) : ITeamWork
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

    private sealed class FfnWork(DecoderTransformer<TWeights, TActivation> model) : ITeamWork
    {
        private float* _x;
        private nint* _bundles;
        private int* _observed;
        private int _count, _layer;
        private BundleShape _parts;

        public void Set(float* x, nint* bundles, int count, BundleShape parts, int* observed, int layer)
        {
            _x = x; _bundles = bundles; _count = count; _parts = parts; _observed = observed; _layer = layer;
        }

        public void Execute(int member, int members)
        {
            float* acc = model._partials + (long)member * _parts.Dim;
            NativeZero(acc, _parts.Dim);
            var (start, end) = ThreadTeam.Share(_count, member, members);
            model.FfnRange(acc, _x, _bundles, start, end, _parts, _observed, _layer);
        }
    }
}
