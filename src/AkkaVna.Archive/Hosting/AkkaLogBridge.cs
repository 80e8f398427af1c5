using Akka.Actor;
using Akka.Dispatch;
using Akka.Event;
using Microsoft.Extensions.Logging;

namespace AkkaVna.Archive.Hosting;

/// <summary>Akka's logger, writing to Microsoft.Extensions.Logging so the actor system logs like the rest of the node.</summary>
public sealed class AkkaLogBridge : ReceiveActor, IRequiresMessageQueue<ILoggerMessageQueueSemantics>
{
    /// <summary>Set by the node before its actor system starts (Akka creates loggers by type, without arguments).</summary>
    internal static ILoggerFactory? Factory { get; set; }

    public AkkaLogBridge()
    {
        var log = (Factory ?? Microsoft.Extensions.Logging.Abstractions.NullLoggerFactory.Instance).CreateLogger("akka");
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
