namespace AotFlash.Convert;

/// <summary>
/// One GGUF metadata value. <see cref="Value"/> is the CLR value of its type: byte, sbyte, ushort, short, uint, int,
/// float, bool, ulong, long, double or string; an array is a CLR array of its element type (string[], float[], int[],
/// …), and an array of arrays a <see cref="GgufValue"/>[].
/// </summary>
public sealed record GgufValue(GgufValueType Type, object Value, GgufValueType ElementType = GgufValueType.UInt8)
{
    public static GgufValue UInt32(uint value) => new(GgufValueType.UInt32, value);
    public static GgufValue Float32(float value) => new(GgufValueType.Float32, value);
    public static GgufValue String(string value) => new(GgufValueType.String, value);
    public static GgufValue Array(string[] values) => new(GgufValueType.Array, values, GgufValueType.String);
    public static GgufValue Array(float[] values) => new(GgufValueType.Array, values, GgufValueType.Float32);
    public static GgufValue Array(int[] values) => new(GgufValueType.Array, values, GgufValueType.Int32);

    /// <summary>Bytes of one element of a fixed-size type; 0 for strings and arrays.</summary>
    public static int FixedSize(GgufValueType type) => type switch
    {
        GgufValueType.UInt8 or GgufValueType.Int8 or GgufValueType.Bool => 1,
        GgufValueType.UInt16 or GgufValueType.Int16 => 2,
        GgufValueType.UInt32 or GgufValueType.Int32 or GgufValueType.Float32 => 4,
        GgufValueType.UInt64 or GgufValueType.Int64 or GgufValueType.Float64 => 8,
        GgufValueType.String or GgufValueType.Array => 0,
        _ => throw new ArgumentOutOfRangeException(nameof(type), type, null),
    };

    /// <summary>The value as text for messages: arrays by their type and length.</summary>
    public override string ToString() => Value is System.Array a ? $"{ElementType}[{a.Length}]" : $"{Type} {Value}";
}

/// <summary>One tensor of a GGUF file: dimensions innermost first, and its data's offset from the start of the data.</summary>
public sealed record GgufTensorInfo(string Name, long[] Dims, GgufTensorType Type, long Offset)
{
    public long Bytes => GgufFormat.TensorBytes(Type, Dims);
    public long Elements => Dims.Aggregate(1L, (n, d) => n * d);
    public override string ToString() => $"{Name} [{string.Join(", ", Dims)}] {Type}";
}
