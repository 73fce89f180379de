namespace AotFlash.Tokenizers;

/// <summary>
/// What generation needs from a tokenizer: the prompt's ids, and the bytes to print for each new
/// token. Decoding is per token and in bytes because a token may hold part of a UTF-8 character;
/// the caller writes the bytes out in order and the text comes out whole.
/// </summary>
public interface ITokenizer
{
    /// <summary>Number of token ids the tokenizer accepts (0 .. VocabSize-1).</summary>
    int VocabSize { get; }

    /// <summary>The most bytes of text one token can stand for, so that a text of more than n times this many bytes
    /// is known to need more than n tokens before it is encoded.</summary>
    int LongestTokenBytes { get; }

    /// <summary>The bytes of a token's vocabulary entry as stored (a control token's own text, such as <c>&lt;/s&gt;</c>).</summary>
    ReadOnlySpan<byte> Piece(int token);

    /// <summary>The ids of <paramref name="utf8"/>, after <paramref name="bos"/> when <paramref name="addBos"/>.</summary>
    int[] Encode(ReadOnlySpan<byte> utf8, bool addBos, int bos);

    /// <summary>
    /// The bytes to print for <paramref name="token"/> when it follows <paramref name="previousToken"/>
    /// (some tokenizers print a token differently after <paramref name="bos"/>); may be empty.
    /// </summary>
    ReadOnlySpan<byte> Decode(int previousToken, int token, int bos);
}

/// <summary>The tokenizers a spec's <c>tokenizer: { kind: … }</c> may name.</summary>
public enum TokenizerKind
{
    /// <summary>llama2.c's tokenizer.bin (SentencePiece pieces with scores).</summary>
    Llama2c,
    /// <summary>GPT-2's byte-level BPE.</summary>
    Gpt2,
}

/// <summary>The tokenizer section of a model file, read as the spec's tokenizer kind says.</summary>
public static class TokenizerSection
{
    /// <exception cref="InvalidDataException">The section does not hold a tokenizer of that kind for this vocabulary.</exception>
    public static ITokenizer Load(TokenizerKind kind, ReadOnlySpan<byte> data, int vocabSize) => kind switch
    {
        TokenizerKind.Llama2c => Llama2cTokenizer.Load(data, vocabSize),
        TokenizerKind.Gpt2 => Gpt2BpeTokenizer.Load(data, vocabSize),
        _ => throw new InvalidDataException($"tokenizer kind '{kind}' is not known to this build"),
    };
}
