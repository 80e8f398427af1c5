using AkkaVna.Core.Ports;
using AkkaVna.Index.PostgreSql;
using AkkaVna.Testing;
using AkkaVna.Testing.Contracts;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;
using static AkkaVna.Testing.Samples;

namespace AkkaVna.Adapters.Tests.Index;

/// <summary>
/// The PostgreSQL index on a throwaway server (Debian's PostgreSQL, Unix socket only): the index contract unchanged, and
/// what only a shared index has — several nodes (processes) committing and migrating at once.
/// </summary>
public sealed class PostgreSqlArchiveIndexTests : IndexContract
{
    private readonly string _connection = PostgresServer.Shared.CreateDatabase();

    protected override async Task<IArchiveIndex> CreateIndexAsync()
    {
        var index = new PostgreSqlArchiveIndex(_connection, NullLogger.Instance);
        await index.InitializeAsync(CancellationToken.None);
        return index;
    }

    protected override async Task ReopenAsync()
    {
        await Index.DisposeAsync();
        Index = await CreateIndexAsync();
    }

    [Fact]
    public async Task Nodes_that_start_at_once_migrate_the_schema_once()
    {
        var indexes = Enumerable.Range(0, 4).Select(_ => new PostgreSqlArchiveIndex(_connection, NullLogger.Instance)).ToList();
        await Task.WhenAll(indexes.Select(i => i.InitializeAsync(CancellationToken.None)));
        await using (var c = new NpgsqlConnection(_connection))
        {
            await c.OpenAsync();
            await using var cmd = new NpgsqlCommand("SELECT COUNT(*), MAX(version) FROM akkavna.schema_version", c);
            await using var r = await cmd.ExecuteReaderAsync();
            await r.ReadAsync();
            Assert.Equal(PostgreSqlArchiveIndex.SchemaVersion, r.GetInt64(0));
            Assert.Equal(PostgreSqlArchiveIndex.SchemaVersion, r.GetInt32(1));
        }
        foreach (var i in indexes) await i.DisposeAsync();
    }

    [Fact]
    public async Task Two_nodes_claiming_one_SOP_Instance_UID_for_two_studies_at_once_give_it_to_exactly_one()
    {
        // Two index instances stand for two nodes: each commits the same SOP Instance UID for a different study, 20 times.
        await using var other = new PostgreSqlArchiveIndex(_connection, NullLogger.Instance);
        await other.InitializeAsync(CancellationToken.None);
        for (int n = 0; n < 20; n++)
        {
            string sop = $"1.2.826.0.1.3680043.10.543.9.{n}";
            var a = Index.CommitAsync(UpdateFor($"1.2.3.100.{n}", 2, false, Instance(sop, study: $"1.2.3.100.{n}")), CancellationToken.None);
            var b = other.CommitAsync(UpdateFor($"1.2.3.200.{n}", 2, false, Instance(sop, study: $"1.2.3.200.{n}")), CancellationToken.None);
            var results = await Task.WhenAll(a, b);
            Assert.Single(results, r => r.Conflicts.Count == 0);
            var loser = Assert.Single(results, r => r.Conflicts.Count == 1);
            var owner = await Index.FindInstanceAsync(sop, CancellationToken.None);
            Assert.NotNull(owner);
            Assert.Equal(owner.StudyInstanceUid, loser.Conflicts[0].StudyInstanceUid);
        }
    }

    [Fact]
    public async Task A_schema_newer_than_this_build_is_refused_at_start()
    {
        await using (var c = new NpgsqlConnection(_connection))
        {
            await c.OpenAsync();
            await using var cmd = new NpgsqlCommand($"INSERT INTO akkavna.schema_version VALUES ({PostgreSqlArchiveIndex.SchemaVersion + 1}, 0)", c);
            await cmd.ExecuteNonQueryAsync();
        }
        var newer = new PostgreSqlArchiveIndex(_connection, NullLogger.Instance);
        var e = await Assert.ThrowsAsync<InvalidOperationException>(() => newer.InitializeAsync(CancellationToken.None));
        Assert.Contains("newer than this build", e.Message);
        await newer.DisposeAsync();
    }
}
