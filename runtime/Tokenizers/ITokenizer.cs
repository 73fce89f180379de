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

    /// <summary>The ids of <paramref name="utf8"/>, after <paramref name="bos"/> when <paramref name="addBos"/>.</summary>
    int[] Encode(ReadOnlySpan<byte> utf8, bool addBos, int bos);

    /// <summary>
    /// The bytes to print for <paramref name="token"/> when it follows <paramref name="previousToken"/>
    /// (some tokenizers print a token differently after <paramref name="bos"/>); may be empty.
    /// </summary>
    ReadOnlySpan<byte> Decode(int previousToken, int token, int bos);
}
