using AkkaVna.Core.Lifecycle;

namespace AkkaVna.Core.Ports;

/// <summary>
/// The lifecycle's durable records, beside the index (in the same database): legal holds, the due-time table the
/// lifecycle watch scans (any node's, so timers fire after restarts, failovers and rebalances), the approval queue,
/// tombstones and the audit trail. Every write is durable when its task completes.
/// </summary>
public interface ILifecycleStore
{
    /// <summary>Records a new hold (its ID unique).</summary>
    Task PlaceHoldAsync(LegalHold hold, CancellationToken cancellationToken);

    /// <summary>Releases a hold: the hold as released (or as it was, when released before); null when no hold has this ID.</summary>
    Task<LegalHold?> ReleaseHoldAsync(string id, string releasedBy, DateTimeOffset at, CancellationToken cancellationToken);

    /// <summary>Every hold, released ones too when asked, oldest first.</summary>
    Task<IReadOnlyList<LegalHold>> ListHoldsAsync(bool includeReleased, CancellationToken cancellationToken);

    /// <summary>The holds (released or not) that name this patient, study or accession number.</summary>
    Task<IReadOnlyList<LegalHold>> HoldsNamingAsync(string patientId, string issuerOfPatientId, string studyInstanceUid, string? accessionNumber,
        CancellationToken cancellationToken);

    /// <summary>When the study's lifecycle is next due (null: never, the timer goes).</summary>
    Task ScheduleAsync(string studyInstanceUid, DateTimeOffset? due, CancellationToken cancellationToken);

    /// <summary>Sets many studies' due times in one durable transaction (a re-plan of the whole archive, a page at a time).</summary>
    Task ScheduleManyAsync(IReadOnlyList<(string StudyInstanceUid, DateTimeOffset Due)> timers, CancellationToken cancellationToken);

    /// <summary>The studies whose lifecycle timer is due at <paramref name="now"/>, earliest first.</summary>
    Task<IReadOnlyList<string>> DueForLifecycleAsync(DateTimeOffset now, int limit, CancellationToken cancellationToken);

    /// <summary>Puts a study in the approval queue (again: its rule and date are updated, an approval kept).</summary>
    Task QueueForApprovalAsync(PendingDestruction pending, CancellationToken cancellationToken);

    /// <summary>Approves a queued destruction: the entry as approved; null when the study is not in the queue.</summary>
    Task<PendingDestruction?> ApproveAsync(string studyInstanceUid, string approvedBy, DateTimeOffset at, CancellationToken cancellationToken);

    /// <summary>The queue entry of a study, if any.</summary>
    Task<PendingDestruction?> GetPendingAsync(string studyInstanceUid, CancellationToken cancellationToken);

    /// <summary>The approval queue, oldest first.</summary>
    Task<IReadOnlyList<PendingDestruction>> ListPendingAsync(CancellationToken cancellationToken);

    /// <summary>Removes a study from the queue (destroyed, or no longer due).</summary>
    Task DequeueAsync(string studyInstanceUid, CancellationToken cancellationToken);

    /// <summary>Writes a study's tombstone (begun or done), replacing the one it had.</summary>
    Task WriteTombstoneAsync(Tombstone tombstone, CancellationToken cancellationToken);

    Task<Tombstone?> GetTombstoneAsync(string studyInstanceUid, CancellationToken cancellationToken);

    /// <summary>Every tombstone, by study UID.</summary>
    IAsyncEnumerable<Tombstone> ListTombstonesAsync(CancellationToken cancellationToken);

    /// <summary>Removes a tombstone (a destroyed study accepted again as new, when the resend policy says so).</summary>
    Task DeleteTombstoneAsync(string studyInstanceUid, CancellationToken cancellationToken);

    /// <summary>A value the lifecycle keeps about itself (e.g. the fingerprint of the rules it last planned with); null when unset.</summary>
    Task<string?> GetStateAsync(string key, CancellationToken cancellationToken);

    Task SetStateAsync(string key, string value, CancellationToken cancellationToken);

    /// <summary>Appends an audit record; its sequence number.</summary>
    Task<long> AppendAuditAsync(AuditRecord record, CancellationToken cancellationToken);

    /// <summary>The audit records after <paramref name="afterSequence"/>, in order, at most <paramref name="limit"/>.</summary>
    Task<IReadOnlyList<AuditRecord>> ListAuditAsync(long afterSequence, int limit, CancellationToken cancellationToken);

    /// <summary>
    /// Stores a study's data key (wrapped by a master key) unless the study has one already; the study's key as stored
    /// (the one given, or the one another writer stored first).
    /// </summary>
    Task<WrappedStudyKey> PutStudyKeyAsync(WrappedStudyKey key, CancellationToken cancellationToken);

    /// <summary>A study's data key by its ID (as a blob names it); null when there is none (never made, or destroyed).</summary>
    Task<WrappedStudyKey?> GetStudyKeyAsync(string keyId, CancellationToken cancellationToken);

    /// <summary>The data key of a study (null when none).</summary>
    Task<WrappedStudyKey?> GetStudyKeyOfAsync(string studyInstanceUid, CancellationToken cancellationToken);

    /// <summary>Replaces a key's wrapping (master key rotation): only when it is still wrapped by <paramref name="previousMasterKeyId"/>.</summary>
    Task RewrapStudyKeyAsync(WrappedStudyKey key, string previousMasterKeyId, CancellationToken cancellationToken);

    /// <summary>Destroys a study's data key (crypto-shredding: every copy of its blobs, backups too, is unreadable after).</summary>
    Task DeleteStudyKeyAsync(string studyInstanceUid, CancellationToken cancellationToken);
}

/// <summary>A study's data key as stored: its ID, the master key that wraps it, and the wrapped bytes (AES-256-GCM: nonce, ciphertext, tag).</summary>
public sealed record WrappedStudyKey(string StudyInstanceUid, string KeyId, string MasterKeyId, byte[] Wrapped, DateTimeOffset CreatedAt);
