using System.Net;
using System.Runtime.InteropServices;
using AotFlash.Cli;
using AotFlash.Inference;

using AotFlash.Tokenizers;

namespace AotFlash.Server;

/// <summary><c>serve</c>: loads the model once and answers OpenAI's completions and chat completions API over HTTP until
/// SIGINT or SIGTERM.</summary>
public static class ServeCommand
{
    private const int DefaultPort = 8080, DefaultQueue = 16;

    internal static readonly Option[] Options =
    [
        new(["--host"], "ADDR", "address to listen on: an IP address or localhost (default 127.0.0.1; 0.0.0.0 for every\n" +
                                "                             interface)"),
        new(["--port"], "N", $"TCP port (default {DefaultPort}; 0 picks a free one); the address is printed once listening"),
        new(["--parallel"], "N", "requests that generate at once, one session (KV cache, FFN cache) each (default 1)"),
        new(["--queue"], "N", $"requests that may wait for a session; past that they are refused with 503 (default {DefaultQueue})"),
        new(["--api-key"], "KEY", "require 'Authorization: Bearer KEY' on /v1/ (default: $AOTFLASH_API_KEY when set, else none)"),
        new(["--chat-template"], "T", "prompt format of /v1/chat/completions: none, llama2 or chatml (default: the spec's)"),
        new(["-t", "--threads"], "N", "compute threads of each session (default: the physical cores / --parallel, at least 1)"),
        new(["--temp"], "T", "temperature of requests that give none (default 0.8)"),
        new(["--top-k"], "K", "top-k of requests that give none (requests may send top_k), 0 = off (default 40)"),
        new(["--top-p"], "P", "top-p of requests that give none (default 0.95)"),
        new(["--min-p"], "P", "min-p of requests that give none (requests may send min_p), 0 = off (default 0.05)"),
        .. RunCommand.EngineSettings,
        ModelLoader.ModelOption,
    ];

    /// <summary>The command as the executable's command table lists it.</summary>
    public static Command Command { get; } = new("serve", "answer OpenAI's completions and chat API over HTTP", Execute, Help, Options);

    public static string Help(CliContext ctx) => CommandLine.HelpText(
        $"{ctx.ProgramName} serve [--host ADDR] [--port N] [--parallel N] [--queue N] [--api-key KEY] [--chat-template T] [-t N] [--mode MODE]",
        "Loads the model once and serves OpenAI's HTTP API until SIGINT or SIGTERM: POST /v1/completions and\n" +
        "/v1/chat/completions (\"stream\": true for server-sent events), GET /v1/models and GET /health. Each response\n" +
        "carries run --json's stats as \"stats\" (in the last event when streaming). One line per request goes to stderr.\n" +
        "In flash mode each session has the DRAM budget to itself: --parallel N uses up to N budgets.",
        Options);

    public static int Execute(CliContext ctx, string[] args)
    {
        var a = new Arguments("serve", args, Options);
        a.NoPositional();
        var info = ctx.Model;
        string host = a.String("--host") ?? "127.0.0.1";
        if (host != "localhost" && !IPAddress.TryParse(host, out _))
            throw new BadInputException($"--host must be an IP address or localhost, got '{host}'");
        int port = a.Int("--port", DefaultPort, min: 0, max: 65535);
        int parallel = a.Int("--parallel", 1, min: 1, max: 256);
        int queue = a.Int("--queue", DefaultQueue, min: 0, max: 1 << 20);
        string? apiKey = a.String("--api-key") ?? Environment.GetEnvironmentVariable("AOTFLASH_API_KEY");
        if (apiKey == "") throw new BadInputException("--api-key must not be empty");
        var templateKind = a.String("--chat-template") is { } name ? ChatTemplate.Parse(name) : info.Tokenizer.ChatTemplate;
        int threads = a.Int("--threads", Math.Max(1, RunCommand.DefaultThreads / parallel), min: 1, max: 1024);
        var defaults = RunCommand.ReadSampling(a, seed: 0); // each request brings its seed, or gets a random one
        var options = RunCommand.ReadEngineOptions(ctx, a, threads);

        var clock = System.Diagnostics.Stopwatch.StartNew();
        using var file = ModelLoader.Open(ctx, a.String("--model"));
        ModelLoader.Provenance(ctx, file);
        using var loaded = LoadedModel.Load(info, file, options);
        var tokenizer = info.LoadTokenizer(loaded.Weights, file.Source);
        var transformers = new List<Transformer>();
        try
        {
            for (int i = 0; i < parallel; i++) transformers.Add(loaded.NewTransformer(options));
        }
        catch
        {
            new SessionPool(transformers, 0).Dispose();
            throw;
        }
        var pool = new SessionPool(transformers, queue);
        var settings = new ServerSettings
        {
            Host = host, Port = port, ApiKey = apiKey, Defaults = defaults, Threads = threads,
            LoadMs = clock.Elapsed.TotalMilliseconds,
            // A prompt as long as the context can hold, every byte escaped (\uXXXX), with room for the rest of the request.
            MaxBodyBytes = 6 * Session.MaxPromptBytesOf(info, tokenizer) + (64 << 10),
        };
        var server = new OpenAiServer(info, tokenizer, new ChatTemplate(templateKind, tokenizer, info.Tokenizer.Bos, info.Tokenizer.Eos), pool, settings, ctx.Stderr);
        try
        {
            using var stop = new ManualResetEventSlim();
            void Stop(PosixSignalContext signal)
            {
                signal.Cancel = true;
                stop.Set();
            }
            using var interrupt = PosixSignalRegistration.Create(PosixSignal.SIGINT, Stop);
            using var terminate = PosixSignalRegistration.Create(PosixSignal.SIGTERM, Stop);
            string address;
            try { address = server.StartAsync().GetAwaiter().GetResult(); }
            catch (IOException e) { throw new BadInputException($"cannot listen on {host}:{port}: {e.Message}"); }
            ctx.Stderr.WriteLine($"serve: {info.Name} listening on {address} ({transformers[0].Mode.ToString().ToLowerInvariant()} mode, " +
                                 $"{parallel} session{(parallel == 1 ? "" : "s")} of {threads} thread{(threads == 1 ? "" : "s")}, queue {queue}, " +
                                 $"chat template {ChatTemplate.NameOf(templateKind)}{(apiKey is null ? "" : ", API key required")}; " +
                                 $"loaded in {settings.LoadMs:F0} ms)");
            ctx.Stderr.Flush();
            stop.Wait();
            lock (ctx.Stderr) ctx.Stderr.WriteLine("serve: stopping"); // the server logs under the same lock
        }
        finally
        {
            server.DisposeAsync().AsTask().GetAwaiter().GetResult();
            pool.Dispose();
        }
        return 0;
    }
}
