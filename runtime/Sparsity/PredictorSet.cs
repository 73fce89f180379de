using System.Buffers.Binary;

namespace AotFlash.Sparsity;

/// <summary>
/// The predictors section of a model file: "AFPRED01", u32 layers, f32 target recall, u32 calibration tokens, then
/// one <see cref="LowRankPredictor"/> per layer.
/// </summary>
public sealed class PredictorSet(LowRankPredictor[] layers, float targetRecall, int tokens)
{
    private static ReadOnlySpan<byte> Magic => "AFPRED01"u8;

    public IReadOnlyList<LowRankPredictor> Layers { get; } = layers;
    public float TargetRecall { get; } = targetRecall;
    public int CalibrationTokens { get; } = tokens;

    public byte[] Serialize()
    {
        var stream = new MemoryStream();
        Span<byte> head = stackalloc byte[20];
        Magic.CopyTo(head);
        BinaryPrimitives.WriteUInt32LittleEndian(head[8..], (uint)Layers.Count);
        BinaryPrimitives.WriteSingleLittleEndian(head[12..], TargetRecall);
        BinaryPrimitives.WriteUInt32LittleEndian(head[16..], (uint)CalibrationTokens);
        stream.Write(head);
        foreach (var p in Layers) p.WriteTo(stream);
        return stream.ToArray();
    }

    /// <summary>The longest a valid section can be for a model: every layer's predictor at full rank, min(dim, hidden).
    /// A header that claims more is refused before the section is read.</summary>
    public static long MaxSectionLength(int layers, int dim, int hidden) =>
        20 + layers * LowRankPredictor.SizeFor(dim, hidden, Math.Min(dim, hidden));

    /// <summary>Parses the section and checks every predictor against the model's shape.</summary>
    public static PredictorSet Parse(ReadOnlySpan<byte> data, int layers, int dim, int hidden, string source)
    {
        try
        {
            if (data.Length < 20 || !data[..8].SequenceEqual(Magic)) throw new InvalidDataException("bad magic");
            int count = (int)BinaryPrimitives.ReadUInt32LittleEndian(data[8..]);
            if (count != layers) throw new InvalidDataException($"{count} predictors for {layers} layers");
            float recall = BinaryPrimitives.ReadSingleLittleEndian(data[12..]);
            int tokens = (int)BinaryPrimitives.ReadUInt32LittleEndian(data[16..]);
            var result = new LowRankPredictor[count];
            int at = 20;
            for (int l = 0; l < count; l++)
            {
                result[l] = LowRankPredictor.ReadFrom(data[at..], out int consumed);
                at += consumed;
                if (result[l].Dim != dim || result[l].Hidden != hidden)
                    throw new InvalidDataException($"layer {l}'s predictor is for dim {result[l].Dim}, hidden {result[l].Hidden}");
                if (result[l].Rank > Math.Min(dim, hidden))
                    throw new InvalidDataException($"layer {l}'s predictor has rank {result[l].Rank}, more than min(dim, hidden)");
            }
            if (at != data.Length) throw new InvalidDataException("trailing bytes");
            return new PredictorSet(result, recall, tokens);
        }
        catch (InvalidDataException e)
        {
            throw new BadInputException($"{source}: predictors section is invalid ({e.Message}); run calibrate again");
        }
    }

    /// <summary>Bytes the predictors occupy in DRAM.</summary>
    public long Bytes => Layers.Sum(p => p.SerializedLength);
}
