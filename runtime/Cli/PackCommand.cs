using AotFlash.Flash;

namespace AotFlash.Cli;

/// <summary><c>pack</c>: a copy of this executable with a model file appended, so one file ships.</summary>
public static class PackCommand
{
    internal static readonly Option[] Options =
    [
        new(["-o", "--output"], "FILE", "executable to write"),
        new(["--binary"], "FILE", "append to a copy of FILE instead of this executable (lib<name>.so built from the same spec)"),
        new(["--force"], null, "overwrite the output if it exists"),
    ];

    public static string Help(CliContext ctx) => CommandLine.HelpText(
        $"{ctx.ProgramName} pack MODEL.afm -o OUTPUT [--binary FILE] [--force]",
        "Writes OUTPUT: this executable (without any model it already carries) with MODEL.afm appended, 4 KiB aligned,\n" +
        "and a trailer; OUTPUT then runs without --model. The model file is checked against this binary's spec, and every\n" +
        "section against its checksum, first.",
        Options);

    public static int Execute(CliContext ctx, string[] args)
    {
        var a = new Arguments("pack", args, Options);
        if (a.Positional.Count != 1) throw new BadInputException("pack needs exactly one model file (see 'pack --help')");
        string model = a.Positional[0];
        string output = a.String("--output") ?? throw new BadInputException("pack needs -o OUTPUT");
        string exe = a.String("--binary") ?? ctx.ExecutablePath ?? throw new BadInputException("pack works only from the published executable");
        if (!File.Exists(exe)) throw new BadInputException($"{exe}: no such file");
        using (var file = ModelFile.Open(model))
        {
            file.CheckMatches(ctx.Model.Name, ctx.Model.SpecHash, ctx.Model.Shape);
            file.VerifyAll(); // a damaged file is refused here, not shipped
        }
        Payload.Pack(exe, model, output, a.Flag("--force"));
        ctx.Stderr.WriteLine($"pack: wrote {output} ({new FileInfo(output).Length} bytes)");
        return 0;
    }
}
