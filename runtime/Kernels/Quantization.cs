namespace AotFlash.Kernels;

/// <summary>
/// float rows → q8 and q4 rows; the way back is
/// <see cref="VectorOps.ToSingleQ8"/> and <see cref="VectorOps.ToSingleQ4"/>. Conversion runs once, offline, so these
/// stay plain scalar code. Each group of 32 elements gets its own half-precision scale; the quants are computed from
/// the scale as stored (rounded to half), so the rounding of the scale does not add to the error of every element.
/// </summary>
public static unsafe class Quantization
{
    /// <summary>Elements per group of a q8 or q4 row, each group with one half-precision scale. A row of n elements is
    /// [n / Group half scales][quants]: q8 one int8 per element; q4 Group / 2 bytes per group, byte j holding element j
    /// in its low nibble and element j + Group / 2 in its high nibble. The model file's layout (<c>Layout.QuantGroup</c>,
    /// <c>Layout.RowBytes</c>) stores rows this way; a test keeps the two in step.</summary>
    public const int Group = 32;

    /// <summary>Rows of a q4 down projection whose coefficients are quantised together (<c>VectorOps.AxpyRowsQ4</c>):
    /// callers pass a layer's rows from a multiple of it, so that a neuron falls in the same block whatever range or
    /// block of tokens it is summed in.</summary>
    public const int DownRows = 16;

    /// <summary>The largest coefficient (2^64) that a q4 down projection quantises: times any half scale it stays finite.</summary>
    public const float DownLimit = 18446744073709551616f;

    /// <summary>dst = q8 row of src[n] (n a multiple of 32): symmetric, scale = max|x| / 127, q = round(x / scale)
    /// in [-127, 127]. Throws <see cref="OverflowException"/> for a weight that is not finite or a scale that does not fit a half.</summary>
    public static void QuantizeQ8(byte* dst, float* src, int n)
    {
        int groups = GroupsOf(n);
        sbyte* q = (sbyte*)(dst + 2L * groups);
        for (int g = 0; g < groups; g++)
        {
            float* x = src + g * Quantization.Group;
            float max = 0f;
            for (int j = 0; j < Quantization.Group; j++) max = MathF.Max(max, MathF.Abs(Finite(x[j])));
            float scale = StoreScale(dst, g, max / 127f);
            for (int j = 0; j < Quantization.Group; j++)
                q[g * Quantization.Group + j] = (sbyte)(scale == 0f ? 0 : Math.Clamp(MathF.Round(x[j] / scale), -127f, 127f));
        }
    }

    /// <summary>dst = q4 row of src[n] (n a multiple of 32): value = (q - 8) · scale with q in [0, 15]. Each group's
    /// scale is the least-squares one for the best of 21 roundings: for the group's element of largest magnitude m,
    /// the quants l = round(x / s) clamped to [-8, 7] are tried for s = m / -(8 + k/10), k in [-10, 10], and the
    /// candidate that explains most of the group (largest (Σ x·l)² / Σ l²) wins with scale Σ x·l / Σ l². k = 0 alone is
    /// llama.cpp's Q4_0 rule (m stored exactly as -8); the search cuts the error of the other 31 elements.</summary>
    public static void QuantizeQ4(byte* dst, float* src, int n)
    {
        int groups = GroupsOf(n);
        const int HalfGroup = Quantization.Group / 2;
        byte* q = dst + 2L * groups;
        for (int g = 0; g < groups; g++)
        {
            float* x = src + g * Quantization.Group;
            float extreme = 0f;
            for (int j = 0; j < Quantization.Group; j++)
                if (MathF.Abs(Finite(x[j])) > MathF.Abs(extreme)) extreme = x[j];
            float scale = StoreScale(dst, g, LeastSquaresScale(x, extreme));
            for (int j = 0; j < HalfGroup; j++)
                q[g * HalfGroup + j] = (byte)(Quant4(x[j], scale) | Quant4(x[j + HalfGroup], scale) << 4);
        }
    }

    /// <summary>Bytes of an activation vector of n elements (n a multiple of 32) as <see cref="VectorOps.QuantizeActivations(byte*, float*, int)"/> writes it.</summary>
    public static int ActivationBytes(int n) => n / Quantization.Group * sizeof(float) + n;

    private static float LeastSquaresScale(float* x, float extreme)
    {
        if (extreme == 0f) return 0f;
        double best = -1, scale = extreme / -8.0;
        for (int k = -10; k <= 10; k++)
        {
            double inverse = -(8 + 0.1 * k) / extreme;
            double sumXL = 0, sumLL = 0;
            for (int j = 0; j < Quantization.Group; j++)
            {
                double l = Math.Clamp(Math.Round(x[j] * inverse), -8, 7);
                sumXL += x[j] * l;
                sumLL += l * l;
            }
            if (sumLL > 0 && sumXL * sumXL / sumLL > best)
            {
                best = sumXL * sumXL / sumLL;
                scale = sumXL / sumLL;
            }
        }
        return (float)scale;
    }

    private static int Quant4(float x, float scale) => scale == 0f ? 8 : (int)Math.Clamp(MathF.Round(x / scale) + 8f, 0f, 15f);

    private static int GroupsOf(int n) => n % Quantization.Group == 0
        ? n / Quantization.Group
        : throw new ArgumentException($"quantised rows need a multiple of {Quantization.Group} elements, not {n}", nameof(n));

    private static float Finite(float x) => float.IsFinite(x) ? x : throw new OverflowException($"a weight is {x}, which cannot be quantised");

    /// <summary>Writes scale g of a row as a half and returns the value stored.</summary>
    private static float StoreScale(byte* row, int g, float scale)
    {
        var half = (Half)scale;
        if (!Half.IsFinite(half)) throw new OverflowException($"a quantisation scale of {scale} does not fit a half-precision float");
        ((Half*)row)[g] = half;
        return (float)half;
    }
}
