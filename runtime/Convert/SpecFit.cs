using System.Globalization;
using AotFlash.Flash;
using AotFlash.Inference;

namespace AotFlash.Convert;

/// <summary>What a checkpoint declares against the spec compiled into this binary: collects every difference and
/// refuses the checkpoint with all of them in one line.</summary>
internal sealed class SpecFit(ModelInfo info, string source)
{
    private readonly List<string> _mismatches = [];

    /// <summary>Records "<paramref name="name"/> actual (spec: expected)" when the two differ.</summary>
    public void Check(string name, object actual, object expected)
    {
        if (!actual.Equals(expected)) Mismatch($"{name} {Text(actual)} (spec: {Text(expected)})");
    }

    public void Mismatch(string what) => _mismatches.Add(what);

    /// <summary>The family and the numbers every checkpoint header gives (the context and the classifier are each
    /// checkpoint's own business: see <see cref="ThrowIfUnfit"/>).</summary>
    public void CheckShape(ModelFamily family, ModelShape shape)
    {
        var s = info.Shape;
        Check("family", family, info.Family);
        Check("dim", shape.Dim, s.Dim);
        Check("hidden_dim", shape.HiddenDim, s.HiddenDim);
        Check("layers", shape.Layers, s.Layers);
        Check("heads", shape.Heads, s.Heads);
        Check("kv_heads", shape.KvHeads, s.KvHeads);
        Check("vocab", shape.Vocab, s.Vocab);
    }

    /// <summary>Throws with every difference found, or when the checkpoint knows fewer than the spec's context positions.</summary>
    public void ThrowIfUnfit(int positions)
    {
        if (_mismatches.Count > 0)
            throw new BadInputException($"{source}: checkpoint does not fit spec '{info.Name}': it has {string.Join(", ", _mismatches)}");
        if (positions < info.Shape.Context)
            throw new BadInputException($"{source}: checkpoint was trained for {positions} positions, spec '{info.Name}' asks for context {info.Shape.Context}");
    }

    private static string Text(object o) => o switch
    {
        bool b => b ? "true" : "false",
        Enum e => e.ToString().ToLowerInvariant(),
        double d => d.ToString("R", CultureInfo.InvariantCulture),
        _ => System.Convert.ToString(o, CultureInfo.InvariantCulture)!,
    };
}
