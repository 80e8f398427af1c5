namespace AkkaVna.Core.Lifecycle;

/// <summary>A study due for destruction that waits for an operator's approval (<c>lifecycle.destruction.require-approval</c>).</summary>
public sealed record PendingDestruction(string StudyInstanceUid, string Rule, DateTimeOffset DueAt, DateTimeOffset QueuedAt)
{
    public string? ApprovedBy { get; init; }
    public DateTimeOffset? ApprovedAt { get; init; }
}

/// <summary>Where a destruction stands: begun (blobs and rows may remain; it completes after a restart) or done.</summary>
public enum TombstoneState
{
    Destroying,
    Destroyed,
}

/// <summary>
/// What remains of a destroyed study: its UID, the rule, counts and the checksums of what was destroyed, when, and who
/// approved it — nothing of the patient. While <see cref="TombstoneState.Destroying"/>, it also lists the blobs to remove
/// (so a destruction cut short completes even once the index rows are gone); the list goes when it is done.
/// </summary>
public sealed record Tombstone(string StudyInstanceUid, string Rule, TombstoneState State, int Series, int Instances, long Bytes,
    IReadOnlyList<string> Checksums, DateTimeOffset StartedAt, DateTimeOffset? DestroyedAt, string? ApprovedBy)
{
    public IReadOnlyList<Model.BlobRef> Blobs { get; init; } = [];
}

/// <summary>
/// One audit record (the archive's own trail; the security work sends them on as IHE ATNA messages): what happened, to
/// which study and patient, by whom, with what outcome.
/// </summary>
public sealed record AuditRecord(DateTimeOffset At, string Action, string? StudyInstanceUid, string? PatientId, string Actor, string Outcome, string Detail)
{
    /// <summary>The record's position in the trail (assigned when appended).</summary>
    public long Sequence { get; init; }
}
