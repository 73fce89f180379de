using System;
using AotFlash.Flash;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.Text;

namespace AotFlash.Generator
{
    /// <summary>A validated model spec: plain values only, compared by value, so the incremental pipeline caches it.</summary>
    internal sealed record ModelSpec(
        string Name,
        string ClassName,
        ModelFamily Family,
        int Dim,
        int HiddenDim,
        int Layers,
        int Heads,
        int KvHeads,
        int Vocab,
        int Context,
        double NormEps,
        double RopeTheta,
        string Activation,
        double ActivationThreshold,
        bool TieEmbeddings,
        TokenizerSpec Tokenizer,
        WeightType Dtype,
        WeightType ResidentDtype,
        WeightType KvCache,
        FlashSpec Flash,
        string SpecHash);

    internal sealed record TokenizerSpec(string Kind, int Bos, int Eos, EquatableArray<int> Stop, string ChatTemplate);

    internal sealed record FlashSpec(int Window, int PredictorRank, int IoThreads, string DramBudget)
    {
        /// <summary>What a spec without a <c>flash:</c> block (or without one of its keys) gets.</summary>
        public static readonly FlashSpec Default = new FlashSpec(Window: 4, PredictorRank: 32, IoThreads: 8, DramBudget: "50%");
    }

    /// <summary>Where in a YAML file something was written; plain data, turned into a Location when reported.</summary>
    internal sealed record SourceSite(string FilePath, int Start, int Length, int Line, int Column, int EndLine, int EndColumn)
    {
        public Location ToLocation() => Location.Create(FilePath, new TextSpan(Start, Length),
            new LinePositionSpan(new LinePosition(Line, Column), new LinePosition(EndLine, EndColumn)));
    }

    /// <summary>A diagnostic kept as plain data (no Location objects in the pipeline).</summary>
    internal sealed record DiagnosticInfo(DiagnosticDescriptor Descriptor, SourceSite Site, EquatableArray<string> Args)
    {
        public Diagnostic ToDiagnostic()
        {
            var args = new object[Args.Count];
            for (int i = 0; i < args.Length; i++) args[i] = Args[i];
            return Diagnostic.Create(Descriptor, Site.ToLocation(), args);
        }
    }

    /// <summary>The parser's answer for one spec file: the spec when it is valid, and every problem found.</summary>
    internal sealed record ParseResult(ModelSpec? Spec, EquatableArray<DiagnosticInfo> Diagnostics, SourceSite NameSite);
}
