using System.Data.Common;
using Npgsql;

namespace AkkaVna.Journal.Sql;

/// <summary>
/// The study journal on PostgreSQL, shared by every node of a cluster (in the archive's schema): a study actor recovers
/// on whichever node sharding puts it, with everything any node journaled for it.
/// </summary>
public sealed class PostgreSqlJournalStore : SqlJournalStore
{
    private readonly string _connectionString;
    private readonly string _schema;

    public PostgreSqlJournalStore(string connectionString, string schema = "akkavna")
    {
        _schema = schema;
        _connectionString = new NpgsqlConnectionStringBuilder(connectionString) { SearchPath = schema }.ConnectionString;
    }

    public override string Description
    {
        get
        {
            var b = new NpgsqlConnectionStringBuilder(_connectionString);
            return $"postgresql://{b.Host}:{b.Port}/{b.Database} (schema {_schema})";
        }
    }

    protected override string ProviderName => "PostgreSQL.15";

    protected override string ConnectionString => _connectionString;

    protected override DbConnection OpenConnection() => new NpgsqlConnection(_connectionString);

    protected override async Task<bool> HasTableAsync(DbConnection connection, string table, CancellationToken cancellationToken)
    {
        await using var cmd = connection.CreateCommand();
        cmd.CommandText = "SELECT to_regclass(@t) IS NOT NULL";
        cmd.Parameters.Add(new NpgsqlParameter("t", table));
        return (bool)(await cmd.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false))!;
    }

    /// <summary>The schema the plugin creates its tables in (it does not create schemas).</summary>
    public override async Task PrepareAsync(CancellationToken cancellationToken)
    {
        await using var c = new NpgsqlConnection(_connectionString);
        await c.OpenAsync(cancellationToken).ConfigureAwait(false);
        await using var cmd = new NpgsqlCommand($"CREATE SCHEMA IF NOT EXISTS {_schema}", c);
        await cmd.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }
}
