using System.Text;

namespace AotFlash.Tokenizers;

public sealed partial class Gpt2BpeTokenizer
{
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
}
