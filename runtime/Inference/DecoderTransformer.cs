using AotFlash.Ffn;
using AotFlash.Flash;
using AotFlash.Kernels;
using AotFlash.Threading;

namespace AotFlash.Inference;

/// <summary>
/// What every decoder-only family shares, for the generated model classes, which call these blocks with constant
/// shapes and offsets, one call per layer: embedding lookup, matrix products over the resident section,
/// grouped-query attention with a KV cache, and the FFN as a sum over the neuron bundles its source selects.
/// Every block works on a block of consecutive tokens at once, rows of [tokens, dim] matrices: a prompt goes through
/// each weight matrix once per block, not once per token; decoding is the block of one. Each token's arithmetic is the
/// same whatever block it is in, so a prompt run as one block gives the logits it gives token by token, bit for bit.
/// Heavy kernels run on a <see cref="ThreadTeam"/>; everything is allocated once, nothing per token.
/// <typeparamref name="TWeights"/> is the format of the FFN's bundles, <typeparamref name="TResident"/> that of the
/// resident section's matrices (embeddings, attention, classifier); they differ where a spec keeps the resident part
/// smaller to leave more of a DRAM budget to the neuron caches.
/// </summary>
public abstract unsafe class DecoderTransformer<TWeights, TResident, TActivation> : Transformer
    where TWeights : struct, IWeightFormat
    where TResident : struct, IWeightFormat
    where TActivation : struct, IActivation
{
    // Below this many multiply-adds a kernel runs on the calling thread: waking the team would cost more.
    private const long ParallelThreshold = 1 << 15;

    protected readonly byte* R;
    protected readonly float* X;          // [block, dim] each
    protected readonly float* Xb;
    protected readonly float* Xb2;
    protected readonly float* Q;
    protected readonly float* K;          // [block, kvDim] the block's keys and values, until Attention caches them
    protected readonly float* V;
    private readonly byte* _keyCache;     // [layers, kvHeads, context, headSize] of Info.KvCache: a head's positions one after another
    private readonly byte* _valueCache;
    private readonly bool _halfKv;        // the cache holds halves, else floats
    private bool _kvNonFinite;            // some cached half is infinite or NaN, which the scaled f16 kernels cannot take (from then on)
    private readonly float* _logits;
    private readonly float* _scores;      // [heads, context]: a member's tiles of queries take its share of the heads' rows
    private readonly float* _partials;    // [team - 1, block, dim] the FFN sums of members 1 ..; member 0 sums into the output
    private readonly byte* _prepared;     // [block] of the FFN's x rows as TWeights.PrepareInput makes them; null if unused
    private readonly int _preparedBytes;  // one row of _prepared
    private readonly byte* _preparedResident;    // the same for the resident products and TResident; _prepared when the formats are one
    private readonly int _preparedResidentBytes;
    private readonly float* _gates;       // [team, _gatesFloats] a member's gate and up products over a chunk of evenly spaced bundles
    private readonly int _gatesFloats;
    private readonly int _blockChunk;     // neurons a block's FFN runs at a time (FfnBlocks.ChunkNeurons, or a member's share if smaller)
    private readonly float* _help;        // [team, _helpFloats] the coefficients of a member's last chunks, computed by whichever member gets there first
    private readonly long _helpFloats;
    private readonly float* _ropeFreq;    // [headSize / 2], for the families with RoPE; null for OPT
    private readonly float* _ropeCos, _ropeSin; // [block, headSize / 2] the rotations of positions _ropeFrom .. + _ropeCount
    private int _ropeFrom = -1, _ropeCount;
    private readonly float* _widened;     // [team, _widenedFloats] chunks of weights widened to f32 in blocks (see AddDown, FfnWork)
    private readonly int _widenedFloats;
    private readonly List<NativeArray<float>> _buffers = [];
    private readonly IFfnSource _ffnSource;
    private readonly ThreadTeam _team;
    private readonly MatMulWork _matMul;
    private readonly PrepareWork _prepare;
    private readonly AttentionWork _attention;
    private readonly FfnWork _ffn;

    protected DecoderTransformer(ModelInfo info, ModelWeights weights, IFfnSource ffnSource, int threads) : base(info, weights)
    {
        var s = info.Shape;
        if (TWeights.Type != s.Weights || TResident.Type != s.ResidentWeights) throw new InvalidOperationException("weight format does not match the spec");
        R = weights.Resident;
        _ffnSource = ffnSource;
        _team = new ThreadTeam(Math.Max(1, threads));
        // No block outruns the context: its rows need not be allocated for more (a 256-token model's dense blocks).
        BlockTokens = Math.Min(ffnSource.BlockTokens, s.Context);
        long rows = (long)BlockTokens * s.Dim;
        X = AllocRows(rows, "activations");
        Xb = AllocRows(rows, "activations");
        Xb2 = AllocRows(rows, "activations");
        Q = AllocRows(rows, "activations");
        _logits = Alloc(s.Vocab, "logits");
        K = AllocRows((long)BlockTokens * s.KvDim, "activations");
        V = AllocRows((long)BlockTokens * s.KvDim, "activations");
        _halfKv = info.KvCache == WeightType.F16;
        long kvFloats = (info.KvCacheBytes / 2 + sizeof(float) - 1) / sizeof(float);
        _keyCache = (byte*)Alloc(kvFloats, "the KV cache");
        _valueCache = (byte*)Alloc(kvFloats, "the KV cache");
        _scores = Alloc((long)s.Heads * s.Context, "attention scores");
        if (_team.Size > 1) _partials = AllocRows((_team.Size - 1) * rows, "FFN partial sums");
        // Gate and up products of a block's chunk of neurons for every token (FfnWork.Chunk keeps within it); a chunk
        // need not be larger than a member's share of a layer.
        _blockChunk = Math.Min(FfnBlocks.ChunkNeurons, ((s.HiddenDim + _team.Size - 1) / _team.Size + NeuronGrain - 1) & -NeuronGrain);
        _gatesFloats = 2 * _blockChunk * BlockTokens;
        _gates = AllocRows((long)_team.Size * _gatesFloats, "FFN partial sums");
        // Every product's input rows are dim long (the generated code's shapes). A format that widens blocks to f32
        // multiplies prepared rows one token at a time (PrepareRows).
        _preparedBytes = TWeights.InputBytes(s.Dim);
        if (_preparedBytes > 0) _prepared = (byte*)AllocRows((PreparedRows<TWeights>() * _preparedBytes + 3) / sizeof(float), "activations");
        _preparedResidentBytes = TResident.InputBytes(s.Dim);
        if (TResident.Type == TWeights.Type) _preparedResident = _prepared;
        else if (_preparedResidentBytes > 0) _preparedResident = (byte*)AllocRows((PreparedRows<TResident>() * _preparedResidentBytes + 3) / sizeof(float), "activations");
        if (TWeights.Type is WeightType.F16 or WeightType.Q8 || TResident.WidenInBlocks)
        {
            // A block's chunk of bundles widened (three rows and a bias each), within WideningRoom but at least four
            // bundles; a chunk of a matrix's rows fits too. q8 widens a chunk's down columns here (q4 sums its own
            // in integers).
            int bundle = 3 * s.Dim + 1;
            long room = WideningRoom(rows * sizeof(float));
            _widenedFloats = Math.Max(ChunkBytes / sizeof(float), (int)Math.Max(4, Math.Min(_blockChunk, room / sizeof(float) / bundle)) * bundle);
            _widened = Alloc((long)_team.Size * _widenedFloats, "activations");
        }
        if (info.Family != ModelFamily.Opt)
        {
            _ropeFreq = Alloc(s.HeadSize / 2, "RoPE frequencies");
            // As llama2.c: freq = 1 / theta^(2i / head_size), in float.
            for (int i = 0; i < s.HeadSize / 2; i++) _ropeFreq[i] = 1.0f / MathF.Pow(info.RopeTheta, 2 * i / (float)s.HeadSize);
            _ropeCos = AllocRows((long)BlockTokens * s.HeadSize / 2, "RoPE rotations");
            _ropeSin = AllocRows((long)BlockTokens * s.HeadSize / 2, "RoPE rotations");
        }
        // Allocated last: among the buffers above it moved their addresses, and q4 decode, which never uses it, ran 3%
        // slower at 2 threads.
        if (_team.Size > 1)
        {
            _helpFloats = 2L * FfnBlocks.HelpRows(s, _team.Size) * BlockTokens;
            _help = AllocRows(_team.Size * _helpFloats, "FFN partial sums");
        }
        _matMul = new MatMulWork(this);
        _prepare = new PrepareWork();
        _attention = new AttentionWork(this);
        _ffn = new FfnWork(this);
    }

    public override Span<float> Logits => new(_logits, Info.Shape.Vocab);

    public override int BlockTokens { get; }

    protected float* LogitsPointer => _logits;

    public override IFfnSource FfnSource => _ffnSource;

    protected float* Alloc(long floats, string what) => Keep(new NativeArray<float>(floats, Weights.Account, what));

    /// <summary>Rows sized for the largest block, which a short prompt and decoding use the start of: their pages are
    /// made resident where first used (<see cref="NativeArray{T}.OnFirstUse"/>).</summary>
    private float* AllocRows(long floats, string what) => Keep(NativeArray<float>.OnFirstUse(floats, Weights.Account, what));

    private float* Keep(NativeArray<float> buffer)
    {
        _buffers.Add(buffer);
        return buffer.Pointer;
    }

    /// <summary>o[count, dim] = table[tokens[t], :], the table in the resident section.</summary>
    protected void Embed(float* o, long table, int* tokens, int count, int dim)
    {
        for (int t = 0; t < count; t++) Embed(o + (long)t * dim, table, tokens[t], dim);
    }

    /// <summary>o[count, dim] = table[first + t, :]: consecutive rows of a table in the resident section (positions).</summary>
    protected void EmbedRows(float* o, long table, int first, int count, int dim)
    {
        for (int t = 0; t < count; t++) Embed(o + (long)t * dim, table, first + t, dim);
    }

    private void Embed(float* o, long table, int row, int dim) => TResident.ToSingle(o, R + table + row * Layout.RowBytes(TResident.Type, dim), dim);

    /// <summary>y[count, n] += x[count, n]</summary>
    protected static void Add(float* y, float* x, int count, int n) => VectorOps.Add(y, x, count * n);

    /// <summary>y[t, n] += b[n] for every row t, the f32 vector b in the resident section.</summary>
    protected void AddBias(float* y, long b, int count, int n)
    {
        for (int t = 0; t < count; t++) VectorOps.Add(y + (long)t * n, (float*)(R + b), n);
    }

    /// <summary>o[t, n] = layernorm(x[t, n]) * weight[n] + bias[n] for each row t, weight and bias in the resident
    /// section; o may be x.</summary>
    protected void LayerNorm(float* o, float* x, long weight, long bias, int count, int n, float eps)
    {
        for (int t = 0; t < count; t++)
            VectorOps.LayerNorm(o + (long)t * n, x + (long)t * n, (float*)(R + weight), (float*)(R + bias), n, eps);
    }

    /// <summary>Rotates q[count, dim] and k[count, kvDim] in place, row t by position pos + t (pairs (2i, 2i+1) within
    /// each head, as llama2.c). The rotations' cosines and sines are computed once per forward pass, for its first
    /// layer: every layer rotates the same positions (a 128-token prompt took 590k sines and cosines, 1% of its time
    /// and all of it outside the thread team).</summary>
    protected void Rope(float* q, float* k, int pos, int count, int dim, int kvDim, int headSize)
    {
        int half = headSize / 2;
        if (pos != _ropeFrom || count != _ropeCount)
        {
            for (int t = 0; t < count; t++)
                for (int j = 0; j < half; j++)
                {
                    // As llama2.c: the angle in float, then its cosine and sine.
                    float angle = (pos + t) * _ropeFreq[j];
                    _ropeCos[t * half + j] = MathF.Cos(angle);
                    _ropeSin[t * half + j] = MathF.Sin(angle);
                }
            _ropeFrom = pos;
            _ropeCount = count;
        }
        // Head by head, not a division per pair for its index within the head (headSize is not a constant here): 110M q8
        // 128-token prompt, 1 thread, six runs: 49 → 39 samples of about 13k.
        for (int t = 0; t < count; t++)
        {
            float* cos = _ropeCos + t * half, sin = _ropeSin + t * half;
            for (float* head = q + (long)t * dim, end = head + dim; head < end; head += headSize)
                for (int j = 0; j < half; j++) Rotate(head + 2 * j, cos[j], sin[j]);
            for (float* head = k + (long)t * kvDim, end = head + kvDim; head < end; head += headSize)
                for (int j = 0; j < half; j++) Rotate(head + 2 * j, cos[j], sin[j]);
        }

        static void Rotate(float* v, float cos, float sin)
        {
            float v0 = v[0], v1 = v[1];
            v[0] = v0 * cos - v1 * sin;
            v[1] = v0 * sin + v1 * cos;
        }
    }

    /// <summary>Y[count, rows] = X[count, cols] · W[rows, cols]ᵀ, W in the resident section: row t of Y is W · x_t.
    /// <paramref name="prepared"/>: X is what the previous MatMul took, unchanged since, so its quantised rows are
    /// still in place (q, k and v share one quantisation of the block).</summary>
    protected void MatMul(float* y, long w, float* x, int count, int rows, int cols, bool prepared = false)
    {
        if (!prepared) PrepareRows<TResident>(_preparedResident, _preparedResidentBytes, x, count, cols);
        _matMul.Set(y, R + w, x, count, rows, cols);
        if (_team.Size == 1 || (long)count * rows * cols < ParallelThreshold) _matMul.Execute(0, 1);
        else _team.Run(_matMul);
    }

    /// <summary>prepared[t] = x[t, :] as TW.PrepareInput makes it, for the products that follow; nothing for a block
    /// that TW widens to f32.</summary>
    private void PrepareRows<TW>(byte* prepared, int preparedBytes, float* x, int count, int cols) where TW : struct, IWeightFormat
    {
        if (count > PreparedRows<TW>() || preparedBytes == 0) return;
        _prepare.Set(prepared, preparedBytes, x, count, cols, resident: typeof(TW) != typeof(TWeights));
        if (_team.Size == 1 || (long)count * cols < ParallelThreshold) _prepare.Execute(0, 1);
        else _team.Run(_prepare);
    }

    private long PreparedRows<TW>() where TW : struct, IWeightFormat => TW.WidenInBlocks ? 1 : BlockTokens;

    /// <summary>For each row t of the block, at position pos + t: output_t = per head h: softmax(q_h · K_h[0..pos+t] /
    /// √headSize) · V_h[0..pos+t]; heads share kv heads in groups. The block's keys and values (K and V) go into the
    /// cache first, rounded to halves where the cache holds them (a key or value beyond ±65504 becomes an infinity there,
    /// and its products what IEEE makes of it).</summary>
    protected void Attention(float* output, int layer, int pos, int count, int heads, int kvHeads, int headSize, int context)
    {
        long bytes = (long)headSize * sizeof(float);
        for (int t = 0; t < count; t++)
            for (int kv = 0; kv < kvHeads; kv++)
            {
                long from = (long)t * kvHeads * headSize + kv * headSize, to = (((long)layer * kvHeads + kv) * context + pos + t) * headSize;
                if (_halfKv)
                {
                    Half* key = (Half*)_keyCache + to, value = (Half*)_valueCache + to;
                    VectorOps.ToHalf(key, K + from, headSize);
                    VectorOps.ToHalf(value, V + from, headSize);
                    _kvNonFinite |= HalfBits.FirstNonFinite(new ReadOnlySpan<Half>(key, headSize)) >= 0
                                    || HalfBits.FirstNonFinite(new ReadOnlySpan<Half>(value, headSize)) >= 0;
                }
                else
                {
                    Buffer.MemoryCopy(K + from, (float*)_keyCache + to, bytes, bytes);
                    Buffer.MemoryCopy(V + from, (float*)_valueCache + to, bytes, bytes);
                }
            }
        _attention.Set(output, layer, pos, count, heads, kvHeads, headSize, context);
        if (_team.Size == 1 || (long)heads * headSize * (pos + count) * count < ParallelThreshold) _attention.Execute(0, 1);
        else _team.Run(_attention);
    }

    /// <summary>output_t[dim] = Σ_i act(gate_i · x_t) (up_i · x_t) down_i over the neurons the FFN source selects (llama).</summary>
    protected void GatedFfn(float* output, float* x, int count, int layer, long ffn, int dim, long stride, long up, long down) =>
        SparseFfn(output, x, count, layer, ffn, dim, stride, up, down, bias: -1);

    /// <summary>output_t[dim] = Σ_i act(gate_i · x_t [+ bias_i]) down_i over the neurons the FFN source selects (OPT;
    /// Falcon, whose bundles have no bias: -1).</summary>
    protected void PlainFfn(float* output, float* x, int count, int layer, long ffn, int dim, long stride, long down, long bias) =>
        SparseFfn(output, x, count, layer, ffn, dim, stride, up: -1, down, bias);

    /// <summary>The FFN over selected bundles, for each row of x[count, dim]; <paramref name="up"/> or
    /// <paramref name="bias"/> is -1 where the family's bundles have no such part. A source that serves the whole block
    /// at once (every neuron, in one piece or streamed in several) is summed piece by piece; otherwise (flash mode's
    /// predictor, for a few tokens) each row goes through the source on its own, in order, as decoding would.</summary>
    private void SparseFfn(float* output, float* x, int count, int layer, long ffn, int dim, long stride, long up, long down, long bias)
    {
        var at = new FfnLayer(layer, ffn, stride);
        var parts = new BundleShape(dim, up, down, bias);
        if (FfnProbe is { } probe)
            for (int t = 0; t < count; t++) probe(layer, x + (long)t * dim);
        NativeZero(output, count * dim);
        int pieces = _ffnSource.BeginBlock(at, x, count);
        if (pieces > 0)
        {
            PrepareRows<TWeights>(_prepared, _preparedBytes, x, count, dim);
            for (int piece = 0; piece < pieces; piece++) Ffn(output, x, count, _ffnSource.BlockPiece(at, piece), parts, layer);
            return;
        }
        for (int t = 0; t < count; t++)
        {
            float* xt = x + (long)t * dim;
            // What the source has at once is computed while the rest arrives (flash reads of the neurons it missed).
            var selection = _ffnSource.Prepare(at, xt);
            PrepareRows<TWeights>(_prepared, _preparedBytes, xt, 1, dim);
            Ffn(output + (long)t * dim, xt, 1, selection, parts, layer);
            var rest = _ffnSource.Complete(at);
            if (rest.Neurons.Length > 0) Ffn(output + (long)t * dim, xt, 1, rest, parts, layer);
        }
    }

    /// <summary>output[count, dim] += the FFN of x[count, dim] over one selection, x prepared.</summary>
    private void Ffn(float* output, float* x, int count, FfnSelection selection, BundleShape parts, int layer)
    {
        int n = selection.Neurons.Length, dim = parts.Dim;
        fixed (nint* bundles = selection.Bundles)
        fixed (int* neurons = selection.Neurons)
        {
            var observer = ActiveNeuronObserver is null ? null : neurons;
            _ffn.Set(output, x, count, bundles, n, selection.Stride, parts, observer, layer);
            if (_team.Size == 1 || 3L * n * dim * count < ParallelThreshold)
            {
                _ffn.Execute(0, 1);
                return;
            }
            _team.Run(_ffn);
        }
        for (int m = 1; m < _team.Size; m++) Add(output, _partials + (long)(m - 1) * BlockTokens * dim, count, dim);
    }

    /// <summary>Where a bundle's parts are: gate row at 0, then the up row, down column and gate bias (-1: absent).</summary>
    private readonly record struct BundleShape(int Dim, long Up, long Down, long Bias);

    /// <summary>acc[dim] += Σ_{j in [from, to)} a_j down_j with a_j = act(gate_j · x [+ bias_j]) [· (up_j · x)];
    /// neurons the activation zeroes are skipped. Bundle j is at bundles[j], or, where <paramref name="stride"/> is not
    /// 0, at first + j·stride. With <paramref name="neurons"/>, reports each neuron whose activation is non-zero.</summary>
    private void FfnRange(float* acc, float* x, nint* bundles, byte* first, long stride, int from, int to, BundleShape p, int* neurons, int layer)
    {
        // Bundles anywhere in the flash caches: the next one's gate row is asked for while this one is computed (the up
        // and down rows that follow it stream behind the gate row's reads). Evenly spaced bundles are read in address
        // order, which the hardware's prefetchers follow on their own.
        long gateBytes = Layout.RowBytes(TWeights.Type, p.Dim);
        for (int j = from; j < to; j++)
        {
            byte* b = stride == 0 ? (byte*)bundles[j] : first + j * stride;
            if (stride == 0 && j + 1 < to) Prefetch.Rows((byte*)bundles[j + 1], 0, 1, gateBytes);
            float pre = TWeights.Dot(b, x, _prepared, p.Dim);
            float a = TActivation.Apply(p.Bias >= 0 ? pre + *(float*)(b + p.Bias) : pre);
            if (a == 0f) continue;
            if (neurons != null) ActiveNeuronObserver!(layer, neurons[j]);
            if (p.Up >= 0) a *= TWeights.Dot(b + p.Up, x, _prepared, p.Dim);
            TWeights.Axpy(acc, a, b + p.Down, p.Dim);
        }
    }

    /// <summary>As <see cref="FfnRange"/> for each of <paramref name="count"/> tokens (rows of x, prepared at
    /// <paramref name="preparedStride"/> bytes apart) over <paramref name="n"/> bundles evenly spaced from
    /// <paramref name="first"/>, up to the coefficients of their down columns: the gate rows (and up rows) are a matrix,
    /// multiplied by the tokens' x four rows at a time into h[2, count, n] (the activation, then the up products),
    /// activated a row at a time; <see cref="AddDown{TW}"/> adds the down columns. Callers start ranges at multiples of
    /// NeuronGrain from the layer's first neuron, so a neuron's sums are the same whatever range it falls in, and
    /// whichever member computes them.</summary>
    private void Coefficients<TW>(float* x, byte* prepared, long preparedStride, int count, byte* first, long stride, int n, BundleShape p,
                                  int* neurons, int layer, float* h)
        where TW : struct, IWeightFormat
    {
        float* hUp = h + count * n;
        TW.MatMul(h, n, first, stride, x, p.Dim, prepared, preparedStride, count, n, p.Dim);
        if (p.Bias >= 0)
            for (int t = 0; t < count; t++)
                for (int j = 0; j < n; j++) h[t * n + j] += *(float*)(first + j * stride + p.Bias);
        TActivation.Apply(h, count * n);
        if (neurons != null)
            for (int t = 0; t < count; t++)
                for (int j = 0; j < n; j++)
                    if (h[t * n + j] != 0f) ActiveNeuronObserver!(layer, neurons[j]);
        if (p.Up >= 0) UpRows<TW>(hUp, h, x, prepared, preparedStride, count, first + p.Up, stride, n, p.Dim);
    }

    /// <summary>acc[count, dim] += the down columns of the <paramref name="n"/> bundles (as in <see cref="Coefficients{TW}"/>)
    /// times h's coefficients. A block of q8 bundles widens the down columns its tokens need to f32 in
    /// <paramref name="widened"/> [n, dim], once for all its tokens; q4 adds its down columns in integers
    /// (VectorOps.AxpyRowsQ4).</summary>
    private static void AddDown<TW>(float* acc, int count, byte* first, long stride, int n, BundleShape p, float* h, float* widened)
        where TW : struct, IWeightFormat
    {
        float* hUp = h + count * n;
        if (TW.Type == WeightType.Q4)
        {
            // Every neuron's down column, 0 where the activation zeroed it: q4 quantises the coefficients of aligned
            // blocks of neurons together, so a token's blocks must not depend on the other tokens (chunks start at
            // multiples of the block, NeuronGrain).
            if (p.Up >= 0)
                for (long i = 0; i < (long)count * n; i++) h[i] *= hUp[i];
            byte** columns = stackalloc byte*[n];
            for (int j = 0; j < n; j++) columns[j] = first + j * stride + p.Down;
            VectorOps.AxpyRowsQ4(acc, p.Dim, h, n, columns, n, count, p.Dim);
            return;
        }
        // The neurons that any token leaves non-zero, in order, with each token's coefficient (a·up, 0 where the
        // activation zeroed it) in h's columns 0..m; their down columns are added to the tokens' rows of acc. A block's
        // columns are f32: the bundles' own, or widened here once. h is read row by row and without branches on its
        // values: a ReLU leaves one in ten on, and with a branch per value, h read a column at a time, these loops took
        // 3.3% of the samples of a 1.1B FATReLU 512-token prompt in flash mode (1.9% so).
        bool widen = count > 1 && TW.Type != WeightType.F32;
        int* on = stackalloc int[n]; // tokens that leave neuron j on
        new Span<int>(on, n).Clear();
        int terms = 0;
        for (int t = 0; t < count; t++)
        {
            float* ht = h + (long)t * n;
            for (int j = 0; j < n; j++) on[j] += ht[j] != 0f ? 1 : 0;
        }
        int* kept = stackalloc int[n];
        int m = 0;
        for (int j = 0; j < n; j++)
        {
            kept[m] = j;
            m += on[j] != 0 ? 1 : 0;
            terms += on[j];
        }
        for (int t = 0; t < count; t++)
        {
            // In place: column k takes column kept[k] ≥ k, read before any column past k is written.
            float* ht = h + (long)t * n, ut = hUp + (long)t * n;
            if (p.Up >= 0)
                for (int k = 0; k < m; k++) ht[k] = ht[kept[k]] * ut[kept[k]];
            else
                for (int k = 0; k < m; k++) ht[k] = ht[kept[k]];
        }
        byte** down = stackalloc byte*[m];
        for (int k = 0; k < m; k++)
        {
            int j = kept[k];
            byte* column = first + j * stride + p.Down;
            if (widen)
            {
                float* f = widened + (long)j * p.Dim;
                TW.ToSingle(f, column, p.Dim);
                column = (byte*)f;
            }
            down[k] = column;
        }
        // Dense enough (every neuron of a SiLU model): one pass over the columns for the whole block. Sparse tokens (a
        // ReLU model's few, different neurons each) add only their own. The sums are the same either way.
        if (count > 1 && m * count <= 2 * terms)
        {
            VectorOps.AxpyRowsBlock(acc, p.Dim, h, n, (float**)down, m, count, p.Dim);
            return;
        }
        float* active = stackalloc float[m];
        byte** own = stackalloc byte*[m];
        for (int t = 0; t < count; t++)
        {
            float* ht = h + (long)t * n;
            int mine = 0;
            for (int k = 0; k < m; k++)
            {
                active[mine] = ht[k];
                own[mine] = down[k];
                mine += ht[k] != 0f ? 1 : 0;
            }
            if (widen) F32.AxpyRows(acc + (long)t * p.Dim, active, own, mine, p.Dim);
            else TW.AxpyRows(acc + (long)t * p.Dim, active, own, mine, p.Dim);
        }
    }

    /// <summary>hUp[t, j] = up_j · x_t where h[t, j], the activation, is not zero (0 where it is): a product over the
    /// whole chunk where most pairs are on (SiLU), else one up row at a time against the tokens it is on for. A ReLU
    /// family block leaves about one pair in ten on. Each pair is summed as the chunk's product sums it.</summary>
    private static void UpRows<TW>(float* hUp, float* h, float* x, byte* prepared, long preparedStride, int count, byte* up, long stride, int n, int dim)
        where TW : struct, IWeightFormat
    {
        int on = 0;
        for (long i = 0; i < (long)count * n; i++)
            if (h[i] != 0f) on++;
        if ((long)on * SparseUp >= (long)count * n)
        {
            TW.MatMul(hUp, n, up, stride, x, dim, prepared, preparedStride, count, n, dim);
            return;
        }
        float** rows = stackalloc float*[count];
        float* dots = stackalloc float[count];
        int* tokens = stackalloc int[count];
        for (int j = 0; j < n; j++)
        {
            byte* row = up + j * stride;
            int m = 0;
            for (int t = 0; t < count; t++)
            {
                hUp[t * n + j] = 0f;
                if (h[t * n + j] == 0f) continue;
                if (TW.Type == WeightType.F32) rows[m] = x + (long)t * dim;
                else hUp[t * n + j] = TW.Dot(row, x + (long)t * dim, prepared + t * preparedStride, dim);
                tokens[m++] = t;
            }
            if (TW.Type != WeightType.F32 || m == 0) continue;
            VectorOps.RowDots(dots, (float*)row, rows, m, dim);
            for (int k = 0; k < m; k++) hUp[tokens[k] * n + j] = dots[k];
        }
    }

    // Up products go pair by pair below one pair on in SparseUp.
    private const int SparseUp = 4;

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

    // A product over a block of tokens works through the weights in chunks about this size, each used by every token
    // while it is in the core's L1/L2 cache: the weights come from memory once per block, not once per token.
    private const int ChunkBytes = 32 << 10;

    // One token's chunked FFN (q4 decode) runs the neurons whose bundles fill about this much L2 at a time: its gate,
    // up and down passes find them there, and longer runs of rows pay each pass's setup less often (110M q4 decode,
    // medians of 5: 1 thread 9.87 ms with 32 KiB chunks, 9.50 with 256 KiB; 2 threads 5.14, 5.05).
    private const int DecodeChunkBytes = 256 << 10;

    /// <summary>Shares and chunks of a layer's evenly spaced neurons are whole multiples of this from its first: four, as
    /// MatVec runs the gate rows; for q4 a block of its down projection (Quantization.DownRows).</summary>
    private static int NeuronGrain => TWeights.Type == WeightType.Q4 ? Quantization.DownRows : 4;

    // What a member widens at once (a block's chunk of f16 bundles at f32), and the chunk of quantised rows a product
    // takes through the caches: L2 holds it with the block's x. 1 MiB was slower where x fits L2: 110M f16 128-token
    // prompt 290-312 ms against 284-287 (and 247-251 against 254-259 later), and a 1.1B 128-token block's compute
    // 17.5-18.7 ms per token against 15.6-16.5 (its 2048-wide bundles, 40 at a time against 10).
    private const int WidenedBytes = 256 << 10;

    /// <summary>A block whose x outgrows L2 next to the chunk (a 1.1B block streamed at 65% of its file is 325 tokens,
    /// 2.6 MiB) brings it from L3 once per chunk, for the chunk's few rows: past 1 MiB of x a member widens 1 MiB at
    /// once. 1.1B f16 512-token prompt at 65%: 6961-7162 ms against 6451-6455.</summary>
    private static long WideningRoom(long blockXBytes) => blockXBytes > 1 << 20 ? 4 * WidenedBytes : WidenedBytes;

    /// <summary>A product over the resident section, in <typeparamref name="TResident"/>.</summary>
    private sealed class MatMulWork(DecoderTransformer<TWeights, TResident, TActivation> model) : ITeamWork
    {
        private float* _y, _x;
        private byte* _w;
        private int _count, _rows, _cols, _next;

        public void Set(float* y, byte* w, float* x, int count, int rows, int cols)
        {
            _y = y; _w = w; _x = x; _count = count; _rows = rows; _cols = cols;
            _next = 0;
        }

        public void Execute(int member, int members)
        {
            // Shares and chunks are whole groups of four rows, as MatVec runs them, so a row's sum is the same
            // whichever share or chunk it falls in.
            long rowBytes = Layout.RowBytes(TResident.Type, _cols);
            if (_count == 1)
            {
                var (start, end) = ThreadTeam.Share(_rows, member, members, grain: 4);
                if (end > start) TResident.MatVec(_y + start, _w + start * rowBytes, rowBytes, _x, model._preparedResident, end - start, _cols);
                return;
            }
            bool widen = TResident.WidenInBlocks;
            long chunkRowBytes = widen ? (long)_cols * sizeof(float) : rowBytes;
            // Chunks of rows as large as the member's widening room (or WidenedBytes): each chunk takes the block's x
            // through the core's caches once. Members take the next chunk as they finish one, rather than a share
            // each: a member that starts late or runs slower no longer leaves the others waiting (1.1B f16 512-token
            // prompt, 2 threads: the main thread waited 9% of its samples for its partner in these products). Each
            // row is summed whole by one member, so the results do not depend on who took it.
            long room = widen ? (long)model._widenedFloats * sizeof(float) : WidenedBytes;
            int chunk = Math.Max(4, (int)Math.Min(room / chunkRowBytes, _rows) & ~3);
            float* widened = model._widened + (long)member * model._widenedFloats;
            for (int r0, r1; (r0 = Claim(chunk, members, out r1)) < _rows;)
            {
                if (widen)
                {
                    for (int r = r0; r < r1; r++) TResident.ToSingle(widened + (long)(r - r0) * _cols, _w + r * rowBytes, _cols);
                    F32.MatMul(_y + r0, _rows, (byte*)widened, chunkRowBytes, _x, _cols, null, 0, _count, r1 - r0, _cols);
                }
                else
                {
                    TResident.MatMul(_y + r0, _rows, _w + r0 * rowBytes, rowBytes, _x, _cols, model._preparedResident, model._preparedResidentBytes, _count, r1 - r0, _cols);
                }
            }
        }

        /// <summary>The next chunk's rows [r0, r1): up to <paramref name="chunk"/>; where members share the rows, a
        /// quarter of what is left per member (down to four rows), so that they finish about together. The room holds
        /// 604 rows of a 110M q4 matrix, whose 768 rows went as 604 to one member and 164 to the other; and with equal
        /// chunks the last one left the partner waiting half a chunk on average.</summary>
        private int Claim(int chunk, int members, out int r1)
        {
            while (true)
            {
                int r0 = Volatile.Read(ref _next);
                if (r0 >= _rows)
                {
                    r1 = r0;
                    return r0;
                }
                int size = members == 1 ? chunk : Math.Clamp((_rows - r0) / (4 * members) & ~3, 4, chunk);
                if (Interlocked.CompareExchange(ref _next, r0 + size, r0) != r0) continue;
                r1 = Math.Min(_rows, r0 + size);
                return r0;
            }
        }
    }

    /// <summary>A block's rows prepared for the products (quantised, for q8 and q4), the members a share of the tokens
    /// each: on the main thread alone this was 4% of its time in a 110M q4 512-token prompt at 2 threads, its partner
    /// waiting meanwhile. Rows are prepared alone, so the results are the same.</summary>
    private sealed class PrepareWork : ITeamWork
    {
        private byte* _prepared;
        private float* _x;
        private int _preparedBytes, _count, _cols;
        private bool _resident;

        public void Set(byte* prepared, int preparedBytes, float* x, int count, int cols, bool resident)
        {
            _prepared = prepared; _preparedBytes = preparedBytes; _x = x; _count = count; _cols = cols; _resident = resident;
        }

        public void Execute(int member, int members)
        {
            var (start, end) = ThreadTeam.Share(_count, member, members);
            if (_resident) Prepare<TResident>(start, end);
            else Prepare<TWeights>(start, end);
        }

        private void Prepare<TW>(int start, int end) where TW : struct, IWeightFormat
        {
            for (int t = start; t < end; t++) TW.PrepareInput(_prepared + (long)t * _preparedBytes, _x + (long)t * _cols, _cols);
        }
    }

    private sealed class AttentionWork(DecoderTransformer<TWeights, TResident, TActivation> model) : ITeamWork
    {
        private float* _output;
        private int _layer, _pos, _count, _heads, _kvHeads, _headSize, _context, _next;

        public void Set(float* output, int layer, int pos, int count, int heads, int kvHeads, int headSize, int context)
        {
            _output = output; _layer = layer; _pos = pos; _count = count; _heads = heads; _kvHeads = kvHeads; _headSize = headSize; _context = context;
            _next = 0;
        }

        public void Execute(int member, int members)
        {
            int dim = _heads * _headSize;
            int kvDim = _kvHeads * _headSize;
            int group = _heads / _kvHeads;
            float scale = MathF.Sqrt(_headSize);
            // A head's keys (and values) are rows of headSize one after another: read in order.
            bool half = model._halfKv;
            int element = half ? sizeof(ushort) : sizeof(float);
            byte* keys = model._keyCache + (long)_layer * _context * kvDim * element;
            byte* values = model._valueCache + (long)_layer * _context * kvDim * element;
            // A block's queries of a head go through in tiles that share each pass over the head's cached keys and
            // values (products over blocks of tokens: MatMul, AxpyRowsBlock); a tile's scores take the member's share
            // of the [heads, context] scores, and a query's own last positions (fewer than the tile's) fit a Chunk of
            // rows. Halves go a query at a time.
            const int Chunk = 64;
            int tile = half ? 1 : Math.Clamp(_heads / members, 1, Chunk);
            float* scores = model._scores + (long)member * tile * _context; // [tile, context]
            void** rows = stackalloc void*[Chunk];
            float* qs = stackalloc float[_headSize];
            // Members take the next head as they finish one: each head is computed whole by one member, so the
            // results do not depend on who took it, and a member that runs slower for a while leaves no one waiting.
            for (int h; (h = Interlocked.Increment(ref _next) - 1) < _heads;)
            {
                long kvOffset = (long)(h / group) * _context * _headSize;
                for (int i0 = 0; i0 < _count; i0 += tile)
                {
                    int n = Math.Min(tile, _count - i0), first = _pos + i0; // the tile's queries see up to first + i
                    float* q = model.Q + (long)i0 * dim + h * _headSize;
                    float* o = _output + (long)i0 * dim + h * _headSize;
                    // scores[i, 0..first+i] = K[0..first+i, head] · q_i: the head's cached keys are a matrix (a query's
                    // scores past its own position are made and left unused). Cached halves are multiplied in place where
                    // ScaledHalves may (the same sums bit for bit): q scaled by 2^112 for the keys, the softmax's weights
                    // for the values.
                    bool scaled = half && ScaledHalves.Enabled && !model._kvNonFinite && ScaledHalves.Scale(qs, q, _headSize);
                    if (scaled) VectorOps.MatVecF16Scaled(scores, (Half*)keys + kvOffset, _headSize, qs, first + 1, _headSize);
                    else if (half) VectorOps.MatVecF16(scores, (Half*)keys + kvOffset, _headSize, q, first + 1, _headSize);
                    else VectorOps.MatMul(scores, _context, (float*)keys + kvOffset, _headSize, q, dim, n, first + n, _headSize);
                    for (int i = 0; i < n; i++)
                    {
                        float* si = scores + (long)i * _context;
                        VectorOps.Softmax(si, first + i + 1, scale);
                        if (scaled) for (int t = 0; t <= first; t++) si[t] *= HalfBits.Up;
                        NativeZero(o + (long)i * dim, _headSize);
                    }
                    // o_i[headSize] = Σ_t scores[i, t] · V[t, head], t in order: the positions every query of the tile
                    // sees, all the queries at once, several value rows per pass; then each query's own last ones.
                    for (int t0 = 0; t0 <= first; t0 += Chunk)
                    {
                        int m = Math.Min(Chunk, first + 1 - t0);
                        for (int t = 0; t < m; t++) rows[t] = values + (kvOffset + (long)(t0 + t) * _headSize) * element;
                        if (scaled) VectorOps.AxpyRowsF16Scaled(o, scores + t0, (Half**)rows, m, _headSize);
                        else if (half) VectorOps.AxpyRowsF16(o, scores + t0, (Half**)rows, m, _headSize);
                        else VectorOps.AxpyRowsBlock(o, dim, scores + t0, _context, (float**)rows, m, n, _headSize);
                    }
                    for (int i = 1; i < n; i++)
                    {
                        for (int t = 0; t < i; t++) rows[t] = values + (kvOffset + (long)(first + 1 + t) * _headSize) * element;
                        VectorOps.AxpyRows(o + (long)i * dim, scores + (long)i * _context + first + 1, (float**)rows, i, _headSize);
                    }
                }
            }
        }
    }

    private sealed class FfnWork(DecoderTransformer<TWeights, TResident, TActivation> model) : ITeamWork
    {
        private float* _output, _x;
        private nint* _bundles;
        private int* _observed;
        private int _count, _neurons, _layer;
        private long _stride;
        private BundleShape _parts;
        // [team, HelpSlots]: who computes the coefficients of each member's last chunks (Free, then Owner or Helper, Done)
        private readonly int[] _states = new int[model._team.Size * HelpSlots];

        private const int Free = 0, Owner = 1, Helper = 2, Done = 3;

        // At most this many of a member's last chunks can be helped with (f16's widened chunks of 28 neurons: 10).
        private const int HelpSlots = 16;

        public void Set(float* output, float* x, int count, nint* bundles, int neurons, long stride, BundleShape parts, int* observed, int layer)
        {
            // Only evenly spaced bundles (a block's pieces: every neuron of a range) come in blocks; the flash source's
            // predicted neurons, anywhere in its caches, come one token at a time.
            if (count > 1 && stride == 0) throw new InvalidOperationException("a block of tokens needs evenly spaced bundles");
            _output = output; _x = x; _count = count; _bundles = bundles; _neurons = neurons; _stride = stride; _parts = parts; _observed = observed;
            _layer = layer;
            Array.Clear(_states);
        }

        public void Execute(int member, int members)
        {
            int dim = _parts.Dim;
            // Member 0 sums straight into the output; the others into their own partials, added to it in member order
            // afterwards (the main thread adds one fewer, and member 0's sums stay in its own core's caches).
            float* acc = member == 0 ? _output : model._partials + (long)(member - 1) * model.BlockTokens * dim;
            if (member > 0) NativeZero(acc, _count * dim);
            byte* first = _stride == 0 ? null : (byte*)_bundles[0];
            if (_count == 1 && (_stride == 0 || TWeights.Type != WeightType.Q4))
            {
                // One token goes through its bundles one at a time, each read whole in address order: memory streams
                // fastest so (110M f16 decode, AMD EPYC: 19.1 → 11.2 ms per token against the chunked gate, up and
                // down passes below). Each neuron's sums are what a block's are (TWeights.Dot is a one-row MatVec).
                // q4 products are bound by compute, not memory: its chunks' four-row tiles unpack the activations once
                // for four rows and add four down columns per pass over acc (110M q4 decode, 1 thread: 10.7-12.0 ms
                // against 12.8-13.5 a neuron at a time).
                var (from, to) = ThreadTeam.Share(_neurons, member, members, grain: _stride == 0 ? 1 : 4);
                model.FfnRange(acc, _x, _bundles, first, _stride, from, to, _parts, _observed, _layer);
                return;
            }
            // The chunk's bundles stay cached across the gate, up and down passes over them and across the tokens; a
            // block's down columns, widened, fit the member's room.
            int chunk = ChunkNeurons();
            var (start, end, chunks, slots) = Chunks(member, members, chunk);
            float* h = model._gates + (long)member * model._gatesFloats;
            for (int c = 0; c < chunks; c++)
            {
                int j0 = start + c * chunk, n = Math.Min(end - j0, chunk), slot = c - (chunks - slots);
                if (slot < 0 || Interlocked.CompareExchange(ref _states[member * HelpSlots + slot], Owner, Free) == Free)
                {
                    Chunk(acc, member, first, j0, n, h, coefficients: true);
                    continue;
                }
                // A member that finished its own share computed (or is computing) this chunk's coefficients.
                var spin = new SpinWait();
                while (Volatile.Read(ref _states[member * HelpSlots + slot]) != Done) spin.SpinOnce(sleep1Threshold: -1);
                Chunk(acc, member, first, j0, n, HelpRows(member, slot, chunk), coefficients: false);
            }
            if (slots > 0)
                for (int k = 1; k < members; k++) Help(member, (member + k) % members, members, first, chunk);
        }

        /// <summary>The gate and up products (and activations) of another member's last chunks, from its last one back,
        /// until the member itself reaches one: a member that runs slower for a while (one core 5-22% slower than the
        /// other in every kernel on some machines) no longer leaves the others waiting at the end of the FFN. The down
        /// projection, whose sums go into the member's own partial sums in neuron order, stays with the member, so the
        /// results do not depend on who computed what.</summary>
        private void Help(int member, int other, int members, byte* first, int chunk)
        {
            var (start, end, chunks, slots) = Chunks(other, members, chunk);
            for (int slot = slots - 1; slot >= 0; slot--)
            {
                ref int state = ref _states[other * HelpSlots + slot];
                if (Interlocked.CompareExchange(ref state, Helper, Free) != Free) return;
                int j0 = start + (chunks - slots + slot) * chunk;
                Coefficients(member, first, j0, Math.Min(end - j0, chunk), HelpRows(other, slot, chunk));
                Volatile.Write(ref state, Done);
            }
        }

        /// <summary>A member's share of the neurons [start, end), its chunks, and how many of its last chunks others may
        /// help with: what the member itself and a helper both go by.</summary>
        private (int Start, int End, int Chunks, int Slots) Chunks(int member, int members, int chunk)
        {
            var (start, end) = ThreadTeam.Share(_neurons, member, members, grain: NeuronGrain);
            int chunks = (end - start + chunk - 1) / chunk;
            return (start, end, chunks, Slots(chunks, chunk, members));
        }

        /// <summary>How many of a share's last chunks others may help with: those within its last FfnBlocks.HelpNeurons
        /// neurons that the help rows hold; none with one member, for one token, or where the neurons' activations are
        /// reported (in order).</summary>
        private int Slots(int chunks, int chunk, int members) =>
            members == 1 || _count == 1 || _observed != null ? 0
                : Math.Min(Math.Min(chunks, (FfnBlocks.HelpNeurons + chunk - 1) / chunk), Math.Min(HelpSlots, (int)(model._helpFloats / (2L * chunk * _count))));

        /// <summary>Where the coefficients of a member's help slot go: [2, count, chunk], as h.</summary>
        private float* HelpRows(int member, int slot, int chunk) => model._help + (long)member * model._helpFloats + (long)slot * 2 * chunk * _count;

        /// <summary>Neurons per chunk, a multiple of NeuronGrain within h's room for the block: for a block, what the
        /// member's room holds widened (f16: whole bundles; q8: down columns) up to FfnBlocks.ChunkNeurons; for one q4
        /// token, DecodeChunkBytes of bundles.</summary>
        private int ChunkNeurons()
        {
            int fits = _count == 1 ? (int)(DecodeChunkBytes / _stride)
                : TWeights.WidenInBlocks ? (int)(model._widenedFloats * sizeof(float) / WidenedStride())
                : TWeights.Type == WeightType.Q4 || model._widened == null ? model._blockChunk
                : Math.Min(model._blockChunk, model._widenedFloats / _parts.Dim);
            return Math.Max(NeuronGrain, Math.Min(fits, model._gatesFloats / (2 * _count)) & -NeuronGrain);
        }

        private int* Observed(int from) => _observed == null ? null : _observed + from;

        /// <summary>acc += the FFN of chunk [j0, j0 + n), its coefficients computed here into h or, where
        /// <paramref name="coefficients"/> is false, already in h.</summary>
        private void Chunk(float* acc, int member, byte* first, int j0, int n, float* h, bool coefficients)
        {
            float* widened = model._widened + (long)member * model._widenedFloats;
            if (!TWeights.WidenInBlocks)
            {
                if (coefficients) Coefficients(member, first, j0, n, h);
                AddDown<TWeights>(acc, _count, first + j0 * _stride, _stride, n, _parts, h, TWeights.Type == WeightType.Q4 ? null : widened);
                return;
            }
            var shape = WidenedShape();
            Widen(first, j0, n, widened, coefficients, down: true);
            if (coefficients) model.Coefficients<F32>(_x, null, 0, _count, (byte*)widened, WidenedStride(), n, shape, Observed(j0), _layer, h);
            AddDown<F32>(acc, _count, (byte*)widened, WidenedStride(), n, shape, h, null);
        }

        /// <summary>h = the coefficients of chunk [j0, j0 + n), in the member's room where the format widens.</summary>
        private void Coefficients(int member, byte* first, int j0, int n, float* h)
        {
            if (!TWeights.WidenInBlocks)
            {
                model.Coefficients<TWeights>(_x, model._prepared, model._preparedBytes, _count, first + j0 * _stride, _stride, n, _parts, Observed(j0), _layer, h);
                return;
            }
            float* widened = model._widened + (long)member * model._widenedFloats;
            Widen(first, j0, n, widened, coefficients: true, down: false);
            model.Coefficients<F32>(_x, null, 0, _count, (byte*)widened, WidenedStride(), n, WidenedShape(), Observed(j0), _layer, h);
        }

        /// <summary>A widened f32 bundle [gate | up | down | bias] (up and bias where the family has them): whole cache
        /// lines per bundle, as with the bias's four bytes a bundle's rows would start four bytes further into a line each
        /// time, and most vector loads of them would straddle two lines (110M f16 128-token prompt, 1 thread: 341 → 326 ms;
        /// 2 threads: 188 → 179; medians of 7 and 9, alternating).</summary>
        private long WidenedStride() => (Rows * (long)_parts.Dim * sizeof(float) + sizeof(float) + 63) & ~63L;

        private int Rows => _parts.Up >= 0 ? 3 : 2;

        private BundleShape WidenedShape()
        {
            long row = (long)_parts.Dim * sizeof(float);
            return new BundleShape(_parts.Dim, _parts.Up >= 0 ? row : -1, (Rows - 1) * row, _parts.Bias >= 0 ? Rows * row : -1);
        }

        /// <summary>Bundles [j0, j0 + n) widened to f32 bundles in <paramref name="widened"/>: their gate and up rows and
        /// bias where <paramref name="coefficients"/>, their down columns where <paramref name="down"/>.</summary>
        private void Widen(byte* first, int j0, int n, float* widened, bool coefficients, bool down)
        {
            int dim = _parts.Dim;
            var shape = WidenedShape();
            long stride = WidenedStride();
            for (int j = 0; j < n; j++)
            {
                byte* from = first + (j0 + j) * _stride, to = (byte*)widened + j * stride;
                if (coefficients)
                {
                    TWeights.ToSingle((float*)to, from, dim);
                    if (shape.Up >= 0) TWeights.ToSingle((float*)(to + shape.Up), from + _parts.Up, dim);
                    if (shape.Bias >= 0) *(float*)(to + shape.Bias) = *(float*)(from + _parts.Bias);
                }
                if (down) TWeights.ToSingle((float*)(to + shape.Down), from + _parts.Down, dim);
            }
        }
    }
}
