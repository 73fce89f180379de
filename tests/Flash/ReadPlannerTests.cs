using AotFlash.Flash;

namespace AotFlash.Tests.Flash;

public sealed class ReadPlannerTests
{
    private const int A = ReadPlanner.Alignment;

    private static ReadRange[] R(params ReadRange[] ranges) => ranges;

    private static ReadRange[] Plan(long first, long stride, int bytes, int[] bundles, int maxChunk = ReadPlanner.DefaultMaxChunkBytes,
                                    int maxGap = ReadPlanner.DefaultMaxGapBytes)
    {
        var ranges = new ReadRange[ReadPlanner.MaxRanges(bundles.Length)];
        int n = ReadPlanner.Plan(first, stride, bytes, bundles, ranges, maxChunk, maxGap);
        var plan = ranges[..n];
        CheckInvariants(first, stride, bytes, bundles, plan, maxChunk);
        return plan;
    }

    /// <summary>What every plan must satisfy: aligned ranges (so no O_DIRECT request is ever misaligned), in file
    /// order, each bundle of the list served exactly once by a range that holds all of its bytes, chunks respected.</summary>
    private static void CheckInvariants(long first, long stride, int bytes, int[] bundles, ReadRange[] plan, int maxChunk)
    {
        int next = 0;
        long previousOffset = -1, previousEnd = 0;
        foreach (var r in plan)
        {
            Assert.Equal(0, r.Offset % A);
            Assert.Equal(0, r.Length % A);
            Assert.True(r.Length > 0 && r.BundleCount > 0);
            Assert.True(r.Offset >= previousOffset, "ranges ascend");
            if (stride >= bytes) Assert.True(r.Offset >= previousEnd - A, "neighbouring ranges share at most one block");
            previousOffset = r.Offset;
            previousEnd = r.End;
            Assert.Equal(next, r.FirstBundle);
            next += r.BundleCount;
            if (r.BundleCount > 1) Assert.True(r.Length <= maxChunk, $"range of {r.Length} bytes over the {maxChunk} chunk");
            else Assert.Equal(ReadPlanner.AlignUp(first + (long)bundles[r.FirstBundle] * stride + bytes) - ReadPlanner.AlignDown(first + (long)bundles[r.FirstBundle] * stride), r.Length);
            for (int k = r.FirstBundle; k < r.FirstBundle + r.BundleCount; k++)
            {
                long at = first + bundles[k] * stride;
                Assert.True(at >= r.Offset && at + bytes <= r.End, $"bundle {bundles[k]} [{at}, {at + bytes}) outside [{r.Offset}, {r.End})");
            }
        }
        Assert.Equal(bundles.Length, next);
    }

    [Fact]
    public void EmptyListPlansNothing()
    {
        Assert.Empty(Plan(0, 768, 768, []));
        Assert.Equal(0, ReadPlanner.Plan(4096, 768, 768, [], Span<ReadRange>.Empty));
    }

    [Fact]
    public void AdjacentSmallBundlesCoalesceIntoOneAlignedRange()
    {
        // dim 64 f32: 768-byte bundles; neurons 0..9 are 7680 contiguous bytes -> one 8 KiB read.
        var plan = Plan(1 << 20, 768, 768, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
        Assert.Equal(R(new ReadRange(1 << 20, 8192, 0, 10)), plan);
    }

    [Fact]
    public void BundlesSharingABlockAreOneRangeEvenWithoutGapAllowance()
    {
        var plan = Plan(0, 768, 768, [0, 2, 4], maxGap: 0);
        Assert.Equal(R(new ReadRange(0, 4096, 0, 3)), plan);
    }

    [Fact]
    public void GapsUpToTheThresholdAreReadGapsAboveSplit()
    {
        // dim 4096 f16: 24 KiB bundles. Bundles 0 and 2 leave a 24 KiB hole; 0 and 1 touch.
        const int stride = 24 * 1024;
        Assert.Equal(R(new ReadRange(0, 2 * stride, 0, 2)), Plan(0, stride, stride, [0, 1], maxGap: 0));
        Assert.Equal(R(new ReadRange(0, stride, 0, 1), new ReadRange(2 * stride, stride, 1, 1)), Plan(0, stride, stride, [0, 2], maxGap: 16 * 1024));
        Assert.Equal(R(new ReadRange(0, stride, 0, 1), new ReadRange(2 * stride, stride, 1, 1)), Plan(0, stride, stride, [0, 2], maxGap: stride - 1));
        Assert.Equal(R(new ReadRange(0, 3 * stride, 0, 2)), Plan(0, stride, stride, [0, 2], maxGap: stride));
        // A padded stride: the aligned gap is what counts, not the stride.
        var padded = Plan(0, 8192, 100, [0, 1, 3], maxGap: 4096);
        Assert.Equal(R(new ReadRange(0, 12288, 0, 2), new ReadRange(3 * 8192, 4096, 2, 1)), padded);
    }

    [Fact]
    public void MaxChunkBoundsCoalescedRanges()
    {
        int[] all = Enumerable.Range(0, 100).ToArray();
        var plan = Plan(0, 4096, 4096, all, maxChunk: 64 * 1024);
        Assert.Equal(7, plan.Length);
        Assert.All(plan[..6], r => Assert.Equal(64 * 1024, r.Length));
        Assert.Equal(4 * 4096, plan[6].Length);
        // Small bundles straddling a chunk boundary: neighbouring ranges then share that block (checked in CheckInvariants).
        var small = Plan(0, 768, 700, Enumerable.Range(0, 1000).ToArray(), maxChunk: 16 * 1024);
        Assert.Contains(Enumerable.Range(1, small.Length - 1), i => small[i].Offset == small[i - 1].End - A);
        var tiny = Plan(0, 100, 100, Enumerable.Range(0, 50).ToArray(), maxChunk: 4096);
        Assert.Equal(R(new ReadRange(0, 4096, 0, 40), new ReadRange(0, 8192, 40, 1), new ReadRange(4096, 4096, 41, 9)), tiny);
    }

    [Fact]
    public void HugeBundleGetsItsOwnRangeRoundedToAlignment()
    {
        const int bytes = 300 * 1024 + 100;
        const long stride = 301 * 1024;
        var plan = Plan(4096, stride, bytes, [0, 1, 2, 7], maxChunk: 128 * 1024, maxGap: 1 << 20);
        Assert.Equal(4, plan.Length);
        Assert.All(plan, r => Assert.Equal(1, r.BundleCount));
        Assert.Equal(new ReadRange(4096, (int)ReadPlanner.AlignUp(bytes), 0, 1), plan[0]);
    }

    [Fact]
    public void UnalignedStartsAreWidenedToWholeBlocks()
    {
        // A bundle at an offset that is not a multiple of 4 KiB (e.g. a stride of 768) spans two blocks.
        var plan = Plan(100, 768, 768, [5], maxGap: 0);
        Assert.Equal(R(new ReadRange(0, 8192, 0, 1)), plan);
    }

    [Fact]
    public void RandomPlansKeepEveryInvariant()
    {
        var random = new Random(1234);
        for (int trial = 0; trial < 2000; trial++)
        {
            int bytes = random.Next(4) switch { 0 => random.Next(1, 200), 1 => 768, 2 => 24 * 1024, _ => random.Next(1, 200_000) };
            long stride = random.Next(2) == 0 ? bytes : bytes + 64 * random.Next(0, 100);
            long first = random.Next(3) == 0 ? random.Next(0, 1 << 20) : 4096L * random.Next(0, 1 << 16);
            int count = random.Next(0, 300);
            double density = random.NextDouble();
            var list = new List<int>();
            for (int i = 0; list.Count < count && i < 100_000; i++)
                if (random.NextDouble() < density) list.Add(i);
            int maxChunk = A * random.Next(1, 64);
            int maxGap = random.Next(3) == 0 ? 0 : random.Next(0, 100_000);
            Plan(first, stride, bytes, list.ToArray(), maxChunk, maxGap);
        }
    }

    [Fact]
    public void DefaultsAreAlignedAndPlausible()
    {
        Assert.Equal(0, ReadPlanner.DefaultMaxChunkBytes % A);
        Assert.True(ReadPlanner.DefaultMaxChunkBytes >= 32 * 1024, "the paper: chunks of at least 32 KiB");
        Assert.True(ReadPlanner.DefaultMaxGapBytes < ReadPlanner.DefaultMaxChunkBytes);
    }

    [Fact]
    public void BadArgumentsAreRejected()
    {
        var ranges = new ReadRange[4];
        Assert.Throws<ArgumentException>(() => ReadPlanner.Plan(0, 768, 768, [3, 1], ranges));
        Assert.Throws<ArgumentException>(() => ReadPlanner.Plan(0, 768, 768, [-1, 1], ranges));
        Assert.Throws<ArgumentException>(() => ReadPlanner.Plan(0, 768, 768, [1, 2, 3, 4, 5], ranges));
        Assert.Throws<ArgumentOutOfRangeException>(() => ReadPlanner.Plan(0, 768, 768, [1], ranges, maxChunkBytes: 5000));
        Assert.Throws<ArgumentOutOfRangeException>(() => ReadPlanner.Plan(0, 768, 0, [1], ranges));
        Assert.Throws<ArgumentOutOfRangeException>(() => ReadPlanner.Plan(-4096, 768, 768, [1], ranges));
        Assert.Throws<ArgumentOutOfRangeException>(() => ReadPlanner.Plan(0, 768, 768, [1], ranges, maxGapBytes: -1));
    }
}
