// Streams a model's answer through Microsoft.Extensions.AI's IChatClient:
//   dotnet run --project examples/dotnet -- [LIBRARY] [PROMPT] [CHAT_TEMPLATE]
// LIBRARY is a model's C library (./publish.sh SPEC --lib builds it). The shipped story models are base models (their
// specs name no chat template), so llama2's format is the default here, to show the API; their answers are stories.
using AotFlash;
using Microsoft.Extensions.AI;

string library = args.Length > 0 ? args[0] : "artifacts/stories260K-relu/libstories260K-relu.so";
string prompt = args.Length > 1 ? args[1] : "Tell me a story about a cat.";
string template = args.Length > 2 ? args[2] : "llama2";

using IChatClient client = new AotFlashChatClient(library, new() { ChatTemplate = template });
await foreach (var update in client.GetStreamingResponseAsync(prompt, new ChatOptions { MaxOutputTokens = 100 }))
    Console.Write(update.Text);
Console.WriteLine();
