namespace AotFlash.Tests;

/// <summary>
/// Locates the repository and the read-only reference data in <c>../shared</c> beside it.
/// Tests that need shared data call <see cref="SharedFile"/> and return early (passing) when it
/// gives null, so the suite still runs on a checkout without shared/.
/// </summary>
public static class TestPaths
{
    /// <summary>Environment variable that, when set to an existing folder, overrides the shared/ location.</summary>
    public const string SharedEnvironmentVariable = "AOTFLASH_SHARED";

    static readonly string? s_foundRoot = FindRepoRoot();

    /// <summary>
    /// The first folder, walking up from <see cref="AppContext.BaseDirectory"/>, that holds
    /// <c>AotFlash.sln</c> or <c>.git</c>; <see cref="AppContext.BaseDirectory"/> when there is none.
    /// </summary>
    public static string RepoRoot { get; } = s_foundRoot ?? AppContext.BaseDirectory;

    /// <summary>
    /// The shared data folder: <c>$AOTFLASH_SHARED</c> when set and existing, otherwise
    /// <c>RepoRoot/../shared</c> when it exists, otherwise null.
    /// </summary>
    public static string? Shared { get; } = FindShared();

    /// <summary>The full path of <paramref name="relative"/> (e.g. "models/stories260K/tok512.bin") under shared/, or null when shared/ or the file is absent.</summary>
    public static string? SharedFile(string relative)
    {
        if (Shared is null) return null;
        string path = Path.GetFullPath(Path.Combine(Shared, relative));
        return File.Exists(path) ? path : null;
    }

    static string? FindRepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            string git = Path.Combine(dir.FullName, ".git");
            if (File.Exists(Path.Combine(dir.FullName, "AotFlash.sln")) || Directory.Exists(git) || File.Exists(git))
                return dir.FullName;
        }
        return null;
    }

    static string? FindShared()
    {
        string? env = Environment.GetEnvironmentVariable(SharedEnvironmentVariable);
        if (!string.IsNullOrEmpty(env) && Directory.Exists(env)) return Path.GetFullPath(env);
        if (s_foundRoot is null) return null;
        string? parent = Path.GetDirectoryName(Path.TrimEndingDirectorySeparator(s_foundRoot));
        if (parent is null) return null;
        string shared = Path.Combine(parent, "shared");
        return Directory.Exists(shared) ? shared : null;
    }
}
