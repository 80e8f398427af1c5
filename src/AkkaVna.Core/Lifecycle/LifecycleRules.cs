namespace AkkaVna.Core.Lifecycle;

/// <summary>Where a rule's retention period starts.</summary>
public enum RetentionAnchor
{
    /// <summary>The study's Study Date (the day it was acquired); the day it was received when it has none.</summary>
    StudyDate,
    /// <summary>When the archive received the study's last instance.</summary>
    Received,
    /// <summary>The latest Study Date (or receipt) among all the patient's studies: "twenty years after the last visit".</summary>
    LastStudyOfPatient,
}

/// <summary>A move of a study's blobs to another store once a period has passed since the anchor (e.g. after 2y to <c>cold</c>).</summary>
public sealed record TierStep(RetentionPeriod After, string Store);

/// <summary>
/// One lifecycle rule (config <c>akka-vna.lifecycle.rules</c>), first match wins. <paramref name="Match"/>: every attribute
/// named must have one of its values in the study (a value ending in <c>*</c> matches by prefix); a study holds many
/// values of the per-instance and per-series attributes (Modality, SOPClassUID, BodyPartExamined, InstitutionName,
/// CallingAETitle) and of the study's procedure codes (ProcedureCode: the Code Values of Procedure Code Sequence), and
/// matches when any of them does. <paramref name="PatientAgeBelow"/> / <paramref name="PatientAgeAtLeast"/> bound the
/// patient's age on the study date. <paramref name="Keep"/> null keeps the study for ever (its tier steps still apply);
/// <paramref name="UntilPatientAge"/> is a floor: never destroyed before the patient reaches that age.
/// </summary>
public sealed record LifecycleRule(
    string Name,
    IReadOnlyDictionary<string, IReadOnlyList<string>> Match,
    RetentionPeriod? Keep,
    RetentionAnchor From,
    RetentionPeriod? UntilPatientAge,
    IReadOnlyList<TierStep> Tiers)
{
    public RetentionPeriod? PatientAgeBelow { get; init; }
    public RetentionPeriod? PatientAgeAtLeast { get; init; }

    /// <summary>The attributes a rule may match on: what the index and the study's instances say of a study.</summary>
    public static readonly IReadOnlySet<string> Attributes = new HashSet<string>(StringComparer.Ordinal)
    {
        "Modality", "SOPClassUID", "BodyPartExamined", "CallingAETitle", "InstitutionName", "StudyDescription", "AccessionNumber",
        "PatientID", "IssuerOfPatientID", "ReferringPhysicianName", "ProcedureCode",
    };

    public bool Matches(StudyFacts facts)
    {
        foreach (var (attribute, patterns) in Match)
        {
            if (!facts.Attributes.TryGetValue(attribute, out var values) || !values.Any(v => patterns.Any(p => Like(v, p)))) return false;
        }
        if (PatientAgeBelow is not null || PatientAgeAtLeast is not null)
        {
            if (facts.PatientBirthDate is not { } birth || facts.StudyDate is not { } date) return false; // an age that cannot be known matches no age bound
            if (PatientAgeBelow is { } below && !(below.After(birth) is { } reached && date < reached)) return false;
            if (PatientAgeAtLeast is { } atLeast && !(atLeast.After(birth) is { } reached2 && date >= reached2)) return false;
        }
        return true;
    }

    private static bool Like(string value, string pattern) =>
        pattern.EndsWith('*') ? value.StartsWith(pattern[..^1], StringComparison.Ordinal) : value == pattern;
}

/// <summary>What the lifecycle rules look at of one study (dates in UTC; a DICOM date is its day's start).</summary>
public sealed record StudyFacts(
    string StudyInstanceUid,
    string PatientId,
    string IssuerOfPatientId,
    string? AccessionNumber,
    DateTimeOffset? PatientBirthDate,
    DateTimeOffset? StudyDate,
    DateTimeOffset LastReceived,
    DateTimeOffset? LastStudyOfPatient,
    IReadOnlyDictionary<string, IReadOnlySet<string>> Attributes)
{
    /// <summary>A DICOM DA value (YYYYMMDD) as its day's start in UTC; null when it is not a valid date.</summary>
    public static DateTimeOffset? Date(string? da) =>
        da is { Length: >= 8 } && DateTime.TryParseExact(da[..8], "yyyyMMdd", System.Globalization.CultureInfo.InvariantCulture,
            System.Globalization.DateTimeStyles.AssumeUniversal | System.Globalization.DateTimeStyles.AdjustToUniversal, out var d)
            ? new DateTimeOffset(d, TimeSpan.Zero) : null;
}
