using System.Buffers.Binary;
using System.Runtime.InteropServices;
using AotFlash.Flash;
using AotFlash.Kernels;

namespace AotFlash.Sparsity;

/// <summary>
/// One FFN layer's activation predictor (the paper's low-rank predictor): from the layer's FFN input x[Dim] it scores
/// every neuron with score = A · (B · x), A[Hidden, Rank] and B[Rank, Dim] row-major, and predicts neuron i active when
/// score_i &gt; Thresholds[i]. A per-neuron bias is folded into the thresholds (score + b &gt; t ⇔ score &gt; t − b).
/// Cost per token: Rank·Dim + Hidden·Rank multiply-adds. Trained by <see cref="PredictorTrainer"/>.
/// </summary>
/// <remarks>
/// Serialized form (little-endian, <see cref="SerializedLength"/> bytes): "AFLP", u32 version (1), i32 dim, i32 hidden,
/// i32 rank, f32 A[hidden·rank], f32 B[rank·dim], f32 thresholds[hidden], u32 CRC-32C of every byte before it.
/// </remarks>
public sealed unsafe class LowRankPredictor
{
    /// <summary>"AFLP" read as a little-endian u32.</summary>
    public const uint Magic = 0x504C4641;
    public const uint FormatVersion = 1;
    const int HeaderBytes = 20, TrailerBytes = 4;
    /// <summary>Upper bound on each dimension accepted when reading, far above any real model, so a corrupt size fails fast.</summary>
    public const int MaxDimension = 1 << 20;

    public int Dim { get; }
    public int Hidden { get; }
    public int Rank { get; }
    /// <summary>[Hidden, Rank], row-major.</summary>
    public float[] A { get; }
    /// <summary>[Rank, Dim], row-major.</summary>
    public float[] B { get; }
    /// <summary>[Hidden]: neuron i is predicted active when (A·B·x)_i &gt; Thresholds[i].</summary>
    public float[] Thresholds { get; }

    /// <summary>Takes ownership of the arrays (no copy).</summary>
    public LowRankPredictor(int dim, int hidden, int rank, float[] a, float[] b, float[] thresholds)
    {
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(b);
        ArgumentNullException.ThrowIfNull(thresholds);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(dim);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(hidden);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(rank);
        if (a.LongLength != (long)hidden * rank) throw new ArgumentException($"A has {a.LongLength} elements, expected hidden·rank = {(long)hidden * rank}", nameof(a));
        if (b.LongLength != (long)rank * dim) throw new ArgumentException($"B has {b.LongLength} elements, expected rank·dim = {(long)rank * dim}", nameof(b));
        if (thresholds.Length != hidden) throw new ArgumentException($"thresholds has {thresholds.Length} elements, expected hidden = {hidden}", nameof(thresholds));
        Dim = dim;
        Hidden = hidden;
        Rank = rank;
        A = a;
        B = b;
        Thresholds = thresholds;
    }

    /// <summary>Floats of scratch <see cref="Select"/> needs: Hidden for the scores, then Rank for B·x.</summary>
    public int ScratchLength => Hidden + Rank;

    /// <summary>Bytes of <see cref="WriteTo"/>'s output.</summary>
    public long SerializedLength => SizeFor(Dim, Hidden, Rank);

    /// <summary>
    /// Writes the indices of the neurons predicted active for the input x[Dim] into <paramref name="active"/>, in
    /// ascending order, and returns their count. <paramref name="active"/> must hold Hidden entries;
    /// <paramref name="scratch"/> must hold <see cref="ScratchLength"/> floats and may not overlap x. On return
    /// scratch[0..Hidden) holds every neuron's margin score_i − Thresholds[i], positive exactly for the predicted
    /// neurons, so a caller that must drop some of them can keep the largest margins.
    /// </summary>
    public int Select(float* x, Span<int> active, float* scratch)
    {
        if (active.Length < Hidden) throw new ArgumentException($"active has room for {active.Length} indices, needs {Hidden}", nameof(active));
        float* margins = scratch;
        Score(x, margins, scratch + Hidden);
        int count = 0;
        fixed (float* t = Thresholds)
            VectorOps.Axpy(margins, -1f, t, Hidden); // s + (−1·t) rounds once: > 0 exactly when s > t, infinities included
        for (int i = 0; i < Hidden; i++)
            if (margins[i] > 0f) active[count++] = i;
        return count;
    }

    /// <summary>scores[Hidden] = A · (B · x), with z[Rank] as the intermediate: the two products <see cref="Select"/> runs.</summary>
    public void Score(float* x, float* scores, float* z)
    {
        fixed (float* a = A, b = B)
        {
            VectorOps.MatVec(z, b, Dim, x, Rank, Dim);
            VectorOps.MatVec(scores, a, Rank, z, Hidden, Rank);
        }
    }

    public void WriteTo(Stream stream)
    {
        ArgumentNullException.ThrowIfNull(stream);
        var bytes = new byte[SerializedLength];
        Span<byte> s = bytes;
        BinaryPrimitives.WriteUInt32LittleEndian(s, Magic);
        BinaryPrimitives.WriteUInt32LittleEndian(s[4..], FormatVersion);
        BinaryPrimitives.WriteInt32LittleEndian(s[8..], Dim);
        BinaryPrimitives.WriteInt32LittleEndian(s[12..], Hidden);
        BinaryPrimitives.WriteInt32LittleEndian(s[16..], Rank);
        int at = HeaderBytes;
        at += WriteFloats(s[at..], A);
        at += WriteFloats(s[at..], B);
        at += WriteFloats(s[at..], Thresholds);
        BinaryPrimitives.WriteUInt32LittleEndian(s[at..], Crc32C.Compute(s[..at]));
        stream.Write(bytes);
    }

    /// <summary>
    /// Reads a predictor written by <see cref="WriteTo"/> from the start of <paramref name="data"/>;
    /// <paramref name="consumed"/> gets its length in bytes. Throws <see cref="InvalidDataException"/> when the bytes
    /// are truncated, are not a predictor, have an unsupported version or impossible sizes, or fail the checksum.
    /// </summary>
    public static LowRankPredictor ReadFrom(ReadOnlySpan<byte> data, out int consumed)
    {
        if (data.Length < HeaderBytes)
            throw new InvalidDataException($"predictor truncated: {data.Length} bytes, the header alone is {HeaderBytes}");
        uint magic = BinaryPrimitives.ReadUInt32LittleEndian(data);
        if (magic != Magic) throw new InvalidDataException($"not a predictor: magic 0x{magic:X8}, expected 0x{Magic:X8} (\"AFLP\")");
        uint version = BinaryPrimitives.ReadUInt32LittleEndian(data[4..]);
        if (version != FormatVersion) throw new InvalidDataException($"predictor format version {version} is not supported (this build reads version {FormatVersion})");
        int dim = BinaryPrimitives.ReadInt32LittleEndian(data[8..]);
        int hidden = BinaryPrimitives.ReadInt32LittleEndian(data[12..]);
        int rank = BinaryPrimitives.ReadInt32LittleEndian(data[16..]);
        if (dim <= 0 || dim > MaxDimension || hidden <= 0 || hidden > MaxDimension || rank <= 0 || rank > MaxDimension)
            throw new InvalidDataException($"predictor has invalid dimensions dim={dim} hidden={hidden} rank={rank} (each must be 1..{MaxDimension})");
        long aCount = (long)hidden * rank, bCount = (long)rank * dim;
        if (aCount > Array.MaxLength || bCount > Array.MaxLength)
            throw new InvalidDataException($"predictor dimensions dim={dim} hidden={hidden} rank={rank} are too large for one array");
        long size = SizeFor(dim, hidden, rank);
        if (size > data.Length)
            throw new InvalidDataException($"predictor truncated: dim={dim} hidden={hidden} rank={rank} needs {size} bytes, only {data.Length} present");
        int body = (int)size - TrailerBytes;
        uint stored = BinaryPrimitives.ReadUInt32LittleEndian(data[body..]);
        uint actual = Crc32C.Compute(data[..body]);
        if (stored != actual) throw new InvalidDataException($"predictor checksum mismatch: stored 0x{stored:X8}, computed 0x{actual:X8} (corrupt data)");
        int at = HeaderBytes;
        float[] a = ReadFloats(data, ref at, aCount), b = ReadFloats(data, ref at, bCount), thresholds = ReadFloats(data, ref at, hidden);
        consumed = (int)size;
        return new LowRankPredictor(dim, hidden, rank, a, b, thresholds);
    }

    internal static long SizeFor(int dim, int hidden, int rank) =>
        HeaderBytes + 4 * ((long)hidden * rank + (long)rank * dim + hidden) + TrailerBytes;

    static int WriteFloats(Span<byte> dst, float[] values)
    {
        var src = MemoryMarshal.AsBytes(values.AsSpan());
        src.CopyTo(dst);
        if (!BitConverter.IsLittleEndian)
        {
            var words = MemoryMarshal.Cast<byte, uint>(dst[..src.Length]);
            BinaryPrimitives.ReverseEndianness(words, words);
        }
        return src.Length;
    }

    static float[] ReadFloats(ReadOnlySpan<byte> data, ref int at, long count)
    {
        var values = new float[count];
        var bytes = MemoryMarshal.AsBytes(values.AsSpan());
        data.Slice(at, bytes.Length).CopyTo(bytes);
        if (!BitConverter.IsLittleEndian)
        {
            var words = MemoryMarshal.Cast<float, uint>(values.AsSpan());
            BinaryPrimitives.ReverseEndianness(words, words);
        }
        at += bytes.Length;
        return values;
    }
}
