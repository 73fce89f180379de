using System.Text.RegularExpressions;
using Xunit.Abstractions;

namespace AotFlash.Tests;

/// <summary>
/// The runtime's folders depend on each other in one direction only, as the README's layout table draws it. A folder
/// is a namespace (<c>runtime/Flash</c> is <c>AotFlash.Flash</c>), and C# makes code name a sibling namespace to use
/// it (<c>using AotFlash.Flash;</c>, <c>AotFlash.Flash.Layout</c> or, from inside AotFlash, <c>Flash.Layout</c>), so
/// reading those names finds every arrow between folders.
/// </summary>
public sealed partial class ArchitectureTests(ITestOutputHelper output)
{
    /// <summary>What each folder may use besides the BCL and the root namespace (BadInputException, ProductVersion).</summary>
    private static readonly Dictionary<string, string[]> Allowed = new()
    {
        ["Kernels"] = [],
        ["Threading"] = [],
        ["Tokenizers"] = [],
        ["Sampling"] = [],
        ["Flash"] = ["Kernels", "Threading"],
        ["Sparsity"] = ["Flash", "Kernels"],
        ["Ffn"] = ["Sparsity", "Flash", "Kernels"],
        ["Inference"] = ["Ffn", "Sparsity", "Flash", "Kernels", "Threading", "Tokenizers", "Sampling"],
        ["Calibration"] = ["Inference", "Ffn", "Sparsity", "Flash", "Kernels", "Threading", "Tokenizers", "Sampling"],
        ["Convert"] = ["Inference", "Ffn", "Sparsity", "Flash", "Kernels", "Threading", "Tokenizers", "Sampling"],
        ["Interop"] = ["Inference", "Ffn", "Sparsity", "Flash", "Kernels", "Threading", "Tokenizers", "Sampling"],
        ["Cli"] = ["Calibration", "Convert", "Inference", "Ffn", "Sparsity", "Flash", "Kernels", "Threading", "Tokenizers", "Sampling"],
    };

    [GeneratedRegex(@"^namespace AotFlash(?:\.(\w+))?;", RegexOptions.Multiline)]
    private static partial Regex Namespace();

    /// <summary>"using AotFlash.X;", "AotFlash.X.Type", "global::AotFlash.X.Type", or "X.Type" where X is not itself a
    /// member (no identifier or dot before it).</summary>
    [GeneratedRegex(@"\bAotFlash\.([A-Z]\w*)|(?<![\w.])([A-Z]\w*)\.[A-Z]")]
    private static partial Regex Reference();

    [Fact]
    public void FoldersDependOnEachOtherOneWay()
    {
        string runtime = Path.Combine(TestPaths.RepoRoot, "runtime");
        var files = Directory.GetFiles(runtime, "*.cs", SearchOption.AllDirectories)
            .Where(f => !f.Contains($"{Path.DirectorySeparatorChar}obj{Path.DirectorySeparatorChar}")
                        && !f.Contains($"{Path.DirectorySeparatorChar}bin{Path.DirectorySeparatorChar}"))
            .ToArray();
        Assert.True(files.Length > 50, $"found only {files.Length} source files under {runtime}");
        var seen = new SortedSet<string>();
        var wrong = new List<string>();
        foreach (string file in files)
        {
            string relative = Path.GetRelativePath(runtime, file);
            string folder = Path.GetDirectoryName(relative) is { Length: > 0 } d ? d : "";
            string text = File.ReadAllText(file);
            var ns = Namespace().Match(text);
            Assert.True(ns.Success, $"{relative} declares no file-scoped AotFlash namespace");
            Assert.True(ns.Groups[1].Value == folder, $"{relative} is in namespace AotFlash.{ns.Groups[1].Value}, not its folder's");
            if (folder.Length == 0) continue; // the root's few types depend on nothing of the runtime
            Assert.True(Allowed.ContainsKey(folder), $"folder {folder} is missing from the dependency table (and the README's)");
            string code = string.Join('\n', text.Split('\n').Select(line => line.Split("//")[0]).Where(line => !line.StartsWith("namespace ")));
            foreach (var used in Reference().Matches(code).Select(m => m.Groups[1].Success ? m.Groups[1].Value : m.Groups[2].Value).Distinct())
            {
                if (used == folder || !Allowed.ContainsKey(used)) continue; // itself, or a type of the root namespace
                seen.Add($"{folder} -> {used}");
                if (!Allowed[folder].Contains(used)) wrong.Add($"{relative} uses {used}");
            }
        }
        foreach (var arrow in seen) output.WriteLine(arrow);
        Assert.True(wrong.Count == 0, "arrows against the layering: " + string.Join("; ", wrong));
    }

    [Fact]
    public void TheAllowedArrowsHaveNoCycle()
    {
        var state = new Dictionary<string, int>(); // 1 visiting, 2 done
        void Visit(string folder, string path)
        {
            if (state.GetValueOrDefault(folder) == 2) return;
            Assert.True(state.GetValueOrDefault(folder) != 1, "cycle: " + path + " -> " + folder);
            state[folder] = 1;
            foreach (var next in Allowed[folder]) Visit(next, path + " -> " + folder);
            state[folder] = 2;
        }
        foreach (var folder in Allowed.Keys) Visit(folder, "");
    }
}
