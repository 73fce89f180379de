using System.Net;
using System.Net.Sockets;
using System.Text;
using AotFlash.Cli;
using AotFlash.Server;
using AotFlash.Tests.Support;

namespace AotFlash.Tests.Server;

/// <summary>serve's command line, in-process: what an executable without the server says, and the options it refuses
/// before anything listens.</summary>
public sealed class ServeCommandTests
{
    private const string Model = "stories260K";

    private static ProcessResult Serve(params string[] args)
    {
        var stdout = new MemoryStream();
        var stderr = new StringWriter();
        int code = CommandLine.Run(new CliContext(InProcess.Model(Model), new MemoryStream(), stdout, stderr, executablePath: null),
            ["serve", .. args], [ServeCommand.Command]);
        return new ProcessResult(code, Encoding.UTF8.GetString(stdout.ToArray()), stderr.ToString());
    }

    [Fact]
    public void WithoutTheServerServeSaysHowToBuildIt() =>
        InProcess.Run(Model, "serve", "--port", "0").AssertBadInput("built without the HTTP server: build it with './publish.sh SPEC --server'");

    [Fact]
    public void HelpListsTheOptions()
    {
        var r = Serve("--help");
        Assert.Equal(0, r.ExitCode);
        foreach (var option in new[] { "--host", "--port", "--parallel", "--queue", "--api-key", "--chat-template", "--dram-budget", "--model" })
            Assert.Contains(option, r.Stdout);
    }

    [Theory]
    [InlineData("--host must be an IP address or localhost", "--host", "example.com")]
    [InlineData("'--port' must be an integer in [0, 65535]", "--port", "70000")]
    [InlineData("'--parallel' must be an integer in [1, 256]", "--parallel", "0")]
    [InlineData("'--queue' must be an integer", "--queue", "-1")]
    [InlineData("unknown chat template 'alpaca'", "--chat-template", "alpaca")]
    [InlineData("--api-key must not be empty", "--api-key", "")]
    [InlineData("sampler: top-p must be in (0, 1]", "--top-p", "2")]
    [InlineData("unknown --mode 'fast'", "--mode", "fast")]
    [InlineData("unexpected argument 'extra'", "extra")]
    public void BadOptionsAreOneErrorLine(string message, params string[] args) => Serve(args).AssertBadInput(message);

    [SkippableFact]
    public void APortInUseIsOneErrorLine()
    {
        ModelSource.RequireShared();
        using var taken = new TcpListener(IPAddress.Loopback, 0);
        taken.Start();
        int port = ((IPEndPoint)taken.LocalEndpoint).Port;
        Serve("--port", port.ToString(), "--model", InProcess.ModelFile(Model, Model)).AssertBadInput($"cannot listen on 127.0.0.1:{port}");
    }
}
