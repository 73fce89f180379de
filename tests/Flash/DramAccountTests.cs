using AotFlash.Flash;

namespace AotFlash.Tests.Flash;

/// <summary>The account's allocations: the allocator's, and buffers for reads, which from 2 MiB on are mappings of their
/// own on a 2 MiB boundary. Both come zeroed, aligned, charged while held and released when freed.</summary>
public sealed unsafe class DramAccountTests
{
    [Theory]
    [InlineData(1, 64, false)]
    [InlineData(4095, 4096, false)]
    [InlineData(DramAccount.LargeBytes + 12345, 64, false)]
    [InlineData(1, 4096, true)]
    [InlineData(DramAccount.LargeBytes - 1, 4096, true)]
    [InlineData(DramAccount.LargeBytes, 4096, true)]
    [InlineData(3 * DramAccount.LargeBytes + 4096 + 7, 4096, true)]
    public void AllocatesZeroedAlignedMemoryAndChargesIt(long bytes, int alignment, bool forReads)
    {
        var account = new DramAccount();
        byte* p = (byte*)(forReads ? account.AllocateForReads(bytes, "a test buffer") : account.Allocate(bytes, "a test buffer", alignment));
        try
        {
            Assert.Equal(0, (nint)p % alignment);
            if (forReads && bytes >= DramAccount.LargeBytes) Assert.Equal(0, (nint)p % DramAccount.LargeBytes);
            Assert.Equal(bytes, account.Current);
            var span = new Span<byte>(p, (int)bytes);
            Assert.Equal(-1, span.IndexOfAnyExcept((byte)0));
            span.Fill(0xA5); // every byte writable, the last included
            Assert.Equal(0xA5, p[bytes - 1]);
        }
        finally { account.Free(p, bytes); }
        Assert.Equal(0, account.Current);
        Assert.Equal(bytes, account.Peak);
    }

    [Fact]
    public void ABufferForReadsOverTheBudgetIsRefusedAndNotCharged()
    {
        var account = new DramAccount(limit: 3 * DramAccount.LargeBytes);
        using var held = NativeArray<byte>.ForReads(2 * DramAccount.LargeBytes, account, "a first buffer");
        var e = Assert.Throws<BadInputException>(() => NativeArray<byte>.ForReads(2 * DramAccount.LargeBytes, account, "a second buffer"));
        Assert.Contains("a second buffer", e.Message);
        Assert.Equal(2 * DramAccount.LargeBytes, account.Current);
    }
}
