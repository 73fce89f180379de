using System.Globalization;
using AotFlash.Inference;

namespace AotFlash.Cli;

/// <summary>One option of a command: its names (e.g. "-n", "--n-predict"), whether it takes a value, and its help.</summary>
public sealed record Option(string[] Names, string? ValueName, string Help)
{
    public string Key => Names[^1];
}

/// <summary>Parsed command-line options; every problem is a <see cref="BadInputException"/> naming the option.</summary>
public sealed class Arguments
{
    private readonly Dictionary<string, string> _values = [];
    private readonly HashSet<string> _flags = [];
    private readonly string _command;

    public List<string> Positional { get; } = [];

    public Arguments(string command, IReadOnlyList<string> args, IReadOnlyList<Option> options)
    {
        _command = command;
        for (int i = 0; i < args.Count; i++)
        {
            var (name, inline) = Split(args[i]);
            if (name is null)
            {
                Positional.Add(args[i]);
                continue;
            }
            var option = options.FirstOrDefault(o => o.Names.Contains(name))
                ?? throw new BadInputException($"unknown option '{name}' for '{command}' (see '{command} --help')");
            if (option.ValueName is null)
            {
                if (inline is not null) throw new BadInputException($"option '{name}' takes no value");
                _flags.Add(option.Key);
            }
            else
            {
                string? value = inline ?? (i + 1 < args.Count ? args[++i] : null);
                _values[option.Key] = value ?? throw new BadInputException($"option '{name}' needs a value ({option.ValueName})");
                if (value.Length == 0 && option.ValueName is "FILE" or "DIR")
                    throw new BadInputException($"option '{name}' needs a {option.ValueName}, not an empty string");
            }
        }
    }

    /// <summary>Whether <c>-h</c> or <c>--help</c> stands where an option name is expected, read as the constructor reads
    /// <paramref name="args"/>: the value of an option that takes one (<c>-p --help</c>) is not a request for help.</summary>
    public static bool AsksForHelp(IReadOnlyList<string> args, IReadOnlyList<Option> options)
    {
        for (int i = 0; i < args.Count; i++)
        {
            var (name, inline) = Split(args[i]);
            if (name is null || inline is not null) continue;
            if (name is "-h" or "--help") return true;
            if (options.FirstOrDefault(o => o.Names.Contains(name))?.ValueName is not null) i++;
        }
        return false;
    }

    /// <summary>An option's name and its inline value (<c>--name=value</c>); a null name for a positional argument.</summary>
    private static (string? Name, string? Inline) Split(string a)
    {
        if (a.Length < 2 || a[0] != '-' || a == "--" || IsNumber(a)) return (null, null);
        int eq = a.IndexOf('=');
        return a.StartsWith("--", StringComparison.Ordinal) && eq > 0 ? (a[..eq], a[(eq + 1)..]) : (a, null);
    }

    private static bool IsNumber(string s) => double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out _);

    public bool Flag(string key) => _flags.Contains(key);

    public string? String(string key) => _values.GetValueOrDefault(key);

    public int Int(string key, int fallback, int min = int.MinValue, int max = int.MaxValue)
    {
        if (!_values.TryGetValue(key, out var text)) return fallback;
        if (!int.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out int v) || v < min || v > max)
            throw new BadInputException($"option '{key}' must be an integer{Range(min, max)}, got '{text}'");
        return v;
    }

    public ulong ULong(string key, ulong fallback)
    {
        if (!_values.TryGetValue(key, out var text)) return fallback;
        if (!ulong.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out ulong v))
            throw new BadInputException($"option '{key}' must be a non-negative integer, got '{text}'");
        return v;
    }

    public float Float(string key, float fallback)
    {
        if (!_values.TryGetValue(key, out var text)) return fallback;
        if (!float.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out float v) || !float.IsFinite(v))
            throw new BadInputException($"option '{key}' must be a number, got '{text}'");
        return v;
    }

    /// <summary>An engine mode as the command line names it (dense, naive, flash); null for any other word.</summary>
    public static EngineMode? ModeNamed(string word) => word switch
    {
        "dense" => EngineMode.Dense,
        "naive" => EngineMode.Naive,
        "flash" => EngineMode.Flash,
        _ => null,
    };

    /// <summary>The mode option <paramref name="key"/>; null when it is not given.</summary>
    public EngineMode? Mode(string key) => String(key) is not { } word ? null
        : ModeNamed(word) ?? throw new BadInputException($"unknown {key} '{word}' (dense, naive, flash)");

    /// <summary>The comma-separated mode list <paramref name="key"/> (bench's and perplexity's --modes), in order;
    /// <paramref name="fallback"/> when it is not given.</summary>
    public EngineMode[] Modes(string key, string fallback)
    {
        var modes = (String(key) ?? fallback).Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(m => ModeNamed(m) ?? throw new BadInputException($"unknown mode '{m}' in {key} (dense, naive, flash)"))
            .ToArray();
        return modes.Length > 0 ? modes : throw new BadInputException($"{key} names no mode (dense, naive, flash)");
    }

    public void NoPositional()
    {
        if (Positional.Count > 0) throw new BadInputException($"unexpected argument '{Positional[0]}' for '{_command}' (see '{_command} --help')");
    }

    private static string Range(int min, int max) =>
        min == int.MinValue && max == int.MaxValue ? "" : max == int.MaxValue ? $" >= {min}" : $" in [{min}, {max}]";
}
