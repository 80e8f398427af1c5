using System.Buffers;
using System.Diagnostics;
using AkkaVna.Dicom.Network;
using AkkaVna.Dicom.Network.Dimse;
using AkkaVna.Dicom.Network.Trace;
using AkkaVna.Core.Ingest;
using AkkaVna.Core.Model;

namespace AkkaVna.Dimse.Store;

/// <summary>
/// The C-STORE front door: each C-STORE is one <see cref="IngestService"/> request (the command and the presentation
/// context say what the data set claims to be, the calling AE title who sent it), its data set streamed into the
/// ingest sink PDV by PDV, and the ingest answer mapped to a DIMSE status with its reason as the Error Comment.
/// </summary>
public sealed class ArchiveStoreHandler(IngestService ingest, StoreTraceWriter? trace = null) : ICStoreHandler
{
    /// <summary>The audit trail each archived instance is reported to (gathered per association and study), and this archive as its participant.</summary>
    public AkkaVna.Core.Audit.IAuditTrail Audit { get; init; } = AkkaVna.Core.Audit.IAuditTrail.None;
    public AkkaVna.Core.Audit.AuditParticipant? Archive { get; init; }

    public async ValueTask<IStoreSink> BeginAsync(StoreRequest request, CancellationToken cancellationToken)
    {
        try
        {
            var sink = await ingest.BeginAsync(new IngestRequest(request.SopClassUid, request.SopInstanceUid, request.TransferSyntax,
                request.Association.CallingAE, request.Association.ToString()), cancellationToken);
            return new Sink(this, request, sink);
        }
        catch (IngestRefusedException e)
        {
            throw new DimseException(StatusOf(e.Refusal), e.Message);
        }
    }

    /// <summary>The DIMSE status of a refusal (PS3.4 GG.4: C-STORE statuses; 0111H Duplicate SOP Instance, PS3.7 C.4.2).</summary>
    public static DimseStatus StatusOf(IngestRefusal refusal) => refusal switch
    {
        IngestRefusal.CannotUnderstand => DimseStatus.StoreCannotUnderstand,
        IngestRefusal.SopClassMismatch => DimseStatus.StoreDataSetDoesNotMatchSopClass,
        IngestRefusal.Conflict => DimseStatus.DuplicateSopInstance,
        _ => DimseStatus.StoreOutOfResources,
    };

    private sealed class Sink(ArchiveStoreHandler owner, StoreRequest request, IIngestSink sink) : IStoreSink
    {
        private readonly long _begun = Stopwatch.GetTimestamp();
        private long _bytes;

        public ValueTask WriteAsync(ReadOnlySequence<byte> data, CancellationToken cancellationToken)
        {
            _bytes += data.Length;
            return sink.WriteAsync(data, cancellationToken);
        }

        public async ValueTask<DimseResult> CompleteAsync(CancellationToken cancellationToken)
        {
            var result = await sink.CompleteAsync(cancellationToken);
            var answer = result.IsArchived ? DimseResult.Success : new DimseResult(StatusOf(result.Refusal!.Value), result.Reason);
            if (result.IsArchived && result.StudyInstanceUid is { } study && owner.Archive is { } archive)
                owner.Audit.InstanceStored(AuditObserver.TransferOf(request.Association), AuditObserver.Peer(request.Association, role: AkkaVna.Core.Audit.AuditRole.Source),
                    archive with { Role = AkkaVna.Core.Audit.AuditRole.Destination }, study, request.SopClassUid);
            owner._trace?.Record(request.Association.CallingAE, request.Association.CalledAE, result.StudyInstanceUid, _bytes,
                Stopwatch.GetElapsedTime(_begun).TotalMilliseconds, answer.Status.Code.ToString("X4", System.Globalization.CultureInfo.InvariantCulture));
            return answer;
        }

        public ValueTask DisposeAsync() => sink.DisposeAsync();
    }

    private readonly StoreTraceWriter? _trace = trace;
}
