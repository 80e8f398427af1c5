using System.Diagnostics;
using AkkaVna.Core.Ports;
using Microsoft.Extensions.Logging;

namespace AkkaVna.Core.Studies;

/// <summary>How a study's journal is named: one persistence id per Study Instance UID.</summary>
public static class StudyJournal
{
    private const string Prefix = "study-";

    public static string PersistenceIdFor(string studyInstanceUid) => Prefix + studyInstanceUid;

    /// <summary>The study of a persistence id, or null when the id is not a study's.</summary>
    public static string? StudyOf(string persistenceId) => persistenceId.StartsWith(Prefix, StringComparison.Ordinal) ? persistenceId[Prefix.Length..] : null;
}

/// <summary>
/// Brings the index up to the journal at start. The index may commit without waiting for the disk, so a power loss can
/// take its last commits; the journal (synchronous) still holds their events. Every study written to the journal since
/// the index's durable projection checkpoint is woken: its actor compares the journal with its index watermark on
/// recovery and re-projects what is missing, before the node takes any association. A new (or deleted) index starts
/// from the beginning, so every study in the journal is woken, which rebuilds the index.
/// </summary>
public static class IndexCatchUp
{
    private const int Parallelism = 8;

    public static async Task<int> RunAsync(IJournalStore journal, DateTimeOffset checkpoint, IStudyGateway studies, ILogger log, CancellationToken cancellationToken)
    {
        var clock = Stopwatch.StartNew();
        int woken = 0;
        var ids = journal.PersistenceIdsWrittenSinceAsync(checkpoint, cancellationToken);
        await Parallel.ForEachAsync(ids, new ParallelOptions { MaxDegreeOfParallelism = Parallelism, CancellationToken = cancellationToken },
            async (id, ct) =>
            {
                if (StudyJournal.StudyOf(id) is not { } uid) return;
                await studies.GetSummaryAsync(uid, TimeSpan.FromSeconds(60), ct).ConfigureAwait(false);
                Interlocked.Increment(ref woken);
            }).ConfigureAwait(false);
        if (woken > 0)
            log.LogInformation("index catch-up: {Studies} studies written to the journal since {Checkpoint} checked against the index in {Seconds:F1} s",
                woken, checkpoint == DateTimeOffset.UnixEpoch ? "the beginning (a new index)" : checkpoint.ToString("O"), clock.Elapsed.TotalSeconds);
        return woken;
    }
}
