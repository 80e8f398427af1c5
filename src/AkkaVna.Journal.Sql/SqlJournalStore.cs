using System.Data.Common;
using System.Runtime.CompilerServices;
using AkkaVna.Core.Ports;

namespace AkkaVna.Journal.Sql;

/// <summary>
/// The study journal through Akka.Persistence.Sql (linq2db): the journal, its tags, the snapshot store and the read
/// journal on one database, the plugin's default table mapping (<c>journal</c>, <c>tags</c>, <c>snapshot</c>), tables
/// created at first start. Each database (SQLite, PostgreSQL) says its provider, its connection and how to open it.
/// </summary>
public abstract class SqlJournalStore : IJournalStore
{
    public const string JournalPlugin = "akka.persistence.journal.sql";
    public const string ReadJournalPlugin = "akka.persistence.query.journal.sql";

    public abstract string Description { get; }

    public string JournalPluginId => JournalPlugin;

    public string ReadJournalPluginId => ReadJournalPlugin;

    /// <summary>linq2db's provider name (<c>SQLite.MS</c>, <c>PostgreSQL.15</c>).</summary>
    protected abstract string ProviderName { get; }

    /// <summary>The plugin's connection string.</summary>
    protected abstract string ConnectionString { get; }

    /// <summary>A new connection for the catch-up query.</summary>
    protected abstract DbConnection OpenConnection();

    /// <summary>Whether the plugin has created this table yet (a node that never wrote an event has none).</summary>
    protected abstract Task<bool> HasTableAsync(DbConnection connection, string table, CancellationToken cancellationToken);

    /// <summary>An open connection for writes (the purge), its commits durable.</summary>
    protected virtual async Task<DbConnection> OpenWritableAsync(CancellationToken cancellationToken)
    {
        var c = OpenConnection();
        await c.OpenAsync(cancellationToken).ConfigureAwait(false);
        return c;
    }

    public abstract Task PrepareAsync(CancellationToken cancellationToken);

    public string PersistenceConfiguration
    {
        get
        {
            string connection = Quote(ConnectionString);
            // The plugin's own defaults first (Akka.Persistence.Sql does not load them by itself); these settings win over them.
            return PluginDefaults.Value + "\n" + $$"""
                akka.persistence {
                  journal {
                    plugin = "{{JournalPlugin}}"
                    sql {
                      connection-string = {{connection}}
                      provider-name = "{{ProviderName}}"
                      auto-initialize = true
                    }
                  }
                  snapshot-store {
                    plugin = "akka.persistence.snapshot-store.sql"
                    sql {
                      connection-string = {{connection}}
                      provider-name = "{{ProviderName}}"
                      auto-initialize = true
                    }
                  }
                  query.journal.sql {
                    connection-string = {{connection}}
                    provider-name = "{{ProviderName}}"
                  }
                }
                """;
        }
    }

    /// <summary>The plugin's reference configuration, as it ships it (its HOCON resources).</summary>
    private static readonly Lazy<string> PluginDefaults = new(() =>
    {
        var assembly = typeof(Akka.Persistence.Sql.SqlPersistence).Assembly;
        return string.Join('\n', new[] { "Akka.Persistence.Sql.persistence.conf", "Akka.Persistence.Sql.snapshot.conf" }.Select(name =>
        {
            using var stream = assembly.GetManifestResourceStream(name) ?? throw new InvalidOperationException($"Akka.Persistence.Sql lacks its resource {name}");
            using var reader = new StreamReader(stream);
            return reader.ReadToEnd();
        }));
    });

    /// <summary>From the plugin's <c>journal</c> table (default table mapping: <c>created</c> holds UTC ticks and is indexed).</summary>
    public async IAsyncEnumerable<string> PersistenceIdsWrittenSinceAsync(DateTimeOffset since, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        await using var c = OpenConnection();
        await c.OpenAsync(cancellationToken).ConfigureAwait(false);
        if (!await HasTableAsync(c, "journal", cancellationToken).ConfigureAwait(false)) yield break;
        await using var cmd = c.CreateCommand();
        cmd.CommandText = "SELECT DISTINCT persistence_id FROM journal WHERE created >= @t";
        var p = cmd.CreateParameter();
        p.ParameterName = "@t";
        p.Value = since.UtcTicks;
        cmd.Parameters.Add(p);
        await using var r = await cmd.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        while (await r.ReadAsync(cancellationToken).ConfigureAwait(false)) yield return r.GetString(0);
    }

    /// <summary>
    /// Removes every row of one persistence id from the plugin's tables — its events, their tags and its snapshots — in
    /// one transaction. Akka.Persistence's own DeleteMessages keeps the highest event (to remember the sequence number);
    /// a destroyed study must leave nothing, and its actor starts again from nothing.
    /// </summary>
    public async Task PurgeAsync(string persistenceId, CancellationToken cancellationToken)
    {
        await using var c = await OpenWritableAsync(cancellationToken).ConfigureAwait(false);
        await using var tx = await c.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
        foreach (var table in new[] { "tags", "journal", "snapshot" })
        {
            if (!await HasTableAsync(c, table, cancellationToken).ConfigureAwait(false)) continue;
            await using var cmd = c.CreateCommand();
            cmd.Transaction = tx;
            cmd.CommandText = $"DELETE FROM {table} WHERE persistence_id = @p";
            var p = cmd.CreateParameter();
            p.ParameterName = "@p";
            p.Value = persistenceId;
            cmd.Parameters.Add(p);
            await cmd.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }
        await tx.CommitAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>How many rows of one persistence id the plugin's tables hold (events, tags, snapshots): 0 after a purge.</summary>
    public async Task<long> CountRowsAsync(string persistenceId, CancellationToken cancellationToken)
    {
        await using var c = OpenConnection();
        await c.OpenAsync(cancellationToken).ConfigureAwait(false);
        long rows = 0;
        foreach (var table in new[] { "tags", "journal", "snapshot" })
        {
            if (!await HasTableAsync(c, table, cancellationToken).ConfigureAwait(false)) continue;
            await using var cmd = c.CreateCommand();
            cmd.CommandText = $"SELECT count(*) FROM {table} WHERE persistence_id = @p";
            var p = cmd.CreateParameter();
            p.ParameterName = "@p";
            p.Value = persistenceId;
            cmd.Parameters.Add(p);
            rows += Convert.ToInt64(await cmd.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false), System.Globalization.CultureInfo.InvariantCulture);
        }
        return rows;
    }

    private static string Quote(string s) => "\"" + s.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal) + "\"";
}
