using AkkaVna.Dicom.Network.Dimse;

namespace AkkaVna.Dicom.Network.Services;

/// <summary>
/// C-FIND (PS3.4 C.4.1): each match the handler yields goes out at once as a pending response; C-CANCEL ends the query
/// at the next match (FE00H); a handler's <see cref="DimseException"/> ends it with that status and reason.
/// </summary>
public sealed class FindService(ICFindHandler handler) : DimseService
{
    public override IReadOnlyCollection<DimseCommandField> Requests { get; } = [DimseCommandField.CFindRequest];

    public override bool Windowed => true;

    public override async Task<DimseReply> PerformAsync(DimseOperation operation)
    {
        var cmd = operation.Command;
        if (!operation.Info.May(DicomPermissions.Find)) return Refuse(cmd, DimseStatus.NotAuthorized, operation.Info.NotPermitted("query (C-FIND)"));
        DicomDataset identifier;
        try
        {
            identifier = operation.ParseDataSet();
        }
        catch (DimseFormatException e)
        {
            return Refuse(cmd, DimseStatus.UnableToProcess, "malformed identifier: " + e.Message);
        }
        var cancel = operation.Cancellation;
        try
        {
            await foreach (var match in handler.FindAsync(new FindRequest(operation.Info, cmd, operation.Context.AbstractSyntax, identifier), cancel))
            {
                if (cancel.IsCancellationRequested) break;
                var status = match.OptionalKeysNotSupported ? DimseStatus.PendingOptionalKeysNotSupported : DimseStatus.Pending;
                await operation.SendPending(new DimseReply(DimseCommand.FindResponse(cmd, status, hasIdentifier: true), match.Identifier));
            }
        }
        catch (OperationCanceledException) when (cancel.IsCancellationRequested)
        {
        }
        catch (DimseException e)
        {
            return Refuse(cmd, e.Status, e.Message);
        }
        return new DimseReply(DimseCommand.FindResponse(cmd, cancel.IsCancellationRequested ? DimseStatus.Cancel : DimseStatus.Success, false));
    }

    public override DimseReply Refuse(DimseCommand request, DimseStatus status, string reason) => new(DimseCommand.FindResponse(request, status, false, reason));
}
