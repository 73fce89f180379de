using AotFlash.Flash;

namespace AotFlash.Inference;

/// <summary>A model file's weights in memory: the resident section mapped, the flash section mapped only when it is
/// to be held in DRAM (dense mode), the tokenizer and (after calibration) the predictors as bytes.</summary>
public sealed unsafe class ModelWeights : IDisposable
{
    private readonly MappedSection _resident;
    private readonly MappedSection? _flash;

    private ModelWeights(MappedSection resident, MappedSection? flash, byte[] tokenizer, byte[]? predictors, DramAccount account)
    {
        _resident = resident; _flash = flash; TokenizerData = tokenizer; PredictorData = predictors; Account = account;
    }

    public byte* Resident => _resident.Data;
    /// <summary>The mapped flash section; null unless loaded with <c>mapFlash</c>.</summary>
    public byte* Flash => _flash is null ? null : _flash.Data;
    public byte[] TokenizerData { get; }
    public byte[]? PredictorData { get; }
    public DramAccount Account { get; }

    /// <summary>Checks that <paramref name="file"/> is for <paramref name="info"/> and maps its sections, verifying each
    /// checksum (the flash section's only when it is mapped).</summary>
    public static ModelWeights Load(ModelFile file, ModelInfo info, DramAccount account, bool mapFlash)
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
            if (mapFlash) flash = file.Map(SectionKind.Flash, account);
            byte[] tokenizer = ReadSmall(file, SectionKind.Tokenizer, account);
            byte[]? predictors = file.Has(SectionKind.Predictors) ? ReadSmall(file, SectionKind.Predictors, account) : null;
            return new ModelWeights(resident, flash, tokenizer, predictors, account);
        }
        catch
        {
            resident?.Dispose();
            flash?.Dispose();
            throw;
        }
    }

    private static byte[] ReadSmall(ModelFile file, SectionKind kind, DramAccount account)
    {
        using var section = file.Map(kind, account);
        return section.Span.ToArray();
    }

    public void Dispose()
    {
        _resident.Dispose();
        _flash?.Dispose();
    }
}
