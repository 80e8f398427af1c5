using AkkaVna.Core.Ingest;
using AkkaVna.Core.Model;
using AkkaVna.Core.Studies;

namespace AkkaVna.Core.Ports;

/// <summary>
/// The index port: query-first tables, each keyed by what it is looked up by, so that a wide-column store (Cassandra) maps
/// onto it one table to one table —
/// <list type="bullet">
/// <item><c>studies</c> by Study Instance UID (patient and study attributes, computed counts, stable state, journal watermark);</item>
/// <item><c>patient_studies</c> by (Patient ID, Issuer of Patient ID) → studies;</item>
/// <item><c>date_studies</c> by month of Study Date → studies;</item>
/// <item><c>series</c> by study → series; <c>instances</c> by (study, series) → instances (blob key, size, SHA-256);</item>
/// <item><c>instance_locations</c> by SOP Instance UID → (study, series);</item>
/// <item><c>stability_timers</c> by due time → open studies.</item>
/// </list>
/// The index is a projection of the study journal: each study row carries the journal sequence number it reflects
/// (the watermark), and a study actor re-projects the events past it when it recovers.
/// </summary>
public interface IArchiveIndex : IAsyncDisposable
{
    /// <summary>Creates the tables when they are missing.</summary>
    Task InitializeAsync(CancellationToken cancellationToken);

    /// <summary>The lifecycle's records (holds, due times, approvals, tombstones, audit) in the same database.</summary>
    ILifecycleStore Lifecycle { get; }

    /// <summary>
    /// Applies one study's changes in one transaction (adapters may group several studies into one transaction), unless one
    /// of its instances has a SOP Instance UID that <c>instance_locations</c> gives to another study: a SOP Instance UID
    /// belongs to one study, and the first commit to claim it keeps it. Then nothing of the update is applied and the
    /// conflicts come back (the study actor withdraws those instances and commits again).
    /// </summary>
    Task<IndexCommitResult> CommitAsync(StudyIndexUpdate update, CancellationToken cancellationToken);

    /// <summary>
    /// Makes every commit so far durable and records <paramref name="node"/>'s projection checkpoint: every journal write
    /// that node's study actors made before <paramref name="checkpoint"/> is reflected by the index on disk. Each node
    /// keeps its own (it only knows its own writes), and a checkpoint never moves back. An adapter whose commits are
    /// durable one by one only records it.
    /// </summary>
    Task MakeDurableAsync(string node, DateTimeOffset checkpoint, CancellationToken cancellationToken);

    /// <summary>
    /// Where a starting node catches up from: the earliest checkpoint of any node (another node's unprojected writes
    /// included); the beginning of time for a new index (the whole journal is re-projected, and again after a crash until
    /// the catch-up is recorded); null for an index written before checkpoints existed.
    /// </summary>
    Task<DateTimeOffset?> GetProjectionCheckpointAsync(CancellationToken cancellationToken);

    /// <summary>
    /// Records a finished catch-up: everything journaled before <paramref name="caughtUpTo"/> is in the index, durably.
    /// The checkpoints below it that no running node keeps any more — a new index's beginning, and those of nodes not
    /// heard from since <paramref name="silentSince"/> (crashed and not back) — are dropped, so they hold no later start back.
    /// </summary>
    Task RecordCatchUpAsync(DateTimeOffset caughtUpTo, DateTimeOffset silentSince, CancellationToken cancellationToken);

    /// <summary>The journal sequence number the study's rows reflect (0 when the study is not indexed).</summary>
    Task<long> GetWatermarkAsync(string studyInstanceUid, CancellationToken cancellationToken);

    Task<StudyRecord?> GetStudyAsync(string studyInstanceUid, CancellationToken cancellationToken);

    Task<IReadOnlyList<SeriesRecord>> GetSeriesAsync(string studyInstanceUid, CancellationToken cancellationToken);

    /// <summary>The instances of a study, or of every study when <paramref name="studyInstanceUid"/> is null (in key order).</summary>
    IAsyncEnumerable<IndexedInstance> ListInstancesAsync(string? studyInstanceUid, CancellationToken cancellationToken);

    /// <summary>
    /// Removes every row of a study from every table (study, patient and date partitions, series, instances and their
    /// locations, kept originals, stability and compression timers), in one durable transaction; idempotent.
    /// </summary>
    Task DeleteStudyAsync(string studyInstanceUid, CancellationToken cancellationToken);

    /// <summary>The kept originals of a study (or of every study when null), by study and SOP Instance UID.</summary>
    IAsyncEnumerable<KeptBlob> ListKeptBlobsAsync(string? studyInstanceUid, CancellationToken cancellationToken);

    Task<IndexedInstance?> FindInstanceAsync(string sopInstanceUid, CancellationToken cancellationToken);

    /// <summary>The studies of a patient; a null issuer means any issuer (the partition is by Patient ID, the issuer clusters).</summary>
    Task<IReadOnlyList<string>> StudiesOfPatientAsync(string patientId, string? issuerOfPatientId, CancellationToken cancellationToken);

    /// <summary>
    /// Every study, in Study Instance UID order, read a page at a time (a full scan: what a query with no partition key
    /// falls back to; in a wide-column store, a token-range scan).
    /// </summary>
    IAsyncEnumerable<StudyRecord> ScanStudiesAsync(CancellationToken cancellationToken);

    /// <summary>
    /// Every (Patient ID, Issuer of Patient ID, study) of <c>patient_studies</c> in that order, a page at a time: patient
    /// queries without a Patient ID stream patients from it instead of gathering every study first.
    /// </summary>
    IAsyncEnumerable<(string PatientId, string IssuerOfPatientId, string StudyInstanceUid)> ScanPatientStudiesAsync(CancellationToken cancellationToken);

    Task<IReadOnlyList<string>> StudiesInMonthAsync(string yyyymm, CancellationToken cancellationToken);

    /// <summary>Open studies whose quiet period ended at or before <paramref name="now"/>, earliest first.</summary>
    Task<IReadOnlyList<string>> DueForStabilityAsync(DateTimeOffset now, int limit, CancellationToken cancellationToken);

    /// <summary>Stable studies whose compression was due at or before <paramref name="now"/> and has not finished, earliest first.</summary>
    Task<IReadOnlyList<string>> DueForCompressionAsync(DateTimeOffset now, int limit, CancellationToken cancellationToken);

    Task<IndexCounts> CountAsync(CancellationToken cancellationToken);
}

public sealed record IndexCounts(long Studies, long Series, long Instances, long Bytes);

/// <summary>A SOP Instance UID of an update that the index gives to another study (<paramref name="StudyInstanceUid"/>).</summary>
public sealed record LocationConflict(string SopInstanceUid, string StudyInstanceUid);

/// <summary>The outcome of <see cref="IArchiveIndex.CommitAsync"/>: applied when <see cref="Conflicts"/> is empty, refused otherwise.</summary>
public sealed record IndexCommitResult(IReadOnlyList<LocationConflict> Conflicts)
{
    public static readonly IndexCommitResult Applied = new([]);
}

/// <summary>One study's changes: its row (absolute values, so applying an update twice is harmless), the series and instances it touched.</summary>
public sealed record StudyIndexUpdate(
    StudyRow Study,
    IReadOnlyList<SeriesRow> Series,
    IReadOnlyList<StoredInstance> Instances,
    IReadOnlyList<(string SeriesInstanceUid, string SopInstanceUid)> RemovedInstances,
    long JournalSequenceNr)
{
    /// <summary>
    /// The kept originals (<c>compression.keep-original</c>) of the instances in <see cref="Instances"/>: for each of those,
    /// exactly these (an instance listed with none keeps none). A removed instance's are removed with it.
    /// </summary>
    public IReadOnlyList<KeptBlob> KeptBlobs { get; init; } = [];
}

/// <summary>
/// A blob kept beside an instance's current one: its original, when compression keeps originals. Listed so that
/// verification counts it (present, of its size and checksum) and destruction removes it.
/// </summary>
public sealed record KeptBlob(string StudyInstanceUid, string SopInstanceUid, BlobRef Blob, long Size, string Sha256, string TransferSyntaxUid);

public sealed record StudyRow(
    string StudyInstanceUid,
    InstanceHeader Latest,
    string Modalities,
    int SeriesCount,
    int InstanceCount,
    long SizeBytes,
    bool Stable,
    DateTimeOffset? LastReceived,
    DateTimeOffset? StableDue,
    DateTimeOffset? StableAt)
{
    /// <summary>When the study's compression pass is due (null: no pass is due, or compression is off).</summary>
    public DateTimeOffset? CompressionDue { get; init; }
}

/// <summary>A series and its instance count; a count of 0 removes the series row.</summary>
public sealed record SeriesRow(string SeriesInstanceUid, InstanceHeader? Latest, int InstanceCount);

public sealed record StudyRecord(
    string StudyInstanceUid,
    string PatientId,
    string IssuerOfPatientId,
    string? PatientName,
    string? StudyDate,
    string? AccessionNumber,
    string Modalities,
    int SeriesCount,
    int InstanceCount,
    long SizeBytes,
    bool Stable,
    DateTimeOffset? StableDue,
    DateTimeOffset? StableAt,
    long JournalSequenceNr)
{
    public string? PatientBirthDate { get; init; }
    public string? PatientSex { get; init; }
    public string? StudyTime { get; init; }
    public string? StudyId { get; init; }
    public string? StudyDescription { get; init; }
    public string? ReferringPhysicianName { get; init; }
    /// <summary>The code values of the study's Procedure Code Sequence, backslash-separated.</summary>
    public string? ProcedureCodes { get; init; }
}

public sealed record SeriesRecord(string StudyInstanceUid, string SeriesInstanceUid, string? Modality, int? SeriesNumber, int InstanceCount)
{
    public string? SeriesDescription { get; init; }
    public string? BodyPartExamined { get; init; }
    public string? InstitutionName { get; init; }
    public string? SeriesDate { get; init; }
}

public sealed record IndexedInstance(
    string StudyInstanceUid,
    string SeriesInstanceUid,
    string SopInstanceUid,
    string SopClassUid,
    string TransferSyntaxUid,
    int? InstanceNumber,
    BlobRef Blob,
    long Size,
    string Sha256,
    DateTimeOffset ReceivedAt)
{
    public int? NumberOfFrames { get; init; }
    public int? Rows { get; init; }
    public int? Columns { get; init; }
    /// <summary>The AE title that sent the instance.</summary>
    public string? CallingAE { get; init; }
}
