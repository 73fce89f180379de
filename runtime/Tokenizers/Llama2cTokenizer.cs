using System.Buffers;
using System.Buffers.Binary;
using System.Runtime.CompilerServices;

namespace AotFlash.Tokenizers;

/// <summary>
/// The tokenizer of llama2.c (<c>tokenizer.bin</c>): a SentencePiece-style BPE vocabulary of byte
/// strings with merge scores. <see cref="Encode"/> and <see cref="Decode"/> reproduce run.c's
/// <c>encode</c> and <c>decode</c> exactly, except that any byte sequence is accepted (NUL bytes,
/// invalid UTF-8) and byte-fallback tokens are found by their text <c>&lt;0xXX&gt;</c> rather than
/// assumed to sit at id byte+3. Immutable after <see cref="Load"/>; safe to use from several threads.
/// </summary>
public sealed class Llama2cTokenizer : ITokenizer
{
    // run.c starts its best score at -1e10 and takes a merge only when its score is strictly greater.
    const float NoMergeScore = -1e10f;

    readonly byte[] _blob;      // every piece, back to back
    readonly int[] _offsets;    // piece i is _blob[_offsets[i] .. _offsets[i + 1])
    readonly float[] _scores;
    readonly int[] _byteIds;    // id of the piece "<0xXX>" for byte XX, or -1 when the vocabulary has none
    readonly int[] _table;      // open addressing: 0 = empty, else token id + 1 (first id wins on duplicates)
    readonly int _tableMask;
    readonly int _longestPiece;

    static readonly byte[] s_singleBytes = CreateSingleBytes();

    Llama2cTokenizer(byte[] blob, int[] offsets, float[] scores, int maxTokenLength)
    {
        _blob = blob;
        _offsets = offsets;
        _scores = scores;
        MaxTokenLength = maxTokenLength;
        int n = scores.Length;

        int size = 16;
        while (size < n * 2) size <<= 1;
        _table = new int[size];
        _tableMask = size - 1;
        _byteIds = new int[256];
        Array.Fill(_byteIds, -1);

        for (int id = 0; id < n; id++)
        {
            ReadOnlySpan<byte> piece = Piece(id);
            _longestPiece = Math.Max(_longestPiece, piece.Length);
            int slot = (int)Hash(piece) & _tableMask;
            bool duplicate = false;
            while (_table[slot] != 0)
            {
                if (Piece(_table[slot] - 1).SequenceEqual(piece)) { duplicate = true; break; }
                slot = (slot + 1) & _tableMask;
            }
            if (!duplicate) _table[slot] = id + 1;
            if (TryParseBytePiece(piece, out byte b) && _byteIds[b] < 0) _byteIds[b] = id;
        }
    }

    /// <summary>Number of tokens.</summary>
    public int VocabSize => _scores.Length;

    /// <summary>The longest piece (at least 1: a byte-fallback or unknown token stands for one byte).</summary>
    public int LongestTokenBytes => Math.Max(1, _longestPiece);

    /// <summary>The <c>max_token_length</c> field of the file header (as written by the exporter).</summary>
    public int MaxTokenLength { get; }

    /// <summary>
    /// Parses llama2.c's format: int32 max_token_length, then for each token a float32 score, an
    /// int32 byte length and the bytes (little-endian). Reads exactly <paramref name="vocabSize"/>
    /// tokens; bytes after them are ignored, as run.c does.
    /// </summary>
    /// <exception cref="InvalidDataException">The data is truncated or malformed.</exception>
    public static Llama2cTokenizer Load(ReadOnlySpan<byte> data, int vocabSize)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(vocabSize);
        if (data.Length < 4)
            throw new InvalidDataException($"tokenizer: truncated header ({data.Length} of 4 bytes).");
        int maxTokenLength = BinaryPrimitives.ReadInt32LittleEndian(data);
        if (maxTokenLength < 0)
            throw new InvalidDataException($"tokenizer: negative max_token_length {maxTokenLength}.");

        var scores = new float[vocabSize];
        var offsets = new int[vocabSize + 1];
        int pos = 4;
        long total = 0;
        // First pass: validate and measure, so the blob is allocated once.
        for (int i = 0; i < vocabSize; i++)
        {
            if (data.Length - pos < 8)
                throw new InvalidDataException($"tokenizer: truncated at token {i} of {vocabSize}.");
            scores[i] = BinaryPrimitives.ReadSingleLittleEndian(data.Slice(pos));
            int len = BinaryPrimitives.ReadInt32LittleEndian(data.Slice(pos + 4));
            if (len < 0)
                throw new InvalidDataException($"tokenizer: token {i} has negative length {len}.");
            pos += 8;
            if (data.Length - pos < len)
                throw new InvalidDataException($"tokenizer: truncated at token {i} of {vocabSize} ({len} bytes declared, {data.Length - pos} left).");
            offsets[i] = pos; // temporarily the position in data
            pos += len;
            total += len;
        }

        var blob = new byte[total];
        int at = 0;
        for (int i = 0; i < vocabSize; i++)
        {
            int src = offsets[i];
            int len = BinaryPrimitives.ReadInt32LittleEndian(data.Slice(src - 4));
            data.Slice(src, len).CopyTo(blob.AsSpan(at));
            offsets[i] = at;
            at += len;
        }
        offsets[vocabSize] = at;
        return new Llama2cTokenizer(blob, offsets, scores, maxTokenLength);
    }

    /// <summary>The raw bytes of a token's piece.</summary>
    public ReadOnlySpan<byte> Piece(int token)
    {
        if ((uint)token >= (uint)_scores.Length)
            throw new ArgumentOutOfRangeException(nameof(token), token, $"Token id must be in [0, {_scores.Length}).");
        return new ReadOnlySpan<byte>(_blob, _offsets[token], _offsets[token + 1] - _offsets[token]);
    }

    /// <summary>The merge score of a token.</summary>
    public float Score(int token)
    {
        if ((uint)token >= (uint)_scores.Length)
            throw new ArgumentOutOfRangeException(nameof(token), token, $"Token id must be in [0, {_scores.Length}).");
        return _scores[token];
    }

    /// <summary>
    /// The id of the piece equal to <paramref name="piece"/>, or -1 (the first id when the
    /// vocabulary holds the same piece twice).
    /// </summary>
    public int Lookup(ReadOnlySpan<byte> piece)
    {
        if (piece.Length > _longestPiece) return -1;
        int slot = (int)Hash(piece) & _tableMask;
        while (true)
        {
            int e = _table[slot];
            if (e == 0) return -1;
            int id = e - 1;
            if (_offsets[id + 1] - _offsets[id] == piece.Length
                && new ReadOnlySpan<byte>(_blob, _offsets[id], piece.Length).SequenceEqual(piece))
                return id;
            slot = (slot + 1) & _tableMask;
        }
    }

    /// <summary>
    /// run.c's <c>encode</c>: optional <paramref name="bos"/>, then (for non-empty text) the dummy
    /// prefix " ", then one token per UTF-8 code point (a lead byte plus up to 3 continuation bytes,
    /// any bytes accepted) or its byte-fallback tokens (<c>&lt;0xXX&gt;</c>, or 0 = unk when the
    /// vocabulary has none), then repeated merges of the adjacent pair whose concatenation is in the
    /// vocabulary with the highest score (the first such pair on ties).
    /// </summary>
    public int[] Encode(ReadOnlySpan<byte> utf8, bool addBos, int bos)
    {
        if (addBos && (uint)bos >= (uint)_scores.Length)
            throw new ArgumentOutOfRangeException(nameof(bos), bos, $"BOS id must be in [0, {_scores.Length}).");

        var tokens = new int[utf8.Length + 2];
        int n = 0;
        if (addBos) tokens[n++] = bos;

        if (!utf8.IsEmpty)
            n = AddCodePoint(" "u8, tokens, n);

        for (int i = 0; i < utf8.Length;)
        {
            int len = 1;
            while (len < 4 && i + len < utf8.Length && (utf8[i + len] & 0xC0) == 0x80) len++;
            n = AddCodePoint(utf8.Slice(i, len), tokens, n);
            i += len;
        }

        if (n >= 2) n = Merge(tokens, n);
        return tokens.AsSpan(0, n).ToArray();
    }

    int AddCodePoint(ReadOnlySpan<byte> cp, int[] tokens, int n)
    {
        int id = Lookup(cp);
        if (id >= 0)
        {
            tokens[n++] = id;
        }
        else
        {
            foreach (byte b in cp)
            {
                int bid = _byteIds[b];
                tokens[n++] = bid >= 0 ? bid : 0;
            }
        }
        return n;
    }

    int Merge(int[] tokens, int n)
    {
        // run.c merges, while any pair applies, the adjacent pair whose merged piece has the strictly greatest score
        // above -1e10, the first on ties. Here symbols sit at their first token's index and a merged symbol keeps its
        // left index, so positions stay in text order, and a queue of (score, position) finds each merge in O(log n)
        // instead of run.c's scan of every pair (quadratic in the prompt); entries whose pair has changed since they were
        // queued are skipped when popped. tokens[i] = -1 once symbol i is merged into its left neighbour.
        int[] links = ArrayPool<int>.Shared.Rent(2 * n);
        // Each merge queues at most two pairs onto the n - 1 it starts with.
        long[] heap = ArrayPool<long>.Shared.Rent(3 * n);
        byte[]? longPieces = _longestPiece > 1024 ? new byte[_longestPiece] : null;
        Span<byte> scratch = longPieces is not null ? longPieces : stackalloc byte[1024];
        try
        {
            Span<int> next = links.AsSpan(0, n), prev = links.AsSpan(n, n);
            int queued = 0;
            for (int i = 0; i < n; i++)
            {
                prev[i] = i - 1;
                next[i] = i + 1 < n ? i + 1 : -1;
            }
            for (int i = 0; i + 1 < n; i++) Queue(heap, ref queued, tokens[i], tokens[i + 1], i, scratch);

            while (queued > 0)
            {
                var (priority, pos) = MergeQueue.Pop(heap, ref queued);
                int right = next[pos];
                if (tokens[pos] < 0 || right < 0) continue;
                int merged = LookupPair(tokens[pos], tokens[right], scratch, out float score);
                if (merged < 0 || !Merges(score) || Priority(score) != priority) continue;

                tokens[pos] = merged;
                tokens[right] = -1;
                int after = next[right];
                next[pos] = after;
                if (after >= 0) prev[after] = pos;
                if (prev[pos] >= 0) Queue(heap, ref queued, tokens[prev[pos]], tokens[pos], prev[pos], scratch);
                if (after >= 0) Queue(heap, ref queued, tokens[pos], tokens[after], pos, scratch);
            }

            int count = 0;
            for (int i = 0; i >= 0; i = next[i]) tokens[count++] = tokens[i];
            return count;
        }
        finally
        {
            ArrayPool<int>.Shared.Return(links);
            ArrayPool<long>.Shared.Return(heap);
        }
    }

    /// <summary>Queues the pair (<paramref name="a"/>, <paramref name="b"/>) at <paramref name="pos"/> when it merges.</summary>
    void Queue(long[] heap, ref int queued, int a, int b, int pos, Span<byte> scratch)
    {
        if (LookupPair(a, b, scratch, out float score) >= 0 && Merges(score)) MergeQueue.Push(heap, ref queued, Priority(score), pos);
    }

    /// <summary>run.c takes a merge only when its score beats -1e10 (so never a NaN).</summary>
    static bool Merges(float score) => score > NoMergeScore;

    /// <summary>The queue's priority of a score: greater scores first, equal scores (+0 and -0 too) equal.</summary>
    static uint Priority(float score)
    {
        uint bits = BitConverter.SingleToUInt32Bits(score == 0f ? 0f : score);
        uint ascending = (bits & 0x8000_0000u) != 0 ? ~bits : bits | 0x8000_0000u;
        return ~ascending;
    }

    int LookupPair(int a, int b, Span<byte> scratch, out float score)
    {
        int la = _offsets[a + 1] - _offsets[a];
        int lb = _offsets[b + 1] - _offsets[b];
        score = NoMergeScore;
        if (la + lb > _longestPiece) return -1;
        _blob.AsSpan(_offsets[a], la).CopyTo(scratch);
        _blob.AsSpan(_offsets[b], lb).CopyTo(scratch.Slice(la));
        int id = Lookup(scratch.Slice(0, la + lb));
        if (id >= 0) score = _scores[id];
        return id;
    }

    /// <summary>
    /// run.c's <c>decode</c>: the token's piece, without its leading space when
    /// <paramref name="previousToken"/> is <paramref name="bos"/>; a piece <c>&lt;0xXX&gt;</c>
    /// decodes to that single byte. The span points into the tokenizer's own storage.
    /// </summary>
    public ReadOnlySpan<byte> Decode(int previousToken, int token, int bos)
    {
        ReadOnlySpan<byte> piece = Piece(token);
        if (previousToken == bos && !piece.IsEmpty && piece[0] == (byte)' ')
            piece = piece.Slice(1);
        if (TryParseBytePiece(piece, out byte b))
            return new ReadOnlySpan<byte>(s_singleBytes, b, 1);
        return piece;
    }

    /// <summary>Whether <paramref name="piece"/> is a byte-fallback token, <c>&lt;0xXX&gt;</c>, and which byte.</summary>
    public static bool TryParseBytePiece(ReadOnlySpan<byte> piece, out byte value)
    {
        value = 0;
        if (piece.Length != 6 || piece[0] != (byte)'<' || piece[1] != (byte)'0' || piece[2] != (byte)'x' || piece[5] != (byte)'>')
            return false;
        int hi = HexValue(piece[3]), lo = HexValue(piece[4]);
        if (hi < 0 || lo < 0) return false;
        value = (byte)(hi << 4 | lo);
        return true;
    }

    static int HexValue(byte c) => c switch
    {
        >= (byte)'0' and <= (byte)'9' => c - '0',
        >= (byte)'A' and <= (byte)'F' => c - 'A' + 10,
        >= (byte)'a' and <= (byte)'f' => c - 'a' + 10,
        _ => -1,
    };

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static uint Hash(ReadOnlySpan<byte> s)
    {
        // FNV-1a, then a final avalanche so the low bits used by the mask are well mixed.
        uint h = 2166136261;
        foreach (byte b in s) h = (h ^ b) * 16777619;
        h ^= h >> 15;
        h *= 0x2C1B3C6D;
        h ^= h >> 12;
        return h;
    }

    static byte[] CreateSingleBytes()
    {
        var a = new byte[256];
        for (int i = 0; i < 256; i++) a[i] = (byte)i;
        return a;
    }
}
