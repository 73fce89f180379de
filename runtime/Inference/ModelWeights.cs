using AotFlash.Flash;

namespace AotFlash.Inference;

/// <summary>A model file's weights in memory: both weight sections mapped (dense mode) and the tokenizer bytes.</summary>
public sealed unsafe class ModelWeights : IDisposable
{
    private readonly MappedSection _resident;
    private readonly MappedSection _flash;

    private ModelWeights(MappedSection resident, MappedSection flash, byte[] tokenizer, DramAccount account)
    {
        _resident = resident; _flash = flash; TokenizerData = tokenizer; Account = account;
    }

    public byte* Resident => _resident.Data;
    public byte* Flash => _flash.Data;
    public byte[] TokenizerData { get; }
    public DramAccount Account { get; }

    /// <summary>Checks that <paramref name="file"/> is for <paramref name="info"/> and maps its sections, verifying each checksum.</summary>
    public static ModelWeights Load(ModelFile file, ModelInfo info, DramAccount account)
    {
        file.CheckMatches(info.Name, info.SpecHash, info.Shape);
        var layout = info.Layout;
        foreach (var (kind, expected) in new[] { (SectionKind.Resident, layout.ResidentBytes), (SectionKind.Flash, layout.FlashBytes) })
        {
            long actual = file.Header.Get(kind, file.Source).Length;
            if (actual != expected)
                throw new BadInputException($"{file.Source}: {kind.ToString().ToLowerInvariant()} section is {actual} bytes, the layout needs {expected}");
        }
        MappedSection? resident = null, flash = null;
        try
        {
            resident = file.Map(SectionKind.Resident, account);
            flash = file.Map(SectionKind.Flash, account);
            using var tokenizer = file.Map(SectionKind.Tokenizer, account);
            return new ModelWeights(resident, flash, tokenizer.Span.ToArray(), account);
        }
        catch
        {
            resident?.Dispose();
            flash?.Dispose();
            throw;
        }
    }

    public void Dispose()
    {
        _resident.Dispose();
        _flash.Dispose();
    }
}
