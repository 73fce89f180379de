using System.Text;
using AotFlash.Tokenizers;

namespace AotFlash.Tests.Tokenizers;

public sealed class AnswerTextTests
{
    /// <summary>Feeds the pieces and returns what was released after each, then what Finish released.</summary>
    private static (List<string> Released, string Final, bool Stopped) Feed(string[] stops, params byte[][] pieces)
    {
        var text = new AnswerText(stops);
        var released = pieces.Select(p => text.Add(p)).ToList();
        return (released, text.Finish(), text.Stopped);
    }

    private static byte[] U(string s) => Encoding.UTF8.GetBytes(s);

    [Fact]
    public void CharacterSplitAcrossTokensComesOutWhole()
    {
        byte[] euro = U("€"); // E2 82 AC
        var (released, final, _) = Feed([], U("a"), euro[..1], euro[1..2], [.. euro[2..], .. U("b")]);
        Assert.Equal(["a", "", "", "€b"], released);
        Assert.Equal("", final);
    }

    [Fact]
    public void IncompleteOrInvalidBytesBecomeReplacementCharacters()
    {
        var (released, final, _) = Feed([], [0x61, 0xFF], [0xE2, 0x82]);
        Assert.Equal(["a\uFFFD", ""], released);
        Assert.Equal("\uFFFD", final);
    }

    [Fact]
    public void StopStringAcrossTokensEndsTheAnswerWithoutIt()
    {
        var (released, final, stopped) = Feed(["\nUser:"], U("Hello"), U(" there\nUs"), U("er: more"), U("ignored"));
        Assert.Equal(["Hello", " there", "", ""], released);
        Assert.Equal("", final);
        Assert.True(stopped);
    }

    [Fact]
    public void HeldTextThatIsNotAStopStringIsReleased()
    {
        var (released, final, stopped) = Feed(["END"], U("the E"), U("N"), U("d"), U(" EN"));
        Assert.Equal(["the ", "", "ENd", " "], released);
        Assert.Equal("EN", final);
        Assert.False(stopped);
    }

    [Fact]
    public void EarliestOfSeveralStopStringsWins()
    {
        var (released, _, stopped) = Feed(["bb", "a b"], U("xa bb"));
        Assert.Equal(["x"], released);
        Assert.True(stopped);
    }
}
