using System.Runtime.CompilerServices;
using AkkaVna.Core.Ports;
using Microsoft.Data.Sqlite;

namespace AkkaVna.Journal.Sqlite;

/// <summary>
/// The embedded journal: Akka.Persistence.Sql (linq2db provider <c>SQLite.MS</c>) on one SQLite file in WAL mode — the
/// journal, the snapshot store and the read journal. Not for several processes at once: a cluster of nodes needs a
/// shared server database.
/// </summary>
public sealed class SqliteJournalStore(string path) : IJournalStore
{
    public const string JournalPlugin = "akka.persistence.journal.sql";
    public const string ReadJournalPlugin = "akka.persistence.query.journal.sql";

    public string Path { get; } = path;

    public string Description => Path;

    public string JournalPluginId => JournalPlugin;

    public string ReadJournalPluginId => ReadJournalPlugin;

    public string PersistenceConfiguration
    {
        get
        {
            string connection = Quote(new SqliteConnectionStringBuilder { DataSource = Path, DefaultTimeout = 30 }.ToString());
            // The plugin's own defaults first (Akka.Persistence.Sql does not load them by itself); these settings win over them.
            return PluginDefaults.Value + "\n" + $$"""
                akka.persistence {
                  journal {
                    plugin = "{{JournalPlugin}}"
                    sql {
                      connection-string = {{connection}}
                      provider-name = "SQLite.MS"
                      auto-initialize = true
                    }
                  }
                  snapshot-store {
                    plugin = "akka.persistence.snapshot-store.sql"
                    sql {
                      connection-string = {{connection}}
                      provider-name = "SQLite.MS"
                      auto-initialize = true
                    }
                  }
                  query.journal.sql {
                    connection-string = {{connection}}
                    provider-name = "SQLite.MS"
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

    /// <summary>WAL mode, set once per file (Akka.Persistence.Sql then opens it as it likes).</summary>
    public async Task PrepareAsync(CancellationToken cancellationToken)
    {
        Directory.CreateDirectory(System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(Path))!);
        await using var c = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = Path, Pooling = false }.ToString());
        await c.OpenAsync(cancellationToken).ConfigureAwait(false);
        await using var cmd = c.CreateCommand();
        cmd.CommandText = "PRAGMA journal_mode=WAL;";
        await cmd.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>From Akka.Persistence.Sql's <c>journal</c> table (default table mapping: <c>created</c> holds UTC ticks and is indexed).</summary>
    public async IAsyncEnumerable<string> PersistenceIdsWrittenSinceAsync(DateTimeOffset since, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        if (!File.Exists(Path)) yield break;
        await using var c = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = Path, Mode = SqliteOpenMode.ReadOnly, DefaultTimeout = 30 }.ToString());
        await c.OpenAsync(cancellationToken).ConfigureAwait(false);
        await using (var exists = c.CreateCommand())
        {
            exists.CommandText = "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'journal'";
            if ((long)(await exists.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false))! == 0) yield break; // the plugin has not created its tables yet
        }
        await using var cmd = c.CreateCommand();
        cmd.CommandText = "SELECT DISTINCT persistence_id FROM journal INDEXED BY journal_created_idx WHERE created >= $t";
        cmd.Parameters.AddWithValue("$t", since.UtcTicks);
        await using var r = await cmd.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        while (await r.ReadAsync(cancellationToken).ConfigureAwait(false)) yield return r.GetString(0);
    }

    private static string Quote(string s) => "\"" + s.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal) + "\"";
}
