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

    // y[n] += a · x[n]
    public static void Axpy(float* y, float a, float* x, int n)
    {
        for (int i = 0; i < n; i++) y[i] += a * x[i];
    }

    // y[n] += a · x[n] (x half)
    public static void AxpyF16(float* y, float a, Half* x, int n)
    {
        for (int i = 0; i < n; i++) y[i] += a * (float)x[i];
    }

    // y[rows] = W[rows, cols] · x[cols]; row r at w + r·rowStride
    public static void MatVec(float* y, float* w, long rowStride, float* x, int rows, int cols)
    {
        for (int r = 0; r < rows; r++) y[r] = Dot(w + r * rowStride, x, cols);
    }

    // y[rows] = W[rows, cols] · x[cols], W half; row r at w + r·rowStride
    public static void MatVecF16(float* y, Half* w, long rowStride, float* x, int rows, int cols)
    {
        for (int r = 0; r < rows; r++) y[r] = DotF16(w + r * rowStride, x, cols);
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

    // x[n] = exp(x - max) / Σ exp(x - max), in place
    public static void Softmax(float* x, int n)
    {
        if (n == 0) return;
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

    // y[n] += x[n]
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
}
