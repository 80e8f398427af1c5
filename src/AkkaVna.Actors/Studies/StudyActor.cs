using Akka.Actor;
using Akka.Cluster.Sharding;
using Akka.Event;
using Akka.Persistence;
using Akka.Persistence.Query;
using Akka.Streams;
using Akka.Streams.Dsl;
using AkkaVna.Actors.Compression;
using AkkaVna.Actors.Lifecycle;
using AkkaVna.Core.Lifecycle;
using AkkaVna.Core.Model;
using AkkaVna.Core.Ports;
using AkkaVna.Core.Studies;

namespace AkkaVna.Actors.Studies;

/// <summary>How study actors behave (from the <c>akka-vna.archive.studies</c> configuration).</summary>
public sealed record StudySettings(TimeSpan QuietPeriod, ConflictPolicy ConflictPolicy, int SnapshotEvery, int MaxBatch)
{
    /// <summary>The read journal that gives a recovering actor the events between the index's watermark and a later snapshot.</summary>
    public string ReadJournalPluginId { get; init; } = "akka.persistence.query.journal.sql";
}

/// <summary>
/// One study, sharded by Study Instance UID. It <em>coalesces</em>: instances that arrive while a commit is in flight are
/// decided at once and committed together as the next batch — one journal write (PersistAllAsync) and one index
/// update — and only then answered, so a C-STORE success always means "in the journal and in the index". The index is a
/// projection of this actor's journal; the study row carries the sequence number it reflects, and a recovering actor
/// re-projects whatever the index missed (a crash between journal and index commit).
/// </summary>
public sealed class StudyActor : UntypedPersistentActor, IWithTimers
{
    private sealed record Pending(IActorRef? ReplyTo, string? SopInstanceUid, StoreOutcome Outcome, string? Reason, BlobRef? ObsoleteBlob, IReadOnlyList<IStudyEvent> Events)
    {
        /// <summary>For a duplicate: the checksum of the archived blob's bytes.</summary>
        public string? ArchivedSha256 { get; init; }

        /// <summary>A <see cref="GetStudySummary"/>: answered once everything before it is committed to the journal and the index.</summary>
        public bool Summary { get; init; }

        /// <summary>What <see cref="ReplyTo"/> is told once the batch is committed (a child's switch of blobs); on failure, <see cref="AnswerOnFailure"/> of the reason.</summary>
        public object? Answer { get; init; }

        public Func<string, object>? AnswerOnFailure { get; init; }
    }
    private sealed record Indexed(IReadOnlyList<Pending> Batch, int EventCount, long SequenceNr, IReadOnlyList<LocationConflict> Conflicts);
    private sealed record IndexFailed(IReadOnlyList<Pending> Batch, Exception Cause);
    private sealed class RetryIndex { public static readonly RetryIndex Instance = new(); }
    private sealed record WatermarkLoaded(long SequenceNr, Tombstone? Tombstone);
    private sealed class TombstoneCleared { public static readonly TombstoneCleared Instance = new(); }
    private sealed record WatermarkFailed(Exception Cause);
    private sealed class RetryWatermark { public static readonly RetryWatermark Instance = new(); }
    private sealed record MissedEventsLoaded(IReadOnlyList<IStudyEvent> Events);

    private readonly string _studyUid;
    private readonly StudySettings _settings;
    private readonly IArchiveIndex _index;
    private readonly ProjectionTracker _tracker;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly TimeProvider _time;
    /// <summary>Events replayed after the snapshot, with their sequence numbers: those past the index's watermark are re-projected.</summary>
    private readonly List<(long SequenceNr, IStudyEvent Event)> _replayed = [];
    private long _watermark;
    private bool _ready;
    private StudyState _committed, _decided;
    private readonly List<IStudyEvent> _unindexed = [];
    /// <summary>Instances withdrawn since the last answered batch (their SOP Instance UID is archived in another study), with why.</summary>
    private readonly Dictionary<string, string> _withdrawn = new(StringComparer.Ordinal);
    private List<Pending> _pending = [];
    private IReadOnlyList<Pending> _inFlight = [];
    private bool _busy, _forceIndex, _stopRequested;
    private long _lastSnapshotSeq;
    private TimeSpan _retryDelay = TimeSpan.FromMilliseconds(500);

    private readonly IArchiveMetrics _metrics;
    private readonly CompressionServices? _compression;
    private IActorRef? _compressor;
    /// <summary>Bumped by every new or replaced instance: a compression pass that began before it did not see it.</summary>
    private long _generation;
    private sealed class CompressNow { public static readonly CompressNow Instance = new(); }

    private readonly LifecycleServices? _lifecycle;
    private IActorRef? _lifecycleChild;
    /// <summary>The study's tombstone: it was destroyed (resends follow the resend policy), or its destruction is under way.</summary>
    private Tombstone? _tombstone;
    /// <summary>A destruction is under way: every store is refused until it completes (or a hold stops it).</summary>
    private bool _destroying;
    private bool _clearingTombstone;
    private DestructionOrder? _orderAfterCompressorStops;
    /// <summary>Names a compression child started again after a destruction a hold stopped (names are never reused).</summary>
    private int _compressorIncarnation;

    public StudyActor(string studyInstanceUid, StudySettings settings, IArchiveIndex index, ProjectionTracker tracker, TimeProvider time, IArchiveMetrics metrics,
        CompressionServices? compression = null, LifecycleServices? lifecycle = null)
    {
        _lifecycle = lifecycle;
        _metrics = metrics;
        _compression = compression is { Settings.Enabled: true } ? compression : null;
        _studyUid = studyInstanceUid;
        _settings = settings;
        _index = index;
        _tracker = tracker;
        _time = time;
        _committed = _decided = StudyState.Empty(studyInstanceUid);
    }

    public static Props Props(string studyInstanceUid, StudySettings settings, IArchiveIndex index, ProjectionTracker tracker, TimeProvider time,
        IArchiveMetrics metrics, CompressionServices? compression = null, LifecycleServices? lifecycle = null) =>
        Akka.Actor.Props.Create(() => new StudyActor(studyInstanceUid, settings, index, tracker, time, metrics, compression, lifecycle));

    public static string PersistenceIdFor(string studyInstanceUid) => StudyJournal.PersistenceIdFor(studyInstanceUid);

    public override string PersistenceId => PersistenceIdFor(_studyUid);

    protected override void PreStart()
    {
        // The index's watermark is read while the journal replays: neither waits for the other, and no database call blocks the actor.
        LoadWatermark();
        if (_compression is not null) _compressor = Context.ActorOf(CompressionChild.Props(_studyUid, _compression), "compression");
        // With the lifecycle off there is no child; a destruction a crash cut short gets one when the study is ready.
        if (_lifecycle is { Settings.Enabled: true }) _lifecycleChild = Context.ActorOf(LifecycleChild.Props(_studyUid, _lifecycle), "lifecycle");
        base.PreStart();
    }

    private void LoadWatermark() => LoadStartAsync().PipeTo(Self, success: w => w, failure: e => new WatermarkFailed(e));

    /// <summary>The index's watermark, and the study's tombstone (a destroyed study, or one whose destruction was cut short).</summary>
    private async Task<WatermarkLoaded> LoadStartAsync()
    {
        var watermark = _index.GetWatermarkAsync(_studyUid, CancellationToken.None);
        var tombstone = await _index.Lifecycle.GetTombstoneAsync(_studyUid, CancellationToken.None).ConfigureAwait(false);
        return new WatermarkLoaded(await watermark.ConfigureAwait(false), tombstone);
    }

    protected override void OnRecover(object message)
    {
        switch (message)
        {
            case SnapshotOffer { Snapshot: StudyState s } offer:
                _committed = s;
                _lastSnapshotSeq = offer.Metadata.SequenceNr;
                break;
            case IStudyEvent e:
                _committed = _committed.Apply(e);
                _replayed.Add((LastSequenceNr, e));
                break;
            case RecoveryCompleted:
                _decided = _committed;
                break;
        }
    }

    /// <summary>
    /// Recovered, and the index's watermark known: what the journal holds past it is re-projected. A snapshot later than
    /// the watermark (the index lost commits, or was deleted) did not replay the events between them: those are read
    /// from the read journal first. Commands wait (stashed) until then.
    /// </summary>
    private void OnWatermark(long watermark)
    {
        _watermark = watermark;
        if (_lastSnapshotSeq > watermark)
        {
            var query = PersistenceQuery.Get(Context.System).ReadJournalFor<ICurrentEventsByPersistenceIdQuery>(_settings.ReadJournalPluginId);
            query.CurrentEventsByPersistenceId(PersistenceId, watermark + 1, _lastSnapshotSeq)
                .Select(envelope => (IStudyEvent)envelope.Event)
                .RunWith(Sink.Seq<IStudyEvent>(), Context.Materializer())
                .PipeTo(Self, success: events => new MissedEventsLoaded(events), failure: e => new WatermarkFailed(e));
            return;
        }
        Ready(_replayed.Where(r => r.SequenceNr > watermark).Select(r => r.Event));
    }

    private void Ready(IEnumerable<IStudyEvent> unindexed)
    {
        _unindexed.AddRange(unindexed);
        _replayed.Clear();
        _ready = true;
        if (_unindexed.Count > 0)
        {
            _log.Info("study {0}: re-projecting {1} event(s) the index missed (index at {2}, journal at {3})", _studyUid, _unindexed.Count, _watermark, LastSequenceNr);
            _tracker.Recovered(_studyUid);
            _forceIndex = true;
            Flush();
        }
        if (_tombstone is { State: TombstoneState.Destroying } begun)
        {
            // A destruction cut short (a crash, a failover): it finishes before anything else; stores are refused meanwhile.
            _destroying = true;
            _lifecycleChild ??= Context.ActorOf(LifecycleChild.Props(_studyUid, _lifecycle ?? throw new InvalidOperationException(
                $"study {_studyUid}: its destruction is under way and this node has no lifecycle services")), "lifecycle");
            _lifecycleChild.Tell(new DestructionOrder(begun, null, null, null, Resume: true));
        }
        else
        {
            DeleteObsoleteBlobs();
            ScheduleCompression();
        }
        Stash.UnstashAll();
    }

    /// <summary>Replaced blobs not yet known to be deleted (a crash, a copy not in place yet) are deleted by a child once their replacement is.</summary>
    private void DeleteObsoleteBlobs()
    {
        if (!_committed.ObsoleteBlobs.IsEmpty && (_compressor ?? _lifecycleChild) is { } child) child.Tell(new DeleteObsolete([.. _committed.ObsoleteBlobs]));
    }

    /// <summary>The lifecycle child is asked to look at the study (when lifecycle is on and the study is not being destroyed).</summary>
    private void EvaluateLifecycle()
    {
        if (_lifecycleChild is null || _lifecycle is not { Settings.Enabled: true } || _destroying || _tombstone is not null || _committed.Instances.IsEmpty) return;
        _lifecycleChild.Tell(new EvaluateLifecycle(_committed.Stable, _committed.StableDue(_settings.QuietPeriod)) { Obsolete = [.. _committed.ObsoleteBlobs] });
    }

    /// <summary>
    /// Destruction asked by the lifecycle child: once nothing is in flight, the study is closed (every store refused), its
    /// compression child stopped, and the child given the tombstone listing every blob of the study.
    /// </summary>
    private void OnDestroy(DestroyStudy d)
    {
        if (_destroying || _tombstone is not null) return;
        if (!_decided.Stable)
        {
            // An instance arrived since the child planned: the study is open again, and is planned again once stable.
            EvaluateLifecycle();
            return;
        }
        if (_busy || _pending.Count > 0 || _unindexed.Count > 0)
        {
            Timers.StartSingleTimer("destroy-when-idle", d, TimeSpan.FromMilliseconds(200));
            return;
        }
        _destroying = true;
        var s = _committed;
        var blobs = s.Instances.Values.Select(i => i.Blob).Concat(s.KeptOriginals.Values.Select(k => k.Blob)).Concat(s.ObsoleteBlobs).Distinct().ToList();
        var tombstone = new Tombstone(_studyUid, d.Rule, TombstoneState.Destroying, s.Series.Count, s.Instances.Count, s.SizeBytes,
            [.. s.Instances.Values.Select(i => i.ContentSha256 ?? i.Sha256).Order(StringComparer.Ordinal)], _time.GetUtcNow(), null, d.ApprovedBy) { Blobs = blobs };
        var order = new DestructionOrder(tombstone, s.Latest?.PatientId, s.Latest?.IssuerOfPatientId, s.Latest?.AccessionNumber, Resume: false);
        _log.Info("study {0}: destruction begins (rule {1}): {2} instance(s), {3} blob(s); stores are refused from now", _studyUid, d.Rule, s.Instances.Count, blobs.Count);
        if (_compressor is not null)
        {
            // A compression under way must not leave a copy behind: the order goes once the child has stopped.
            _orderAfterCompressorStops = order;
            Context.Watch(_compressor);
            Context.Stop(_compressor);
            _compressor = null;
        }
        else _lifecycleChild!.Tell(order);
    }

    /// <summary>Starts a compression pass when it is due (now, or by a timer), if the study is stable and not yet compressed.</summary>
    private void ScheduleCompression()
    {
        if (_compressor is null || _committed.CompressionDue(_compression!.Settings.Delay) is not { } due) return;
        var wait = due - _time.GetUtcNow();
        if (wait <= TimeSpan.Zero) Self.Tell(CompressNow.Instance);
        else Timers.StartSingleTimer(CompressNow.Instance, CompressNow.Instance, wait);
    }

    private void OnCompressionReady(CompressionReady r)
    {
        // Decided against what is decided so far: the instance must still be the one that was compressed.
        if (!_decided.Instances.TryGetValue(r.SopInstanceUid, out var entry) || entry.Blob != r.FromBlob || entry.Sha256 != r.FromSha256)
        {
            Sender.Tell(new CompressionNotCommitted(r.SopInstanceUid, "the instance changed meanwhile", Stale: true));
            return;
        }
        if (entry.ContentSha256 is null)
        {
            Sender.Tell(new CompressionNotCommitted(r.SopInstanceUid, "the instance has no content checksum (journaled by an earlier build): a resend could not be told from new content", Stale: true));
            return;
        }
        var e = new InstanceCompressed(r.Compressed with { ContentSha256 = entry.ContentSha256 }, r.FromBlob, r.FromSha256, r.FromSize, r.FromTransferSyntaxUid)
        {
            OriginalKept = _compression!.Settings.KeepOriginal,
        };
        _decided = _decided.Apply(e);
        _pending.Add(new Pending(Sender, null, StoreOutcome.Stored, null, null, [e])
        {
            Answer = new CompressionCommitted(r.SopInstanceUid),
            AnswerOnFailure = failure => new CompressionNotCommitted(r.SopInstanceUid, failure, Stale: false),
        });
        Flush();
    }

    /// <summary>
    /// The lifecycle child's tier move of a batch of instances: each is recorded if the instance is still the one copied
    /// (same blob, same checksum; its kept original too), as one batch; the child is told which were, and only then puts
    /// the copies in place and deletes the old ones.
    /// </summary>
    private void OnMoveReady(MoveReady ready)
    {
        var events = new List<IStudyEvent>();
        var committed = new HashSet<string>(StringComparer.Ordinal);
        if (!_destroying && _tombstone is null)
            foreach (var m in ready.Moves)
            {
                var sop = m.Instance.Header.SopInstanceUid;
                if (!_decided.Instances.TryGetValue(sop, out var entry) || entry.Blob != m.PreviousBlob || entry.Sha256 != m.Instance.Sha256) continue;
                if (m.KeptPreviousBlob is { } keptFrom && (!_decided.KeptOriginals.TryGetValue(sop, out var kept) || kept.Blob != keptFrom)) continue;
                var e = m with { Instance = m.Instance with { ContentSha256 = entry.ContentSha256 } };
                _decided = _decided.Apply(e);
                events.Add(e);
                committed.Add(sop);
            }
        if (events.Count == 0)
        {
            Sender.Tell(new MoveRecorded(committed, null)); // every one stale: nothing to write
            return;
        }
        _generation++; // a compression pass listed these blobs where they were: it looks again
        _pending.Add(new Pending(Sender, null, StoreOutcome.Stored, null, null, events)
        {
            Answer = new MoveRecorded(committed, null),
            AnswerOnFailure = failure => new MoveRecorded(committed, failure),
        });
        Flush();
    }

    /// <summary>An event the compression child reports (no answer): journaled and projected with the next batch.</summary>
    private void Record(IStudyEvent e)
    {
        _decided = _decided.Apply(e);
        _pending.Add(new Pending(null, null, StoreOutcome.Stored, null, null, [e]));
        Flush();
    }

    protected override void OnCommand(object message)
    {
        if (!_ready)
        {
            switch (message)
            {
                case WatermarkLoaded loaded:
                    _tombstone = loaded.Tombstone;
                    OnWatermark(loaded.SequenceNr);
                    break;
                case MissedEventsLoaded missed:
                    Ready(missed.Events.Concat(_replayed.Select(r => r.Event)));
                    break;
                case WatermarkFailed failed:
                    _log.Warning("study {0}: cannot read the index's watermark or the journal ({1}); trying again in {2}", _studyUid, failed.Cause.Message, _retryDelay);
                    Timers.StartSingleTimer(RetryWatermark.Instance, RetryWatermark.Instance, _retryDelay);
                    _retryDelay = TimeSpan.FromTicks(Math.Min(_retryDelay.Ticks * 2, TimeSpan.FromSeconds(30).Ticks));
                    break;
                case RetryWatermark:
                    LoadWatermark();
                    break;
                default:
                    Stash.Stash();
                    break;
            }
            return;
        }
        switch (message)
        {
            case StoreInstance cmd:
                OnStore(cmd);
                break;
            case CheckStability or CompressNow or CheckCompression when _destroying || _tombstone is not null:
                break; // a study being destroyed (or destroyed) neither stabilizes nor compresses
            case CheckStability:
                if (_decided.DecideStability(_time.GetUtcNow(), _settings.QuietPeriod) is { } stable)
                {
                    _decided = _decided.Apply(stable);
                    _pending.Add(new Pending(null, null, StoreOutcome.Stored, null, null, [stable]));
                }
                else _forceIndex = true; // the watch saw a stale timer: rewrite this study's row
                Flush();
                break;
            case CompressNow or CheckCompression:
                if (_compressor is not null && _decided.CompressionDue(_compression!.Settings.Delay) is { } due)
                {
                    if (due <= _time.GetUtcNow())
                    {
                        var skip = _decided.CompressionRefused.Keys.Concat(_decided.Instances.Where(i => i.Value.ContentSha256 is null).Select(i => i.Key))
                            .ToHashSet(StringComparer.Ordinal);
                        _compressor.Tell(new CompressStudy(skip, _generation));
                    }
                    else ScheduleCompression();
                }
                break;
            case CompressionReady ready:
                OnCompressionReady(ready);
                break;
            case CompressionRefusal refusal:
                if (_decided.Instances.TryGetValue(refusal.SopInstanceUid, out var refusedEntry) && refusedEntry.Sha256 == refusal.Sha256)
                    Record(new InstanceCompressionRefused(_studyUid, refusal.SopInstanceUid, refusal.Sha256, refusal.Reason));
                break;
            case ObsoleteDeleted { Blobs.Count: 0 }:
                break; // nothing deleted: nothing to journal
            case ObsoleteDeleted deleted:
                Record(new OriginalsDeleted(_studyUid, deleted.Blobs));
                break;
            case CompressionPassFinished finished:
                if (finished.Complete && finished.Generation == _generation && _decided.CompressionDue(_compression!.Settings.Delay) is not null)
                    Record(new StudyCompressed(_studyUid, _time.GetUtcNow()));
                else if (finished.Generation != _generation) ScheduleCompression(); // the study changed under the pass (an instance, a move): look again

                break;
            case GetStudySummary:
                // Answered in turn, after what is in flight (a re-projection too): staged-blob recovery relies on it.
                _pending.Add(new Pending(Sender, null, StoreOutcome.Stored, null, null, []) { Summary = true });
                Flush();
                break;
            case Indexed { Conflicts.Count: > 0 } refused:
                Withdraw(refused.Batch, refused.Conflicts);
                break;
            case Indexed done:
                _unindexed.RemoveRange(0, done.EventCount);
                if (_unindexed.Count == 0) _tracker.Projected(_studyUid);
                _forceIndex = false;
                _retryDelay = TimeSpan.FromMilliseconds(500);
                Reply(done.Batch, null);
                _withdrawn.Clear();
                if (done.Batch.Any(p => p.Events.Any(e => e is StudyStabilized)))
                {
                    ScheduleCompression();
                    EvaluateLifecycle();
                }
                if (_unindexed.Count == 0 && done.SequenceNr - _lastSnapshotSeq >= _settings.SnapshotEvery)
                {
                    SaveSnapshot(_committed);
                    _lastSnapshotSeq = done.SequenceNr;
                }
                _busy = false;
                Flush();
                break;
            case IndexFailed failed:
                _log.Warning("study {0}: index update failed ({1}); {2} instance(s) not acknowledged, retrying in {3}", _studyUid, failed.Cause.Message,
                    failed.Batch.Count(p => p.SopInstanceUid is not null), _retryDelay);
                Reply(failed.Batch, $"the index update failed: {failed.Cause.Message}");
                _busy = false;
                Timers.StartSingleTimer(RetryIndex.Instance, RetryIndex.Instance, _retryDelay);
                _retryDelay = TimeSpan.FromTicks(Math.Min(_retryDelay.Ticks * 2, TimeSpan.FromSeconds(30).Ticks));
                break;
            case RetryIndex:
                if (_unindexed.Count > 0) _forceIndex = true;
                Flush();
                break;
            case SaveSnapshotSuccess success:
                DeleteSnapshots(new SnapshotSelectionCriteria(success.Metadata.SequenceNr - 1));
                break;
            case SaveSnapshotFailure or DeleteSnapshotsSuccess or DeleteSnapshotsFailure:
                break;
            case CheckLifecycle:
                EvaluateLifecycle();
                break;
            case MoveReady moves:
                OnMoveReady(moves);
                break;
            case DestroyStudy destroy:
                OnDestroy(destroy);
                break;
            case Terminated t when _orderAfterCompressorStops is { } order:
                _orderAfterCompressorStops = null;
                _lifecycleChild!.Tell(order);
                break;
            case DestructionAborted aborted:
                _log.Warning("study {0}: destruction stopped: {1}", _studyUid, aborted.Reason);
                _destroying = false;
                if (_compression is not null && _compressor is null)
                    _compressor = Context.ActorOf(CompressionChild.Props(_studyUid, _compression), "compression-" + ++_compressorIncarnation);
                break;
            case StudyDestroyed gone:
                _tombstone = gone.Tombstone;
                _destroying = false;
                _committed = _decided = StudyState.Empty(_studyUid);
                // Nothing of it is left to hold in memory: the shard stops this actor (a resend starts a new one, which reads the tombstone).
                Context.Parent.Tell(new Passivate(StopStudy.Instance));
                break;
            case TombstoneCleared:
                _log.Info("study {0}: destroyed before, received again: archived as a new study (akka-vna.lifecycle.destruction.resend = accept-as-new)", _studyUid);
                _tombstone = null;
                _clearingTombstone = false;
                Stash.UnstashAll();
                break;
            case Status.Failure f when _clearingTombstone:
                _log.Warning("study {0}: its tombstone could not be removed ({1}); the waiting instances are refused", _studyUid, f.Cause.Message);
                _clearingTombstone = false;
                Stash.UnstashAll(); // they meet the tombstone again and wait for another try
                break;
            case StopStudy when _destroying:
                // Passivated while destroying: it stops once the destruction is done (its StudyDestroyed passivates again).
                _stopRequested = true;
                break;
            case StopStudy:
                _stopRequested = true;
                if (!_busy && _pending.Count == 0) Context.Stop(Self);
                break;
            default:
                Unhandled(message);
                break;
        }
    }

    public ITimerScheduler Timers { get; set; } = null!;

    private async Task ClearTombstoneAsync(Tombstone destroyed)
    {
        var store = _index.Lifecycle;
        await store.DeleteTombstoneAsync(_studyUid, CancellationToken.None).ConfigureAwait(false);
        await store.AppendAuditAsync(new AuditRecord(_time.GetUtcNow(), "destroyed-study-received-again", _studyUid, null, "ingest", "success",
            $"destroyed on {destroyed.DestroyedAt:O} by rule {destroyed.Rule}; archived again as a new study (resend = accept-as-new)"), CancellationToken.None).ConfigureAwait(false);
    }

    private void OnStore(StoreInstance cmd)
    {
        if (_destroying)
        {
            Sender.Tell(new StoreInstanceResult(cmd.Instance.Header.SopInstanceUid, StoreOutcome.Failed,
                $"study {_studyUid} is being destroyed by its retention rule; it takes no instance now"));
            return;
        }
        if (_tombstone is { State: TombstoneState.Destroyed } destroyed)
        {
            if (_lifecycle?.Settings.Resend != DestroyedResend.AcceptAsNew)
            {
                Sender.Tell(new StoreInstanceResult(cmd.Instance.Header.SopInstanceUid, StoreOutcome.Failed,
                    $"study {_studyUid} was destroyed on {destroyed.DestroyedAt:yyyy-MM-dd} by rule {destroyed.Rule}; it is not archived again "
                    + "(akka-vna.lifecycle.destruction.resend = refuse)"));
                return;
            }
            // Accepted as a new study: its tombstone goes first (the audit trail keeps the destruction), the store waits.
            Stash.Stash();
            if (!_clearingTombstone)
            {
                _clearingTombstone = true;
                ClearTombstoneAsync(destroyed).PipeTo(Self, success: () => TombstoneCleared.Instance, failure: e => new Status.Failure(e));
            }
            return;
        }
        if (cmd.CommitBy is { } deadline && _time.GetUtcNow() > deadline)
        {
            // Its sender stopped waiting and left the blob to recovery, which may have discarded it already: never committed.
            _log.Warning("study {0}: {1} arrived {2:0.0} s after its sender stopped waiting; refused, not committed", _studyUid,
                cmd.Instance.Header.SopInstanceUid, (_time.GetUtcNow() - deadline).TotalSeconds);
            Sender.Tell(new StoreInstanceResult(cmd.Instance.Header.SopInstanceUid, StoreOutcome.Failed,
                "the command reached the study after its sender stopped waiting; send the instance again"));
            return;
        }
        var (outcome, events, reason) = _decided.Decide(cmd.Instance, _settings.ConflictPolicy);
        BlobRef? obsolete = null;
        foreach (var e in events)
        {
            if (e is InstanceReplaced r && r.PreviousBlob != r.Instance.Blob) obsolete = r.PreviousBlob;
            _decided = _decided.Apply(e);
        }
        if (events.Any(e => e is InstanceStored or InstanceReplaced)) _generation++;
        var sop = cmd.Instance.Header.SopInstanceUid;
        string? archivedSha = outcome == StoreOutcome.Duplicate ? _decided.Instances[sop].Sha256 : null;
        _pending.Add(new Pending(Sender, sop, outcome, reason, obsolete, events) { ArchivedSha256 = archivedSha });
        Flush();
    }

    /// <summary>
    /// The index refused instances of the batch: their SOP Instance UIDs are archived in other studies, which committed
    /// first. They leave this study (an <see cref="InstanceWithdrawn"/> each, journaled), their senders are answered
    /// 0111H, and the rest of the study is projected again without them.
    /// </summary>
    private void Withdraw(IReadOnlyList<Pending> batch, IReadOnlyList<LocationConflict> conflicts)
    {
        var events = new List<IStudyEvent>(conflicts.Count);
        foreach (var c in conflicts)
        {
            var series = _committed.Instances.TryGetValue(c.SopInstanceUid, out var entry) ? entry.SeriesInstanceUid : "";
            string reason = $"SOP Instance {c.SopInstanceUid} is already archived in study {c.StudyInstanceUid}, not {_studyUid}; the archive keeps the first";
            _withdrawn[c.SopInstanceUid] = reason;
            events.Add(new InstanceWithdrawn(_studyUid, series, c.SopInstanceUid, reason));
        }
        _log.Warning("study {0}: {1} instance(s) withdrawn, their SOP Instance UIDs being archived in other studies: {2}", _studyUid, conflicts.Count,
            string.Join(", ", conflicts.Select(c => $"{c.SopInstanceUid} (in {c.StudyInstanceUid})")));
        int remaining = events.Count;
        PersistAll(events, e =>
        {
            _committed = _committed.Apply(e);
            _unindexed.Add(e);
            if (--remaining > 0) return;
            // Commands decided meanwhile against the withdrawn instances: a resend taken for a duplicate is refused too,
            // and what is still to be committed is decided again from what the journal now holds.
            for (int i = 0; i < _pending.Count; i++)
                if (_pending[i] is { SopInstanceUid: { } sop, Outcome: StoreOutcome.Duplicate } p && _withdrawn.TryGetValue(sop, out var why))
                    _pending[i] = p with { Outcome = StoreOutcome.Rejected, Reason = why, ArchivedSha256 = null };
            _decided = _pending.SelectMany(p => p.Events).Aggregate(_committed, (state, ev) => state.Apply(ev));
            Persisted(batch);
        });
    }

    /// <summary>Commits what is pending as one batch, unless a batch is in flight (then it goes next).</summary>
    private void Flush()
    {
        if (_busy) return;
        if (_pending.Count == 0 && !_forceIndex)
        {
            if (_stopRequested) Context.Stop(Self);
            return;
        }
        _busy = true;
        var batch = _pending.Count <= _settings.MaxBatch ? _pending : _pending.GetRange(0, _settings.MaxBatch);
        _pending = _pending.Count <= _settings.MaxBatch ? [] : _pending.GetRange(_settings.MaxBatch, _pending.Count - _settings.MaxBatch);
        _inFlight = batch;
        var events = batch.SelectMany(p => p.Events).ToList();
        if (events.Count == 0)
        {
            Persisted(batch);
            return;
        }
        int remaining = events.Count;
        long started = System.Diagnostics.Stopwatch.GetTimestamp();
        _metrics.StudyBatch(batch.Count(p => p.SopInstanceUid is not null));
        _tracker.Writing(_studyUid);
        PersistAllAsync(events, e =>
        {
            _committed = _committed.Apply(e);
            _unindexed.Add(e);
            if (--remaining == 0)
            {
                _metrics.StudyCommitPhase("journal", System.Diagnostics.Stopwatch.GetElapsedTime(started));
                Persisted(batch);
            }
        });
    }

    /// <summary>The batch is in the journal: project it (and anything the index missed) into the index, then answer.</summary>
    private void Persisted(IReadOnlyList<Pending> batch)
    {
        if ((_unindexed.Count == 0 && !_forceIndex) || _committed.Latest is null || _committed.Instances.IsEmpty)
        {
            // Nothing the index needs: no instance yet, nothing new, or every instance withdrawn (never indexed).
            if (_committed.Instances.IsEmpty) _unindexed.Clear();
            _forceIndex = false;
            _tracker.Projected(_studyUid);
            Reply(batch, null);
            _withdrawn.Clear();
            _busy = false;
            Flush();
            return;
        }
        var update = BuildUpdate();
        int count = _unindexed.Count;
        long seq = LastSequenceNr;
        long started = System.Diagnostics.Stopwatch.GetTimestamp();
        _index.CommitAsync(update, CancellationToken.None).ContinueWith(t =>
        {
            _metrics.StudyCommitPhase("index", System.Diagnostics.Stopwatch.GetElapsedTime(started));
            return t;
        }, TaskScheduler.Default).Unwrap().PipeTo(Self,
            success: result => new Indexed(batch, count, seq, result.Conflicts),
            failure: e => new IndexFailed(batch, e));
    }

    private StudyIndexUpdate BuildUpdate()
    {
        var instances = new Dictionary<string, StoredInstance>(StringComparer.Ordinal);
        var removed = new List<(string, string)>();
        var touchedSeries = new HashSet<string>(StringComparer.Ordinal);
        foreach (var e in _unindexed)
        {
            switch (e)
            {
                case InstanceStored stored:
                    instances[stored.Instance.Header.SopInstanceUid] = stored.Instance;
                    touchedSeries.Add(stored.Instance.Header.SeriesInstanceUid);
                    break;
                case InstanceWithdrawn w:
                    // Never indexed in this study (its claim failed); deleting its row is a no-op kept for indexes that an
                    // earlier version left with two owners of one SOP Instance UID.
                    instances.Remove(w.SopInstanceUid);
                    removed.Add((w.SeriesInstanceUid, w.SopInstanceUid));
                    touchedSeries.Add(w.SeriesInstanceUid);
                    break;
                case InstanceCompressed c:
                    instances[c.Instance.Header.SopInstanceUid] = c.Instance;
                    break;
                case InstanceMoved m:
                    instances[m.Instance.Header.SopInstanceUid] = m.Instance;
                    break;
                case InstanceReplaced r:
                    instances[r.Instance.Header.SopInstanceUid] = r.Instance;
                    touchedSeries.Add(r.Instance.Header.SeriesInstanceUid);
                    if (r.PreviousSeriesInstanceUid != r.Instance.Header.SeriesInstanceUid)
                    {
                        removed.Add((r.PreviousSeriesInstanceUid, r.Instance.Header.SopInstanceUid));
                        touchedSeries.Add(r.PreviousSeriesInstanceUid);
                    }
                    break;
            }
        }
        var s = _committed;
        var series = touchedSeries.Select(uid => s.Series.TryGetValue(uid, out var entry)
            ? new SeriesRow(uid, entry.Latest, entry.InstanceCount) : new SeriesRow(uid, null, 0)).ToList();
        var study = new StudyRow(_studyUid, s.Latest!, string.Join('\\', s.Modalities), s.Series.Count, s.Instances.Count, s.SizeBytes, s.Stable,
            s.LastReceived, s.StableDue(_settings.QuietPeriod), s.StableAt) { CompressionDue = _compression is null ? null : s.CompressionDue(_compression.Settings.Delay) };
        // Absolute per instance: each instance written lists its kept original (if any) as the state holds it now.
        var kept = instances.Keys.Select(sop => s.KeptOriginals.GetValueOrDefault(sop)).OfType<KeptBlob>().ToList();
        return new StudyIndexUpdate(study, series, instances.Values.ToList(), removed, LastSequenceNr) { KeptBlobs = kept };
    }

    private void Reply(IReadOnlyList<Pending> batch, string? failure)
    {
        foreach (var p in batch)
        {
            if (p.Summary)
            {
                p.ReplyTo!.Tell(failure is null
                    ? new StudySummary(_studyUid, _committed.Series.Count, _committed.Instances.Count, _committed.SizeBytes, _committed.Stable,
                        _committed.StableDue(_settings.QuietPeriod), _committed.StableAt, LastSequenceNr) { Node = ((ExtendedActorSystem)Context.System).Provider.DefaultAddress.ToString() }
                    : new Status.Failure(new InvalidOperationException(failure)));
                continue;
            }
            if (p.Answer is { } answer)
            {
                p.ReplyTo?.Tell(failure is null ? answer : p.AnswerOnFailure!(failure));
                continue;
            }
            if (p.ReplyTo is null || p.SopInstanceUid is null) continue;
            // A rejection stands whatever happened to the rest of the batch; everything else is acknowledged only by a commit.
            var result = p.Outcome != StoreOutcome.Rejected && _withdrawn.TryGetValue(p.SopInstanceUid, out var withdrawn)
                ? new StoreInstanceResult(p.SopInstanceUid, StoreOutcome.Rejected, withdrawn)
                : failure is null || p.Outcome == StoreOutcome.Rejected
                ? new StoreInstanceResult(p.SopInstanceUid, p.Outcome, p.Reason, p.ObsoleteBlob, p.ArchivedSha256)
                : new StoreInstanceResult(p.SopInstanceUid, StoreOutcome.Failed, failure);
            p.ReplyTo.Tell(result);
        }
    }

    protected override void OnPersistFailure(Exception cause, object @event, long sequenceNr)
    {
        // The journal write failed or timed out: whether it landed is unknown. Nothing is acknowledged; the actor stops
        // (the base class does) and the next message recovers it from what the journal really holds.
        Reply(_inFlight, $"the journal write failed: {cause.Message}");
        Reply(_pending, $"the journal write failed: {cause.Message}");
        _pending.Clear();
        base.OnPersistFailure(cause, @event, sequenceNr);
    }

    protected override void OnPersistRejected(Exception cause, object @event, long sequenceNr)
    {
        Reply(_inFlight, $"the journal rejected the batch: {cause.Message}");
        Reply(_pending, $"the journal rejected the batch: {cause.Message}");
        _pending.Clear();
        Context.Stop(Self);
    }

    protected override void OnRecoveryFailure(Exception reason, object? message = null)
    {
        _log.Error(reason, "study {0}: recovery failed", _studyUid);
        base.OnRecoveryFailure(reason, message);
    }
}
