namespace AotFlash.Tests.Support;

/// <summary>The llama2.c checkpoint and tokenizer of each reference model in ../shared/models.</summary>
public static class ModelSource
{
    public static readonly string[] ReferenceModels = ["stories260K", "stories260K-relu", "babyllama-tok105", "babyllama-relu"];

    public static (string Weights, string Tokenizer) Of(string model) => model switch
    {
        "stories260K" => (Shared("models/stories260K/stories260K.bin"), Shared("models/stories260K/tok512.bin")),
        "stories260K-relu" => (Shared("models/stories260K-relu/stories260K-relu.bin"), Shared("models/stories260K-relu/tok512.bin")),
        "babyllama-tok105" => (Shared("models/babyllama-tok105/model5000.bin"), Shared("models/babyllama-tok105/tok105.bin")),
        "babyllama-relu" => (Shared("models/babyllama-relu/babyllama-relu.bin"), Shared("models/babyllama-relu/tok105.bin")),
        _ => throw new ArgumentOutOfRangeException(nameof(model), model, null),
    };

    /// <summary>publish.sh's options that name the weights of <paramref name="model"/>: a llama2.c checkpoint and its
    /// tokenizer, or for opt-tiny and the falcon-tiny models the Hugging Face folder (its tokenizer comes from the folder).</summary>
    public static string[] PublishArguments(string model)
    {
        if (model is "opt-tiny" or "falcon-tiny" or "falcon-tiny-relu") return ["--weights", Shared($"models/{model}-hf")];
        var (weights, tokenizer) = Of(model);
        return ["--weights", weights, "--tokenizer", tokenizer];
    }

    private static string Shared(string relative) => Path.Combine(TestPaths.Shared!, relative);

    /// <summary>Skips the calling test, visibly, when ../shared is not beside the checkout.</summary>
    public static void RequireShared() =>
        Skip.If(TestPaths.Shared is null, "../shared (reference models and outputs) is not beside this checkout");
}
