using System.Collections.Concurrent;

namespace AkkaVna.Core.Studies;

/// <summary>
/// Which studies of this node have journal events their index rows do not reflect yet, and since when. The index commits
/// without waiting for the disk (the journal is the record; the index is its projection), and every few seconds makes
/// everything so far durable together with a <em>checkpoint</em>: a time before which every journal write is durably in
/// the index. After a crash only the studies written to the journal since the last checkpoint can lack index rows; the
/// node wakes them at start and each re-projects what its index watermark misses.
/// </summary>
public sealed class ProjectionTracker
{
    private readonly ConcurrentDictionary<string, DateTimeOffset> _unprojected = new(StringComparer.Ordinal);
    private readonly TimeProvider _clock;

    public ProjectionTracker(TimeProvider? clock = null) => _clock = clock ?? TimeProvider.System;

    /// <summary>
    /// How far before the earliest unprojected write the checkpoint stays: the journal stamps a write with its own clock
    /// reading, taken a little after the study actor's.
    /// </summary>
    public static readonly TimeSpan Margin = TimeSpan.FromSeconds(5);

    /// <summary>A study is about to write events to the journal (before the write starts); a study already behind keeps its earlier time.</summary>
    public void Writing(string studyInstanceUid) => _unprojected.TryAdd(studyInstanceUid, _clock.GetUtcNow());

    /// <summary>
    /// A recovering study found journal events its index rows miss: they were written at some unknown time after the
    /// checkpoint this node started from, so the checkpoint may not pass that until the study is projected again.
    /// </summary>
    public void Recovered(string studyInstanceUid) => _unprojected.AddOrUpdate(studyInstanceUid, _floor, (_, since) => since < _floor ? since : _floor);

    /// <summary>The durable checkpoint this node started from (recorded by the previous run).</summary>
    public void StartedFrom(DateTimeOffset checkpoint) => _floor = checkpoint;

    private DateTimeOffset _floor = DateTimeOffset.UnixEpoch;

    /// <summary>The index now reflects every journal event of the study (committed, not necessarily on disk yet).</summary>
    public void Projected(string studyInstanceUid) => _unprojected.TryRemove(studyInstanceUid, out _);

    /// <summary>Studies whose index rows are behind their journal right now.</summary>
    public int Behind => _unprojected.Count;

    /// <summary>
    /// The checkpoint to record with the next durable index sync, read <em>before</em> that sync starts: every journal
    /// write stamped earlier belongs to a study that was projected before this call, so the sync makes it durable.
    /// </summary>
    public DateTimeOffset Checkpoint()
    {
        var now = _clock.GetUtcNow();
        var earliest = now;
        foreach (var since in _unprojected.Values)
            if (since < earliest) earliest = since;
        return earliest - Margin;
    }
}
