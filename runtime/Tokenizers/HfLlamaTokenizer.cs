using System.Text.Json;

namespace AotFlash.Tokenizers;

/// <summary>
/// A Hugging Face <c>tokenizer.json</c> of a Llama model (what a folder without <c>tokenizer.model</c> holds) turned
/// into the llama2.c tokenizer the runtime reads. Such a file is SentencePiece's BPE written out: a vocabulary of
/// pieces with '▁' for spaces and &lt;0xXX&gt; byte pieces (<c>byte_fallback</c>), and merges in priority order. llama2.c's
/// encoder merges, at each step, the adjacent pair whose joined piece scores highest; giving the piece that merge r
/// makes the score -r makes it merge as the BPE model does, merge by merge, and pieces no merge makes (characters,
/// bytes, special tokens) score below every merge. SentencePiece's converter lists a merge for every pair whose join is
/// a piece, so "the join is in the vocabulary" (llama2.c's test) and "the pair is a merge" (BPE's) agree.
/// </summary>
public static class HfLlamaTokenizer
{
    /// <summary>The score of pieces no merge makes.</summary>
    private const float Unmerged = -1e9f;

    /// <summary>llama2.c tokenizer.bin bytes for the tokenizer.json <paramref name="json"/>, BOS and EOS written as llama2.c
    /// writes them.</summary>
    /// <exception cref="InvalidDataException">Not a Llama (SentencePiece BPE) tokenizer.json, or a malformed one.</exception>
    public static byte[] ToLlama2c(ReadOnlySpan<byte> json, int bos, int eos)
    {
        JsonDocument doc;
        try { doc = JsonDocument.Parse(json.ToArray()); }
        catch (Exception e) when (e is JsonException or ArgumentException) { throw new InvalidDataException($"tokenizer.json: not valid JSON ({e.Message})"); }
        using (doc)
        {
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("model", out var model) || model.ValueKind != JsonValueKind.Object)
                throw new InvalidDataException("tokenizer.json: has no \"model\" object");
            string type = model.TryGetProperty("type", out var t) && t.ValueKind == JsonValueKind.String ? t.GetString()! : "?";
            if (type != "BPE") throw new InvalidDataException($"tokenizer.json: model type {type} is not supported (BPE, as Llama's, is)");
            if (!(model.TryGetProperty("byte_fallback", out var fallback) && fallback.ValueKind == JsonValueKind.True))
                throw new InvalidDataException("tokenizer.json: a BPE model without byte_fallback is not a Llama (SentencePiece) tokenizer (a GPT-2 one is read with tokenizer kind gpt2)");
            if (root.TryGetProperty("pre_tokenizer", out var pre) && pre.ValueKind == JsonValueKind.Object
                && pre.TryGetProperty("type", out var preType) && preType.GetString() == "ByteLevel")
                throw new InvalidDataException("tokenizer.json: a byte-level pre-tokenizer is GPT-2's, not Llama's (tokenizer kind gpt2 reads it)");

            if (!model.TryGetProperty("vocab", out var vocab) || vocab.ValueKind != JsonValueKind.Object)
                throw new InvalidDataException("tokenizer.json: the model has no \"vocab\" object");
            var ids = new Dictionary<string, int>(StringComparer.Ordinal);
            foreach (var entry in vocab.EnumerateObject())
            {
                if (entry.Value.ValueKind != JsonValueKind.Number || !entry.Value.TryGetInt32(out int id) || id < 0)
                    throw new InvalidDataException($"tokenizer.json: vocabulary entry \"{entry.Name}\" has no valid id");
                ids[entry.Name] = id;
            }
            var pieces = new string?[ids.Count];
            foreach (var (piece, id) in ids)
            {
                if (id >= pieces.Length || pieces[id] is not null)
                    throw new InvalidDataException($"tokenizer.json: the vocabulary's ids are not 0 to {pieces.Length - 1}, each once (\"{piece}\" has {id})");
                pieces[id] = piece;
            }

            var scores = new float[pieces.Length];
            Array.Fill(scores, Unmerged);
            if (!model.TryGetProperty("merges", out var merges) || merges.ValueKind != JsonValueKind.Array)
                throw new InvalidDataException("tokenizer.json: the model has no \"merges\" list");
            int rank = 0;
            foreach (var merge in merges.EnumerateArray())
            {
                // "a b" (older files) or ["a", "b"]
                string? joined = merge.ValueKind switch
                {
                    JsonValueKind.String when merge.GetString()!.Split(' ') is [var a, var b] => a + b,
                    JsonValueKind.Array when merge.GetArrayLength() == 2 && merge[0].ValueKind == JsonValueKind.String
                                             && merge[1].ValueKind == JsonValueKind.String => merge[0].GetString() + merge[1].GetString(),
                    _ => null,
                };
                if (joined is null) throw new InvalidDataException($"tokenizer.json: merge {rank} is not a pair of pieces");
                if (!ids.TryGetValue(joined, out int made))
                    throw new InvalidDataException($"tokenizer.json: merge {rank} makes \"{joined}\", which is not in the vocabulary");
                if (scores[made] == Unmerged) scores[made] = -rank;
                rank++;
            }
            return SentencePieceModel.Llama2cBytes([.. pieces.Select((p, i) => (p!, scores[i]))], bos, eos);
        }
    }
}
