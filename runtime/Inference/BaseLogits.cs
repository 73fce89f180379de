using System.Buffers.Binary;
using System.Runtime.InteropServices;
using AotFlash.Flash;

namespace AotFlash.Inference;

/// <summary>
/// The base distribution of a perplexity run: one mode's next-token logits at every scored position, kept to compare
/// other modes with, and saved so that another binary (the same model with another weight type, which cannot load this
/// binary's model file) is compared at the same positions. The file, little-endian:
/// <code>
///  0  8  magic "AFKLBASE"              8  u32 version (1)
/// 12  4  vocabulary size              16  i32 positions per chunk (the run's context)
/// 20  4  n, the scored tokens         24  n × i32: the scored token ids, in order
///        n × vocabulary × f32: the logits of each scored position
/// last 4 bytes: CRC-32C of everything before them
/// </code>
/// </summary>
public sealed class BaseLogits
{
    private static ReadOnlySpan<byte> Magic => "AFKLBASE"u8;
    private const uint Version = 1;
    private const int HeaderBytes = 24;
    private const int SliceFloats = 1 << 20; // files are read and written this many logits at a time

    private readonly float[] _logits;

    private BaseLogits(int vocab, int context, int[] targets, float[] logits)
    {
        Vocab = vocab;
        Context = context;
        Targets = targets;
        _logits = logits;
    }

    public int Vocab { get; }
    /// <summary>Positions per chunk of the run the logits came from.</summary>
    public int Context { get; }
    /// <summary>The scored tokens, in order.</summary>
    public int[] Targets { get; }

    /// <summary>The logits of scored position <paramref name="index"/>.</summary>
    public Span<float> this[int index] => _logits.AsSpan(index * Vocab, Vocab);

    /// <summary>Room for the logits of every position <paramref name="text"/> scores, to be filled in.</summary>
    public static BaseLogits For(PerplexityText text, int vocab) =>
        new(vocab, text.Context, text.Targets, new float[LogitCount(text.Targets.Length, vocab)]);

    private static int LogitCount(int positions, int vocab)
    {
        long count = (long)positions * vocab;
        if (count > Array.MaxLength)
            throw new BadInputException($"{positions} scored positions of {vocab} logits each are more than one array holds; score fewer tokens");
        return (int)count;
    }

    /// <summary>Writes the file atomically, on the terms of <see cref="AtomicFile.Create"/>.</summary>
    public void Save(string path, bool force, params string[] inputs)
    {
        using var file = AtomicFile.Create(path, force, inputs);
        var header = new byte[HeaderBytes];
        Magic.CopyTo(header);
        BinaryPrimitives.WriteUInt32LittleEndian(header.AsSpan(8), Version);
        BinaryPrimitives.WriteInt32LittleEndian(header.AsSpan(12), Vocab);
        BinaryPrimitives.WriteInt32LittleEndian(header.AsSpan(16), Context);
        BinaryPrimitives.WriteInt32LittleEndian(header.AsSpan(20), Targets.Length);
        long position = 0;
        uint crc = ~0u;
        void Write(ReadOnlySpan<byte> data)
        {
            RandomAccess.Write(file.Handle, data, position);
            crc = Crc32C.Append(crc, data);
            position += data.Length;
        }
        Write(header);
        Write(MemoryMarshal.AsBytes(Targets.AsSpan()));
        for (int at = 0; at < _logits.Length; at += SliceFloats)
            Write(MemoryMarshal.AsBytes(_logits.AsSpan(at, Math.Min(SliceFloats, _logits.Length - at))));
        var tail = new byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(tail, ~crc);
        RandomAccess.Write(file.Handle, tail, position);
        file.Commit();
    }

    /// <summary>Reads a file written by <see cref="Save"/> for a model of <paramref name="vocab"/> tokens; anything else
    /// (another format, a cut or damaged file, another vocabulary) is one <see cref="BadInputException"/>.</summary>
    public static BaseLogits Load(string path, int vocab)
    {
        Libc.RequireRegularFile(path, "a KL base file");
        try
        {
            using var stream = File.OpenRead(path);
            long length = stream.Length;
            var header = new byte[HeaderBytes];
            int got = stream.ReadAtLeast(header, HeaderBytes, throwOnEndOfStream: false);
            if (got < Magic.Length || !header.AsSpan(0, Magic.Length).SequenceEqual(Magic))
                throw new BadInputException($"{path}: not a KL base file (bad magic; write one with --save-kl-base)");
            if (got < HeaderBytes) throw new BadInputException($"{path}: truncated KL base file ({length} bytes)");
            uint version = BinaryPrimitives.ReadUInt32LittleEndian(header.AsSpan(8));
            if (version != Version) throw new BadInputException($"{path}: KL base file version {version}; this build reads version {Version}");
            int fileVocab = BinaryPrimitives.ReadInt32LittleEndian(header.AsSpan(12));
            int context = BinaryPrimitives.ReadInt32LittleEndian(header.AsSpan(16));
            int positions = BinaryPrimitives.ReadInt32LittleEndian(header.AsSpan(20));
            if (fileVocab != vocab)
                throw new BadInputException($"{path}: the KL base is of a vocabulary of {fileVocab} tokens; this model's has {vocab}");
            if (context < 2 || positions < 1)
                throw new BadInputException($"{path}: KL base file header is invalid ({positions} positions in chunks of {context})");
            long expected = HeaderBytes + 4L * positions + 4L * positions * vocab + 4;
            if (length < expected) throw new BadInputException($"{path}: truncated KL base file ({length} of {expected} bytes)");
            if (length > expected) throw new BadInputException($"{path}: KL base file has {length - expected} bytes after its end");

            var targets = new int[positions];
            var logits = new float[LogitCount(positions, vocab)];
            uint crc = Crc32C.Append(~0u, header);
            void Read(Span<byte> data)
            {
                stream.ReadExactly(data);
                crc = Crc32C.Append(crc, data);
            }
            Read(MemoryMarshal.AsBytes(targets.AsSpan()));
            for (int at = 0; at < logits.Length; at += SliceFloats)
                Read(MemoryMarshal.AsBytes(logits.AsSpan(at, Math.Min(SliceFloats, logits.Length - at))));
            var tail = new byte[4];
            stream.ReadExactly(tail);
            if (BinaryPrimitives.ReadUInt32LittleEndian(tail) != ~crc)
                throw new BadInputException($"{path}: KL base file is corrupt (checksum mismatch)");
            return new BaseLogits(vocab, context, targets, logits);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        { throw new BadInputException($"{path}: cannot read KL base file ({e.Message})"); }
    }

    /// <summary>Refuses a base of other positions than <paramref name="text"/> scores (another text, tokenizer, context
    /// or count of tokens): its KL would compare distributions of different contexts.</summary>
    public void RequireSamePositions(PerplexityText text, string source)
    {
        if (Context != text.Context)
            throw new BadInputException($"{source}: the KL base was scored in chunks of {Context} positions, this run in chunks of {text.Context} (give the same --context)");
        if (Targets.Length != text.Targets.Length)
            throw new BadInputException($"{source}: the KL base scored {Targets.Length} tokens, this run scores {text.Targets.Length} " +
                                        "(give the same text and --tokens)");
        int differs = Targets.AsSpan().CommonPrefixLength(text.Targets);
        if (differs < Targets.Length)
            throw new BadInputException($"{source}: the KL base scored other tokens (token {differs} is {Targets[differs]} there, " +
                                        $"{text.Targets[differs]} here): another text or tokenizer");
    }
}
