using System.Diagnostics;
using System.Runtime.CompilerServices;
using Akka.Actor;
using AkkaVna.Archive.Studies;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Logging;

namespace AkkaVna.Archive.Hosting;

/// <summary>
/// Brings the index up to the journal at start. The index commits without waiting for the disk, so a power loss can take
/// its last commits; the journal (synchronous) still holds their events. Every study written to the journal since the
/// index's durable projection checkpoint is woken: its actor compares the journal with its index watermark on recovery
/// and re-projects what is missing, before the node takes any association. A new (or deleted) index starts from the
/// beginning, so every study in the journal is woken, which rebuilds the index.
/// </summary>
internal static class IndexCatchUp
{
    private const int Parallelism = 8;

    public static async Task RunAsync(string journalPath, DateTimeOffset checkpoint, Ports.IStudyGateway studies, ILogger log, CancellationToken cancellationToken)
    {
        var clock = Stopwatch.StartNew();
        int woken = 0;
        await Parallel.ForEachAsync(StudiesWrittenSince(journalPath, checkpoint, cancellationToken),
            new ParallelOptions { MaxDegreeOfParallelism = Parallelism, CancellationToken = cancellationToken },
            async (uid, ct) =>
            {
                await studies.GetSummaryAsync(uid, TimeSpan.FromSeconds(60), ct);
                Interlocked.Increment(ref woken);
            });
        if (woken > 0)
            log.LogInformation("index catch-up: {Studies} studies written to the journal since {Checkpoint} checked against the index in {Seconds:F1} s",
                woken, checkpoint == DateTimeOffset.UnixEpoch ? "the beginning (a new index)" : checkpoint.ToString("O"), clock.Elapsed.TotalSeconds);
    }

    /// <summary>
    /// The Study Instance UIDs with journal rows stamped at or after <paramref name="since"/>, from
    /// Akka.Persistence.Sql's <c>journal</c> table (default table mapping: <c>created</c> holds UTC ticks and is indexed).
    /// </summary>
    internal static async IAsyncEnumerable<string> StudiesWrittenSince(string journalPath, DateTimeOffset since, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        if (!File.Exists(journalPath)) yield break;
        await using var c = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = journalPath, Mode = SqliteOpenMode.ReadOnly, DefaultTimeout = 30 }.ToString());
        await c.OpenAsync(cancellationToken);
        await using (var exists = c.CreateCommand())
        {
            exists.CommandText = "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'journal'";
            if ((long)(await exists.ExecuteScalarAsync(cancellationToken))! == 0) yield break; // the journal plugin has not created its tables yet
        }
        await using var cmd = c.CreateCommand();
        cmd.CommandText = "SELECT DISTINCT persistence_id FROM journal INDEXED BY journal_created_idx WHERE created >= $t";
        cmd.Parameters.AddWithValue("$t", since.UtcTicks);
        await using var r = await cmd.ExecuteReaderAsync(cancellationToken);
        string prefix = StudyActor.PersistenceIdFor("");
        while (await r.ReadAsync(cancellationToken))
            if (r.GetString(0) is { } id && id.StartsWith(prefix, StringComparison.Ordinal))
                yield return id[prefix.Length..];
    }
}
