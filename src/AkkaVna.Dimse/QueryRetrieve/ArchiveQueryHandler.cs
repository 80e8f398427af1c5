using AkkaVna.Core.Blobs;
using System.Runtime.CompilerServices;
using AkkaVna.Dicom;
using AkkaVna.Dicom.Network;
using AkkaVna.Dicom.Network.Dimse;
using Microsoft.Extensions.Logging;
using AkkaVna.Core.Model;
using AkkaVna.Core.Ports;
using AkkaVna.Core.Query;
using AkkaVna.Core.Audit;

namespace AkkaVna.Dimse.QueryRetrieve;

/// <summary>
/// C-FIND, C-MOVE and C-GET against the index and the blob store (never the study actors): queries go to the
/// <see cref="QueryEngine"/>; retrieves resolve their identifier to the archived instances through the partition
/// their unique keys name, and move destinations come from configuration.
/// </summary>
public sealed class ArchiveQueryHandler(QueryEngine engine, IArchiveIndex index, IBlobStore blobs, IReadOnlyDictionary<string, MoveDestination> destinations,
    ILogger log) : ICFindHandler, ICRetrieveHandler
{
    /// <summary>The audit trail queries and retrieves are reported to, and this archive as its participant.</summary>
    public IAuditTrail Audit { get; init; } = IAuditTrail.None;
    public AuditParticipant? Archive { get; init; }

    public async IAsyncEnumerable<FindMatch> FindAsync(FindRequest request, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var model = ModelOf(request.SopClassUid);
        var matches = engine.FindAsync(model, request.Identifier, cancellationToken).GetAsyncEnumerator(cancellationToken);
        string? failure = null;
        try
        {
            while (true)
            {
                FindMatch next;
                try
                {
                    if (!await matches.MoveNextAsync()) yield break;
                    next = new FindMatch(matches.Current.Identifier, matches.Current.OptionalKeysNotSupported);
                }
                catch (QueryException e)
                {
                    failure = e.Message;
                    throw new DimseException(DimseStatus.IdentifierDoesNotMatchSopClass, e.Message);
                }
                catch (TooManyMatchesException e)
                {
                    failure = e.Message;
                    log.LogInformation("{Association}: C-FIND stopped: {Reason}", request.Association, e.Message);
                    throw new DimseException(DimseStatus.QueryOutOfResources, e.Message);
                }
                yield return next;
            }
        }
        finally
        {
            await matches.DisposeAsync();
            // Query (A.5.3.12): the identifier as asked, in Explicit VR Little Endian.
            if (Archive is { } archive)
            {
                using var query = new MemoryStream();
                AkkaVna.Dicom.IO.DicomWriter.WriteDataset(query, request.Identifier, DicomTransferSyntax.ExplicitVRLittleEndian);
                Audit.Record(new QueryAudit(DateTimeOffset.UtcNow, failure is null ? AuditOutcome.Success : AuditOutcome.MinorFailure, failure,
                    AuditObserver.Peer(request.Association), archive, request.SopClassUid, query.ToArray()));
            }
        }
    }

    /// <summary>DICOM Instances Transferred (A.5.3.4) for what a C-GET or C-MOVE sent, per study: from this archive to the requestor or the move destination.</summary>
    public void Retrieved(RetrieveRequest request, MoveDestination? destination, IReadOnlyList<RetrieveItem> sent, int failed)
    {
        if (Archive is not { } archive || sent.Count == 0) return;
        var studies = sent.GroupBy(i => i.StudyInstanceUid ?? "unknown", StringComparer.Ordinal)
            .Select(g => new AuditStudy(g.Key, g.GroupBy(i => i.SopClassUid, StringComparer.Ordinal).ToDictionary(c => c.Key, c => c.Count(), StringComparer.Ordinal)))
            .ToList();
        var requestor = AuditObserver.Peer(request.Association, role: destination is null ? AuditRole.Destination : AuditRole.None);
        var to = destination is null ? requestor : new AuditParticipant(destination.AETitle, destination.AETitle, destination.Host, IsRequestor: false, AuditRole.Destination);
        Audit.Record(new InstancesTransferred(DateTimeOffset.UtcNow, failed == 0 ? AuditOutcome.Success : AuditOutcome.MinorFailure,
            failed == 0 ? null : $"{failed} sub-operation(s) failed", Created: false, archive with { Role = AuditRole.Source }, to,
            destination is null ? null : requestor, studies));
    }

    public MoveDestination? FindDestination(AssociationInfo requestor, string aeTitle) => destinations.GetValueOrDefault(aeTitle);

    public async ValueTask<IReadOnlyList<RetrieveItem>> ResolveAsync(RetrieveRequest request, CancellationToken cancellationToken)
    {
        var id = request.Identifier;
        string level = id.GetString(DicomTags.QueryRetrieveLevel)?.Trim().ToUpperInvariant() ?? "";
        bool composite = request.SopClassUid.StartsWith("1.2.840.10008.5.1.4.1.2.4.", StringComparison.Ordinal); // Composite Instance Root
        if (composite && level is "" or "IMAGE") level = "IMAGE";
        IReadOnlyCollection<string> Uids(DicomTag tag, string what)
        {
            var uids = id.GetString(tag)?.Split('\\').Select(u => u.Trim()).Where(u => u.Length > 0).ToHashSet(StringComparer.Ordinal);
            return uids is { Count: > 0 } ? uids
                : throw new DimseException(DimseStatus.IdentifierDoesNotMatchSopClass, $"a {level} retrieve needs {what}");
        }
        var instances = new List<IndexedInstance>();
        switch (level)
        {
            case "PATIENT" when ModelOf(request.SopClassUid) == InformationModel.PatientRoot:
            {
                string patientId = id.GetString(DicomTags.PatientID)?.Trim() is { Length: > 0 } p ? p
                    : throw new DimseException(DimseStatus.IdentifierDoesNotMatchSopClass, "a PATIENT retrieve needs Patient ID (0010,0020)");
                string? issuer = id.GetString(DicomTags.IssuerOfPatientID)?.Trim() is { Length: > 0 } i ? i : null;
                foreach (var study in await index.StudiesOfPatientAsync(patientId, issuer, cancellationToken))
                    await AddStudyAsync(study, null);
                break;
            }
            case "STUDY":
                foreach (var study in Uids(DicomTags.StudyInstanceUID, "Study Instance UID (0020,000D)")) await AddStudyAsync(study, null);
                break;
            case "SERIES":
            {
                var series = Uids(DicomTags.SeriesInstanceUID, "Series Instance UID (0020,000E)");
                foreach (var study in Uids(DicomTags.StudyInstanceUID, "Study Instance UID (0020,000D) with the series")) await AddStudyAsync(study, series);
                break;
            }
            case "IMAGE":
                foreach (var sop in Uids(DicomTags.SOPInstanceUID, "SOP Instance UID (0008,0018)"))
                    if (await index.FindInstanceAsync(sop, cancellationToken) is { } instance) instances.Add(instance);
                break;
            default:
                throw new DimseException(DimseStatus.IdentifierDoesNotMatchSopClass,
                    level.Length == 0 ? "the identifier has no Query/Retrieve Level (0008,0052)" : $"'{level}' is not a retrieve level of this information model");
        }
        return instances.Select(i => new RetrieveItem(i.SopClassUid, i.SopInstanceUid, i.TransferSyntaxUid,
            async ct => await InstanceBlobs.OpenAsync(blobs, index, i.SopInstanceUid, i.Blob, ct)) { StudyInstanceUid = i.StudyInstanceUid }).ToList();

        async Task AddStudyAsync(string study, IReadOnlyCollection<string>? series)
        {
            await foreach (var instance in index.ListInstancesAsync(study, cancellationToken))
                if (series is null || series.Contains(instance.SeriesInstanceUid)) instances.Add(instance);
        }
    }

    private static InformationModel ModelOf(string sopClassUid) =>
        sopClassUid.StartsWith("1.2.840.10008.5.1.4.1.2.2.", StringComparison.Ordinal) ? InformationModel.StudyRoot : InformationModel.PatientRoot;
}
