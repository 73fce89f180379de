using AotFlash.Threading;

namespace AotFlash.Tests.Threading;

public sealed class ThreadTeamTests
{
    private sealed class CountWork(int items) : ITeamWork
    {
        public readonly int[] Hits = new int[items];
        public void Execute(int member, int members)
        {
            var (start, end) = ThreadTeam.Share(Hits.Length, member, members, grain: 4);
            for (int i = start; i < end; i++) Hits[i]++;
        }
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(5)]
    public void EveryItemIsDoneExactlyOncePerRun(int size)
    {
        using var team = new ThreadTeam(size);
        foreach (int items in new[] { 0, 1, 3, 4, 17, 1001 })
        {
            var work = new CountWork(items);
            for (int run = 0; run < 50; run++) team.Run(work);
            Assert.All(work.Hits, h => Assert.Equal(50, h));
        }
    }

    /// <summary>Members take items from a common counter until none are left; each records who took what.</summary>
    private sealed class GatedWork(int items, ManualResetEventSlim gate) : ITeamWork
    {
        public readonly int[] TakenBy = Enumerable.Repeat(-1, items).ToArray();
        private int _next;
        public void Execute(int member, int members)
        {
            gate.Wait();
            for (int i; (i = Interlocked.Increment(ref _next) - 1) < TakenBy.Length;) TakenBy[i] = member;
        }
    }

    // Start hands the work to the other members and returns while they are still at it (held here by a gate); Wait
    // returns once they are done. The caller (member 0) takes no share.
    [Fact]
    public void StartReturnsBeforeTheWorkIsDoneAndWaitAfter()
    {
        using var team = new ThreadTeam(3);
        using var gate = new ManualResetEventSlim(false);
        for (int run = 0; run < 20; run++)
        {
            gate.Reset();
            var work = new GatedWork(100, gate);
            team.Start(work);
            Assert.All(work.TakenBy, m => Assert.Equal(-1, m));
            Assert.Throws<InvalidOperationException>(() => team.Start(work));
            gate.Set();
            team.Wait();
            Assert.All(work.TakenBy, m => Assert.InRange(m, 1, 2));
        }
        // The team runs other work as before.
        var count = new CountWork(17);
        team.Run(count);
        Assert.All(count.Hits, h => Assert.Equal(1, h));
    }

    [Fact]
    public void ATeamOfOneRunsStartedWorkAtOnce()
    {
        using var team = new ThreadTeam(1);
        using var gate = new ManualResetEventSlim(true);
        var work = new GatedWork(10, gate);
        team.Start(work);
        Assert.All(work.TakenBy, m => Assert.Equal(0, m));
        team.Wait();
    }

    [Fact]
    public void SharesCoverTheRangeInGrains()
    {
        for (int members = 1; members <= 7; members++)
        {
            int covered = 0;
            for (int m = 0; m < members; m++)
            {
                var (start, end) = ThreadTeam.Share(103, m, members, grain: 4);
                Assert.Equal(covered, start);
                Assert.True(start % 4 == 0);
                covered = end;
            }
            Assert.Equal(103, covered);
        }
    }
}
