using System.Globalization;
using System.Text;
using AotFlash.Inference;
using AotFlash.Kernels;

namespace AotFlash.Convert;

/// <summary>
/// SYNTHETIC weights of any spec's shape, for measuring speed on model sizes whose trained sparse weights are not at
/// hand (OPT-6.7B, Llama-2-7B): random, deterministic by seed, and generated tensor by tensor as the converter asks
/// for them, so a 13 GB model file needs no full-size intermediate. They are not a language model; what they share
/// with a ReLU model is the FFN's activation pattern, which is what flash mode's speed depends on:
/// <list type="bullet">
/// <item><b>Sparse.</b> FFN inputs are normalised (RMS 1), so for a unit gate row u the projection u·x is about
/// N(0, 1). Neuron i gets a firing probability p_i and a gate that passes exactly when u_i·x exceeds
/// z_i = Φ⁻¹(1 − p_i): a bias of threshold − z_i where the gate has one (OPT), else a row norm of threshold / z_i
/// (FATReLU). The p_i average <see cref="MeanActive"/> (3% with a bias, like OPT; 10% without, like a
/// ReLU-fine-tuned Llama) and are log-normal (σ = 1): a few hot neurons fire often, most rarely.</item>
/// <item><b>Predictable from the layer input.</b> Every gate row is 95% a combination of <see cref="StructureRank"/>
/// directions shared by its layer plus 30% noise, so a low-rank predictor can foresee most, not all, of the
/// active neurons.</item>
/// <item><b>Co-activated.</b> Neurons belong to clusters of about <see cref="ClusterSize"/> (at random indices, so
/// index order gives no locality for free) whose rows share a direction (correlation ~0.5 within a cluster).</item>
/// </list>
/// Everything else is uniform noise scaled by fan-in (attention), unit norms, zero biases, and a down projection scaled
/// so that the FFN's output has about the residual stream's size.
/// </summary>
public sealed class SyntheticWeights(ModelInfo info, ulong seed) : IWeightSource
{
    public const int StructureRank = 32;
    public const int ClusterSize = 64;
    private const float ClusterShare = 0.7f;   // weight of the cluster's direction in a row's structured part
    private const float StructuredShare = 0.95f, NoiseShare = 0.3f;
    private const double HotSpread = 1.0;      // σ of log p_i
    private const double MostActive = 0.4;     // cap on p_i (z_i stays > 0, so FATReLU's row norm stays finite)

    private readonly ModelInfo _info = info;
    private readonly ulong _seed = seed;
    private readonly bool _biasedGate = info.Layout.BundleBias >= 0;
    private float[] _buffer = [];
    private (int Layer, NeuronPlan Plan)? _plan;

    /// <summary>Mean fraction of FFN neurons active per token.</summary>
    public double MeanActive => _biasedGate ? 0.03 : 0.10;

    /// <summary>One line for the model file's provenance section, which every command that opens it prints.</summary>
    public string Provenance => string.Create(CultureInfo.InvariantCulture,
        $"SYNTHETIC weights (seed {_seed}): random, with FFN activations made ~{MeanActive * 100:F0}% active and predictable from the layer input; they measure speed, not quality, and generate noise");

    /// <summary>Whether the spec's activation lets the construction set the sparsity: a bias (any threshold) or
    /// FATReLU; otherwise (silu, gelu, relu without a bias) the FFN is about half or fully dense.</summary>
    public bool ControlsSparsity => _biasedGate ? _info.Activation.ActiveThreshold is not null : _info.Activation.ActiveThreshold > 0;

    public ReadOnlySpan<float> Read(string name, int rows, int cols)
    {
        long count = (long)rows * cols;
        if (_buffer.Length < count) _buffer = new float[count];
        var values = _buffer.AsSpan(0, (int)count);
        var (layer, tensor) = WeightNames.Split(name);
        ulong stream = Hash(_seed, name);
        float fanIn = MathF.Sqrt(3f / cols); // uniform ±√(3/n): rows of norm ~1
        switch (tensor)
        {
            case "token_embedding" or "classifier": Uniform(_buffer, rows, cols, stream, 1f); break;
            case "position_embedding": Uniform(_buffer, rows, cols, stream, 0.1f); break;
            case "attention_norm" or "ffn_norm" or "final_norm": values.Fill(1f); break;
            case "wq" or "wk" or "wv" or "wo" or "w3": Uniform(_buffer, rows, cols, stream, fanIn); break;
            case "w1" or "fc1": Plan(layer!.Value).GateRows(_buffer, rows, cols, stream); break;
            case "fc1_bias": Plan(layer!.Value).Biases.CopyTo(values); break;
            case "w2" or "fc2": Uniform(_buffer, rows, cols, stream, Plan(layer!.Value).DownScale * MathF.Sqrt(3f)); break;
            default:
                if (!tensor.EndsWith("_bias", StringComparison.Ordinal) && tensor is not ("bq" or "bk" or "bv" or "bo"))
                    throw new InvalidOperationException($"no synthetic rule for tensor '{name}'");
                values.Clear();
                break;
        }
        return values;
    }

    public void Dispose() { }

    private NeuronPlan Plan(int layer)
    {
        if (_plan is { } p && p.Layer == layer) return p.Plan;
        var plan = new NeuronPlan(this, layer);
        _plan = (layer, plan);
        return plan;
    }

    /// <summary>One layer's neurons: firing probabilities, cluster of each, and what the gate and down projection are
    /// scaled by to give them (the same whichever of the layer's tensors is asked for first).</summary>
    private sealed class NeuronPlan
    {
        private readonly ulong _stream;
        private readonly int[] _cluster;
        /// <summary>Gate row norm: 1 with a bias, threshold / z_i for FATReLU.</summary>
        private readonly float[] _rowScale;
        public float[] Biases { get; }
        /// <summary>Standard deviation of the down projection's weights.</summary>
        public float DownScale { get; }

        public NeuronPlan(SyntheticWeights owner, int layer)
        {
            _stream = Hash(owner._seed, $"layers.{layer}.neurons");
            int hidden = owner._info.Shape.HiddenDim;
            float threshold = owner._info.Activation.ActiveThreshold ?? 0f;
            var random = new Rng(_stream);
            _cluster = new int[hidden];
            _rowScale = new float[hidden];
            Biases = new float[hidden];
            int clusters = Math.Max(1, hidden / ClusterSize);
            double meanSquare = 0; // Σ E[a_i²], to scale the down projection
            for (int i = 0; i < hidden; i++)
            {
                _cluster[i] = (int)(random.Next() % (ulong)clusters);
                double p = Math.Min(MostActive, owner.MeanActive * Math.Exp(HotSpread * random.Normal() - HotSpread * HotSpread / 2));
                double z = Normal.Quantile(1 - p), tail = Normal.UpperTail(z), density = Normal.Density(z);
                if (owner._biasedGate)
                {
                    _rowScale[i] = 1f;
                    Biases[i] = (float)(threshold - z);
                    meanSquare += (1 + z * z) * tail - z * density;         // E[(u − z)₊²], u ~ N(0, 1)
                }
                else
                {
                    double scale = owner.ControlsSparsity ? threshold / z : 1;
                    _rowScale[i] = (float)scale;
                    meanSquare += scale * scale * (tail + z * density);     // E[(s·u)² ; u > z] (times E[(w3·x)²] = 1)
                }
            }
            // FFN output RMS ≈ 0.5, about the residual stream's (token embeddings uniform ±1: RMS 0.58).
            DownScale = (float)(0.5 / Math.Sqrt(Math.Max(meanSquare, 1e-6)));
        }

        /// <summary>gate[hidden, dim]: row i = rowScale_i · unit(0.95 · unit(B·c_i) + 0.3 · noise), where B holds
        /// the layer's <see cref="StructureRank"/> directions and c_i mixes neuron i's cluster direction with its own.</summary>
        public unsafe void GateRows(float[] gate, int hidden, int dim, ulong stream)
        {
            var basis = new float[StructureRank * dim];
            Uniform(basis, StructureRank, dim, Hash(_stream, "basis"), 1f);
            int clusters = Math.Max(1, hidden / ClusterSize);
            var centres = new float[clusters * StructureRank];
            Uniform(centres, clusters, StructureRank, Hash(_stream, "centres"), 1f);
            Parallel.For(0, hidden, () => new float[StructureRank], (i, _, mix) =>
            {
                var random = new Rng(Hash(stream, (ulong)i));
                var own = mix.AsSpan();
                for (int k = 0; k < StructureRank; k++) own[k] = random.Uniform();
                Scale(own, 1f / Norm(own));
                var centre = centres.AsSpan(_cluster[i] * StructureRank, StructureRank);
                float centreNorm = Norm(centre), ownShare = MathF.Sqrt(1 - ClusterShare * ClusterShare);
                for (int k = 0; k < StructureRank; k++) own[k] = ClusterShare * centre[k] / centreNorm + ownShare * own[k];
                fixed (float* b = basis)
                fixed (float* row = &gate[(long)i * dim])
                {
                    new Span<float>(row, dim).Clear();
                    for (int k = 0; k < StructureRank; k++) VectorOps.Axpy(row, own[k], b + (long)k * dim, dim);
                    var r = new Span<float>(row, dim);
                    Scale(r, StructuredShare / Norm(r));
                    float noise = NoiseShare * MathF.Sqrt(3f / dim);
                    for (int d = 0; d < dim; d++) r[d] += random.Uniform() * noise;
                    Scale(r, _rowScale[i] / Norm(r));
                }
                return mix;
            }, _ => { });
        }

        private static float Norm(ReadOnlySpan<float> v)
        {
            double sum = 0;
            foreach (float x in v) sum += (double)x * x;
            return (float)Math.Sqrt(sum);
        }

        private static void Scale(Span<float> v, float by)
        {
            for (int i = 0; i < v.Length; i++) v[i] *= by;
        }
    }

    /// <summary>values[rows, cols] uniform in ±<paramref name="amplitude"/>, each row from its own stream (rows are
    /// filled in parallel, the same values whatever the thread count).</summary>
    private static void Uniform(float[] values, int rows, int cols, ulong stream, float amplitude) =>
        Parallel.For(0, rows, r =>
        {
            var random = new Rng(Hash(stream, (ulong)r));
            var row = values.AsSpan((int)((long)r * cols), cols);
            for (int c = 0; c < cols; c++) row[c] = random.Uniform() * amplitude;
        });

    private static ulong Hash(ulong seed, string name) => Hash(seed, Fnv(name));

    private static ulong Fnv(string text)
    {
        ulong h = 14695981039346656037UL;
        foreach (byte b in Encoding.UTF8.GetBytes(text)) h = (h ^ b) * 1099511628211UL;
        return h;
    }

    /// <summary>SplitMix64 of the pair: independent streams per tensor and per row.</summary>
    private static ulong Hash(ulong a, ulong b)
    {
        ulong z = a * 0x9E3779B97F4A7C15UL + b + 0x632BE59BD9B4E019UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    /// <summary>xorshift64*: fast, and good enough for weights.</summary>
    private struct Rng(ulong seed)
    {
        private ulong _state = seed | 1;

        public ulong Next()
        {
            _state ^= _state >> 12; _state ^= _state << 25; _state ^= _state >> 27;
            return _state * 0x2545F4914F6CDD1DUL;
        }

        /// <summary>Uniform in [−1, 1).</summary>
        public float Uniform() => (Next() >> 40) * (2f / 16777216f) - 1f;

        /// <summary>Standard normal (Box–Muller).</summary>
        public double Normal()
        {
            double u = ((Next() >> 11) + 0.5) / 9007199254740992.0, v = (Next() >> 11) / 9007199254740992.0;
            return Math.Sqrt(-2 * Math.Log(u)) * Math.Cos(2 * Math.PI * v);
        }
    }
}

/// <summary>The standard normal distribution's density, upper tail and quantile, to the accuracy weights need.</summary>
public static class Normal
{
    public static double Density(double x) => Math.Exp(-x * x / 2) / Math.Sqrt(2 * Math.PI);

    /// <summary>P(X &gt; x) = erfc(x/√2)/2, via Abramowitz and Stegun 7.1.26 (absolute error &lt; 1.5e-7 in erf).</summary>
    public static double UpperTail(double x)
    {
        double t = Math.Abs(x) / Math.Sqrt(2), k = 1 / (1 + 0.3275911 * t);
        double erfc = k * (0.254829592 + k * (-0.284496736 + k * (1.421413741 + k * (-1.453152027 + k * 1.061405429)))) * Math.Exp(-t * t);
        return x >= 0 ? erfc / 2 : 1 - erfc / 2;
    }

    /// <summary>Φ⁻¹(p) for 0 &lt; p &lt; 1, by bisection on <see cref="UpperTail"/> (60 halvings: exact to double's
    /// resolution of the tail formula).</summary>
    public static double Quantile(double p)
    {
        if (!(p > 0 && p < 1)) throw new ArgumentOutOfRangeException(nameof(p), p, "a probability strictly between 0 and 1");
        double lo = -40, hi = 40;
        for (int i = 0; i < 60; i++)
        {
            double mid = (lo + hi) / 2;
            if (1 - UpperTail(mid) < p) lo = mid; else hi = mid;
        }
        return (lo + hi) / 2;
    }
}
