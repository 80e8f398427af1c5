using Akka.Actor;
using Akka.Event;
using System.Security.Cryptography;
using AkkaVna.Actors.Compression;
using AkkaVna.Core.Blobs;
using AkkaVna.Core.Lifecycle;
using AkkaVna.Core.Model;
using AkkaVna.Core.Ports;
using AkkaVna.Core.Studies;

namespace AkkaVna.Actors.Lifecycle;

/// <summary>What a study's lifecycle child works with: the index (and its lifecycle records), the blobs, the journal, the rules, the clock.</summary>
public sealed record LifecycleServices(IArchiveIndex Index, IBlobStore Blobs, IJournalStore Journal, LifecycleSettings Settings, TimeProvider Time)
{
    public IArchiveMetrics Metrics { get; init; } = NoMetrics.Instance;

    /// <summary>The node's pace for tier moves (shared by every study's child).</summary>
    public MoveThrottle Throttle { get; init; } = MoveThrottle.Unlimited;

    /// <summary>The audit trail a destruction is reported to (DICOM Study Deleted).</summary>
    public AkkaVna.Core.Audit.IAuditTrail Audit { get; init; } = AkkaVna.Core.Audit.IAuditTrail.None;
}

// ---- between a study actor and its lifecycle child (local messages, never serialized) ----

/// <summary>Parent to child: look at the study's lifecycle now (it is stable or not; when it will be).</summary>
public sealed record EvaluateLifecycle(bool Stable, DateTimeOffset? StableDue)
{
    /// <summary>Replaced blobs (old copies of moved or compressed instances) not yet known to be deleted: deleted once their replacement is in place.</summary>
    public IReadOnlyList<BlobRef> Obsolete { get; init; } = [];
}

/// <summary>Child to parent: the study is to be destroyed by <paramref name="Rule"/> (approved by <paramref name="ApprovedBy"/>, when approval is required).</summary>
public sealed record DestroyStudy(string Rule, string? ApprovedBy);

/// <summary>
/// Parent to child: destroy, as the tombstone lists (every blob of the study, in every store), the parent refusing
/// everything else meanwhile; <paramref name="Resume"/>: a destruction begun before a crash (its tombstone is written).
/// </summary>
public sealed record DestructionOrder(Tombstone Tombstone, string? PatientId, string? IssuerOfPatientId, string? AccessionNumber, bool Resume);

/// <summary>Child to parent: the destruction did not happen (a hold appeared), the study goes on.</summary>
public sealed record DestructionAborted(string Reason);

/// <summary>Child to parent: the study is destroyed (journal, index rows, blobs), and this is its tombstone.</summary>
public sealed record StudyDestroyed(Tombstone Tombstone);

/// <summary>Child to parent: copies of these instances are staged in their new store, checked against their checksums and made durable; record the moves.</summary>
public sealed record MoveReady(IReadOnlyList<InstanceMoved> Moves);

/// <summary>
/// Parent to child: the moves of <paramref name="Committed"/> (SOP Instance UIDs) are in the journal and the index; the
/// others were stale (the instance changed meanwhile: nothing was written for them). <paramref name="Failure"/>: the
/// commit failed and its outcome is unknown (staged copies are left for recovery, which asks the index).
/// </summary>
public sealed record MoveRecorded(IReadOnlySet<string> Committed, string? Failure);

/// <summary>
/// A study's lifecycle child. When asked (the watch, a change, an approval, a release) it reads the study's facts and
/// the holds naming it, plans with the rules (<see cref="LifecyclePlanner"/>) and keeps the study's due time in the
/// index; when destruction is due it queues the study for approval (when required) or asks its parent to destroy it.
/// Destruction, once the parent has stopped everything else: the tombstone (listing every blob) is written first, the
/// holds looked at once more, then the journal is purged, the index rows and the blobs removed, and the tombstone and
/// an audit record completed. Every step is idempotent: a destruction cut short finishes when the study wakes again.
/// </summary>
public sealed class LifecycleChild : ReceiveActor, IWithTimers
{
    private sealed record Planned(string Outcome, MovePlan? Move = null);
    /// <summary>An instance whose blob (or kept original) is not in the store the plan names.</summary>
    private sealed record MoveCandidate(IndexedInstance Row, KeptBlob? Kept);
    private sealed record MovePlan(string Target, string? Rule, IReadOnlyList<MoveCandidate> Candidates);
    /// <summary>One instance's copies staged in the target store, and the event that records them.</summary>
    private sealed record StagedMove(InstanceMoved Event, IBlobWriter Writer, IBlobWriter? KeptWriter, string? KeptSha256, long Bytes);
    private sealed record Copied(IReadOnlyList<StagedMove> Staged, int Failed);
    private sealed record BatchDone(int Moved, long Bytes, int Failed, IReadOnlyList<BlobRef> Deleted);
    private sealed record MoveFailed(Exception Cause);
    /// <summary>A move under way: what is left, the batch waiting for its commit, and the counts so far.</summary>
    private sealed class MoveRun(MovePlan plan)
    {
        public MovePlan Plan { get; } = plan;
        public Queue<MoveCandidate> Left { get; } = new(plan.Candidates);
        public IReadOnlyList<StagedMove>? Awaiting { get; set; }
        public int Moved { get; set; }
        public int Failed { get; set; }
        public long Bytes { get; set; }
    }
    private const int MoveBatch = 32;
    private sealed record Failed(string What, Exception Cause, DestructionOrder? Order);
    private sealed record Retry(DestructionOrder Order);

    private readonly string _studyUid;
    private readonly LifecycleServices _services;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly CancellationTokenSource _stopping = new();
    private bool _busy;
    private TimeSpan _backoff = TimeSpan.FromSeconds(5);
    private MoveRun? _move;

    public ITimerScheduler Timers { get; set; } = null!;

    public LifecycleChild(string studyInstanceUid, LifecycleServices services)
    {
        _studyUid = studyInstanceUid;
        _services = services;
        Receive<EvaluateLifecycle>(e =>
        {
            if (_busy) return; // a look is under way; the watch asks again while due
            _busy = true;
            var parent = Context.Parent;
            EvaluateAsync(e, parent).PipeTo(Self, success: planned => planned, failure: ex => new Failed("planning", ex, null));
        });
        Receive<Planned>(p =>
        {
            if (p.Move is { } move)
            {
                _log.Info("study {0}: lifecycle: {1}", _studyUid, p.Outcome);
                _move = new MoveRun(move);
                NextBatch();
                return;
            }
            _busy = false;
            // A destruction is counted where it ends (its parent may stop this child before this message arrives).
            if (p.Outcome is not ("destroyed" or "aborted" or "moved" or "move incomplete")) _services.Metrics.Lifecycle(p.Outcome == "queued for approval" ? "queued" : "planned");
            _log.Debug("study {0}: lifecycle: {1}", _studyUid, p.Outcome);
        });
        Receive<DestructionOrder>(o =>
        {
            _busy = true;
            var parent = Context.Parent;
            DestroyAsync(o, parent).PipeTo(Self, success: destroyed => new Planned(destroyed ? "destroyed" : "aborted"), failure: ex => new Failed("destruction", ex, o));
        });
        Receive<Retry>(r => Self.Tell(r.Order with { Resume = true }));
        Receive<Copied>(OnCopied);
        Receive<MoveRecorded>(_ => _move?.Awaiting is not null, OnMoveRecorded);
        Receive<BatchDone>(d =>
        {
            var run = _move!;
            run.Moved += d.Moved;
            run.Bytes += d.Bytes;
            run.Failed += d.Failed;
            if (d.Deleted.Count > 0) Context.Parent.Tell(new ObsoleteDeleted(d.Deleted));
            NextBatch();
        });
        Receive<MoveFailed>(f =>
        {
            var run = _move!;
            _move = null;
            _busy = false;
            _services.Metrics.Lifecycle("failed");
            _log.Warning("study {0}: move to store {1} stopped after {2} instance(s) ({3}); the watch asks again", _studyUid, run.Plan.Target, run.Moved,
                f.Cause.Message);
        });
        Receive<DeleteObsolete>(d => InstanceBlobs.DeleteIfReplacedAsync(_services.Blobs, _services.Index, d.Blobs, _stopping.Token)
            .PipeTo(Context.Parent, success: deleted => new ObsoleteDeleted(deleted), failure: e =>
            {
                _log.Warning("study {0}: replaced blobs not deleted now ({1}); the study's next start tries again", _studyUid, e.Message);
                return new ObsoleteDeleted([]);
            }));
        Receive<Failed>(f =>
        {
            _busy = false;
            _services.Metrics.Lifecycle("failed");
            if (f.Order is { } order)
            {
                // The tombstone is written: the study stays closed and the destruction is tried again until it completes.
                _log.Error(f.Cause, "study {0}: destruction not finished ({1}); trying again in {2}", _studyUid, f.Cause.Message, _backoff);
                Timers.StartSingleTimer("retry", new Retry(order), _backoff);
                _backoff = TimeSpan.FromTicks(Math.Min(_backoff.Ticks * 2, TimeSpan.FromMinutes(10).Ticks));
            }
            else _log.Warning("study {0}: lifecycle {1} failed ({2}); the watch asks again", _studyUid, f.What, f.Cause.Message);
        });
    }

    public static Props Props(string studyInstanceUid, LifecycleServices services) => Akka.Actor.Props.Create(() => new LifecycleChild(studyInstanceUid, services));

    private ILifecycleStore Store => _services.Index.Lifecycle;

    private async Task<Planned> EvaluateAsync(EvaluateLifecycle e, IActorRef parent)
    {
        var ct = _stopping.Token;
        var s = _services.Settings;
        var now = _services.Time.GetUtcNow();
        // No move is under way (this child is not busy): old copies whose replacement is in place go now (after a crash
        // that cut a move short, or a compression); one whose replacement is not yet in place has the study looked at again.
        bool obsoleteLeft = false;
        if (e.Obsolete.Count > 0)
        {
            var deleted = await InstanceBlobs.DeleteIfReplacedAsync(_services.Blobs, _services.Index, e.Obsolete, ct).ConfigureAwait(false);
            if (deleted.Count > 0) parent.Tell(new ObsoleteDeleted(deleted));
            obsoleteLeft = deleted.Count < e.Obsolete.Count;
        }
        var facts = await LifecycleFacts.ReadAsync(_services.Index, _studyUid, s.MatchedAttributes, ct).ConfigureAwait(false);
        if (facts is null)
        {
            await Store.ScheduleAsync(_studyUid, null, ct).ConfigureAwait(false);
            return new Planned("not in the index");
        }
        var holds = await Store.HoldsNamingAsync(facts.PatientId, facts.IssuerOfPatientId, _studyUid, facts.AccessionNumber, ct).ConfigureAwait(false);
        var plan = LifecyclePlanner.Plan(facts, s.Rules, holds, now);
        var pending = await Store.GetPendingAsync(_studyUid, ct).ConfigureAwait(false);
        if (plan.DestroyDue(now))
        {
            if (!e.Stable)
            {
                // Still receiving: looked at again once it is stable.
                await Store.ScheduleAsync(_studyUid, e.StableDue ?? now + s.HoldRecheck, ct).ConfigureAwait(false);
                return new Planned("due, not stable yet");
            }
            if (s.RequireApproval && pending?.ApprovedBy is null)
            {
                if (pending is null)
                {
                    await Store.QueueForApprovalAsync(new PendingDestruction(_studyUid, plan.Rule!, plan.DestroyAt!.Value, now), ct).ConfigureAwait(false);
                    _log.Info("study {0}: due for destruction by rule {1} since {2:O}; queued for approval", _studyUid, plan.Rule, plan.DestroyAt);
                }
                await Store.ScheduleAsync(_studyUid, null, ct).ConfigureAwait(false); // the approval wakes it
                return new Planned("queued for approval");
            }
            parent.Tell(new DestroyStudy(plan.Rule!, pending?.ApprovedBy));
            return new Planned("destruction asked");
        }
        if (pending is not null) await Store.DequeueAsync(_studyUid, ct).ConfigureAwait(false); // no longer due (a rule changed, a hold)
        // The store the plan puts the study in now: its blobs that are elsewhere move there (back to the primary, too, when a rule changed).
        string target = plan.StoreAt(now, BlobRef.PrimaryStore);
        var candidates = await MoveCandidatesAsync(target, ct).ConfigureAwait(false);
        if (candidates.Count > 0)
        {
            if (!e.Stable)
            {
                await Store.ScheduleAsync(_studyUid, e.StableDue ?? now + s.HoldRecheck, ct).ConfigureAwait(false);
                return new Planned("move due, not stable yet");
            }
            InstanceBlobs.Store(_services.Blobs, target); // a store this node does not have fails the look here, before anything is copied
            // Due again a little later: if the move is cut short (a crash, a failover), the watch wakes the study to finish it.
            await Store.ScheduleAsync(_studyUid, now + s.HoldRecheck, ct).ConfigureAwait(false);
            return new Planned($"rule {plan.Rule ?? "(none)"}: moving {candidates.Count} instance(s) to store {target}", new MovePlan(target, plan.Rule, candidates));
        }
        var next = plan.NextDue(now, target, BlobRef.PrimaryStore);
        if (plan.Held && plan.DestroyAt is { } d && d <= now) next = now + s.HoldRecheck; // a hold on an accession is released unseen
        if (obsoleteLeft && (next is null || next > now + s.HoldRecheck)) next = now + s.HoldRecheck;
        await Store.ScheduleAsync(_studyUid, next, ct).ConfigureAwait(false);
        return new Planned(plan.Rule is null ? "no rule" : $"rule {plan.Rule}: next {next?.ToString("O") ?? "never"}{(plan.Held ? ", held" : "")}");
    }

    /// <summary>The study's instances whose blob, or kept original, is not in <paramref name="target"/>.</summary>
    private async Task<IReadOnlyList<MoveCandidate>> MoveCandidatesAsync(string target, CancellationToken ct)
    {
        var kept = new Dictionary<string, KeptBlob>(StringComparer.Ordinal);
        await foreach (var k in _services.Index.ListKeptBlobsAsync(_studyUid, ct).ConfigureAwait(false)) kept[k.SopInstanceUid] = k;
        var list = new List<MoveCandidate>();
        await foreach (var i in _services.Index.ListInstancesAsync(_studyUid, ct).ConfigureAwait(false))
        {
            var k = kept.GetValueOrDefault(i.SopInstanceUid);
            if (i.Blob.Store != target || (k is not null && k.Blob.Store != target)) list.Add(new MoveCandidate(i, k));
        }
        return list;
    }

    /// <summary>Copies the next batch of the move (or ends it when nothing is left).</summary>
    private void NextBatch()
    {
        var run = _move!;
        if (run.Left.Count == 0)
        {
            _move = null;
            FinishMoveAsync(run, Context.Parent).PipeTo(Self, success: () => new Planned(run.Failed == 0 ? "moved" : "move incomplete"),
                failure: ex => new Failed("move", ex, null));
            return;
        }
        var batch = new List<MoveCandidate>();
        while (batch.Count < MoveBatch && run.Left.TryDequeue(out var c)) batch.Add(c);
        CopyBatchAsync(run.Plan.Target, batch).PipeTo(Self, success: copied => copied, failure: ex => new MoveFailed(ex));
    }

    /// <summary>The move is over: its audit record and metrics; the study is planned again (its next due time).</summary>
    private async Task FinishMoveAsync(MoveRun run, IActorRef parent)
    {
        var now = _services.Time.GetUtcNow();
        await Store.AppendAuditAsync(new AuditRecord(now, "study-moved", _studyUid, null, "lifecycle", run.Failed == 0 ? "success" : "partial",
            $"rule {run.Plan.Rule ?? "(none)"}: {run.Moved} instance(s), {run.Bytes} bytes to store {run.Plan.Target}, each copy checked against its SHA-256 before the old one was deleted"
            + (run.Failed > 0 ? $"; {run.Failed} not moved (see the log), tried again later" : "")), _stopping.Token).ConfigureAwait(false);
        _services.Metrics.Lifecycle(run.Failed == 0 ? "moved" : "failed", run.Bytes);
        _log.Info("study {0}: {1} instance(s) ({2} bytes) moved to store {3}{4}", _studyUid, run.Moved, run.Bytes, run.Plan.Target,
            run.Failed > 0 ? $"; {run.Failed} failed, tried again later" : "");
        parent.Tell(new CheckLifecycle(_studyUid)); // planned again: the next due time
    }

    /// <summary>Stages a checked copy of each candidate's blob (and kept original) in the target store; an instance that cannot be copied is left where it is.</summary>
    private async Task<Copied> CopyBatchAsync(string targetName, IReadOnlyList<MoveCandidate> batch)
    {
        var ct = _stopping.Token;
        var target = InstanceBlobs.Store(_services.Blobs, targetName);
        var staged = new List<StagedMove>();
        int failed = 0;
        foreach (var c in batch)
        {
            IBlobWriter? writer = null, keptWriter = null;
            try
            {
                var row = c.Row;
                BlobRef to = row.Blob;
                InstanceHeader header;
                long bytes = 0;
                // One opening of the instance's blob: its header (for the index row) and, when it moves, its bytes.
                await using (var content = await _services.Blobs.OpenAsync(row.Blob, ct).ConfigureAwait(false))
                {
                    header = InstanceHeader.Read(content);
                    if (row.Blob.Store != targetName)
                    {
                        (writer, to) = await CopyAsync(content, row.Sha256, row.SeriesInstanceUid, row.SopInstanceUid, target, ct).ConfigureAwait(false);
                        bytes += row.Size;
                    }
                }
                BlobRef? keptTo = null;
                if (c.Kept is { } k && k.Blob.Store != targetName)
                {
                    await using var kept = await _services.Blobs.OpenAsync(k.Blob, ct).ConfigureAwait(false);
                    (keptWriter, var keptRef) = await CopyAsync(kept, k.Sha256, row.SeriesInstanceUid, row.SopInstanceUid, target, ct).ConfigureAwait(false);
                    keptTo = keptRef;
                    bytes += k.Size;
                }
                var instance = new StoredInstance(header, to, row.Size, row.Sha256, row.ReceivedAt, row.CallingAE ?? "");
                var moved = new InstanceMoved(instance, row.Blob) { KeptPreviousBlob = keptTo is null ? null : c.Kept!.Blob, KeptBlob = keptTo };
                // The writer of a blob already in place is a no-op stand-in (nothing staged for it).
                staged.Add(new StagedMove(moved, writer ?? NoWriter.Instance, keptWriter, keptTo is null ? null : c.Kept!.Sha256, bytes));
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                failed++;
                if (writer is not null) await writer.DisposeAsync().ConfigureAwait(false);
                if (keptWriter is not null) await keptWriter.DisposeAsync().ConfigureAwait(false);
                _log.Error("study {0}: {1} not moved to store {2}: {3}", _studyUid, c.Row.SopInstanceUid, targetName, e.Message);
            }
        }
        return new Copied(staged, failed);
    }

    /// <summary>Copies one open blob into a staged blob of <paramref name="target"/>, sealed (flushed) and prepared; its checksum must be the index's.</summary>
    private async Task<(IBlobWriter Writer, BlobRef To)> CopyAsync(IBlobContent content, string sha256, string series, string sop, IBlobStore target, CancellationToken ct)
    {
        var from = content.Blob;
        var writer = await target.CreateAsync(ct).ConfigureAwait(false);
        var buffer = System.Buffers.ArrayPool<byte>.Shared.Rent(256 * 1024);
        try
        {
            await _services.Throttle.WaitAsync(content.Length, ct).ConfigureAwait(false);
            await using (var stream = content.OpenRead())
            {
                int n;
                while ((n = await stream.ReadAsync(buffer, ct).ConfigureAwait(false)) > 0)
                    await writer.WriteAsync(buffer.AsMemory(0, n), ct).ConfigureAwait(false);
            }
            string copied = await writer.SealAsync(flushToDisk: true, ct).ConfigureAwait(false);
            if (copied != sha256)
                throw new IOException($"{from} reads with SHA-256 {copied[..16]}..., the index says {sha256[..Math.Min(16, sha256.Length)]}...: a damaged blob is never moved (verify --repair)");
            var to = target.RefFor(_studyUid, series, sop, from.Representation, copied);
            await writer.PrepareAsync(to, ct).ConfigureAwait(false);
            return (writer, to);
        }
        catch
        {
            await writer.DisposeAsync().ConfigureAwait(false);
            throw;
        }
        finally
        {
            System.Buffers.ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private void OnCopied(Copied copied)
    {
        var run = _move!;
        run.Failed += copied.Failed;
        if (copied.Staged.Count == 0)
        {
            NextBatch();
            return;
        }
        run.Awaiting = copied.Staged;
        Context.Parent.Tell(new MoveReady([.. copied.Staged.Select(m => m.Event)]));
    }

    private void OnMoveRecorded(MoveRecorded recorded)
    {
        var run = _move!;
        var staged = run.Awaiting!;
        run.Awaiting = null;
        if (recorded.Failure is { } failure)
        {
            // Whether the journal holds the moves is unknown: recovery promotes each staged copy the index names, discards the rest.
            foreach (var m in staged) Release(m, leave: true);
            Self.Tell(new MoveFailed(new IOException($"the moves were not recorded: {failure}")));
            return;
        }
        PromoteAndDeleteAsync(staged, recorded.Committed).PipeTo(Self, success: done => done, failure: ex => new MoveFailed(ex));
    }

    /// <summary>
    /// The committed copies are put in place and read back (their checksum again, from the store itself); only then are
    /// the old copies deleted. A stale move's copies are discarded.
    /// </summary>
    private async Task<BatchDone> PromoteAndDeleteAsync(IReadOnlyList<StagedMove> staged, IReadOnlySet<string> committed)
    {
        var ct = _stopping.Token;
        int moved = 0, failed = 0;
        long bytes = 0;
        var replaced = new List<BlobRef>();
        foreach (var m in staged)
        {
            var e = m.Event;
            if (!committed.Contains(e.Instance.Header.SopInstanceUid))
            {
                Release(m, leave: false);
                continue;
            }
            try
            {
                await PromoteAsync(m.Writer, e.Instance.Blob, e.PreviousBlob, ct).ConfigureAwait(false);
                if (m.KeptWriter is not null) await PromoteAsync(m.KeptWriter, e.KeptBlob!, e.KeptPreviousBlob!, ct).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                // Recorded, not in place: recovery promotes the staged copy (the index names it); the old copy stays until then.
                Release(m, leave: true);
                failed++;
                _log.Error("study {0}: {1} moved in the index, its copy not put in place yet ({2}); staged-blob recovery finishes it", _studyUid,
                    e.Instance.Header.SopInstanceUid, ex.Message);
                continue;
            }
            if (await ReadsBackAsync(e.Instance.Blob, e.Instance.Sha256, ct).ConfigureAwait(false)) replaced.Add(e.PreviousBlob);
            else failed++;
            if (e.KeptBlob is { } kept && m.KeptSha256 is { } keptSha && await ReadsBackAsync(kept, keptSha, ct).ConfigureAwait(false))
                replaced.Add(e.KeptPreviousBlob!);
            moved++;
            bytes += m.Bytes;
        }
        var deleted = await InstanceBlobs.DeleteIfReplacedAsync(_services.Blobs, _services.Index, replaced, ct).ConfigureAwait(false);
        return new BatchDone(moved, bytes, failed, deleted);
    }

    private static async Task PromoteAsync(IBlobWriter writer, BlobRef to, BlobRef from, CancellationToken ct)
    {
        if (to == from) return; // already in the target store: nothing was staged
        await writer.PromoteAsync(to, ct).ConfigureAwait(false);
        await writer.DisposeAsync().ConfigureAwait(false);
    }

    /// <summary>Whether the blob now in place reads back with its checksum; when not, the old copy is kept (and the error logged).</summary>
    private async Task<bool> ReadsBackAsync(BlobRef blob, string sha256, CancellationToken ct)
    {
        string read;
        await using (var content = await _services.Blobs.OpenAsync(blob, ct).ConfigureAwait(false))
        await using (var stream = content.OpenRead())
            read = Convert.ToHexStringLower(await SHA256.HashDataAsync(stream, ct).ConfigureAwait(false));
        if (read == sha256) return true;
        _log.Error("study {0}: the moved copy {1} reads back with SHA-256 {2}..., not {3}...: the old copy is kept (verify reports the instance; verify --repair restores it)",
            _studyUid, blob, read[..16], sha256[..Math.Min(16, sha256.Length)]);
        return false;
    }

    /// <summary>Lets go of a staged move's copies: left for recovery (its commit's outcome unknown) or discarded.</summary>
    private static void Release(StagedMove m, bool leave)
    {
        foreach (var w in new[] { m.Writer, m.KeptWriter }.OfType<IBlobWriter>())
        {
            if (leave) w.LeaveForRecovery();
            _ = w.DisposeAsync().AsTask();
        }
    }

    /// <summary>Stands in for the writer of a blob that is in the target store already.</summary>
    private sealed class NoWriter : IBlobWriter
    {
        public static readonly NoWriter Instance = new();
        public long Length => 0;
        public bool IsPrepared => false;
        public ValueTask WriteAsync(System.Buffers.ReadOnlySequence<byte> data, CancellationToken cancellationToken) => throw new NotSupportedException();
        public ValueTask WriteAsync(ReadOnlyMemory<byte> data, CancellationToken cancellationToken) => throw new NotSupportedException();
        public ValueTask<string> SealAsync(bool flushToDisk, CancellationToken cancellationToken) => throw new NotSupportedException();
        public ValueTask PrepareAsync(BlobRef blob, CancellationToken cancellationToken) => ValueTask.CompletedTask;
        public void KeepStagedUntil(DateTimeOffset deadline) { }
        public ValueTask PromoteAsync(BlobRef blob, CancellationToken cancellationToken) => ValueTask.CompletedTask;
        public void LeaveForRecovery() { }
        public ValueTask DisposeAsync() => ValueTask.CompletedTask;
    }

    /// <summary>Destroys the study as the order lists; false when a hold stopped it before anything was removed.</summary>
    private async Task<bool> DestroyAsync(DestructionOrder o, IActorRef parent)
    {
        var ct = _stopping.Token;
        var t = o.Tombstone;
        var now = _services.Time.GetUtcNow();
        if (!o.Resume)
        {
            await Store.WriteTombstoneAsync(t, ct).ConfigureAwait(false);
            // A hold placed since the plan wins, even now.
            var holds = await Store.HoldsNamingAsync(o.PatientId ?? "", o.IssuerOfPatientId ?? "", _studyUid, o.AccessionNumber, ct).ConfigureAwait(false);
            var facts = new StudyFacts(_studyUid, o.PatientId ?? "", o.IssuerOfPatientId ?? "", o.AccessionNumber, null, null, now, null,
                new Dictionary<string, IReadOnlySet<string>>());
            if (holds.FirstOrDefault(h => h.IsActive(now) && h.Covers(facts)) is { } hold)
            {
                await Store.DeleteTombstoneAsync(_studyUid, ct).ConfigureAwait(false);
                await Store.ScheduleAsync(_studyUid, now + _services.Settings.HoldRecheck, ct).ConfigureAwait(false);
                _services.Metrics.Lifecycle("aborted");
                parent.Tell(new DestructionAborted($"hold {hold.Id} ({hold.Reason}) was placed before the destruction began"));
                return false;
            }
            await Store.AppendAuditAsync(new AuditRecord(now, "study-destruction-begun", _studyUid, o.PatientId, t.ApprovedBy ?? "lifecycle", "success",
                $"rule {t.Rule}: {t.Instances} instance(s) in {t.Series} series, {t.Bytes} bytes, {t.Blobs.Count} blob(s)"), ct).ConfigureAwait(false);
        }
        else _log.Info("study {0}: finishing the destruction begun at {1:O} (rule {2})", _studyUid, t.StartedAt, t.Rule);
        // The journal first (nothing can re-project the study then), the index rows, then every blob the tombstone lists.
        await _services.Journal.PurgeAsync(StudyJournal.PersistenceIdFor(_studyUid), ct).ConfigureAwait(false);
        await _services.Index.DeleteStudyAsync(_studyUid, ct).ConfigureAwait(false);
        foreach (var blob in t.Blobs) await _services.Blobs.DeleteAsync(blob, ct).ConfigureAwait(false);
        // Crypto-shredding (encryption at rest): the study's data key goes, so no copy of its blobs anywhere can be read.
        await Store.DeleteStudyKeyAsync(_studyUid, ct).ConfigureAwait(false);
        var done = t with { State = TombstoneState.Destroyed, DestroyedAt = _services.Time.GetUtcNow(), Blobs = [] };
        await Store.WriteTombstoneAsync(done, ct).ConfigureAwait(false);
        await Store.AppendAuditAsync(new AuditRecord(done.DestroyedAt!.Value, "study-destroyed", _studyUid, o.PatientId, t.ApprovedBy ?? "lifecycle", "success",
            $"rule {t.Rule}: {t.Instances} instance(s), {t.Bytes} bytes, {t.Blobs.Count} blob(s) removed; journal purged; approved by {t.ApprovedBy ?? "(no approval required)"}"),
            ct).ConfigureAwait(false);
        _services.Audit.Record(new AkkaVna.Core.Audit.StudyDeleted(done.DestroyedAt.Value,
            new AkkaVna.Core.Audit.AuditParticipant(t.ApprovedBy ?? "lifecycle", null, null, IsRequestor: true),
            new AkkaVna.Core.Audit.AuditStudy(_studyUid, new Dictionary<string, int>()) { PatientId = o.PatientId },
            $"destroyed by lifecycle rule {t.Rule} ({t.Instances} instance(s)); approved by {t.ApprovedBy ?? "(no approval required)"}"));
        await Store.DequeueAsync(_studyUid, ct).ConfigureAwait(false);
        await Store.ScheduleAsync(_studyUid, null, ct).ConfigureAwait(false);
        _log.Info("study {0}: destroyed by rule {1} ({2} instance(s), {3} blob(s))", _studyUid, t.Rule, t.Instances, t.Blobs.Count);
        _services.Metrics.Lifecycle("destroyed", t.Bytes);
        parent.Tell(new StudyDestroyed(done));
        return true;
    }

    protected override void PostStop()
    {
        _stopping.Cancel();
        // Stopped with copies waiting for their commit: recovery asks the index whether they were recorded.
        if (_move?.Awaiting is { } awaiting)
            foreach (var m in awaiting) Release(m, leave: true);
        base.PostStop();
    }
}
