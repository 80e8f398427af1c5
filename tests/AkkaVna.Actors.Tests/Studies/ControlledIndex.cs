using System.Collections.Concurrent;
using AkkaVna.Core.Ports;

namespace AkkaVna.Actors.Tests.Studies;

/// <summary>
/// A real index with a hand on its commits: they can be held (to watch coalescing), lost (a crash between the journal
/// write and the index commit, as the node would see it after a restart) or counted.
/// </summary>
public sealed class ControlledIndex(IArchiveIndex inner) : IArchiveIndex
{
    private TaskCompletionSource _gate = Open();

    /// <summary>Every commit as it arrived (applied or lost).</summary>
    public ConcurrentQueue<StudyIndexUpdate> Commits { get; } = new();

    /// <summary>When set, commits answer "applied" without reaching the index (the process died before the index transaction).</summary>
    public bool LoseCommits { get; set; }

    private static TaskCompletionSource Open()
    {
        var open = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        open.SetResult();
        return open;
    }

    /// <summary>Commits wait from now until <see cref="Release"/>.</summary>
    public void Hold() => _gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);

    public void Release() => _gate.TrySetResult();

    public async Task<IndexCommitResult> CommitAsync(StudyIndexUpdate update, CancellationToken cancellationToken)
    {
        Commits.Enqueue(update);
        await _gate.Task.WaitAsync(cancellationToken);
        return LoseCommits ? IndexCommitResult.Applied : await inner.CommitAsync(update, cancellationToken);
    }

    public Task InitializeAsync(CancellationToken cancellationToken) => inner.InitializeAsync(cancellationToken);
    public Task MakeDurableAsync(string node, DateTimeOffset checkpoint, CancellationToken cancellationToken) => inner.MakeDurableAsync(node, checkpoint, cancellationToken);
    public Task<DateTimeOffset?> GetProjectionCheckpointAsync(CancellationToken cancellationToken) => inner.GetProjectionCheckpointAsync(cancellationToken);
    public Task RecordCatchUpAsync(DateTimeOffset caughtUpTo, DateTimeOffset silentSince, CancellationToken cancellationToken) =>
        inner.RecordCatchUpAsync(caughtUpTo, silentSince, cancellationToken);
    public Task<long> GetWatermarkAsync(string studyInstanceUid, CancellationToken cancellationToken) => inner.GetWatermarkAsync(studyInstanceUid, cancellationToken);
    public Task<StudyRecord?> GetStudyAsync(string studyInstanceUid, CancellationToken cancellationToken) => inner.GetStudyAsync(studyInstanceUid, cancellationToken);
    public Task<IReadOnlyList<SeriesRecord>> GetSeriesAsync(string studyInstanceUid, CancellationToken cancellationToken) => inner.GetSeriesAsync(studyInstanceUid, cancellationToken);
    public IAsyncEnumerable<IndexedInstance> ListInstancesAsync(string? studyInstanceUid, CancellationToken cancellationToken) => inner.ListInstancesAsync(studyInstanceUid, cancellationToken);

    public ILifecycleStore Lifecycle => inner.Lifecycle;

    public Task DeleteStudyAsync(string studyInstanceUid, CancellationToken cancellationToken) => inner.DeleteStudyAsync(studyInstanceUid, cancellationToken);

    public IAsyncEnumerable<KeptBlob> ListKeptBlobsAsync(string? studyInstanceUid, CancellationToken cancellationToken) => inner.ListKeptBlobsAsync(studyInstanceUid, cancellationToken);
    public Task<IndexedInstance?> FindInstanceAsync(string sopInstanceUid, CancellationToken cancellationToken) => inner.FindInstanceAsync(sopInstanceUid, cancellationToken);
    public Task<IReadOnlyList<string>> StudiesOfPatientAsync(string patientId, string? issuerOfPatientId, CancellationToken cancellationToken) =>
        inner.StudiesOfPatientAsync(patientId, issuerOfPatientId, cancellationToken);
    public IAsyncEnumerable<StudyRecord> ScanStudiesAsync(CancellationToken cancellationToken) => inner.ScanStudiesAsync(cancellationToken);
    public IAsyncEnumerable<(string PatientId, string IssuerOfPatientId, string StudyInstanceUid)> ScanPatientStudiesAsync(CancellationToken cancellationToken) =>
        inner.ScanPatientStudiesAsync(cancellationToken);
    public Task<IReadOnlyList<string>> StudiesInMonthAsync(string yyyymm, CancellationToken cancellationToken) => inner.StudiesInMonthAsync(yyyymm, cancellationToken);
    public Task<IReadOnlyList<string>> DueForStabilityAsync(DateTimeOffset now, int limit, CancellationToken cancellationToken) => inner.DueForStabilityAsync(now, limit, cancellationToken);
    public Task<IReadOnlyList<string>> DueForCompressionAsync(DateTimeOffset now, int limit, CancellationToken cancellationToken) => inner.DueForCompressionAsync(now, limit, cancellationToken);
    public Task<IndexCounts> CountAsync(CancellationToken cancellationToken) => inner.CountAsync(cancellationToken);
    public ValueTask DisposeAsync() => inner.DisposeAsync();
}
