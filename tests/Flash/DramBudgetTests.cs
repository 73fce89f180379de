using AotFlash.Flash;

namespace AotFlash.Tests.Flash;

/// <summary>The DRAM-budget grammar shared by specs (flash.dram_budget) and the command line (--dram-budget).</summary>
public sealed class DramBudgetTests
{
    [Theory]
    [InlineData("50%", 100, 500L)]
    [InlineData(" 12.5% ", 100, 125L)]
    [InlineData("300%", 1000, 3000L)]
    [InlineData("3000000", 100, 3000000L)]
    [InlineData("4KiB", 100, 4096L)]
    [InlineData("4k", 100, 4096L)]
    [InlineData("2G", 100, 2L << 30)]
    [InlineData("512mib", 100, 512L << 20)]
    [InlineData("7MB", 100, 7L << 20)]
    public void Accepts(string text, double maxPercent, long bytesOf1000)
    {
        Assert.True(DramBudget.TryParse(text, maxPercent, out var budget));
        Assert.Equal(bytesOf1000, budget.Resolve(1000));
    }

    [Theory]
    [InlineData("", 100)]
    [InlineData("lots", 100)]
    [InlineData("0", 100)]
    [InlineData("0%", 100)]
    [InlineData("-5%", 100)]
    [InlineData("101%", 100)]
    [InlineData("1001%", 1000)]
    [InlineData("5TB", 100)]
    [InlineData("1.5G", 100)]
    [InlineData("9999999999G", 100)]
    public void Refuses(string text, double maxPercent) => Assert.False(DramBudget.TryParse(text, maxPercent, out _));

    [Fact]
    public void TheCommandLineSaysWhatItAccepts()
    {
        var e = Assert.Throws<BadInputException>(() => DramAccount.ParseBudget("lots", 1000));
        Assert.Contains(DramBudget.Syntax, e.Message);
        Assert.Equal(5000, DramAccount.ParseBudget("500%", 1000));
    }
}
