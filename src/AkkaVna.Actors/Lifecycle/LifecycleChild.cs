using Akka.Actor;
using Akka.Event;
using AkkaVna.Core.Lifecycle;
using AkkaVna.Core.Model;
using AkkaVna.Core.Ports;
using AkkaVna.Core.Studies;

namespace AkkaVna.Actors.Lifecycle;

/// <summary>What a study's lifecycle child works with: the index (and its lifecycle records), the blobs, the journal, the rules, the clock.</summary>
public sealed record LifecycleServices(IArchiveIndex Index, IBlobStore Blobs, IJournalStore Journal, LifecycleSettings Settings, TimeProvider Time)
{
    public IArchiveMetrics Metrics { get; init; } = NoMetrics.Instance;
}

// ---- between a study actor and its lifecycle child (local messages, never serialized) ----

/// <summary>Parent to child: look at the study's lifecycle now (it is stable or not; when it will be).</summary>
public sealed record EvaluateLifecycle(bool Stable, DateTimeOffset? StableDue);

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
    private sealed record Planned(string Outcome);
    private sealed record Failed(string What, Exception Cause, DestructionOrder? Order);
    private sealed record Retry(DestructionOrder Order);

    private readonly string _studyUid;
    private readonly LifecycleServices _services;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly CancellationTokenSource _stopping = new();
    private bool _busy;
    private TimeSpan _backoff = TimeSpan.FromSeconds(5);

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
            EvaluateAsync(e, parent).PipeTo(Self, success: outcome => new Planned(outcome), failure: ex => new Failed("planning", ex, null));
        });
        Receive<Planned>(p =>
        {
            _busy = false;
            // A destruction is counted where it ends (its parent may stop this child before this message arrives).
            if (p.Outcome is not ("destroyed" or "aborted")) _services.Metrics.Lifecycle(p.Outcome == "queued for approval" ? "queued" : "planned");
            _log.Debug("study {0}: lifecycle: {1}", _studyUid, p.Outcome);
        });
        Receive<DestructionOrder>(o =>
        {
            _busy = true;
            var parent = Context.Parent;
            DestroyAsync(o, parent).PipeTo(Self, success: destroyed => new Planned(destroyed ? "destroyed" : "aborted"), failure: ex => new Failed("destruction", ex, o));
        });
        Receive<Retry>(r => Self.Tell(r.Order with { Resume = true }));
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

    private async Task<string> EvaluateAsync(EvaluateLifecycle e, IActorRef parent)
    {
        var ct = _stopping.Token;
        var s = _services.Settings;
        var now = _services.Time.GetUtcNow();
        var facts = await LifecycleFacts.ReadAsync(_services.Index, _studyUid, s.MatchedAttributes, ct).ConfigureAwait(false);
        if (facts is null)
        {
            await Store.ScheduleAsync(_studyUid, null, ct).ConfigureAwait(false);
            return "not in the index";
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
                return "due, not stable yet";
            }
            if (s.RequireApproval && pending?.ApprovedBy is null)
            {
                if (pending is null)
                {
                    await Store.QueueForApprovalAsync(new PendingDestruction(_studyUid, plan.Rule!, plan.DestroyAt!.Value, now), ct).ConfigureAwait(false);
                    _log.Info("study {0}: due for destruction by rule {1} since {2:O}; queued for approval", _studyUid, plan.Rule, plan.DestroyAt);
                }
                await Store.ScheduleAsync(_studyUid, null, ct).ConfigureAwait(false); // the approval wakes it
                return "queued for approval";
            }
            parent.Tell(new DestroyStudy(plan.Rule!, pending?.ApprovedBy));
            return "destruction asked";
        }
        if (pending is not null) await Store.DequeueAsync(_studyUid, ct).ConfigureAwait(false); // no longer due (a rule changed, a hold)
        var next = plan.NextDue(now, BlobRef.PrimaryStore, BlobRef.PrimaryStore);
        if (plan.Held && plan.DestroyAt is { } d && d <= now) next = now + s.HoldRecheck; // a hold on an accession is released unseen
        await Store.ScheduleAsync(_studyUid, next, ct).ConfigureAwait(false);
        return plan.Rule is null ? "no rule" : $"rule {plan.Rule}: next {next?.ToString("O") ?? "never"}{(plan.Held ? ", held" : "")}";
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
        var done = t with { State = TombstoneState.Destroyed, DestroyedAt = _services.Time.GetUtcNow(), Blobs = [] };
        await Store.WriteTombstoneAsync(done, ct).ConfigureAwait(false);
        await Store.AppendAuditAsync(new AuditRecord(done.DestroyedAt!.Value, "study-destroyed", _studyUid, o.PatientId, t.ApprovedBy ?? "lifecycle", "success",
            $"rule {t.Rule}: {t.Instances} instance(s), {t.Bytes} bytes, {t.Blobs.Count} blob(s) removed; journal purged; approved by {t.ApprovedBy ?? "(no approval required)"}"),
            ct).ConfigureAwait(false);
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
        base.PostStop();
    }
}
