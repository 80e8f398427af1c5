using System.Data.Common;
using Microsoft.Data.Sqlite;

namespace AkkaVna.Journal.Sql;

/// <summary>
/// The embedded journal: one SQLite file in WAL mode. Not for several processes at once: a cluster of nodes needs the
/// shared PostgreSQL journal.
/// </summary>
public sealed class SqliteJournalStore(string path) : SqlJournalStore
{
    public string Path { get; } = path;

    public override string Description => Path;

    protected override string ProviderName => "SQLite.MS";

    protected override string ConnectionString => new SqliteConnectionStringBuilder { DataSource = Path, DefaultTimeout = 30 }.ToString();

    protected override DbConnection OpenConnection() =>
        new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = Path, Mode = SqliteOpenMode.ReadOnly, DefaultTimeout = 30 }.ToString());

    protected override async Task<bool> HasTableAsync(DbConnection connection, string table, CancellationToken cancellationToken)
    {
        await using var cmd = connection.CreateCommand();
        cmd.CommandText = "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = @t";
        var p = cmd.CreateParameter();
        p.ParameterName = "@t";
        p.Value = table;
        cmd.Parameters.Add(p);
        return (long)(await cmd.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false))! > 0;
    }

    /// <summary>A writable connection whose commits are synced (a purge is durable when it returns).</summary>
    protected override async Task<DbConnection> OpenWritableAsync(CancellationToken cancellationToken)
    {
        var c = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = Path, Mode = SqliteOpenMode.ReadWrite, DefaultTimeout = 30 }.ToString());
        await c.OpenAsync(cancellationToken).ConfigureAwait(false);
        await using var cmd = c.CreateCommand();
        cmd.CommandText = "PRAGMA synchronous=FULL; PRAGMA busy_timeout=30000;";
        await cmd.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        return c;
    }

    /// <summary>WAL mode, set once per file (Akka.Persistence.Sql then opens it as it likes); the catch-up reads only when the file exists.</summary>
    public override async Task PrepareAsync(CancellationToken cancellationToken)
    {
        Directory.CreateDirectory(System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(Path))!);
        await using var c = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = Path, Pooling = false }.ToString());
        await c.OpenAsync(cancellationToken).ConfigureAwait(false);
        await using var cmd = c.CreateCommand();
        cmd.CommandText = "PRAGMA journal_mode=WAL;";
        await cmd.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }
}
