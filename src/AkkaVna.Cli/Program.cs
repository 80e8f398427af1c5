using System.CommandLine;
using AkkaVna.Cli.Commands;

var root = new RootCommand("AkkaVna: a vendor-neutral archive for DICOM images (an Akka.NET cluster of study actors).");
root.Subcommands.Add(DumpCommand.Create());
root.Subcommands.Add(NetworkCommands.Echo());
root.Subcommands.Add(NetworkCommands.Store());
root.Subcommands.Add(NetworkCommands.Receive());
root.Subcommands.Add(ArchiveCommands.Serve());
root.Subcommands.Add(ArchiveCommands.Verify());
root.Subcommands.Add(ReplayCommand.Create());
return root.Parse(args).Invoke();
