using System.Diagnostics;
using System.Text.Json;
using System.Text.RegularExpressions;
using AotFlash.Tests.Support;

namespace AotFlash.Tests.EndToEnd;

/// <summary>The published executable with the server (publish.sh --server) serving the official openai npm client
/// (tests/Server/client): completion, chat whole and streamed, concurrent streams, a client that aborts, errors.</summary>
public sealed partial class ServeTests
{
    private const string Model = "stories260K-relu";
    private static readonly string ClientFolder = Path.Combine(TestPaths.RepoRoot, "tests", "Server", "client");

    [GeneratedRegex(@"listening on (http://\S+)")]
    private static partial Regex Listening();

    [SkippableFact]
    public void TheOpenAiClientGetsWhatRunGives()
    {
        ModelSource.RequireShared();
        Skip.If(Which("node") is null, "node is not installed (.ci/run installs it)");
        Assert.True(Directory.Exists(Path.Combine(ClientFolder, "node_modules", "openai")),
            "the openai client is not installed: npm ci --prefix tests/Server/client (.ci/run does it)");
        string exe = Published.ServerExecutable(Model);

        var psi = new ProcessStartInfo(exe) { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        foreach (var a in new[] { "serve", "--port", "0", "--chat-template", "llama2", "--parallel", "2", "--api-key", "k" }) psi.ArgumentList.Add(a);
        using var server = Process.Start(psi)!;
        var log = new List<string>();
        string? url = null;
        try
        {
            while (url is null && server.StandardError.ReadLine() is { } line)
            {
                log.Add(line);
                url = Listening().Match(line) is { Success: true } m ? m.Groups[1].Value : null;
            }
            Assert.True(url is not null, "serve did not say where it listens:\n" + string.Join('\n', log));
            var rest = server.StandardError.ReadToEndAsync();

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
            Assert.Equal(0, Kill(server.Id, 15));
            Assert.True(server.WaitForExit(30_000), "serve did not stop on SIGTERM");
            Assert.Equal(0, server.ExitCode);
            string stderr = rest.Result;
            Assert.Contains("serve: stopping", stderr);
            var gone = Regex.Match(stderr, @"client went away: \d+ prompt tokens, (\d+) generated");
            Assert.True(gone.Success, stderr);
            Assert.InRange(int.Parse(gone.Groups[1].Value), 1, 399);
        }
        finally
        {
            if (!server.HasExited) server.Kill();
        }
    }

    private static string? Which(string name) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':').Select(d => Path.Combine(d, name)).FirstOrDefault(File.Exists);

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "kill")]
    private static extern int Kill(int pid, int signal);
}
