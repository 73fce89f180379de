// Writes a llama2.c v0 checkpoint of any shape filled with SYNTHETIC random weights, for dense speed measurements
// beside llama2.c, which reads only checkpoints (the text such a model generates is noise). Flash-mode benchmarks
// generate their weights straight into the model file instead ('convert --synthetic', bench/synthetic.sh).
//   dotnet run bench/RandomCheckpoint.cs -- OUT dim hidden layers heads kv_heads vocab seq_len
using System.Buffers.Binary;

if (args.Length != 8)
{
    Console.Error.WriteLine("usage: dotnet run bench/RandomCheckpoint.cs -- OUT dim hidden layers heads kv_heads vocab seq_len");
    return 2;
}
string output = args[0];
int[] cfg = args[1..8].Select(int.Parse).ToArray();
int dim = cfg[0], hidden = cfg[1], layers = cfg[2], heads = cfg[3], kvHeads = cfg[4], vocab = cfg[5], seq = cfg[6];
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
float d1 = 1f / MathF.Sqrt(dim), h1 = 1f / MathF.Sqrt(hidden);
Random((long)vocab * dim, 1f);                 // token embedding (also the classifier)
Constant((long)layers * dim, 1f);              // rms_att
Random((long)layers * dim * dim, d1);          // wq
Random((long)layers * kvDim * dim, d1);        // wk
Random((long)layers * kvDim * dim, d1);        // wv
Random((long)layers * dim * dim, d1);          // wo
Constant((long)layers * dim, 1f);              // rms_ffn
Random((long)layers * hidden * dim, d1);       // w1
Random((long)layers * dim * hidden, h1);       // w2
Random((long)layers * hidden * dim, d1);       // w3
Constant(dim, 1f);                             // rms_final
Random((long)seq * (dim / heads), 1f);         // freq_cis_real, freq_cis_imag (unused by the runtime)
Console.Error.WriteLine($"{output}: SYNTHETIC llama2.c checkpoint, dim {dim}, hidden {hidden}, {layers} layers, vocab {vocab}");
return 0;
