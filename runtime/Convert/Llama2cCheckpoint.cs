using System.Buffers.Binary;
using AotFlash.Flash;
using AotFlash.Inference;
using Microsoft.Win32.SafeHandles;

namespace AotFlash.Convert;

/// <summary>
/// A llama2.c checkpoint, memory-mapped (never read into managed memory). Two formats:
/// <list type="bullet">
/// <item>v0 ("legacy"): 7 × i32 header (dim, hidden_dim, layers, heads, kv_heads, vocab — negative when the classifier
/// is separate — seq_len), then f32 token_embedding, rms_att, wq, wk, wv, wo, rms_ffn, w1, w2, w3, rms_final,
/// freq_cis_real, freq_cis_imag, [classifier].</item>
/// <item>v1: 256-byte header (u32 magic "ak42", i32 version 1, the 7 i32 above with a positive vocab, u8 shared
/// classifier), then f32 rms_att, rms_ffn, rms_final, token_embedding, wq, wk, wv, wo, w1, w2, w3, [classifier].</item>
/// </list>
/// </summary>
public sealed unsafe class Llama2cCheckpoint : IWeightSource
{
    private const uint V1Magic = 0x616b3432;
    private readonly void* _map;
    private readonly long _length;
    private readonly float* _tokenEmbedding, _rmsAtt, _wq, _wk, _wv, _wo, _rmsFfn, _w1, _w2, _w3, _rmsFinal, _classifier;

    public int Version { get; }
    /// <summary>The header's shape: seq_len is the context, a shared classifier means tied embeddings; always f32.</summary>
    public ModelShape Shape { get; }

    private Llama2cCheckpoint(string path)
    {
        Path = path;
        using SafeFileHandle handle = OpenFile(path);
        _length = RandomAccess.GetLength(handle);
        Span<byte> h = stackalloc byte[256];
        h.Clear();
        RandomAccess.Read(handle, h, 0);
        long offset;
        int dim, hidden, layers, heads, kvHeads, vocab, seqLen;
        bool shared;
        if (_length >= 256 && BinaryPrimitives.ReadUInt32LittleEndian(h) == V1Magic)
        {
            Version = BinaryPrimitives.ReadInt32LittleEndian(h[4..]);
            if (Version != 1)
                throw new BadInputException($"{path}: llama2.c checkpoint version {Version} is not supported (only v0 and v1 float32)");
            (dim, hidden, layers, heads, kvHeads, vocab, seqLen) = ReadConfig(h[8..]);
            shared = h[36] != 0;
            offset = 256;
        }
        else
        {
            if (_length < 28) throw new BadInputException($"{path}: too short for a llama2.c checkpoint ({_length} bytes)");
            (dim, hidden, layers, heads, kvHeads, vocab, seqLen) = ReadConfig(h);
            shared = vocab > 0;
            if (vocab != int.MinValue) vocab = Math.Abs(vocab); // int.MinValue has none: it stays negative, implausible below
            offset = 28;
        }
        if (dim <= 0 || hidden <= 0 || layers <= 0 || heads <= 0 || kvHeads <= 0 || vocab <= 0 || seqLen <= 0
            || dim % heads != 0 || heads % kvHeads != 0 || dim / heads % 2 != 0)
            throw new BadInputException($"{path}: not a llama2.c checkpoint (implausible header: dim {dim}, hidden {hidden}, " +
                                        $"layers {layers}, heads {heads}, kv_heads {kvHeads}, vocab {vocab}, seq_len {seqLen})");
        Shape = new ModelShape(dim, hidden, layers, heads, kvHeads, vocab, seqLen, WeightType.F32, tiedEmbeddings: shared);

        long d = dim, l = layers, kv = Shape.KvDim, hd = hidden, v = vocab;
        Int128 expected = offset + Floats(d, hd, l, heads, kv, v, seqLen, shared, Version) * 4;
        if (_length != expected)
            throw new BadInputException($"{path}: {(_length < expected ? "truncated" : "unexpected size for")} llama2.c v{Version} checkpoint " +
                                        $"({_length} bytes, its header implies {expected})");

        _map = Libc.mmap(null, (nuint)_length, Libc.ProtRead, Libc.MapPrivate, (int)handle.DangerousGetHandle(), 0);
        if (_map == Libc.MapFailed) throw new IOException($"{path}: cannot map the checkpoint");
        float* p = (float*)((byte*)_map + offset);
        float* Take(long n) { float* t = p; p += n; return t; }
        if (Version == 0)
        {
            _tokenEmbedding = Take(v * d); _rmsAtt = Take(l * d); _wq = Take(l * d * d); _wk = Take(l * kv * d); _wv = Take(l * kv * d);
            _wo = Take(l * d * d); _rmsFfn = Take(l * d); _w1 = Take(l * hd * d); _w2 = Take(l * d * hd); _w3 = Take(l * hd * d);
            _rmsFinal = Take(d);
            Take(seqLen * (d / heads)); // freq_cis_real and _imag: RoPE is computed, not read
        }
        else
        {
            _rmsAtt = Take(l * d); _rmsFfn = Take(l * d); _rmsFinal = Take(d); _tokenEmbedding = Take(v * d);
            _wq = Take(l * d * d); _wk = Take(l * kv * d); _wv = Take(l * kv * d); _wo = Take(l * d * d);
            _w1 = Take(l * hd * d); _w2 = Take(l * d * hd); _w3 = Take(l * hd * d);
        }
        _classifier = shared ? _tokenEmbedding : Take(v * d);
    }

    public static Llama2cCheckpoint Open(string path) => new(path);

    /// <summary>The float32 values a checkpoint with this header holds; in 128 bits, so that the size a lying header
    /// implies (dim 2^30) cannot wrap around.</summary>
    private static Int128 Floats(Int128 d, Int128 hd, Int128 l, Int128 heads, Int128 kv, Int128 v, Int128 seqLen, bool shared, int version) =>
        v * d + 2 * l * d + d + l * (2 * d * d + 2 * kv * d + 3 * hd * d) + (shared ? 0 : v * d) + (version == 0 ? seqLen * (d / heads) : 0);

    /// <summary>Where the checkpoint was read from (for error messages).</summary>
    public string Path { get; }

    /// <summary>Fails with every difference between this checkpoint's header and the model's spec.</summary>
    public void CheckFits(ModelInfo info)
    {
        var fit = new SpecFit(info, Path);
        fit.CheckShape(ModelFamily.Llama, Shape);
        if (Shape.TiedEmbeddings != info.Shape.TiedEmbeddings)
            fit.Mismatch(Shape.TiedEmbeddings ? "a shared classifier (spec: tie_embeddings false)" : "a separate classifier (spec: tie_embeddings true)");
        fit.ThrowIfUnfit(Shape.Context);
    }

    public ReadOnlySpan<float> Read(string name, int rows, int cols)
    {
        var (layer, tensor) = WeightNames.Split(name);
        float* p = (layer, tensor) switch
        {
            (null, "token_embedding") => TokenEmbedding,
            (null, "classifier") => Classifier,
            (null, "final_norm") => RmsFinal,
            ({ } l, "attention_norm") => RmsAtt(l),
            ({ } l, "wq") => Wq(l),
            ({ } l, "wk") => Wk(l),
            ({ } l, "wv") => Wv(l),
            ({ } l, "wo") => Wo(l),
            ({ } l, "ffn_norm") => RmsFfn(l),
            ({ } l, "w1") => W1(l),
            ({ } l, "w2") => W2(l),
            ({ } l, "w3") => W3(l),
            _ => throw new BadInputException($"{Path}: a llama2.c checkpoint has no tensor '{name}'"),
        };
        // The header was checked against the spec, so the model's [rows, cols] is this tensor's shape.
        return new ReadOnlySpan<float>(p, checked(rows * cols));
    }

    private static SafeFileHandle OpenFile(string path)
    {
        Libc.RequireRegularFile(path, "a checkpoint file");
        try { return File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.Read); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        { throw new BadInputException($"{path}: cannot open checkpoint ({e.Message})"); }
    }

    private static (int, int, int, int, int, int, int) ReadConfig(ReadOnlySpan<byte> h)
    {
        var v = new int[7];
        for (int i = 0; i < v.Length; i++) v[i] = BinaryPrimitives.ReadInt32LittleEndian(h[(4 * i)..]);
        return (v[0], v[1], v[2], v[3], v[4], v[5], v[6]);
    }

    public float* TokenEmbedding => _tokenEmbedding;
    public float* Classifier => _classifier;
    public float* RmsFinal => _rmsFinal;
    public float* RmsAtt(int layer) => _rmsAtt + (long)layer * Shape.Dim;
    public float* RmsFfn(int layer) => _rmsFfn + (long)layer * Shape.Dim;
    public float* Wq(int layer) => _wq + (long)layer * Shape.Dim * Shape.Dim;
    public float* Wk(int layer) => _wk + (long)layer * Shape.KvDim * Shape.Dim;
    public float* Wv(int layer) => _wv + (long)layer * Shape.KvDim * Shape.Dim;
    public float* Wo(int layer) => _wo + (long)layer * Shape.Dim * Shape.Dim;
    /// <summary>Gate projection [hidden, dim].</summary>
    public float* W1(int layer) => _w1 + (long)layer * Shape.HiddenDim * Shape.Dim;
    /// <summary>Down projection [dim, hidden].</summary>
    public float* W2(int layer) => _w2 + (long)layer * Shape.Dim * Shape.HiddenDim;
    /// <summary>Up projection [hidden, dim].</summary>
    public float* W3(int layer) => _w3 + (long)layer * Shape.HiddenDim * Shape.Dim;

    public void Dispose() => Libc.munmap(_map, (nuint)_length);
}
