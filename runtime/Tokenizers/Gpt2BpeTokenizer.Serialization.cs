using System.Buffers.Binary;

namespace AotFlash.Tokenizers;

public sealed partial class Gpt2BpeTokenizer
{
    // Serialised form, little-endian: magic, version, token count, merge count, blob length; then
    // per token a u16 byte length and a u8 flag (1 = special); the token bytes back to back; then per
    // merge, in rank order, i32 left, right and result ids.
    static ReadOnlySpan<byte> Magic => "AFGPT2BP"u8;
    const uint FormatVersion = 1;
    const int HeaderSize = 24;
    const byte SpecialFlag = 1;

    /// <summary>
    /// Reads the form <see cref="Serialize"/> writes (the model file's tokenizer section). A model
    /// may have more ids than tokens (a padded embedding); the ids past the tokens decode to nothing.
    /// </summary>
    /// <exception cref="InvalidDataException">The data is truncated, of another version, or inconsistent.</exception>
    public static Gpt2BpeTokenizer Load(ReadOnlySpan<byte> data, int vocabSize)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(vocabSize);
        if (data.Length < HeaderSize)
            throw new InvalidDataException($"tokenizer: truncated header ({data.Length} of {HeaderSize} bytes).");
        if (!data.StartsWith(Magic))
            throw new InvalidDataException("tokenizer: not a GPT-2 BPE tokenizer (bad magic).");
        uint version = BinaryPrimitives.ReadUInt32LittleEndian(data.Slice(8));
        if (version != FormatVersion)
            throw new InvalidDataException($"tokenizer: format version {version}, this program reads {FormatVersion}.");
        int tokenCount = BinaryPrimitives.ReadInt32LittleEndian(data.Slice(12));
        int mergeCount = BinaryPrimitives.ReadInt32LittleEndian(data.Slice(16));
        int blobLength = BinaryPrimitives.ReadInt32LittleEndian(data.Slice(20));
        if (tokenCount <= 0 || mergeCount < 0 || blobLength < 0)
            throw new InvalidDataException($"tokenizer: bad header ({tokenCount} tokens, {mergeCount} merges, {blobLength} bytes).");
        long expected = HeaderSize + 3L * tokenCount + blobLength + 12L * mergeCount;
        if (data.Length != expected)
            throw new InvalidDataException($"tokenizer: {data.Length} bytes where the header announces {expected}" +
                                           (data.Length < expected ? " (truncated)." : "."));

        ReadOnlySpan<byte> lengths = data.Slice(HeaderSize, 2 * tokenCount);
        ReadOnlySpan<byte> flags = data.Slice(HeaderSize + 2 * tokenCount, tokenCount);
        var offsets = new int[tokenCount + 1];
        var special = new bool[tokenCount];
        int at = 0;
        for (int i = 0; i < tokenCount; i++)
        {
            offsets[i] = at;
            at += BinaryPrimitives.ReadUInt16LittleEndian(lengths.Slice(2 * i));
            if (at > blobLength)
                throw new InvalidDataException($"tokenizer: token {i} ends past the {blobLength} bytes of token text.");
            if (flags[i] > SpecialFlag)
                throw new InvalidDataException($"tokenizer: token {i} has unknown flags 0x{flags[i]:X2}.");
            special[i] = flags[i] == SpecialFlag;
        }
        if (at != blobLength)
            throw new InvalidDataException($"tokenizer: the tokens hold {at} bytes, the header says {blobLength}.");
        offsets[tokenCount] = at;
        int blobStart = HeaderSize + 3 * tokenCount;
        byte[] blob = data.Slice(blobStart, blobLength).ToArray();

        ReadOnlySpan<byte> mergeData = data.Slice(blobStart + blobLength);
        var left = new int[mergeCount];
        var right = new int[mergeCount];
        var result = new int[mergeCount];
        for (int rank = 0; rank < mergeCount; rank++)
        {
            left[rank] = BinaryPrimitives.ReadInt32LittleEndian(mergeData.Slice(12 * rank));
            right[rank] = BinaryPrimitives.ReadInt32LittleEndian(mergeData.Slice(12 * rank + 4));
            result[rank] = BinaryPrimitives.ReadInt32LittleEndian(mergeData.Slice(12 * rank + 8));
        }
        return new Gpt2BpeTokenizer(vocabSize, blob, offsets, special, left, right, result);
    }

    /// <summary>The compact form <see cref="Load"/> reads: token bytes and merges, no JSON.</summary>
    public byte[] Serialize()
    {
        int tokenCount = _special.Length, mergeCount = _mergeLeft.Length;
        var data = new byte[HeaderSize + 3 * tokenCount + _blob.Length + 12 * mergeCount];
        var span = data.AsSpan();
        Magic.CopyTo(span);
        BinaryPrimitives.WriteUInt32LittleEndian(span.Slice(8), FormatVersion);
        BinaryPrimitives.WriteInt32LittleEndian(span.Slice(12), tokenCount);
        BinaryPrimitives.WriteInt32LittleEndian(span.Slice(16), mergeCount);
        BinaryPrimitives.WriteInt32LittleEndian(span.Slice(20), _blob.Length);
        for (int i = 0; i < tokenCount; i++)
        {
            BinaryPrimitives.WriteUInt16LittleEndian(span.Slice(HeaderSize + 2 * i), checked((ushort)(_offsets[i + 1] - _offsets[i])));
            span[HeaderSize + 2 * tokenCount + i] = _special[i] ? SpecialFlag : (byte)0;
        }
        int at = HeaderSize + 3 * tokenCount;
        _blob.CopyTo(span.Slice(at));
        at += _blob.Length;
        for (int rank = 0; rank < mergeCount; rank++, at += 12)
        {
            BinaryPrimitives.WriteInt32LittleEndian(span.Slice(at), _mergeLeft[rank]);
            BinaryPrimitives.WriteInt32LittleEndian(span.Slice(at + 4), _mergeRight[rank]);
            BinaryPrimitives.WriteInt32LittleEndian(span.Slice(at + 8), _mergeResult[rank]);
        }
        return data;
    }
}
