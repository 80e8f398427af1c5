using AkkaVna.Core.Ingest;
using AkkaVna.Core.Model;
using AkkaVna.Core.Ports;

namespace AkkaVna.Core.Studies;

/// <summary>Every message for a study actor names its study: the sharding key.</summary>
public interface IWithStudyInstanceUid
{
    string StudyInstanceUid { get; }
}

/// <summary>Marks the messages and events that <see cref="StudySerializer"/> writes (stable manifests, no CLR names).</summary>
public interface IStudyProtocol;

/// <summary>
/// An instance that is archived (its blob staged on the receiving node): a reference and the indexed attributes — never
/// blob bytes, because the study actor may live on another node. <paramref name="Sha256"/> is the checksum of the blob's
/// bytes (what verification and recovery compare); <see cref="ContentSha256"/> that of the data set's content (what
/// decides whether a resend is the same instance, whoever sends it and in whichever uncompressed syntax; see
/// <see cref="AkkaVna.Dicom.IO.DatasetInspector"/>). Instances journaled before it existed have none.
/// </summary>
public sealed record StoredInstance(InstanceHeader Header, BlobRef Blob, long Size, string Sha256, DateTimeOffset ReceivedAt, string CallingAE)
{
    public string? ContentSha256 { get; init; }
}

// ---- commands ----

/// <summary>Archive this instance in its study; the actor answers <see cref="StoreInstanceResult"/> once it is committed.</summary>
public sealed record StoreInstance(StoredInstance Instance) : IWithStudyInstanceUid, IStudyProtocol
{
    public string StudyInstanceUid => Instance.Header.StudyInstanceUid;

    /// <summary>
    /// When its sender stops waiting for the answer. A command that reaches the actor later (held in a shard's buffer
    /// while the study moved, or in the actor's stash while it recovered) is refused, never committed: its sender has
    /// left the blob to recovery by then, which may already have discarded it as never acknowledged. Null from an
    /// earlier build: no deadline.
    /// </summary>
    public DateTimeOffset? CommitBy { get; init; }
}

public enum StoreOutcome
{
    /// <summary>New: committed to the journal and the index; promote the blob.</summary>
    Stored = 0,
    /// <summary>A resend of the same content: already archived; the new blob is discarded (or promoted, if the first copy's is missing) and success answered.</summary>
    Duplicate = 1,
    /// <summary>Different content under an archived SOP Instance UID, replaced as the policy says: promote the blob.</summary>
    Replaced = 2,
    /// <summary>Different content under an archived SOP Instance UID, refused as the policy says: discard the blob.</summary>
    Rejected = 3,
    /// <summary>The commit failed or its outcome is unknown (journal or index): nothing is acknowledged; the staged blob is left to recovery, which asks the index.</summary>
    Failed = 4,
}

/// <summary>
/// The answer to <see cref="StoreInstance"/>. <paramref name="ObsoleteBlob"/>: a replaced instance's blob under another
/// reference, to delete once the new one is promoted. <paramref name="ArchivedSha256"/>: for a duplicate, the checksum of the
/// archived blob's bytes (a resend of the same content may differ in its bytes: only an identical copy may stand in for a
/// lost blob).
/// </summary>
public sealed record StoreInstanceResult(string SopInstanceUid, StoreOutcome Outcome, string? Reason = null, BlobRef? ObsoleteBlob = null,
    string? ArchivedSha256 = null) : IStudyProtocol;

/// <summary>From the stability watch: the study's quiet period may be over.</summary>
public sealed record CheckStability(string StudyInstanceUid) : IWithStudyInstanceUid, IStudyProtocol;

/// <summary>Asks a study actor for its state (answered with <see cref="StudySummary"/>).</summary>
public sealed record GetStudySummary(string StudyInstanceUid) : IWithStudyInstanceUid, IStudyProtocol;

public sealed record StudySummary(string StudyInstanceUid, int SeriesCount, int InstanceCount, long SizeBytes, bool Stable, DateTimeOffset? StableDue, DateTimeOffset? StableAt, long SequenceNr) : IStudyProtocol
{
    /// <summary>The address of the node whose study actor answered (where the study lives now).</summary>
    public string? Node { get; init; }
}

/// <summary>The hand-off message of the shard region: stops the actor after it has processed what it already received.</summary>
public sealed record StopStudy : IStudyProtocol
{
    public static readonly StopStudy Instance = new();
}

// ---- events (the journal; also the stream later features subscribe to) ----

public interface IStudyEvent : IStudyProtocol
{
    string StudyInstanceUid { get; }
}

/// <summary>A new instance joined the study.</summary>
public sealed record InstanceStored(StoredInstance Instance) : IStudyEvent
{
    public string StudyInstanceUid => Instance.Header.StudyInstanceUid;
}

/// <summary>An archived instance was replaced by different content under the same SOP Instance UID (overwrite policy).</summary>
public sealed record InstanceReplaced(StoredInstance Instance, string PreviousSha256, string PreviousSeriesInstanceUid, BlobRef PreviousBlob) : IStudyEvent
{
    public string StudyInstanceUid => Instance.Header.StudyInstanceUid;
}

/// <summary>The quiet period passed with no new instance: the study is complete ("stable").</summary>
public sealed record StudyStabilized(string StudyInstanceUid, DateTimeOffset At) : IStudyEvent;

/// <summary>
/// A journaled instance that the index refused because its SOP Instance UID is archived in another study (two studies
/// claimed it at once; the first commit wins). It leaves the study and its sender is answered 0111H with
/// <paramref name="Reason"/>; it was never acknowledged.
/// </summary>
public sealed record InstanceWithdrawn(string StudyInstanceUid, string SeriesInstanceUid, string SopInstanceUid, string Reason) : IStudyEvent;

/// <summary>An instance arrived for a stable study: it is open again.</summary>
public sealed record StudyReopened(string StudyInstanceUid, DateTimeOffset At) : IStudyEvent;

/// <summary>
/// An instance's blob was replaced by a losslessly compressed copy of it, decoded again and found pixel-identical before
/// this was recorded: <paramref name="Instance"/> is the instance as it is now (its new blob, size, checksum and transfer
/// syntax; its content checksum unchanged, so that a resend of the original is still the same instance). The previous
/// blob is deleted once the new one is in place (<see cref="OriginalsDeleted"/>), or kept beside it (<see cref="OriginalKept"/>).
/// </summary>
public sealed record InstanceCompressed(StoredInstance Instance, BlobRef PreviousBlob, string PreviousSha256, long PreviousSize, string PreviousTransferSyntaxUid)
    : IStudyEvent
{
    public string StudyInstanceUid => Instance.Header.StudyInstanceUid;

    /// <summary>The previous blob is kept beside the compressed one (<c>compression.keep-original</c>), not deleted.</summary>
    public bool OriginalKept { get; init; }
}

/// <summary>
/// A tier move (the lifecycle's): the instance's bytes were copied to another store, checked against their checksum and
/// made durable there before this was recorded. <paramref name="Instance"/> is the instance as it is now (the same
/// bytes, checksum and size; its blob in the new store). The blob it replaces (<paramref name="PreviousBlob"/>) is
/// deleted once the new one is in place (<see cref="OriginalsDeleted"/>). A kept original moves with its instance
/// (<see cref="KeptPreviousBlob"/> to <see cref="KeptBlob"/>).
/// </summary>
public sealed record InstanceMoved(StoredInstance Instance, BlobRef PreviousBlob) : IStudyEvent
{
    public string StudyInstanceUid => Instance.Header.StudyInstanceUid;

    /// <summary>The instance's kept original where it was (null: it has none, or it did not move).</summary>
    public BlobRef? KeptPreviousBlob { get; init; }

    /// <summary>The instance's kept original where it is now.</summary>
    public BlobRef? KeptBlob { get; init; }
}

/// <summary>
/// The compression child cannot compress this content exactly (bits a lossless codec would not keep, pixel data it
/// cannot read): the instance stays as it is, and is not tried again while its blob has checksum <paramref name="Sha256"/>.
/// </summary>
public sealed record InstanceCompressionRefused(string StudyInstanceUid, string SopInstanceUid, string Sha256, string Reason) : IStudyEvent;

/// <summary>Blobs that compressed copies replaced are gone from their store.</summary>
public sealed record OriginalsDeleted(string StudyInstanceUid, IReadOnlyList<BlobRef> Blobs) : IStudyEvent
{
    public bool Equals(OriginalsDeleted? other) => other is not null && StudyInstanceUid == other.StudyInstanceUid && Blobs.SequenceEqual(other.Blobs);

    public override int GetHashCode() => HashCode.Combine(StudyInstanceUid, Blobs.Count);
}

/// <summary>The study's compression pass found nothing left to do at <paramref name="At"/> (until the study changes again).</summary>
public sealed record StudyCompressed(string StudyInstanceUid, DateTimeOffset At) : IStudyEvent;

/// <summary>From the compression watch: the study's compression may be due (it was stable and not yet compressed).</summary>
public sealed record CheckCompression(string StudyInstanceUid) : IWithStudyInstanceUid, IStudyProtocol;

/// <summary>From the lifecycle watch (or an approval, or a released hold): the study's lifecycle may be due; its lifecycle child looks.</summary>
public sealed record CheckLifecycle(string StudyInstanceUid) : IWithStudyInstanceUid, IStudyProtocol;
