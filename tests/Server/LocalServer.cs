using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using AotFlash.Flash;
using AotFlash.Inference;
using AotFlash.Sampling;
using AotFlash.Server;
using AotFlash.Tests.Support;
using AotFlash.Tokenizers;

namespace AotFlash.Tests.Server;

/// <summary>An <see cref="OpenAiServer"/> in the test process over a reference model in dense mode, on a free loopback
/// port, with an HTTP client for it.</summary>
internal sealed class LocalServer : IAsyncDisposable
{
    private readonly LoadedModel _loaded;
    private readonly OpenAiServer _server;

    private LocalServer(ModelInfo info, LoadedModel loaded, ITokenizer tokenizer, SessionPool pool, OpenAiServer server, StringWriter log, string address)
    {
        Info = info; _loaded = loaded; Tokenizer = tokenizer; Pool = pool; _server = server; Log = log;
        Client = new HttpClient { BaseAddress = new Uri(address), Timeout = TimeSpan.FromSeconds(120) };
    }

    public ModelInfo Info { get; }
    public ITokenizer Tokenizer { get; }
    public SessionPool Pool { get; }
    public HttpClient Client { get; }
    /// <summary>The server's one line per request.</summary>
    public StringWriter Log { get; }

    public static async Task<LocalServer> Start(string model = "stories260K", int parallel = 1, int queue = 4, string? apiKey = null,
        ChatTemplateKind template = ChatTemplateKind.Llama2)
    {
        ModelSource.RequireShared();
        var info = InProcess.Model(model);
        using var file = ModelFile.Open(InProcess.ModelFile(model, model));
        var options = new EngineOptions { Mode = EngineMode.Dense, Threads = 1 };
        var loaded = LoadedModel.Load(info, file, options);
        var tokenizer = info.LoadTokenizer(loaded.Weights, file.Source);
        var pool = new SessionPool(Enumerable.Range(0, parallel).Select(_ => loaded.NewTransformer(options)).ToList(), queue);
        var settings = new ServerSettings
        {
            Host = "127.0.0.1", Port = 0, ApiKey = apiKey, Threads = 1, MaxBodyBytes = 1 << 20,
            Defaults = new SamplerOptions { Temperature = 0.8f, TopK = 40, TopP = 0.95f, MinP = 0.05f },
        };
        var log = new StringWriter();
        var server = new OpenAiServer(info, tokenizer, new ChatTemplate(template, tokenizer, info.Tokenizer.Bos, info.Tokenizer.Eos), pool, settings, log);
        string address = await server.StartAsync();
        return new LocalServer(info, loaded, tokenizer, pool, server, log, address);
    }

    /// <summary>Bodies of more than a megabyte go with <c>Expect: 100-continue</c>, as curl sends them: a server that refuses
    /// one (413) answers before the client sends it, instead of closing the connection under a client still writing.</summary>
    public Task<HttpResponseMessage> Post(string path, string json, string? apiKey = null, HttpCompletionOption read = HttpCompletionOption.ResponseContentRead,
        CancellationToken cancel = default)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = new StringContent(json, Encoding.UTF8, "application/json") };
        if (json.Length > 1 << 20) request.Headers.ExpectContinue = true;
        if (apiKey is not null) request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", apiKey);
        return Client.SendAsync(request, read, cancel);
    }

    /// <summary>Posts and parses the JSON answer, asserting its status.</summary>
    public async Task<JsonElement> PostJson(string path, string json, int status = 200)
    {
        using var response = await Post(path, json);
        string body = await response.Content.ReadAsStringAsync();
        Assert.True((int)response.StatusCode == status, $"{(int)response.StatusCode}: {body}");
        Assert.StartsWith("application/json", response.Content.Headers.ContentType?.ToString());
        return JsonDocument.Parse(body).RootElement.Clone();
    }

    /// <summary>A streamed answer's events, parsed, and whether it ended with [DONE].</summary>
    public async Task<(List<JsonElement> Events, bool Done)> Stream(string path, string json)
    {
        using var response = await Post(path, json, read: HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(200, (int)response.StatusCode);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        var events = new List<JsonElement>();
        bool done = false;
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
        while (await reader.ReadLineAsync() is { } line)
        {
            if (line.Length == 0) continue;
            Assert.StartsWith("data: ", line);
            Assert.False(done, "an event after [DONE]");
            if (line == "data: [DONE]") done = true;
            else events.Add(JsonDocument.Parse(line["data: ".Length..]).RootElement.Clone());
        }
        return (events, done);
    }

    /// <summary>What the model generates greedily from <paramref name="promptIds"/>, decoded, computed here without the server.</summary>
    public string Greedy(int[] promptIds, int maxNew)
    {
        using var transformer = _loaded.NewTransformer(new EngineOptions { Threads = 1 });
        using var weights = transformer.Weights;
        var session = new Session(transformer, Tokenizer, new Sampler(Info.Shape.Vocab, SamplerOptions.Greedy));
        var result = session.Generate(promptIds, maxNew, 0);
        return Decode(promptIds[^1], result.GeneratedIds);
    }

    public string Decode(int previous, IEnumerable<int> ids)
    {
        var bytes = new List<byte>();
        foreach (int id in ids)
        {
            bytes.AddRange(Tokenizer.Decode(previous, id, Info.Tokenizer.Bos).ToArray());
            previous = id;
        }
        return Encoding.UTF8.GetString([.. bytes]);
    }

    public async ValueTask DisposeAsync()
    {
        Client.Dispose();
        await _server.DisposeAsync();
        Pool.Dispose();
        _loaded.Dispose();
    }
}
