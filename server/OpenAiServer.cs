using System.Buffers;
using System.Diagnostics;
using System.Net;
using System.Security.Cryptography;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Threading.Channels;
using AotFlash.Cli;
using AotFlash.Inference;
using AotFlash.Sampling;
using AotFlash.Tokenizers;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;

namespace AotFlash.Server;

/// <summary>How <see cref="OpenAiServer"/> listens and answers.</summary>
internal sealed record ServerSettings
{
    /// <summary>An IP address, or "localhost" (IPv4 and IPv6 loopback).</summary>
    public required string Host { get; init; }
    /// <summary>0 picks a free port.</summary>
    public required int Port { get; init; }
    /// <summary>Required as <c>Authorization: Bearer KEY</c> on /v1/ endpoints; null: no key.</summary>
    public string? ApiKey { get; init; }
    /// <summary>Sampling for the fields a request leaves out.</summary>
    public required SamplerOptions Defaults { get; init; }
    /// <summary>Compute threads of each session (reported in stats).</summary>
    public required int Threads { get; init; }
    /// <summary>How long loading the model took (reported in stats).</summary>
    public double LoadMs { get; init; }
    /// <summary>Bodies longer than this are refused (413).</summary>
    public required long MaxBodyBytes { get; init; }
}

/// <summary>
/// OpenAI's HTTP API over one loaded model on Kestrel: <c>POST /v1/completions</c> and <c>/v1/chat/completions</c>
/// (whole answers or server-sent events), <c>GET /v1/models</c> and <c>GET /health</c>. Each request generates on a
/// transformer of the <see cref="SessionPool"/>, on a thread of its own; a client that goes away stops its generation
/// at the next token or prompt block.
/// </summary>
internal sealed class OpenAiServer : IAsyncDisposable
{
    private readonly ModelInfo _info;
    private readonly ITokenizer _tokenizer;
    private readonly SessionPool _pool;
    private readonly ServerSettings _settings;
    private readonly TextWriter _log;
    private readonly GenerationRequest.Context _requests;
    private readonly IReadOnlyList<int> _chatStopTokens;
    private readonly byte[]? _apiKey;
    private readonly CancellationTokenSource _stopping = new();
    private readonly long _started = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
    private WebApplication? _app;

    /// <summary>Text as it is (no \u escapes for non-ASCII or HTML characters): every answer is JSON, never HTML.</summary>
    private static readonly JsonWriterOptions Json = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    public OpenAiServer(ModelInfo info, ITokenizer tokenizer, ChatTemplate template, SessionPool pool, ServerSettings settings, TextWriter log)
    {
        _info = info;
        _tokenizer = tokenizer;
        _pool = pool;
        _settings = settings;
        _log = log;
        _requests = new GenerationRequest.Context(info, tokenizer, template, settings.Defaults);
        _chatStopTokens = template.StopTokens;
        _apiKey = settings.ApiKey is null ? null : Encoding.UTF8.GetBytes(settings.ApiKey);
    }

    /// <summary>Starts listening; returns the address bound (with the port chosen when the settings said 0).</summary>
    /// <exception cref="IOException">The address cannot be bound (in use, not this machine's).</exception>
    public async Task<string> StartAsync()
    {
        var builder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions());
        builder.WebHost.UseKestrelCore().ConfigureKestrel(k =>
        {
            k.AddServerHeader = false;
            k.Limits.MaxRequestBodySize = _settings.MaxBodyBytes;
            if (_settings.Host == "localhost") k.ListenLocalhost(_settings.Port);
            else k.Listen(IPAddress.Parse(_settings.Host), _settings.Port);
        });
        var app = builder.Build();
        app.Run(Handle);
        try { await app.StartAsync(); }
        catch (Exception e) when (e is IOException or System.Net.Sockets.SocketException)
        {
            await app.DisposeAsync();
            throw new IOException(e.Message, e);
        }
        _app = app;
        var addresses = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses;
        return addresses.First();
    }

    /// <summary>Stops taking requests, ends the generations running (their clients get what was generated so far, with
    /// finish_reason "length") and refuses the waiting ones (503). Kestrel waits for the requests to end; the pool's owner
    /// then waits for every session to come back before freeing them (<see cref="SessionPool.Dispose"/>).</summary>
    public async ValueTask DisposeAsync()
    {
        _stopping.Cancel();
        if (_app is not null)
        {
            await _app.StopAsync();
            await _app.DisposeAsync();
        }
    }

    private async Task Handle(HttpContext http)
    {
        var clock = Stopwatch.StartNew();
        var request = http.Request;
        string path = request.Path.Value ?? "/";
        string? outcome = null;
        try
        {
            switch (path)
            {
                case "/health":
                    Require(http, "GET");
                    var (running, waiting) = _pool.Load();
                    await WriteJson(http, 200, w =>
                    {
                        w.WriteString("status", "ok");
                        w.WriteString("model", _info.Name);
                        w.WriteNumber("sessions", _pool.Size);
                        w.WriteNumber("running", running);
                        w.WriteNumber("waiting", waiting);
                    });
                    break;
                case "/v1/models":
                    Require(http, "GET");
                    Authorize(http);
                    await WriteJson(http, 200, w =>
                    {
                        w.WriteString("object", "list");
                        w.WriteStartArray("data");
                        w.WriteStartObject();
                        WriteModel(w);
                        w.WriteEndObject();
                        w.WriteEndArray();
                    });
                    break;
                case "/v1/completions":
                case "/v1/chat/completions":
                    Require(http, "POST");
                    Authorize(http);
                    outcome = await Generate(http, chat: path == "/v1/chat/completions");
                    break;
                default:
                    if (path == "/v1/models/" + _info.Name)
                    {
                        Require(http, "GET");
                        Authorize(http);
                        await WriteJson(http, 200, WriteModel);
                        break;
                    }
                    throw new ApiException(404, $"no such endpoint: {request.Method} {path}", code: "unknown_url");
            }
        }
        catch (Exception e) when (Answer(e) is { } error)
        {
            outcome = error.Message;
            await WriteError(http, error);
        }
        catch (Exception) when (http.RequestAborted.IsCancellationRequested)
        {
            outcome = "client went away";
        }
        lock (_log)
            _log.WriteLine($"serve: {http.Connection.RemoteIpAddress} {request.Method} {path} {http.Response.StatusCode} " +
                           $"{clock.Elapsed.TotalSeconds:F2} s{(outcome is null ? "" : " (" + outcome.ReplaceLineEndings(" ") + ")")}");
    }

    /// <summary>The error answer for an exception; null when the client is gone and nothing can be answered.</summary>
    private static ApiException? Answer(Exception e) => e switch
    {
        ApiException api => api,
        BadHttpRequestException bad => new ApiException(bad.StatusCode,
            bad.StatusCode == 413 ? "the request body is too large" : bad.Message, code: bad.StatusCode == 413 ? "request_too_large" : null),
        OperationCanceledException or IOException => null,
        BadInputException or InvalidSamplerOptionException => ApiException.Invalid(e.Message),
        _ => new ApiException(500, e.Message),
    };

    private void WriteModel(Utf8JsonWriter w)
    {
        w.WriteString("id", _info.Name);
        w.WriteString("object", "model");
        w.WriteNumber("created", _started);
        w.WriteString("owned_by", "aotflash");
    }

    private static void Require(HttpContext http, string method)
    {
        if (http.Request.Method == method) return;
        http.Response.Headers.Allow = method;
        throw new ApiException(405, $"{http.Request.Path} takes {method}, not {http.Request.Method}", code: "method_not_allowed");
    }

    private void Authorize(HttpContext http)
    {
        if (_apiKey is null) return;
        string header = http.Request.Headers.Authorization.ToString();
        const string Bearer = "Bearer ";
        bool ok = header.StartsWith(Bearer, StringComparison.OrdinalIgnoreCase)
                  && CryptographicOperations.FixedTimeEquals(Encoding.UTF8.GetBytes(header[Bearer.Length..].Trim()), _apiKey);
        if (!ok)
            throw new ApiException(401, header.Length == 0 ? "an API key is required: send 'Authorization: Bearer KEY'" : "the API key is not valid",
                code: "invalid_api_key");
    }

    /// <summary>Reads, checks and runs a generation request; returns the log's note on it.</summary>
    private async Task<string> Generate(HttpContext http, bool chat)
    {
        var body = await ReadBody(http);
        var request = GenerationRequest.Parse(body, chat, _requests);
        var (running, waiting) = _pool.Load();
        using var wait = CancellationTokenSource.CreateLinkedTokenSource(http.RequestAborted, _stopping.Token);
        var acquired = _pool.Acquire(wait.Token)
            ?? throw new ApiException(503, $"the server is busy: {running} requests are generating and {waiting} waiting, " +
                                           $"the most that may wait; try again later", code: "server_busy");
        Transformer transformer;
        try { transformer = await acquired; }
        catch (OperationCanceledException) when (_stopping.IsCancellationRequested && !http.RequestAborted.IsCancellationRequested)
        { throw new ApiException(503, "the server is stopping", code: "server_stopping"); }
        try { return await Run(http, request, transformer); }
        finally { _pool.Release(transformer); }
    }

    private static async Task<ReadOnlyMemory<byte>> ReadBody(HttpContext http)
    {
        var body = new MemoryStream();
        await http.Request.Body.CopyToAsync(body, http.RequestAborted);
        return body.GetBuffer().AsMemory(0, (int)body.Length);
    }

    private async Task<string> Run(HttpContext http, GenerationRequest request, Transformer transformer)
    {
        using var cancel = CancellationTokenSource.CreateLinkedTokenSource(http.RequestAborted, _stopping.Token);
        var answer = new AnswerText(request.Stop);
        var pieces = Channel.CreateUnbounded<string>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });
        var stopTokens = request.Chat ? _chatStopTokens : [];
        bool templateStop = false;
        int bos = _info.Tokenizer.Bos;
        var session = new Session(transformer, _tokenizer, new Sampler(_info.Shape.Vocab, request.Sampling));
        // Generation computes for as long as the answer takes: a thread of its own, not one of the server's pool.
        var generating = Task.Factory.StartNew(() =>
        {
            try
            {
                return session.Generate(request.PromptIds, request.MaxTokens, 0, (previous, token) =>
                {
                    if (stopTokens.Contains(token))
                    {
                        templateStop = true;
                        return false;
                    }
                    string text = answer.Add(_tokenizer.Decode(previous, token, bos));
                    if (text.Length > 0) pieces.Writer.TryWrite(text);
                    return !answer.Stopped;
                }, cancel: cancel.Token);
            }
            finally { pieces.Writer.Complete(); }
        }, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);

        try
        {
            var reply = new Reply(request.Chat, NewId(request.Chat), DateTimeOffset.UtcNow.ToUnixTimeSeconds(), _info.Name);
            var text = new StringBuilder();
            if (request.Stream)
            {
                http.Response.ContentType = "text/event-stream";
                http.Response.Headers.CacheControl = "no-cache";
                if (request.Chat) await SendEvent(http, w => reply.WriteChunk(w, "", role: true, finish: null, request.IncludeUsage));
                await foreach (string piece in pieces.Reader.ReadAllAsync(http.RequestAborted))
                    await SendEvent(http, w => reply.WriteChunk(w, piece, role: false, finish: null, request.IncludeUsage));
            }
            var result = await generating;
            http.RequestAborted.ThrowIfCancellationRequested(); // the client is gone: nothing to answer
            string tail = answer.Finish();
            // "length" for an answer cut short by the end of max_tokens or of the context, or by the server stopping.
            string finish = answer.Stopped || templateStop || result.StopReason == StopReason.StopToken ? "stop" : "length";
            // A template's stop token is not part of the answer, as the spec's stop tokens are not.
            var usage = (result.PromptIds.Length, result.GeneratedIds.Count - (templateStop ? 1 : 0));
            void Stats(Utf8JsonWriter w) => RunCommand.WriteStats(w, result, transformer, _settings.Threads, _settings.LoadMs);
            if (request.Stream)
            {
                if (tail.Length > 0) await SendEvent(http, w => reply.WriteChunk(w, tail, role: false, finish: null, request.IncludeUsage));
                await SendEvent(http, w =>
                {
                    reply.WriteChunk(w, "", role: false, finish, request.IncludeUsage, closeObject: false);
                    Stats(w);
                    w.WriteEndObject();
                });
                if (request.IncludeUsage) await SendEvent(http, w => reply.WriteUsageChunk(w, usage));
                await http.Response.WriteAsync("data: [DONE]\n\n");
                await http.Response.Body.FlushAsync();
            }
            else
            {
                while (pieces.Reader.TryRead(out string? piece)) text.Append(piece);
                text.Append(tail);
                await WriteJson(http, 200, w =>
                {
                    reply.WriteWhole(w, text.ToString(), finish, usage);
                    Stats(w);
                });
            }
            return $"{usage.Item1} prompt tokens, {usage.Item2} generated, {finish}" +
                   (result.StopReason == StopReason.Callback && _stopping.IsCancellationRequested ? ", ended by shutdown" : "");
        }
        catch (Exception e) when (e is OperationCanceledException or IOException && http.RequestAborted.IsCancellationRequested)
        {
            cancel.Cancel();
            var result = await generating;
            return $"client went away: {result.PromptIds.Length} prompt tokens, {result.GeneratedIds.Count} generated";
        }
        finally
        {
            cancel.Cancel();
            // The transformer goes back to the pool only once its generation has ended.
            try { await generating; } catch (Exception) { /* already answered, or the client is gone */ }
        }
    }

    /// <summary>A response id. Not from RandomNumberGenerator: that loads OpenSSL, which a device may not have (the process
    /// would abort on its first answer), and an id needs no secrecy.</summary>
    private static string NewId(bool chat) => (chat ? "chatcmpl-" : "cmpl-") + Guid.NewGuid().ToString("N")[..24];

    private static async Task WriteJson(HttpContext http, int status, Action<Utf8JsonWriter> writeFields)
    {
        var buffer = new ArrayBufferWriter<byte>();
        using (var w = new Utf8JsonWriter(buffer, Json))
        {
            w.WriteStartObject();
            writeFields(w);
            w.WriteEndObject();
        }
        http.Response.StatusCode = status;
        http.Response.ContentType = "application/json";
        http.Response.ContentLength = buffer.WrittenCount + 1;
        await http.Response.Body.WriteAsync(buffer.WrittenMemory);
        await http.Response.Body.WriteAsync("\n"u8.ToArray());
    }

    /// <summary>One server-sent event, <c>data: {json}</c>, flushed at once.</summary>
    private static async Task SendEvent(HttpContext http, Action<Utf8JsonWriter> write)
    {
        var buffer = new ArrayBufferWriter<byte>();
        buffer.Write("data: "u8);
        using (var w = new Utf8JsonWriter(buffer, Json)) write(w);
        buffer.Write("\n\n"u8);
        await http.Response.Body.WriteAsync(buffer.WrittenMemory, http.RequestAborted);
        await http.Response.Body.FlushAsync(http.RequestAborted);
    }

    private static async Task WriteError(HttpContext http, ApiException e)
    {
        void Fields(Utf8JsonWriter w)
        {
            w.WriteStartObject("error");
            w.WriteString("message", e.Message);
            w.WriteString("type", e.Type);
            w.WriteString("param", e.Param);
            w.WriteString("code", e.Code);
            w.WriteEndObject();
        }
        if (!http.Response.HasStarted)
        {
            await WriteJson(http, e.Status, Fields);
            return;
        }
        // Mid-stream (a failure while generating): the error is the last event.
        try
        {
            await SendEvent(http, w =>
            {
                w.WriteStartObject();
                Fields(w);
                w.WriteEndObject();
            });
        }
        catch (Exception) when (http.RequestAborted.IsCancellationRequested) { }
    }
}
