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
