using System.Text;
using AotFlash.Flash;

namespace AotFlash.Tests.Flash;

public sealed class ModelFileTests
{
    [Fact]
    public void Crc32CMatchesTheStandardCheckValueAndTheReference()
    {
        Assert.Equal(0xE3069283u, Crc32C.Compute("123456789"u8));
        var random = new Random(7);
        foreach (int n in new[] { 0, 1, 7, 8, 9, 63, 64, 1000, 4099 })
        {
            var data = new byte[n];
            random.NextBytes(data);
            Assert.Equal(Crc32C.ComputeReference(data), Crc32C.Compute(data));
        }
    }

    private static ModelFileHeader Header() => new()
    {
        ModelName = "m",
        SpecHash = "0123456789abcdef0123456789abcdef",
        Shape = new ModelShape(64, 172, 5, 8, 4, 512, 512, WeightType.F16, tiedEmbeddings: false),
        Sections = [new Section(SectionKind.Resident, 4096, 100, 5), new Section(SectionKind.Flash, 8192, 0, 0)],
    };

    [Fact]
    public void HeaderRoundTrips()
    {
        var parsed = ModelFileHeader.Parse(Header().Serialize(), "x");
        Assert.Equal("m", parsed.ModelName);
        Assert.Equal("0123456789abcdef0123456789abcdef", parsed.SpecHash);
        Assert.Equal(Header().Shape, parsed.Shape);
        Assert.Equal(Header().Sections, parsed.Sections);
        Assert.Equal(8192, parsed.FileLength);
    }

    [Theory]
    [InlineData(0, "bad magic")]
    [InlineData(8, "version")]
    [InlineData(200, "checksum mismatch")]
    public void DamagedHeaderIsRejected(int offset, string expected)
    {
        byte[] b = Header().Serialize();
        b[offset] ^= 0x01;
        var e = Assert.Throws<BadInputException>(() => ModelFileHeader.Parse(b, "x"));
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void WriterLeavesNothingBehindWhenNotCommitted()
    {
        string dir = Path.Combine(Path.GetTempPath(), "af-writer-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        string path = Path.Combine(dir, "m.afm");
        using (var w = ModelFileWriter.Create(path, force: false))
        {
            w.BeginSection(SectionKind.Resident);
            w.Write(Encoding.ASCII.GetBytes("half a model"));
            // While it writes, the file has no name (O_TMPFILE), so a process killed here leaves nothing in the folder.
            Assert.Empty(Directory.GetFileSystemEntries(dir));
        }
        Assert.Empty(Directory.GetFileSystemEntries(dir));

        using (var w = ModelFileWriter.Create(path, force: false))
        {
            w.BeginSection(SectionKind.Resident);
            w.Write(new byte[10]);
            w.EndSection(4096);
            w.Commit("m", "0123456789abcdef0123456789abcdef", Header().Shape);
        }
        Assert.Equal([path], Directory.GetFileSystemEntries(dir));
        using (var f = ModelFile.Open(path)) Assert.Equal(4096, f.Header.Get(SectionKind.Resident, path).Length);
        Assert.Throws<BadInputException>(() => ModelFileWriter.Create(path, force: false));
        Directory.Delete(dir, recursive: true);
    }

    [Fact]
    public void LayoutAlignsTensorsAndBundles()
    {
        var layout = new Layout(new ModelShape(64, 172, 5, 8, 4, 512, 512, WeightType.F32, tiedEmbeddings: true));
        Assert.All(layout.ResidentTensors, t => Assert.Equal(0, t.Offset % Layout.TensorAlignment));
        Assert.Equal(0, layout.ResidentBytes % Layout.FlashAlignment);
        Assert.Equal(768, layout.BundleStride);
        Assert.All(layout.Layers, l => Assert.Equal(0, l.FfnBundles % Layout.FlashAlignment));
        Assert.Same(layout.TokenEmbedding, layout.Classifier);
        var half = new Layout(new ModelShape(100, 30, 1, 4, 2, 50, 16, WeightType.F16, tiedEmbeddings: false));
        Assert.Equal(640, half.BundleStride); // 3 * 100 * 2 = 600, rounded up to 64
        Assert.NotSame(half.TokenEmbedding, half.Classifier);
    }
}
