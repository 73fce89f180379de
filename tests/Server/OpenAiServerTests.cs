using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using AotFlash.Tests.Support;

using AotFlash.Tokenizers;

namespace AotFlash.Tests.Server;

/// <summary>The HTTP API over stories260K in the test process: answers checked against the reference and against runs
/// without the server, streaming, concurrency, the queue, disconnects, keys and bad requests.</summary>
public sealed class OpenAiServerTests
{
    private static string Text(JsonElement answer) => answer.GetProperty("choices")[0].GetProperty("text").GetString()!;
    private static string Content(JsonElement answer) => answer.GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString()!;
    private static string Finish(JsonElement answer) => answer.GetProperty("choices")[0].GetProperty("finish_reason").GetString()!;

    [SkippableFact]
    public async Task CompletionsGiveTheReferenceGreedyTokens()
    {
        await using var server = await LocalServer.Start();
        foreach (var reference in GreedyReference.Load("stories260K").Take(3))
        {
            const int N = 40;
            var answer = await server.PostJson("/v1/completions", JsonSerializer.Serialize(new { prompt = reference.PromptIds, max_tokens = N, temperature = 0 }));
            Assert.Equal(server.Decode(reference.PromptIds[^1], reference.Generated.Take(N)), Text(answer));
            Assert.Equal("length", Finish(answer));
            Assert.Equal("text_completion", answer.GetProperty("object").GetString());
            Assert.StartsWith("cmpl-", answer.GetProperty("id").GetString());
            Assert.Equal("stories260K", answer.GetProperty("model").GetString());
            var usage = answer.GetProperty("usage");
            Assert.Equal(reference.PromptIds.Length, usage.GetProperty("prompt_tokens").GetInt32());
            Assert.Equal(N, usage.GetProperty("completion_tokens").GetInt32());
            Assert.Equal(reference.PromptIds.Length + N, usage.GetProperty("total_tokens").GetInt32());
            Assert.Equal("dense", answer.GetProperty("stats").GetProperty("mode").GetString());
            Assert.True(answer.GetProperty("stats").GetProperty("ttft_ms").GetDouble() > 0);

            // The prompt as text is tokenized with BOS, as run does.
            var asText = await server.PostJson("/v1/completions", JsonSerializer.Serialize(new { prompt = reference.Prompt, max_tokens = N, temperature = 0 }));
            Assert.Equal(Text(answer), Text(asText));
        }
        // OpenAI's default length for completions.
        var shortAnswer = await server.PostJson("/v1/completions", """{"prompt": "Once", "temperature": 0}""");
        Assert.Equal(16, shortAnswer.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
    }

    [SkippableFact]
    public async Task StreamedChatIsTheWholeAnswerInPieces()
    {
        await using var server = await LocalServer.Start();
        const string Messages = """[{"role": "system", "content": "You tell stories."}, {"role": "user", "content": "Tell one about a cat."}]""";
        var whole = await server.PostJson("/v1/chat/completions", $$"""{"messages": {{Messages}}, "max_tokens": 30, "seed": 7, "temperature": 0.9}""");
        Assert.Equal("chat.completion", whole.GetProperty("object").GetString());
        Assert.Equal("assistant", whole.GetProperty("choices")[0].GetProperty("message").GetProperty("role").GetString());
        Assert.StartsWith("chatcmpl-", whole.GetProperty("id").GetString());

        var (events, done) = await server.Stream("/v1/chat/completions",
            $$$"""{"messages": {{{Messages}}}, "max_tokens": 30, "seed": 7, "temperature": 0.9, "stream": true, "stream_options": {"include_usage": true}}""");
        Assert.True(done);
        Assert.All(events, e => Assert.Equal("chat.completion.chunk", e.GetProperty("object").GetString()));
        Assert.Single(events.Select(e => e.GetProperty("id").GetString()).Distinct());
        Assert.Equal("assistant", events[0].GetProperty("choices")[0].GetProperty("delta").GetProperty("role").GetString());
        var pieces = events.Where(e => e.GetProperty("choices").GetArrayLength() > 0)
            .Select(e => e.GetProperty("choices")[0].GetProperty("delta"))
            .Where(d => d.TryGetProperty("content", out _)).Select(d => d.GetProperty("content").GetString());
        Assert.Equal(Content(whole), string.Concat(pieces));
        var last = events[^2];
        Assert.Equal(Finish(whole), last.GetProperty("choices")[0].GetProperty("finish_reason").GetString());
        Assert.True(last.TryGetProperty("stats", out _));
        Assert.Equal(0, events[^1].GetProperty("choices").GetArrayLength());
        Assert.Equal(whole.GetProperty("usage").GetRawText(), events[^1].GetProperty("usage").GetRawText());
        Assert.All(events[..^1], e => Assert.Equal(JsonValueKind.Null, e.GetProperty("usage").ValueKind));
    }

    [SkippableFact]
    public async Task ConcurrentStreamsGiveWhatEachGivesAlone()
    {
        await using var server = await LocalServer.Start(parallel: 2);
        string[] requests =
        [
            """{"prompt": "Once upon a time", "max_tokens": 120, "seed": 1, "temperature": 1, "stream": true}""",
            """{"prompt": "The little dog", "max_tokens": 120, "seed": 2, "temperature": 1, "stream": true}""",
        ];
        async Task<string> Run(string request)
        {
            var (events, done) = await server.Stream("/v1/completions", request);
            Assert.True(done);
            return string.Concat(events.Select(e => e.GetProperty("choices")[0].GetProperty("text").GetString()));
        }
        var alone = new List<string>();
        foreach (var r in requests) alone.Add(await Run(r));
        var together = await Task.WhenAll(requests.Select(Run));
        Assert.Equal(alone, together);
        Assert.NotEqual(alone[0], alone[1]);
    }

    [SkippableFact]
    public async Task StopStringsEndTheAnswerBeforeThem()
    {
        await using var server = await LocalServer.Start();
        string full = Text(await server.PostJson("/v1/completions", """{"prompt": "Once upon a time", "max_tokens": 60, "temperature": 0}"""));
        int cut = full.IndexOf(" named", StringComparison.Ordinal) is var i and > 0 ? i : full.Length / 2;
        string stop = full.Substring(cut, 6);
        string expected = full[..full.IndexOf(stop, StringComparison.Ordinal)];
        string request = JsonSerializer.Serialize(new { prompt = "Once upon a time", max_tokens = 60, temperature = 0, stop = new[] { "zzz", stop } });
        var answer = await server.PostJson("/v1/completions", request);
        Assert.Equal(expected, Text(answer));
        Assert.Equal("stop", Finish(answer));

        var (events, _) = await server.Stream("/v1/completions", request.TrimEnd('}') + ""","stream":true}""");
        Assert.Equal(expected, string.Concat(events.Select(e => e.GetProperty("choices")[0].GetProperty("text").GetString())));
        Assert.Equal("stop", events[^1].GetProperty("choices")[0].GetProperty("finish_reason").GetString());
    }

    [SkippableFact]
    public async Task PastTheQueueRequestsAreRefusedAndWaitingOnesRunWhenASessionFrees()
    {
        await using var server = await LocalServer.Start(parallel: 1, queue: 1);
        var busy = await server.Pool.Acquire(CancellationToken.None)!; // the only session, taken by the test
        var waiting = server.PostJson("/v1/completions", """{"prompt": "Once", "max_tokens": 4, "temperature": 0}""");
        await WaitFor(() => server.Pool.Load().Waiting == 1);
        var health = await server.Client.GetFromJsonAsync<JsonElement>("/health");
        Assert.Equal(1, health.GetProperty("running").GetInt32());
        Assert.Equal(1, health.GetProperty("waiting").GetInt32());

        var refused = await server.PostJson("/v1/completions", """{"prompt": "Once", "max_tokens": 4}""", status: 503);
        Assert.Equal("server_busy", refused.GetProperty("error").GetProperty("code").GetString());
        Assert.Equal("server_error", refused.GetProperty("error").GetProperty("type").GetString());

        server.Pool.Release(busy);
        Assert.Equal(4, (await waiting).GetProperty("usage").GetProperty("completion_tokens").GetInt32());
    }

    [SkippableFact]
    public async Task AClientThatGoesAwayStopsItsGeneration()
    {
        await using var server = await LocalServer.Start();
        // Pace the model (5 ms a token) so that 500 tokens would take seconds, and count the tokens it runs.
        int tokens = 0;
        var transformer = await server.Pool.Acquire(CancellationToken.None)!;
        unsafe
        {
            transformer.FfnProbe = (layer, _) =>
            {
                if (layer != 0) return;
                Interlocked.Increment(ref tokens);
                Thread.Sleep(5);
            };
        }
        server.Pool.Release(transformer);
        // A client that closes its connection after the first event (HttpClient would read on to reuse the connection).
        var address = server.Client.BaseAddress!;
        using (var client = new TcpClient())
        {
            await client.ConnectAsync(address.Host, address.Port);
            var stream = client.GetStream();
            const string Body = """{"prompt": "Once", "max_tokens": 500, "temperature": 0, "stream": true}""";
            await stream.WriteAsync(Encoding.ASCII.GetBytes($"POST /v1/completions HTTP/1.1\r\nHost: {address.Authority}\r\n" +
                                                            $"Content-Type: application/json\r\nContent-Length: {Body.Length}\r\n\r\n{Body}"));
            var reader = new StreamReader(stream);
            while (await reader.ReadLineAsync() is { } line && !line.Contains("data: ", StringComparison.Ordinal)) { }
        }
        await WaitFor(() => server.Pool.Load().Running == 0);
        Assert.InRange(Volatile.Read(ref tokens), 1, 250);
        lock (server.Log) Assert.Contains("client went away", server.Log.ToString());
        transformer.FfnProbe = null;
        // The session serves the next request.
        var next = await server.PostJson("/v1/completions", """{"prompt": "Once", "max_tokens": 3}""");
        Assert.Equal(3, next.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
    }

    [SkippableFact]
    public async Task AnApiKeyGuardsTheApiButNotHealth()
    {
        await using var server = await LocalServer.Start(apiKey: "sesame");
        async Task<int> Models(string? key)
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, "/v1/models");
            if (key is not null) request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", key);
            using var response = await server.Client.SendAsync(request);
            if ((int)response.StatusCode == 401)
                Assert.Equal("invalid_api_key", JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("error").GetProperty("code").GetString());
            return (int)response.StatusCode;
        }
        Assert.Equal(401, await Models(null));
        Assert.Equal(401, await Models("sesame2"));
        Assert.Equal(200, await Models("sesame"));
        using (var response = await server.Post("/v1/completions", """{"prompt": "x", "max_tokens": 1}"""))
            Assert.Equal(401, (int)response.StatusCode);
        using (var response = await server.Post("/v1/completions", """{"prompt": "x", "max_tokens": 1}""", apiKey: "sesame"))
            Assert.Equal(200, (int)response.StatusCode);
        Assert.Equal(200, (int)(await server.Client.GetAsync("/health")).StatusCode);
    }

    [SkippableFact]
    public async Task ModelsListsTheModel()
    {
        await using var server = await LocalServer.Start();
        var list = await server.Client.GetFromJsonAsync<JsonElement>("/v1/models");
        Assert.Equal("list", list.GetProperty("object").GetString());
        Assert.Equal("stories260K", list.GetProperty("data")[0].GetProperty("id").GetString());
        var one = await server.Client.GetFromJsonAsync<JsonElement>("/v1/models/stories260K");
        Assert.Equal("model", one.GetProperty("object").GetString());
    }

    public static TheoryData<string, string, int, string?> BadRequests() => new()
    {
        { "/v1/completions", "{", 400, null },
        { "/v1/completions", "[]", 400, null },
        { "/v1/completions", "{}", 400, "prompt" },
        { "/v1/completions", """{"prompt": 5}""", 400, "prompt" },
        { "/v1/completions", """{"prompt": []}""", 400, "prompt" },
        { "/v1/completions", """{"prompt": [1, 99999]}""", 400, "prompt" },
        { "/v1/completions", """{"prompt": "x", "temperature": 3}""", 400, "temperature" },
        { "/v1/completions", """{"prompt": "x", "temperature": "hot"}""", 400, "temperature" },
        { "/v1/completions", """{"prompt": "x", "top_p": 0}""", 400, "top_p" },
        { "/v1/completions", """{"prompt": "x", "max_tokens": 0}""", 400, "max_tokens" },
        { "/v1/completions", """{"prompt": "x", "max_tokens": 1.5}""", 400, "max_tokens" },
        { "/v1/completions", """{"prompt": "x", "n": 2}""", 400, "n" },
        { "/v1/completions", """{"prompt": "x", "seed": 1e40}""", 400, "seed" },
        { "/v1/completions", """{"prompt": "x", "logprobs": 2}""", 400, "logprobs" },
        { "/v1/completions", """{"prompt": "x", "echo": true}""", 400, "echo" },
        { "/v1/completions", """{"prompt": "x", "stop": ["a", "b", "c", "d", "e"]}""", 400, "stop" },
        { "/v1/completions", """{"prompt": "x", "stop": ""}""", 400, "stop" },
        { "/v1/completions", """{"prompt": "x", "stream_options": {"include_usage": true}}""", 400, "stream_options" },
        { "/v1/completions", """{"prompt": "\ud800"}""", 400, null },
        { "/v1/chat/completions", """{"messages": "hi"}""", 400, "messages" },
        { "/v1/chat/completions", """{"messages": []}""", 400, "messages" },
        { "/v1/chat/completions", """{"messages": [{"content": "hi"}]}""", 400, "messages[0]" },
        { "/v1/chat/completions", """{"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]}""", 400, "messages[0]" },
        { "/v1/chat/completions", """{"messages": [{"role": "assistant", "content": "x"}]}""", 400, "messages" },
        { "/v1/chat/completions", """{"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function"}]}""", 400, "tools" },
    };

    [SkippableTheory]
    [MemberData(nameof(BadRequests))]
    public async Task BadRequestsGetOpenAiErrors(string path, string body, int status, string? param)
    {
        await using var server = await LocalServer.Start();
        var answer = await server.PostJson(path, body, status);
        var error = answer.GetProperty("error");
        Assert.Equal("invalid_request_error", error.GetProperty("type").GetString());
        Assert.False(string.IsNullOrWhiteSpace(error.GetProperty("message").GetString()));
        Assert.Equal(param, error.GetProperty("param").GetString());
        // The server is unharmed.
        Assert.Equal(2, (await server.PostJson("/v1/completions", """{"prompt": "x", "max_tokens": 2}""")).GetProperty("usage").GetProperty("completion_tokens").GetInt32());
    }

    [SkippableFact]
    public async Task OtherRefusalsHaveTheirStatus()
    {
        await using var server = await LocalServer.Start();
        var tooLong = await server.PostJson("/v1/completions", JsonSerializer.Serialize(new { prompt = string.Concat(Enumerable.Repeat("x ", 600)) }), 400);
        Assert.Equal("context_length_exceeded", tooLong.GetProperty("error").GetProperty("code").GetString());
        var tooLongChat = await server.PostJson("/v1/chat/completions",
            JsonSerializer.Serialize(new { messages = new[] { new { role = "user", content = string.Concat(Enumerable.Repeat("x ", 600)) } } }), 400);
        Assert.Equal("context_length_exceeded", tooLongChat.GetProperty("error").GetProperty("code").GetString());
        var huge = await server.PostJson("/v1/completions", JsonSerializer.Serialize(new { prompt = new string('x', 2 << 20) }), 413);
        Assert.Equal("request_too_large", huge.GetProperty("error").GetProperty("code").GetString());
        using (var response = await server.Client.GetAsync("/v1/completions"))
        {
            Assert.Equal(405, (int)response.StatusCode);
            Assert.Equal("POST", response.Content.Headers.Allow.Single());
        }
        using (var response = await server.Client.GetAsync("/v2/anything"))
            Assert.Equal(404, (int)response.StatusCode);
        // Fields OpenAI's API has that change nothing here, and fields it does not have, are accepted.
        await server.PostJson("/v1/completions", """{"prompt": "x", "max_tokens": 1, "user": "u", "presence_penalty": 0, "logprobs": null, "x_extra": {"a": [1]}}""");
    }

    [SkippableFact]
    public async Task ABaseModelRefusesChatButCompletes()
    {
        await using var server = await LocalServer.Start(template: ChatTemplateKind.None);
        var refused = await server.PostJson("/v1/chat/completions", """{"messages": [{"role": "user", "content": "hi"}]}""", 400);
        Assert.Equal("no_chat_template", refused.GetProperty("error").GetProperty("code").GetString());
        await server.PostJson("/v1/completions", """{"prompt": "hi", "max_tokens": 2}""");
    }

    private static async Task WaitFor(Func<bool> condition)
    {
        for (int i = 0; i < 400 && !condition(); i++) await Task.Delay(25);
        Assert.True(condition(), "timed out waiting");
    }
}
