using AotFlash.Inference;
using AotFlash.Sampling;

namespace AotFlash.Cli;

/// <summary>Where a command writes and which binary it is, so commands also run inside tests.</summary>
public sealed class CliContext(ModelInfo model, Stream stdin, Stream stdout, TextWriter stderr, string? executablePath)
{
    public ModelInfo Model { get; } = model;
    /// <summary>What <c>run -f -</c> reads.</summary>
    public Stream Stdin { get; } = stdin;
    public Stream Stdout { get; } = stdout;
    public TextWriter Stderr { get; } = stderr;
    /// <summary>The running executable (which may carry the model as payload); null inside tests.</summary>
    public string? ExecutablePath { get; } = executablePath;
    public string ProgramName => ExecutablePath is null ? Model.Name : Path.GetFileName(ExecutablePath);
}

/// <summary>One command of the executable: its name, a one-line summary for --help, what runs it, its help and its options.</summary>
public sealed record Command(string Name, string Summary, Func<CliContext, string[], int> Run, Func<CliContext, string> Help, Option[] Options);

/// <summary>The executable's entry point: <c>run</c>, <c>convert</c>, <c>calibrate</c>, <c>pack</c>, <c>bench</c>, <c>perplexity</c>, <c>export</c>, <c>info</c>, <c>soak</c>, <c>serve</c>.</summary>
public static class CommandLine
{

    private static readonly Command[] Commands =
    [
        new("run", "generate text from a prompt", RunCommand.Execute, RunCommand.Help, RunCommand.Options),
        new("convert", "turn a llama2.c checkpoint or a Hugging Face folder into a model file", ConvertCommand.Execute, ConvertCommand.Help, ConvertCommand.Options),
        new("calibrate", "train the activation predictors flash mode needs (ReLU models)", CalibrateCommand.Execute, CalibrateCommand.Help, CalibrateCommand.Options),
        new("pack", "append a model file to a copy of this executable (one file ships)", PackCommand.Execute, PackCommand.Help, PackCommand.Options),
        new("bench", "measure naive vs flash (vs dense) side by side, with an I/O probe", BenchCommand.Execute, BenchCommand.Help, BenchCommand.Options),
        new("perplexity", "score a text teacher-forced per mode: perplexity, KL and top-1 agreement against a base", PerplexityCommand.Execute, PerplexityCommand.Help, PerplexityCommand.Options),
        new("export", "write the model file as a GGUF file for llama.cpp (llama models, same weights)", ExportCommand.Execute, ExportCommand.Help, ExportCommand.Options),
        new("info", "show the compiled-in spec, the weight layout and the model file", InfoCommand.Execute, InfoCommand.Help, InfoCommand.Options),
        new("soak", "generate session after session for a long time, sampling memory (leaks, peak)", SoakCommand.Execute, SoakCommand.Help, SoakCommand.Options),
        // The HTTP server is compiled only into executables built for it (publish.sh --server), which pass it to Main.
        new("serve", "answer OpenAI's completions and chat API over HTTP (executables built with publish.sh --server)",
            (ctx, _) => throw new BadInputException($"{ctx.ProgramName} was built without the HTTP server: build it with " +
                                                    $"'./publish.sh SPEC --server'"),
            ctx => $"usage: {ctx.ProgramName} serve ...\n\n{ctx.ProgramName} was built without the HTTP server; './publish.sh SPEC --server' builds\n" +
                   "an executable with it.\n",
            []),
    ];

    /// <summary>Process entry: exit code 0 ok, 1 runtime failure, 2 bad input or usage. <paramref name="builtIn"/>: commands
    /// compiled into this executable that replace the runtime's of the same name (serve).</summary>
    public static int Main(string[] args, IReadOnlyList<ModelInfo> models, IReadOnlyList<Command>? builtIn = null)
    {
        var stderr = Console.Error;
        if (models.Count != 1)
        {
            stderr.WriteLine($"error: this executable was built with {models.Count} model specs; publish exactly one");
            return 1;
        }
        using var stdin = Console.OpenStandardInput();
        using var stdout = Console.OpenStandardOutput();
        return Run(new CliContext(models[0], stdin, stdout, stderr, Environment.ProcessPath), args, builtIn);
    }

    public static int Run(CliContext ctx, string[] args, IReadOnlyList<Command>? builtIn = null)
    {
        var commands = Commands.Select(c => builtIn?.FirstOrDefault(b => b.Name == c.Name) ?? c).ToArray();
        try
        {
            if (args.Length == 0)
                throw new BadInputException($"no command given (commands: {string.Join(", ", commands.Select(c => c.Name))}; see --help)");
            if (args[0] is "-h" or "--help" or "help")
            {
                Write(ctx, Usage(ctx, commands));
                return 0;
            }
            if (args[0] is "--version" or "version")
            {
                Write(ctx, $"{ctx.Model.Name} (AotFlash {ProductVersion.Text}, spec {ctx.Model.SpecHash})\n");
                return 0;
            }
            var command = commands.FirstOrDefault(c => c.Name == args[0])
                ?? throw new BadInputException($"unknown command '{args[0]}' (commands: {string.Join(", ", commands.Select(c => c.Name))}; see --help)");
            string[] rest = args[1..];
            if (Arguments.AsksForHelp(rest, command.Options))
            {
                Write(ctx, command.Help(ctx));
                return 0;
            }
            return command.Run(ctx, rest);
        }
        catch (BadInputException e)
        {
            return Fail(ctx, e.Message, 2);
        }
        catch (InvalidSamplerOptionException e)
        {
            return Fail(ctx, e.Message, 2);
        }
        catch (Exception e)
        {
            return Fail(ctx, e.Message, 1);
        }
    }

    private static int Fail(CliContext ctx, string message, int code)
    {
        ctx.Stderr.WriteLine("error: " + message.ReplaceLineEndings(" "));
        ctx.Stderr.Flush();
        return code;
    }

    /// <summary>Closes the one JSON object a command prints and ends the line.</summary>
    internal static void EndJson(CliContext ctx, System.Text.Json.Utf8JsonWriter w)
    {
        w.WriteEndObject();
        w.Flush();
        ctx.Stdout.Write("\n"u8);
        ctx.Stdout.Flush();
    }

    internal static void Write(CliContext ctx, string text)
    {
        ctx.Stdout.Write(System.Text.Encoding.UTF8.GetBytes(text));
        ctx.Stdout.Flush();
    }

    private static string Usage(CliContext ctx, Command[] commands)
    {
        var s = ctx.Model.Shape;
        var lines = new List<string>
        {
            $"{ctx.ProgramName}: {ctx.Model.Name} ({ctx.Model.FamilyName}, dim {s.Dim}, {s.Layers} layers, vocab {s.Vocab}, context {s.Context}) — AotFlash {ProductVersion.Text}",
            "",
            $"usage: {ctx.ProgramName} <command> [options]",
            "",
            "commands:",
        };
        lines.AddRange(commands.Select(c => $"  {c.Name,-10} {c.Summary}"));
        lines.Add("");
        lines.Add($"'{ctx.ProgramName} <command> --help' shows a command's options. Exit codes: 0 ok, 1 runtime failure, 2 bad input.");
        return string.Join("\n", lines) + "\n";
    }

    /// <summary>A command's help text: usage line, description, then its options.</summary>
    internal static string HelpText(string usage, string description, IEnumerable<Option> options)
    {
        var lines = new List<string> { "usage: " + usage, "", description, "", "options:" };
        foreach (var o in options)
        {
            string names = string.Join(", ", o.Names) + (o.ValueName is null ? "" : " " + o.ValueName);
            lines.Add($"  {names,-26} {o.Help}");
        }
        return string.Join("\n", lines) + "\n";
    }
}
