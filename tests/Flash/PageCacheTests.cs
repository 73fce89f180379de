using System.IO.MemoryMappedFiles;
using System.Runtime.InteropServices;
using AotFlash.Flash;
using AotFlash.Inference;
using AotFlash.Tests.Support;

namespace AotFlash.Tests.Flash;

/// <summary>Loading leaves in the page cache only the sections it maps: a section read once (tokenizer, predictors,
/// flash checksums) and what readahead brought in around it would otherwise stay there, counted against an OS memory
/// limit (a cgroup charges page cache) and pushing out the mapped weights that every token reads.</summary>
public sealed unsafe partial class PageCacheTests
{
    [LibraryImport("libc", SetLastError = true)]
    private static partial int mincore(void* address, nuint length, byte* vector);

    [Fact]
    public void FlashModeLoadKeepsNoUnmappedPageOfTheModelFileCached()
    {
        const string model = "stories260K-relu";
        // A private copy (other tests read the shared one), written back to the disk: dirty pages cannot be dropped.
        string afm = Path.Combine(Published.TempDirectory(), "page-cache.afm");
        File.Copy(Sparsity.FlashModeTests.Calibrated(model), afm, overwrite: true);
        using (var written = new FileStream(afm, FileMode.Open, FileAccess.ReadWrite)) written.Flush(flushToDisk: true);

        using var file = ModelFile.Open(afm);
        var resident = file.Header.Get(SectionKind.Resident, afm);
        var engine = Engine.Load(InProcess.Model(model), file, new EngineOptions { Mode = EngineMode.Flash });
        try
        {
            int page = Environment.SystemPageSize;
            long firstResident = resident.Offset / page, lastResident = (resident.Offset + resident.Length - 1) / page;
            var cached = CachedPages(afm);
            var outside = Enumerable.Range(0, cached.Length).Where(p => cached[p] && (p < firstResident || p > lastResident)).ToList();
            Assert.True(cached.Skip((int)firstResident).Take((int)(lastResident - firstResident + 1)).All(c => c), "the mapped resident section is cached");
            // A few pages next to the mapping come back when a fault on it reads around (3 here; without the drop, 207 of
            // the 207 outside it stayed).
            Assert.True(outside.Count <= 16, $"{outside.Count} of {cached.Length} pages outside the resident section (pages {firstResident}-{lastResident}) " +
                                              $"stay cached: {string.Join(", ", outside.Take(20))}");
        }
        finally
        {
            engine.Dispose();
            engine.Weights.Dispose();
        }
    }

    // What is read before the resident section is mapped (the provenance line, at open) must not drop the resident
    // section's cached pages: mapping it would then read it from the disk at every start (hundreds of MB; a 110M model
    // started in 0.35 s instead of 0.11 s).
    [Fact]
    public void ReadingBeforeTheResidentSectionIsMappedKeepsItCached()
    {
        const string model = "stories260K";
        string afm = Path.Combine(Published.TempDirectory(), "page-cache-start.afm");
        File.Copy(InProcess.ModelFile(model, model), afm, overwrite: true);
        using (var written = new FileStream(afm, FileMode.Open, FileAccess.ReadWrite)) written.Flush(flushToDisk: true);
        File.ReadAllBytes(afm); // all of it cached, as after a previous run

        using var file = ModelFile.Open(afm);
        file.Provenance();
        file.ReadBytes(file.Header.Get(SectionKind.Tokenizer, afm));
        var resident = file.Header.Get(SectionKind.Resident, afm);
        int page = Environment.SystemPageSize;
        var cached = CachedPages(afm).Skip((int)(resident.Offset / page)).Take((int)((resident.Length + page - 1) / page)).ToList();
        Assert.True(cached.All(c => c), $"{cached.Count(c => !c)} of the resident section's {cached.Count} pages were dropped before it was mapped");
    }

    /// <summary>Which of the file's pages are in the page cache (mincore over a mapping of it).</summary>
    private static bool[] CachedPages(string path)
    {
        long length = new FileInfo(path).Length;
        int pages = (int)((length + Environment.SystemPageSize - 1) / Environment.SystemPageSize);
        using var map = MemoryMappedFile.CreateFromFile(path, FileMode.Open, null, 0, MemoryMappedFileAccess.Read);
        using var view = map.CreateViewAccessor(0, length, MemoryMappedFileAccess.Read);
        byte* start = null;
        view.SafeMemoryMappedViewHandle.AcquirePointer(ref start);
        try
        {
            var vector = new byte[pages];
            fixed (byte* v = vector)
                Assert.True(mincore(start, (nuint)length, v) == 0, $"mincore failed (errno {Marshal.GetLastPInvokeError()})");
            return [.. vector.Select(b => (b & 1) != 0)];
        }
        finally
        {
            view.SafeMemoryMappedViewHandle.ReleasePointer();
        }
    }
}
