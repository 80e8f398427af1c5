using AkkaVna.Core.Model;
using AkkaVna.Core.Ports;

namespace AkkaVna.Core.Lifecycle;

/// <summary>What happens to an instance of a study that was destroyed (<c>lifecycle.destruction.resend</c>).</summary>
public enum DestroyedResend
{
    /// <summary>Refused with a reason (the default): a destroyed study does not come back by accident.</summary>
    Refuse,
    /// <summary>Accepted as a new study: its tombstone goes (the audit record stays).</summary>
    AcceptAsNew,
}

/// <summary>
/// The lifecycle (config <c>akka-vna.lifecycle</c>): whether it runs, its rules (first match wins), how often the watch
/// looks for due studies, how often a held study is looked at again, whether destruction waits for an operator's
/// approval, and what a resend of a destroyed study gets.
/// </summary>
public sealed record LifecycleSettings(bool Enabled, IReadOnlyList<LifecycleRule> Rules, TimeSpan Poll, TimeSpan HoldRecheck, bool RequireApproval,
    DestroyedResend Resend)
{
    /// <summary>Tier moves' pace on a node, bytes per second (<c>lifecycle.move-rate</c>); 0: unlimited.</summary>
    public long MoveBytesPerSecond { get; init; }

    public static readonly LifecycleSettings Disabled = new(false, [], TimeSpan.FromMinutes(1), TimeSpan.FromHours(1), true, DestroyedResend.Refuse);

    /// <summary>What the rules say, as one text: a change of it re-plans every study (<see cref="LifecycleReplan"/>).</summary>
    public string RulesFingerprint => string.Join('\n', Rules.Select(r => string.Join('|', r.Name,
        string.Join(';', r.Match.OrderBy(m => m.Key, StringComparer.Ordinal).Select(m => m.Key + "=" + string.Join(',', m.Value))),
        r.Keep?.ToString() ?? "-", r.From, r.UntilPatientAge?.ToString() ?? "-", r.PatientAgeBelow?.ToString() ?? "-", r.PatientAgeAtLeast?.ToString() ?? "-",
        string.Join(';', r.Tiers.Select(t => t.After + ">" + t.Store)))));

    /// <summary>
    /// What the facts reader must fetch: the attributes some rule matches on, and <see cref="ReceivedFact"/> when a rule is
    /// anchored at the receipt (the study's instances are read for it).
    /// </summary>
    public IReadOnlySet<string> MatchedAttributes => Rules.SelectMany(r => r.Match.Keys)
        .Concat(Rules.Any(r => r.From == RetentionAnchor.Received) ? [ReceivedFact] : []).ToHashSet(StringComparer.Ordinal);

    /// <summary>The pseudo-attribute that asks the facts reader for when the study's last instance was received.</summary>
    public const string ReceivedFact = "(received)";
}

/// <summary>Reads a study's <see cref="StudyFacts"/> from the index: the study row, and its series and instances only when a rule needs them.</summary>
public static class LifecycleFacts
{
    public static async Task<StudyFacts?> ReadAsync(IArchiveIndex index, string studyInstanceUid, IReadOnlySet<string> needed, CancellationToken cancellationToken)
    {
        var study = await index.GetStudyAsync(studyInstanceUid, cancellationToken).ConfigureAwait(false);
        if (study is null) return null;
        var attributes = new Dictionary<string, IReadOnlySet<string>>(StringComparer.Ordinal)
        {
            ["Modality"] = study.Modalities.Split('\\', StringSplitOptions.RemoveEmptyEntries).ToHashSet(StringComparer.Ordinal),
            ["PatientID"] = new HashSet<string> { study.PatientId },
            ["IssuerOfPatientID"] = new HashSet<string> { study.IssuerOfPatientId },
        };
        void One(string name, string? value) => attributes[name] = value is { Length: > 0 } ? new HashSet<string> { value } : new HashSet<string>();
        One("AccessionNumber", study.AccessionNumber);
        One("StudyDescription", study.StudyDescription);
        One("ReferringPhysicianName", study.ReferringPhysicianName);
        attributes["ProcedureCode"] = (study.ProcedureCodes ?? "").Split('\\', StringSplitOptions.RemoveEmptyEntries).ToHashSet(StringComparer.Ordinal);
        if (needed.Contains("BodyPartExamined") || needed.Contains("InstitutionName"))
        {
            var series = await index.GetSeriesAsync(studyInstanceUid, cancellationToken).ConfigureAwait(false);
            attributes["BodyPartExamined"] = series.Select(s => s.BodyPartExamined).OfType<string>().Where(v => v.Length > 0).ToHashSet(StringComparer.Ordinal);
            attributes["InstitutionName"] = series.Select(s => s.InstitutionName).OfType<string>().Where(v => v.Length > 0).ToHashSet(StringComparer.Ordinal);
        }
        DateTimeOffset lastReceived = DateTimeOffset.MinValue;
        if (needed.Contains("SOPClassUID") || needed.Contains("CallingAETitle") || needed.Contains(LifecycleSettings.ReceivedFact) || study.StudyDate is null)
        {
            var classes = new HashSet<string>(StringComparer.Ordinal);
            var callers = new HashSet<string>(StringComparer.Ordinal);
            await foreach (var i in index.ListInstancesAsync(studyInstanceUid, cancellationToken).ConfigureAwait(false))
            {
                classes.Add(i.SopClassUid);
                if (i.CallingAE is { Length: > 0 } ae) callers.Add(ae);
                if (i.ReceivedAt > lastReceived) lastReceived = i.ReceivedAt;
            }
            attributes["SOPClassUID"] = classes;
            attributes["CallingAETitle"] = callers;
        }
        var studyDate = StudyFacts.Date(study.StudyDate);
        if (lastReceived == DateTimeOffset.MinValue) lastReceived = study.StableAt ?? studyDate ?? DateTimeOffset.UnixEpoch;
        DateTimeOffset? lastOfPatient = null;
        foreach (var other in await index.StudiesOfPatientAsync(study.PatientId, study.IssuerOfPatientId, cancellationToken).ConfigureAwait(false))
        {
            var row = other == studyInstanceUid ? study : await index.GetStudyAsync(other, cancellationToken).ConfigureAwait(false);
            if (row is null) continue;
            var date = StudyFacts.Date(row.StudyDate) ?? row.StableAt;
            if (date is { } d && (lastOfPatient is null || d > lastOfPatient)) lastOfPatient = d;
        }
        return new StudyFacts(study.StudyInstanceUid, study.PatientId, study.IssuerOfPatientId, study.AccessionNumber, StudyFacts.Date(study.PatientBirthDate),
            studyDate, lastReceived, lastOfPatient, attributes);
    }
}

/// <summary>
/// A change of the rules re-plans every study: at a node's start, when the rules differ from those the lifecycle last
/// planned with, each study is planned here, from the index (no study actor is woken for it), and its due time written,
/// a page of 1,000 a transaction: only the studies whose time has come are woken by the watch, and their children plan
/// them again before acting. A study the new rules never make due keeps the timer it had, which its child clears when
/// it fires. Then the new rules are recorded.
/// </summary>
public static class LifecycleReplan
{
    private const string Key = "rules";

    public static async Task<long> RunAsync(IArchiveIndex index, LifecycleSettings settings, DateTimeOffset now, CancellationToken cancellationToken)
    {
        var store = index.Lifecycle;
        string fingerprint = settings.RulesFingerprint;
        if (await store.GetStateAsync(Key, cancellationToken).ConfigureAwait(false) == fingerprint) return 0;
        long studies = 0;
        var page = new List<(string, DateTimeOffset)>(1000);
        var holds = await store.ListHoldsAsync(includeReleased: false, cancellationToken).ConfigureAwait(false);
        var needed = settings.MatchedAttributes;
        await foreach (var study in index.ScanStudiesAsync(cancellationToken).ConfigureAwait(false))
        {
            studies++;
            if (await LifecycleFacts.ReadAsync(index, study.StudyInstanceUid, needed, cancellationToken).ConfigureAwait(false) is not { } facts) continue;
            var plan = LifecyclePlanner.Plan(facts, settings.Rules, holds, now);
            var due = plan.DestroyDue(now) ? now
                : plan.Held && plan.DestroyAt is { } d && d <= now ? now + settings.HoldRecheck
                : plan.NextDue(now, BlobRef.PrimaryStore, BlobRef.PrimaryStore);
            if (due is { } at) page.Add((study.StudyInstanceUid, at));
            if (page.Count < 1000) continue;
            await store.ScheduleManyAsync(page, cancellationToken).ConfigureAwait(false);
            page.Clear();
        }
        await store.ScheduleManyAsync(page, cancellationToken).ConfigureAwait(false);
        await store.SetStateAsync(Key, fingerprint, cancellationToken).ConfigureAwait(false);
        return studies;
    }
}
