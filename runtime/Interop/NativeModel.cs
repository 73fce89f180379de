using System.Diagnostics;
using AotFlash.Inference;
using AotFlash.Tokenizers;

namespace AotFlash.Interop;

/// <summary>What an <c>aotflash_model</c> handle stands for: the loaded weights and tokenizer that its sessions share.</summary>
internal sealed class NativeModel : IDisposable
{
    private NativeModel(LoadedModel loaded, ITokenizer tokenizer, Settings settings, double loadMs)
    {
        Loaded = loaded; Tokenizer = tokenizer; Settings = settings; LoadMs = loadMs;
    }

    public LoadedModel Loaded { get; }
    public ModelInfo Info => Loaded.Info;
    public ITokenizer Tokenizer { get; }
    /// <summary>The settings given at open: the sessions' defaults.</summary>
    public Settings Settings { get; }
    public double LoadMs { get; }

    /// <param name="path">A model file, or null for the one packed into the library.</param>
    public static NativeModel Open(string? path, Settings settings)
    {
        var clock = Stopwatch.StartNew();
        settings.Report(0f);
        var info = LibraryModel.Info;
        using var file = LibraryModel.Open(path);
        settings.Report(0.1f);
        var loaded = LoadedModel.Load(info, file, settings.Engine);
        try
        {
            settings.Report(0.9f);
            var tokenizer = info.LoadTokenizer(loaded.Weights, file.Source);
            settings.Report(1f);
            return new NativeModel(loaded, tokenizer, settings, clock.Elapsed.TotalMilliseconds);
        }
        catch
        {
            loaded.Dispose();
            throw;
        }
    }

    private readonly ChatTemplate?[] _templates = new ChatTemplate?[Enum.GetValues<ChatTemplateKind>().Length];

    /// <summary>The chat template of a kind over this model's tokenizer, made once (ChatML looks its markers up in the
    /// vocabulary).</summary>
    public ChatTemplate Template(ChatTemplateKind kind)
    {
        lock (_templates)
            return _templates[(int)kind] ??= new ChatTemplate(kind, Tokenizer, Info.Tokenizer.Bos, Info.Tokenizer.Eos);
    }

    /// <summary>The sessions made from this model keep the weights mapped until they are freed.</summary>
    public void Dispose() => Loaded.Dispose();
}
