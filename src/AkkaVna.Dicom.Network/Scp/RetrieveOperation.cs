using System.Diagnostics;
using AkkaVna.Dicom.IO;
using AkkaVna.Dicom.Imaging;
using AkkaVna.Dicom.Network.Dimse;
using AkkaVna.Dicom.Network.Pdus;
using AkkaVna.Dicom.Network.Scu;
using AkkaVna.Dicom.Network.Services;
using Microsoft.Extensions.Logging;

namespace AkkaVna.Dicom.Network.Scp;

/// <summary>
/// Performs a C-MOVE or C-GET (PS3.4 C.4.2, C.4.3): the handler resolves the identifier to instances, then each is sent
/// in a C-STORE sub-operation — to the move destination over a new association, or back over the requestor's own
/// association for C-GET — with pending responses carrying the counts and a final response with the Failed SOP Instance
/// UID List. An instance stored in a syntax the receiver did not accept is converted when both syntaxes are native
/// (uncompressed); otherwise that sub-operation fails with the reason.
/// </summary>
internal sealed class RetrieveOperation
{
    private const int MaxContextsPerAssociation = 128;


    private readonly DicomAssociation _requestor;
    private readonly DimseCommand _request;
    private readonly ICRetrieveHandler _handler;
    private readonly RetrieveOptions _options;
    private readonly DicomAssociationOptions _associationOptions;
    private readonly ILogger _log;
    private readonly Func<DimseReply, Task> _sendPending;
    private readonly List<string> _failedUids = [];
    private int _completed, _failed, _warning, _remaining;
    private long _lastPending = Stopwatch.GetTimestamp();

    public RetrieveOperation(DicomAssociation requestor, DimseCommand request, ICRetrieveHandler handler, RetrieveOptions options,
        DicomAssociationOptions associationOptions, ILogger log, Func<DimseReply, Task> sendPending)
    {
        _requestor = requestor;
        _request = request;
        _handler = handler;
        _options = options;
        _associationOptions = associationOptions;
        _log = log;
        _sendPending = sendPending;
    }

    private bool IsGet => _request.Field == DimseCommandField.CGetRequest;

    private SubOperationCounts Counts => new(_remaining, _completed, _failed, _warning);

    public async Task<DimseReply> RunAsync(string sopClassUid, DicomDataset identifier, CancellationToken cancellationToken)
    {
        MoveDestination? destination = null;
        var requestor = _requestor.Info;
        if (!requestor.May(IsGet ? DicomPermissions.Get : DicomPermissions.Move))
            return Final(DimseStatus.NotAuthorized, requestor.NotPermitted(IsGet ? "retrieve (C-GET)" : "retrieve (C-MOVE)"));
        if (!IsGet)
        {
            string ae = _request.MoveDestination?.Trim() ?? "";
            if (ae.Length == 0) return Final(DimseStatus.MoveDestinationUnknown, "the C-MOVE-RQ names no Move Destination");
            if (requestor.Peer is { } peer && !peer.MayMoveTo(ae))
                return Final(DimseStatus.NotAuthorized, requestor.NotPermitted($"have instances moved to {ae} (its move destinations: {string.Join(", ", peer.MoveDestinations!)})"));
            destination = _handler.FindDestination(_requestor.Info, ae);
            if (destination is null) return Final(DimseStatus.MoveDestinationUnknown, $"move destination {ae} is not configured on this AE");
        }

        IReadOnlyList<RetrieveItem> items;
        try
        {
            items = await _handler.ResolveAsync(new RetrieveRequest(_requestor.Info, _request, sopClassUid, identifier), cancellationToken);
        }
        catch (DimseException e)
        {
            return Final(e.Status, e.Message);
        }
        _remaining = items.Count;
        if (items.Count == 0) return Final(DimseStatus.Success);
        _log.LogInformation("{Association}: {Operation} of {Count} instance(s){Destination}", _requestor.Info, IsGet ? "C-GET" : "C-MOVE", items.Count,
            destination is null ? "" : $" to {destination.AETitle} at {destination.Host}:{destination.Port}");

        if (IsGet)
        {
            foreach (var item in items)
            {
                if (cancellationToken.IsCancellationRequested) break;
                if (!await StoreAsync(_requestor, item, null, cancellationToken)) break;
            }
        }
        else
        {
            foreach (var batch in Batches(items))
            {
                if (cancellationToken.IsCancellationRequested) break;
                await MoveBatchAsync(destination!, batch, cancellationToken);
            }
        }
        try
        {
            _handler.Retrieved(new RetrieveRequest(_requestor.Info, _request, sopClassUid, identifier), destination, _sent, _failed + _remaining);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            _log.LogWarning(e, "{Association}: the retrieve's report to its handler failed", _requestor.Info);
        }
        if (cancellationToken.IsCancellationRequested && _remaining > 0) return Final(DimseStatus.Cancel, "cancelled by the requestor");
        if (_failed == 0 && _warning == 0) return Final(DimseStatus.Success);
        if (_completed == 0 && _warning == 0)
            return Final(DimseStatus.RetrieveOutOfResourcesSubOperations, $"all {_failed} sub-operations failed");
        return Final(DimseStatus.SubOperationsCompleteWithFailures, $"{_failed} of {items.Count} sub-operations failed");
    }

    private async Task MoveBatchAsync(MoveDestination destination, List<RetrieveItem> batch, CancellationToken cancellationToken)
    {
        var proposals = Proposals(batch, _options.Transcoder);
        var rq = new AssociateRequest
        {
            CalledAE = destination.AETitle,
            CallingAE = _options.CallingAE ?? _requestor.Info.CalledAE,
            PresentationContexts = proposals,
            UserInformation = new UserInformation
            {
                ImplementationClassUid = DicomImplementation.ClassUid,
                ImplementationVersionName = DicomImplementation.VersionName,
            },
        };
        DicomAssociation target;
        try
        {
            var association = !destination.Tls ? _options.Association
                : _options.Association with { Connector = _options.TlsConnector ?? throw new DicomAssociationException($"{destination.AETitle} is a TLS destination and this AE has no TLS settings") };
            target = await DicomAssociation.ConnectAsync(destination.Host, destination.Port, rq, association, log: _log, cancellationToken: cancellationToken);
        }
        catch (Exception e) when (e is DicomAssociationException or OperationCanceledException && !cancellationToken.IsCancellationRequested)
        {
            string reason = $"cannot associate with {destination.AETitle} at {destination.Host}:{destination.Port}: {e.Message}";
            _log.LogWarning("{Association}: C-MOVE: {Reason}", _requestor.Info, reason);
            foreach (var item in batch) await CountAsync(item, DimseStatus.RetrieveOutOfResourcesSubOperations, reason, cancellationToken);
            return;
        }
        await using (target)
        {
            foreach (var item in batch)
            {
                if (cancellationToken.IsCancellationRequested) break;
                if (!await StoreAsync(target, item, (_requestor.Info.CallingAE, _request.MessageId), cancellationToken))
                {
                    // The destination stopped answering: the rest of the batch fails with the reason already logged.
                    foreach (var rest in batch.SkipWhile(i => i != item).Skip(1))
                        await CountAsync(rest, DimseStatus.RetrieveOutOfResourcesSubOperations, "the move destination stopped answering", cancellationToken);
                    return;
                }
            }
            if (target.State == UpperLayer.UlState.Sta6)
            {
                try
                {
                    await target.ReleaseAsync().WaitAsync(_associationOptions.DimseTimeout, CancellationToken.None);
                }
                catch (Exception e) when (e is TimeoutException or DicomAssociationException or IOException)
                {
                    await target.AbortAsync("no A-RELEASE-RP in time");
                }
            }
        }
    }

    /// <summary>
    /// Per SOP class: each stored syntax alone; when any of them can be written natively (converted, or decoded by the
    /// transcoder), one context proposing the native syntaxes; and when the transcoder can compress them, one proposing the
    /// lossless compressed syntaxes it makes — for a destination that takes only those (the stored syntax is sent when
    /// accepted, else a native one, else a compressed one: see <see cref="ChooseContext"/>).
    /// </summary>
    /// <summary>The lossless compressed syntaxes a transcoder may make for a destination, most widely read first.</summary>
    private static readonly string[] LosslessCompressed =
        ["1.2.840.10008.1.2.4.70", "1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.5", "1.2.840.10008.1.2.4.201"];

    private static List<PresentationContextProposal> Proposals(List<RetrieveItem> items, IPixelTranscoder? transcoder)
    {
        var proposals = new List<PresentationContextProposal>();
        foreach (var perClass in items.GroupBy(i => i.SopClassUid, StringComparer.Ordinal))
        {
            bool anyNative = false;
            foreach (var ts in perClass.Select(i => i.TransferSyntaxUid).Distinct(StringComparer.Ordinal))
            {
                proposals.Add(new PresentationContextProposal((byte)(2 * proposals.Count + 1), perClass.Key, [ts]));
                anyNative |= DicomTransferSyntax.Lookup(ts) is { } stored && CanConvert(stored, DicomTransferSyntax.ExplicitVRLittleEndian, transcoder);
            }
            if (anyNative)
                proposals.Add(new PresentationContextProposal((byte)(2 * proposals.Count + 1), perClass.Key,
                    [DicomTransferSyntax.ExplicitVRLittleEndian.Uid, DicomTransferSyntax.ImplicitVRLittleEndian.Uid]));
            var storedSyntaxes = perClass.Select(i => i.TransferSyntaxUid).ToHashSet(StringComparer.Ordinal);
            var compressed = LosslessCompressed.Where(to => !storedSyntaxes.Contains(to) && DicomTransferSyntax.Lookup(to) is { } target
                && storedSyntaxes.Any(ts => DicomTransferSyntax.Lookup(ts) is { } from && (transcoder?.CanTranscode(from, target) ?? false))).ToList();
            if (compressed.Count > 0)
                proposals.Add(new PresentationContextProposal((byte)(2 * proposals.Count + 1), perClass.Key, compressed));
        }
        return proposals;
    }

    private static IEnumerable<List<RetrieveItem>> Batches(IReadOnlyList<RetrieveItem> items)
    {
        // Contexts per class: its distinct syntaxes plus one for native syntaxes and one for compressed ones; classes are
        // packed up to 128 contexts.
        var batch = new List<RetrieveItem>();
        int contexts = 0;
        foreach (var perClass in items.GroupBy(i => i.SopClassUid, StringComparer.Ordinal))
        {
            int needed = perClass.Select(i => i.TransferSyntaxUid).Distinct(StringComparer.Ordinal).Count() + 2;
            if (batch.Count > 0 && contexts + needed > MaxContextsPerAssociation)
            {
                yield return batch;
                batch = [];
                contexts = 0;
            }
            batch.AddRange(perClass);
            contexts += needed;
        }
        if (batch.Count > 0) yield return batch;
    }

    private static bool IsConvertible(DicomTransferSyntax? ts) => ts is { IsFileEncoding: true, IsEncapsulated: false };

    /// <summary>Whether a data set stored in <paramref name="from"/> can be sent in <paramref name="to"/>: between native syntaxes, or through the transcoder.</summary>
    private static bool CanConvert(DicomTransferSyntax from, DicomTransferSyntax to, IPixelTranscoder? transcoder) =>
        (IsConvertible(from) && IsConvertible(to) && !to.IsDeflated) || (transcoder?.CanTranscode(from, to) ?? false);

    /// <summary>Sends one sub-operation; false when the receiver stopped answering (the association was aborted).</summary>
    private async Task<bool> StoreAsync(DicomAssociation target, RetrieveItem item, (string AE, ushort MessageId)? originator, CancellationToken cancellationToken)
    {
        Buffers.IRandomAccessSource content;
        StoreFile file;
        try
        {
            content = await item.OpenAsync(cancellationToken);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidOperationException)
        {
            _log.LogError(e, "{Association}: cannot open archived instance {SopInstance}", _requestor.Info, item.SopInstanceUid);
            await CountAsync(item, DimseStatus.UnableToProcess, "cannot read the archived instance: " + e.Message, cancellationToken);
            return true;
        }
        try
        {
            try
            {
                file = StoreFile.Read(content);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or DicomParseException)
            {
                _log.LogError(e, "{Association}: cannot read archived instance {SopInstance} ({Source})", _requestor.Info, item.SopInstanceUid, content.Description);
                await CountAsync(item, DimseStatus.UnableToProcess, "cannot read the archived instance: " + e.Message, cancellationToken);
                return true;
            }
            return await StoreAsync(target, item, file, originator, cancellationToken);
        }
        finally
        {
            if (content is IAsyncDisposable disposable) await disposable.DisposeAsync();
        }
    }

    private async Task<bool> StoreAsync(DicomAssociation target, RetrieveItem item, StoreFile file, (string AE, ushort MessageId)? originator, CancellationToken cancellationToken)
    {
        var (context, convert) = ChooseContext(target, file);
        if (context is null)
        {
            await CountAsync(item, DimseStatus.RetrieveOutOfResourcesSubOperations,
                file.TransferSyntax.IsEncapsulated
                    ? $"the receiver accepted no presentation context for {item.SopClassUid} in {file.TransferSyntax.Uid}, the stored (compressed) syntax"
                    : $"the receiver accepted no presentation context for {item.SopClassUid} in {file.TransferSyntax.Uid} or a native syntax to convert to", cancellationToken);
            return true;
        }
        string? spool = null;
        try
        {
            Stream source;
            long length;
            if (convert)
            {
                spool = Path.Combine(_options.TempDirectory ?? Path.GetTempPath(), $"akkavna-convert-{Guid.NewGuid():N}.dcm");
                length = Convert(file, context.TransferSyntax!, spool, cancellationToken);
                source = _options.Spool.Open(spool).OpenRead();
            }
            else
            {
                (source, length) = file.OpenDataSet();
            }
            await using (source)
            {
                var cmd = DimseCommand.StoreRequest(target.NextMessageId(), file.SopClassUid, file.SopInstanceUid, _request.Priority, originator?.AE, originator?.MessageId);
                DimseResponse rsp;
                try
                {
                    rsp = await target.SendRequestAsync(context.Id, cmd, source, length, cancellationToken: CancellationToken.None)
                        .WaitAsync(_associationOptions.DimseTimeout, CancellationToken.None);
                }
                catch (TimeoutException)
                {
                    string reason = $"no C-STORE-RSP within {_associationOptions.DimseTimeout.TotalSeconds:F0} s";
                    await target.AbortAsync(reason);
                    await CountAsync(item, DimseStatus.RetrieveOutOfResourcesSubOperations, reason, cancellationToken);
                    return false;
                }
                await CountAsync(item, rsp.Status, rsp.Command.ErrorComment, cancellationToken);
                return true;
            }
        }
        catch (Exception e) when (e is IOException or DicomAssociationException or UnauthorizedAccessException or DicomParseException or InvalidOperationException
            or PixelDataException)
        {
            await CountAsync(item, DimseStatus.RetrieveOutOfResourcesSubOperations, e.Message, cancellationToken);
            return target.State == UpperLayer.UlState.Sta6;
        }
        finally
        {
            if (spool is not null) File.Delete(spool);
        }
    }

    /// <summary>
    /// The stored syntax if the receiver took it; else a native syntax it took that the stored one converts or decodes to;
    /// else any syntax it took that the transcoder writes (a receiver that takes only a compressed syntax).
    /// </summary>
    private (PresentationContext? Context, bool Convert) ChooseContext(DicomAssociation target, StoreFile file)
    {
        bool mayStore = !IsGet || target.Accept?.UserInformation.RoleSelections.Any(r => r.SopClassUid == file.SopClassUid && r.ScpRole) == true;
        if (!mayStore) return (null, false);
        var candidates = target.PresentationContexts.Values.Where(c => c.Accepted && c.AbstractSyntax == file.SopClassUid).ToList();
        if (candidates.FirstOrDefault(c => c.TransferSyntaxUid == file.TransferSyntax.Uid) is { } exact) return (exact, false);
        var transcoder = _options.Transcoder;
        var chosen = candidates.FirstOrDefault(c => IsConvertible(c.TransferSyntax) && CanConvert(file.TransferSyntax, c.TransferSyntax, transcoder))
            ?? candidates.FirstOrDefault(c => c.TransferSyntax is { } ts && CanConvert(file.TransferSyntax, ts, transcoder));
        return (chosen, chosen is not null);
    }

    /// <summary>Writes the data set in <paramref name="syntax"/> to <paramref name="path"/>; large values are copied from the file, not loaded.</summary>
    private long Convert(StoreFile file, DicomTransferSyntax syntax, string path, CancellationToken cancellationToken)
    {
        using var source = DicomFile.Open(file.Source, new DicomReadOptions { TempDirectory = _options.TempDirectory, Spool = _options.Spool });
        using var output = _options.Spool.Create(path);
        if (IsConvertible(file.TransferSyntax) && IsConvertible(syntax)) DicomWriter.WriteDataset(output, source.Dataset, syntax);
        else _options.Transcoder!.WriteDataset(source.Dataset, file.TransferSyntax, syntax, output, cancellationToken);
        return output.Length;
    }

    private readonly List<RetrieveItem> _sent = [];

    private async Task CountAsync(RetrieveItem item, DimseStatus status, string? reason, CancellationToken cancellationToken)
    {
        _remaining--;
        switch (status.Category)
        {
            case DimseStatusCategory.Success:
                _completed++;
                _sent.Add(item);
                break;
            case DimseStatusCategory.Warning:
                _warning++;
                _sent.Add(item);
                break;
            default:
                _failed++;
                _failedUids.Add(item.SopInstanceUid);
                _log.LogWarning("{Association}: sub-operation for {SopInstance} failed: {Status} {Reason}", _requestor.Info, item.SopInstanceUid, status, reason);
                break;
        }
        if (_remaining > 0 && !cancellationToken.IsCancellationRequested && Stopwatch.GetElapsedTime(_lastPending) >= _options.PendingInterval)
        {
            _lastPending = Stopwatch.GetTimestamp();
            await _sendPending(new DimseReply(DimseCommand.RetrieveResponse(_request, DimseStatus.Pending, Counts, hasIdentifier: false)));
        }
    }

    private DimseReply Final(DimseStatus status, string? comment = null)
    {
        DicomDataset? failed = null;
        if (_failedUids.Count > 0)
        {
            failed = new DicomDataset();
            failed.AddString(DicomTags.FailedSOPInstanceUIDList, DicomVR.UI, string.Join('\\', _failedUids));
        }
        return new DimseReply(DimseCommand.RetrieveResponse(_request, status, Counts, failed is not null, comment), failed);
    }
}
