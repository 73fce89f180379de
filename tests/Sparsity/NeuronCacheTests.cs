using AotFlash.Flash;
using AotFlash.Sparsity;

namespace AotFlash.Tests.Sparsity;

/// <summary>
/// <see cref="NeuronCache"/>: sliding-window semantics, LRU eviction under capacity pressure, index and row-byte
/// consistency against a simple model over long random sequences, zero allocation per token, and the DRAM accounting
/// of the matrix. Every row the cache hands out is filled with a pattern unique to its neuron (as the flash reader
/// would fill it), so a delete-by-swap that forgets to copy the bytes, or copies the wrong row, is caught.
/// </summary>
public sealed unsafe class NeuronCacheTests
{
    // ---------------------------------------------------------------- helpers

    /// <summary>A cache plus the per-neuron byte patterns its rows must hold.</summary>
    private sealed class Harness : IDisposable
    {
        public readonly NeuronCache Cache;
        public readonly DramAccount Account = new();
        public readonly byte[][] Patterns;
        public readonly int[] Missing, MissingRows;

        public Harness(int neurons, int capacity, long rowBytes, int window)
        {
            Cache = new NeuronCache(neurons, capacity, rowBytes, window, Account);
            Patterns = new byte[neurons][];
            for (int n = 0; n < neurons; n++)
            {
                var p = new byte[rowBytes];
                uint h = (uint)n * 0x9E3779B1u + 0x7F4A7C15u;
                for (int i = 0; i < p.Length; i++)
                {
                    h ^= h << 13; h ^= h >> 17; h ^= h << 5;
                    p[i] = (byte)(h ^ (uint)n);
                }
                Patterns[n] = p;
            }
            Missing = new int[capacity + 8];
            MissingRows = new int[capacity + 8];
        }

        /// <summary>Updates and fills the reserved rows as the reader would; returns the missing neurons.</summary>
        public int[] Step(long token, params int[] active)
        {
            int m = Cache.Update(active, token, Missing, MissingRows);
            for (int i = 0; i < m; i++) Fill(MissingRows[i], Missing[i]);
            return Missing[..m];
        }

        public void Fill(int row, int neuron) => Patterns[neuron].CopyTo(new Span<byte>(Cache.Row(row), (int)Cache.RowBytes));

        public HashSet<int> Cached()
        {
            var s = new HashSet<int>();
            for (int r = 0; r < Cache.Count; r++) s.Add(Cache.NeuronAt(r));
            return s;
        }

        /// <summary>Both indexes are inverse to each other and every row holds its neuron's bytes.</summary>
        public void AssertConsistent(string where)
        {
            var c = Cache;
            Assert.InRange(c.Count, 0, c.Capacity);
            var seen = new bool[c.Neurons];
            for (int r = 0; r < c.Count; r++)
            {
                int n = c.NeuronAt(r);
                // Messages are built only on failure: this runs for every row of every step.
                if ((uint)n >= (uint)c.Neurons) Assert.Fail($"{where}: row {r} holds invalid neuron {n}");
                if (seen[n]) Assert.Fail($"{where}: neuron {n} cached twice");
                seen[n] = true;
                if (c.RowOf(n) != r) Assert.Fail($"{where}: RowOf({n}) = {c.RowOf(n)}, NeuronAt({r}) = {n}");
                if (!new ReadOnlySpan<byte>(c.Row(r), (int)c.RowBytes).SequenceEqual(Patterns[n]))
                    Assert.Fail($"{where}: row {r} does not hold the bytes of neuron {n}");
            }
            for (int n = 0; n < c.Neurons; n++)
                if (!seen[n] && c.RowOf(n) != -1) Assert.Fail($"{where}: neuron {n} not in any row but RowOf = {c.RowOf(n)}");
        }

        public void Dispose() => Cache.Dispose();
    }

    private static void AssertSet(IEnumerable<int> expected, HashSet<int> actual, string where)
    {
        var e = new SortedSet<int>(expected);
        Assert.True(e.SetEquals(actual), $"{where}: expected {{{string.Join(",", e)}}}, cached {{{string.Join(",", new SortedSet<int>(actual))}}}");
    }

    // ---------------------------------------------------------------- window semantics

    [Fact]
    public void WindowOne_CacheIsExactlyTheCurrentActiveSet()
    {
        using var h = new Harness(neurons: 32, capacity: 32, rowBytes: 24, window: 1);
        int[][] sets = [[1, 2, 3], [3, 4], [], [9, 8, 7, 1], [1], [0, 31, 16], [16, 0, 31], [5]];
        var prev = new HashSet<int>();
        for (int t = 0; t < sets.Length; t++)
        {
            int[] missing = h.Step(t, sets[t]);
            AssertSet(sets[t], h.Cached(), $"t={t}");
            Assert.Equal(sets[t].Length, h.Cache.Count);
            Assert.Equal(sets[t].Where(n => !prev.Contains(n)).Order(), missing);
            h.AssertConsistent($"t={t}");
            prev = [.. sets[t]];
        }
    }

    [Fact]
    public void WindowFour_NeuronStaysThreeMoreTokens_GoneAtTheFourth()
    {
        using var h = new Harness(neurons: 64, capacity: 64, rowBytes: 40, window: 4);
        h.Step(10, 7, 20);
        for (long t = 11; t <= 13; t++)
        {
            int[] missing = h.Step(t, 30 + (int)t);          // something else active each token
            Assert.Equal([30 + (int)t], missing);
            Assert.True(h.Cache.RowOf(7) >= 0, $"neuron 7 (active at 10) must still be cached at {t}");
            h.AssertConsistent($"t={t}");
        }
        AssertSet([7, 20, 41, 42, 43], h.Cached(), "t=13");
        h.Step(14, 44);
        Assert.Equal(-1, h.Cache.RowOf(7));
        Assert.Equal(-1, h.Cache.RowOf(20));
        AssertSet([41, 42, 43, 44], h.Cached(), "t=14");
        h.AssertConsistent("t=14");

        // Re-activating refreshes: 41 active at 11 and again at 15 stays through 18.
        h.Step(15, 41);
        AssertSet([41, 42, 43, 44], h.Cached(), "t=15");
        h.Step(16); h.Step(17); h.Step(18);
        AssertSet([41], h.Cached(), "t=18");
        h.Step(19);
        Assert.Equal(0, h.Cache.Count);
        h.AssertConsistent("t=19");
    }

    [Fact]
    public void TokenGap_EvictsByTokenNumberNotByCallCount()
    {
        using var h = new Harness(neurons: 16, capacity: 16, rowBytes: 8, window: 4);
        h.Step(0, 1, 2);
        h.Step(3, 3);                      // 1, 2 active at 0 are still inside 0..3
        AssertSet([1, 2, 3], h.Cached(), "t=3");
        h.Step(5, 4);                      // window 2..5: 1, 2 out, 3 in
        AssertSet([3, 4], h.Cached(), "t=5");
        h.Step(100, 5);
        AssertSet([5], h.Cached(), "t=100");
        h.AssertConsistent("t=100");
    }

    [Fact]
    public void HitsMissesAndMissingRows()
    {
        using var h = new Harness(neurons: 100, capacity: 100, rowBytes: 16, window: 2);
        Assert.Equal([3, 50, 99], h.Step(0, 99, 3, 50));          // ascending regardless of input order
        Assert.Equal([0, 1, 2], h.MissingRows[..3]);
        Assert.Equal((0L, 3L), (h.Cache.Hits, h.Cache.Misses));
        Assert.Equal([4, 60], h.Step(1, 60, 50, 4, 3));
        Assert.Equal([3, 4], h.MissingRows[..2]);                 // nothing freed: appended at Count
        Assert.Equal((2L, 5L), (h.Cache.Hits, h.Cache.Misses));
        // t=2: 99 (last used at 0) is still in DRAM from the window 0..1, so reactivating it is a hit, not a reread.
        Assert.Empty(h.Step(2, 99, 60));
        Assert.Equal((4L, 5L), (h.Cache.Hits, h.Cache.Misses));
        AssertSet([3, 4, 50, 60, 99], h.Cached(), "t=2");
        // t=4: the window is 3..4; 3, 4, 50 (last used at 1) and 99, 60 (at 2) all fall out; 3 at t=5 is a miss.
        Assert.Empty(h.Step(4));
        Assert.Equal(0, h.Cache.Count);
        Assert.Equal([3], h.Step(5, 3));
        Assert.Equal((4L, 6L), (h.Cache.Hits, h.Cache.Misses));
        AssertSet([3], h.Cached(), "t=5");
        h.AssertConsistent("t=5");
    }

    // ---------------------------------------------------------------- delete by swap

    [Fact]
    public void Delete_MovesLastRowIntoHole_CopiesBytes_FixesBothIndexes()
    {
        using var h = new Harness(neurons: 8, capacity: 4, rowBytes: 37, window: 1);
        h.Step(0, 0, 1, 2, 3);                                    // rows 0..3 = neurons 0..3
        Assert.Equal(0L, h.Cache.RowsMoved);
        h.Step(1, 1, 3);                                          // holes at rows 0 and 2; row 3 (neuron 3) -> row 0
        Assert.Equal(1L, h.Cache.RowsMoved);
        Assert.Equal(2, h.Cache.Count);
        Assert.Equal(0, h.Cache.RowOf(3));
        Assert.Equal(3, h.Cache.NeuronAt(0));
        Assert.Equal(1, h.Cache.RowOf(1));
        Assert.Equal(-1, h.Cache.RowOf(0));
        Assert.Equal(-1, h.Cache.RowOf(2));
        h.AssertConsistent("t=1");                               // row 0 holds neuron 3's bytes

        // Evicting the tail rows themselves copies nothing.
        h.Step(2, 3, 5, 6);                                       // 1 (row 1) out; rows: 3, 5, 6
        Assert.Equal(1L, h.Cache.RowsMoved);
        h.Step(3, 3);                                             // 5, 6 (rows 1, 2 = the last rows) out
        Assert.Equal(1L, h.Cache.RowsMoved);
        AssertSet([3], h.Cached(), "t=3");
        h.AssertConsistent("t=3");
    }

    // ---------------------------------------------------------------- capacity pressure

    [Fact]
    public void CapacityPressure_EvictsLeastRecentlyUsedInactiveNeurons()
    {
        using var h = new Harness(neurons: 16, capacity: 4, rowBytes: 12, window: 10);
        h.Step(0, 0); h.Step(1, 1); h.Step(2, 2); h.Step(3, 3);
        AssertSet([0, 1, 2, 3], h.Cached(), "t=3");
        Assert.Equal([4], h.Step(4, 4, 0));                       // 0 refreshed; LRU inactive is 1
        AssertSet([0, 2, 3, 4], h.Cached(), "t=4");
        Assert.Equal([5, 6], h.Step(5, 6, 5));                    // evicts 2 then 3
        AssertSet([0, 4, 5, 6], h.Cached(), "t=5");
        Assert.Equal([1, 2, 3, 7], h.Step(6, 1, 2, 3, 7));        // active == capacity: everything else goes
        AssertSet([1, 2, 3, 7], h.Cached(), "t=6");
        h.AssertConsistent("t=6");
    }

    [Fact]
    public void CapacityPressure_TiesGoByOrderOfUse()
    {
        using var h = new Harness(neurons: 16, capacity: 4, rowBytes: 4, window: 100);
        h.Step(0, 0, 1, 2, 3);
        h.Step(1, 3, 1);                                          // LRU order now 0, 2 (t0) then 3, 1 (hits of t1, in input order)
        h.Step(2, 4);                                             // evicts 0
        AssertSet([1, 2, 3, 4], h.Cached(), "t=2");
        h.Step(3, 5, 6);                                          // evicts 2, then 3 (used before 1 within t1)
        AssertSet([1, 4, 5, 6], h.Cached(), "t=3");
        h.AssertConsistent("t=3");
    }

    [Fact]
    public void MoreActiveThanCapacity_Throws_AndChangesNothing()
    {
        using var h = new Harness(neurons: 16, capacity: 4, rowBytes: 8, window: 2);
        h.Step(0, 1, 2);
        var ex = Assert.Throws<InvalidOperationException>(() => h.Cache.Update([1, 2, 3, 4, 5], 1, h.Missing, h.MissingRows));
        Assert.Contains("5 neurons are active", ex.Message);
        Assert.Contains("only 4 rows", ex.Message);
        Assert.Equal((0L, 2L), (h.Cache.Hits, h.Cache.Misses));
        AssertSet([1, 2], h.Cached(), "after throw");
        h.AssertConsistent("after throw");
        h.Step(1, 2, 3, 4, 5);                                    // the same token number is still accepted
        AssertSet([2, 3, 4, 5], h.Cached(), "t=1");              // 1 is inside the window but LRU and inactive
        h.AssertConsistent("t=1");
    }

    [Fact]
    public void InvalidArguments_Throw_AndChangeNothing()
    {
        using var h = new Harness(neurons: 16, capacity: 8, rowBytes: 8, window: 2);
        h.Step(5, 1, 2, 3);
        var c = h.Cache;
        int[] small = new int[1];
        Assert.Throws<ArgumentException>(() => c.Update([4], 5, h.Missing, h.MissingRows));          // token not after 5
        Assert.Throws<ArgumentException>(() => c.Update([4], 4, h.Missing, h.MissingRows));
        Assert.Throws<ArgumentOutOfRangeException>(() => c.Update([4, 16], 6, h.Missing, h.MissingRows));
        Assert.Throws<ArgumentOutOfRangeException>(() => c.Update([-1], 6, h.Missing, h.MissingRows));
        Assert.Throws<ArgumentException>(() => c.Update([4, 1, 4], 6, h.Missing, h.MissingRows));  // duplicate
        Assert.Throws<ArgumentException>(() => c.Update([4, 5], 6, small, h.MissingRows));          // spans too short
        Assert.Throws<ArgumentException>(() => c.Update([4, 5], 6, h.Missing, small));
        Assert.Throws<ArgumentOutOfRangeException>(() => c.Update([], -1, h.Missing, h.MissingRows));
        Assert.Equal((0L, 3L), (c.Hits, c.Misses));
        AssertSet([1, 2, 3], h.Cached(), "after throws");
        h.AssertConsistent("after throws");

        Assert.Equal([4], h.Step(6, 4, 1));                       // the short span suffices when only one is missing
        Assert.Equal(1, c.Update([4, 9], 7, new int[1], new int[1]));
        Assert.Throws<ArgumentOutOfRangeException>(() => c.Row(c.Count));
        Assert.Throws<ArgumentOutOfRangeException>(() => c.NeuronAt(-1));
        Assert.Throws<ArgumentOutOfRangeException>(() => c.RowOf(16));
    }

    [Fact]
    public void Constructor_RejectsBadShapes()
    {
        var a = new DramAccount();
        Assert.Throws<ArgumentOutOfRangeException>(() => new NeuronCache(0, 1, 8, 1, a));
        Assert.Throws<ArgumentOutOfRangeException>(() => new NeuronCache(10, 0, 8, 1, a));
        Assert.Throws<ArgumentOutOfRangeException>(() => new NeuronCache(10, 11, 8, 1, a));
        Assert.Throws<ArgumentOutOfRangeException>(() => new NeuronCache(10, 5, 0, 1, a));
        Assert.Throws<ArgumentOutOfRangeException>(() => new NeuronCache(10, 5, 8, 0, a));
        Assert.Throws<ArgumentOutOfRangeException>(() => new NeuronCache(10, 5, long.MaxValue / 2, 1, a));
        Assert.Throws<ArgumentNullException>(() => new NeuronCache(10, 5, 8, 1, null!));
        Assert.Equal(0, a.Current);
    }

    // ---------------------------------------------------------------- Clear and Dispose

    [Fact]
    public void Clear_EmptiesTheCache_AndTokensMayRestart()
    {
        using var h = new Harness(neurons: 32, capacity: 10, rowBytes: 8, window: 4);
        h.Step(7, 1, 2, 3);
        h.Step(8, 4, 5);
        h.Cache.Clear();
        Assert.Equal(0, h.Cache.Count);
        h.AssertConsistent("after Clear");
        Assert.Equal((0L, 5L), (h.Cache.Hits, h.Cache.Misses)); // statistics are lifetime totals
        Assert.Equal([1, 5], h.Step(0, 5, 1));
        Assert.Equal([0, 1], h.MissingRows[..2]);
        AssertSet([1, 5], h.Cached(), "after restart");
        h.AssertConsistent("after restart");
    }

    [Fact]
    public void DramAccount_SeesTheMatrix_AndGetsItBackOnDispose()
    {
        var account = new DramAccount();
        account.Charge(1000, "something else the engine holds");
        var cache = new NeuronCache(neurons: 1000, capacity: 300, rowBytes: 4096, window: 4, account);
        long held = cache.AllocatedBytes;
        Assert.Equal(NeuronCache.BytesFor(1000, 300, 4096), held);
        Assert.True(held >= 300L * 4096, $"{held} bytes charged for a 300 x 4096 matrix");
        Assert.True(held <= 300L * 4096 + 1000L * 64 + 300L * 64, $"index too large: {held - 300L * 4096} bytes");
        Assert.Equal(1000 + held, account.Current);

        int m = cache.Update([5, 700, 999], 0, new int[3], new int[3]);
        Assert.Equal(3, m);
        for (int r = 0; r < cache.Count; r++) Assert.Equal(0, (nint)cache.Row(r) % 64);
        Assert.Equal(4096L, cache.Row(1) - cache.Row(0));

        cache.Dispose();
        Assert.Equal(1000, account.Current);
        Assert.Equal(1000 + held, account.Peak);
        Assert.Equal(0, cache.AllocatedBytes);
        cache.Dispose();                                          // idempotent
        Assert.Equal(1000, account.Current);
        Assert.Throws<ObjectDisposedException>(() => cache.Update([1], 1, new int[1], new int[1]));
        Assert.Throws<ObjectDisposedException>(() => cache.RowOf(1));
    }

    [Fact]
    public void DramBudget_TooSmall_ThrowsAndHoldsNothing()
    {
        long total = NeuronCache.BytesFor(500, 100, 256);
        // Too small for the matrix itself, and big enough for the matrix but not the index (the matrix is given back).
        foreach (long limit in new[] { 100L * 256 - 1, total - 1 })
        {
            var account = new DramAccount(limit);
            var ex = Assert.Throws<BadInputException>(() => new NeuronCache(500, 100, 256, 4, account));
            Assert.Contains("neuron cache", ex.Message);
            Assert.Equal(0, account.Current);
        }
        var exact = new DramAccount(total);
        using (var cache = new NeuronCache(500, 100, 256, 4, exact)) Assert.Equal(total, exact.Current);
        Assert.Equal(0, exact.Current);
    }

    // ---------------------------------------------------------------- no allocation per token

    [Fact]
    public void Update_DoesNotAllocate()
    {
        const int neurons = 4096, capacity = 1200, active = 300;
        using var h = new Harness(neurons, capacity, rowBytes: 64, window: 4);
        var rng = new Random(11);
        var sets = new int[64][];
        var prev = new List<int>();
        for (int s = 0; s < sets.Length; s++)
        {
            var next = new HashSet<int>(prev.Where(_ => rng.NextDouble() < 0.7));
            while (next.Count < active) next.Add(rng.Next(neurons));
            sets[s] = [.. next.OrderBy(_ => rng.Next())];
            prev = [.. next];
        }
        int[] missing = h.Missing, rows = h.MissingRows;
        long token = 0, total = 0;
        for (int i = 0; i < 500; i++) total += h.Cache.Update(sets[i % sets.Length], token++, missing, rows); // warm up (JIT)

        // An allocation in Update shows in every round; the runtime itself (tiering under a busy suite) once put
        // 2 KiB on this thread in one round, so a round without any bytes is what proves it.
        var allocated = new List<long>();
        for (int round = 0; round < 3 && (allocated.Count == 0 || allocated[^1] != 0); round++)
        {
            long before = GC.GetAllocatedBytesForCurrentThread();
            for (int i = 0; i < 2000; i++)
            {
                int m = h.Cache.Update(sets[i % sets.Length], token++, missing, rows);
                for (int j = 0; j < m; j++) *h.Cache.Row(rows[j]) = (byte)missing[j];
                total += m;
            }
            allocated.Add(GC.GetAllocatedBytesForCurrentThread() - before);
        }
        Assert.True(allocated[^1] == 0, $"bytes allocated per round of 2000 updates: {string.Join(", ", allocated)}");
        Assert.True(total > 0 && h.Cache.RowsMoved > 0, "the loop must exercise misses and deletes");
    }

    // ---------------------------------------------------------------- random sequences against a model

    public static TheoryData<int, int, int, int, int, int, int> RandomConfigs => new()
    {
        // neurons, capacity, rowBytes, window, maxActive, steps, seed
        { 64, 64, 16, 1, 32, 3000, 1 },      // k = 1, never full
        { 300, 300, 24, 4, 40, 4000, 2 },    // k = 4, capacity = neurons
        { 300, 80, 13, 4, 40, 4000, 3 },     // k = 4 under pressure, odd row size
        { 1000, 150, 64, 8, 60, 4000, 4 },   // wide layer, small cache
        { 200, 30, 7, 2, 30, 3000, 5 },      // active can fill the whole cache
        { 500, 120, 100, 16, 50, 3000, 6 },  // long window, mostly pressure-driven
    };

    // A token's misses go into the rows its evictions freed, so a token that evicts as many neurons as it misses
    // copies no row; a freed row that no miss takes is filled from the end.
    [Fact]
    public void MissesTakeTheRowsEvictionsFreed()
    {
        using var h = new Harness(neurons: 16, capacity: 8, rowBytes: 4096, window: 1);
        h.Step(0, 0, 1, 2, 3);                                    // rows 0..3 = neurons 0..3
        Assert.Equal([4, 9], h.Step(1, 9, 1, 4, 3));              // 0 and 2 out: their rows 0 and 2 go to 4 and 9
        Assert.Equal([0, 2], h.MissingRows[..2]);
        Assert.Equal(0L, h.Cache.RowsMoved);
        Assert.Equal(4, h.Cache.Count);
        h.AssertConsistent("t=1");
        Assert.Equal([12], h.Step(2, 12, 3));                     // 1, 4, 9 out (rows 1, 0, 2): 12 takes row 0,
        Assert.Equal([0], h.MissingRows[..1]);                    // 3 (row 3) moves to row 1, row 2 is past Count
        Assert.Equal(1L, h.Cache.RowsMoved);
        Assert.Equal((1, 0), (h.Cache.RowOf(3), h.Cache.RowOf(12)));
        Assert.Equal(2, h.Cache.Count);
        h.AssertConsistent("t=2");
    }

    [Theory, MemberData(nameof(RandomConfigs))]
    public void RandomSequences_MatchModel(int neurons, int capacity, int rowBytes, int window, int maxActive, int steps, int seed)
    {
        using var h = new Harness(neurons, capacity, rowBytes, window);
        var c = h.Cache;
        var rng = new Random(seed);
        var model = new Dictionary<int, long>();             // cached neuron -> token that last used it
        var current = new List<int>();
        long token = 0, hits = 0, misses = 0, moved = 0;
        int pressured = 0, evictedTotal = 0;

        for (int step = 0; step < steps; step++)
        {
            string where = $"seed {seed} step {step} token {token}";

            if (rng.NextDouble() < 0.002)
            {
                c.Clear();
                model.Clear();
                current.Clear();
                token = rng.Next(3);
                h.AssertConsistent(where + " after Clear");
            }

            // Active set: most of the previous one persists (so there are hits), the rest is new.
            int size = rng.Next(maxActive + 1);
            var next = new HashSet<int>();
            foreach (int n in current) if (next.Count < size && rng.NextDouble() < 0.6) next.Add(n);
            while (next.Count < size) next.Add(rng.Next(neurons));
            int[] active = [.. next.OrderBy(_ => rng.Next())];

            // Now and then a call that must throw and leave everything as it was.
            if (rng.NextDouble() < 0.01)
            {
                int bad = rng.Next(3);
                if (bad == 0 && capacity < neurons)
                {
                    var tooMany = new HashSet<int>(active);
                    while (tooMany.Count <= capacity) tooMany.Add(rng.Next(neurons));
                    Assert.Throws<InvalidOperationException>(() => c.Update([.. tooMany], token, h.Missing, h.MissingRows));
                }
                else if (bad == 1 && active.Length > 0)
                    Assert.Throws<ArgumentException>(() => c.Update([.. active, active[0]], token, h.Missing, h.MissingRows));
                else
                    Assert.Throws<ArgumentOutOfRangeException>(() => c.Update([.. active, neurons], token, h.Missing, h.MissingRows));
                Assert.Equal((hits, misses, moved), (c.Hits, c.Misses, c.RowsMoved));
                Assert.Equal(model.Count, c.Count);
                h.AssertConsistent(where + " after a rejected call");
            }

            // Model: expected misses, then refresh, window eviction.
            int[] expectedMissing = [.. active.Where(n => !model.ContainsKey(n)).Order()];
            var rowsBefore = model.Keys.ToDictionary(n => n, n => c.RowOf(n));
            int countBefore = c.Count;
            foreach (int n in active) model[n] = token;
            foreach (int n in model.Keys.ToList())
                if (model[n] <= token - window) model.Remove(n);

            int m = c.Update(active, token, h.Missing, h.MissingRows);
            for (int i = 0; i < m; i++) h.Fill(h.MissingRows[i], h.Missing[i]);

            Assert.Equal(expectedMissing, h.Missing[..m]);
            hits += active.Length - m;
            misses += m;
            Assert.Equal((hits, misses), (c.Hits, c.Misses));

            var cached = h.Cached();
            int over = model.Count - capacity;
            if (over > 0)
            {
                // Under pressure: exactly `over` neurons beyond the window's went, none active, and each is at least
                // as old as every inactive neuron kept (LRU up to ties).
                pressured++;
                var activeSet = new HashSet<int>(active);
                var gone = model.Keys.Where(n => !cached.Contains(n)).ToList();
                Assert.True(gone.Count == over, $"{where}: {gone.Count} LRU evictions, expected {over}");
                Assert.True(gone.All(n => !activeSet.Contains(n)), $"{where}: an active neuron was evicted");
                var keptInactive = model.Keys.Where(n => cached.Contains(n) && !activeSet.Contains(n)).ToList();
                if (keptInactive.Count > 0)
                    Assert.True(gone.Max(n => model[n]) <= keptInactive.Min(n => model[n]), $"{where}: evicted a more recently used neuron");
                foreach (int n in gone) model.Remove(n);
            }
            AssertSet(model.Keys, cached, where);
            Assert.Equal(model.Count, c.Count);

            // The misses take the rows freed below the new count, ascending, then rows from the old count on; rows
            // move only into freed rows below the new count that no miss took.
            var evictedRows = rowsBefore.Where(kv => !model.ContainsKey(kv.Key)).Select(kv => kv.Value).ToList();
            var freedBelow = evictedRows.Where(r => r < c.Count).Order().ToList();
            int[] expectedRows = [.. freedBelow.Take(m), .. Enumerable.Range(countBefore, Math.Max(0, m - freedBelow.Count))];
            Assert.True(expectedRows.AsSpan().SequenceEqual(h.MissingRows[..m]), $"{where}: missing rows [{string.Join(", ", h.MissingRows[..m].ToArray())}], expected [{string.Join(", ", expectedRows)}]");
            moved += Math.Max(0, freedBelow.Count - m);
            evictedTotal += evictedRows.Count;
            Assert.Equal(moved, c.RowsMoved);

            h.AssertConsistent(where);
            current = [.. active];
            token += rng.NextDouble() < 0.9 ? 1 : 1 + rng.Next(window + 2);
        }

        Assert.True(hits > 0 && misses > 0 && evictedTotal > 0, "the sequence must exercise hits, misses and evictions");
        if (capacity < neurons && capacity < window * maxActive) Assert.True(pressured > 0, "the sequence must exercise capacity pressure");
    }
}
