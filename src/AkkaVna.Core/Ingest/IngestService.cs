using System.Buffers;
using System.Diagnostics;
using AkkaVna.Dicom;
using AkkaVna.Dicom.Dictionary;
using AkkaVna.Dicom.IO;
using Microsoft.Extensions.Logging;
using AkkaVna.Core.Model;
using AkkaVna.Core.Ports;
using AkkaVna.Core.Studies;

namespace AkkaVna.Core.Ingest;

/// <summary>How the ingest path behaves (the <c>akka-vna.ingest</c> configuration).</summary>
public sealed record IngestSettings(bool FlushBlobs, TimeSpan CommitTimeout);

/// <summary>
/// One instance arriving, whatever the front door: what the sender claims it is (DIMSE: the C-STORE command and the
/// presentation context; STOW-RS: the part's File Meta) and who sent it (<paramref name="Source"/>: the calling AE title, or
/// the DICOMweb client; kept with the instance and written as the Source AE Title when it is one). <paramref name="Description"/>
/// names the connection in logs.
/// </summary>
public sealed record IngestRequest(string SopClassUid, string SopInstanceUid, DicomTransferSyntax TransferSyntax, string Source, string Description);

public enum IngestOutcome
{
    /// <summary>New: committed (journal and index) and its blob promoted.</summary>
    Stored,
    /// <summary>The same content was archived already: nothing changes.</summary>
    Duplicate,
    /// <summary>Different content replaced the archived instance (conflict policy: overwrite).</summary>
    Replaced,
    /// <summary>Not archived; <see cref="IngestResult.Refusal"/> says why.</summary>
    Refused,
}

/// <summary>Why an instance was refused, in the archive's terms; each front door maps it to its own (DIMSE statuses, STOW-RS failure reasons).</summary>
public enum IngestRefusal
{
    /// <summary>The data set is not whole, or lacks valid UIDs, or disagrees with what the sender claims (C000H).</summary>
    CannotUnderstand,
    /// <summary>The data set's SOP class is not the one claimed (A900H).</summary>
    SopClassMismatch,
    /// <summary>Different content under an archived SOP Instance UID, or one archived in another study (0111H).</summary>
    Conflict,
    /// <summary>The blob store could not write, or the commit did not complete in time: send it again (A700H).</summary>
    OutOfResources,
}

/// <summary>The answer for one instance: a success only once it is durable (journal, index and blob).</summary>
public sealed record IngestResult(IngestOutcome Outcome, IngestRefusal? Refusal = null, string? Reason = null)
{
    public bool IsArchived => Outcome != IngestOutcome.Refused;

    /// <summary>The instance's study and series, once its data set was read.</summary>
    public string? StudyInstanceUid { get; init; }
    public string? SeriesInstanceUid { get; init; }

    public static IngestResult Refused(IngestRefusal why, string reason) => new(IngestOutcome.Refused, why, reason);
}

/// <summary>Thrown by <see cref="IngestService.BeginAsync"/> when an instance is refused before its data set is read.</summary>
public sealed class IngestRefusedException(IngestRefusal refusal, string reason) : Exception(reason)
{
    public IngestRefusal Refusal { get; } = refusal;
}

/// <summary>One data set arriving: its bytes as they come (never whole in memory), then the answer.</summary>
public interface IIngestSink : IAsyncDisposable
{
    ValueTask WriteAsync(ReadOnlySequence<byte> data, CancellationToken cancellationToken);

    /// <summary>All bytes arrived: archive the instance (or not) and say so. Success means durable.</summary>
    ValueTask<IngestResult> CompleteAsync(CancellationToken cancellationToken);
}

/// <summary>
/// The ingest use case, the same for every front door (C-STORE, STOW-RS). Each data set streams into a staged blob on
/// this node as it arrives (never whole in memory), hashed on the way, and through a <see cref="DatasetInspector"/> that
/// proves it whole, keeps the indexed attributes and computes its content checksum — one pass over the bytes, no value
/// held. When it is complete the blob is flushed and a <see cref="StoreInstance"/> — a reference, checksums and the
/// attributes, no bytes — goes to the study's actor (<see cref="IStudyGateway"/>). The answer comes only after its
/// commit; a data set that is not whole is refused and leaves nothing behind.
/// </summary>
public sealed class IngestService(IBlobStore blobs, IArchiveIndex index, IStudyGateway studies, IngestSettings settings, IArchiveMetrics metrics,
    ILogger log, TimeProvider time)
{
    private readonly IBlobStore _blobs = blobs;
    private readonly IArchiveIndex _index = index;
    private readonly IStudyGateway _studies = studies;
    private readonly IngestSettings _settings = settings;
    private readonly IArchiveMetrics _metrics = metrics;
    private readonly ILogger _log = log;
    private readonly TimeProvider _time = time;

    /// <summary>What the inspector gathers while the data set streams: the indexed attributes and the content checksum.</summary>
    private static readonly DatasetInspectorOptions Inspection = new() { Keep = InstanceHeader.IndexedTags.Contains, ContentHash = true };

    public async ValueTask<IIngestSink> BeginAsync(IngestRequest request, CancellationToken cancellationToken)
    {
        if (!DicomUidRegistry.IsWellFormed(request.SopInstanceUid))
        {
            _metrics.InstanceAnswered("refused");
            throw new IngestRefusedException(IngestRefusal.CannotUnderstand, InstanceHeader.NotAUid("Affected SOP Instance UID", request.SopInstanceUid));
        }
        var writer = await _blobs.CreateAsync(cancellationToken);
        return new Sink(this, request, writer);
    }

    private sealed class Sink(IngestService owner, IngestRequest request, IBlobWriter writer) : IIngestSink
    {
        private readonly DatasetInspector _inspector = new(request.TransferSyntax, Inspection);
        private string? _malformed;
        private bool _headerWritten;

        public async ValueTask WriteAsync(ReadOnlySequence<byte> data, CancellationToken cancellationToken)
        {
            if (!_headerWritten)
            {
                await writer.WriteAsync(Part10Header.For(request.SopClassUid, request.SopInstanceUid, request.TransferSyntax, request.Source), cancellationToken);
                _headerWritten = true;
            }
            await writer.WriteAsync(data, cancellationToken);
            if (_malformed is not null) return; // refused at the end; the rest of the data set is read and dropped
            try
            {
                _inspector.Write(data);
            }
            catch (DicomParseException e)
            {
                _malformed = NotWhole(e);
            }
        }

        public async ValueTask<IngestResult> CompleteAsync(CancellationToken cancellationToken)
        {
            var metrics = owner._metrics;
            if (!_headerWritten) return Refused(IngestRefusal.CannotUnderstand, "the data set is empty");
            long started = Stopwatch.GetTimestamp(), completed = started;
            string sha;
            try
            {
                sha = await writer.SealAsync(owner._settings.FlushBlobs, cancellationToken);
                Phase("seal", ref started);
            }
            catch (IOException e)
            {
                owner._log.LogError(e, "{Source}: cannot write {SopInstance}", request.Description, request.SopInstanceUid);
                return Refused(IngestRefusal.OutOfResources, $"the blob store cannot write: {e.Message}");
            }
            InstanceHeader header;
            DatasetInspection inspection;
            try
            {
                if (_malformed is not null) throw new InvalidInstanceException(_malformed);
                try
                {
                    inspection = _inspector.Complete();
                }
                catch (DicomParseException e)
                {
                    throw new InvalidInstanceException(NotWhole(e));
                }
                header = InstanceHeader.From(inspection.Kept, inspection.EffectiveSyntax.Uid);
                Phase("header", ref started);
            }
            catch (InvalidInstanceException e)
            {
                return Refused(IngestRefusal.CannotUnderstand, e.Message);
            }
            IngestResult For(IngestResult r) => r with { StudyInstanceUid = header.StudyInstanceUid, SeriesInstanceUid = header.SeriesInstanceUid };
            // The blob store out of reach (an object store): logged, counted, and the sender told to send it again (A700H).
            IngestResult StoreUnavailable(string situation, IOException e)
            {
                owner._log.LogError("{Source}: {SopInstance} {Situation}: {Reason}", request.Description, request.SopInstanceUid, situation, e.Message);
                metrics.InstanceAnswered("failed");
                return IngestResult.Refused(IngestRefusal.OutOfResources, $"the blob store cannot take the instance now ({e.Message}); send it again");
            }
            if (header.SopInstanceUid != request.SopInstanceUid)
                return For(Refused(IngestRefusal.CannotUnderstand, $"the data set's SOP Instance UID {header.SopInstanceUid} is not the command's {request.SopInstanceUid}"));
            if (header.SopClassUid != request.SopClassUid)
                return For(Refused(IngestRefusal.SopClassMismatch, $"the data set's SOP Class UID {header.SopClassUid} is not the command's {request.SopClassUid}"));
            // A SOP Instance UID is unique across the archive, not only within its study. This early look saves a journal
            // write; the claim that decides is made where the index commits (two studies at once: the first wins).
            var archived = await owner._index.FindInstanceAsync(header.SopInstanceUid, cancellationToken);
            if (archived is not null && archived.StudyInstanceUid != header.StudyInstanceUid)
                return For(Refused(IngestRefusal.Conflict,
                    $"SOP Instance {header.SopInstanceUid} is already archived in study {archived.StudyInstanceUid}, not {header.StudyInstanceUid}; the archive keeps the first"));
            Phase("lookup", ref started);
            var blob = owner._blobs.RefFor(header.StudyInstanceUid, header.SeriesInstanceUid, header.SopInstanceUid, BlobRef.Original, sha);
            // A store that acknowledges only what it holds takes the bytes now, before anything names them — unless the
            // archive holds these very bytes already (a resend writes nothing to the store).
            if (archived is null || archived.Blob != blob || archived.Sha256 != sha)
            {
                try
                {
                    await writer.PrepareAsync(blob, cancellationToken);
                }
                catch (IOException e)
                {
                    return For(StoreUnavailable("not archived, the blob store cannot take it", e));
                }
                Phase("prepare", ref started);
            }
            var instance = new StoredInstance(header, blob, writer.Length, sha, owner._time.GetUtcNow(), request.Source) { ContentSha256 = inspection.ContentSha256 };
            StoreInstanceResult result;
            var commitBy = owner._time.GetUtcNow() + owner._settings.CommitTimeout;
            try
            {
                writer.KeepStagedUntil(commitBy);
            }
            catch (IOException e)
            {
                return For(StoreUnavailable("not archived, its staged blob cannot be kept for the commit", e));
            }
            try
            {
                result = await owner._studies.StoreAsync(new StoreInstance(instance) { CommitBy = commitBy }, owner._settings.CommitTimeout, cancellationToken);
            }
            catch (Exception e) when (e is TimeoutException or TaskCanceledException)
            {
                writer.LeaveForRecovery();
                owner._log.LogWarning("{Source}: {SopInstance} of study {Study} was not committed within {Timeout}", request.Description,
                    request.SopInstanceUid, header.StudyInstanceUid, owner._settings.CommitTimeout);
                return For(Refused(IngestRefusal.OutOfResources, $"the archive did not commit the instance within {owner._settings.CommitTimeout.TotalSeconds:0.#} s; send it again"));
            }
            metrics.IngestCommitted(Stopwatch.GetElapsedTime(completed));
            Phase("commit", ref started);
            switch (result.Outcome)
            {
                case StoreOutcome.Stored or StoreOutcome.Replaced:
                    try
                    {
                        await writer.PromoteAsync(blob, cancellationToken);
                    }
                    catch (IOException e)
                    {
                        // Committed, but the blob store cannot take the bytes now (an object store out of reach): the staged
                        // blob stays for recovery (the sweep promotes it, as the index has it), and the sender is told to send
                        // again — a resend of this content is a duplicate that promotes it too. Never acknowledged before then.
                        writer.LeaveForRecovery();
                        return For(StoreUnavailable("committed but not yet in the blob store", e));
                    }
                    Phase("promote", ref started);
                    if (result.ObsoleteBlob is { } obsolete) await owner._blobs.DeleteAsync(obsolete, cancellationToken);
                    metrics.BytesArchived(writer.Length);
                    metrics.InstanceAnswered(result.Outcome == StoreOutcome.Stored ? "stored" : "replaced");
                    if (result.Outcome == StoreOutcome.Replaced)
                        owner._log.LogWarning("{Source}: {SopInstance} replaced an archived instance with different content (conflict policy: overwrite)",
                            request.Description, request.SopInstanceUid);
                    return For(new IngestResult(result.Outcome == StoreOutcome.Stored ? IngestOutcome.Stored : IngestOutcome.Replaced));
                case StoreOutcome.Duplicate:
                    // Same content as archived. Its first copy's blob is normally in place; if it is not (its promotion was
                    // lost), this copy takes its place when its bytes are identical (a copy from another sender or in
                    // another syntax has other bytes than the index records).
                    try
                    {
                        // (A prepared writer's bytes are in place already, under the archived key: settle it, whoever committed first.)
                        if (result.ArchivedSha256 == sha && (archived is null || archived.Blob == blob)
                            && (writer.IsPrepared || !await owner._blobs.ExistsAsync(blob, cancellationToken)))
                            await writer.PromoteAsync(blob, cancellationToken);
                    }
                    catch (IOException e)
                    {
                        return For(StoreUnavailable("is archived, but its blob cannot be written now", e));
                    }
                    metrics.InstanceAnswered("duplicate");
                    return For(new IngestResult(IngestOutcome.Duplicate));
                case StoreOutcome.Rejected:
                    owner._log.LogWarning("{Source}: {Reason}", request.Description, result.Reason);
                    metrics.InstanceAnswered("rejected");
                    return For(IngestResult.Refused(IngestRefusal.Conflict, result.Reason ?? "a conflict"));
                default:
                    writer.LeaveForRecovery();
                    owner._log.LogError("{Source}: {SopInstance} of study {Study} not committed: {Reason}", request.Description, request.SopInstanceUid,
                        header.StudyInstanceUid, result.Reason);
                    metrics.InstanceAnswered("failed");
                    return For(IngestResult.Refused(IngestRefusal.OutOfResources, result.Reason ?? "the commit failed"));
            }
        }

        /// <summary>The refusal reason, front-loaded for a 64-character DIMSE Error Comment (the log has it all, with the byte offset).</summary>
        private static string NotWhole(DicomParseException e) =>
            (e.Reason.StartsWith("data ends", StringComparison.Ordinal) ? "" : "malformed: ") + e.Reason + $" (byte {e.Offset})";

        private void Phase(string phase, ref long since)
        {
            long now = Stopwatch.GetTimestamp();
            owner._metrics.IngestPhase(phase, Stopwatch.GetElapsedTime(since, now));
            since = now;
        }

        private IngestResult Refused(IngestRefusal why, string reason)
        {
            owner._log.LogWarning("{Source}: {SopInstance} refused ({Refusal}): {Reason}", request.Description, request.SopInstanceUid, why, reason);
            owner._metrics.InstanceAnswered("refused");
            return IngestResult.Refused(why, reason);
        }

        public ValueTask DisposeAsync()
        {
            _inspector.Dispose();
            return writer.DisposeAsync();
        }
    }
}
