using System.Buffers;
using System.Diagnostics;
using Akka.Actor;
using AkkaVna.Archive.Blobs;
using AkkaVna.Archive.Hosting;
using AkkaVna.Archive.Index;
using AkkaVna.Archive.Studies;
using AkkaVna.Dicom.Dictionary;
using AkkaVna.Dicom.IO;
using AkkaVna.Dicom.Network;
using AkkaVna.Dicom.Network.Trace;
using AkkaVna.Dicom.Network.Dimse;
using AkkaVna.Dicom.Network.Scp;
using Microsoft.Extensions.Logging;

namespace AkkaVna.Archive.Ingest;

/// <summary>How the ingest path behaves (the <c>akka-vna.archive.ingest</c> configuration).</summary>
public sealed record IngestSettings(bool FlushBlobs, TimeSpan CommitTimeout);

/// <summary>
/// The C-STORE handler of an archive node. Each data set streams into a staged blob on this node as it arrives (never
/// whole in memory), hashed on the way, and through a <see cref="DatasetInspector"/> that proves it whole, keeps the
/// indexed attributes and computes its content checksum — one pass over the bytes, no value held. When it is complete
/// the blob is flushed and a <see cref="StoreInstance"/> — a key, checksums and the attributes, no bytes — goes to the
/// study's shard. The C-STORE-RSP carries the study actor's answer, sent only after its commit; a data set that is not
/// whole is refused (C000H) and leaves nothing behind.
/// </summary>
public sealed class ArchiveStoreHandler : ICStoreHandler
{
    private readonly IBlobStore _blobs;
    private readonly IArchiveIndex _index;
    private readonly IActorRef _studies;
    private readonly IngestSettings _settings;
    private readonly ILogger _log;
    private readonly StoreTraceWriter? _trace;
    private readonly TimeProvider _time;

    /// <param name="trace">Where to record each C-STORE (time, AE titles, study, size, latency to commit, status) for replay; null: off.</param>
    public ArchiveStoreHandler(IBlobStore blobs, IArchiveIndex index, IActorRef studies, IngestSettings settings, ILogger log, TimeProvider time, StoreTraceWriter? trace = null)
    {
        _time = time;
        _blobs = blobs;
        _index = index;
        _studies = studies;
        _settings = settings;
        _log = log;
        _trace = trace;
    }

    public async ValueTask<IStoreSink> BeginAsync(StoreRequest request, CancellationToken cancellationToken)
    {
        if (!DicomUidRegistry.IsWellFormed(request.SopInstanceUid))
            throw Refuse(DimseStatus.StoreCannotUnderstand, InstanceHeader.NotAUid("Affected SOP Instance UID", request.SopInstanceUid));
        var writer = await _blobs.CreateAsync(cancellationToken);
        return new Sink(this, request, writer);
    }

    private static DimseException Refuse(DimseStatus status, string reason)
    {
        ArchiveMetrics.Instances.WithLabels("refused").Inc();
        return new DimseException(status, reason);
    }


    /// <summary>What the inspector gathers while the data set streams: the indexed attributes and the content checksum.</summary>
    internal static readonly DatasetInspectorOptions Inspection = new() { Keep = InstanceHeader.IndexedTags.Contains, ContentHash = true };

    private sealed class Sink(ArchiveStoreHandler owner, StoreRequest request, IBlobWriter writer) : IStoreSink
    {
        private readonly long _begun = Stopwatch.GetTimestamp();
        private readonly DatasetInspector _inspector = new(request.TransferSyntax, Inspection);
        private string? _malformed;
        private bool _headerWritten;
        private long _bytes;
        private string? _study;

        public async ValueTask WriteAsync(ReadOnlySequence<byte> data, CancellationToken cancellationToken)
        {
            if (!_headerWritten)
            {
                await writer.WriteAsync(Part10Header.For(request), cancellationToken);
                _headerWritten = true;
            }
            _bytes += data.Length;
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

        public async ValueTask<DimseResult> CompleteAsync(CancellationToken cancellationToken)
        {
            var result = await CompleteCoreAsync(cancellationToken);
            owner._trace?.Record(request.Association.CallingAE, request.Association.CalledAE, _study, _bytes, Stopwatch.GetElapsedTime(_begun).TotalMilliseconds,
                result.Status.Code.ToString("X4", System.Globalization.CultureInfo.InvariantCulture));
            return result;
        }

        private async ValueTask<DimseResult> CompleteCoreAsync(CancellationToken cancellationToken)
        {
            if (!_headerWritten) return Refused(DimseStatus.StoreCannotUnderstand, "the data set is empty");
            long started = Stopwatch.GetTimestamp(), completed = started;
            string sha;
            try
            {
                sha = await writer.SealAsync(owner._settings.FlushBlobs, cancellationToken);
                Phase("seal", ref started);
            }
            catch (IOException e)
            {
                owner._log.LogError(e, "{Association}: cannot write {SopInstance}", request.Association, request.SopInstanceUid);
                return Refused(DimseStatus.StoreOutOfResources, $"the blob store cannot write: {e.Message}");
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
                _study = header.StudyInstanceUid;
                Phase("header", ref started);
            }
            catch (InvalidInstanceException e)
            {
                return Refused(DimseStatus.StoreCannotUnderstand, e.Message);
            }
            if (header.SopInstanceUid != request.SopInstanceUid)
                return Refused(DimseStatus.StoreCannotUnderstand, $"the data set's SOP Instance UID {header.SopInstanceUid} is not the command's {request.SopInstanceUid}");
            if (header.SopClassUid != request.SopClassUid)
                return Refused(DimseStatus.StoreDataSetDoesNotMatchSopClass, $"the data set's SOP Class UID {header.SopClassUid} is not the command's {request.SopClassUid}");
            // A SOP Instance UID is unique across the archive, not only within its study.
            if (await owner._index.FindInstanceAsync(header.SopInstanceUid, cancellationToken) is { } elsewhere && elsewhere.StudyInstanceUid != header.StudyInstanceUid)
                return Refused(DimseStatus.DuplicateSopInstance,
                    $"SOP Instance {header.SopInstanceUid} is already archived in study {elsewhere.StudyInstanceUid}, not {header.StudyInstanceUid}; the archive keeps the first");
            Phase("lookup", ref started);
            var key = owner._blobs.RefFor(header.StudyInstanceUid, header.SeriesInstanceUid, header.SopInstanceUid);
            var instance = new StoredInstance(header, key, writer.Length, sha, owner._time.GetUtcNow(), request.Association.CallingAE)
            {
                ContentSha256 = inspection.ContentSha256,
            };
            StoreInstanceResult result;
            try
            {
                result = await owner._studies.Ask<StoreInstanceResult>(new StoreInstance(instance), owner._settings.CommitTimeout, cancellationToken);
            }
            catch (Exception e) when (e is AskTimeoutException or TaskCanceledException)
            {
                writer.LeaveForRecovery();
                owner._log.LogWarning("{Association}: {SopInstance} of study {Study} was not committed within {Timeout}", request.Association,
                    request.SopInstanceUid, header.StudyInstanceUid, owner._settings.CommitTimeout);
                return Refused(DimseStatus.StoreOutOfResources, $"the archive did not commit the instance within {owner._settings.CommitTimeout.TotalSeconds:0.#} s; send it again");
            }
            ArchiveMetrics.CommitSeconds.Observe(Stopwatch.GetElapsedTime(completed).TotalSeconds);
            Phase("commit", ref started);
            switch (result.Outcome)
            {
                case StoreOutcome.Stored or StoreOutcome.Replaced:
                    await writer.PromoteAsync(key, cancellationToken);
                    Phase("promote", ref started);
                    if (result.ObsoleteBlob is { } obsolete) await owner._blobs.DeleteAsync(obsolete, cancellationToken);
                    ArchiveMetrics.Bytes.Inc(writer.Length);
                    ArchiveMetrics.Instances.WithLabels(result.Outcome == StoreOutcome.Stored ? "stored" : "replaced").Inc();
                    if (result.Outcome == StoreOutcome.Replaced)
                        owner._log.LogWarning("{Association}: {SopInstance} replaced an archived instance with different content (conflict policy: overwrite)",
                            request.Association, request.SopInstanceUid);
                    return DimseResult.Success;
                case StoreOutcome.Duplicate:
                    // Same content as archived. Its first copy's blob is normally in place; if it is not (its promotion was
                    // lost), this copy takes its place when its bytes are identical (a copy from another sender or in
                    // another syntax has other bytes than the index records).
                    if (result.ArchivedSha256 == sha && !await owner._blobs.ExistsAsync(key, cancellationToken)) await writer.PromoteAsync(key, cancellationToken);
                    ArchiveMetrics.Instances.WithLabels("duplicate").Inc();
                    return DimseResult.Success;
                case StoreOutcome.Rejected:
                    owner._log.LogWarning("{Association}: {Reason}", request.Association, result.Reason);
                    ArchiveMetrics.Instances.WithLabels("rejected").Inc();
                    return new DimseResult(DimseStatus.DuplicateSopInstance, result.Reason);
                default:
                    writer.LeaveForRecovery();
                    owner._log.LogError("{Association}: {SopInstance} of study {Study} not committed: {Reason}", request.Association, request.SopInstanceUid,
                        header.StudyInstanceUid, result.Reason);
                    ArchiveMetrics.Instances.WithLabels("failed").Inc();
                    return new DimseResult(DimseStatus.StoreOutOfResources, result.Reason ?? "the commit failed");
            }
        }

        /// <summary>The refusal reason, front-loaded for the 64-character Error Comment (the log has it all, with the byte offset).</summary>
        private static string NotWhole(DicomParseException e) =>
            (e.Reason.StartsWith("data ends", StringComparison.Ordinal) ? "" : "malformed: ") + e.Reason + $" (byte {e.Offset})";

        private static void Phase(string phase, ref long since)
        {
            long now = Stopwatch.GetTimestamp();
            ArchiveMetrics.PhaseSeconds.WithLabels(phase).Observe(Stopwatch.GetElapsedTime(since, now).TotalSeconds);
            since = now;
        }

        private DimseResult Refused(DimseStatus status, string reason)
        {
            owner._log.LogWarning("{Association}: {SopInstance} refused with {Status}: {Reason}", request.Association, request.SopInstanceUid, status, reason);
            ArchiveMetrics.Instances.WithLabels("refused").Inc();
            return new DimseResult(status, reason);
        }

        public ValueTask DisposeAsync()
        {
            _inspector.Dispose();
            return writer.DisposeAsync();
        }
    }
}
