using AkkaVna.Core;
using Akka.Actor;
using Akka.Cluster.Sharding;
using Akka.Event;
using Akka.Persistence.Journal;
using AkkaVna.Core.Ports;
using AkkaVna.Core.Studies;

namespace AkkaVna.Actors.Studies;

/// <summary>The one message extractor: a study's entity id is its Study Instance UID, hashed onto a fixed number of shards.</summary>
public sealed class StudyMessageExtractor(int maxShards) : HashCodeMessageExtractor(maxShards)
{
    public override string? EntityId(object message) => message switch
    {
        IWithStudyInstanceUid m => m.StudyInstanceUid,
        _ => null,
    };

    // Shard assignment must not change between processes or .NET versions.
    public override string ShardId(string entityId, object? messageHint = null) =>
        (StableHash.Fnv1a(entityId) % (uint)MaxNumberOfShards).ToString(System.Globalization.CultureInfo.InvariantCulture);
}

/// <summary>Tags every study event "study", so later features (compression, lifecycle) read them as one ordered stream.</summary>
public sealed class StudyEventTagger : IWriteEventAdapter
{
    public const string Tag = "study";

    /// <summary>The HOCON that binds this tagger to the study events in the journal plugin at <paramref name="journalPluginId"/>.</summary>
    public static string Binding(string journalPluginId) => $$"""
        {{journalPluginId}} {
          event-adapters { study-tagger = "AkkaVna.Actors.Studies.StudyEventTagger, AkkaVna.Actors" }
          event-adapter-bindings { "AkkaVna.Core.Studies.IStudyEvent, AkkaVna.Core" = study-tagger }
        }
        """;

    public string Manifest(object evt) => string.Empty;

    public object ToJournal(object evt) => evt is IStudyEvent ? new Tagged(evt, [Tag]) : evt;
}

/// <summary>
/// The durable half of a study's timers: a cluster singleton that asks the index every few seconds which studies are due
/// (their quiet period over: <see cref="StabilityWatch"/>; their compression pass due: <see cref="CompressionWatch"/>)
/// and wakes their actors (wherever sharding put them — after a restart or a rebalance too). The actor decides and
/// persists; a study asked recently is not asked again until <c>askAgainAfter</c>.
/// </summary>
public sealed class DueWatch : ReceiveActor, IWithTimers
{
    private sealed class Tick { public static readonly Tick Instance = new(); }
    private sealed record Due(IReadOnlyList<string> Studies);

    private readonly Dictionary<string, DateTimeOffset> _asked = new(StringComparer.Ordinal);
    private readonly ILoggingAdapter _log = Context.GetLogger();

    public ITimerScheduler Timers { get; set; } = null!;

    public DueWatch(string what, Func<DateTimeOffset, CancellationToken, Task<IReadOnlyList<string>>> due, Func<string, object> wake, IActorRef studies,
        TimeSpan pollInterval, TimeSpan askAgainAfter, TimeProvider time)
    {
        bool polling = false;
        Receive<Tick>(_ =>
        {
            if (polling) return;
            polling = true;
            due(time.GetUtcNow(), CancellationToken.None).PipeTo(Self, success: list => new Due(list), failure: e => new Status.Failure(e));
        });
        Receive<Due>(list =>
        {
            polling = false;
            var now = time.GetUtcNow();
            foreach (var uid in list.Studies)
            {
                if (_asked.TryGetValue(uid, out var at) && now - at < askAgainAfter) continue;
                _asked[uid] = now;
                studies.Tell(wake(uid));
            }
            if (_asked.Count > 10_000)
                foreach (var old in _asked.Where(kv => now - kv.Value >= askAgainAfter).Select(kv => kv.Key).ToList()) _asked.Remove(old);
        });
        Receive<Status.Failure>(f =>
        {
            polling = false;
            _log.Warning("{0} watch: the index query failed: {1}", what, f.Cause.Message);
        });
        Timers.StartPeriodicTimer(Tick.Instance, Tick.Instance, pollInterval);
    }
}

/// <summary>Wakes open studies whose quiet period is over (the actor persists <see cref="StudyStabilized"/> exactly once).</summary>
public static class StabilityWatch
{
    public static Props Props(IArchiveIndex index, IActorRef studies, TimeSpan pollInterval, TimeProvider time) =>
        Akka.Actor.Props.Create(() => new DueWatch("stability", (now, ct) => index.DueForStabilityAsync(now, 512, ct), uid => new CheckStability(uid), studies,
            pollInterval, TimeSpan.FromSeconds(30), time));
}

/// <summary>Wakes studies whose lifecycle is due (a move, a destruction, a hold to look at again, a destruction to finish after a crash).</summary>
public static class LifecycleWatch
{
    public static Props Props(IArchiveIndex index, IActorRef studies, TimeSpan pollInterval, TimeProvider time) =>
        Akka.Actor.Props.Create(() => new DueWatch("lifecycle", (now, ct) => index.Lifecycle.DueForLifecycleAsync(now, 256, ct), uid => new CheckLifecycle(uid), studies,
            // Each look rewrites the study's due time, so a study is due again only when it truly is (an approval, a
            // release): asked again after two polls, not half a minute (a child busy with it ignores the extra ask).
            pollInterval, TimeSpan.FromTicks(Math.Max(2 * pollInterval.Ticks, TimeSpan.FromSeconds(1).Ticks)), time));
}

/// <summary>Wakes stable studies whose compression pass is due and unfinished (after a restart, the pass resumes where it stopped).</summary>
public static class CompressionWatch
{
    public static Props Props(IArchiveIndex index, IActorRef studies, TimeSpan pollInterval, TimeProvider time) =>
        Akka.Actor.Props.Create(() => new DueWatch("compression", (now, ct) => index.DueForCompressionAsync(now, 256, ct), uid => new CheckCompression(uid), studies,
            // Asked again every minute while due: the wake goes through the region, so a study compressing for longer than the
            // idle passivation is not stopped mid-pass (a wake while a pass runs only makes it look once more at the end).
            pollInterval, TimeSpan.FromMinutes(1), time));
}
