namespace AkkaVna.Core.Compression;

/// <summary>
/// One rule: which instances it selects (every attribute named must have one of its values; a value ending in
/// <c>*</c> matches by prefix; sizes in bytes) and the transfer syntax it compresses them to (null: left as they are).
/// </summary>
public sealed record CompressionRule(IReadOnlyDictionary<string, IReadOnlyList<string>> Match, string? TransferSyntaxUid, long MinSize = 0,
    long MaxSize = long.MaxValue)
{
    /// <summary>The attributes a rule may match on: what the index holds of an instance, its series and its study.</summary>
    public static readonly IReadOnlySet<string> Attributes = new HashSet<string>(StringComparer.Ordinal)
    {
        "Modality", "SOPClassUID", "TransferSyntaxUID", "BodyPartExamined", "SeriesDescription", "StudyDescription", "AccessionNumber",
        "PatientID", "IssuerOfPatientID",
    };

    public bool Matches(IReadOnlyDictionary<string, string?> attributes, long size) =>
        size >= MinSize && size <= MaxSize && Match.All(m => attributes.TryGetValue(m.Key, out var v) && v is not null && m.Value.Any(p => Like(v, p)));

    private static bool Like(string value, string pattern) =>
        pattern.EndsWith('*') ? value.StartsWith(pattern[..^1], StringComparison.Ordinal) : value == pattern;
}

/// <summary>
/// The compression rules, first match wins (config <c>akka-vna.compression.rules</c>). An instance no rule selects, or one
/// already in a compressed syntax, stays as it is: only native pixel data is compressed, and only losslessly.
/// </summary>
public sealed class CompressionRules(IReadOnlyList<CompressionRule> rules)
{
    public IReadOnlyList<CompressionRule> Rules { get; } = rules;

    /// <summary>The syntax the first matching rule names for an instance (null: none matches, or it says to leave it).</summary>
    public string? TargetFor(IReadOnlyDictionary<string, string?> attributes, long size) =>
        Rules.FirstOrDefault(r => r.Matches(attributes, size))?.TransferSyntaxUid;
}
