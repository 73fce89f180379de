using System.Text.Json;
using System.Text.RegularExpressions;
using AotFlash.Tests.Support;

namespace AotFlash.Tests.EndToEnd;

/// <summary>The published executable with the server (publish.sh --server) serving the official openai npm client
/// (tests/Server/client): completion, chat whole and streamed, concurrent streams, a client that aborts, errors.</summary>
public sealed class ServeTests
{
    private const string Model = "stories260K-relu";
    private static readonly string ClientFolder = Path.Combine(TestPaths.RepoRoot, "tests", "Server", "client");

    [SkippableFact]
    public void TheOpenAiClientGetsWhatRunGives()
    {
        ModelSource.RequireShared();
        Skip.If(Which("node") is null, "node is not installed (.ci/run installs it)");
        Assert.True(Directory.Exists(Path.Combine(ClientFolder, "node_modules", "openai")),
            "the openai client is not installed: npm ci --prefix tests/Server/client (.ci/run does it)");
        string exe = Published.ServerExecutable(Model);

        using var server = new ServeProcess(exe, "--chat-template", "llama2", "--parallel", "2", "--api-key", "k");
        string url = server.Url!;
        var client = ProcessRunner.Run("node", [Path.Combine(ClientFolder, "scenarios.mjs"), url, "k", Model], ClientFolder, timeoutSeconds: 300);
        Assert.True(client.ExitCode == 0, client.Stderr);
        var r = JsonDocument.Parse(client.Stdout).RootElement;

        // The same greedy text as run gives with the same binary and mode.
        var run = RunOutput.Parse(ProcessRunner.Run(exe, ["run", "-p", "Once upon a time", "-n", "20", "--temp", "0", "--json"]).Stdout);
        Assert.Equal(run.Text, r.GetProperty("completion").GetProperty("text").GetString());
        Assert.Equal(20, r.GetProperty("completion").GetProperty("usage").GetProperty("completion_tokens").GetInt32());
        Assert.Equal(run.PromptIds.Length, r.GetProperty("completion").GetProperty("usage").GetProperty("prompt_tokens").GetInt32());

        Assert.Equal(r.GetProperty("chat").GetProperty("text").GetString(), r.GetProperty("chatStream").GetProperty("text").GetString());
        Assert.Equal("length", r.GetProperty("chatStream").GetProperty("finish").GetString());
        var concurrent = r.GetProperty("concurrent");
        Assert.Equal(concurrent.GetProperty("alone").GetRawText(), concurrent.GetProperty("together").GetRawText());
        Assert.NotEqual(concurrent.GetProperty("alone")[0].GetString(), concurrent.GetProperty("alone")[1].GetString());
        Assert.Equal(2, r.GetProperty("aborted").GetProperty("chunks").GetInt32());
        var errors = r.GetProperty("errors");
        Assert.Equal(400, errors.GetProperty("emptyMessages").GetProperty("status").GetInt32());
        Assert.Equal("temperature", errors.GetProperty("badTemperature").GetProperty("param").GetString());
        Assert.Equal(401, errors.GetProperty("wrongKey").GetProperty("status").GetInt32());
        Assert.Equal($"[\"{Model}\"]", r.GetProperty("models").GetRawText());

        // SIGTERM: a clean stop, and the aborted stream was stopped long before its 400 tokens.
        var (exitCode, stderr) = server.Stop();
        Assert.Equal(0, exitCode);
        Assert.Contains("serve: stopping", stderr);
        var gone = Regex.Match(stderr, @"client went away: \d+ prompt tokens, (\d+) generated");
        Assert.True(gone.Success, stderr);
        Assert.InRange(int.Parse(gone.Groups[1].Value), 1, 399);
    }

    private static string? Which(string name) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':').Select(d => Path.Combine(d, name)).FirstOrDefault(File.Exists);
}
