using System.ClientModel;
using System.Runtime.InteropServices;
using AotFlash.Interop;
using AotFlash.Tests.Support;
using Microsoft.Extensions.AI;
using OpenAI;

namespace AotFlash.Tests.Package;

/// <summary>The AotFlash package's IChatClient over the published C library of the shipped default model, checked
/// against Microsoft.Extensions.AI's OpenAI client talking to serve for the same model.</summary>
public sealed class AotFlashChatClientTests
{
    private const string Model = "stories260K-relu";

    private static readonly ChatMessage[] Conversation =
    [
        new(ChatRole.System, "You tell stories."),
        new(ChatRole.User, "Tell me about a cat."),
    ];

    private static AotFlashChatClient Client(AotFlashMode mode = AotFlashMode.Auto, string? template = "llama2")
    {
        ModelSource.RequireShared();
        return new AotFlashChatClient(Published.Library(Model).Path, new AotFlashChatClientOptions { ChatTemplate = template, Mode = mode, Threads = 1 });
    }

    [SkippableFact]
    public async Task TheLibraryAnswersAsServeDoesThroughOpenAisClient()
    {
        using var client = Client(AotFlashMode.Dense);
        var options = new ChatOptions { Temperature = 0, MaxOutputTokens = 40 };
        var answer = await client.GetResponseAsync(Conversation, options);
        Assert.Equal(ChatFinishReason.Length, answer.FinishReason);
        Assert.Equal(40, answer.Usage!.OutputTokenCount);
        Assert.True(answer.Text.Length > 40, answer.Text);

        using var server = new ServeProcess(Published.ServerExecutable(Model), "--chat-template", "llama2", "--mode", "dense", "-t", "1");
        IChatClient openAi = new OpenAIClient(new ApiKeyCredential("unused"), new OpenAIClientOptions { Endpoint = new Uri(server.Url + "/v1") })
            .GetChatClient(Model).AsIChatClient();
        var served = await openAi.GetResponseAsync(Conversation, options);
        Assert.Equal(answer.Text, served.Text);
        Assert.Equal(ChatFinishReason.Length, served.FinishReason);
        Assert.Equal(answer.Usage.InputTokenCount, served.Usage!.InputTokenCount);
        Assert.Equal(40, served.Usage.OutputTokenCount);
        string streamed = string.Concat(await openAi.GetStreamingResponseAsync(Conversation, options).Select(u => u.Text).ToListAsync());
        Assert.Equal(answer.Text, streamed);
    }

    [SkippableFact]
    public async Task StreamingGivesTheWholeAnswerInPieces()
    {
        using var client = Client();
        var options = new ChatOptions { Temperature = 0.9f, Seed = 3, MaxOutputTokens = 50 };
        var whole = await client.GetResponseAsync(Conversation, options);
        var updates = await client.GetStreamingResponseAsync(Conversation, options).ToListAsync();
        Assert.True(updates.Count > 3);
        Assert.Equal(whole.Text, string.Concat(updates.Select(u => u.Text)));
        Assert.Single(updates.Select(u => u.ResponseId).Distinct());
        Assert.All(updates, u => Assert.Equal(ChatRole.Assistant, u.Role));
        Assert.Equal(ChatFinishReason.Length, updates[^1].FinishReason);
        Assert.Equal(50, updates[^1].Contents.OfType<UsageContent>().Single().Details.OutputTokenCount);
        Assert.Equal(Model, whole.ModelId);
    }

    [SkippableFact]
    public async Task InstructionsAreTheSystemMessage()
    {
        using var client = Client();
        var greedy = new ChatOptions { Temperature = 0, MaxOutputTokens = 30 };
        string withSystem = (await client.GetResponseAsync(Conversation, greedy)).Text;
        string withInstructions = (await client.GetResponseAsync([Conversation[1]], new ChatOptions
            { Temperature = 0, MaxOutputTokens = 30, Instructions = Conversation[0].Text })).Text;
        Assert.Equal(withSystem, withInstructions);
    }

    [SkippableFact]
    public async Task StopSequencesEndTheAnswerBeforeThem()
    {
        using var client = Client();
        string full = (await client.GetResponseAsync(Conversation, new ChatOptions { Temperature = 0, MaxOutputTokens = 60 })).Text;
        string stop = full.Substring(full.Length / 2, 4);
        var cut = await client.GetResponseAsync(Conversation, new ChatOptions { Temperature = 0, MaxOutputTokens = 60, StopSequences = ["zzzz", stop] });
        Assert.Equal(full[..full.IndexOf(stop, StringComparison.Ordinal)], cut.Text);
        Assert.Equal(ChatFinishReason.Stop, cut.FinishReason);
    }

    [SkippableFact]
    public async Task CancellingStopsTheAnswerAndTheClientGoesOn()
    {
        using var client = Client();
        using var cancel = new CancellationTokenSource();
        int updates = 0;
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () =>
        {
            await foreach (var _ in client.GetStreamingResponseAsync(Conversation, new ChatOptions { MaxOutputTokens = 400 }, cancel.Token))
                if (++updates == 2) cancel.Cancel();
        });
        Assert.InRange(updates, 2, 399);
        // A caller that stops reading ends the generation as well.
        await foreach (var _ in client.GetStreamingResponseAsync(Conversation, new ChatOptions { MaxOutputTokens = 400 }))
            break;
        var next = await client.GetResponseAsync(Conversation, new ChatOptions { MaxOutputTokens = 3 });
        Assert.Equal(3, next.Usage!.OutputTokenCount);
    }

    [SkippableFact]
    public async Task WhatTheModelCannotDoIsRefused()
    {
        using var client = Client();
        await Assert.ThrowsAsync<NotSupportedException>(() => client.GetResponseAsync([new ChatMessage(ChatRole.Tool, "x")]));
        await Assert.ThrowsAsync<NotSupportedException>(() => client.GetResponseAsync(
            [new ChatMessage(ChatRole.User, [new DataContent(new byte[] { 1 }, "image/png")])]));
        await Assert.ThrowsAsync<NotSupportedException>(() => client.GetResponseAsync(Conversation,
            new ChatOptions { Tools = [AIFunctionFactory.Create(() => 1, "one")] }));
        await Assert.ThrowsAsync<ArgumentException>(() => client.GetResponseAsync("a\0b"));
        var order = await Assert.ThrowsAsync<AotFlashException>(() => client.GetResponseAsync([new ChatMessage(ChatRole.Assistant, "x")]));
        Assert.Equal(8, order.Status); // AOTFLASH_ERR_BAD_INPUT
        Assert.Contains("take turns", order.Message);

        using var baseModel = Client(template: null); // the spec names no chat template
        var none = await Assert.ThrowsAsync<AotFlashException>(() => baseModel.GetResponseAsync(Conversation));
        Assert.Contains("no chat template", none.Message);

        Assert.Throws<DllNotFoundException>(() => new AotFlashChatClient("/nonexistent/libmodel.so"));
        var notOurs = Assert.Throws<EntryPointNotFoundException>(() => new AotFlashChatClient("libz.so.1"));
        Assert.Contains("not an AotFlash model library", notOurs.Message);
        var badFile = Assert.Throws<AotFlashException>(() => new AotFlashChatClient(Published.Library(Model).Path, new() { ModelPath = "/nonexistent.afm" }));
        Assert.Contains("/nonexistent.afm", badFile.Message);
    }

    [SkippableFact]
    public async Task DisposeClosesTheModel()
    {
        var client = Client();
        Assert.Equal(Model, client.Metadata.DefaultModelId);
        Assert.Equal("aotflash", client.Metadata.ProviderName);
        Assert.Same(client, client.GetService(typeof(IChatClient)));
        Assert.Same(client.Metadata, client.GetService(typeof(ChatClientMetadata)));
        Assert.Null(client.GetService(typeof(string)));
        client.Dispose();
        client.Dispose();
        await Assert.ThrowsAsync<ObjectDisposedException>(() => client.GetResponseAsync(Conversation));
    }

    [SkippableFact]
    public void TheSampleAppStreamsAnAnswer()
    {
        ModelSource.RequireShared();
        string sample = Path.Combine(TestPaths.RepoRoot, "examples", "dotnet", "bin", "Release", "net10.0", "Chat.dll");
        Assert.True(File.Exists(sample), $"{sample} was not built");
        var r = ProcessRunner.Run("dotnet", [sample, Published.Library(Model).Path, "Tell me about a dog."]);
        Assert.True(r.ExitCode == 0, r.Stderr);
        // The answer is sampled without a seed, so its length varies (a story may end after a sentence): the test asks
        // that words streamed, not how many.
        Assert.Matches(@"\p{L}+\W+\p{L}+", r.Stdout);
    }

    /// <summary>The package's mirrors of aotflash.h's structs are laid out as the library's own (HeaderTests checks
    /// those against the header).</summary>
    [Theory]
    [InlineData("Params", typeof(NativeParams))]
    [InlineData("ModelDesc", typeof(NativeModelDesc))]
    [InlineData("ChatMessage", typeof(NativeChatMessage))]
    public void TheStructsMirrorTheLibrarys(string mirror, Type library)
    {
        var type = typeof(AotFlashChatClient).Assembly.GetType("AotFlash.NativeApi+" + mirror, throwOnError: true)!;
        Assert.Equal(Marshal.SizeOf(library), Marshal.SizeOf(type));
        var mine = type.GetFields().Select(f => (f.Name, (long)Marshal.OffsetOf(type, f.Name))).ToArray();
        var theirs = library.GetFields().Select(f => (f.Name, (long)Marshal.OffsetOf(library, f.Name))).ToArray();
        Assert.Equal(theirs, mine);
    }
}
