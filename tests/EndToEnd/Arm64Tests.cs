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
}
