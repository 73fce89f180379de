using System.Buffers.Binary;
using System.Runtime.CompilerServices;

namespace AotFlash.Flash;

/// <summary>A flash read whose bytes do not match the model file's checksum of that neuron bundle.</summary>
public sealed class FlashChecksumException(int neuron) : IOException($"neuron {neuron}'s bundle does not match its checksum")
{
    public int Neuron { get; } = neuron;
}

/// <summary>
/// The flash checksums section: the CRC-32C of every neuron bundle's <see cref="Layout.BundleBytes"/> (its stride
/// padding left out), u32 little-endian, layer-major ([layer][neuron]). Flash and naive modes read the flash section
/// piece by piece, so its whole-section checksum is never computed there; these let every bundle be checked as it
/// arrives, so a flipped bit on flash is an error naming the layer and neuron instead of a wrong token.
/// </summary>
/// Read once per loaded model and shared by its sessions, each of which charges <see cref="Bytes"/> to its account.
public sealed unsafe class FlashChecksums
{
    private readonly uint[] _crcs; // pinned: the I/O threads read it through pointers
    private readonly int _hidden;

    private FlashChecksums(uint[] crcs, int hidden)
    {
        _crcs = crcs; _hidden = hidden;
    }

    /// <summary>The section's length for a layout.</summary>
    public static long SectionLength(Layout layout) => 4L * layout.Shape.Layers * layout.Shape.HiddenDim;

    /// <summary>DRAM the checksums take.</summary>
    public long Bytes => 4L * _crcs.Length;

    /// <summary>The checksums of <paramref name="layer"/>'s bundles, indexed by neuron.</summary>
    public uint* Layer(int layer) => (uint*)Unsafe.AsPointer(ref _crcs[(long)layer * _hidden]);

    /// <summary>The section of a model file, checked for its length and its own checksum.</summary>
    public static FlashChecksums Load(ModelFile file, Layout layout)
    {
        if (!file.Has(SectionKind.FlashChecksums))
            throw new BadInputException($"{file.Source}: model file has no flash checksums section, which flash and naive modes " +
                                        "need to verify their reads (it was written by an older convert): convert it again, or use --mode dense");
        long length = SectionLength(layout);
        long actual = file.Header.Get(SectionKind.FlashChecksums, file.Source).Length;
        if (actual != length)
            throw new BadInputException($"{file.Source}: flash checksums section is {actual} bytes, the layout needs {length}");
        var crcs = file.ReadOnce(SectionKind.FlashChecksums, new DramAccount(), bytes =>
        {
            var values = GC.AllocateArray<uint>(bytes.Length / 4, pinned: true);
            for (int i = 0; i < values.Length; i++) values[i] = BinaryPrimitives.ReadUInt32LittleEndian(bytes[(4 * i)..]);
            return values;
        });
        return new FlashChecksums(crcs, layout.Shape.HiddenDim);
    }

    /// <summary>Checks every bundle of one layer read whole into <paramref name="bundles"/> (<paramref name="stride"/>
    /// bytes apart).</summary>
    /// <exception cref="FlashChecksumException">A bundle does not match.</exception>
    public void VerifyLayer(int layer, byte* bundles, long stride, int bundleBytes) => VerifyNeurons(layer, 0, _hidden, bundles, stride, bundleBytes);

    /// <summary>Checks neurons [first, first + count) of one layer, read into <paramref name="bundles"/> (neuron
    /// <paramref name="first"/>'s, the next <paramref name="stride"/> bytes on).</summary>
    /// <exception cref="FlashChecksumException">A bundle does not match.</exception>
    public void VerifyNeurons(int layer, int first, int count, byte* bundles, long stride, int bundleBytes)
    {
        uint* expected = Layer(layer) + first;
        for (int i = 0; i < count; i++)
            if (Crc32C.Compute(bundles + i * stride, bundleBytes) != expected[i]) throw new FlashChecksumException(first + i);
    }

    /// <summary>The error for a bundle that failed its check, naming where it is.</summary>
    public static BadInputException Corrupt(string source, int layer, FlashChecksumException e) =>
        new($"{source}: flash section is corrupt: layer {layer}, neuron {e.Neuron} does not match its checksum");
}
