using System.Globalization;

namespace AotFlash.Convert;

/// <summary>The names <see cref="IWeightSource"/> is asked for: "token_embedding", or "layers.{l}.{tensor}".</summary>
public static class WeightNames
{
    /// <summary>(layer, tensor) of "layers.{l}.{tensor}"; (null, name) for a model-wide tensor.</summary>
    public static (int? Layer, string Tensor) Split(string name)
    {
        if (!name.StartsWith("layers.", StringComparison.Ordinal)) return (null, name);
        int dot = name.IndexOf('.', 7);
        if (dot < 0 || !int.TryParse(name.AsSpan(7, dot - 7), NumberStyles.None, CultureInfo.InvariantCulture, out int layer))
            return (null, name);
        return (layer, name[(dot + 1)..]);
    }
}
