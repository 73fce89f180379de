using System.CodeDom.Compiler;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Linq;
using AotFlash.Flash;

namespace AotFlash.Generator
{
    public sealed partial class ModelGenerator
    {
        /// <summary><see cref="ModelSpec"/> → C#: a sealed model class with constant dimensions, constant byte offsets
        /// and the layer loop unrolled into one call per layer.</summary>
        internal static class Emitter
        {
            public static string EmitModel(ModelSpec spec, string specFile)
            {
                bool opt = spec.Family == ModelFamily.Opt, falcon = spec.Family == ModelFamily.Falcon;
                var layout = new Layout(ShapeOf(spec), spec.Family);
                var (sw, w) = Begin();
                // The runtime's weight format structs are named as the WeightType values.
                string weights = "global::AotFlash.Flash." + spec.Dtype, resident = "global::AotFlash.Flash." + spec.ResidentDtype;
                var (activationKind, activation) = spec.Activation switch
                {
                    "relu" => ("Relu", "global::AotFlash.Kernels.Relu"),
                    "silu" => ("Silu", "global::AotFlash.Kernels.Silu"),
                    "gelu" => ("Gelu", "global::AotFlash.Kernels.Gelu"),
                    _ => ("FatRelu", spec.ClassName + ".FatRelu"),
                };
                w.WriteLine($"/// <summary>{spec.Name}: {Parser.Word(spec.Family)}, dim {spec.Dim}, hidden {spec.HiddenDim}, {spec.Layers} layers, " +
                            $"{spec.Heads} heads ({spec.KvHeads} kv), vocab {spec.Vocab}, context {spec.Context}, {spec.Activation}, {Parser.Word(spec.Dtype)}" +
                            (spec.ResidentDtype == spec.Dtype ? "" : $" (resident {Parser.Word(spec.ResidentDtype)})") + ". " +
                            $"Generated from {specFile}.</summary>");
                string baseClass = opt ? "OptTransformer" : falcon ? "FalconTransformer" : "LlamaTransformer";
                w.WriteLine($"public sealed unsafe partial class {spec.ClassName} : global::AotFlash.Inference.{baseClass}<{weights}, {resident}, {activation}>");
                w.WriteLine("{");
                w.Indent++;

                w.WriteLine($"public const string ModelName = {Literal(spec.Name)};");
                w.WriteLine($"/// <summary>Hash of the math- and layout-relevant part of the spec; model files carry it.</summary>");
                w.WriteLine($"public const string SpecHash = {Literal(spec.SpecHash)};");
                foreach (var (name, value) in new[]
                         {
                             ("Dim", spec.Dim), ("HiddenDim", spec.HiddenDim), ("Layers", spec.Layers), ("Heads", spec.Heads),
                             ("KvHeads", spec.KvHeads), ("HeadSize", spec.Dim / spec.Heads), ("KvDim", spec.Dim / spec.Heads * spec.KvHeads),
                             ("Vocab", spec.Vocab), ("Context", spec.Context),
                         })
                    w.WriteLine($"public const int {name} = {Int(value)};");
                w.WriteLine($"private const float NormEps = {Float(spec.NormEps)};");
                w.WriteLine($"private const float RopeTheta = {Float(spec.RopeTheta)};");
                w.WriteLine();
                w.WriteLine("// Byte offsets in the resident section.");
                w.WriteLine($"private const long TokenEmbedding = {Long(layout.TokenEmbedding.Offset)};");
                if (layout.PositionEmbedding is { } positions)
                {
                    w.WriteLine($"private const long PositionEmbedding = {Long(positions.Offset)};");
                    w.WriteLine($"private const int PositionOffset = {Int(Layout.OptPositionOffset)}; // the table's first rows are never used");
                }
                w.WriteLine($"private const long FinalNorm = {Long(layout.FinalNorm.Offset)};");
                if (layout.FinalNormBias is { } finalBias) w.WriteLine($"private const long FinalNormBias = {Long(finalBias.Offset)};");
                w.WriteLine($"private const long Classifier = {Long(layout.Classifier.Offset)};{(spec.TieEmbeddings ? " // tied: the token embedding" : "")}");
                if (falcon)
                {
                    w.WriteLine("// Flash section: neuron i of a layer is one bundle [fc1 row | fc2 column] at (layer's FFN offset) + i * BundleStride.");
                    w.WriteLine($"private const long BundleStride = {Long(layout.BundleStride)};");
                    w.WriteLine($"private const long BundleDown = {Long(layout.BundleDown)};");
                }
                else if (opt)
                {
                    w.WriteLine("// Flash section: neuron i of a layer is one bundle [fc1 row | fc2 column | fc1 bias] at (layer's FFN offset) + i * BundleStride.");
                    w.WriteLine($"private const long BundleStride = {Long(layout.BundleStride)};");
                    w.WriteLine($"private const long BundleDown = {Long(layout.BundleDown)};");
                    w.WriteLine($"private const long BundleBias = {Long(layout.BundleBias)};");
                }
                else
                {
                    w.WriteLine("// Flash section: neuron i of a layer is one bundle [gate row | up row | down column] at (layer's FFN offset) + i * BundleStride.");
                    w.WriteLine($"private const long BundleStride = {Long(layout.BundleStride)};");
                    w.WriteLine($"private const long BundleUp = {Long(layout.BundleUp)};");
                    w.WriteLine($"private const long BundleDown = {Long(layout.BundleDown)};");
                }
                w.WriteLine();

                w.WriteLine("public static global::AotFlash.Inference.ModelInfo Definition { get; } = new global::AotFlash.Inference.ModelInfo(");
                w.Indent++;
                w.WriteLine($"ModelName, SpecHash, global::AotFlash.Flash.ModelFamily.{spec.Family},");
                w.WriteLine($"new global::AotFlash.Flash.ModelShape(Dim, HiddenDim, Layers, Heads, KvHeads, Vocab, Context, " +
                            $"global::AotFlash.Flash.WeightType.{spec.Dtype}, tiedEmbeddings: {(spec.TieEmbeddings ? "true" : "false")}" +
                            (spec.ResidentDtype == spec.Dtype ? "" : $", residentWeights: global::AotFlash.Flash.WeightType.{spec.ResidentDtype}") + "),");
                w.WriteLine($"NormEps, RopeTheta, new global::AotFlash.Inference.Activation(global::AotFlash.Inference.ActivationKind.{activationKind}" +
                            (spec.Activation == "fatrelu" ? $", Threshold: {Float(spec.ActivationThreshold)})," : "),"));
                w.WriteLine($"new global::AotFlash.Inference.TokenizerConfig(global::AotFlash.Tokenizers.TokenizerKind.{TokenizerKindOf(spec.Tokenizer.Kind)}, Bos: {Int(spec.Tokenizer.Bos)}, Eos: {Int(spec.Tokenizer.Eos)}, " +
                            $"Stop: new int[] {{ {string.Join(", ", spec.Tokenizer.Stop)} }}" +
                            (spec.Tokenizer.ChatTemplate == "none" ? "" : $", ChatTemplate: global::AotFlash.Tokenizers.ChatTemplateKind.{ChatTemplateKindOf(spec.Tokenizer.ChatTemplate)}") + "),");
                w.WriteLine($"new global::AotFlash.Inference.FlashDefaults(Window: {Int(spec.Flash.Window)}, PredictorRank: {Int(spec.Flash.PredictorRank)}, " +
                            $"IoThreads: {Int(spec.Flash.IoThreads)}, DramBudget: {Literal(spec.Flash.DramBudget)}),");
                w.WriteLine($"static (weights, ffn, threads) => new {spec.ClassName}(weights, ffn, threads)" +
                            (spec.KvCache == WeightType.F32 ? ");" : $", kvCache: global::AotFlash.Flash.WeightType.{spec.KvCache});"));
                w.Indent--;
                w.WriteLine();

                w.WriteLine($"private {spec.ClassName}(global::AotFlash.Inference.ModelWeights weights, global::AotFlash.Ffn.IFfnSource ffn, int threads)");
                w.WriteLine("    : base(Definition, weights, ffn, threads) { }");
                w.WriteLine();

                if (spec.Activation == "fatrelu")
                {
                    w.WriteLine($"/// <summary>FATReLU: x above {spec.ActivationThreshold.ToString("R", CultureInfo.InvariantCulture)} passes, everything else is 0.</summary>");
                    w.WriteLine("public readonly struct FatRelu : global::AotFlash.Kernels.IActivation");
                    w.WriteLine("{");
                    w.Indent++;
                    w.WriteLine($"public static float Apply(float x) => x > {Float(spec.ActivationThreshold)} ? x : 0f;");
                    w.WriteLine($"public static void Apply(float* x, int n) => global::AotFlash.Kernels.VectorOps.Relu(x, n, {Float(spec.ActivationThreshold)});");
                    w.Indent--;
                    w.WriteLine("}");
                    w.WriteLine();
                }

                w.WriteLine("/// <summary>tokens[count] at positions pos, pos + 1, … through every layer: x[count, dim] holds their final hidden states.</summary>");
                w.WriteLine("protected override void Compute(int* tokens, int count, int pos)");
                w.WriteLine("{");
                w.Indent++;
                if (opt) EmitOptForward(w, layout);
                else if (falcon) EmitFalconForward(w, layout);
                else EmitLlamaForward(w, layout);
                w.Indent--;
                w.WriteLine("}");
                w.WriteLine();
                w.WriteLine("/// <summary>logits[vocab] = Classifier[vocab, dim] · x[row, :]</summary>");
                w.WriteLine("protected override void Classify(int row) => MatMul(LogitsPointer, Classifier, X + (long)row * Dim, 1, Vocab, Dim);");
                w.WriteLine();
                w.WriteLine("[global::System.Runtime.CompilerServices.MethodImpl(global::System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]");
                if (opt) EmitOptLayer(w);
                else if (falcon) EmitFalconLayer(w);
                else EmitLlamaLayer(w);
                w.Indent--;
                w.WriteLine("}");
                w.Indent--;
                w.WriteLine("}");
                return sw.ToString();
            }

            private static void EmitLlamaForward(IndentedTextWriter w, Layout layout)
            {
                w.WriteLine("Embed(X, TokenEmbedding, tokens, count, Dim);");
                foreach (var (l, s) in layout.Layers.Select((s, l) => (l, s)))
                    w.WriteLine($"Layer(pos, count, {Int(l)}, attnNorm: {Long(s.AttnNorm.Offset)}, wq: {Long(s.Wq.Offset)}, wk: {Long(s.Wk.Offset)}, " +
                                $"wv: {Long(s.Wv.Offset)}, wo: {Long(s.Wo.Offset)}, ffnNorm: {Long(s.FfnNorm!.Offset)}, ffn: {Long(s.FfnBundles)});");
                w.WriteLine("RmsNorm(X, X, FinalNorm, count, Dim, NormEps);");
            }

            private static void EmitLlamaLayer(IndentedTextWriter w)
            {
                w.WriteLine("private void Layer(int pos, int count, int layer, long attnNorm, long wq, long wk, long wv, long wo, long ffnNorm, long ffn)");
                w.WriteLine("{");
                w.Indent++;
                w.WriteLine("// the block's keys and values, which Attention puts in the cache at positions pos .. pos + count - 1");
                w.WriteLine("float* k = K;");
                w.WriteLine("float* v = V;");
                w.WriteLine("// attention, x[count, dim]: xb = rmsnorm(x); q, k, v = xb·Wqᵀ, xb·Wkᵀ, xb·Wvᵀ; rope(q, k); xb = attend(q, cache); x += xb·Woᵀ");
                w.WriteLine("RmsNorm(Xb, X, attnNorm, count, Dim, NormEps);");
                w.WriteLine("MatMul(Q, wq, Xb, count, Dim, Dim);");
                w.WriteLine("MatMul(k, wk, Xb, count, KvDim, Dim, prepared: true);");
                w.WriteLine("MatMul(v, wv, Xb, count, KvDim, Dim, prepared: true);");
                w.WriteLine("Rope(Q, k, pos, count, Dim, KvDim, HeadSize);");
                w.WriteLine("Attention(Xb, layer, pos, count, Heads, KvHeads, HeadSize, Context);");
                w.WriteLine("MatMul(Xb2, wo, Xb, count, Dim, Dim);");
                w.WriteLine("Add(X, Xb2, count, Dim);");
                w.WriteLine("// feed-forward over the neuron bundles the FFN source selects: xb = rmsnorm(x); x_t += Σ_i act(gate_i·xb_t) (up_i·xb_t) down_i");
                w.WriteLine("RmsNorm(Xb, X, ffnNorm, count, Dim, NormEps);");
                w.WriteLine("GatedFfn(Xb2, Xb, count, layer, ffn, Dim, BundleStride, BundleUp, BundleDown);");
                w.WriteLine("Add(X, Xb2, count, Dim);");
                w.Indent--;
                w.WriteLine("}");
            }

            private static void EmitOptForward(IndentedTextWriter w, Layout layout)
            {
                w.WriteLine("// x[count, dim] = token embeddings + learned position embeddings");
                w.WriteLine("Embed(X, TokenEmbedding, tokens, count, Dim);");
                w.WriteLine("EmbedRows(Xb, PositionEmbedding, pos + PositionOffset, count, Dim);");
                w.WriteLine("Add(X, Xb, count, Dim);");
                foreach (var (l, s) in layout.Layers.Select((s, l) => (l, s)))
                {
                    var b = s.Biases!;
                    w.WriteLine($"Layer(pos, count, {Int(l)}, attnNorm: {Long(s.AttnNorm.Offset)}, attnNormBias: {Long(b.AttnNorm.Offset)}, " +
                                $"wq: {Long(s.Wq.Offset)}, bq: {Long(b.Q!.Offset)}, wk: {Long(s.Wk.Offset)}, bk: {Long(b.K!.Offset)}, " +
                                $"wv: {Long(s.Wv.Offset)}, bv: {Long(b.V!.Offset)}, wo: {Long(s.Wo.Offset)}, bo: {Long(b.O!.Offset)}, " +
                                $"ffnNorm: {Long(s.FfnNorm!.Offset)}, ffnNormBias: {Long(b.FfnNorm!.Offset)}, ffnDownBias: {Long(b.FfnDown!.Offset)}, " +
                                $"ffn: {Long(s.FfnBundles)});");
                }
                w.WriteLine("LayerNorm(X, X, FinalNorm, FinalNormBias, count, Dim, NormEps);");
            }

            private static void EmitOptLayer(IndentedTextWriter w)
            {
                w.WriteLine("private void Layer(int pos, int count, int layer, long attnNorm, long attnNormBias, long wq, long bq, long wk, long bk, long wv, long bv,");
                w.WriteLine("                   long wo, long bo, long ffnNorm, long ffnNormBias, long ffnDownBias, long ffn)");
                w.WriteLine("{");
                w.Indent++;
                w.WriteLine("// the block's keys and values, which Attention puts in the cache at positions pos .. pos + count - 1");
                w.WriteLine("float* k = K;");
                w.WriteLine("float* v = V;");
                w.WriteLine("// attention, x[count, dim]: xb = layernorm(x); q, k, v = xb·Wqᵀ + bq, xb·Wkᵀ + bk, xb·Wvᵀ + bv; xb = attend(q, cache); x += xb·Woᵀ + bo");
                w.WriteLine("LayerNorm(Xb, X, attnNorm, attnNormBias, count, Dim, NormEps);");
                w.WriteLine("MatMul(Q, wq, Xb, count, Dim, Dim);");
                w.WriteLine("AddBias(Q, bq, count, Dim);");
                w.WriteLine("MatMul(k, wk, Xb, count, KvDim, Dim, prepared: true);");
                w.WriteLine("AddBias(k, bk, count, KvDim);");
                w.WriteLine("MatMul(v, wv, Xb, count, KvDim, Dim, prepared: true);");
                w.WriteLine("AddBias(v, bv, count, KvDim);");
                w.WriteLine("Attention(Xb, layer, pos, count, Heads, KvHeads, HeadSize, Context);");
                w.WriteLine("MatMul(Xb2, wo, Xb, count, Dim, Dim);");
                w.WriteLine("AddBias(Xb2, bo, count, Dim);");
                w.WriteLine("Add(X, Xb2, count, Dim);");
                w.WriteLine("// feed-forward over the neuron bundles the FFN source selects: xb = layernorm(x); x_t += Σ_i act(fc1_i·xb_t + b1_i) fc2_i + b2");
                w.WriteLine("LayerNorm(Xb, X, ffnNorm, ffnNormBias, count, Dim, NormEps);");
                w.WriteLine("PlainFfn(Xb2, Xb, count, layer, ffn, Dim, BundleStride, BundleDown, BundleBias);");
                w.WriteLine("AddBias(Xb2, ffnDownBias, count, Dim);");
                w.WriteLine("Add(X, Xb2, count, Dim);");
                w.Indent--;
                w.WriteLine("}");
            }

            private static void EmitFalconForward(IndentedTextWriter w, Layout layout)
            {
                w.WriteLine("Embed(X, TokenEmbedding, tokens, count, Dim);");
                foreach (var (l, s) in layout.Layers.Select((s, l) => (l, s)))
                    w.WriteLine($"Layer(pos, count, {Int(l)}, norm: {Long(s.AttnNorm.Offset)}, normBias: {Long(s.Biases!.AttnNorm.Offset)}, " +
                                $"wq: {Long(s.Wq.Offset)}, wk: {Long(s.Wk.Offset)}, wv: {Long(s.Wv.Offset)}, wo: {Long(s.Wo.Offset)}, ffn: {Long(s.FfnBundles)});");
                w.WriteLine("LayerNorm(X, X, FinalNorm, FinalNormBias, count, Dim, NormEps);");
            }

            private static void EmitFalconLayer(IndentedTextWriter w)
            {
                w.WriteLine("private void Layer(int pos, int count, int layer, long norm, long normBias, long wq, long wk, long wv, long wo, long ffn)");
                w.WriteLine("{");
                w.Indent++;
                w.WriteLine("// the block's keys and values, which Attention puts in the cache at positions pos .. pos + count - 1");
                w.WriteLine("float* k = K;");
                w.WriteLine("float* v = V;");
                w.WriteLine("// attention and feed-forward side by side on one layernorm: x += (Σ_i act(fc1_i·xb) fc2_i) + attend(xb·Wqᵀ, xb·Wkᵀ, xb·Wvᵀ)·Woᵀ");
                w.WriteLine("LayerNorm(Xb, X, norm, normBias, count, Dim, NormEps);");
                w.WriteLine("PlainFfn(Xb2, Xb, count, layer, ffn, Dim, BundleStride, BundleDown, -1);");
                w.WriteLine("MatMul(Q, wq, Xb, count, Dim, Dim);");
                w.WriteLine("MatMul(k, wk, Xb, count, KvDim, Dim, prepared: true);");
                w.WriteLine("MatMul(v, wv, Xb, count, KvDim, Dim, prepared: true);");
                w.WriteLine("Rope(Q, k, pos, count, Dim, KvDim, HeadSize);");
                w.WriteLine("Attention(Xb, layer, pos, count, Heads, KvHeads, HeadSize, Context);");
                w.WriteLine("MatMul(Q, wo, Xb, count, Dim, Dim);");
                w.WriteLine("Add(Xb2, Q, count, Dim);");
                w.WriteLine("Add(X, Xb2, count, Dim);");
                w.Indent--;
                w.WriteLine("}");
            }

            public static string EmitCatalog(IEnumerable<string> classNames)
            {
                var (sw, w) = Begin();
                w.WriteLine("/// <summary>Every model compiled into this assembly (one per spec in AdditionalFiles).</summary>");
                w.WriteLine("public static partial class ModelCatalog");
                w.WriteLine("{");
                w.Indent++;
                w.WriteLine("public static global::System.Collections.Generic.IReadOnlyList<global::AotFlash.Inference.ModelInfo> All { get; } =");
                w.Indent++;
                w.WriteLine("new global::AotFlash.Inference.ModelInfo[]");
                w.WriteLine("{");
                w.Indent++;
                foreach (var className in classNames) w.WriteLine(className + ".Definition,");
                w.Indent--;
                w.WriteLine("};");
                w.Indent -= 2;
                w.WriteLine("}");
                w.Indent--;
                w.WriteLine("}");
                return sw.ToString();
            }

            /// <summary>A generated file up to the opening of <c>namespace AotFlash.Models</c>.</summary>
            private static (StringWriter, IndentedTextWriter) Begin()
            {
                var sw = new StringWriter(CultureInfo.InvariantCulture);
                var w = new IndentedTextWriter(sw, "    ");
                w.WriteLine("// <auto-generated/>");
                w.WriteLine("#nullable enable");
                w.WriteLine();
                w.WriteLine("namespace AotFlash.Models");
                w.WriteLine("{");
                w.Indent++;
                return (sw, w);
            }

            internal static ModelShape ShapeOf(ModelSpec s) =>
                new ModelShape(s.Dim, s.HiddenDim, s.Layers, s.Heads, s.KvHeads, s.Vocab, s.Context,
                    s.Dtype, s.TieEmbeddings, s.ResidentDtype);

            /// <summary>The runtime's TokenizerKind member for a spec's tokenizer kind.</summary>
            private static string TokenizerKindOf(string kind) => kind switch
            {
                "llama2c" => "Llama2c",
                "gpt2" => "Gpt2",
                _ => throw new System.ArgumentException("tokenizer kind '" + kind + "' passed the parser but has no runtime member", nameof(kind)),
            };

            /// <summary>The runtime's ChatTemplateKind member for a spec's chat_template.</summary>
            private static string ChatTemplateKindOf(string template) => template switch
            {
                "llama2" => "Llama2",
                "chatml" => "ChatMl",
                _ => throw new System.ArgumentException("chat template '" + template + "' passed the parser but has no runtime member", nameof(template)),
            };

            private static string Int(int v) => v.ToString(CultureInfo.InvariantCulture);
            private static string Long(long v) => v.ToString(CultureInfo.InvariantCulture);
            private static string Float(double v) => ((float)v).ToString("R", CultureInfo.InvariantCulture) + "f";
            private static string Literal(string s) => "\"" + s.Replace("\\", "\\\\").Replace("\"", "\\\"") + "\"";
        }
    }
}
