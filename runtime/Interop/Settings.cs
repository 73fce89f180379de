using System.Runtime.InteropServices;
using AotFlash.Inference;
using AotFlash.Sampling;

namespace AotFlash.Interop;

/// <summary><c>aotflash_params</c> checked and turned into the engine's and the sampler's options.</summary>
internal sealed unsafe class Settings
{
    private delegate* unmanaged<float, void*, int> _progress;
    private void* _progressUserData;

    public required EngineOptions Engine { get; init; }
    public required SamplerOptions Sampling { get; init; }

    /// <summary>The defaults of <c>aotflash_default_params</c>: the CLI's.</summary>
    public static NativeParams Defaults => new()
    {
        Size = (uint)sizeof(NativeParams),
        Mode = NativeMode.Auto,
        TopK = 40,
        Temperature = 0.8f,
        TopP = 0.95f,
        MinP = 0.05f,
    };

    /// <summary>Reads <paramref name="given"/> (null: the defaults); a caller's struct from an older header (a smaller
    /// size) leaves the fields it lacks at their defaults.</summary>
    public static Settings From(NativeParams* given)
    {
        var p = Defaults;
        if (given is not null)
        {
            uint size = given->Size;
            if (size < sizeof(uint) || size > (uint)sizeof(NativeParams))
                throw new ApiException(Status.InvalidArgument, $"params.size is {size}, not sizeof(aotflash_params) = {sizeof(NativeParams)}: " +
                                                               "start from aotflash_default_params()");
            Buffer.MemoryCopy(given, &p, sizeof(NativeParams), size);
        }
        EngineMode? mode = p.Mode switch
        {
            NativeMode.Auto => null,
            NativeMode.Dense => EngineMode.Dense,
            NativeMode.Naive => EngineMode.Naive,
            NativeMode.Flash => EngineMode.Flash,
            _ => throw new ApiException(Status.InvalidArgument, $"params.mode {(int)p.Mode} is not an aotflash_mode"),
        };
        Check(p.Threads, 0, 1024, "threads");
        Check(p.Window, 0, int.MaxValue, "window");
        Check(p.IoThreads, 0, 256, "io_threads");
        var sampling = new SamplerOptions
        {
            Temperature = p.Temperature,
            TopK = p.TopK,
            TopP = p.TopP,
            MinP = p.MinP,
            Seed = p.Seed != 0 ? p.Seed : (ulong)DateTime.UtcNow.Ticks,
        };
        sampling.Validate();
        return new Settings
        {
            Engine = new EngineOptions
            {
                Mode = mode,
                Threads = p.Threads > 0 ? p.Threads : Threading.CpuTopology.PhysicalCores,
                DramBudget = p.DramBudget is null ? null : Marshal.PtrToStringUTF8((nint)p.DramBudget),
                Window = p.Window,
                IoThreads = p.IoThreads,
                MeasureRecall = p.MeasureRecall != 0,
            },
            Sampling = sampling,
            _progress = p.Progress,
            _progressUserData = p.ProgressUserData,
        };
    }

    private static void Check(int value, int min, int max, string name)
    {
        if (value < min || value > max)
            throw new ApiException(Status.InvalidArgument, $"params.{name} is {value}, outside [{min}, {max}]");
    }

    /// <summary>Tells the progress callback; it cancels by returning non-zero.</summary>
    public void Report(float progress)
    {
        if (_progress is not null && _progress(progress, _progressUserData) != 0)
            throw new ApiException(Status.Cancelled, "opening the model was cancelled by the progress callback");
    }
}
