using System.Runtime.InteropServices;
using AotFlash.Flash;
using Microsoft.Win32.SafeHandles;

namespace AotFlash.Tests.Flash;

public sealed unsafe class FlashReaderTests : IDisposable
{
    private const int A = ReadPlanner.Alignment;
    private readonly List<string> _files = [];

    public void Dispose()
    {
        foreach (var f in _files) File.Delete(f);
    }

    /// <summary>A folder on a real disk: the temp folder unless it is tmpfs (which has no device under it), else the repository's.</summary>
    private static string RealDiskFolder()
    {
        foreach (var folder in new[] { Path.GetTempPath(), TestPaths.RepoRoot })
            if (Directory.Exists(folder) && !IsInMemory(folder)) return folder;
        return Path.GetTempPath();
    }

    private static bool IsInMemory(string folder)
    {
        string probe = Path.Combine(folder, $"aotflash-fstype-{Environment.ProcessId}-{Guid.NewGuid():N}");
        try
        {
            File.WriteAllBytes(probe, [1]);
            using var h = File.OpenHandle(probe);
            byte* statfs = stackalloc byte[256];
            if (Libc.fstatfs((int)h.DangerousGetHandle(), statfs) != 0) return false;
            uint type = (uint)*(long*)statfs;
            return type == (uint)Libc.TmpfsMagic || type == (uint)Libc.RamfsMagic;
        }
        catch (IOException) { return true; }
        catch (UnauthorizedAccessException) { return true; }
        finally { File.Delete(probe); }
    }

    /// <summary>Writes <paramref name="bytes"/> random bytes (seeded) to a new file in <paramref name="folder"/>; returns path and content.</summary>
    private (string Path, byte[] Content) WriteFile(string folder, int bytes, int seed = 42)
    {
        var content = new byte[bytes];
        new Random(seed).NextBytes(content);
        string path = Path.Combine(folder, $"aotflash-reader-{Environment.ProcessId}-{Guid.NewGuid():N}.bin");
        _files.Add(path);
        File.WriteAllBytes(path, content);
        return (path, content);
    }

    private static int[] RandomBundles(Random random, int total, double density)
    {
        var list = new List<int>();
        for (int i = 0; i < total; i++)
            if (random.NextDouble() < density) list.Add(i);
        return list.ToArray();
    }

    /// <summary>Reads <paramref name="bundles"/> into separate buffers with a guard band after each bundle and checks
    /// the bytes against the file content (padding between bundles is never copied).</summary>
    private static void ReadAndCompare(FlashReader reader, byte[] content, long baseOffset, long firstBundle, long stride, int bundleBytes, int[] bundles)
    {
        const int guard = 64;
        int slot = bundleBytes + guard;
        var account = new DramAccount();
        byte* buffer = (byte*)account.Allocate((long)slot * Math.Max(bundles.Length, 1), "test");
        try
        {
            new Span<byte>(buffer, slot * bundles.Length).Fill(0xCD);
            var destinations = new nint[bundles.Length];
            for (int k = 0; k < bundles.Length; k++) destinations[k] = (nint)(buffer + (long)k * slot);
            reader.ReadBundles(firstBundle, stride, bundleBytes, bundles, destinations);
            for (int k = 0; k < bundles.Length; k++)
            {
                long at = baseOffset + firstBundle + bundles[k] * stride;
                var got = new ReadOnlySpan<byte>(buffer + (long)k * slot, bundleBytes);
                if (!got.SequenceEqual(content.AsSpan((int)at, bundleBytes)))
                    Assert.Fail($"bundle {bundles[k]} (list entry {k}, file offset {at}) differs from the file");
                Assert.True(new ReadOnlySpan<byte>(buffer + (long)k * slot + bundleBytes, guard).IndexOfAnyExcept((byte)0xCD) < 0,
                            $"bytes written past bundle {bundles[k]}");
            }
        }
        finally { account.Free(buffer, (long)slot * Math.Max(bundles.Length, 1)); }
    }

    // With checksums, each bundle is checked as it arrives: the right ones pass, and a wrong one names its bundle, in a
    // read waited for at once as in one begun (BeginReadBundles returns with the reads in flight) and ended later
    // (EndRead waits for them; no other read may start meanwhile).
    [Theory]
    [InlineData(1)]
    [InlineData(4)]
    public void ChecksummedReadsNameTheBundleThatDoesNotMatch(int threads)
    {
        const int stride = 768, bytes = 700, count = 300;
        var (path, content) = WriteFile(RealDiskFolder(), 1 << 20);
        var checksums = new uint[count];
        for (int i = 0; i < count; i++) checksums[i] = Crc32C.Compute(content.AsSpan(i * stride, bytes));
        int[] bundles = [.. Enumerable.Range(0, count).Where(i => i % 3 != 1)];
        var account = new DramAccount();
        using var reader = FlashReader.Open(path, 0, threads, account, null);
        byte* buffer = (byte*)account.Allocate((long)bytes * count, "test");
        try
        {
            var destinations = bundles.Select(k => (nint)(buffer + (long)k * bytes)).ToArray();
            fixed (uint* crcs = checksums)
            {
                reader.ReadBundles(0, stride, bytes, bundles, destinations, crcs);
                foreach (int k in bundles)
                    Assert.True(new ReadOnlySpan<byte>(buffer + (long)k * bytes, bytes).SequenceEqual(content.AsSpan(k * stride, bytes)));
                checksums[200] ^= 1u << 7;
                uint* pinned = crcs;
                var e = Assert.Throws<FlashChecksumException>(() => reader.ReadBundles(0, stride, bytes, bundles, destinations, pinned));
                Assert.Equal(200, e.Neuron);
                // The reader stays usable after a failed call.
                checksums[200] ^= 1u << 7;
                reader.ReadBundles(0, stride, bytes, bundles, destinations, crcs);

                new Span<byte>(buffer, bytes * count).Clear();
                fixed (int* b = bundles)
                fixed (nint* d = destinations)
                {
                    Assert.Throws<InvalidOperationException>(reader.EndRead);
                    Assert.False(reader.BeginReadBundles(0, stride, bytes, b, d, 0, crcs));
                    Assert.True(reader.BeginReadBundles(0, stride, bytes, b, d, bundles.Length, crcs));
                    var page = (byte*)account.Allocate(4096, "test", 4096);
                    try { Assert.Throws<InvalidOperationException>(() => reader.ReadContiguous(0, 4096, page)); }
                    finally { account.Free(page, 4096); }
                    reader.EndRead();
                    Assert.True(reader.LastReadTicks > 0);
                    foreach (int k in bundles)
                        Assert.True(new ReadOnlySpan<byte>(buffer + (long)k * bytes, bytes).SequenceEqual(content.AsSpan(k * stride, bytes)));
                    checksums[200] ^= 1u << 7;
                    Assert.True(reader.BeginReadBundles(0, stride, bytes, b, d, bundles.Length, crcs));
                    Assert.Equal(200, Assert.Throws<FlashChecksumException>(reader.EndRead).Neuron);
                    checksums[200] ^= 1u << 7;
                }
                reader.ReadBundles(0, stride, bytes, bundles, destinations, crcs);
            }
        }
        finally { account.Free(buffer, (long)bytes * count); }
    }

    [SkippableFact]
    public void RealDiskReadsAreDirect()
    {
        var (path, _) = WriteFile(RealDiskFolder(), 64 * 1024);
        var warnings = new List<string>();
        using var reader = FlashReader.Open(path, 0, 2, new DramAccount(), warnings.Add);
        Skip.IfNot(reader.Direct, $"the file system under {Path.GetDirectoryName(path)} refused O_DIRECT: {string.Join("; ", warnings)}");
        Assert.Empty(warnings);
    }

    // Both ways of reading bundles: native AIO where the kernel has it (the default), and the I/O threads' pread.
    [Theory]
    [InlineData(1, true)]
    [InlineData(1, false)]
    [InlineData(2, true)]
    [InlineData(4, false)]
    [InlineData(8, true)]
    [InlineData(8, false)]
    public void RandomBundleSetsMatchTheFile(int threads, bool kernelAio)
    {
        // A payload-like file: 12 KiB of "executable" before the model, the flash layer 8 KiB into the model.
        const long baseOffset = 3 * A;
        const long layer = 2 * A;
        var (path, content) = WriteFile(RealDiskFolder(), 4 << 20);
        var account = new DramAccount();
        var random = new Random(threads);
        using (var reader = FlashReader.Open(path, baseOffset, threads, account, null, new ReaderOptions { UseKernelAio = kernelAio }))
        {
            if (!kernelAio) Assert.False(reader.UsesKernelAio);
            // dim 64 f32 (768-byte stride, a 700-byte copy shows padding is skipped) and dim 4096 f16 (24 KiB).
            foreach (var (stride, bytes, count) in new[] { (768L, 700, 4000), (768L, 768, 4000), (24 * 1024L, 24 * 1024, 150) })
                foreach (double density in new[] { 0.01, 0.1, 0.5, 1.0 })
                    ReadAndCompare(reader, content, baseOffset, layer, stride, bytes, RandomBundles(random, count, density));
            // A layer that does not start on a block boundary still reads only aligned blocks (in O_DIRECT mode the
            // reader refuses to issue a misaligned request, so success here shows none was).
            ReadAndCompare(reader, content, baseOffset, layer + 100, 768, 768, RandomBundles(random, 3000, 0.2));
            Assert.Equal(0, reader.BytesRead % A);
            Assert.True(reader.Requests > 0);
            Assert.True(account.Current >= threads * ReadPlanner.DefaultMaxChunkBytes);
        }
        Assert.Equal(0, account.Current);
    }

    [SkippableFact]
    public void BundlesOnARealDiskAreReadThroughKernelAio()
    {
        var (path, _) = WriteFile(RealDiskFolder(), 64 * 1024);
        using var reader = FlashReader.Open(path, 0, 2, new DramAccount(), null);
        Skip.IfNot(reader.Direct, "the file system refused O_DIRECT");
        Skip.IfNot(reader.UsesKernelAio, "this kernel or sandbox has no native AIO (io_setup failed)");
        Assert.True(reader.UsesKernelAio);
    }

    // One slot in flight (one I/O thread's 4 KiB staging, 4 KiB ranges): every range after the first is submitted by
    // the thread that takes completions, into the slot the last one freed. The bundles are the file's; a checksum
    // failure midway names its bundle, stops the ranges not begun, and leaves the reader usable.
    [SkippableFact]
    public void KernelAioRefillsItsSlotsRangeByRange()
    {
        const int bytes = 1000, count = 400;
        var (path, content) = WriteFile(RealDiskFolder(), 2 << 20);
        var account = new DramAccount();
        using var reader = FlashReader.Open(path, 0, 1, account, null, new ReaderOptions { MaxChunkBytes = A, MaxGapBytes = 0 });
        Skip.IfNot(reader.UsesKernelAio, "no native AIO here (O_DIRECT refused or io_setup failed)");
        var checksums = new uint[count];
        for (int i = 0; i < count; i++) checksums[i] = Crc32C.Compute(content.AsSpan(i * A, bytes));
        int[] bundles = [.. Enumerable.Range(0, count).Where(i => i % 5 != 2)];
        byte* buffer = (byte*)account.Allocate((long)bytes * count, "test");
        try
        {
            var destinations = bundles.Select(k => (nint)(buffer + (long)k * bytes)).ToArray();
            fixed (uint* crcs = checksums)
            {
                long requests = reader.Requests;
                reader.ReadBundles(0, A, bytes, bundles, destinations, crcs);
                Assert.Equal(bundles.Length, reader.Requests - requests);
                foreach (int k in bundles)
                    Assert.True(new ReadOnlySpan<byte>(buffer + (long)k * bytes, bytes).SequenceEqual(content.AsSpan(k * A, bytes)), $"bundle {k}");
                checksums[101] ^= 1;
                uint* pinned = crcs;
                Assert.Equal(101, Assert.Throws<FlashChecksumException>(() => reader.ReadBundles(0, A, bytes, bundles, destinations, pinned)).Neuron);
                checksums[101] ^= 1;
                new Span<byte>(buffer, bytes * count).Clear();
                reader.ReadBundles(0, A, bytes, bundles, destinations, crcs);
                foreach (int k in bundles)
                    Assert.True(new ReadOnlySpan<byte>(buffer + (long)k * bytes, bytes).SequenceEqual(content.AsSpan(k * A, bytes)), $"bundle {k}");
            }
        }
        finally { account.Free(buffer, (long)bytes * count); }
    }

    // Bundles of whole blocks packed without padding, destinations on blocks: ranges are read straight into the
    // destinations (vectored, gaps into a discard buffer), no staging copy. The bytes are the file's, the block after
    // each destination is untouched, and a checksum that does not match still names its bundle.
    [SkippableFact]
    public void WholeBlockBundlesAreReadStraightIntoAlignedDestinations()
    {
        const int bytes = 2 * A, count = 200;
        var (path, content) = WriteFile(RealDiskFolder(), count * bytes + A);
        var account = new DramAccount();
        using var reader = FlashReader.Open(path, 0, 2, account, null);
        Skip.IfNot(reader.UsesKernelAio, "no native AIO here (O_DIRECT refused or io_setup failed)");
        var checksums = new uint[count];
        for (int i = 0; i < count; i++) checksums[i] = Crc32C.Compute(content.AsSpan(i * bytes, bytes));
        const int slot = bytes + A; // a guard block after each destination
        byte* buffer = (byte*)account.Allocate((long)slot * count, "test", A);
        try
        {
            foreach (double density in new[] { 0.2, 0.6, 1.0 })
            {
                int[] bundles = RandomBundles(new Random((int)(density * 10)), count, density);
                new Span<byte>(buffer, slot * count).Fill(0xCD);
                var destinations = bundles.Select(k => (nint)(buffer + (long)k * slot)).ToArray();
                long before = reader.VectoredReads;
                fixed (uint* crcs = checksums)
                    reader.ReadBundles(0, bytes, bytes, bundles, destinations, crcs);
                Assert.True(reader.VectoredReads > before, "no range was read straight in");
                foreach (int k in bundles)
                {
                    Assert.True(new ReadOnlySpan<byte>(buffer + (long)k * slot, bytes).SequenceEqual(content.AsSpan(k * bytes, bytes)), $"bundle {k}");
                    Assert.True(new ReadOnlySpan<byte>(buffer + (long)k * slot + bytes, A).IndexOfAnyExcept((byte)0xCD) < 0, $"past bundle {k}");
                }
                checksums[bundles[^1]] ^= 1;
                fixed (uint* crcs = checksums)
                {
                    uint* pinned = crcs;
                    Assert.Equal(bundles[^1], Assert.Throws<FlashChecksumException>(() => reader.ReadBundles(0, bytes, bytes, bundles, destinations, pinned)).Neuron);
                }
                checksums[bundles[^1]] ^= 1;
            }
        }
        finally { account.Free(buffer, (long)slot * count); }
    }

    [Fact]
    public void CountsRequestsAndDeviceBytes()
    {
        var (path, content) = WriteFile(RealDiskFolder(), 1 << 20);
        using var reader = FlashReader.Open(path, 0, 2, new DramAccount(), null, new ReaderOptions { MaxGapBytes = 0, MaxChunkBytes = 64 * 1024 });
        // Two 24 KiB bundles far apart: two 24 KiB reads. Then 10 adjacent 768-byte bundles: one 8 KiB read.
        ReadAndCompare(reader, content, 0, 0, 24 * 1024, 24 * 1024, [1, 20]);
        Assert.Equal(2, reader.Requests);
        Assert.Equal(48 * 1024, reader.BytesRead);
        ReadAndCompare(reader, content, 0, 4 * A, 768, 768, Enumerable.Range(0, 10).ToArray());
        Assert.Equal(3, reader.Requests);
        Assert.Equal(56 * 1024, reader.BytesRead);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    public void WarmReadsAllocateNothing(int threads)
    {
        var (path, content) = WriteFile(RealDiskFolder(), 1 << 20);
        var account = new DramAccount();
        using var reader = FlashReader.Open(path, 0, threads, account, null);
        int[] bundles = RandomBundles(new Random(threads), 1300, 0.3);
        long bytes = bundles.Length * 768L;
        byte* buffer = (byte*)account.Allocate(bytes, "test");
        try
        {
            var destinations = new nint[bundles.Length];
            for (int k = 0; k < bundles.Length; k++) destinations[k] = (nint)(buffer + k * 768L);
            reader.ReadBundles(0, 768, 768, bundles, destinations);
            // A read that allocates does so every time; the runtime's own one-off work early in a test run (5 KB once,
            // seen when this test ran in the first second beside others) does not come back: up to three rounds of
            // ten reads, the last of which must allocate nothing.
            long allocated = 0;
            for (int round = 0; round < 3; round++)
            {
                long before = GC.GetAllocatedBytesForCurrentThread();
                for (int i = 0; i < 10; i++) reader.ReadBundles(0, 768, 768, bundles, destinations);
                allocated = GC.GetAllocatedBytesForCurrentThread() - before;
                if (allocated == 0) break;
            }
            Assert.Equal(0, allocated);
            Assert.True(new ReadOnlySpan<byte>(buffer + 768L * (bundles.Length - 1), 768).SequenceEqual(content.AsSpan(bundles[^1] * 768, 768)));
        }
        finally { account.Free(buffer, bytes); }
    }

    [SkippableFact]
    public void TmpfsFallsBackToBufferedReadsWithOneWarning()
    {
        Skip.IfNot(Directory.Exists("/dev/shm") && IsInMemory("/dev/shm"), "/dev/shm is not a tmpfs here");
        var (diskPath, content) = WriteFile(RealDiskFolder(), 2 << 20, seed: 9);
        string shmPath = Path.Combine("/dev/shm", Path.GetFileName(diskPath));
        _files.Add(shmPath);
        File.Copy(diskPath, shmPath);
        var warnings = new List<string>();
        var account = new DramAccount();
        using (var reader = FlashReader.Open(shmPath, A, 4, account, warnings.Add))
        {
            Assert.False(reader.Direct);
            var random = new Random(5);
            for (int i = 0; i < 3; i++)
                ReadAndCompare(reader, content, A, 0, 768, 700, RandomBundles(random, 2500, 0.3));
            ReadAndCompare(reader, content, A, 4 * A, 24 * 1024, 24 * 1024, RandomBundles(random, 70, 0.5));
        }
        var message = Assert.Single(warnings);
        Assert.Contains("O_DIRECT refused for " + shmPath, message);
        Assert.Contains("using buffered reads (timings include the page cache)", message);
        Assert.Equal(0, account.Current);
    }

    [Fact]
    public void BufferedModeOnRequestGivesTheSameBytesSilently()
    {
        var (path, content) = WriteFile(RealDiskFolder(), 1 << 20);
        var warnings = new List<string>();
        using var reader = FlashReader.Open(path, 0, 3, new DramAccount(), warnings.Add, new ReaderOptions { UseDirectIO = false });
        Assert.False(reader.Direct);
        Assert.Empty(warnings);
        ReadAndCompare(reader, content, 0, 100, 768, 700, RandomBundles(new Random(3), 1300, 0.4));
    }

    [Theory]
    [InlineData(1, 64 * 1024, true)]
    [InlineData(4, 64 * 1024, true)]
    [InlineData(4, 64 * 1024, false)]
    [InlineData(3, 4096, true)]
    [InlineData(3, 4096, false)]
    public void ReadContiguousCopiesARegionStraightIn(int threads, int chunk, bool kernelAio)
    {
        const long baseOffset = 2 * A;
        var (path, content) = WriteFile(RealDiskFolder(), 3 << 20);
        var account = new DramAccount();
        const long offset = 5 * A, length = (1 << 20) + 3 * A;
        byte* destination = (byte*)account.Allocate(length, "test", A);
        try
        {
            using var reader = FlashReader.Open(path, baseOffset, threads, account, null, new ReaderOptions { ContiguousChunkBytes = chunk, UseKernelAio = kernelAio });
            reader.ReadContiguous(offset, length, destination);
            Assert.True(new ReadOnlySpan<byte>(destination, (int)length).SequenceEqual(content.AsSpan((int)(baseOffset + offset), (int)length)));
            Assert.Equal(length, reader.BytesRead);
            Assert.Equal((length + chunk - 1) / chunk, reader.Requests);
            Assert.Throws<ArgumentOutOfRangeException>(() => reader.ReadContiguous(offset + 1, A, destination));
            Assert.Throws<ArgumentOutOfRangeException>(() => reader.ReadContiguous(offset, A + 512, destination));
            Assert.Throws<ArgumentException>(() => reader.ReadContiguous(offset, A, destination + 512));
        }
        finally { account.Free(destination, length); }
    }

    [Fact]
    public void ARequestPastTheEndOfTheFileThrowsIOException()
    {
        // The file ends 1000 bytes into a block: bundles before the end read fine even though their block is
        // partial; the first bundle past the end is a clear IOException naming the file and the offset.
        var (path, content) = WriteFile(RealDiskFolder(), 256 * A + 1000);
        using var reader = FlashReader.Open(path, A, 4, new DramAccount(), null);
        const long stride = 768;
        int lastWhole = (int)((content.Length - A - 700) / stride);
        ReadAndCompare(reader, content, A, 0, stride, 700, [0, 5, lastWhole - 1, lastWhole]);
        var destination = new byte[700];
        fixed (byte* pinned = destination)
        {
            nint d = (nint)pinned;
            var e = Assert.Throws<IOException>(() => reader.ReadBundles(0, stride, 700, [3, lastWhole + 1], [d, d]));
            Assert.Contains(path, e.Message);
            Assert.Contains("offset", e.Message);
            var far = Assert.Throws<IOException>(() => reader.ReadBundles(0, stride, 700, [10_000], [d]));
            Assert.Contains("end of file", far.Message);
        }
        var account = new DramAccount();
        byte* region = (byte*)account.Allocate(64 * A, "test", A);
        try { Assert.Throws<IOException>(() => reader.ReadContiguous(200 * A, 64 * A, region)); }
        finally { account.Free(region, 64 * A); }
        // The reader stays usable after a failed call.
        ReadAndCompare(reader, content, A, 0, stride, 700, [1, 2, 3]);
    }

    [Fact]
    public void TruncatedFileFailsInEveryThreadConfiguration()
    {
        var (path, content) = WriteFile(RealDiskFolder(), 1 << 20);
        using (var stream = new FileStream(path, FileMode.Open)) stream.SetLength(100 * A);
        foreach (int threads in new[] { 1, 4 })
        {
            using var reader = FlashReader.Open(path, 0, threads, new DramAccount(), null, new ReaderOptions { MaxChunkBytes = 16 * 1024 });
            int[] all = Enumerable.Range(0, (1 << 20) / 768).ToArray();
            var destinations = new nint[all.Length];
            var buffer = new byte[768];
            fixed (byte* d = buffer)
            {
                Array.Fill(destinations, (nint)d);
                Assert.Throws<IOException>(() => reader.ReadBundles(0, 768, 768, all, destinations));
            }
        }
    }

    [Fact]
    public void StagingBuffersCountAgainstTheDramBudget()
    {
        var (path, _) = WriteFile(RealDiskFolder(), 64 * 1024);
        var account = new DramAccount(limit: 3 * ReadPlanner.DefaultMaxChunkBytes);
        Assert.Throws<BadInputException>(() => FlashReader.Open(path, 0, 4, account, null));
        Assert.Equal(0, account.Current);
        using (var reader = FlashReader.Open(path, 0, 2, account, null))
            Assert.Equal(2 * ReadPlanner.DefaultMaxChunkBytes + reader.KernelAioBytes, account.Current);
        Assert.Equal(0, account.Current);
    }

    [Fact]
    public void OpeningAMissingFileIsAnIOException()
    {
        string missing = Path.Combine(RealDiskFolder(), $"aotflash-missing-{Guid.NewGuid():N}.bin");
        var e = Assert.ThrowsAny<IOException>(() => FlashReader.Open(missing, 0, 1, new DramAccount(), null));
        Assert.Contains(missing, e.Message);
    }

    [Fact]
    public void BadArgumentsAreRejected()
    {
        var (path, _) = WriteFile(RealDiskFolder(), 64 * 1024);
        Assert.Throws<ArgumentOutOfRangeException>(() => FlashReader.Open(path, 100, 1, new DramAccount(), null));
        Assert.Throws<ArgumentOutOfRangeException>(() => FlashReader.Open(path, 0, 0, new DramAccount(), null));
        Assert.Throws<ArgumentOutOfRangeException>(() => FlashReader.Open(path, 0, 1, new DramAccount(), null, new ReaderOptions { MaxChunkBytes = 1000 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => FlashReader.Open(path, 0, 1, new DramAccount(), null, new ReaderOptions { ContiguousChunkBytes = 0 }));
        using var reader = FlashReader.Open(path, 0, 1, new DramAccount(), null);
        Assert.Throws<ArgumentException>(() => reader.ReadBundles(0, 768, 768, [1, 2], [0]));
        Assert.Throws<ArgumentException>(() => reader.ReadBundles(0, 768, 768, [2, 1], [0, 0]));
        reader.ReadBundles(0, 768, 768, [], []);
        Assert.Equal(0, reader.Requests);
    }

    /// <summary>The fallback's late check relies on .NET reporting EINVAL from pread as an IOException whose HResult is
    /// the errno; a misaligned O_DIRECT read produces exactly that.</summary>
    [SkippableFact]
    public void MisalignedDirectReadIsEinvalInHResult()
    {
        var (path, _) = WriteFile(RealDiskFolder(), 64 * 1024);
        Skip.IfNot(Libc.ODirect.HasValue, "no O_DIRECT flag known for this architecture");
        int fd = Libc.open(path, Libc.ORdOnly | Libc.OCloExec | Libc.ODirect!.Value);
        Skip.If(fd < 0, $"O_DIRECT open refused (errno {Marshal.GetLastPInvokeError()})");
        using var handle = new SafeFileHandle(fd, ownsHandle: true);
        var account = new DramAccount();
        byte* buffer = (byte*)account.Allocate(2 * A, "test", A);
        try
        {
            var e = Assert.Throws<IOException>(() => RandomAccess.Read(handle, new Span<byte>(buffer + 1, A), 0));
            Assert.Equal(Libc.EInval, e.HResult);
        }
        finally { account.Free(buffer, 2 * A); }
    }
}
