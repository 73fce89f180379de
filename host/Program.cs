// The executable of one model: the generator has compiled exactly one spec into ModelCatalog.
return AotFlash.Cli.CommandLine.Main(args, AotFlash.Models.ModelCatalog.All);
