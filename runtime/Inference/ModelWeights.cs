using AotFlash.Flash;
using AotFlash.Sparsity;

namespace AotFlash.Inference;

/// <summary>A model file's weights in memory: the resident section mapped, the flash section mapped only when it is
/// to be held in DRAM (dense mode), the tokenizer as bytes and (after calibration) the predictors parsed. <see cref="Share"/>
/// gives further instances over the same mappings (one per session), each charged to its own account; the sections
/// are unmapped when the last of them is disposed.</summary>
public sealed unsafe class ModelWeights : IDisposable
{
    private readonly Mappings _mappings;
    private readonly long _charged;
    private int _disposed;

    /// <summary>The mapped sections and how many <see cref="ModelWeights"/> use them.</summary>
    private sealed class Mappings(MappedSection resident, MappedSection? flash)
    {
        public MappedSection Resident { get; } = resident;
        public MappedSection? Flash { get; } = flash;
        public int Users = 1;
        public long Bytes => Resident.MappedBytes + (Flash?.MappedBytes ?? 0);
    }

    private ModelWeights(Mappings mappings, byte[] tokenizer, PredictorSet? predictors, DramAccount account, long charged)
    {
        _mappings = mappings; TokenizerData = tokenizer; Predictors = predictors; Account = account; _charged = charged;
    }

    public byte* Resident => _mappings.Resident.Data;
    /// <summary>The mapped flash section; null unless loaded with <c>mapFlash</c>.</summary>
    public byte* Flash => _mappings.Flash is null ? null : _mappings.Flash.Data;
    public byte[] TokenizerData { get; }
    /// <summary>The activation predictors, parsed straight from the file (null unless loaded with <c>readPredictors</c>
    /// from a calibrated file); read-only, shared by every instance.</summary>
    public PredictorSet? Predictors { get; }
    public DramAccount Account { get; }

    /// <summary>Checks that <paramref name="file"/> is for <paramref name="info"/> and maps its sections, verifying each
    /// checksum (the flash section's only when it is mapped, the predictors' only when they are read).</summary>
    public static ModelWeights Load(ModelFile file, ModelInfo info, DramAccount account, bool mapFlash, bool readPredictors)
    {
        file.CheckMatches(info.Name, info.SpecHash, info.Shape);
        var layout = info.Layout;
        foreach (var (kind, expected) in new[] { (SectionKind.Resident, layout.ResidentBytes), (SectionKind.Flash, layout.FlashBytes) })
        {
            long actual = file.Header.Get(kind, file.Source).Length;
            if (actual != expected)
                throw new BadInputException($"{file.Source}: {ModelFileHeader.Name(kind)} section is {actual} bytes, the layout needs {expected}");
        }
        MappedSection? resident = null, flash = null;
        try
        {
            resident = file.Map(SectionKind.Resident, account, hugePages: true);
            if (mapFlash) flash = file.Map(SectionKind.Flash, account, hugePages: true);
            byte[] tokenizer = file.ReadBytes(file.Header.Get(SectionKind.Tokenizer, file.Source));
            var predictors = readPredictors && file.Has(SectionKind.Predictors) ? ReadPredictors(file, info, account) : null;
            // The mappings charge this account themselves.
            return new ModelWeights(new Mappings(resident, flash), tokenizer, predictors, account, charged: 0);
        }
        catch
        {
            resident?.Dispose();
            flash?.Dispose();
            throw;
        }
    }

    private static PredictorSet ReadPredictors(ModelFile file, ModelInfo info, DramAccount account)
    {
        var s = info.Shape;
        long length = file.Header.Get(SectionKind.Predictors, file.Source).Length, most = PredictorSet.MaxSectionLength(s.Layers, s.Dim, s.HiddenDim);
        if (length > most)
            throw new BadInputException($"{file.Source}: predictors section is {length} bytes, more than predictors of full rank take ({most})");
        return file.ReadOnce(SectionKind.Predictors, account, bytes => PredictorSet.Parse(bytes, s.Layers, s.Dim, s.HiddenDim, file.Source));
    }

    /// <summary>Another instance over the same mappings, charged to <paramref name="account"/> for the mapped bytes, so
    /// that each session's account covers the weights it computes with. Safe to call from several threads.</summary>
    /// <exception cref="ObjectDisposedException">This instance was disposed.</exception>
    public ModelWeights Share(DramAccount account)
    {
        lock (_mappings)
        {
            ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
            _mappings.Users++;
        }
        long bytes = _mappings.Bytes;
        try
        {
            account.Charge(bytes, "the model's weights");
        }
        catch
        {
            Release();
            throw;
        }
        return new ModelWeights(_mappings, TokenizerData, Predictors, account, bytes);
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        Account.Release(_charged);
        Release();
    }

    private void Release()
    {
        lock (_mappings)
        {
            if (--_mappings.Users > 0) return;
        }
        _mappings.Resident.Dispose();
        _mappings.Flash?.Dispose();
    }
}
