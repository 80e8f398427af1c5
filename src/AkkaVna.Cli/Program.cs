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
root.Subcommands.Add(ClusterCommands.Create());
root.Subcommands.Add(LifecycleCommands.Hold());
root.Subcommands.Add(LifecycleCommands.Lifecycle());
// System.CommandLine's own SIGINT/SIGTERM handling would end the process 2 s after the signal (exit code 130/143): the
// long-running commands (serve, receive) handle the signals themselves and drain within their configured bound.
return root.Parse(args).Invoke(new InvocationConfiguration { ProcessTerminationTimeout = null });
