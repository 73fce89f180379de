using System.Runtime.CompilerServices;

namespace AotFlash.Kernels;

/// <summary>
/// A q4 down projection, y[t, :] += Σ_k a[t, k]·w_k for a block of tokens, w_k the neurons' q4 down columns, summed in
/// integers where a block of <see cref="Quantization.DownRows"/> coefficients allows it (<see cref="IPairSums{TI}"/>).
/// A vector of AVX-512 holds a group's 32 elements of two rows: one multiply per row pair where 256 bits take two.
/// </summary>
[SkipLocalsInit] // every stackalloc here is scratch written before it is read
internal static unsafe class Q4DownKernels<TF, TI, S>
    where TF : struct
    where TI : struct
    where S : struct, ISimd<TF, TI>, IPairSums<TI>
{
    private const int DownPairs = Quantization.DownRows / 2, PairBytes = 2 * Quantization.Group;

    // Y[t, n] += Σ_k A[t, k] · w[k][n] for each of the tokens, w q4 rows (a down projection's columns) taken in blocks of
    // DownRows from the first. Where a token's coefficients for a whole block are all of normal size (0 < |a| ≤ 2^64),
    // the block is summed in integers, as llama.cpp sums a down projection against activations quantised to int8: per
    // group g, each row's coefficient times its scale, c_r = a_r·s_rg, is quantised to k_r = round(c_r·127/m) with
    // m = max_r |c_r|, and y_j += (m/127)·(Σ_r k_r·q_rj - 8·Σ_r k_r) in one fused step. A byte multiply sums two rows'
    // products for 16 or 32 elements at once, where float axpys take a conversion, a multiply and a fused add for 8:
    // 110M q4 decode, 1 thread, AMD EPYC: 8.67 → 7.85 ms per token. The nibbles of a block are unpacked into pairs once
    // for all the tokens. Any other rows (a block with a zero coefficient, as a ReLU leaves, or the last block short)
    // are added as AxpyQ4 adds them, zeros skipped; a token none of whose blocks is summed in integers (a ReLU's, most
    // often) adds its rows four at a time, as before. A token's row is the same in any block of tokens.
    public static void AxpyRowsQ4(float* y, long yStride, float* a, long aStride, byte** w, int count, int tokens, int n)
    {
        const int Rows = Quantization.DownRows;
        int groups = n / Quantization.Group;
        bool* integer = stackalloc bool[tokens]; // whether some block of the token's is summed in integers
        float* active = stackalloc float[count];
        byte** own = stackalloc byte*[count];
        for (int t = 0; t < tokens; t++)
        {
            float* at = a + t * aStride;
            integer[t] = false;
            for (int r0 = 0; r0 + Rows <= count && !integer[t]; r0 += Rows) integer[t] = QuantisesWhole(at + r0);
            if (integer[t]) continue;
            int m = 0;
            for (int r = 0; r < count; r++)
                if (at[r] != 0f)
                {
                    active[m] = at[r];
                    own[m++] = w[r];
                }
            SimdKernels<TF, TI, S>.AxpyRowsQ4Each(y + t * yStride, active, own, m, n);
        }
        byte* pairs = stackalloc byte[groups * DownPairs * PairBytes]; // [group][pair][element][row of the pair]
        float* scales = stackalloc float[Rows * groups]; // [row][group]
        float* c = stackalloc float[Rows * groups]; // a token's coefficients times the scales, as scales
        int* k = stackalloc int[DownPairs * groups]; // [pair][group]: the pair's two int8 coefficients, in both int16 halves
        float* d = stackalloc float[groups];
        int* bias = stackalloc int[groups];
        for (int r0 = 0; r0 < count; r0 += Rows)
        {
            int rows = Math.Min(Rows, count - r0);
            byte** block = w + r0;
            bool unpacked = false;
            for (int t = 0; t < tokens; t++)
            {
                if (!integer[t]) continue;
                float* at = a + t * aStride + r0, yt = y + t * yStride;
                if (rows == Rows && QuantisesWhole(at))
                {
                    if (!unpacked)
                    {
                        Unpack(pairs, scales, block, groups);
                        unpacked = true;
                    }
                    QuantiseCoefficients(k, d, bias, at, scales, c, groups);
                    AddPairs(yt, pairs, k, d, bias, groups);
                    continue;
                }
                for (int r = 0; r < rows; r++)
                    if (at[r] != 0f) SimdKernels<TF, TI, S>.AxpyQ4(yt, at[r], block[r], n);
            }
        }
    }

    // A block's scales as floats, scales[r, g], and its quants as pairs, [group][pair][element][row of the pair]: each
    // pair of rows read through in order.
    private static void Unpack(byte* pairs, float* scales, byte** block, int groups)
    {
        const int Half = Quantization.Group / 2;
        for (int r = 0; r < Quantization.DownRows; r++) SimdKernels<TF, TI, S>.QuantScales(scales + r * groups, block[r], 0, 1, null, groups);
        long quants = 2L * groups;
        for (int p = 0; p < DownPairs; p++)
        {
            byte* q0 = block[2 * p] + quants, q1 = block[2 * p + 1] + quants, to = pairs + p * PairBytes;
            for (int g = 0; g < groups; g++, q0 += Half, q1 += Half, to += DownPairs * PairBytes) S.UnpackQ4Pairs(to, q0, q1);
        }
    }

    // Whether a block's DownRows coefficients all go through the integer sums: each non-zero, finite and small enough
    // that times any half scale it stays finite.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static bool QuantisesWhole(float* a)
    {
        for (int r = 0; r < Quantization.DownRows; r++)
        {
            float m = MathF.Abs(a[r]);
            if (!(m > 0f && m <= Quantization.DownLimit)) return false;
        }
        return true;
    }

    // k[p·groups + g] = rows 2p and 2p + 1's quantised coefficients of group g as bytes (in both int16 halves), d[g] the
    // group's step m/127 and bias[g] = -8·Σ_r k_r, from c_r = a_r·scales[r, g]; a group whose c are all 0 gets k = 0.
    private static void QuantiseCoefficients(int* k, float* d, int* bias, float* a, float* scales, float* c, int groups)
    {
        const int Rows = Quantization.DownRows;
        int g = 0, last = groups - S.Count;
        for (; g <= last; g += S.Count) QuantiseGroups(k, d, bias, a, scales, c, groups, g);
        if (g < groups && last >= 0)
        {
            // The last Count groups again, as a vector: the groups they share with the loop get the same values.
            QuantiseGroups(k, d, bias, a, scales, c, groups, last);
            g = groups;
        }
        for (; g < groups; g++)
        {
            float m = 0f;
            for (int r = 0; r < Rows; r++)
            {
                c[r * groups + g] = a[r] * scales[r * groups + g];
                m = MathF.Max(m, MathF.Abs(c[r * groups + g]));
            }
            float inverse = m > 0f ? 127f / m : 0f;
            d[g] = m / 127f;
            int sum = 0;
            for (int p = 0; p < DownPairs; p++)
            {
                int k0 = (int)MathF.Round(c[2 * p * groups + g] * inverse), k1 = (int)MathF.Round(c[(2 * p + 1) * groups + g] * inverse);
                sum += k0 + k1;
                int pair = (k0 & 0xFF) | (k1 & 0xFF) << 8;
                k[p * groups + g] = pair | pair << 16;
            }
            bias[g] = -8 * sum;
        }
    }

    // QuantiseCoefficients for groups g .. g + Count - 1
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void QuantiseGroups(int* k, float* d, int* bias, float* a, float* scales, float* c, int groups, int g)
    {
        TI magnitude = S.Splat(0x7FFFFFFF), low = S.Splat(0xFF);
        TF m = S.Zero;
        for (int r = 0; r < Quantization.DownRows; r++)
        {
            TF v = S.Mul(S.Splat(a[r]), S.Load(scales + r * groups + g));
            S.Store(c + r * groups + g, v);
            m = S.Max(m, S.AsFloat(S.And(S.AsInt(v), magnitude)));
        }
        TF inverse = S.Select(S.GreaterThan(m, S.Zero), S.Div(S.Splat(127f), m), S.Zero);
        S.Store(d + g, S.Div(m, S.Splat(127f)));
        TI sum = S.Splat(0);
        for (int p = 0; p < DownPairs; p++)
        {
            TI k0 = S.RoundToInt(S.Mul(S.Load(c + 2 * p * groups + g), inverse));
            TI k1 = S.RoundToInt(S.Mul(S.Load(c + (2 * p + 1) * groups + g), inverse));
            sum = S.Add(sum, S.Add(k0, k1));
            TI pair = S.Or(S.And(k0, low), S.ShiftLeft(S.And(k1, low), 8));
            S.Store(k + p * groups + g, S.Or(pair, S.ShiftLeft(pair, 16)));
        }
        S.Store(bias + g, S.Sub(S.Splat(0), S.ShiftLeft(sum, 3)));
    }

    // y[32g + j] += d[g]·(Σ_p the pairs' products for element j + bias[g]), fused, for every group: the pairs' int16 sums
    // (at most 16·15·127 in magnitude) widened to int only once per group.
    private static void AddPairs(float* y, byte* pairs, int* k, float* d, int* bias, int groups)
    {
        int vector = 4 * S.Count; // bytes of pairs per vector: 2·Count elements
        for (int g = 0; g < groups; g++, y += Quantization.Group)
        {
            byte* pg = pairs + g * DownPairs * PairBytes;
            int* kg = k + g;
            TI k0 = S.Splat(kg[0]), k1 = S.Splat(kg[groups]), k2 = S.Splat(kg[2 * groups]), k3 = S.Splat(kg[3 * groups]);
            TI k4 = S.Splat(kg[4 * groups]), k5 = S.Splat(kg[5 * groups]), k6 = S.Splat(kg[6 * groups]), k7 = S.Splat(kg[7 * groups]);
            TI b = S.Splat(bias[g]);
            TF unit = S.Splat(d[g]);
            for (int o = 0; o < PairBytes; o += vector)
            {
                byte* at = pg + o;
                TI sum = S.MulAddPairs(S.Splat(0), S.Load((int*)at), k0);
                sum = S.MulAddPairs(sum, S.Load((int*)(at + PairBytes)), k1);
                sum = S.MulAddPairs(sum, S.Load((int*)(at + 2 * PairBytes)), k2);
                sum = S.MulAddPairs(sum, S.Load((int*)(at + 3 * PairBytes)), k3);
                sum = S.MulAddPairs(sum, S.Load((int*)(at + 4 * PairBytes)), k4);
                sum = S.MulAddPairs(sum, S.Load((int*)(at + 5 * PairBytes)), k5);
                sum = S.MulAddPairs(sum, S.Load((int*)(at + 6 * PairBytes)), k6);
                sum = S.MulAddPairs(sum, S.Load((int*)(at + 7 * PairBytes)), k7);
                var (first, second) = S.WidenShorts(sum);
                float* yo = y + o / 2;
                S.Store(yo, S.FusedMulAdd(unit, S.ToFloat(S.Add(first, b)), S.Load(yo)));
                S.Store(yo + S.Count, S.FusedMulAdd(unit, S.ToFloat(S.Add(second, b)), S.Load(yo + S.Count)));
            }
        }
    }
}
