using AotFlash.Flash;

namespace AotFlash.Convert;

/// <summary>Type tags of GGUF metadata values (and of array elements).</summary>
public enum GgufValueType : uint
{
    UInt8 = 0, Int8 = 1, UInt16 = 2, Int16 = 3, UInt32 = 4, Int32 = 5, Float32 = 6, Bool = 7, String = 8, Array = 9,
    UInt64 = 10, Int64 = 11, Float64 = 12,
}

/// <summary>The tensor element types a GGUF of this project holds (ggml's numbering).</summary>
public enum GgufTensorType : uint { F32 = 0, F16 = 1, Q4_0 = 2, Q8_0 = 8 }

/// <summary>llama.cpp's token types (tokenizer.ggml.token_type).</summary>
public enum GgufTokenType { Normal = 1, Unknown = 2, Control = 3, Byte = 6 }

/// <summary>
/// GGUF version 3, little-endian: "GGUF", u32 version, u64 tensor count, u64 metadata count; each metadata entry a
/// string key, a u32 <see cref="GgufValueType"/> and the value (strings are a u64 byte length and UTF-8 bytes; arrays a
/// u32 element type, a u64 count and the elements); each tensor a string name, u32 dimension count, u64 dimensions
/// innermost (contiguous) first, u32 <see cref="GgufTensorType"/> and u64 offset from the start of the data; then
/// padding to <see cref="Alignment"/> and the data, every tensor aligned to it.
/// </summary>
public static class GgufFormat
{
    public static ReadOnlySpan<byte> Magic => "GGUF"u8;
    public const uint Version = 3;
    /// <summary>general.alignment's default, which files of this project keep (and so do not write).</summary>
    public const int Alignment = 32;
    public const int MaxDimensions = 4;
    /// <summary>Elements per Q8_0 and Q4_0 block: one half-precision scale, then the block's quants.</summary>
    public const int BlockElements = 32;

    /// <summary>general.file_type (llama.cpp's LLAMA_FTYPE_*): the type of most matrices.</summary>
    public static uint FileType(GgufTensorType type) => type switch
    {
        GgufTensorType.F32 => 0,
        GgufTensorType.F16 => 1,
        GgufTensorType.Q4_0 => 2,
        GgufTensorType.Q8_0 => 7,
        _ => throw new ArgumentOutOfRangeException(nameof(type), type, null),
    };

    /// <summary>The weight types and the GGUF tensor types that hold them, one for one (export writes, import reads).</summary>
    private static readonly (WeightType Weights, GgufTensorType Tensor)[] Types =
        [(WeightType.F32, GgufTensorType.F32), (WeightType.F16, GgufTensorType.F16), (WeightType.Q8, GgufTensorType.Q8_0), (WeightType.Q4, GgufTensorType.Q4_0)];

    /// <summary>The GGUF tensor type of a weight type.</summary>
    public static GgufTensorType TensorType(WeightType type) =>
        Array.FindIndex(Types, t => t.Weights == type) is var i and >= 0 ? Types[i].Tensor : throw new ArgumentOutOfRangeException(nameof(type), type, null);

    /// <summary>The weight type a GGUF tensor type holds (one of the four this project reads).</summary>
    public static WeightType WeightTypeOf(GgufTensorType type) =>
        Array.FindIndex(Types, t => t.Tensor == type) is var i and >= 0 ? Types[i].Weights : throw new ArgumentOutOfRangeException(nameof(type), type, null);

    /// <summary>llama.cpp's name, in its llama architecture, of the tensor that <see cref="WeightNames"/> calls
    /// (<paramref name="layer"/>, <paramref name="tensor"/>); null for a name it does not have.</summary>
    public static string? LlamaTensorName(int? layer, string tensor) => (layer, tensor) switch
    {
        (null, "token_embedding") => "token_embd.weight",
        (null, "classifier") => "output.weight",
        (null, "final_norm") => "output_norm.weight",
        ({ } l, "attention_norm") => $"blk.{l}.attn_norm.weight",
        ({ } l, "wq") => $"blk.{l}.attn_q.weight",
        ({ } l, "wk") => $"blk.{l}.attn_k.weight",
        ({ } l, "wv") => $"blk.{l}.attn_v.weight",
        ({ } l, "wo") => $"blk.{l}.attn_output.weight",
        ({ } l, "ffn_norm") => $"blk.{l}.ffn_norm.weight",
        ({ } l, "w1") => $"blk.{l}.ffn_gate.weight",
        ({ } l, "w2") => $"blk.{l}.ffn_down.weight",
        ({ } l, "w3") => $"blk.{l}.ffn_up.weight",
        _ => null,
    };

    /// <summary>general.quantization_version that llama-quantize writes beside quantised tensors.</summary>
    public const uint QuantizationVersion = 2;

    /// <summary>Bytes of a row of <paramref name="n"/> elements; quantised rows hold whole blocks.</summary>
    public static long RowBytes(GgufTensorType type, long n) => type switch
    {
        GgufTensorType.F32 => 4 * n,
        GgufTensorType.F16 => 2 * n,
        GgufTensorType.Q8_0 => Blocks(type, n) * (2 + BlockElements),
        GgufTensorType.Q4_0 => Blocks(type, n) * (2 + BlockElements / 2),
        _ => throw new ArgumentOutOfRangeException(nameof(type), type, null),
    };

    /// <summary>Bytes of a tensor of dimensions <paramref name="dims"/> (innermost first).</summary>
    public static long TensorBytes(GgufTensorType type, IReadOnlyList<long> dims)
    {
        long rows = 1;
        for (int i = 1; i < dims.Count; i++) rows = checked(rows * dims[i]);
        return checked(rows * RowBytes(type, dims[0]));
    }

    /// <summary>Whether a row of <paramref name="n"/> elements can be stored as <paramref name="type"/>.</summary>
    public static bool Fits(GgufTensorType type, long n) =>
        type is GgufTensorType.F32 or GgufTensorType.F16 || n % BlockElements == 0;

    private static long Blocks(GgufTensorType type, long n) => n % BlockElements == 0
        ? n / BlockElements
        : throw new ArgumentException($"{type} rows need a multiple of {BlockElements} elements, not {n}", nameof(n));

    public static long AlignUp(long value) => (value + Alignment - 1) / Alignment * Alignment;

    /// <summary>One row of <paramref name="n"/> elements of <paramref name="type"/> (<see cref="Layout.RowBytes"/>:
    /// all scales, then all quants) as GGUF's blocks (each block's scale, then its quants): the same bytes, moved.</summary>
    public static void ToBlocks(WeightType type, ReadOnlySpan<byte> row, int n, Span<byte> blocks) => Move(type, n, row, blocks, toBlocks: true);

    /// <summary>One row of GGUF blocks as <see cref="Layout.RowBytes"/> lays it out: <see cref="ToBlocks"/> undone.</summary>
    public static void FromBlocks(WeightType type, ReadOnlySpan<byte> blocks, int n, Span<byte> row) => Move(type, n, blocks, row, toBlocks: false);

    private static void Move(WeightType type, int n, ReadOnlySpan<byte> from, Span<byte> to, bool toBlocks)
    {
        if (type is WeightType.F32 or WeightType.F16)
        {
            from[..(int)Layout.RowBytes(type, n)].CopyTo(to);
            return;
        }
        int groups = n / Layout.QuantGroup;
        int quantBytes = type == WeightType.Q8 ? Layout.QuantGroup : Layout.QuantGroup / 2;
        for (int g = 0; g < groups; g++)
        {
            // (scale, quants) of group g: in a row at 2g and 2·groups + g·quantBytes, in blocks at g·(2 + quantBytes).
            int block = g * (2 + quantBytes), scale = 2 * g, quants = 2 * groups + g * quantBytes;
            if (toBlocks)
            {
                from.Slice(scale, 2).CopyTo(to[block..]);
                from.Slice(quants, quantBytes).CopyTo(to[(block + 2)..]);
            }
            else
            {
                from.Slice(block, 2).CopyTo(to[scale..]);
                from.Slice(block + 2, quantBytes).CopyTo(to[quants..]);
            }
        }
    }
}
