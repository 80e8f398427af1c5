namespace AkkaVna.Core.Lifecycle;

/// <summary>A study's tier step in time: from <paramref name="At"/> its blobs belong in <paramref name="Store"/>.</summary>
public sealed record PlannedTier(DateTimeOffset At, string Store);

/// <summary>
/// What the rules say of one study, computed by <see cref="LifecyclePlanner"/>: the rule that applies (null: none, the
/// study stays), when its blobs move to which store, when it may be destroyed (null: never, or not computable — see
/// <see cref="Note"/>), and the active holds that cover it (any one of them stops destruction).
/// </summary>
public sealed record LifecyclePlan(string StudyInstanceUid, string? Rule, DateTimeOffset? Anchor, IReadOnlyList<PlannedTier> Tiers, DateTimeOffset? DestroyAt,
    IReadOnlyList<LegalHold> Holds, string? Note)
{
    /// <summary>Whether the study is held at the time the plan was made.</summary>
    public bool Held => Holds.Count > 0;

    /// <summary>The store the study's blobs belong in at <paramref name="at"/>: the last tier step reached, else <paramref name="primary"/>.</summary>
    public string StoreAt(DateTimeOffset at, string primary) => Tiers.LastOrDefault(t => t.At <= at)?.Store ?? primary;

    /// <summary>Whether the study is to be destroyed at <paramref name="at"/>: past its date and under no hold.</summary>
    public bool DestroyDue(DateTimeOffset at) => DestroyAt is { } d && d <= at && !Held;

    /// <summary>
    /// When the study's lifecycle child must look at it next, given that its blobs are in <paramref name="currentStore"/>:
    /// now when a move or a destruction is due; else the next tier step, the destruction date, or a hold's end;
    /// null when nothing will ever be due (no rule, kept for ever, or held without end — a release re-plans).
    /// </summary>
    public DateTimeOffset? NextDue(DateTimeOffset now, string currentStore, string primary)
    {
        if (DestroyDue(now) || StoreAt(now, primary) != currentStore) return now;
        var candidates = new List<DateTimeOffset>();
        if (Tiers.FirstOrDefault(t => t.At > now) is { } next) candidates.Add(next.At);
        if (DestroyAt is { } d)
        {
            if (!Held) candidates.Add(d);
            else if (Holds.All(h => h.Until is not null)) candidates.Add(Max(d, Holds.Max(h => h.Until!.Value)));
        }
        return candidates.Count == 0 ? null : candidates.Min();
    }

    private static DateTimeOffset Max(DateTimeOffset a, DateTimeOffset b) => a > b ? a : b;
}

/// <summary>
/// The lifecycle rules as a pure function of a study's facts, the holds and the time (the clock is the caller's, so
/// the rules are tested on a fake one): first matching rule; its anchor (Study Date, receipt, or the patient's last
/// study); tier steps from the anchor; destruction at anchor + keep, never before the patient's
/// <c>until-patient-age</c> birthday (a study whose patient's birth date is unknown is then kept, and the plan says why).
/// </summary>
public static class LifecyclePlanner
{
    public static LifecyclePlan Plan(StudyFacts facts, IReadOnlyList<LifecycleRule> rules, IEnumerable<LegalHold> holds, DateTimeOffset now)
    {
        var active = holds.Where(h => h.IsActive(now) && h.Covers(facts)).ToList();
        var rule = rules.FirstOrDefault(r => r.Matches(facts));
        if (rule is null) return new LifecyclePlan(facts.StudyInstanceUid, null, null, [], null, active, "no rule matches: kept");
        var own = facts.StudyDate ?? facts.LastReceived;
        var anchor = rule.From switch
        {
            RetentionAnchor.Received => facts.LastReceived,
            RetentionAnchor.LastStudyOfPatient => facts.LastStudyOfPatient is { } last && last > own ? last : own,
            _ => own,
        };
        var tiers = rule.Tiers.Select(t => t.After.After(anchor) is { } at ? new PlannedTier(at, t.Store) : null).OfType<PlannedTier>().OrderBy(t => t.At).ToList();
        DateTimeOffset? destroyAt = null;
        string? note = null;
        if (rule.Keep is { } keep)
        {
            destroyAt = keep.After(anchor);
            if (rule.UntilPatientAge is { } age)
            {
                if (facts.PatientBirthDate is not { } birth)
                {
                    destroyAt = null;
                    note = $"kept: rule {rule.Name} keeps it until the patient is {age}, and the patient's birth date is unknown";
                }
                else if (age.After(birth) is { } floor && destroyAt is { } d && floor > d) destroyAt = floor;
            }
        }
        else note = $"kept for ever by rule {rule.Name}";
        return new LifecyclePlan(facts.StudyInstanceUid, rule.Name, anchor, tiers, destroyAt, active, note);
    }
}
