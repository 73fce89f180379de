using System.Buffers.Binary;
using System.Text;

namespace AotFlash.Tokenizers;

/// <summary>
/// A SentencePiece <c>.model</c> file (the <c>tokenizer.model</c> of Llama checkpoints) turned into the llama2.c
/// tokenizer the runtime reads, exactly as llama2.c's <c>tokenizer.py</c> exports it: each piece with its score, '▁'
/// written as a space, BOS and EOS as "\n&lt;s&gt;\n" and "\n&lt;/s&gt;\n". The file is a protobuf <c>ModelProto</c>; only
/// its pieces (field 1: piece = 1, score = 2) and the trainer spec's bos_id / eos_id (field 2: 41, 42) are read.
/// </summary>
public static class SentencePieceModel
{
    private const int BosDefault = 1, EosDefault = 2;
    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    /// <exception cref="InvalidDataException">The bytes are not a SentencePiece model.</exception>
    public static byte[] ToLlama2c(ReadOnlySpan<byte> model)
    {
        var pieces = new List<(string Piece, float Score)>();
        long bos = BosDefault, eos = EosDefault;
        var reader = new ProtoReader(model);
        while (reader.Next(out int field, out int wire))
        {
            if (field == 1 && wire == ProtoReader.LengthDelimited) pieces.Add(ReadPiece(reader.Bytes()));
            else if (field == 2 && wire == ProtoReader.LengthDelimited)
            {
                var trainer = new ProtoReader(reader.Bytes());
                while (trainer.Next(out int f, out int w))
                {
                    if (f == 41 && w == ProtoReader.VarintType) bos = (long)trainer.Varint();
                    else if (f == 42 && w == ProtoReader.VarintType) eos = (long)trainer.Varint();
                    else trainer.Skip(w);
                }
            }
            else reader.Skip(wire);
        }
        if (pieces.Count == 0) throw new InvalidDataException("tokenizer: not a SentencePiece model (it holds no pieces)");
        return Llama2cBytes(pieces, bos, eos);
    }

    /// <summary>SentencePiece pieces (spaces as '▁') and scores as llama2.c's tokenizer.bin: the longest piece's byte
    /// length, then each piece's score, byte length and UTF-8 bytes, '▁' written as a space and the pieces of
    /// <paramref name="bos"/> and <paramref name="eos"/> as "\n&lt;s&gt;\n" and "\n&lt;/s&gt;\n".</summary>
    internal static byte[] Llama2cBytes(IReadOnlyList<(string Piece, float Score)> pieces, long bos, long eos)
    {
        var tokens = new byte[pieces.Count][];
        for (int i = 0; i < pieces.Count; i++)
        {
            string text = i == bos ? "\n<s>\n" : i == eos ? "\n</s>\n" : pieces[i].Piece.Replace('\u2581', ' ');
            tokens[i] = Encoding.UTF8.GetBytes(text);
        }
        int maxLength = tokens.Max(t => t.Length);
        var output = new byte[4 + tokens.Sum(t => 8 + t.Length)];
        BinaryPrimitives.WriteInt32LittleEndian(output, maxLength);
        int at = 4;
        for (int i = 0; i < tokens.Length; i++)
        {
            BinaryPrimitives.WriteSingleLittleEndian(output.AsSpan(at), pieces[i].Score);
            BinaryPrimitives.WriteInt32LittleEndian(output.AsSpan(at + 4), tokens[i].Length);
            tokens[i].CopyTo(output, at + 8);
            at += 8 + tokens[i].Length;
        }
        return output;
    }

    private static (string, float) ReadPiece(ReadOnlySpan<byte> message)
    {
        string? piece = null;
        float score = 0f;
        var reader = new ProtoReader(message);
        while (reader.Next(out int field, out int wire))
        {
            if (field == 1 && wire == ProtoReader.LengthDelimited)
            {
                try { piece = StrictUtf8.GetString(reader.Bytes()); }
                catch (DecoderFallbackException) { throw new InvalidDataException("tokenizer: a SentencePiece piece is not UTF-8"); }
            }
            else if (field == 2 && wire == ProtoReader.Fixed32Type) score = BinaryPrimitives.ReadSingleLittleEndian(reader.Fixed32());
            else reader.Skip(wire);
        }
        return (piece ?? throw new InvalidDataException("tokenizer: a SentencePiece entry has no piece"), score);
    }

    /// <summary>Just enough of the protobuf wire format: tags, varints, fixed 32/64-bit values and length-delimited bytes.</summary>
    private ref struct ProtoReader(ReadOnlySpan<byte> data)
    {
        public const int VarintType = 0, Fixed64Type = 1, LengthDelimited = 2, Fixed32Type = 5;
        private readonly ReadOnlySpan<byte> _data = data;
        private int _at;

        public bool Next(out int field, out int wire)
        {
            field = wire = 0;
            if (_at == _data.Length) return false;
            ulong tag = Varint();
            field = (int)(tag >> 3);
            wire = (int)(tag & 7);
            if (field == 0) throw Corrupt("field 0");
            return true;
        }

        public ulong Varint()
        {
            ulong value = 0;
            for (int shift = 0; shift < 64; shift += 7)
            {
                if (_at == _data.Length) throw Corrupt("a truncated number");
                byte b = _data[_at++];
                value |= (ulong)(b & 0x7F) << shift;
                if (b < 0x80) return value;
            }
            throw Corrupt("a number longer than 10 bytes");
        }

        public ReadOnlySpan<byte> Bytes()
        {
            ulong length = Varint();
            if (length > (ulong)(_data.Length - _at)) throw Corrupt("a length past the end");
            var bytes = _data.Slice(_at, (int)length);
            _at += (int)length;
            return bytes;
        }

        public ReadOnlySpan<byte> Fixed32() => Take(4);

        public void Skip(int wire)
        {
            switch (wire)
            {
                case VarintType: Varint(); break;
                case Fixed64Type: Take(8); break;
                case LengthDelimited: Bytes(); break;
                case Fixed32Type: Take(4); break;
                default: throw Corrupt($"wire type {wire}");
            }
        }

        private ReadOnlySpan<byte> Take(int n)
        {
            if (_data.Length - _at < n) throw Corrupt("a value past the end");
            var bytes = _data.Slice(_at, n);
            _at += n;
            return bytes;
        }

        private static InvalidDataException Corrupt(string what) =>
            new($"tokenizer: not a SentencePiece model or damaged ({what} in its protobuf)");
    }
}
