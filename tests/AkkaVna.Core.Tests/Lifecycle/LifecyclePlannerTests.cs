using AkkaVna.Core.Lifecycle;

namespace AkkaVna.Core.Tests.Lifecycle;

/// <summary>The lifecycle rules on a fake clock: periods and leap days, minors, "twenty years after the last visit", holds, tiers, rule changes.</summary>
public sealed class LifecyclePlannerTests
{
    private static DateTimeOffset D(int y, int m, int d, int h = 0) => new(y, m, d, h, 0, 0, TimeSpan.Zero);

    private static StudyFacts Study(string uid = "1.2.3", string? modality = "MG", DateTimeOffset? birth = null, DateTimeOffset? date = null,
        DateTimeOffset? lastOfPatient = null, string patient = "P1", string? accession = "ACC1", DateTimeOffset? received = null) =>
        new(uid, patient, "HOSP", accession, birth, date, received ?? date ?? D(2020, 1, 1), lastOfPatient,
            new Dictionary<string, IReadOnlySet<string>> { ["Modality"] = modality is null ? new HashSet<string>() : new HashSet<string> { modality }, ["CallingAETitle"] = new HashSet<string> { "GW1" } });

    private static LifecycleRule Rule(string name, string keep, RetentionAnchor from = RetentionAnchor.StudyDate, string? untilAge = null,
        Dictionary<string, IReadOnlyList<string>>? match = null, params TierStep[] tiers) =>
        new(name, match ?? [], keep == "" ? null : RetentionPeriod.Parse(keep), from, untilAge is null ? null : RetentionPeriod.Parse(untilAge), tiers);

    /// <summary>France's rule for a hospital's records: 20 years after the last visit, and for a minor at least until the 28th birthday.</summary>
    private static readonly LifecycleRule French = Rule("france-20y-after-last-visit", "20y", RetentionAnchor.LastStudyOfPatient, "28y");

    [Theory]
    [InlineData("20y", 2004, 2, 29, 2024, 2, 29)] // a leap day to a leap day
    [InlineData("1y", 2004, 2, 29, 2005, 3, 1)]   // no 29 February in 2005: the day after the 28th, never the 28th
    [InlineData("10y", 2012, 2, 29, 2022, 3, 1)]
    [InlineData("1mo", 2023, 1, 31, 2023, 3, 1)]  // no 31 February
    [InlineData("1mo", 2024, 1, 31, 2024, 3, 1)]  // nor a 31st in a leap February
    [InlineData("1y6mo", 2020, 8, 31, 2022, 3, 1)]
    [InlineData("30d", 2024, 2, 1, 2024, 3, 2)]   // days are days: 2024 has a 29 February
    public void Calendar_periods_never_end_before_the_exact_anniversary(string period, int y, int m, int d, int ey, int em, int ed)
    {
        Assert.Equal(D(ey, em, ed), RetentionPeriod.Parse(period).After(D(y, m, d)));
    }

    [Fact]
    public void Periods_parse_every_unit_and_refuse_what_is_not_one()
    {
        Assert.Equal(D(2020, 1, 1) + TimeSpan.FromSeconds(90), RetentionPeriod.Parse("90s").After(D(2020, 1, 1)));
        Assert.Equal(D(2020, 1, 2, 3) + TimeSpan.FromMinutes(4), RetentionPeriod.Parse("1d 3h 4m").After(D(2020, 1, 1)));
        Assert.Equal("1y6mo2d", RetentionPeriod.Parse("1y6mo2d").ToString());
        foreach (var bad in new[] { "", "20", "y", "20 years", "-1y", "1.5y", "2000000y" })
            Assert.Throws<FormatException>(() => RetentionPeriod.Parse(bad));
        Assert.Null(RetentionPeriod.Parse("900y").After(DateTimeOffset.MaxValue.AddYears(-100)));
    }

    [Fact]
    public void An_adult_is_kept_twenty_years_after_the_last_study_of_the_patient()
    {
        var now = D(2026, 12, 3);
        var plan = LifecyclePlanner.Plan(Study(birth: D(1960, 5, 1), date: D(2005, 6, 1), lastOfPatient: D(2005, 6, 1)), [French], [], now);
        Assert.Equal("france-20y-after-last-visit", plan.Rule);
        Assert.Equal(D(2025, 6, 1), plan.DestroyAt);
        Assert.True(plan.DestroyDue(now));
        // The same patient came back in 2015: every study of theirs is kept until 2035.
        var later = LifecyclePlanner.Plan(Study(birth: D(1960, 5, 1), date: D(2005, 6, 1), lastOfPatient: D(2015, 9, 30)), [French], [], now);
        Assert.Equal(D(2035, 9, 30), later.DestroyAt);
        Assert.False(later.DestroyDue(now));
        Assert.Equal(D(2035, 9, 30), later.NextDue(now, "primary", "primary"));
    }

    [Fact]
    public void A_minor_is_kept_at_least_until_the_28th_birthday_and_an_unknown_birth_date_keeps_the_study()
    {
        var now = D(2026, 12, 3);
        // Born 29 February 2000, seen once at one year old: 20 years after (2021) is before the 28th birthday, which
        // 2028 (a leap year) has on the 29th.
        var plan = LifecyclePlanner.Plan(Study(birth: D(2000, 2, 29), date: D(2001, 3, 10)), [French], [], now);
        Assert.Equal(D(2028, 2, 29), plan.DestroyAt);
        // Born 29 February 2004: the first birthday falls in a common year, so the floor is 1 March 2005, not 28 February.
        var common = LifecyclePlanner.Plan(Study(birth: D(2004, 2, 29), date: D(2004, 3, 1)), [Rule("minors", "1y", untilAge: "1y")], [], now);
        Assert.Equal(D(2005, 3, 1), common.DestroyAt);
        // An adult at the study: the 28th birthday passed long before; the 20 years decide.
        Assert.Equal(D(2025, 1, 1), LifecyclePlanner.Plan(Study(birth: D(1970, 1, 1), date: D(2005, 1, 1)), [French], [], now).DestroyAt);
        // No birth date: the floor cannot be known, so the study is kept and the plan says why.
        var unknown = LifecyclePlanner.Plan(Study(birth: null, date: D(2001, 3, 10)), [French], [], now);
        Assert.Null(unknown.DestroyAt);
        Assert.Contains("birth date is unknown", unknown.Note, StringComparison.Ordinal);
        Assert.Null(unknown.NextDue(now, "primary", "primary"));
    }

    [Fact]
    public void An_active_hold_stops_destruction_until_it_is_released_or_ends_and_only_what_it_covers()
    {
        var now = D(2026, 12, 3);
        var study = Study(date: D(2000, 1, 1), birth: D(1950, 1, 1));
        var rules = new[] { Rule("mg-10y", "10y") };
        var patientHold = new LegalHold("h1", HoldScope.Patient, "P1", "HOSP", "litigation 2026-114", "dpo@hospital", D(2026, 1, 1), null);
        var held = LifecyclePlanner.Plan(study, rules, [patientHold], now);
        Assert.Equal(D(2010, 1, 1), held.DestroyAt);
        Assert.True(held.Held);
        Assert.False(held.DestroyDue(now));
        Assert.Null(held.NextDue(now, "primary", "primary")); // held without end: only a release re-plans
        // Released: due at once.
        var released = LifecyclePlanner.Plan(study, rules, [patientHold with { ReleasedAt = now.AddDays(-1), ReleasedBy = "dpo@hospital" }], now);
        Assert.True(released.DestroyDue(now));
        // A hold with an end: due again when it ends.
        var until = patientHold with { Until = D(2027, 6, 1) };
        Assert.Equal(D(2027, 6, 1), LifecyclePlanner.Plan(study, rules, [until], now).NextDue(now, "primary", "primary"));
        Assert.True(LifecyclePlanner.Plan(study, rules, [until], D(2027, 6, 1)).DestroyDue(D(2027, 6, 1)));
        // Holds on another patient (or the same ID from another issuer), another study or accession do not cover it.
        var others = new[]
        {
            patientHold with { Value = "P2" }, patientHold with { IssuerOfPatientId = "OTHER" },
            new LegalHold("h2", HoldScope.Study, "9.9.9", null, "r", "x", now, null), new LegalHold("h3", HoldScope.Accession, "ACC2", null, "r", "x", now, null),
        };
        Assert.True(LifecyclePlanner.Plan(study, rules, others, now).DestroyDue(now));
        // One on the study itself, or on its accession number, does.
        Assert.True(LifecyclePlanner.Plan(study, rules, [others[2] with { Value = "1.2.3" }], now).Held);
        Assert.True(LifecyclePlanner.Plan(study, rules, [others[3] with { Value = "ACC1" }], now).Held);
    }

    [Fact]
    public void Tier_steps_move_a_study_at_their_time_and_a_rule_without_keep_keeps_it_for_ever()
    {
        var rules = new[] { Rule("ct-cold-after-2y", "", tiers: [new TierStep(RetentionPeriod.Parse("2y"), "cold"), new TierStep(RetentionPeriod.Parse("6mo"), "warm")]) };
        var study = Study(modality: "CT", date: D(2024, 2, 29));
        var plan = LifecyclePlanner.Plan(study, rules, [], D(2024, 3, 1));
        Assert.Equal([new PlannedTier(D(2024, 8, 29), "warm"), new PlannedTier(D(2026, 3, 1), "cold")], plan.Tiers);
        Assert.Null(plan.DestroyAt);
        Assert.Contains("for ever", plan.Note, StringComparison.Ordinal);
        Assert.Equal("primary", plan.StoreAt(D(2024, 8, 28), "primary"));
        Assert.Equal("warm", plan.StoreAt(D(2025, 1, 1), "primary"));
        Assert.Equal("cold", plan.StoreAt(D(2026, 3, 1), "primary"));
        Assert.Equal(D(2024, 8, 29), plan.NextDue(D(2024, 3, 1), "primary", "primary"));
        // A move that is due and not done is due now; once done, the next step is.
        Assert.Equal(D(2025, 1, 1), plan.NextDue(D(2025, 1, 1), "primary", "primary"));
        Assert.Equal(D(2026, 3, 1), plan.NextDue(D(2025, 1, 1), "warm", "primary"));
        Assert.Null(plan.NextDue(D(2026, 3, 2), "cold", "primary"));
    }

    [Fact]
    public void First_match_wins_a_rule_change_replans_and_a_study_no_rule_matches_stays()
    {
        var now = D(2026, 12, 3);
        var mg = new Dictionary<string, IReadOnlyList<string>> { ["Modality"] = ["MG"] };
        var study = Study(modality: "MG", date: D(2015, 1, 1), birth: D(1960, 1, 1));
        var before = new[] { Rule("mg-10y", "10y", match: mg), Rule("all-20y", "20y") };
        Assert.Equal(("mg-10y", D(2025, 1, 1)), (LifecyclePlanner.Plan(study, before, [], now).Rule, LifecyclePlanner.Plan(study, before, [], now).DestroyAt));
        // The rules change: the same study, re-planned, follows the new first match.
        var after = new[] { Rule("mg-15y", "15y", match: mg), Rule("mg-10y", "10y", match: mg) };
        Assert.Equal(("mg-15y", D(2030, 1, 1)), (LifecyclePlanner.Plan(study, after, [], now).Rule, LifecyclePlanner.Plan(study, after, [], now).DestroyAt));
        // A CT study under MG-only rules: no rule, kept, never due.
        var ct = LifecyclePlanner.Plan(Study(modality: "CT", date: D(1990, 1, 1)), [Rule("mg-10y", "10y", match: mg)], [], now);
        Assert.Null(ct.Rule);
        Assert.Null(ct.DestroyAt);
        Assert.Null(ct.NextDue(now, "primary", "primary"));
        // Prefix match, and attributes with several values (any one matches).
        var byAe = new Dictionary<string, IReadOnlyList<string>> { ["CallingAETitle"] = ["GW*"] };
        Assert.Equal("gw", LifecyclePlanner.Plan(study, [Rule("gw", "1y", match: byAe)], [], now).Rule);
        // Received, not acquired: a study without a Study Date is anchored at its receipt.
        var undated = LifecyclePlanner.Plan(Study(date: null, received: D(2020, 5, 5)), [Rule("r", "1y")], [], now);
        Assert.Equal(D(2021, 5, 5), undated.DestroyAt);
    }

    [Fact]
    public void Patient_age_bounds_select_minors_and_adults_on_the_study_date()
    {
        var now = D(2026, 12, 3);
        var minors = Rule("minors", "30y") with { PatientAgeBelow = RetentionPeriod.Parse("18y") };
        var adults = Rule("adults", "20y") with { PatientAgeAtLeast = RetentionPeriod.Parse("18y") };
        LifecycleRule[] rules = [minors, adults];
        Assert.Equal("minors", LifecyclePlanner.Plan(Study(birth: D(2008, 3, 1), date: D(2026, 2, 28)), rules, [], now).Rule); // 17 the day before
        Assert.Equal("adults", LifecyclePlanner.Plan(Study(birth: D(2008, 3, 1), date: D(2026, 3, 1)), rules, [], now).Rule);   // 18 on the day
        Assert.Null(LifecyclePlanner.Plan(Study(birth: null, date: D(2026, 3, 1)), rules, [], now).Rule); // no age, no age rule
    }
}
