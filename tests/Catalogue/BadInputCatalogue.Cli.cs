using AotFlash.Cli;
using AotFlash.Tests.Support;

namespace AotFlash.Tests.Catalogue;

// Group 1: the command line, generated from each command's option table (a value missing, a flag given one, an
// unknown option, a stray argument), then every numeric or enumerated option of run, calibrate, bench and info with
// values out of range or malformed.
public sealed partial class BadInputCatalogue
{
    private static (string Name, Option[] Options, bool TakesPositional)[] Commands =>
    [
        ("run", RunCommand.Options, false),
        ("convert", ConvertCommand.Options, false),
        ("calibrate", CalibrateCommand.Options, false),
        ("pack", PackCommand.Options, true),
        ("bench", BenchCommand.Options, false),
        ("info", InfoCommand.Options, false),
    ];

    private static IEnumerable<(string, Case)> CliCases()
    {
        yield return C("cli: no command", "no command given (commands: run, convert", _ => []);
        yield return C("cli: unknown command", "unknown command 'frobnicate'", _ => ["frobnicate"]);
        foreach (var (command, options, takesPositional) in Commands)
        {
            foreach (var o in options.Where(o => o.ValueName is not null))
                yield return C($"cli: {command} {o.Names[0]} without its value", $"option '{o.Names[0]}' needs a value ({o.ValueName})",
                    _ => [command, o.Names[0]]);
            foreach (var o in options.Where(o => o.ValueName is null))
                yield return C($"cli: {command} {o.Key}=yes", $"option '{o.Key}' takes no value", _ => [command, o.Key + "=yes"]);
            yield return C($"cli: {command} --bogus", $"unknown option '--bogus' for '{command}'", _ => [command, "--bogus"]);
            if (!takesPositional)
                yield return C($"cli: {command} with a stray argument", $"unexpected argument 'stray' for '{command}'", _ => [command, "stray"]);
        }

        // run: every numeric and enumerated option (all refused before the model is loaded, except the budget's size).
        string[] Run(params string[] extra) => ["run", "--model", AfmPath(), "-p", "x", "-n", "1", .. extra];
        (string, Case) R(string args, string fragment) => C($"cli: run {args}", fragment, _ => Run(args.Split(' ')));
        yield return R("-n abc", "option '--n-predict' must be an integer >= -1, got 'abc'");
        yield return R("-n -2", "option '--n-predict' must be an integer >= -1, got '-2'");
        yield return R("-n 1.5", "option '--n-predict' must be an integer >= -1, got '1.5'");
        yield return R("-n 99999999999", "option '--n-predict' must be an integer >= -1, got '99999999999'");
        yield return R("-t 0", "option '--threads' must be an integer in [1, 1024], got '0'");
        yield return R("-t 1025", "option '--threads' must be an integer in [1, 1024], got '1025'");
        yield return R("-t two", "option '--threads' must be an integer in [1, 1024], got 'two'");
        yield return R("-s -1", "option '--seed' must be a non-negative integer, got '-1'");
        yield return R("-s 1e3", "option '--seed' must be a non-negative integer, got '1e3'");
        yield return R("-s 18446744073709551616", "option '--seed' must be a non-negative integer, got '18446744073709551616'");
        yield return R("--temp -1", "temperature must be a finite number >= 0");
        yield return R("--temp nan", "option '--temp' must be a number, got 'nan'");
        yield return R("--temp Infinity", "option '--temp' must be a number, got 'Infinity'");
        yield return R("--temp 1e39", "option '--temp' must be a number, got '1e39'");
        yield return R("--temp hot", "option '--temp' must be a number, got 'hot'");
        yield return R("--top-k -1", "top-k must be >= 0");
        yield return R("--top-k 2.5", "option '--top-k' must be an integer, got '2.5'");
        yield return R("--top-p 0", "top-p must be in (0, 1]");
        yield return R("--top-p 1.5", "top-p must be in (0, 1]");
        yield return R("--top-p -0.1", "top-p must be in (0, 1]");
        yield return R("--top-p NaN", "option '--top-p' must be a number, got 'NaN'");
        yield return R("--min-p 1", "min-p must be in [0, 1)");
        yield return R("--min-p -0.5", "min-p must be in [0, 1)");
        yield return R("--min-p half", "option '--min-p' must be a number, got 'half'");
        yield return R("--mode warp", "unknown --mode 'warp' (dense, naive, flash)");
        yield return R("--mode Dense", "unknown --mode 'Dense' (dense, naive, flash)");
        yield return C("cli: run --mode (empty)", "unknown --mode '' (dense, naive, flash)", _ => Run("--mode", ""));
        yield return R("--dram-budget lots", "bad DRAM budget 'lots': use a percentage of the model file (50%) or a size");
        yield return R("--dram-budget 0%", "bad DRAM budget '0%'");
        yield return R("--dram-budget 1001%", "bad DRAM budget '1001%'");
        yield return R("--dram-budget -5MiB", "bad DRAM budget '-5MiB'");
        yield return R("--dram-budget 0", "bad DRAM budget '0'");
        yield return R("--dram-budget 5TiB", "bad DRAM budget '5TiB'");
        yield return R("--dram-budget 1KiB", "the DRAM budget of 1.0 KiB is too small");
        yield return R("--window 0", "option '--window' must be an integer >= 1, got '0'");
        yield return R("--window -3", "option '--window' must be an integer >= 1, got '-3'");
        yield return R("--io-threads 0", "option '--io-threads' must be an integer in [1, 256], got '0'");
        yield return R("--io-threads 257", "option '--io-threads' must be an integer in [1, 256], got '257'");
        yield return R("--dump-logits 1", "--dump-logits needs --json");
        yield return R("--json --dump-logits -1", "option '--dump-logits' must be an integer in [0, 512], got '-1'");
        yield return R("--json --dump-logits 513", "option '--dump-logits' must be an integer in [0, 512], got '513'");
        yield return R("--mode flash", "has no activation predictors, which flash mode needs");

        // calibrate
        string[] Calibrate(string dir, params string[] extra) => ["calibrate", "--model", AfmPath(), "-o", Path.Combine(dir, "out.afm"), .. extra];
        (string, Case) K(string args, string fragment) => C($"cli: calibrate {args}", fragment, dir => Calibrate(dir, args.Split(' ')));
        yield return K("--tokens 1", "option '--tokens' must be an integer in [16, 1048576], got '1'");
        yield return K("--tokens 15", "option '--tokens' must be an integer in [16, 1048576], got '15'");
        yield return K("--tokens 1048577", "option '--tokens' must be an integer in [16, 1048576], got '1048577'");
        yield return K("--tokens many", "option '--tokens' must be an integer in [16, 1048576], got 'many'");
        yield return K("--recall 0", "--recall must be in (0, 1]");
        yield return K("--recall 1.01", "--recall must be in (0, 1]");
        yield return K("--recall -0.5", "--recall must be in (0, 1]");
        yield return K("--recall nan", "option '--recall' must be a number, got 'nan'");
        yield return K("-s -1", "option '--seed' must be a non-negative integer, got '-1'");
        yield return K("-s seed", "option '--seed' must be a non-negative integer, got 'seed'");
        yield return K("-t 0", "option '--threads' must be an integer in [1, 1024], got '0'");
        yield return K("-t x", "option '--threads' must be an integer in [1, 1024], got 'x'");

        // bench (refused before the I/O probe and before any mode runs)
        (string, Case) B(string args, string fragment) => C($"cli: bench {args}", fragment, _ => ["bench", "--model", AfmPath(), .. args.Split(' ')]);
        yield return B("-n 0", "option '--n-predict' must be an integer >= 1, got '0'");
        yield return B("-n x", "option '--n-predict' must be an integer >= 1, got 'x'");
        yield return B("-t 0", "option '--threads' must be an integer in [1, 1024], got '0'");
        yield return B("--io-threads 0", "option '--io-threads' must be an integer in [1, 256], got '0'");
        yield return B("--io-threads 300", "option '--io-threads' must be an integer in [1, 256], got '300'");
        yield return B("--window 0", "option '--window' must be an integer >= 1, got '0'");
        yield return B("--modes warp", "unknown mode 'warp' in --modes (dense, naive, flash)");
        yield return B("--modes dense,warp", "unknown mode 'warp' in --modes (dense, naive, flash)");
        yield return B("--modes ,", "--modes names no mode (dense, naive, flash)");
        yield return B("--modes dense --dram-budget lots", "bad DRAM budget 'lots'");
        yield return B("--prompt-tokens 0", "option '--prompt-tokens' must be an integer in [1, 512], got '0'");
        yield return B("--prompt-tokens 513", "option '--prompt-tokens' must be an integer in [1, 512], got '513'");
        yield return B("--prompt-tokens ten", "option '--prompt-tokens' must be an integer in [1, 512], got 'ten'");
        yield return B("--modes naive,flash", "has no activation predictors, which flash mode needs: run 'calibrate --model FILE' first (or leave flash out of --modes)");

        // DRAM budgets a calibrated file does not fit in flash mode (bench loads flash mode before its probe).
        yield return C("cli: run --mode flash --dram-budget 1KiB", "the DRAM budget of 1.0 KiB is too small",
            _ => ["run", "--model", CalibratedPath(), "--mode", "flash", "--dram-budget", "1KiB", "-n", "1"]);
        yield return C("cli: info --dram-budget 64KiB (flash)", "the DRAM budget of 64.0 KiB is too small",
            _ => ["info", "--model", CalibratedPath(), "--dram-budget", "64KiB"]);
        yield return C("cli: bench --modes flash --dram-budget 1KiB", "the DRAM budget of 1.0 KiB is too small",
            _ => ["bench", "--model", CalibratedPath(), "--modes", "naive,flash", "--dram-budget", "1KiB"]);

        // info
        (string, Case) I(string args, string fragment) => C($"cli: info {args}", fragment, _ => ["info", "--model", AfmPath(), .. args.Split(' ')]);
        yield return I("--dram-budget 50% --io-threads 0", "option '--io-threads' must be an integer in [1, 256], got '0'");
        yield return I("--io-threads 257", "option '--io-threads' must be an integer in [1, 256], got '257'");
        yield return I("--dram-budget lots", "bad DRAM budget 'lots'");
        yield return I("--dram-budget 0%", "bad DRAM budget '0%'");
        yield return I("--dram-budget 1KiB", "the DRAM budget of 1.0 KiB is too small");
        yield return C("cli: info --dram-budget without --model", "--dram-budget plans a model file: pass --model FILE",
            _ => ["info", "--dram-budget", "50%"]);
    }
}
