using System.Buffers;
using System.Text;
using System.Text.Unicode;

namespace AotFlash.Tokenizers;

/// <summary>
/// GPT-2's byte-level BPE, as OpenAI's <c>encoder.py</c> and HF's GPT2Tokenizer encode: the text is
/// split by GPT-2's pre-tokenizer (<see cref="Gpt2PreTokenizer"/>), each piece's UTF-8 bytes become
/// one token each, and adjacent tokens are merged by the rank of their merge, lowest first, the
/// leftmost on ties, until no pair has a merge. (encoder.py merges every occurrence of the best pair
/// in one sweep; that gives the same tokens whenever each merge's parts are made by earlier merges,
/// as in every released vocabulary.)
///
/// Vocabulary strings are written in GPT-2's byte-to-unicode alphabet (byte 0x20 is 'Ġ', …); the
/// tokenizer keeps each token as the raw bytes it stands for, so <see cref="Decode"/> hands out
/// bytes, and a token may hold part of a UTF-8 character. Special tokens (<c>&lt;|endoftext|&gt;</c>)
/// are control tokens: <see cref="Encode"/> never produces them from text (the text
/// "&lt;|endoftext|&gt;" is encoded as ordinary characters, as encoder.py does, so a prompt cannot
/// forge one) and <see cref="Decode"/> gives no bytes for them (HF's
/// <c>skip_special_tokens</c>); <see cref="Piece"/> gives their text.
///
/// Immutable apart from a cache of pre-token encodings guarded by a lock; safe to use from several threads.
/// </summary>
public sealed partial class Gpt2BpeTokenizer : ITokenizer
{
    /// <summary>GPT-2's end-of-text token: special by default when the vocabulary holds it.</summary>
    public const string EndOfText = "<|endoftext|>";

    // Words longer than this are rare and would crowd the cache; HF caches up to 256 characters.
    const int MaxCachedLength = 256;
    const int CacheCapacity = 16384;
    const ulong EmptyPair = ulong.MaxValue;

    readonly int _vocabSize;
    readonly byte[] _blob;        // the bytes of every token, back to back
    readonly int[] _offsets;      // token i is _blob[_offsets[i] .. _offsets[i + 1])
    readonly bool[] _special;
    readonly int[] _mergeLeft, _mergeRight, _mergeResult;   // by rank
    readonly ulong[] _pairKeys;   // open addressing: (left << 32 | right), EmptyPair = free slot
    readonly int[] _pairRanks;
    readonly int _pairMask;
    readonly int[] _byteTokens = new int[256];

    readonly Lock _cacheLock = new();
    readonly Dictionary<byte[], int[]> _cache = new(ByteSequenceComparer.Instance);
    readonly Dictionary<byte[], int[]>.AlternateLookup<ReadOnlySpan<byte>> _cacheBySpan;

    Gpt2BpeTokenizer(int vocabSize, byte[] blob, int[] offsets, bool[] special, int[] mergeLeft, int[] mergeRight, int[] mergeResult)
    {
        int tokenCount = special.Length;
        if (tokenCount > vocabSize)
            throw new InvalidDataException($"tokenizer: holds {tokenCount} tokens, more than the model's vocabulary of {vocabSize}.");
        _vocabSize = vocabSize;
        _blob = blob;
        _offsets = offsets;
        _special = special;
        _mergeLeft = mergeLeft;
        _mergeRight = mergeRight;
        _mergeResult = mergeResult;
        _cacheBySpan = _cache.GetAlternateLookup<ReadOnlySpan<byte>>();

        Array.Fill(_byteTokens, -1);
        for (int id = 0; id < tokenCount; id++)
        {
            if (special[id]) continue;
            ReadOnlySpan<byte> bytes = Piece(id);
            if (bytes.IsEmpty)
                throw new InvalidDataException($"tokenizer: token {id} is empty.");
            LongestTokenBytes = Math.Max(LongestTokenBytes, bytes.Length);
            if (bytes.Length != 1) continue;
            if (_byteTokens[bytes[0]] >= 0)
                throw new InvalidDataException($"tokenizer: tokens {_byteTokens[bytes[0]]} and {id} both stand for byte 0x{bytes[0]:X2}.");
            _byteTokens[bytes[0]] = id;
        }
        int missing = Array.IndexOf(_byteTokens, -1);
        if (missing >= 0)
            throw new InvalidDataException($"tokenizer: no token stands for byte 0x{missing:X2} (a byte-level vocabulary has all 256).");

        int size = 16;
        while (size < mergeLeft.Length * 2) size <<= 1;
        _pairKeys = new ulong[size];
        _pairRanks = new int[size];
        _pairMask = size - 1;
        Array.Fill(_pairKeys, EmptyPair);
        for (int rank = 0; rank < mergeLeft.Length; rank++)
        {
            int left = mergeLeft[rank], right = mergeRight[rank], result = mergeResult[rank];
            if ((uint)left >= (uint)tokenCount || (uint)right >= (uint)tokenCount || (uint)result >= (uint)tokenCount)
                throw new InvalidDataException($"tokenizer: merge {rank} ({left} {right} -> {result}) names a token outside 0..{tokenCount - 1}.");
            if (special[left] || special[right] || special[result])
                throw new InvalidDataException($"tokenizer: merge {rank} ({left} {right} -> {result}) involves a special token.");
            ReadOnlySpan<byte> l = Piece(left), r = Piece(right), m = Piece(result);
            if (m.Length != l.Length + r.Length || !m.StartsWith(l) || !m.EndsWith(r))
                throw new InvalidDataException($"tokenizer: merge {rank} ({left} {right} -> {result}): token {result} is not tokens {left} and {right} joined.");
            // A pair listed twice keeps its last rank, as encoder.py's and HF's dictionaries do.
            ulong key = PairKey(left, right);
            int slot = PairSlot(key);
            while (_pairKeys[slot] != EmptyPair && _pairKeys[slot] != key) slot = (slot + 1) & _pairMask;
            _pairKeys[slot] = key;
            _pairRanks[slot] = rank;
        }
    }

    /// <summary>Number of token ids: the model's vocabulary given to <see cref="Load"/>, else the tokens read.</summary>
    public int VocabSize => _vocabSize;

    /// <summary>The longest ordinary token (special tokens are never matched in text).</summary>
    public int LongestTokenBytes { get; }

    /// <summary>Number of merges (ranks 0 .. MergeCount-1).</summary>
    public int MergeCount => _mergeLeft.Length;

    // ---------- tokens ----------

    /// <summary>
    /// The bytes a token stands for; a special token's text; nothing for an id past the tokens.
    /// </summary>
    public ReadOnlySpan<byte> Piece(int token)
    {
        CheckToken(token);
        if (token >= _special.Length) return default;
        return new ReadOnlySpan<byte>(_blob, _offsets[token], _offsets[token + 1] - _offsets[token]);
    }

    /// <summary>Whether the token is a control token (see the class remarks).</summary>
    public bool IsSpecial(int token)
    {
        CheckToken(token);
        return token < _special.Length && _special[token];
    }

    /// <summary>
    /// The token's bytes (part of a UTF-8 character, possibly); nothing for a special token or an id
    /// past the tokens. GPT-2 adds no dummy prefix, so neither the previous token nor BOS matters.
    /// The span points into the tokenizer's own storage.
    /// </summary>
    public ReadOnlySpan<byte> Decode(int previousToken, int token, int bos) =>
        IsSpecial(token) ? default : Piece(token);

    void CheckToken(int token)
    {
        if ((uint)token >= (uint)_vocabSize)
            throw new ArgumentOutOfRangeException(nameof(token), token, $"Token id must be in [0, {_vocabSize}).");
    }

    // ---------- encoding ----------

    /// <summary>
    /// Optional <paramref name="bos"/>, then the BPE tokens of each pre-token of the text. Special
    /// tokens are never produced (their text encodes as ordinary characters).
    /// </summary>
    /// <exception cref="BadInputException">The text is not valid UTF-8.</exception>
    public int[] Encode(ReadOnlySpan<byte> utf8, bool addBos, int bos)
    {
        if (addBos) CheckToken(bos);
        if (!Utf8.IsValid(utf8)) throw new BadInputException(InvalidUtf8Message(utf8));

        // Every token holds at least one byte, so the text's length bounds the count.
        int[] buffer = ArrayPool<int>.Shared.Rent(utf8.Length + 1);
        try
        {
            int n = 0;
            if (addBos) buffer[n++] = bos;
            for (int start = 0; start < utf8.Length;)
            {
                int end = Gpt2PreTokenizer.NextEnd(utf8, start);
                n += EncodeWord(utf8.Slice(start, end - start), buffer.AsSpan(n));
                start = end;
            }
            return buffer.AsSpan(0, n).ToArray();
        }
        finally
        {
            ArrayPool<int>.Shared.Return(buffer);
        }
    }

    int EncodeWord(ReadOnlySpan<byte> word, Span<int> output)
    {
        if (word.Length == 1)
        {
            output[0] = _byteTokens[word[0]];
            return 1;
        }
        bool cacheable = word.Length <= MaxCachedLength;
        if (cacheable)
        {
            lock (_cacheLock)
            {
                if (_cacheBySpan.TryGetValue(word, out int[]? cached))
                {
                    cached.CopyTo(output);
                    return cached.Length;
                }
            }
        }
        int count = Merge(word, output);
        if (cacheable)
        {
            lock (_cacheLock)
            {
                if (_cache.Count >= CacheCapacity) _cache.Clear();
                _cacheBySpan.TryAdd(word, output.Slice(0, count).ToArray());
            }
        }
        return count;
    }

    /// <summary>
    /// BPE of one pre-token: starts from one token per byte and applies the lowest-ranked merge of
    /// an adjacent pair, the leftmost on ties, until none applies. A heap of (rank, position) keeps
    /// it O(n log n) for long words; entries whose pair has changed since are skipped when popped.
    /// </summary>
    int Merge(ReadOnlySpan<byte> word, Span<int> output)
    {
        int n = word.Length;
        int[] links = ArrayPool<int>.Shared.Rent(3 * n);
        // Each merge pushes at most two pairs onto the n - 1 it starts with.
        long[] heap = ArrayPool<long>.Shared.Rent(3 * n);
        try
        {
            // Symbols sit at their first byte's index; a merged symbol keeps its left index, so
            // positions stay in text order. ids[i] = -1 once symbol i is merged into its left neighbour.
            Span<int> ids = links.AsSpan(0, n), next = links.AsSpan(n, n), prev = links.AsSpan(2 * n, n);
            int heapCount = 0;
            for (int i = 0; i < n; i++)
            {
                ids[i] = _byteTokens[word[i]];
                prev[i] = i - 1;
                next[i] = i + 1 < n ? i + 1 : -1;
            }
            for (int i = 0; i + 1 < n; i++)
                Push(heap, ref heapCount, Rank(ids[i], ids[i + 1]), i);

            while (heapCount > 0)
            {
                var (priority, pos) = MergeQueue.Pop(heap, ref heapCount);
                int rank = (int)priority;
                int right = next[pos];
                if (ids[pos] < 0 || right < 0 || Rank(ids[pos], ids[right]) != rank) continue;

                ids[pos] = _mergeResult[rank];
                ids[right] = -1;
                int after = next[right];
                next[pos] = after;
                if (after >= 0) prev[after] = pos;
                if (prev[pos] >= 0) Push(heap, ref heapCount, Rank(ids[prev[pos]], ids[pos]), prev[pos]);
                if (after >= 0) Push(heap, ref heapCount, Rank(ids[pos], ids[after]), pos);
            }

            int count = 0;
            for (int i = 0; i >= 0; i = next[i]) output[count++] = ids[i];
            return count;
        }
        finally
        {
            ArrayPool<int>.Shared.Return(links);
            ArrayPool<long>.Shared.Return(heap);
        }
    }

    /// <summary>The rank of the merge of <paramref name="left"/> then <paramref name="right"/>, or -1.</summary>
    int Rank(int left, int right)
    {
        ulong key = PairKey(left, right);
        for (int slot = PairSlot(key); ; slot = (slot + 1) & _pairMask)
        {
            ulong k = _pairKeys[slot];
            if (k == key) return _pairRanks[slot];
            if (k == EmptyPair) return -1;
        }
    }

    static ulong PairKey(int left, int right) => (ulong)(uint)left << 32 | (uint)right;

    int PairSlot(ulong key) => (int)((key * 0x9E3779B97F4A7C15UL) >> 32) & _pairMask;

    /// <summary>Queues the pair at <paramref name="pos"/> by its merge rank (lowest first); a pair that never merges
    /// (rank -1) is not queued.</summary>
    static void Push(long[] heap, ref int count, int rank, int pos)
    {
        if (rank >= 0) MergeQueue.Push(heap, ref count, (uint)rank, pos);
    }

    static string InvalidUtf8Message(ReadOnlySpan<byte> utf8)
    {
        int at = 0;
        while (Rune.DecodeFromUtf8(utf8.Slice(at), out _, out int consumed) == OperationStatus.Done) at += consumed;
        return $"the text is not valid UTF-8 (byte 0x{utf8[at]:X2} at offset {at}); GPT-2's tokenizer reads UTF-8 text only";
    }

    /// <summary>Compares byte arrays by content, and a span against them, for the pre-token cache.</summary>
    sealed class ByteSequenceComparer : IEqualityComparer<byte[]>, IAlternateEqualityComparer<ReadOnlySpan<byte>, byte[]>
    {
        public static readonly ByteSequenceComparer Instance = new();

        public bool Equals(byte[]? x, byte[]? y) => x.AsSpan().SequenceEqual(y);
        public int GetHashCode(byte[] bytes) => GetHashCode((ReadOnlySpan<byte>)bytes);
        public bool Equals(ReadOnlySpan<byte> alternate, byte[] other) => alternate.SequenceEqual(other);
        public byte[] Create(ReadOnlySpan<byte> alternate) => alternate.ToArray();

        public int GetHashCode(ReadOnlySpan<byte> alternate)
        {
            var hash = new HashCode();
            hash.AddBytes(alternate);
            return hash.ToHashCode();
        }
    }
}
