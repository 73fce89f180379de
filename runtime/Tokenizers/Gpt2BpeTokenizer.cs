using System.Buffers;
using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
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
public sealed class Gpt2BpeTokenizer : ITokenizer
{
    /// <summary>GPT-2's end-of-text token: special by default when the vocabulary holds it.</summary>
    public const string EndOfText = "<|endoftext|>";

    // Serialised form, little-endian: magic, version, token count, merge count, blob length; then
    // per token a u16 byte length and a u8 flag (1 = special); the token bytes back to back; then per
    // merge, in rank order, i32 left, right and result ids.
    static ReadOnlySpan<byte> Magic => "AFGPT2BP"u8;
    const uint FormatVersion = 1;
    const int HeaderSize = 24;
    const byte SpecialFlag = 1;

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

    /// <summary>Number of merges (ranks 0 .. MergeCount-1).</summary>
    public int MergeCount => _mergeLeft.Length;

    // ---------- construction ----------

    /// <summary>
    /// From GPT-2's <c>vocab.json</c> (token string → id, ids 0..N-1) and <c>merges.txt</c> (an
    /// optional <c>#version</c> line, then one merge "left right" per line, in rank order).
    /// </summary>
    /// <param name="specialTokens">The control tokens (e.g. from tokenizer_config.json); null: <see cref="EndOfText"/> when the vocabulary holds it.</param>
    /// <exception cref="InvalidDataException">A file is malformed or the two do not fit together.</exception>
    public static Gpt2BpeTokenizer FromVocabAndMerges(ReadOnlySpan<byte> vocabJson, ReadOnlySpan<byte> mergesText, IEnumerable<string>? specialTokens = null)
    {
        using var doc = ParseJson(vocabJson, "vocab.json");
        var (tokens, ids) = ReadVocab(doc.RootElement, "vocab.json", extra: []);
        var special = new bool[tokens.Length];
        if (specialTokens is null)
        {
            if (ids.TryGetValue(EndOfText, out int eot)) special[eot] = true;
        }
        else
        {
            foreach (string s in specialTokens)
            {
                if (!ids.TryGetValue(s, out int id))
                    throw new InvalidDataException($"tokenizer: special token '{s}' is not in vocab.json.");
                special[id] = true;
            }
        }
        return Build(tokens, ids, special, ReadMergesText(mergesText));
    }

    /// <summary>
    /// From a Hugging Face <c>tokenizer.json</c> whose model is a byte-level BPE: model.type "BPE",
    /// pre_tokenizer "ByteLevel" (GPT-2's pattern, no prefix space), no normalizer. Its added tokens
    /// must be special; they are control tokens (see the class remarks). The post-processor is not
    /// read: whether a BOS comes first is the caller's choice in <see cref="Encode"/>.
    /// </summary>
    /// <exception cref="InvalidDataException">The file is malformed or describes another kind of tokenizer.</exception>
    public static Gpt2BpeTokenizer FromTokenizerJson(ReadOnlySpan<byte> tokenizerJson)
    {
        using var doc = ParseJson(tokenizerJson, "tokenizer.json");
        JsonElement root = doc.RootElement;
        if (root.ValueKind != JsonValueKind.Object) throw Malformed("tokenizer.json", "is not a JSON object");
        JsonElement model = Property(root, "model", JsonValueKind.Object, "tokenizer.json");

        string? type = OptionalString(model, "type");
        if (type != "BPE") throw Unsupported($"model.type is '{type}', not 'BPE'");
        if (Has(root, "normalizer")) throw Unsupported("it has a normalizer");
        if (Has(model, "dropout")) throw Unsupported("model.dropout is set");
        if (!string.IsNullOrEmpty(OptionalString(model, "continuing_subword_prefix")) || !string.IsNullOrEmpty(OptionalString(model, "end_of_word_suffix")))
            throw Unsupported("model has a subword prefix or suffix");
        if (OptionalBool(model, "byte_fallback") == true) throw Unsupported("model.byte_fallback is set");
        if (OptionalBool(model, "ignore_merges") == true) throw Unsupported("model.ignore_merges is set");
        if (!root.TryGetProperty("pre_tokenizer", out JsonElement pre) || pre.ValueKind != JsonValueKind.Object || OptionalString(pre, "type") != "ByteLevel")
            throw Unsupported("its pre_tokenizer is not ByteLevel");
        if (OptionalBool(pre, "add_prefix_space") == true) throw Unsupported("pre_tokenizer.add_prefix_space is set");
        if (OptionalBool(pre, "use_regex") == false) throw Unsupported("pre_tokenizer.use_regex is off");

        var added = new List<(string Content, int Id)>();
        if (root.TryGetProperty("added_tokens", out JsonElement addedTokens) && addedTokens.ValueKind != JsonValueKind.Null)
        {
            if (addedTokens.ValueKind != JsonValueKind.Array) throw Malformed("tokenizer.json", "added_tokens is not an array");
            foreach (JsonElement t in addedTokens.EnumerateArray())
            {
                if (t.ValueKind != JsonValueKind.Object) throw Malformed("tokenizer.json", "an added token is not an object");
                string content = OptionalString(t, "content") ?? throw Malformed("tokenizer.json", "an added token has no content");
                if (!t.TryGetProperty("id", out JsonElement idElement) || idElement.ValueKind != JsonValueKind.Number
                    || !idElement.TryGetInt32(out int id) || id < 0)
                    throw Malformed("tokenizer.json", $"added token '{content}' has no valid id");
                if (OptionalBool(t, "special") != true)
                    throw Unsupported($"added token '{content}' (id {id}) is not special, and matching added tokens in text is not supported");
                added.Add((content, id));
            }
        }

        var (tokens, ids) = ReadVocab(Property(model, "vocab", JsonValueKind.Object, "tokenizer.json"), "tokenizer.json", added);
        var special = new bool[tokens.Length];
        foreach (var (_, id) in added) special[id] = true;

        JsonElement merges = Property(model, "merges", JsonValueKind.Array, "tokenizer.json");
        var pairs = new List<(string, string)>(merges.GetArrayLength());
        foreach (JsonElement m in merges.EnumerateArray())
        {
            int line = pairs.Count;
            if (m.ValueKind == JsonValueKind.String)
            {
                pairs.Add(SplitMerge(m.GetString()!, $"tokenizer.json merge {line}"));
            }
            else if (m.ValueKind == JsonValueKind.Array && m.GetArrayLength() == 2
                     && m[0].ValueKind == JsonValueKind.String && m[1].ValueKind == JsonValueKind.String)
            {
                pairs.Add((m[0].GetString()!, m[1].GetString()!));
            }
            else
            {
                throw Malformed("tokenizer.json", $"merge {line} is neither \"left right\" nor [left, right]");
            }
        }
        return Build(tokens, ids, special, pairs);

        static InvalidDataException Unsupported(string why) =>
            new($"tokenizer: tokenizer.json is not a GPT-2 byte-level BPE: {why}.");
    }

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
                long top = Pop(heap, ref heapCount);
                int rank = (int)(top >> 32), pos = (int)top;
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

    // A binary min-heap of rank << 32 | position: lowest rank first, then leftmost.
    static void Push(long[] heap, ref int count, int rank, int pos)
    {
        if (rank < 0) return;
        long item = (long)rank << 32 | (uint)pos;
        int i = count++;
        while (i > 0)
        {
            int parent = (i - 1) >> 1;
            if (heap[parent] <= item) break;
            heap[i] = heap[parent];
            i = parent;
        }
        heap[i] = item;
    }

    static long Pop(long[] heap, ref int count)
    {
        long top = heap[0];
        long last = heap[--count];
        int i = 0;
        while (true)
        {
            int child = 2 * i + 1;
            if (child >= count) break;
            if (child + 1 < count && heap[child + 1] < heap[child]) child++;
            if (heap[child] >= last) break;
            heap[i] = heap[child];
            i = child;
        }
        if (count > 0) heap[i] = last;
        return top;
    }

    static string InvalidUtf8Message(ReadOnlySpan<byte> utf8)
    {
        int at = 0;
        while (Rune.DecodeFromUtf8(utf8.Slice(at), out _, out int consumed) == OperationStatus.Done) at += consumed;
        return $"the text is not valid UTF-8 (byte 0x{utf8[at]:X2} at offset {at}); GPT-2's tokenizer reads UTF-8 text only";
    }

    // ---------- reading vocab.json, merges.txt and tokenizer.json ----------

    /// <summary>
    /// Token strings by id from a vocabulary object, with the added tokens that lie past it; checks
    /// that ids run 0..N-1 without gaps or repeats.
    /// </summary>
    static (string[] Tokens, Dictionary<string, int> Ids) ReadVocab(JsonElement vocab, string file, List<(string Content, int Id)> extra)
    {
        if (vocab.ValueKind != JsonValueKind.Object) throw Malformed(file, "the vocabulary is not a JSON object");
        var ids = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (JsonProperty p in vocab.EnumerateObject())
        {
            if (p.Value.ValueKind != JsonValueKind.Number || !p.Value.TryGetInt32(out int id) || id < 0)
                throw Malformed(file, $"token '{p.Name}' has no valid id");
            if (!ids.TryAdd(p.Name, id))
                throw Malformed(file, $"token '{p.Name}' appears twice");
        }
        foreach (var (content, id) in extra)
        {
            if (ids.TryGetValue(content, out int existing))
            {
                if (existing != id) throw Malformed(file, $"added token '{content}' has id {id}, the vocabulary {existing}");
            }
            else
            {
                ids.Add(content, id);
            }
        }
        // N distinct ids below N fill every slot.
        var tokens = new string[ids.Count];
        foreach (var (token, id) in ids)
        {
            if (id >= tokens.Length)
                throw Malformed(file, $"token ids must run 0..{tokens.Length - 1} without gaps; '{token}' has id {id}");
            if (tokens[id] is not null)
                throw Malformed(file, $"tokens '{tokens[id]}' and '{token}' share id {id}");
            tokens[id] = token;
        }
        return (tokens, ids);
    }

    static List<(string, string)> ReadMergesText(ReadOnlySpan<byte> mergesText)
    {
        string text;
        try { text = new UTF8Encoding(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true).GetString(mergesText); }
        catch (DecoderFallbackException) { throw Malformed("merges.txt", "is not valid UTF-8"); }
        var merges = new List<(string, string)>();
        string[] lines = text.Split('\n');
        for (int i = 0; i < lines.Length; i++)
        {
            string line = lines[i].TrimEnd('\r');
            if (line.Length == 0 || (i == 0 && line.StartsWith("#version", StringComparison.Ordinal))) continue;
            merges.Add(SplitMerge(line, $"merges.txt line {i + 1}"));
        }
        return merges;
    }

    static (string, string) SplitMerge(string merge, string where)
    {
        int space = merge.IndexOf(' ');
        if (space <= 0 || space == merge.Length - 1 || merge.IndexOf(' ', space + 1) >= 0)
            throw new InvalidDataException($"tokenizer: {where} is not two tokens separated by one space: '{merge}'.");
        return (merge[..space], merge[(space + 1)..]);
    }

    /// <summary>Token strings (GPT-2's byte alphabet, or a special token's text) and merges → the tokenizer.</summary>
    static Gpt2BpeTokenizer Build(string[] tokens, Dictionary<string, int> ids, bool[] special, List<(string Left, string Right)> merges)
    {
        var offsets = new int[tokens.Length + 1];
        using var blob = new MemoryStream();
        for (int id = 0; id < tokens.Length; id++)
        {
            offsets[id] = (int)blob.Length;
            if (special[id])
            {
                blob.Write(Encoding.UTF8.GetBytes(tokens[id]));
            }
            else
            {
                foreach (Rune rune in tokens[id].EnumerateRunes())
                {
                    int b = ByteLevel.ByteOf(rune);
                    if (b < 0)
                        throw new InvalidDataException($"tokenizer: token '{tokens[id]}' (id {id}) has '{rune}', which is not in GPT-2's byte alphabet.");
                    blob.WriteByte((byte)b);
                }
            }
            if (blob.Length - offsets[id] > ushort.MaxValue)
                throw new InvalidDataException($"tokenizer: token {id} is longer than {ushort.MaxValue} bytes.");
        }
        offsets[tokens.Length] = (int)blob.Length;

        var left = new int[merges.Count];
        var right = new int[merges.Count];
        var result = new int[merges.Count];
        for (int rank = 0; rank < merges.Count; rank++)
        {
            var (a, b) = merges[rank];
            left[rank] = IdOf(a);
            right[rank] = IdOf(b);
            result[rank] = IdOf(a + b);

            int IdOf(string token) => ids.TryGetValue(token, out int id) ? id
                : throw new InvalidDataException($"tokenizer: merge {rank} ('{a} {b}') needs '{token}', which is not in the vocabulary.");
        }
        return new Gpt2BpeTokenizer(tokens.Length, blob.ToArray(), offsets, special, left, right, result);
    }

    static JsonDocument ParseJson(ReadOnlySpan<byte> json, string file)
    {
        if (json.StartsWith("\xEF\xBB\xBF"u8)) json = json.Slice(3);
        try
        {
            var reader = new Utf8JsonReader(json);
            var doc = JsonDocument.ParseValue(ref reader);
            if (reader.Read())
            {
                doc.Dispose();
                throw Malformed(file, "has data after its JSON value");
            }
            return doc;
        }
        catch (JsonException e)
        {
            throw Malformed(file, $"is not valid JSON ({e.Message})");
        }
    }

    static JsonElement Property(JsonElement obj, string name, JsonValueKind kind, string file) =>
        obj.TryGetProperty(name, out JsonElement value) && value.ValueKind == kind ? value
            : throw Malformed(file, $"has no {kind.ToString().ToLowerInvariant()} '{name}'");

    static bool Has(JsonElement obj, string name) =>
        obj.TryGetProperty(name, out JsonElement value) && value.ValueKind != JsonValueKind.Null;

    static string? OptionalString(JsonElement obj, string name) =>
        obj.TryGetProperty(name, out JsonElement value) && value.ValueKind == JsonValueKind.String ? value.GetString() : null;

    static bool? OptionalBool(JsonElement obj, string name) =>
        obj.TryGetProperty(name, out JsonElement value) && value.ValueKind is JsonValueKind.True or JsonValueKind.False
            ? value.GetBoolean() : null;

    static InvalidDataException Malformed(string file, string what) => new($"tokenizer: {file} {what}.");

    /// <summary>
    /// GPT-2's byte-to-unicode alphabet: the printable bytes ('!'..'~', '¡'..'¬', '®'..'ÿ') stand for
    /// themselves, the other 68 bytes in order for U+0100, U+0101, …, so that every byte is a
    /// visible character (the space 0x20 is 'Ġ', U+0120).
    /// </summary>
    internal static class ByteLevel
    {
        const int AlphabetEnd = 0x100 + 68;
        static readonly short[] s_byteOfChar = CreateByteOfChar();

        /// <summary>The byte the character stands for, or -1 when it is not in the alphabet.</summary>
        public static int ByteOf(Rune rune) => rune.Value < AlphabetEnd ? s_byteOfChar[rune.Value] : -1;

        static short[] CreateByteOfChar()
        {
            var byteOf = new short[AlphabetEnd];
            Array.Fill(byteOf, (short)-1);
            int shifted = 0;
            for (int b = 0; b < 256; b++)
            {
                bool printable = b is >= '!' and <= '~' or >= 0xA1 and <= 0xAC or >= 0xAE and <= 0xFF;
                byteOf[printable ? b : 0x100 + shifted++] = (short)b;
            }
            return byteOf;
        }
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
