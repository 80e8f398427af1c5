using AkkaVna.Core.Model;
using AkkaVna.Core.Ports;
using AkkaVna.Index.Sqlite;
using AkkaVna.Testing;
using AkkaVna.Testing.Contracts;
using Microsoft.Extensions.Logging.Abstractions;

namespace AkkaVna.Adapters.Tests.Index;

/// <summary>The SQLite index: the index contract, and what only it has (its schema's migrations).</summary>
public sealed class SqliteArchiveIndexTests : IndexContract
{
    private readonly TempDir _dir = new();
    private string DbPath => Path.Combine(_dir.Path, "index.db");

    protected override async Task<IArchiveIndex> CreateIndexAsync()
    {
        var index = new SqliteArchiveIndex(DbPath, NullLogger.Instance);
        await index.InitializeAsync(CancellationToken.None);
        return index;
    }

    protected override async Task ReopenAsync()
    {
        await Index.DisposeAsync();
        Index = await CreateIndexAsync();
    }

    public override async Task DisposeAsync()
    {
        await base.DisposeAsync();
        _dir.Dispose();
    }

    [Fact]
    public async Task AnIndex_of_the_first_schema_is_migrated_in_place_and_keeps_its_rows_and_checkpoint()
    {
        await Index.DisposeAsync();
        string path = Path.Combine(_dir.Path, "old.db");
        // The schema and rows as the first version wrote them (no schema_version table, one checkpoint row).
        await using (var c = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={path}"))
        {
            await c.OpenAsync();
            await using var cmd = c.CreateCommand();
            cmd.CommandText = """
                CREATE TABLE instances (study_uid TEXT NOT NULL, series_uid TEXT NOT NULL, sop_uid TEXT NOT NULL, sop_class_uid TEXT NOT NULL,
                    transfer_syntax_uid TEXT NOT NULL, instance_number INTEGER, number_of_frames INTEGER, rows INTEGER, columns INTEGER,
                    blob_key TEXT NOT NULL, size_bytes INTEGER NOT NULL, sha256 TEXT NOT NULL, received_at INTEGER NOT NULL, calling_ae TEXT NOT NULL,
                    PRIMARY KEY (study_uid, series_uid, sop_uid)) WITHOUT ROWID;
                CREATE TABLE node_state (key TEXT NOT NULL PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
                INSERT INTO instances VALUES ('1.2', '1.2.1', '1.2.1.1', '1.2.840.10008.5.1.4.1.1.2', '1.2.840.10008.1.2.1', 1, NULL, NULL, NULL,
                    'abc/1.2/1.2.1/1.2.1.1.dcm', 10, 'aa', 0, 'GW');
                INSERT INTO node_state VALUES ('projection_checkpoint', 638000000000000000);
                """;
            await cmd.ExecuteNonQueryAsync();
        }
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        var index = new SqliteArchiveIndex(path, NullLogger.Instance);
        await index.InitializeAsync(CancellationToken.None);
        Index = index;
        var row = await Index.FindInstanceAsync("1.2.1.1", CancellationToken.None);
        Assert.Null(row); // not located: the old instance_locations table held nothing for it
        var all = new List<IndexedInstance>();
        await foreach (var i in Index.ListInstancesAsync(null, CancellationToken.None)) all.Add(i);
        Assert.Equal(new BlobRef(BlobRef.PrimaryStore, "abc/1.2/1.2.1/1.2.1.1.dcm"), Assert.Single(all).Blob);
        Assert.Equal(new DateTimeOffset(638000000000000000, TimeSpan.Zero), await Index.GetProjectionCheckpointAsync(CancellationToken.None));
        Assert.Equal(SqliteArchiveIndex.SchemaVersion, await SchemaVersionAsync(path));
    }

    private static async Task<long> SchemaVersionAsync(string path)
    {
        await using var c = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={path}");
        await c.OpenAsync();
        await using var cmd = c.CreateCommand();
        cmd.CommandText = "SELECT MAX(version) FROM schema_version";
        return (long)(await cmd.ExecuteScalarAsync())!;
    }
}
