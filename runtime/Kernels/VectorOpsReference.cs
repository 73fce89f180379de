
namespace AotFlash.Kernels;

/// <summary>
/// The plain reference beside each optimised kernel in <see cref="VectorOps"/>: obvious scalar loops with
/// float accumulation, in the order llama2.c's C code uses. Tests compare every Isa body against these,
/// and Isa.Scalar runs them.
/// </summary>
internal static unsafe class VectorOpsReference
{
    // a[n] · b[n]
    public static float Dot(float* a, float* b, int n)
    {
        float sum = 0f;
        for (int i = 0; i < n; i++) sum += a[i] * b[i];
        return sum;
    }

    // w[n] (half) · x[n]
    public static float DotF16(Half* w, float* x, int n)
    {
        float sum = 0f;
        for (int i = 0; i < n; i++) sum += (float)w[i] * x[i];
        return sum;
    }

    // w[n] (half) · x[n] given xs = x · 2^112: each product w · 2^-112 · xs, the same real number as w · x
    public static float DotF16Scaled(Half* w, float* xs, int n)
    {
        float sum = 0f;
        for (int i = 0; i < n; i++) sum += HalfBits.Scaled(w[i]) * xs[i];
        return sum;
    }

    // y[n] += a · x[n], each element a · x + y rounded once
    public static void Axpy(float* y, float a, float* x, int n)
    {
        for (int i = 0; i < n; i++) y[i] = MathF.FusedMultiplyAdd(a, x[i], y[i]);
    }

    // y[n] += Σ_k a[k] · x[k][n], k in order
    public static void AxpyRows(float* y, float* a, float** x, int count, int n)
    {
        for (int k = 0; k < count; k++) Axpy(y, a[k], x[k], n);
    }

    // Y[t, n] += Σ_k a[t·aStride + k] · x[k][n] for each token t, k in order
    public static void AxpyRowsBlock(float* y, long yStride, float* a, long aStride, float** x, int count, int tokens, int n)
    {
        for (int t = 0; t < tokens; t++) AxpyRows(y + t * yStride, a + t * aStride, x, count, n);
    }

    // y[n] += Σ_k a[k] · x[k][n], x half rows, k in order
    public static void AxpyRowsF16(float* y, float* a, Half** x, int count, int n)
    {
        for (int k = 0; k < count; k++) AxpyF16(y, a[k], x[k], n);
    }

    // y[n] += Σ_k a[k] · x[k][n], x half rows, given scaled = a · 2^112; fused, k in order
    public static void AxpyRowsF16Scaled(float* y, float* scaled, Half** x, int count, int n)
    {
        for (int k = 0; k < count; k++)
            for (int i = 0; i < n; i++) y[i] = MathF.FusedMultiplyAdd(scaled[k], HalfBits.Scaled(x[k][i]), y[i]);
    }

    // y[n] += a · x[n] (x half), fused as Axpy
    public static void AxpyF16(float* y, float a, Half* x, int n)
    {
        for (int i = 0; i < n; i++) y[i] = MathF.FusedMultiplyAdd(a, (float)x[i], y[i]);
    }

    // y[rows] = W[rows, cols] · x[cols]; row r at w + r·rowStride
    public static void MatVec(float* y, float* w, long rowStride, float* x, int rows, int cols)
    {
        for (int r = 0; r < rows; r++) y[r] = Dot(w + r * rowStride, x, cols);
    }

    // y[k] = w[n] · x[k][n]
    public static void RowDots(float* y, float* w, float** x, int count, int n)
    {
        for (int k = 0; k < count; k++) y[k] = Dot(w, x[k], n);
    }

    // y[t·yStride + r] = W[r, :] · x[t·xStride, :]
    public static void MatMul(float* y, long yStride, float* w, long rowStride, float* x, long xStride, int tokens, int rows, int cols)
    {
        for (int t = 0; t < tokens; t++) MatVec(y + t * yStride, w, rowStride, x + t * xStride, rows, cols);
    }

    // y[rows] = W[rows, cols] · x[cols], W half; row r at w + r·rowStride
    public static void MatVecF16(float* y, Half* w, long rowStride, float* x, int rows, int cols)
    {
        for (int r = 0; r < rows; r++) y[r] = DotF16(w + r * rowStride, x, cols);
    }

    // y[rows] = W[rows, cols] · x[cols], W half, given xs = x · 2^112; row r at w + r·rowStride
    public static void MatVecF16Scaled(float* y, Half* w, long rowStride, float* xs, int rows, int cols)
    {
        for (int r = 0; r < rows; r++) y[r] = DotF16Scaled(w + r * rowStride, xs, cols);
    }

    // w[n] · x[n], w one q8 row [n/32 half scales][n int8], x prepared [n/32 f32 scales][n int8]
    // (VectorOps.QuantizeActivations): per group the integer Σ qw·qx, times both scales
    public static float DotQ8(byte* w, byte* xq, int n)
    {
        int groups = n / Quantization.Group;
        sbyte* q = (sbyte*)(w + 2L * groups), x = (sbyte*)(xq + 4L * groups);
        float sum = 0f;
        for (int g = 0; g < groups; g++)
        {
            int group = 0;
            for (int j = g * Quantization.Group; j < (g + 1) * Quantization.Group; j++) group += q[j] * x[j];
            sum += (float)((Half*)w)[g] * ((float*)xq)[g] * group;
        }
        return sum;
    }

    // w[n] · x[n], w one q4 row, x prepared: per group the integer Σ (q - 8)·qx, times both scales
    public static float DotQ4(byte* w, byte* xq, int n)
    {
        int groups = n / Quantization.Group;
        sbyte* x = (sbyte*)(xq + 4L * groups);
        float sum = 0f;
        for (int g = 0; g < groups; g++)
        {
            int group = 0;
            for (int j = g * Quantization.Group; j < (g + 1) * Quantization.Group; j++) group += Q4Value(w, groups, j) * x[j];
            sum += (float)((Half*)w)[g] * ((float*)xq)[g] * group;
        }
        return sum;
    }

    // y[n] += a · w[n], w one q8 row: a · (q · scale) + y per element, fused, the weight as ToSingleQ8 gives it, so a
    // block that widens a row once and adds it with Axpy gets the same sums
    public static void AxpyQ8(float* y, float a, byte* w, int n)
    {
        int groups = n / Quantization.Group;
        sbyte* q = (sbyte*)(w + 2L * groups);
        for (int j = 0; j < n; j++) y[j] = MathF.FusedMultiplyAdd(a, q[j] * (float)((Half*)w)[j / Quantization.Group], y[j]);
    }

    // y[n] += a · w[n], w one q4 row: a · ((q - 8) · scale) per element, as AxpyQ8
    public static void AxpyQ4(float* y, float a, byte* w, int n)
    {
        int groups = n / Quantization.Group;
        for (int j = 0; j < n; j++) y[j] = MathF.FusedMultiplyAdd(a, Q4Value(w, groups, j) * (float)((Half*)w)[j / Quantization.Group], y[j]);
    }

    // y[n] += Σ_k a[k] · w[k][n], w q8 rows, k in order
    public static void AxpyRowsQ8(float* y, float* a, byte** w, int count, int n)
    {
        for (int k = 0; k < count; k++) AxpyQ8(y, a[k], w[k], n);
    }

    // Y[t, n] += Σ_k A[t, k] · w[k][n], w q4 rows in blocks of Quantization.DownRows: a token's block of coefficients
    // all of normal size (0 < |a| ≤ 2^64) is quantised per group, c_r = a_r·scale_r, k_r = round(c_r·127/m) with
    // m = max|c_r|, and y_j += (m/127)·Σ_r k_r·(q_rj - 8), fused; other rows are AxpyQ4s in order, zeros skipped.
    public static void AxpyRowsQ4(float* y, long yStride, float* a, long aStride, byte** w, int count, int tokens, int n)
    {
        const int Rows = Quantization.DownRows;
        int groups = n / Quantization.Group;
        float* c = stackalloc float[Rows];
        int* k = stackalloc int[Rows];
        for (int t = 0; t < tokens; t++)
        {
            float* yt = y + t * yStride;
            for (int r0 = 0; r0 < count; r0 += Rows)
            {
                float* at = a + t * aStride + r0;
                bool whole = count - r0 >= Rows;
                for (int r = 0; r < Rows && whole; r++) whole = MathF.Abs(at[r]) > 0f && MathF.Abs(at[r]) <= Quantization.DownLimit;
                if (!whole)
                {
                    for (int r = r0; r < Math.Min(count, r0 + Rows); r++)
                        if (a[t * aStride + r] != 0f) AxpyQ4(yt, a[t * aStride + r], w[r], n);
                    continue;
                }
                for (int g = 0; g < groups; g++)
                {
                    float m = 0f;
                    for (int r = 0; r < Rows; r++)
                    {
                        c[r] = at[r] * (float)((Half*)w[r0 + r])[g];
                        m = MathF.Max(m, MathF.Abs(c[r]));
                    }
                    float inverse = m > 0f ? 127f / m : 0f;
                    for (int r = 0; r < Rows; r++) k[r] = (int)MathF.Round(c[r] * inverse);
                    for (int j = g * Quantization.Group; j < (g + 1) * Quantization.Group; j++)
                    {
                        int sum = 0;
                        for (int r = 0; r < Rows; r++) sum += k[r] * Q4Value(w[r0 + r], groups, j);
                        yt[j] = MathF.FusedMultiplyAdd(m / 127f, sum, yt[j]);
                    }
                }
            }
        }
    }

    // y[rows] = W[rows, cols] · x[cols], W q8 rows at w + r·rowStride (bytes), x prepared
    public static void MatVecQ8(float* y, byte* w, long rowStride, byte* xq, int rows, int cols)
    {
        for (int r = 0; r < rows; r++) y[r] = DotQ8(w + r * rowStride, xq, cols);
    }

    // y[rows] = W[rows, cols] · x[cols], W q4 rows at w + r·rowStride (bytes), x prepared
    public static void MatVecQ4(float* y, byte* w, long rowStride, byte* xq, int rows, int cols)
    {
        for (int r = 0; r < rows; r++) y[r] = DotQ4(w + r * rowStride, xq, cols);
    }

    // dst = x[n] as [n/32 f32 scales][n int8] (see VectorOps.QuantizeActivations)
    public static void QuantizeActivations(byte* dst, float* x, int n)
    {
        int groups = n / Quantization.Group;
        sbyte* q = (sbyte*)(dst + sizeof(float) * (long)groups);
        for (int g = 0; g < groups; g++, x += Quantization.Group, q += Quantization.Group) QuantizeActivationGroup((float*)dst + g, q, x);
    }

    // scale = max|x| / 127 over the group of 32, q = round(x / scale); a group holding a non-finite value gets scale NaN
    // and quants 0
    public static void QuantizeActivationGroup(float* scale, sbyte* q, float* x)
    {
        float max = 0f;
        for (int j = 0; j < Quantization.Group; j++) max = MathF.Max(max, MathF.Abs(x[j]));
        float s = max / 127f;
        *scale = float.IsFinite(s) ? s : float.NaN;
        float inverse = s > 0f && float.IsFinite(s) ? 1f / s : 0f;
        for (int j = 0; j < Quantization.Group; j++) q[j] = (sbyte)Math.Clamp(MathF.Round(x[j] * inverse), -127f, 127f);
    }

    // y[t·yStride + r] = W[r, :] · X[t, :], W q8 rows, X prepared rows xStride bytes apart
    public static void MatMulQ8(float* y, long yStride, byte* w, long rowStride, byte* xq, long xStride, int tokens, int rows, int cols)
    {
        for (int t = 0; t < tokens; t++) MatVecQ8(y + t * yStride, w, rowStride, xq + t * xStride, rows, cols);
    }

    // y[t·yStride + r] = W[r, :] · X[t, :], W q4 rows, X prepared rows xStride bytes apart
    public static void MatMulQ4(float* y, long yStride, byte* w, long rowStride, byte* xq, long xStride, int tokens, int rows, int cols)
    {
        for (int t = 0; t < tokens; t++) MatVecQ4(y + t * yStride, w, rowStride, xq + t * xStride, rows, cols);
    }

    // o[n] = weight[n] ⊙ (x[n] / sqrt(Σx²/n + eps)), llama2.c's rmsnorm; o may alias x
    public static void RmsNorm(float* o, float* x, float* weight, int n, float eps)
    {
        float ss = 0f;
        for (int i = 0; i < n; i++) ss += x[i] * x[i];
        ss /= n;
        ss += eps;
        ss = 1f / MathF.Sqrt(ss);
        for (int i = 0; i < n; i++) o[i] = weight[i] * (ss * x[i]);
    }

    // o[n] = (x - mean(x)) / sqrt(var(x) + eps) * weight[n] + bias[n], the biased variance as torch's LayerNorm;
    // sums in double, so this is the accurate answer the vector kernels are held to.
    public static void LayerNorm(float* o, float* x, float* weight, float* bias, int n, float eps)
    {
        double mean = 0;
        for (int i = 0; i < n; i++) mean += x[i];
        mean /= n;
        double variance = 0;
        for (int i = 0; i < n; i++) variance += (x[i] - mean) * (x[i] - mean);
        variance /= n;
        float rstd = (float)(1 / Math.Sqrt(variance + eps));
        for (int i = 0; i < n; i++) o[i] = (float)(x[i] - mean) * rstd * weight[i] + bias[i];
    }

    // x[n] = softmax(x / divisor), in place, as llama2.c's attention: each score divided, then exp(x - max) / Σ exp(x - max)
    public static void Softmax(float* x, int n, float divisor)
    {
        if (n == 0) return;
        for (int i = 0; i < n; i++) x[i] /= divisor;
        float max = x[0];
        for (int i = 1; i < n; i++)
            if (x[i] > max) max = x[i];
        float sum = 0f;
        for (int i = 0; i < n; i++)
        {
            x[i] = MathF.Exp(x[i] - max);
            sum += x[i];
        }
        for (int i = 0; i < n; i++) x[i] /= sum;
    }

    public static void Relu(float* x, int n, float threshold)
    {
        for (int i = 0; i < n; i++) x[i] = x[i] > threshold ? x[i] : 0f;
    }

    public static void Silu(float* x, int n)
    {
        for (int i = 0; i < n; i++) x[i] = Silu(x[i]);
    }

    // llama2.c's SiLU
    public static float Silu(float x)
    {
        return x * (1.0f / (1.0f + MathF.Exp(-x)));
    }

    public static void Add(float* y, float* x, int n)
    {
        for (int i = 0; i < n; i++) y[i] += x[i];
    }

    // dst[n] = (Half)src[n]
    public static void ToHalf(Half* dst, float* src, long n)
    {
        for (long i = 0; i < n; i++) dst[i] = (Half)src[i];
    }

    // dst[n] = (float)src[n]
    public static void ToSingle(float* dst, Half* src, long n)
    {
        for (long i = 0; i < n; i++) dst[i] = (float)src[i];
    }

    // dst[n] = w[n] dequantised, w one q8 row: q · scale
    public static void ToSingleQ8(float* dst, byte* w, int n)
    {
        sbyte* q = (sbyte*)(w + 2L * (n / Quantization.Group));
        for (int j = 0; j < n; j++) dst[j] = q[j] * (float)((Half*)w)[j / Quantization.Group];
    }

    // dst[n] = w[n] dequantised, w one q4 row: (q - 8) · scale
    public static void ToSingleQ4(float* dst, byte* w, int n)
    {
        int groups = n / Quantization.Group;
        for (int j = 0; j < n; j++) dst[j] = Q4Value(w, groups, j) * (float)((Half*)w)[j / Quantization.Group];
    }

    // Element j of a q4 row as q - 8: in its group, byte j % 16 holds element j in the low nibble (j % 32 < 16)
    // or in the high nibble (j % 32 ≥ 16).
    static int Q4Value(byte* w, int groups, int j)
    {
        int inGroup = j % Quantization.Group;
        byte b = w[2L * groups + j / Quantization.Group * (Quantization.Group / 2) + inGroup % (Quantization.Group / 2)];
        return (inGroup < Quantization.Group / 2 ? b & 0xF : b >> 4) - 8;
    }
}
