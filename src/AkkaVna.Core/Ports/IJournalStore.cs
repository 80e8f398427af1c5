namespace AkkaVna.Core.Ports;

/// <summary>
/// Where the study actors' journal and snapshots live, as the host needs it: the persistence settings it hands to the
/// actor system (HOCON text for its journal, snapshot store and read journal plugins), whatever the store needs before
/// that, and the one question catching the index up asks of the journal. The events themselves are written and read by
/// the actors through the actor system's persistence, never through this port.
/// </summary>
public interface IJournalStore
{
    /// <summary>Where the journal is, for logs.</summary>
    string Description { get; }

    /// <summary>The actor system's persistence settings for this store (HOCON): journal, snapshot store and read journal.</summary>
    string PersistenceConfiguration { get; }

    /// <summary>The journal plugin's configuration path (where event adapters are bound).</summary>
    string JournalPluginId { get; }

    /// <summary>The read journal's plugin id (what a recovering actor and the event stream query).</summary>
    string ReadJournalPluginId { get; }

    /// <summary>Prepares the store before the actor system opens it (e.g. file settings).</summary>
    Task PrepareAsync(CancellationToken cancellationToken);

    /// <summary>The persistence ids with journal entries written at or after <paramref name="since"/> (in no particular order, each once).</summary>
    IAsyncEnumerable<string> PersistenceIdsWrittenSinceAsync(DateTimeOffset since, CancellationToken cancellationToken);

    /// <summary>Removes every event, tag and snapshot of <paramref name="persistenceId"/> (a destroyed study), durably.</summary>
    Task PurgeAsync(string persistenceId, CancellationToken cancellationToken);

    /// <summary>How many rows the journal holds for <paramref name="persistenceId"/> (events, tags and snapshots).</summary>
    Task<long> CountRowsAsync(string persistenceId, CancellationToken cancellationToken);
}
