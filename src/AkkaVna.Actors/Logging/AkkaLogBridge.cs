using Akka.Actor;
using Akka.Actor.Setup;
using Akka.Dispatch;
using Akka.Event;
using Microsoft.Extensions.Logging;

namespace AkkaVna.Actors.Logging;

/// <summary>The node's logger factory, handed to its actor system at creation (no static state: each node logs through its own).</summary>
public sealed class LoggingSetup(ILoggerFactory factory) : Setup
{
    public ILoggerFactory Factory { get; } = factory;
}

/// <summary>Akka's logger, writing to Microsoft.Extensions.Logging so the actor system logs like the rest of the node.</summary>
public sealed class AkkaLogBridge : ReceiveActor, IRequiresMessageQueue<ILoggerMessageQueueSemantics>
{
    public AkkaLogBridge()
    {
        // Akka creates loggers by type, without arguments: the factory comes with the actor system's setup.
        var setup = Context.System.Settings.Setup.Get<LoggingSetup>();
        var factory = setup.HasValue ? setup.Value.Factory : Microsoft.Extensions.Logging.Abstractions.NullLoggerFactory.Instance;
        var log = factory.CreateLogger("akka");
        Receive<InitializeLogger>(_ => Sender.Tell(new LoggerInitialized()));
        Receive<LogEvent>(e =>
        {
            var level = e.LogLevel() switch
            {
                Akka.Event.LogLevel.DebugLevel => Microsoft.Extensions.Logging.LogLevel.Debug,
                Akka.Event.LogLevel.InfoLevel => Microsoft.Extensions.Logging.LogLevel.Information,
                Akka.Event.LogLevel.WarningLevel => Microsoft.Extensions.Logging.LogLevel.Warning,
                _ => Microsoft.Extensions.Logging.LogLevel.Error,
            };
            if (!log.IsEnabled(level)) return;
            var cause = e is Error error ? error.Cause : null;
            log.Log(level, cause, "[{Source}] {Message}", e.LogSource, e.Message);
        });
    }
}
