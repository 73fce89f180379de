// Writes a llama2.c v0 checkpoint of any shape filled with SYNTHETIC random weights, for speed measurements only
// (the text such a model generates is noise).
//   dotnet run bench/RandomCheckpoint.cs -- OUT dim hidden layers heads kv_heads vocab seq_len [predictable-rank]
// With predictable-rank R, every gate row w1_i is a unit vector made of a rank-R part (shared by the layer) plus 30%
// noise: for an isotropic FFN input x of RMS 1 (RMSNorm with unit weights) the pre-activation w1_i · x is then about
// N(0, 1), so a FATReLU threshold of 1.645 leaves ~5% of neurons active, and a rank-R predictor can foresee which:
// the activation sparsity and predictability of a ReLU-fine-tuned model, on a model of any size.
using System.Buffers.Binary;

if (args.Length is not (8 or 9))
{
    Console.Error.WriteLine("usage: dotnet run bench/RandomCheckpoint.cs -- OUT dim hidden layers heads kv_heads vocab seq_len [predictable-rank]");
    return 2;
}
string output = args[0];
int[] cfg = args[1..8].Select(int.Parse).ToArray();
int dim = cfg[0], hidden = cfg[1], layers = cfg[2], heads = cfg[3], kvHeads = cfg[4], vocab = cfg[5], seq = cfg[6];
int predictableRank = args.Length == 9 ? int.Parse(args[8]) : 0;
int kvDim = dim / heads * kvHeads;
ulong state = 0x2545F4914F6CDD1DUL;

float Uniform()
{
    state ^= state >> 12; state ^= state << 25; state ^= state >> 27;
    return ((state * 0x2545F4914F6CDD1DUL) >> 40) / 16777216f * 2 - 1;
}

using var file = new BufferedStream(File.Create(output), 1 << 22);
var header = new byte[28];
for (int i = 0; i < 7; i++) BinaryPrimitives.WriteInt32LittleEndian(header.AsSpan(4 * i), cfg[i]);
file.Write(header);

var buffer = new byte[1 << 16];
void Write(ReadOnlySpan<float> values)
{
    while (values.Length > 0)
    {
        int n = Math.Min(values.Length, buffer.Length / 4);
        for (int i = 0; i < n; i++) BinaryPrimitives.WriteSingleLittleEndian(buffer.AsSpan(4 * i), values[i]);
        file.Write(buffer, 0, 4 * n);
        values = values[n..];
    }
}
// Uniform in ±scale; scale ~ 1/sqrt(fan-in) keeps activations in a realistic range through the layers.
void Random(long count, float scale)
{
    var chunk = new float[4096];
    for (long done = 0; done < count; done += chunk.Length)
    {
        int n = (int)Math.Min(chunk.Length, count - done);
        for (int i = 0; i < n; i++) chunk[i] = Uniform() * scale;
        Write(chunk.AsSpan(0, n));
    }
}
void Constant(long count, float value)
{
    var chunk = new float[4096];
    Array.Fill(chunk, value);
    for (long done = 0; done < count; done += chunk.Length) Write(chunk.AsSpan(0, (int)Math.Min(chunk.Length, count - done)));
}
// One layer's gate matrix [hidden, dim]: unit rows, rank-R structure plus noise (see above).
void PredictableGate()
{
    var basis = new float[predictableRank * dim];
    for (int i = 0; i < basis.Length; i++) basis[i] = Uniform();
    var row = new float[dim];
    var mix = new float[predictableRank];
    for (int n = 0; n < hidden; n++)
    {
        for (int k = 0; k < predictableRank; k++) mix[k] = Uniform();
        for (int d = 0; d < dim; d++)
        {
            float v = 0;
            for (int k = 0; k < predictableRank; k++) v += mix[k] * basis[k * dim + d];
            row[d] = v;
        }
        float structured = MathF.Sqrt(row.Sum(v => v * v));
        for (int d = 0; d < dim; d++) row[d] = row[d] / structured * 0.95f + Uniform() * 0.3f * MathF.Sqrt(3f / dim);
        float norm = MathF.Sqrt(row.Sum(v => v * v));
        for (int d = 0; d < dim; d++) row[d] /= norm;
        Write(row);
    }
}

float d1 = 1f / MathF.Sqrt(dim), h1 = 1f / MathF.Sqrt(hidden);
Random((long)vocab * dim, 1f);                 // token embedding (also the classifier)
Constant((long)layers * dim, 1f);              // rms_att
Random((long)layers * dim * dim, d1);          // wq
Random((long)layers * kvDim * dim, d1);        // wk
Random((long)layers * kvDim * dim, d1);        // wv
Random((long)layers * dim * dim, d1);          // wo
Constant((long)layers * dim, 1f);              // rms_ffn
for (int l = 0; l < layers; l++)               // w1
{
    if (predictableRank > 0) PredictableGate();
    else Random((long)hidden * dim, d1);
    Console.Error.Write($"\r{output}: gate matrices {l + 1}/{layers}");
}
Console.Error.WriteLine();
Random((long)layers * dim * hidden, h1 * (predictableRank > 0 ? 4f : 1f)); // w2 (larger where few neurons fire)
Random((long)layers * hidden * dim, d1);       // w3
Constant(dim, 1f);                             // rms_final
Random((long)seq * (dim / heads), 1f);         // freq_cis_real, freq_cis_imag (unused by the runtime)
Console.Error.WriteLine($"{output}: SYNTHETIC llama2.c checkpoint, dim {dim}, hidden {hidden}, {layers} layers, vocab {vocab}" +
                        (predictableRank > 0 ? $", gate rows of rank {predictableRank} + noise (for FATReLU 1.645: ~5% active)" : ""));
return 0;
