using Akka.Actor;
using Akka.Persistence.Query;
using Akka.Streams.Dsl;
using AkkaVna.Core.Studies;

namespace AkkaVna.Actors.Studies;

/// <summary>
/// The study events of the whole archive as one stream, in journal order, from any offset: what the compression and
/// lifecycle features subscribe to. The actor system must carry the journal's persistence settings with
/// <see cref="StudyEventTagger.Binding"/>; <paramref name="readJournalPluginId"/> names its read journal.
/// </summary>
public static class StudyEventStream
{
    /// <summary>Every study event from <paramref name="offset"/> on, then new ones as they are written (it never completes).</summary>
    public static Source<EventEnvelope, Akka.NotUsed> Live(ActorSystem system, string readJournalPluginId, Offset offset) =>
        PersistenceQuery.Get(system).ReadJournalFor<IEventsByTagQuery>(readJournalPluginId).EventsByTag(StudyEventTagger.Tag, offset);

    /// <summary>The study events written so far, from <paramref name="offset"/> on (it completes).</summary>
    public static Source<EventEnvelope, Akka.NotUsed> Current(ActorSystem system, string readJournalPluginId, Offset offset) =>
        PersistenceQuery.Get(system).ReadJournalFor<ICurrentEventsByTagQuery>(readJournalPluginId).CurrentEventsByTag(StudyEventTagger.Tag, offset);
}
