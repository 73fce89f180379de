using System.Runtime.InteropServices;
using AotFlash.Flash;

namespace AotFlash.Tests.Flash;

/// <summary>The account's allocations: the allocator's below 2 MiB (or where 2 MiB pages are not wanted), mappings of their
/// own on a 2 MiB boundary from there on. All come zeroed, aligned, resident, charged while held and released when freed.</summary>
public sealed unsafe partial class DramAccountTests
{
    [LibraryImport("libc", SetLastError = true)]
    private static partial int mincore(void* address, nuint length, byte* residency);

    [Theory]
    [InlineData(1, 64, false)]
    [InlineData(4095, 4096, false)]
    [InlineData(DramAccount.LargeBytes + 12345, 64, false)]
    [InlineData(DramAccount.LargeBytes + 12345, 4096, false, false)]
    [InlineData(1, 4096, true)]
    [InlineData(DramAccount.LargeBytes - 1, 4096, true)]
    [InlineData(DramAccount.LargeBytes, 4096, true)]
    [InlineData(3 * DramAccount.LargeBytes + 4096 + 7, 4096, true)]
    public void AllocatesZeroedAlignedMemoryAndChargesIt(long bytes, int alignment, bool forReads, bool hugePages = true)
    {
        var account = new DramAccount();
        byte* p = (byte*)(forReads ? account.AllocateForReads(bytes, "a test buffer") : account.Allocate(bytes, "a test buffer", alignment, hugePages));
        try
        {
            Assert.Equal(0, (nint)p % alignment);
            if (hugePages && bytes >= DramAccount.LargeBytes) Assert.Equal(0, (nint)p % DramAccount.LargeBytes);
            Assert.Equal(bytes, account.Current);
            if (bytes >= DramAccount.LargeBytes) AssertResident(p, bytes);
            var span = new Span<byte>(p, (int)bytes);
            Assert.Equal(-1, span.IndexOfAnyExcept((byte)0));
            span.Fill(0xA5); // every byte writable, the last included
            Assert.Equal(0xA5, p[bytes - 1]);
        }
        finally { account.Free(p, bytes); }
        Assert.Equal(0, account.Current);
        Assert.Equal(bytes, account.Peak);
    }

    // Every page mapped before anything here touches it (mincore's bit 0 per page).
    private static void AssertResident(byte* p, long bytes)
    {
        long page = Environment.SystemPageSize, pages = (bytes + page - 1) / page;
        var residency = new byte[pages];
        fixed (byte* r = residency) Assert.Equal(0, mincore(p, (nuint)(pages * page), r));
        Assert.Equal(-1, Array.FindIndex(residency, b => (b & 1) == 0));
    }

    // Memory not populated: below a MiB the allocator's, cleared and charged as asked; from a MiB on a mapping of whole
    // 2 MiB pages, charged whole, none of them resident until used, reading as zeros; freed, nothing stays charged.
    [Theory]
    [InlineData(64 << 10, 64 << 10)]
    [InlineData((1 << 20) + 4, 2L << 20)]
    [InlineData(DramAccount.LargeBytes + 12345, 2 * DramAccount.LargeBytes)]
    public void RowsForTheLargestBlockAreChargedWholeAndMadeResidentWhereUsed(long length, long charged)
    {
        var account = new DramAccount();
        using (var rows = NativeArray<byte>.OnFirstUse(length, account, "a block's rows"))
        {
            byte* p = rows.Pointer;
            Assert.Equal(charged, account.Current);
            if (charged > length)
            {
                Assert.Equal(0, (nint)p % DramAccount.LargeBytes);
                var residency = new byte[charged / Environment.SystemPageSize];
                fixed (byte* r = residency) Assert.Equal(0, mincore(p, (nuint)charged, r));
                Assert.Equal(-1, Array.FindIndex(residency, b => (b & 1) != 0));
            }
            Assert.Equal(-1, rows.Span.IndexOfAnyExcept((byte)0));
            rows.Span.Fill(0xA5);
            Assert.Equal(0xA5, p[length - 1]);
        }
        Assert.Equal(0, account.Current);
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
