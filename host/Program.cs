// The executable of one model: the generator has compiled exactly one spec into ModelCatalog.
#if AOTFLASH_SERVER
return AotFlash.Cli.CommandLine.Main(args, AotFlash.Models.ModelCatalog.All, [AotFlash.Server.ServeCommand.Command]);
#else
return AotFlash.Cli.CommandLine.Main(args, AotFlash.Models.ModelCatalog.All);
#endif
