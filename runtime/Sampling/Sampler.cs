namespace AotFlash.Sampling;

/// <summary>A sampling setting out of its range: the caller's input, which the CLI and the C API report as such.</summary>
public sealed class InvalidSamplerOptionException(string message, string setting) : ArgumentException(message)
{
    /// <summary>The <see cref="SamplerOptions"/> property at fault.</summary>
    public string Setting { get; } = setting;
}

/// <summary>Sampling settings. The defaults are plain sampling at temperature 1 with every filter off.</summary>
public sealed class SamplerOptions
{
    /// <summary>Softmax temperature; 0 = greedy (argmax). Must be finite and ≥ 0.</summary>
    public float Temperature { get; init; } = 1f;

    /// <summary>Keep only the K most probable tokens; 0 = off. Must be ≥ 0.</summary>
    public int TopK { get; init; }

    /// <summary>Nucleus: keep the smallest set of most probable tokens whose mass reaches TopP; 1 = off. In (0, 1].</summary>
    public float TopP { get; init; } = 1f;

    /// <summary>Drop tokens whose probability is below MinP × the largest probability; 0 = off. In [0, 1).</summary>
    public float MinP { get; init; }

    /// <summary>Seed of the xorshift64* generator (0 is replaced by a fixed non-zero constant).</summary>
    public ulong Seed { get; init; }

    /// <summary>Greedy decoding (temperature 0).</summary>
    public static SamplerOptions Greedy => new() { Temperature = 0f };

    /// <summary>Throws <see cref="InvalidSamplerOptionException"/> naming the first invalid setting.</summary>
    public void Validate()
    {
        if (!(Temperature >= 0f) || float.IsPositiveInfinity(Temperature))
            throw new InvalidSamplerOptionException($"sampler: temperature must be a finite number >= 0 (got {Temperature}).", nameof(Temperature));
        if (TopK < 0)
            throw new InvalidSamplerOptionException($"sampler: top-k must be >= 0, 0 meaning off (got {TopK}).", nameof(TopK));
        if (!(TopP > 0f && TopP <= 1f))
            throw new InvalidSamplerOptionException($"sampler: top-p must be in (0, 1], 1 meaning off (got {TopP}).", nameof(TopP));
        if (!(MinP >= 0f && MinP < 1f))
            throw new InvalidSamplerOptionException($"sampler: min-p must be in [0, 1), 0 meaning off (got {MinP}).", nameof(MinP));
    }
}

/// <summary>
/// Picks the next token from a logits vector. Greedy (temperature 0, or top-k 1) is the argmax, the
/// first index of the maximum. Otherwise: logits / temperature, softmax, then top-k, min-p and top-p
/// (top-p measured on the mass left by top-k and min-p), renormalise and draw with llama2.c's
/// xorshift64* generator (<c>random_u32</c>/<c>random_f32</c>). Without top-k and top-p the draw walks
/// the tokens in index order, like llama2.c's <c>sample_mult</c>; with them, in order of decreasing
/// probability (ties by index). All buffers are allocated in the constructor; <see cref="Sample"/>
/// allocates nothing. Not thread-safe (it owns the generator state).
/// </summary>
public sealed class Sampler
{
    const ulong ZeroSeedReplacement = 0x9E3779B97F4A7C15UL;

    readonly int _vocabSize;
    readonly float _temperature;
    readonly int _topK;     // 0 when off or >= vocab
    readonly float _topP;
    readonly float _minP;
    readonly ulong[] _keys; // candidates: (~bits(weight) << 32) | index, so ascending = weight desc, index asc
    ulong _state;

    public Sampler(int vocabSize, SamplerOptions o)
    {
        ArgumentNullException.ThrowIfNull(o);
        if (vocabSize <= 0)
            throw new ArgumentOutOfRangeException(nameof(vocabSize), vocabSize, "sampler: vocabulary size must be > 0.");
        o.Validate();
        _vocabSize = vocabSize;
        _temperature = o.Temperature;
        _topK = o.TopK >= vocabSize ? 0 : o.TopK;
        _topP = o.TopP;
        _minP = o.MinP;
        _state = o.Seed == 0 ? ZeroSeedReplacement : o.Seed;
        _keys = new ulong[vocabSize];
    }

    public int VocabSize => _vocabSize;

    /// <summary>True when every call is the argmax (temperature 0 or top-k 1); the generator is then never used.</summary>
    public bool IsGreedy => _temperature == 0f || _topK == 1;

    /// <summary>llama2.c's <c>random_u32</c>: xorshift64*.</summary>
    public uint NextU32()
    {
        _state ^= _state >> 12;
        _state ^= _state << 25;
        _state ^= _state >> 27;
        return (uint)((_state * 0x2545F4914F6CDD1DUL) >> 32);
    }

    /// <summary>llama2.c's <c>random_f32</c>: a float in [0, 1).</summary>
    public float NextF32() => (NextU32() >> 8) / 16777216.0f;

    /// <summary>The first index of the largest value (strict &gt; scan); NaNs are never chosen (0 when nothing beats -inf).</summary>
    public static int Argmax(ReadOnlySpan<float> values)
    {
        if (values.IsEmpty) throw new ArgumentException("sampler: empty logits.", nameof(values));
        // Same result as C's `max = v[0]; for i >= 1: if (v[i] > max)` for NaN-free input; starting
        // from -inf instead means a NaN in front cannot hide the real maximum.
        int best = 0;
        float max = float.NegativeInfinity;
        for (int i = 0; i < values.Length; i++)
        {
            if (values[i] > max) { max = values[i]; best = i; }
        }
        return best;
    }

    /// <summary>Chooses a token. <paramref name="logits"/> (length = vocabulary size) is overwritten with unnormalised probabilities unless the choice is greedy.</summary>
    public int Sample(Span<float> logits)
    {
        if (logits.Length != _vocabSize)
            throw new ArgumentException($"sampler: expected {_vocabSize} logits, got {logits.Length}.", nameof(logits));

        int amax = Argmax(logits);
        if (IsGreedy) return amax;
        float scaledMax = logits[amax] / _temperature;
        if (!float.IsFinite(scaledMax)) return amax; // +inf, NaN or overflow at a tiny temperature: the limit is the argmax

        // Softmax without the division: weight = exp(l/T - max/T), so the largest weight is exactly 1
        // and min-p's threshold minP * pmax becomes minP on the weights.
        for (int i = 0; i < logits.Length; i++)
        {
            float w = MathF.Exp(logits[i] / _temperature - scaledMax);
            logits[i] = w > 0f ? w : 0f; // NaN -> 0
        }
        float threshold = _minP;
        float coin = NextF32();

        if (_topK == 0 && _topP >= 1f)
        {
            double total = 0;
            for (int i = 0; i < logits.Length; i++)
                if (logits[i] >= threshold) total += logits[i];
            double r = coin * total, cdf = 0;
            int last = amax;
            for (int i = 0; i < logits.Length; i++)
            {
                float w = logits[i];
                if (w < threshold || w == 0f) continue;
                cdf += w;
                last = i;
                if (r < cdf) return i;
            }
            return last; // rounding
        }

        int m;
        double mass = 0; // the mass top-p is measured against: everything left by top-k and min-p
        if (_topK > 0)
        {
            m = SelectTopK(logits, threshold);
            for (int j = 0; j < m; j++) mass += Weight(_keys[j]);
        }
        else
        {
            // Top-p only: drop weights that cannot be in the nucleus before sorting (llama2.c's
            // cutoff trick): those below (1 - topP) * total / (n - 1) sum to less than (1 - topP) * total
            // as long as the largest weight (exactly 1) is kept, hence the clamp to 1.
            double total = 0;
            int n = 0;
            for (int i = 0; i < logits.Length; i++)
            {
                float w = logits[i];
                if (w >= threshold && w > 0f) { total += w; n++; }
            }
            float cutoff = n > 1 ? (float)((1.0 - _topP) * total / (n - 1)) : 0f;
            float floor = Math.Max(threshold, Math.Min(cutoff, 1f));
            mass = total;
            m = 0;
            for (int i = 0; i < logits.Length; i++)
            {
                float w = logits[i];
                if (w >= floor && w > 0f) _keys[m++] = Key(w, i);
            }
            if (m == 0) return amax;
            _keys.AsSpan(0, m).Sort();
        }

        if (_topP < 1f)
        {
            double target = _topP * mass, cum = 0;
            for (int j = 0; j < m; j++)
            {
                cum += Weight(_keys[j]);
                if (cum >= target) { m = j + 1; break; }
            }
        }

        double kept = 0;
        for (int j = 0; j < m; j++) kept += Weight(_keys[j]);
        double rr = coin * kept, c = 0;
        for (int j = 0; j < m; j++)
        {
            c += Weight(_keys[j]);
            if (rr < c) return (int)(uint)_keys[j];
        }
        return (int)(uint)_keys[m - 1];
    }

    /// <summary>Puts the keys of the K heaviest weights ≥ threshold into _keys[0..m), sorted; returns m.</summary>
    int SelectTopK(ReadOnlySpan<float> weights, float threshold)
    {
        int k = _topK, m = 0;
        ulong[] heap = _keys; // max-heap on key (the worst kept candidate at the root)
        for (int i = 0; i < weights.Length; i++)
        {
            float w = weights[i];
            if (w < threshold || w == 0f) continue;
            ulong key = Key(w, i);
            if (m < k)
            {
                int c = m++;
                while (c > 0)
                {
                    int p = (c - 1) >> 1;
                    if (heap[p] >= key) break;
                    heap[c] = heap[p];
                    c = p;
                }
                heap[c] = key;
            }
            else if (key < heap[0])
            {
                int c = 0;
                while (true)
                {
                    int l = 2 * c + 1;
                    if (l >= m) break;
                    int r = l + 1;
                    int big = r < m && heap[r] > heap[l] ? r : l;
                    if (heap[big] <= key) break;
                    heap[c] = heap[big];
                    c = big;
                }
                heap[c] = key;
            }
        }
        heap.AsSpan(0, m).Sort();
        return m;
    }

    static ulong Key(float weight, int index) =>
        ((ulong)~BitConverter.SingleToUInt32Bits(weight) << 32) | (uint)index;

    static float Weight(ulong key) => BitConverter.UInt32BitsToSingle(~(uint)(key >> 32));
}
