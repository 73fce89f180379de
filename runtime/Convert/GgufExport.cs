using System.Text;
using AotFlash.Flash;
using AotFlash.Inference;
using AotFlash.Kernels;
using AotFlash.Tokenizers;
using Microsoft.Win32.SafeHandles;

namespace AotFlash.Convert;

/// <summary>
/// A Llama-family model file → a GGUF file that llama.cpp runs as its <c>llama</c> architecture, on the same weights:
/// metadata as llama.cpp's own converters write it, the llama2c vocabulary (spaces as U+2581), and every tensor in the
/// model's weight type (f32 → F32, f16 → F16, q8 → Q8_0, q4 → Q4_0; norms F32), q and k rows in llama2.c's order,
/// which is the order llama.cpp's llama RoPE rotates (adjacent pairs). Quantised rows are re-blocked byte for byte:
/// both formats hold groups of 32 with one half scale, the same quants and (q4) the same nibble order, only where the
/// scales sit differs. The exception is ffn_down: a bundle holds neuron i's column of w2, quantised along the model
/// dimension, while llama.cpp's blocks run along the hidden dimension, so a quantised ffn_down is dequantised and
/// either quantised again along its rows (same type, the speed of the model's type) or written as F32 (exactly the
/// weights; also where the hidden dimension is no multiple of 32).
/// The model file is read front to back once, section by section, each section's checksum checked (and each neuron
/// bundle's, as it arrives); progress is reported per layer of the flash section; at most one tensor
/// (ffn_down, assembled from the layer's bundles) is held, and the output is written atomically.
/// </summary>
public static unsafe class GgufExport
{
    /// <summary>Fails for a model llama.cpp's llama architecture cannot hold (checked before anything is read).</summary>
    public static void CheckExportable(ModelInfo info)
    {
        if (info.Family != ModelFamily.Llama)
            throw new BadInputException($"export writes llama.cpp's llama architecture, and '{info.Name}' is of the {info.FamilyName} family" +
                                        (info.Family == ModelFamily.Opt ? " (llama.cpp has no OPT architecture)" : ""));
        if (info.Tokenizer.Kind != TokenizerKind.Llama2c)
            throw new BadInputException($"export writes a llama2c (SentencePiece) vocabulary, and '{info.Name}' has a {info.Tokenizer.Kind} tokenizer");
    }

    /// <summary>The type ffn_down is written in (see the class summary).</summary>
    public static GgufTensorType FfnDownType(ModelShape shape, bool exactFfnDown)
    {
        var type = GgufFormat.TensorType(shape.Weights);
        bool quantised = shape.Weights is WeightType.Q8 or WeightType.Q4;
        return quantised && (exactFfnDown || !GgufFormat.Fits(type, shape.HiddenDim)) ? GgufTensorType.F32 : type;
    }

    /// <summary>Writes <paramref name="file"/> (checked against <paramref name="info"/>) as a GGUF file at
    /// <paramref name="outputPath"/>, on the terms of <see cref="AtomicFile.Create"/>.</summary>
    /// <param name="progress">Called with a short description of each step (for a progress line on stderr).</param>
    public static void Write(ModelInfo info, ModelFile file, string outputPath, bool force, bool exactFfnDown, Action<string>? progress = null)
    {
        CheckExportable(info);
        file.CheckMatches(info.Name, info.SpecHash, info.Shape);
        var layout = info.Layout;
        var shape = info.Shape;
        var resident = Section(file, SectionKind.Resident, layout.ResidentBytes);
        var flash = Section(file, SectionKind.Flash, layout.FlashBytes);
        AtomicFile.CheckTarget(outputPath, force, file.Path);

        var gguf = new GgufWriter();
        AddMetadata(gguf, info, file);
        var plan = PlanTensors(gguf, layout, FfnDownType(shape, exactFfnDown));

        using var output = AtomicFile.Create(outputPath, force, file.Path);
        RandomAccess.Write(output.Handle, gguf.Header(), 0);
        long data = gguf.DataStart;
        var stream = new TensorStream(output.Handle);

        var slots = layout.ResidentTensors;
        var residentRegions = new SectionRegions(slots.Select(s => (s.Offset, s.Bytes)), (index, bytes) =>
        {
            var slot = slots[index];
            stream.Start(data + plan.Resident[slot].Offset);
            long rowBytes = Layout.RowBytes(slot.Type, slot.Cols);
            for (int r = 0; r < slot.Rows; r++)
                GgufFormat.ToBlocks(slot.Type, bytes.Slice((int)(r * rowBytes), (int)rowBytes), slot.Cols, stream.Next((int)GgufFormat.RowBytes(GgufFormat.TensorType(slot.Type), slot.Cols)));
            stream.Flush();
        });
        file.ReadSection(resident, residentRegions.Consume);
        residentRegions.CheckDone(file.Source, resident.Kind);

        // Each bundle is checked against its own checksum before it is used, so that a damaged bundle stops the export
        // where it is (before the layer's progress line), not only at the end of the section.
        var checksums = file.Has(SectionKind.FlashChecksums) ? FlashChecksums.Load(file, layout) : null;
        var ffn = new FfnAssembler(layout, plan.FfnDown[0].Type, output.Handle, stream);
        var bundles = Enumerable.Range(0, shape.Layers).SelectMany(l => Enumerable.Range(0, shape.HiddenDim)
            .Select(i => (layout.Layers[l].FfnBundles + i * layout.BundleStride, layout.BundleBytes)));
        var flashRegions = new SectionRegions(bundles, (index, bundle) =>
        {
            int l = index / shape.HiddenDim, i = index % shape.HiddenDim;
            if (checksums is not null && Crc32C.Compute(bundle) != checksums.Layer(l)[i])
                throw FlashChecksums.Corrupt(file.Source, l, new FlashChecksumException(i));
            if (i == 0) ffn.BeginLayer(data + plan.FfnGate[l].Offset, data + plan.FfnUp[l].Offset);
            ffn.Add(i, bundle);
            if (i == shape.HiddenDim - 1)
            {
                ffn.EndLayer(data + plan.FfnDown[l].Offset);
                progress?.Invoke($"flash section: layer {l + 1}/{shape.Layers} (ffn_gate, ffn_up, ffn_down from {shape.HiddenDim} neuron bundles)");
            }
        });
        // The flash section's checksum is checked when it has been read through, before the output is named.
        file.ReadSection(flash, flashRegions.Consume);
        flashRegions.CheckDone(file.Source, flash.Kind);
        output.Commit();
    }

    private static Section Section(ModelFile file, SectionKind kind, long expected)
    {
        var section = file.Header.Get(kind, file.Source);
        if (section.Length != expected)
            throw new BadInputException($"{file.Source}: {ModelFileHeader.Name(kind)} section is {section.Length} bytes, the layout needs {expected}");
        return section;
    }

    private static void AddMetadata(GgufWriter gguf, ModelInfo info, ModelFile file)
    {
        var s = info.Shape;
        var matrices = GgufFormat.TensorType(s.Weights);
        gguf.Add("general.architecture", GgufValue.String("llama"));
        gguf.Add("general.name", GgufValue.String(info.Name));
        if (file.Provenance() is { } provenance) gguf.Add("general.description", GgufValue.String(provenance));
        gguf.Add("llama.context_length", GgufValue.UInt32((uint)s.Context));
        gguf.Add("llama.embedding_length", GgufValue.UInt32((uint)s.Dim));
        gguf.Add("llama.block_count", GgufValue.UInt32((uint)s.Layers));
        gguf.Add("llama.feed_forward_length", GgufValue.UInt32((uint)s.HiddenDim));
        gguf.Add("llama.rope.dimension_count", GgufValue.UInt32((uint)s.HeadSize));
        gguf.Add("llama.attention.head_count", GgufValue.UInt32((uint)s.Heads));
        gguf.Add("llama.attention.head_count_kv", GgufValue.UInt32((uint)s.KvHeads));
        gguf.Add("llama.attention.layer_norm_rms_epsilon", GgufValue.Float32(info.NormEps));
        gguf.Add("llama.rope.freq_base", GgufValue.Float32(info.RopeTheta));
        gguf.Add("general.file_type", GgufValue.UInt32(GgufFormat.FileType(matrices)));
        if (matrices is GgufTensorType.Q8_0 or GgufTensorType.Q4_0)
            gguf.Add("general.quantization_version", GgufValue.UInt32(GgufFormat.QuantizationVersion));

        var tokenizer = ReadTokenizer(file, s.Vocab);
        var tokens = new string[s.Vocab];
        var scores = new float[s.Vocab];
        var types = new int[s.Vocab];
        var strict = new UTF8Encoding(false, throwOnInvalidBytes: true);
        for (int id = 0; id < s.Vocab; id++)
        {
            var piece = tokenizer.Piece(id);
            try { tokens[id] = strict.GetString(piece).Replace(' ', '\u2581'); }
            catch (DecoderFallbackException)
            { throw new BadInputException($"{file.Source}: token {id}'s piece is not UTF-8, which a GGUF vocabulary needs"); }
            scores[id] = tokenizer.Score(id);
            types[id] = (int)(piece.SequenceEqual("<unk>"u8) ? GgufTokenType.Unknown
                : id == info.Tokenizer.Bos || id == info.Tokenizer.Eos ? GgufTokenType.Control
                : Llama2cTokenizer.TryParseBytePiece(piece, out _) ? GgufTokenType.Byte
                : GgufTokenType.Normal);
        }
        gguf.Add("tokenizer.ggml.model", GgufValue.String("llama"));
        gguf.Add("tokenizer.ggml.tokens", GgufValue.Array(tokens));
        gguf.Add("tokenizer.ggml.scores", GgufValue.Array(scores));
        gguf.Add("tokenizer.ggml.token_type", GgufValue.Array(types));
        gguf.Add("tokenizer.ggml.bos_token_id", GgufValue.UInt32((uint)info.Tokenizer.Bos));
        gguf.Add("tokenizer.ggml.eos_token_id", GgufValue.UInt32((uint)info.Tokenizer.Eos));
        if (tokenizer.Lookup("<unk>"u8) is var unknown and >= 0)
            gguf.Add("tokenizer.ggml.unknown_token_id", GgufValue.UInt32((uint)unknown));
    }

    private static Llama2cTokenizer ReadTokenizer(ModelFile file, int vocab)
    {
        byte[] bytes = file.ReadBytes(file.Header.Get(SectionKind.Tokenizer, file.Source));
        try { return Llama2cTokenizer.Load(bytes, vocab); }
        catch (InvalidDataException e) { throw new BadInputException($"{file.Source}: {e.Message}"); }
    }

    /// <summary>Where each tensor goes in the GGUF file.</summary>
    private sealed record TensorPlan(Dictionary<TensorSlot, GgufTensorInfo> Resident, GgufTensorInfo[] FfnGate, GgufTensorInfo[] FfnUp, GgufTensorInfo[] FfnDown);

    /// <summary>The tensors in llama.cpp's names and order (that of its llama2.c converter).</summary>
    private static TensorPlan PlanTensors(GgufWriter gguf, Layout layout, GgufTensorType ffnDown)
    {
        var s = layout.Shape;
        var matrices = GgufFormat.TensorType(s.Weights);
        var resident = new Dictionary<TensorSlot, GgufTensorInfo>();
        // A resident tensor [rows, cols] is GGUF's [cols, rows] (the contiguous dimension first); a vector is [cols].
        void Add(string name, TensorSlot slot) =>
            resident[slot] = gguf.AddTensor(name, slot.Rows == 1 ? [slot.Cols] : [slot.Cols, slot.Rows], GgufFormat.TensorType(slot.Type));
        var gate = new GgufTensorInfo[s.Layers];
        var up = new GgufTensorInfo[s.Layers];
        var down = new GgufTensorInfo[s.Layers];
        static string Name(int? layer, string tensor) => GgufFormat.LlamaTensorName(layer, tensor)!;
        Add(Name(null, "token_embedding"), layout.TokenEmbedding);
        for (int l = 0; l < s.Layers; l++)
        {
            var slots = layout.Layers[l];
            Add(Name(l, "attention_norm"), slots.AttnNorm);
            Add(Name(l, "ffn_norm"), slots.FfnNorm!);
            Add(Name(l, "wq"), slots.Wq);
            Add(Name(l, "wk"), slots.Wk);
            Add(Name(l, "wv"), slots.Wv);
            Add(Name(l, "wo"), slots.Wo);
            gate[l] = gguf.AddTensor(Name(l, "w1"), [s.Dim, s.HiddenDim], matrices);
            down[l] = gguf.AddTensor(Name(l, "w2"), [s.HiddenDim, s.Dim], ffnDown);
            up[l] = gguf.AddTensor(Name(l, "w3"), [s.Dim, s.HiddenDim], matrices);
        }
        Add(Name(null, "final_norm"), layout.FinalNorm);
        if (!s.TiedEmbeddings) Add(Name(null, "classifier"), layout.Classifier);
        return new TensorPlan(resident, gate, up, down);
    }

    /// <summary>One layer's ffn_gate and ffn_up (neuron i's rows, streamed out as they come) and ffn_down (neuron i's
    /// column, gathered until the layer's last bundle).</summary>
    private sealed class FfnAssembler
    {
        private readonly Layout _layout;
        private readonly WeightType _type;
        private readonly GgufTensorType _downType;
        private readonly int _dim, _hidden, _rowBytes, _ggufRowBytes;
        private readonly TensorStream _gate, _up, _down;
        // ffn_down [dim, hidden]: its bytes when it keeps the model's type (f32, f16: an element is a few bytes moved),
        // else its values, dequantised.
        private readonly byte[]? _downBytes;
        private readonly float[]? _downValues;
        private readonly float[] _column;

        public FfnAssembler(Layout layout, GgufTensorType downType, SafeFileHandle output, TensorStream down)
        {
            _layout = layout;
            _type = layout.Shape.Weights;
            _downType = downType;
            _dim = layout.Shape.Dim;
            _hidden = layout.Shape.HiddenDim;
            _rowBytes = (int)Layout.RowBytes(_type, _dim);
            _ggufRowBytes = (int)GgufFormat.RowBytes(GgufFormat.TensorType(_type), _dim);
            _gate = new TensorStream(output);
            _up = new TensorStream(output);
            _down = down;
            _column = new float[_dim];
            if (_type is WeightType.F32 or WeightType.F16) _downBytes = new byte[(long)_rowBytes * _hidden];
            else _downValues = new float[(long)_dim * _hidden];
        }

        public void BeginLayer(long gate, long up)
        {
            _gate.Start(gate);
            _up.Start(up);
        }

        public void Add(int neuron, ReadOnlySpan<byte> bundle)
        {
            GgufFormat.ToBlocks(_type, bundle.Slice((int)_layout.BundleGate, _rowBytes), _dim, _gate.Next(_ggufRowBytes));
            GgufFormat.ToBlocks(_type, bundle.Slice((int)_layout.BundleUp, _rowBytes), _dim, _up.Next(_ggufRowBytes));
            var column = bundle.Slice((int)_layout.BundleDown, _rowBytes);
            if (_downBytes is not null)
            {
                int size = _rowBytes / _dim;
                for (int d = 0; d < _dim; d++)
                    column.Slice(d * size, size).CopyTo(_downBytes.AsSpan(checked((int)(((long)d * _hidden + neuron) * size))));
                return;
            }
            fixed (byte* w = column)
            fixed (float* values = _column)
                WeightRows.ToSingle(_type, values, w, _dim);
            for (int d = 0; d < _dim; d++) _downValues![(long)d * _hidden + neuron] = _column[d];
        }

        public void EndLayer(long down)
        {
            _gate.Flush();
            _up.Flush();
            _down.Start(down);
            if (_downBytes is not null)
            {
                _down.Write(_downBytes);
            }
            else if (_downType == GgufTensorType.F32)
            {
                fixed (float* values = _downValues)
                    _down.Write(new ReadOnlySpan<byte>(values, _downValues!.Length * sizeof(float)));
            }
            else
            {
                var row = new byte[Layout.RowBytes(_type, _hidden)];
                int ggufRow = (int)GgufFormat.RowBytes(_downType, _hidden);
                fixed (byte* quantised = row)
                fixed (float* values = _downValues)
                {
                    for (int d = 0; d < _dim; d++)
                    {
                        float* x = values + (long)d * _hidden;
                        if (_type == WeightType.Q8) Quantization.QuantizeQ8(quantised, x, _hidden);
                        else Quantization.QuantizeQ4(quantised, x, _hidden);
                        GgufFormat.ToBlocks(_type, row, _hidden, _down.Next(ggufRow));
                    }
                }
            }
            _down.Flush();
        }
    }

    /// <summary>Writes one tensor at a time through a buffer, from the position <see cref="Start"/> gives.</summary>
    private sealed class TensorStream(SafeFileHandle output)
    {
        private byte[] _buffer = new byte[1 << 20];
        private int _used;
        private long _position;

        public void Start(long position)
        {
            Flush();
            _position = position;
        }

        /// <summary>The next <paramref name="n"/> bytes of the tensor, to fill before the next call.</summary>
        public Span<byte> Next(int n)
        {
            if (_used + n > _buffer.Length) Flush();
            if (n > _buffer.Length) _buffer = new byte[n];
            var span = _buffer.AsSpan(_used, n);
            _used += n;
            return span;
        }

        public void Write(ReadOnlySpan<byte> data)
        {
            Flush();
            RandomAccess.Write(output, data, _position);
            _position += data.Length;
        }

        public void Flush()
        {
            if (_used == 0) return;
            RandomAccess.Write(output, _buffer.AsSpan(0, _used), _position);
            _position += _used;
            _used = 0;
        }
    }

    /// <summary>Cuts regions (ascending, not overlapping) out of a section streamed chunk by chunk, and hands each one,
    /// whole, with its index, to <c>complete</c>.</summary>
    private sealed class SectionRegions
    {
        private readonly IEnumerator<(long Offset, long Length)> _regions;
        private readonly Action<int, ReadOnlySpan<byte>> _complete;
        private (long Offset, long Length) _current;
        private bool _has;
        private int _index = -1;
        private byte[] _buffer = [];
        private int _filled;
        private long _position;

        public SectionRegions(IEnumerable<(long Offset, long Length)> regions, Action<int, ReadOnlySpan<byte>> complete)
        {
            _regions = regions.GetEnumerator();
            _complete = complete;
            Advance();
        }

        public void Consume(ReadOnlySpan<byte> chunk)
        {
            long start = _position;
            _position += chunk.Length;
            while (_has)
            {
                long from = _current.Offset + _filled;
                if (from >= _position) return;
                int take = (int)(Math.Min(_current.Offset + _current.Length, _position) - from);
                chunk.Slice((int)(from - start), take).CopyTo(_buffer.AsSpan(_filled));
                _filled += take;
                if (_filled < _current.Length) return;
                _complete(_index, _buffer.AsSpan(0, _filled));
                Advance();
            }
        }

        /// <summary>Fails when the section ended before its last region.</summary>
        public void CheckDone(string source, SectionKind kind)
        {
            if (_has) throw new BadInputException($"{source}: truncated model file (the {ModelFileHeader.Name(kind)} section ends early)");
        }

        private void Advance()
        {
            _has = _regions.MoveNext();
            if (!_has) return;
            _current = _regions.Current;
            _index++;
            _filled = 0;
            if (_buffer.Length < _current.Length) _buffer = new byte[checked((int)_current.Length)];
        }
    }
}
