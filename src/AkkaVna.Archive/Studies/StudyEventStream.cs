using Akka.Actor;
using Akka.Persistence.Query;
using Akka.Persistence.Sql.Query;
using Akka.Streams.Dsl;

namespace AkkaVna.Archive.Studies;

/// <summary>
/// The study events of the whole archive as one stream, in journal order, from any offset: what the compression and
/// lifecycle features subscribe to. The actor system must carry <see cref="Hosting.ArchiveNode.PersistenceConfig"/>.
/// </summary>
public static class StudyEventStream
{
    private static SqlReadJournal Journal(ActorSystem system) =>
        PersistenceQuery.Get(system).ReadJournalFor<SqlReadJournal>(SqlReadJournal.Identifier);

    /// <summary>Every study event from <paramref name="offset"/> on, then new ones as they are written (it never completes).</summary>
    public static Source<EventEnvelope, Akka.NotUsed> Live(ActorSystem system, Offset offset) => Journal(system).EventsByTag(StudyEventTagger.Tag, offset);

    /// <summary>The study events written so far, from <paramref name="offset"/> on (it completes).</summary>
    public static Source<EventEnvelope, Akka.NotUsed> Current(ActorSystem system, Offset offset) => Journal(system).CurrentEventsByTag(StudyEventTagger.Tag, offset);
}
