using AotFlash.Tests.Support;
using Xunit.Abstractions;

namespace AotFlash.Tests.EndToEnd;

/// <summary>The linux-arm64 binary, cross-compiled by publish.sh and run under qemu-aarch64 (user-mode emulation),
/// against the same references as the x64 binaries. Its kernels take the Vector128 (AdvSimd) path.</summary>
public sealed class Arm64Tests(ITestOutputHelper output)
{
    private static readonly string[] Qemu = ["qemu-aarch64", "-L", "/usr/aarch64-linux-gnu"];

    private static bool Have(string file) => Environment.GetEnvironmentVariable("PATH")!.Split(':').Any(d => File.Exists(Path.Combine(d, file)));

    [SkippableFact]
    public void EmulatedArm64BinaryReproducesReference()
    {
        ModelSource.RequireShared();
        Skip.IfNot(Have("qemu-aarch64") && Have("aarch64-linux-gnu-objcopy") && Directory.Exists("/usr/aarch64-linux-gnu/lib"),
            "needs qemu-user, gcc-aarch64-linux-gnu, libc6-dev-arm64-cross and lld (.ci/run installs them)");
        const string model = "stories260K-relu";
        string exe = Published.Executable(model, "linux-arm64");
        var info = ProcessRunner.Run(Qemu[0], [.. Qemu[1..], exe, "info"]);
        Assert.Contains("V128", info.Stdout);
        float worst = 0;
        foreach (var reference in GreedyReference.Load(model))
        {
            var r = ProcessRunner.Run(Qemu[0], [.. Qemu[1..], exe, "run", "--mode", "dense", "-p", reference.Prompt, "--temp", "0", "--json",
                "--dump-logits", "4", "-n", reference.MaxNew.ToString(), "-t", "2"]);
            Assert.True(r.ExitCode == 0, r.Stderr);
            worst = Math.Max(worst, RunOutput.Parse(r.Stdout).AssertMatches(reference));
        }
        output.WriteLine($"arm64 (qemu): all prompts match in dense mode; max logit error {worst:E2}");

        // Flash mode (publish.sh calibrated the model): O_DIRECT reads with arm64's flag value, through qemu.
        var first = GreedyReference.Load(model)[0];
        var f = ProcessRunner.Run(Qemu[0], [.. Qemu[1..], exe, "run", "--mode", "flash", "-p", first.Prompt, "--temp", "0", "--json", "-n", "64"]);
        Assert.True(f.ExitCode == 0, f.Stderr);
        var flash = RunOutput.Parse(f.Stdout);
        int same = flash.GeneratedIds.Zip(first.Generated).TakeWhile(p => p.First == p.Second).Count();
        output.WriteLine($"arm64 flash mode: {same} of 64 tokens as the reference, {flash.Stats.GetProperty("bytes_read_per_token").GetDouble():F0} bytes read per token");
        Assert.True(same >= 32, $"arm64 flash mode left the reference after {same} tokens");
        Assert.True(flash.Stats.GetProperty("bytes_read_per_token").GetDouble() > 0);
    }

    // serve on arm64, where no OpenSSL is installed for the emulated process: an answer must not need it (a random
    // response id from RandomNumberGenerator did, and the process aborted on its first answer).
    [SkippableFact]
    public async Task EmulatedArm64ServerAnswers()
    {
        ModelSource.RequireShared();
        Skip.IfNot(Have("qemu-aarch64") && Have("aarch64-linux-gnu-objcopy") && Directory.Exists("/usr/aarch64-linux-gnu/lib"),
            "needs qemu-user, gcc-aarch64-linux-gnu, libc6-dev-arm64-cross and lld (.ci/run installs them)");
        const string model = "stories260K-relu";
        using var server = new ServeProcess(Qemu, Published.ServerExecutable(model, "linux-arm64"), ["--chat-template", "llama2", "--api-key", "k", "--mode", "dense"]);
        using var client = new HttpClient { BaseAddress = new Uri(server.Url!), Timeout = TimeSpan.FromSeconds(120) };
        client.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", "k");
        var first = GreedyReference.Load(model)[0];
        using var completion = await client.PostAsync("/v1/completions", new StringContent(
            System.Text.Json.JsonSerializer.Serialize(new { prompt = first.PromptIds, max_tokens = 20, temperature = 0 })));
        string body = await completion.Content.ReadAsStringAsync();
        Assert.True(completion.IsSuccessStatusCode, body);
        var usage = System.Text.Json.JsonDocument.Parse(body).RootElement.GetProperty("usage");
        Assert.Equal(20, usage.GetProperty("completion_tokens").GetInt32());
        using var chat = await client.PostAsync("/v1/chat/completions", new StringContent(
            """{"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 5, "stream": true}"""));
        string events = await chat.Content.ReadAsStringAsync();
        Assert.True(chat.IsSuccessStatusCode, events);
        Assert.EndsWith("data: [DONE]\n\n", events);
        var (exitCode, stderr) = server.Stop();
        Assert.True(exitCode == 0, stderr);
        output.WriteLine(stderr);
    }

    // The q8 kernels' arm64 bodies (SDOT where the CPU has it, widening multiplies where not: qemu's default CPU has
    // the dot-product extension, a Cortex-A57 does not) give the x64 (in-process) ids and logits.
    [SkippableFact]
    public void EmulatedArm64QuantisedKernelsMatchX64()
    {
        ModelSource.RequireShared();
        Skip.IfNot(Have("qemu-aarch64") && Have("aarch64-linux-gnu-objcopy") && Directory.Exists("/usr/aarch64-linux-gnu/lib"),
            "needs qemu-user, gcc-aarch64-linux-gnu, libc6-dev-arm64-cross and lld (.ci/run installs them)");
        const string spec = "stories260K-relu-q8";
        string exe = Published.TestSpecExecutable(spec, "stories260K-relu", "linux-arm64");
        string[] run = ["run", "-p", "Once upon a time", "-n", "40", "--temp", "0", "--json", "--dump-logits", "4", "-t", "1"];
        var x64 = RunOutput.Parse(InProcess.Run(spec, [.. run, "--model", InProcess.ModelFile(spec, "stories260K-relu")]).Stdout);
        foreach (string[] cpu in new[] { Array.Empty<string>(), ["-cpu", "cortex-a57"] })
        {
            var r = ProcessRunner.Run(Qemu[0], [.. cpu, .. Qemu[1..], exe, .. run]);
            Assert.True(r.ExitCode == 0, r.Stderr);
            var arm = RunOutput.Parse(r.Stdout);
            Assert.Equal(x64.GeneratedIds, arm.GeneratedIds);
            float worst = 0;
            for (int p = 0; p < x64.Logits.Length; p++)
                for (int i = 0; i < x64.Logits[p].Length; i++) worst = Math.Max(worst, Math.Abs(x64.Logits[p][i] - arm.Logits[p][i]));
            output.WriteLine($"arm64 q8 ({(cpu.Length == 0 ? "qemu max, sdot" : "cortex-a57, no sdot")}): same ids as x64, max logit difference {worst:E2}");
            Assert.True(worst <= 1e-4f, $"max logit difference {worst}");
        }
    }
}
