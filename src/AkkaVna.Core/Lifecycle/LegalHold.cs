namespace AkkaVna.Core.Lifecycle;

/// <summary>What a legal hold covers: every study of a patient (ID and issuer), one study, or the studies of an accession number.</summary>
public enum HoldScope
{
    Patient,
    Study,
    Accession,
}

/// <summary>
/// A legal hold, its own object beside retention: while it is active, no study it covers is destroyed, whatever the
/// rules say (tiering goes on). Placed with a reason, by whom and when, optionally until a date; released (never deleted:
/// the record stays for the audit) by whom and when. Releasing a hold, or its end passing, re-plans what it covered.
/// </summary>
public sealed record LegalHold(string Id, HoldScope Scope, string Value, string? IssuerOfPatientId, string Reason, string PlacedBy, DateTimeOffset PlacedAt,
    DateTimeOffset? Until)
{
    public DateTimeOffset? ReleasedAt { get; init; }
    public string? ReleasedBy { get; init; }

    /// <summary>Whether the hold holds at <paramref name="now"/>: not released, and its end (if any) not reached.</summary>
    public bool IsActive(DateTimeOffset now) => ReleasedAt is null && (Until is null || now < Until);

    /// <summary>Whether the hold names this study (its patient, itself, or its accession number).</summary>
    public bool Covers(StudyFacts study) => Scope switch
    {
        HoldScope.Patient => study.PatientId == Value && (IssuerOfPatientId is null || study.IssuerOfPatientId == IssuerOfPatientId),
        HoldScope.Study => study.StudyInstanceUid == Value,
        HoldScope.Accession => study.AccessionNumber is { Length: > 0 } a && a == Value,
        _ => false,
    };
}
