// Writes a llama2.c v0 checkpoint of any shape filled with SYNTHETIC random weights, for speed measurements only
// (the text such a model generates is noise). Run: dotnet run bench/RandomCheckpoint.cs -- OUT dim hidden layers heads kv_heads vocab seq_len
using System.Buffers.Binary;

if (args.Length != 8)
{
    Console.Error.WriteLine("usage: dotnet run bench/RandomCheckpoint.cs -- OUT dim hidden layers heads kv_heads vocab seq_len");
    return 2;
}
string output = args[0];
int[] cfg = args[1..].Select(int.Parse).ToArray();
int dim = cfg[0], hidden = cfg[1], layers = cfg[2], heads = cfg[3], kvHeads = cfg[4], vocab = cfg[5], seq = cfg[6];
int kvDim = dim / heads * kvHeads;
ulong state = 0x2545F4914F6CDD1DUL;

using var file = new BufferedStream(File.Create(output), 1 << 20);
var header = new byte[28];
for (int i = 0; i < 7; i++) BinaryPrimitives.WriteInt32LittleEndian(header.AsSpan(4 * i), cfg[i]);
file.Write(header);

// Uniform in ±scale; scale 1/sqrt(fan-in) keeps activations in a realistic range through the layers.
void Random(long count, float scale)
{
    var buffer = new byte[4096 * 4];
    for (long done = 0; done < count;)
    {
        int n = (int)Math.Min(count - done, 4096);
        for (int i = 0; i < n; i++)
        {
            state ^= state >> 12; state ^= state << 25; state ^= state >> 27;
            float u = ((state * 0x2545F4914F6CDD1DUL) >> 40) / 16777216f;
            BinaryPrimitives.WriteSingleLittleEndian(buffer.AsSpan(4 * i), (2 * u - 1) * scale);
        }
        file.Write(buffer, 0, 4 * n);
        done += n;
    }
}
void Ones(long count)
{
    var one = new byte[4];
    BinaryPrimitives.WriteSingleLittleEndian(one, 1f);
    for (long i = 0; i < count; i++) file.Write(one);
}

float d = 1f / MathF.Sqrt(dim), h = 1f / MathF.Sqrt(hidden);
Random((long)vocab * dim, 1f);                 // token embedding (also the classifier)
Ones((long)layers * dim);                      // rms_att
Random((long)layers * dim * dim, d);           // wq
Random((long)layers * kvDim * dim, d);         // wk
Random((long)layers * kvDim * dim, d);         // wv
Random((long)layers * dim * dim, d);           // wo
Ones((long)layers * dim);                      // rms_ffn
Random((long)layers * hidden * dim, d);        // w1
Random((long)layers * dim * hidden, h);        // w2
Random((long)layers * hidden * dim, d);        // w3
Ones(dim);                                     // rms_final
Random((long)seq * (dim / heads), 1f);         // freq_cis_real, freq_cis_imag (unused by the runtime)
Console.Error.WriteLine($"{output}: synthetic llama2.c checkpoint, dim {dim}, hidden {hidden}, {layers} layers, vocab {vocab}");
return 0;
