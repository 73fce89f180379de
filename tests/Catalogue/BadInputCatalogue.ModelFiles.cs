using System.Buffers.Binary;
using AotFlash.Flash;
using AotFlash.Tests.Support;

namespace AotFlash.Tests.Catalogue;

// Groups 2 and 3: model files. First headers that lie while their checksum is right (each through info and run), then
// files damaged without a fixed-up checksum: a flipped bit, a truncation, a flipped bit in each section.
public sealed partial class BadInputCatalogue
{
    private const int Dims = 112, WeightTypeAt = 140, SectionCount = 148;

    private static int SectionAt(int index) => 152 + 32 * index;

    private static string[] DimNames => ["dim", "hidden_dim", "layers", "heads", "kv_heads", "vocab", "context"];

    // The converted file's sections, in file order.
    private static (string Name, int Index)[] FileSections => [("resident", 0), ("tokenizer", 1), ("flash", 2), ("checksums", 3)];

    private static string[] Info(string model) => ["info", "--model", model];

    private static string[] RunDense(string model) => ["run", "--model", model, "--mode", "dense", "-p", "x", "-n", "1"];

    /// <summary>A header mutation with its checksum recomputed.</summary>
    private sealed record Lie(string Name, Func<byte[], byte[]> Edit, string Fragment, bool InfoToo = true);

    private static IEnumerable<Lie> Lies()
    {
        for (int i = 0; i < DimNames.Length; i++)
        {
            int at = Dims + 4 * i;
            string dim = DimNames[i];
            yield return new($"{dim} 0", b => I32(b, at, 0), $"model file header is corrupt ({dim} 0)");
            yield return new($"{dim} -1", b => I32(b, at, -1), $"model file header is corrupt ({dim} -1)");
        }
        // A positive shape that is not the one of the spec the header names: info describes the file, run refuses it.
        yield return new("dim 128", b => I32(b, Dims, 128),
            $"model file header is corrupt (it names spec {InProcess.Model(Relu).SpecHash} of 'stories260K-relu', but not its shape)", InfoToo: false);
        yield return new("weight type 7", b => I32(b, WeightTypeAt, 7), "model file header is corrupt (bad weight type or section count)");
        yield return new("section count 124", b => I32(b, SectionCount, 124), "model file header is corrupt (bad weight type or section count)");
        yield return new("section count one too many", b => I32(b, SectionCount, 5), "model file header is corrupt (section 4 has unknown kind 0)");
        foreach (var (section, index) in FileSections)
        {
            int at = SectionAt(index);
            long Offset(byte[] b) => BitConverter.ToInt64(b, at + 8);
            long Length(byte[] b) => BitConverter.ToInt64(b, at + 16);
            bool last = index == FileSections.Length - 1;
            yield return new($"{section} offset unaligned", b => I64(b, at + 8, Offset(b) + 1), $"model file header is corrupt (section {index} out of place)");
            yield return new($"{section} offset inside the header", b => I64(b, at + 8, 2048), $"model file header is corrupt (section {index} out of place)");
            yield return new($"{section} offset 0", b => I64(b, at + 8, 0), $"model file header is corrupt (section {index} out of place)");
            yield return new($"{section} offset past the end", b => I64(b, at + 8, Layout.AlignUp(b.Length, 4096) + (1 << 20)), "truncated model file (");
            yield return new($"{section} length negative", b => I64(b, at + 16, -1), $"model file header is corrupt (section {index} out of place)");
            yield return new($"{section} length past the end", b => I64(b, at + 16, Length(b) + (1 << 20)),
                last ? "truncated model file (" : "sections overlap");
            yield return new($"{section} length overflowing", b => I64(b, at + 16, long.MaxValue - 100), $"model file header is corrupt (section {index} out of place)");
            yield return new($"{section} kind 0", b => I32(b, at, 0), $"model file header is corrupt (section {index} has unknown kind 0)");
            yield return new($"{section} kind 99", b => I32(b, at, 99), $"model file header is corrupt (section {index} has unknown kind 99)");
        }
        yield return new("two resident sections", b => I32(b, SectionAt(1), (int)SectionKind.Resident), "model file header is corrupt (two resident sections)");
        yield return new("two flash sections", b => I32(b, SectionAt(3), (int)SectionKind.Flash), "model file header is corrupt (two flash sections)");
        yield return new("tokenizer over the resident section", b => I64(b, SectionAt(1) + 8, BitConverter.ToInt64(b, SectionAt(0) + 8)),
            "model file header is corrupt (the resident and tokenizer sections overlap)");
        yield return new("flash over the tokenizer section", b => I64(b, SectionAt(2) + 8, BitConverter.ToInt64(b, SectionAt(1) + 8)),
            "model file header is corrupt (the tokenizer and flash sections overlap)");
        yield return new("4096 trailing bytes", b => Append(b, 4096), "model file has 4096 bytes after its last section");
        yield return new("1 trailing byte", b => Append(b, 1), "model file has 1 bytes after its last section");
        yield return new("name with an escape sequence", b => { "x\u001b[31mred"u8.CopyTo(b.AsSpan(48)); return b; },
            "the model name or spec hash holds characters a spec never has");
        yield return new("name with a newline", b => { b[49] = (byte)'\n'; return b; }, "the model name or spec hash holds characters a spec never has");
        yield return new("empty name", b => { b.AsSpan(48, 64).Clear(); return b; }, "the model name or spec hash holds characters a spec never has");
        yield return new("spec hash not hex", b => { b[20] = (byte)'z'; return b; }, "the model name or spec hash holds characters a spec never has");
        yield return new("spec hash in capitals", b => { b[20] = (byte)'A'; return b; }, "the model name or spec hash holds characters a spec never has");
        yield return new("version 2", b => I32(b, 8, 2), "model file version 2 is not supported (this build reads version 1)");
        yield return new("version 0", b => I32(b, 8, 0), "model file version 0 is not supported");
        yield return new("wrong magic", b => { "AOTFLASX"u8.CopyTo(b); return b; }, "not an AotFlash model file (bad magic)");
        // info describes a file of another spec (it says it does not match); run refuses it.
        yield return new("spec hash of another model", b => { System.Text.Encoding.ASCII.GetBytes(InProcess.Model(Silu).SpecHash).CopyTo(b, 16); return b; },
            $"model file is for 'stories260K-relu' (spec {InProcess.Model(Silu).SpecHash}), but this binary runs 'stories260K-relu'", InfoToo: false);
        // Sections that are missing or of the wrong size: the header is well formed, the model cannot run.
        foreach (var (section, index) in FileSections.Take(3))
            yield return new($"no {section} section", b => WithoutSection(b, index), $"model file has no {section} section", InfoToo: false);
        yield return new("resident section 4 KiB short", b => I64(b, SectionAt(0) + 16, BitConverter.ToInt64(b, SectionAt(0) + 16) - 4096),
            "resident section is 376832 bytes, the layout needs 380928", InfoToo: false);
        // The tokenizer section's content lies, its checksum fixed up too.
        yield return new("tokenizer section of garbage", b => FixSectionCrc(I32(b, BitConverter.ToInt64(b, SectionAt(1) + 8), -1), 1),
            "tokenizer: negative max_token_length -1", InfoToo: false);
    }

    /// <summary>Recomputes section <paramref name="index"/>'s checksum in the table (the header's own is fixed later).</summary>
    private static byte[] FixSectionCrc(byte[] b, int index)
    {
        long offset = BitConverter.ToInt64(b, SectionAt(index) + 8), length = BitConverter.ToInt64(b, SectionAt(index) + 16);
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(SectionAt(index) + 4), Crc32C.Compute(b.AsSpan((int)offset, (int)length)));
        return b;
    }

    /// <summary>The section table without entry <paramref name="index"/>.</summary>
    private static byte[] WithoutSection(byte[] b, int index)
    {
        int count = BitConverter.ToInt32(b, SectionCount);
        b.AsSpan(SectionAt(index + 1), 32 * (count - index - 1)).CopyTo(b.AsSpan(SectionAt(index)));
        b.AsSpan(SectionAt(count - 1), 32).Clear();
        return I32(b, SectionCount, count - 1);
    }

    private static IEnumerable<(string, Case)> ModelFileCases()
    {
        foreach (var lie in Lies())
        {
            string Lying(string dir) => Put(dir, "lying.afm", FixCrc(lie.Edit(AfmBytes())));
            if (lie.InfoToo) yield return C($"header: {lie.Name} (info)", lie.Fragment, dir => Info(Lying(dir)));
            yield return C($"header: {lie.Name} (run)", lie.Fragment, dir => RunDense(Lying(dir)));
        }

        // Sections flash and naive modes need, missing or of the wrong size (the file cut to match the header).
        yield return C("header: no checksums section (run naive)", "model file has no flash checksums section, which flash and naive modes need", dir =>
        {
            byte[] b = AfmBytes();
            long end = SectionOf(b, SectionKind.FlashChecksums).Offset;
            return ["run", "--model", Put(dir, "lying.afm", Cut(FixCrc(WithoutSection(b, 3)), end)), "--mode", "naive", "-n", "1"];
        });
        yield return C("header: checksums 4 bytes short (run naive)", "flash checksums section is 3436 bytes, the layout needs 3440", dir =>
        {
            byte[] b = AfmBytes();
            I64(b, SectionAt(3) + 16, BitConverter.ToInt64(b, SectionAt(3) + 16) - 4);
            return ["run", "--model", Put(dir, "lying.afm", Cut(FixCrc(b), b.Length - 4)), "--mode", "naive", "-n", "1"];
        });
        // The predictors of a calibrated file, with their checksum fixed up.
        yield return C("header: predictors section of garbage (run flash)", "predictors section is invalid (bad magic); run calibrate again", dir =>
        {
            byte[] b = File.ReadAllBytes(CalibratedPath());
            b.AsSpan((int)SectionOf(b, SectionKind.Predictors).Offset, 8).Fill(0xFF);
            return ["run", "--model", Put(dir, "lying.afm", FixCrc(FixSectionCrc(b, 4))), "--mode", "flash", "-n", "1"];
        });
    }

    private static IEnumerable<(string, Case)> DamagedModelFileCases()
    {
        // A flipped bit in the header, without a fixed-up checksum.
        foreach (int at in new[] { 200, 4092 })
        foreach (var (entry, args) in new (string, Func<string, string[]>)[] { ("info", Info), ("run", RunDense) })
            yield return C($"damaged: header bit {at} flipped ({entry})", "model file header is corrupt (checksum mismatch)",
                dir => args(Put(dir, "flipped.afm", Flip(AfmBytes(), at))));

        // Truncations.
        (string, Func<byte[], long>, string)[] cuts =
        [
            ("empty", _ => 0, "truncated model file (0 bytes, the header alone is 4096)"),
            ("1 byte", _ => 1, "truncated model file (1 bytes, the header alone is 4096)"),
            ("4095 bytes", _ => 4095, "truncated model file (4095 bytes, the header alone is 4096)"),
            ("the header alone", _ => 4096, "truncated model file (4096 bytes, its header needs"),
            ("mid-resident", b => SectionOf(b, SectionKind.Resident).Offset + 1000, "bytes, its header needs"),
            ("mid-tokenizer", b => SectionOf(b, SectionKind.Tokenizer).Offset + 100, "bytes, its header needs"),
            ("mid-flash", b => SectionOf(b, SectionKind.Flash).Offset + SectionOf(b, SectionKind.Flash).Length / 2, "bytes, its header needs"),
            ("last byte missing", b => b.Length - 1, "its header needs"),
        ];
        foreach (var (what, length, fragment) in cuts)
        foreach (var (entry, args) in new (string, Func<string, string[]>)[] { ("info", Info), ("run", RunDense) })
            yield return C($"damaged: truncated to {what} ({entry})", fragment, dir =>
            {
                byte[] b = AfmBytes();
                return args(Put(dir, "cut.afm", Cut(b, length(b))));
            });

        // A flipped bit in each section: dense mode checks what it maps, naive mode the flash checksums and every bundle
        // it reads, pack and calibrate every section they copy.
        string Flipped(string dir, SectionKind kind, long into = 100)
        {
            byte[] b = AfmBytes();
            return Put(dir, "flipped.afm", Flip(b, SectionOf(b, kind).Offset + into));
        }
        yield return C("damaged: resident bit flipped (run dense)", "resident section is corrupt (checksum mismatch)",
            dir => RunDense(Flipped(dir, SectionKind.Resident)));
        yield return C("damaged: tokenizer bit flipped (run dense)", "tokenizer section is corrupt (checksum mismatch)",
            dir => RunDense(Flipped(dir, SectionKind.Tokenizer)));
        yield return C("damaged: flash bit flipped (run dense)", "flash section is corrupt (checksum mismatch)",
            dir => RunDense(Flipped(dir, SectionKind.Flash, 50_000)));
        yield return C("damaged: flash checksums bit flipped (run naive)", "flash checksums section is corrupt (checksum mismatch)",
            dir => ["run", "--model", Flipped(dir, SectionKind.FlashChecksums), "--mode", "naive", "-n", "1"]);
        var layout = InProcess.Model(Relu).Layout;
        yield return C("damaged: flash bundle bit flipped (run naive)", "flash section is corrupt: layer 1, neuron 7 does not match its checksum",
            dir => ["run", "--model", Flipped(dir, SectionKind.Flash, layout.Layers[1].FfnBundles + 7 * layout.BundleStride + 3), "--mode", "naive", "-n", "1"]);
        yield return C("damaged: predictors bit flipped (run flash)", "predictors section is corrupt (checksum mismatch)", dir =>
        {
            byte[] b = File.ReadAllBytes(CalibratedPath());
            return ["run", "--model", Put(dir, "flipped.afm", Flip(b, SectionOf(b, SectionKind.Predictors).Offset + 100)), "--mode", "flash", "-n", "1"];
        });
        yield return C("damaged: resident bit flipped (calibrate)", "resident section is corrupt (checksum mismatch)",
            dir => ["calibrate", "--model", Flipped(dir, SectionKind.Resident), "-o", Path.Combine(dir, "out.afm")]);
        yield return C("damaged: flash checksums bit flipped (pack)", "flash checksums section is corrupt (checksum mismatch)",
            dir => ["pack", Flipped(dir, SectionKind.FlashChecksums), "-o", Path.Combine(dir, "packed"), "--binary", Put(dir, "binary", new byte[100])]);
        yield return C("damaged: tokenizer bit flipped (pack)", "tokenizer section is corrupt (checksum mismatch)",
            dir => ["pack", Flipped(dir, SectionKind.Tokenizer), "-o", Path.Combine(dir, "packed"), "--binary", Put(dir, "binary", new byte[100])]);
        yield return C("damaged: truncated (bench)", "truncated model file (",
            dir => ["bench", "--model", Put(dir, "cut.afm", Cut(AfmBytes(), 5000)), "--modes", "dense"]);
    }
}
