using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Linq;
using System.Security.Cryptography;
using System.Text;
using AotFlash.Flash;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace AotFlash.Generator
{
    public sealed partial class ModelGenerator
    {
        /// <summary>YAML text → validated <see cref="ModelSpec"/> + diagnostics with file, line and column.</summary>
        internal static class Parser
        {
            private static readonly string[] Families = { "llama", "opt", "falcon" };
            private static readonly string[] Activations = { "relu", "silu", "gelu", "fatrelu(t)" };
            private static readonly string[] Dtypes = { "f32", "f16", "q8", "q4" };
            private static readonly string[] KvCacheTypes = { "f32", "f16" };
            private static readonly string[] TokenizerKinds = { "llama2c", "gpt2" };
            // The runtime's ChatTemplate.Names.
            private static readonly string[] ChatTemplates = { "none", "llama2", "chatml" };

            /// <summary>The norm, position encoding and FFN each family is built from, as spec hashes name them: the
            /// family implies them, so a spec does not write them.</summary>
            private static (string Norm, string Position, string Ffn) Architecture(ModelFamily family) => family switch
            {
                ModelFamily.Opt => ("layernorm", "learned", "plain"),
                ModelFamily.Falcon => ("layernorm", "rope", "parallel plain"),
                _ => ("rmsnorm", "rope", "gated"),
            };

            private static ModelFamily? FamilyOf(string? word) => word switch
            {
                "llama" => ModelFamily.Llama,
                "opt" => ModelFamily.Opt,
                "falcon" => ModelFamily.Falcon,
                _ => null,
            };

            private static WeightType? WeightTypeOf(string? word) => word switch
            {
                "f32" => WeightType.F32,
                "f16" => WeightType.F16,
                "q8" => WeightType.Q8,
                "q4" => WeightType.Q4,
                _ => null,
            };

            public static ParseResult Parse(string path, string text)
            {
                var diagnostics = new List<DiagnosticInfo>();
                var fileStart = new SourceSite(path, 0, 0, 0, 0, 0, 0);
                if (ControlCharacter(path, text) is { } control)
                {
                    diagnostics.Add(Info(DiagnosticDescriptors.MalformedYaml, control.Site, control.Message));
                    return Result(null, diagnostics, fileStart);
                }
                YamlMappingNode? root;
                try
                {
                    var stream = new YamlStream();
                    stream.Load(new StringReader(text));
                    var node = stream.Documents.Count == 0 ? null : stream.Documents[0].RootNode;
                    if (node is null || node is YamlScalarNode { Value: null or "" })
                    {
                        diagnostics.Add(Info(DiagnosticDescriptors.MalformedYaml, fileStart, "the file holds no YAML document"));
                        return Result(null, diagnostics, fileStart);
                    }
                    root = node as YamlMappingNode;
                    if (root is null)
                    {
                        diagnostics.Add(Info(DiagnosticDescriptors.WrongType, Site(path, node), "spec", "a mapping of keys to values", Describe(node)));
                        return Result(null, diagnostics, Site(path, node));
                    }
                }
                catch (YamlException e)
                {
                    var site = new SourceSite(path, (int)e.Start.Index, Math.Max(0, (int)(e.End.Index - e.Start.Index)),
                        (int)e.Start.Line - 1, (int)e.Start.Column - 1, (int)e.End.Line - 1, (int)e.End.Column - 1);
                    diagnostics.Add(Info(DiagnosticDescriptors.MalformedYaml, site, e.Message));
                    return Result(null, diagnostics, fileStart);
                }
                catch (Exception e) when (e is InvalidOperationException or ArgumentException)
                {
                    // YamlDotNet's scanner fails this way on some unterminated flow collections; it gives no position.
                    diagnostics.Add(Info(DiagnosticDescriptors.MalformedYaml, fileStart, "the YAML parser gave up (" + e.Message + "); look for an unclosed [ or {, or a stray character"));
                    return Result(null, diagnostics, fileStart);
                }

                var top = new MappingReader(path, root, "the spec", diagnostics);
                string? name = top.String("name", required: true);
                var nameSite = top.SiteOf("name") ?? Site(path, root);
                ModelFamily? family = FamilyOf(top.Choice("family", Families, required: true));
                int? dim = top.Size("dim", required: true);
                int? hidden = top.Size("hidden_dim", required: true);
                int? layers = top.Size("layers", required: true);
                int? heads = top.Size("heads", required: true);
                int? kvHeads = top.Size("kv_heads", required: false) ?? heads;
                int? vocab = top.Size("vocab", required: true);
                int? context = top.Size("context", required: true);
                foreach (var key in new[] { "norm", "position", "ffn" })
                    top.ImpliedByFamily(key, "llama: rmsnorm, rope, gated FFN; opt: layernorm, learned positions, plain FFN; " +
                                             "falcon: layernorm, rope, plain FFN beside attention");
                double? normEps = top.PositiveNumber("norm_eps") ?? 1e-5;
                double? ropeTheta = top.PositiveNumber("rope_theta") ?? 10000.0;
                (string kind, double threshold)? activation = top.Activation("activation", Activations);
                bool? tie = top.Bool("tie_embeddings") ?? true;

                TokenizerSpec? tokenizer = null;
                var tokReader = top.Mapping("tokenizer", required: true);
                if (tokReader is not null)
                {
                    string? kind = tokReader.Choice("kind", TokenizerKinds, required: true);
                    int? bos = tokReader.TokenId("bos", vocab, required: true);
                    int? eos = tokReader.TokenId("eos", vocab, required: true);
                    int[]? stop = tokReader.TokenIds("stop", vocab) ?? Array.Empty<int>();
                    string? chatTemplate = tokReader.Choice("chat_template", ChatTemplates, required: false) ?? "none";
                    tokReader.RejectUnknownKeys();
                    if (kind is not null && bos is not null && eos is not null && stop is not null)
                        tokenizer = new TokenizerSpec(kind, bos.Value, eos.Value, new EquatableArray<int>(stop), chatTemplate);
                }

                WeightType? dtype = WeightType.F32, resident = null;
                var weightsReader = top.Mapping("weights", required: false);
                if (weightsReader is not null)
                {
                    dtype = WeightTypeOf(weightsReader.Choice("dtype", Dtypes, required: false) ?? "f32");
                    // The resident section's matrices may be smaller than the FFN's: more of a budget for the caches.
                    resident = WeightTypeOf(weightsReader.Choice("resident", Dtypes, required: false));
                    weightsReader.RejectUnknownKeys();
                }
                resident ??= dtype;
                WeightType? kvCache = WeightTypeOf(top.Choice("kv_cache", KvCacheTypes, required: false) ?? "f32");

                FlashSpec? flash = FlashSpec.Default;
                var flashReader = top.Mapping("flash", required: false);
                if (flashReader is not null)
                {
                    int? window = flashReader.Size("window", required: false) ?? flash.Window;
                    int? rank = flashReader.Size("predictor_rank", required: false) ?? flash.PredictorRank;
                    int? ioThreads = flashReader.Size("io_threads", required: false) ?? flash.IoThreads;
                    string? budget = flashReader.DramBudget("dram_budget") ?? flash.DramBudget;
                    flashReader.RejectUnknownKeys();
                    flash = window is null || rank is null || ioThreads is null || budget is null
                        ? null : new FlashSpec(window.Value, rank.Value, ioThreads.Value, budget);
                }
                top.RejectUnknownKeys();

                if (name is not null && !IsValidName(name))
                    diagnostics.Add(Info(DiagnosticDescriptors.InvalidValue, nameSite, "name",
                        "'" + name + "' must start with a letter or digit, hold only letters, digits, '.', '-' and '_', and be shorter than 64 characters"));
                if (family == ModelFamily.Opt && heads is not null && kvHeads is not null && kvHeads != heads)
                    diagnostics.Add(Info(DiagnosticDescriptors.InvalidValue, top.SiteOf("kv_heads")!, "kv_heads",
                        "family opt has multi-head attention, so kv_heads must equal heads (" + Str(heads.Value) + ")"));
                if (dim is not null && heads is not null && dim % heads != 0)
                    diagnostics.Add(Info(DiagnosticDescriptors.DimNotDivisibleByHeads, top.SiteOf("heads")!, Str(dim.Value), Str(heads.Value)));
                else if (family is ModelFamily.Llama or ModelFamily.Falcon && dim is not null && heads is not null && dim / heads % 2 != 0)
                    diagnostics.Add(Info(DiagnosticDescriptors.InvalidValue, top.SiteOf("heads")!, "heads",
                        "RoPE needs an even head size, but dim / heads = " + Str(dim.Value / heads.Value)));
                foreach (var (key, type) in new[] { ("dtype", dtype), ("resident", resident) })
                    if (dim is not null && (type == WeightType.Q8 || type == WeightType.Q4) && dim % Layout.QuantGroup != 0
                        && weightsReader?.SiteOf(key) is { } site)
                    {
                        diagnostics.Add(Info(DiagnosticDescriptors.DimNotDivisibleByQuantGroup, site, Word(type.Value), Str(dim.Value), Str(Layout.QuantGroup)));
                        break;
                    }
                if (heads is not null && kvHeads is not null && heads % kvHeads != 0)
                    diagnostics.Add(Info(DiagnosticDescriptors.HeadsNotDivisibleByKvHeads, top.SiteOf("kv_heads") ?? top.SiteOf("heads")!,
                        Str(heads.Value), Str(kvHeads.Value)));

                if (diagnostics.Count > 0 || name is null || family is null || dim is null || hidden is null || layers is null
                    || heads is null || kvHeads is null || vocab is null || context is null || normEps is null
                    || ropeTheta is null || activation is null || tie is null
                    || tokenizer is null || dtype is null || resident is null || kvCache is null || flash is null)
                    return Result(null, diagnostics, nameSite);

                string hash = SpecHash(family.Value, dim.Value, hidden.Value, layers.Value, heads.Value, kvHeads.Value, vocab.Value,
                    context.Value, normEps.Value, ropeTheta.Value, activation.Value.kind, activation.Value.threshold, tie.Value, dtype.Value, resident.Value);
                var spec = new ModelSpec(name, ClassNameOf(name), family.Value, dim.Value, hidden.Value, layers.Value, heads.Value,
                    kvHeads.Value, vocab.Value, context.Value, normEps.Value, ropeTheta.Value,
                    activation.Value.kind, activation.Value.threshold, tie.Value, tokenizer, dtype.Value, resident.Value, kvCache.Value, flash, hash);
                return Result(spec, diagnostics, nameSite);
            }

            /// <summary>The first character YAML does not allow in a file (C0 controls other than tab, line feed and
            /// carriage return, and DEL), where it is.</summary>
            private static (SourceSite Site, string Message)? ControlCharacter(string path, string text)
            {
                int line = 0, column = 0;
                for (int i = 0; i < text.Length; i++)
                {
                    char c = text[i];
                    if ((c < 0x20 && c != '\t' && c != '\n' && c != '\r') || c == 0x7F)
                        return (new SourceSite(path, i, 1, line, column, line, column + 1),
                                "control character U+" + ((int)c).ToString("X4", CultureInfo.InvariantCulture) + " is not allowed in YAML");
                    if (c == '\n') { line++; column = 0; }
                    else column++;
                }
                return null;
            }

            /// <summary>Hash of everything that decides the math and the byte layout (not the name, not flash defaults,
            /// not the KV cache's type, which any weights serve), written into model files so a binary refuses weights
            /// made for another shape. It still names the family's
            /// norm, position encoding and FFN, as it did when specs wrote them, so model files made then keep their hash;
            /// for the same reason the resident weights' type is named only where it differs from the FFN's.</summary>
            internal static string SpecHash(ModelFamily family, int dim, int hidden, int layers, int heads, int kvHeads, int vocab,
                int context, double normEps, double ropeTheta, string activation, double threshold, bool tie, WeightType dtype,
                WeightType resident)
            {
                var (norm, position, ffn) = Architecture(family);
                var fields = new List<string>
                {
                    "aotflash-spec-v1", Word(family), Str(dim), Str(hidden), Str(layers), Str(heads), Str(kvHeads), Str(vocab), Str(context),
                    norm, normEps.ToString("R", CultureInfo.InvariantCulture), position, ropeTheta.ToString("R", CultureInfo.InvariantCulture),
                    ffn, activation, threshold.ToString("R", CultureInfo.InvariantCulture), tie ? "tied" : "untied", Word(dtype),
                };
                if (resident != dtype) fields.Add("resident " + Word(resident));
                string canonical = string.Join(";", fields);
                using var sha = SHA256.Create();
                byte[] digest = sha.ComputeHash(Encoding.UTF8.GetBytes(canonical));
                var sb = new StringBuilder(32);
                for (int i = 0; i < 16; i++) sb.Append(digest[i].ToString("x2", CultureInfo.InvariantCulture));
                return sb.ToString();
            }

            /// <summary>"stories260K-relu" → "Stories260KReluModel".</summary>
            internal static string ClassNameOf(string name)
            {
                var sb = new StringBuilder();
                foreach (var part in name.Split(new[] { '-', '_', '.' }, StringSplitOptions.RemoveEmptyEntries))
                    sb.Append(char.ToUpperInvariant(part[0])).Append(part, 1, part.Length - 1);
                if (sb.Length == 0 || char.IsDigit(sb[0])) sb.Insert(0, 'M');
                return sb.Append("Model").ToString();
            }

            private static bool IsValidName(string name) =>
                name.Length > 0 && name.Length < 64 && char.IsLetterOrDigit(name[0]) && name.All(c => c < 128 && (char.IsLetterOrDigit(c) || c == '-' || c == '_' || c == '.'));

            private static ParseResult Result(ModelSpec? spec, List<DiagnosticInfo> diagnostics, SourceSite nameSite) =>
                new ParseResult(spec, new EquatableArray<DiagnosticInfo>(diagnostics), nameSite);

            internal static DiagnosticInfo Info(Microsoft.CodeAnalysis.DiagnosticDescriptor d, SourceSite site, params string[] args) =>
                new DiagnosticInfo(d, site, new EquatableArray<string>(args));

            private static string Str(int v) => v.ToString(CultureInfo.InvariantCulture);

            /// <summary>An enum value as specs write it: ModelFamily.Opt → "opt", WeightType.Q8 → "q8".</summary>
            internal static string Word(Enum value) => value.ToString().ToLowerInvariant();

            internal static SourceSite Site(string path, YamlNode node) =>
                new SourceSite(path, (int)node.Start.Index, Math.Max(0, (int)(node.End.Index - node.Start.Index)),
                    (int)node.Start.Line - 1, (int)node.Start.Column - 1, (int)node.End.Line - 1, (int)node.End.Column - 1);

            private static string Describe(YamlNode node) => node switch
            {
                YamlScalarNode s => s.Value ?? "",
                YamlSequenceNode => "a list",
                YamlMappingNode => "a mapping",
                _ => node.NodeType.ToString(),
            };

            /// <summary>Reads the keys of one YAML mapping, recording each problem as a diagnostic.</summary>
            private sealed class MappingReader
            {
                private readonly string _path;
                private readonly YamlMappingNode _node;
                private readonly string _where;
                private readonly List<DiagnosticInfo> _diagnostics;
                private readonly List<string> _known = new List<string>();
                private readonly List<string> _implied = new List<string>();

                public MappingReader(string path, YamlMappingNode node, string where, List<DiagnosticInfo> diagnostics)
                { _path = path; _node = node; _where = where; _diagnostics = diagnostics; }

                public SourceSite? SiteOf(string key) => Find(key) is { } v ? Site(_path, v) : null;

                /// <summary>Reports <paramref name="key"/>, when present, as one the family decides.</summary>
                public void ImpliedByFamily(string key, string families)
                {
                    _implied.Add(key);
                    foreach (var pair in _node.Children)
                        if (pair.Key is YamlScalarNode k && k.Value == key)
                            Report(DiagnosticDescriptors.ImpliedByFamily, Site(_path, pair.Key), key, families);
                }

                private YamlNode? Find(string key)
                {
                    foreach (var pair in _node.Children)
                        if (pair.Key is YamlScalarNode k && k.Value == key) return pair.Value;
                    return null;
                }

                private YamlNode? Get(string key, bool required)
                {
                    _known.Add(key);
                    var value = Find(key);
                    if (value is null && required)
                        Report(DiagnosticDescriptors.MissingKey, Site(_path, _node), key, _where);
                    return value;
                }

                private void Report(Microsoft.CodeAnalysis.DiagnosticDescriptor d, SourceSite site, params string[] args) =>
                    _diagnostics.Add(Info(d, site, args));

                /// <summary>A plain (unquoted) scalar, or null after reporting a type error.</summary>
                private string? Scalar(string key, YamlNode node, string expected, bool plainOnly)
                {
                    if (node is YamlScalarNode s && (!plainOnly || s.Style == ScalarStyle.Plain) && s.Value is { Length: > 0 })
                        return s.Value;
                    Report(DiagnosticDescriptors.WrongType, Site(_path, node), key, expected, Describe(node));
                    return null;
                }

                public string? String(string key, bool required)
                {
                    var node = Get(key, required);
                    return node is null ? null : Scalar(key, node, "a string", plainOnly: false);
                }

                public string? Choice(string key, string[] allowed, bool required)
                {
                    var node = Get(key, required);
                    if (node is null) return null;
                    string? value = Scalar(key, node, "one of " + string.Join(", ", allowed), plainOnly: false);
                    if (value is null) return null;
                    if (Array.IndexOf(allowed, value) >= 0) return value;
                    Report(DiagnosticDescriptors.Unsupported, Site(_path, node), key, value, string.Join(", ", allowed));
                    return null;
                }

                private int? Integer(string key, YamlNode node)
                {
                    string? text = Scalar(key, node, "an integer", plainOnly: true);
                    if (text is null) return null;
                    if (int.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out int v)) return v;
                    Report(DiagnosticDescriptors.WrongType, Site(_path, node), key, "an integer", text);
                    return null;
                }

                public int? Size(string key, bool required)
                {
                    var node = Get(key, required);
                    if (node is null) return null;
                    int? v = Integer(key, node);
                    if (v is null) return null;
                    if (v > 0) return v;
                    Report(DiagnosticDescriptors.NotPositive, Site(_path, node), key, Str(v.Value));
                    return null;
                }

                public double? PositiveNumber(string key)
                {
                    var node = Get(key, required: false);
                    if (node is null) return null;
                    string? text = Scalar(key, node, "a number", plainOnly: true);
                    if (text is null) return null;
                    if (!double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out double v))
                    {
                        Report(DiagnosticDescriptors.WrongType, Site(_path, node), key, "a number", text);
                        return null;
                    }
                    if (v > 0 && !double.IsInfinity(v)) return v;
                    Report(DiagnosticDescriptors.InvalidValue, Site(_path, node), key, "must be a positive number, but is " + text);
                    return null;
                }

                public bool? Bool(string key)
                {
                    var node = Get(key, required: false);
                    if (node is null) return null;
                    string? text = Scalar(key, node, "true or false", plainOnly: true);
                    if (text is null) return null;
                    if (text == "true") return true;
                    if (text == "false") return false;
                    Report(DiagnosticDescriptors.WrongType, Site(_path, node), key, "true or false", text);
                    return null;
                }

                public (string, double)? Activation(string key, string[] allowed)
                {
                    var node = Get(key, required: false);
                    if (node is null) return ("silu", 0.0);
                    string? text = Scalar(key, node, "one of " + string.Join(", ", allowed), plainOnly: false);
                    if (text is null) return null;
                    if (text == "relu" || text == "silu" || text == "gelu") return (text, 0.0);
                    if (text.StartsWith("fatrelu(", StringComparison.Ordinal) && text.EndsWith(")", StringComparison.Ordinal)
                        && double.TryParse(text.Substring(8, text.Length - 9), NumberStyles.Float, CultureInfo.InvariantCulture, out double t)
                        && t >= 0 && !double.IsInfinity(t))
                        return ("fatrelu", t);
                    Report(DiagnosticDescriptors.Unsupported, Site(_path, node), key, text, string.Join(", ", allowed) + " with t >= 0");
                    return null;
                }

                public int? TokenId(string key, int? vocab, bool required)
                {
                    var node = Get(key, required);
                    return node is null ? null : CheckTokenId(key, node, vocab);
                }

                private int? CheckTokenId(string key, YamlNode node, int? vocab)
                {
                    int? v = Integer(key, node);
                    if (v is null) return null;
                    if (v >= 0 && (vocab is null || v < vocab)) return v;
                    Report(DiagnosticDescriptors.InvalidValue, Site(_path, node), key,
                        "token id " + Str(v.Value) + " is outside the vocabulary [0, " + (vocab is null ? "vocab" : Str(vocab.Value)) + ")");
                    return null;
                }

                public int[]? TokenIds(string key, int? vocab)
                {
                    var node = Get(key, required: false);
                    if (node is null) return null;
                    if (node is not YamlSequenceNode list)
                    {
                        Report(DiagnosticDescriptors.WrongType, Site(_path, node), key, "a list of token ids", Describe(node));
                        return null;
                    }
                    var ids = new List<int>();
                    bool ok = true;
                    foreach (var item in list.Children)
                    {
                        int? id = CheckTokenId(key, item, vocab);
                        if (id is null) ok = false; else ids.Add(id.Value);
                    }
                    return ok ? ids.ToArray() : null;
                }

                /// <summary>A <see cref="AotFlash.Flash.DramBudget"/> of at most 100% (a spec cannot ask for more than the model).</summary>
                public string? DramBudget(string key)
                {
                    var node = Get(key, required: false);
                    if (node is null) return null;
                    const string Expected = AotFlash.Flash.DramBudget.Syntax + ", at most 100%";
                    string? text = Scalar(key, node, Expected, plainOnly: false);
                    if (text is null) return null;
                    if (AotFlash.Flash.DramBudget.TryParse(text, maxPercent: 100, out _)) return text;
                    Report(DiagnosticDescriptors.WrongType, Site(_path, node), key, Expected, text);
                    return null;
                }

                public MappingReader? Mapping(string key, bool required)
                {
                    var node = Get(key, required);
                    if (node is null) return null;
                    if (node is YamlMappingNode m) return new MappingReader(_path, m, "'" + key + "'", _diagnostics);
                    Report(DiagnosticDescriptors.WrongType, Site(_path, node), key, "a mapping", Describe(node));
                    return null;
                }

                public void RejectUnknownKeys()
                {
                    foreach (var pair in _node.Children)
                    {
                        if (pair.Key is YamlScalarNode k && k.Value is { } name && (_known.Contains(name) || _implied.Contains(name))) continue;
                        Report(DiagnosticDescriptors.UnknownKey, Site(_path, pair.Key), Describe(pair.Key), _where, string.Join(", ", _known));
                    }
                }
            }
        }
    }
}
