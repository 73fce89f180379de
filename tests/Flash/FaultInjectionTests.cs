using AotFlash.Flash;
using AotFlash.Inference;
using AotFlash.Sampling;
using AotFlash.Tests.Sparsity;
using AotFlash.Tests.Support;
using Microsoft.Win32.SafeHandles;
using Xunit.Abstractions;

namespace AotFlash.Tests.Flash;

/// <summary>
/// Flash reads under injected faults: short reads (any length, also inside an O_DIRECT block), device errors that
/// pass, device errors that do not, and slow reads. The first three kinds are what a tired SD card or a signal does;
/// none may change a token. Errors that persist end generation with an error, and the engine works again once they
/// pass.
/// </summary>
public sealed unsafe class FaultInjectionTests(ITestOutputHelper output)
{
    /// <summary>pread with faults: every read may come back short or slow, the first read at some offsets fails with
    /// an I/O error, and while <see cref="Broken"/> every read fails.</summary>
    private sealed class FaultyDevice(int seed)
    {
        private readonly Random _random = new(seed);
        private readonly Lock _lock = new();
        private readonly HashSet<long> _failedOnce = [];
        public volatile bool Broken;
        public int Reads, Short, Errors, Slow;

        public int Read(SafeFileHandle handle, Span<byte> buffer, long offset)
        {
            int roll;
            lock (_lock)
            {
                Reads++;
                if (Broken) throw new IOException("Input/output error (injected, persistent)");
                roll = _random.Next(12);
                if (roll == 0 && _failedOnce.Add(offset))
                {
                    Errors++;
                    throw new IOException("Input/output error (injected, passes)");
                }
                if (roll is 1 or 2 or 3) Short++;
                if (roll == 4) Slow++;
            }
            if (roll == 4) Thread.Sleep(2);
            int n = RandomAccess.Read(handle, buffer, offset);
            // A short read: fewer bytes reported than arrived (the device stopped early), at any length.
            return roll is 1 or 2 or 3 && n > 1 ? 1 + (int)((uint)(offset * 2654435761L) % (uint)(n - 1)) : n;
        }
    }

    private static string RealDiskFile(int bytes, out byte[] content)
    {
        string path = Path.Combine(Published.TempDirectory(), "faulty.bin");
        content = new byte[bytes];
        new Random(3).NextBytes(content);
        File.WriteAllBytes(path, content);
        return path;
    }

    [Theory]
    [InlineData(1)]
    [InlineData(4)]
    public void ShortReadsAndPassingErrorsGiveTheFileAsItIs(int threads)
    {
        var device = new FaultyDevice(threads);
        string path = RealDiskFile(2 << 20, out var content);
        var account = new DramAccount();
        using var reader = FlashReader.Open(path, 0, threads, account, null, new ReaderOptions { Read = device.Read, MaxChunkBytes = 64 * 1024 });
        const int stride = 768, bytes = 700, count = 2000;
        int[] bundles = [.. Enumerable.Range(0, count).Where(i => i % 5 != 2)];
        byte* buffer = (byte*)account.Allocate((long)bytes * count, "test");
        byte* layer = (byte*)account.Allocate(1 << 20, "test", 4096);
        try
        {
            for (int round = 0; round < 5; round++)
            {
                new Span<byte>(buffer, bytes * count).Clear();
                reader.ReadBundles(0, stride, bytes, bundles, [.. bundles.Select(k => (nint)(buffer + (long)k * bytes))]);
                foreach (int k in bundles)
                    Assert.True(new ReadOnlySpan<byte>(buffer + (long)k * bytes, bytes).SequenceEqual(content.AsSpan(k * stride, bytes)), $"bundle {k}");
                reader.ReadContiguous(1 << 20, 1 << 20, layer);
                Assert.True(new ReadOnlySpan<byte>(layer, 1 << 20).SequenceEqual(content.AsSpan(1 << 20)));
            }
        }
        finally
        {
            account.Free(buffer, (long)bytes * count);
            account.Free(layer, 1 << 20);
        }
        output.WriteLine($"direct {reader.Direct}: {device.Reads} reads, {device.Short} short, {device.Errors} failed once, {device.Slow} slow");
        Assert.True(device.Short > 10 && device.Errors > 3, "too few faults were injected to mean anything");
    }

    [SkippableFact]
    public void FlashModeGivesTheSameTokensUnderFaultsAndStopsCleanlyWhenTheDeviceFails()
    {
        ModelSource.RequireShared();
        const string model = "stories260K-relu";
        string afm = FlashModeTests.Calibrated(model);
        var info = InProcess.Model(model);
        var prompt = "Once upon a time, a little girl"u8.ToArray();

        int[] Generate(Transformer t)
        {
            var session = new Session(t, info.LoadTokenizer(t.Weights, afm), new Sampler(info.Shape.Vocab, SamplerOptions.Greedy));
            return [.. session.Generate(session.Tokenize(prompt), 120, 0).GeneratedIds];
        }
        Transformer Load(ReaderOptions? reader)
        {
            using var file = ModelFile.Open(afm);
            return Engine.Load(info, file, new EngineOptions { Mode = EngineMode.Flash, Threads = 1, Reader = reader });
        }

        int[] clean;
        var t0 = Load(null);
        try { clean = Generate(t0); }
        finally { t0.Dispose(); t0.Weights.Dispose(); }

        var device = new FaultyDevice(11);
        var t = Load(new ReaderOptions { Read = device.Read });
        try
        {
            Assert.Equal(clean, Generate(t));
            output.WriteLine($"{device.Reads} reads, {device.Short} short, {device.Errors} failed once, {device.Slow} slow");
            Assert.True(device.Short > 10 && device.Errors > 3, "too few faults were injected to mean anything");

            device.Broken = true;
            var e = Assert.Throws<IOException>(() => Generate(t));
            Assert.Contains($"failed {FlashReader.MaxAttempts} times: Input/output error (injected, persistent)", e.Message);
            // Once the device works again, so does the same engine, with the same tokens: the failed read left no
            // half-filled cache rows behind.
            device.Broken = false;
            Assert.Equal(clean, Generate(t));
        }
        finally { t.Dispose(); t.Weights.Dispose(); }
    }
}
