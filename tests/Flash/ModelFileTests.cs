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
        // Across the three-lane rounds (12 KiB) and their tails.
        foreach (int n in new[] { 0, 1, 7, 8, 9, 63, 64, 1000, 4099, 12287, 12288, 12289, 24576 + 13, 100_003 })
        {
            var data = new byte[n];
            random.NextBytes(data);
            uint reference = Crc32C.ComputeReference(data);
            Assert.Equal(reference, Crc32C.Compute(data));
            // A running CRC continued at an odd split gives the same.
            int split = n / 3 + 1;
            if (split <= n) Assert.Equal(reference, ~Crc32C.Append(Crc32C.Append(~0u, data.AsSpan(0, split)), data.AsSpan(split)));
        }
    }

    // A region large enough to be split over the cores gives the CRC of one pass.
    [Fact]
    public unsafe void ALargeRegionSplitOverTheCoresGivesTheSameCrc()
    {
        var data = new byte[(32 << 20) + 4099];
        new Random(9).NextBytes(data);
        fixed (byte* p = data) Assert.Equal(~Crc32C.Append(~0u, data), Crc32C.Compute(p, data.Length));
    }

    // The algebra the lanes are joined by: x^(8n) for n bytes, against shifting n zero bytes through the register.
    [Fact]
    public void TheLaneShiftIsMultiplicationByAPowerOfX()
    {
        var random = new Random(8);
        foreach (int n in new[] { 0, 1, 5, 4096 })
        {
            uint reg = (uint)random.Next() ^ ((uint)random.Next() << 16);
            uint shifted = reg;
            for (int i = 0; i < n; i++) shifted = System.Numerics.BitOperations.Crc32C(shifted, (byte)0);
            Assert.Equal(shifted, Crc32C.MultiplyModP(reg, Crc32C.XPow8N(n)));
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

    [Fact]
    public void ResidentWeightsOfAnotherTypeRoundTrip()
    {
        var shape = new ModelShape(64, 172, 5, 8, 4, 512, 512, WeightType.F16, tiedEmbeddings: false, residentWeights: WeightType.Q4);
        var header = new ModelFileHeader { ModelName = "m", SpecHash = Header().SpecHash, Shape = shape, Sections = Header().Sections };
        byte[] bytes = header.Serialize();
        var parsed = ModelFileHeader.Parse(bytes, "x");
        Assert.Equal(WeightType.Q4, parsed.Shape.ResidentWeights);
        Assert.Equal(WeightType.F16, parsed.Shape.Weights);
        Assert.Equal(shape, parsed.Shape);
        Assert.NotEqual(Header().Shape, parsed.Shape);
        // A model whose two types are one writes the field as files did before the resident type existed.
        Assert.Equal((uint)WeightType.F16, System.Buffers.Binary.BinaryPrimitives.ReadUInt32LittleEndian(Header().Serialize().AsSpan(140)));
        Assert.Equal(WeightType.F16, ModelFileHeader.Parse(Header().Serialize(), "x").Shape.ResidentWeights);
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
