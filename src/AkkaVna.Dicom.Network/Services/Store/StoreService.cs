using AkkaVna.Dicom.Network.Dimse;
using Microsoft.Extensions.Logging;

namespace AkkaVna.Dicom.Network.Services;

/// <summary>
/// C-STORE (PS3.7 9.1.1): the data set streams into the handler's sink PDV by PDV as it arrives, and the response carries
/// what the sink says once it made the instance safe. Without a handler every C-STORE is refused (this AE does not store).
/// </summary>
public sealed class StoreService(ICStoreHandler? handler) : DimseService
{
    public override IReadOnlyCollection<DimseCommandField> Requests { get; } = [DimseCommandField.CStoreRequest];

    public override bool StreamsDataSet => true;

    public override async ValueTask<IStoreSink> OpenDataSetAsync(DimseOperation operation)
    {
        if (handler is null) throw new DimseException(DimseStatus.SopClassNotSupported, "this AE does not accept C-STORE");
        var cmd = operation.Command;
        string sopClass = cmd.AffectedSopClassUid ?? "";
        string sopInstance = cmd.AffectedSopInstanceUid ?? "";
        if (sopClass != operation.Context.AbstractSyntax)
            throw new DimseException(DimseStatus.SopClassNotSupported, $"SOP class {sopClass} is not the context's {operation.Context.AbstractSyntax}");
        if (sopInstance.Length == 0) throw new DimseException(DimseStatus.MissingAttribute, "no Affected SOP Instance UID");
        if (!operation.Info.May(DicomPermissions.Store)) throw new DimseException(DimseStatus.NotAuthorized, operation.Info.NotPermitted("store"));
        try
        {
            return await handler.BeginAsync(new StoreRequest(operation.Info, cmd, sopClass, sopInstance, operation.Context.TransferSyntax), CancellationToken.None);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            operation.Log.LogError(e, "{Association}: cannot store {SopInstance}", operation.Info, sopInstance);
            throw new DimseException(DimseStatus.StoreOutOfResources, e.Message);
        }
    }

    public override async Task<DimseReply> PerformAsync(DimseOperation operation)
    {
        var result = await CompleteAsync(operation);
        return new DimseReply(DimseCommand.StoreResponse(operation.Command, result.Status, result.Comment));
    }

    /// <summary>The refusal, or what the sink says once it made the instance durable.</summary>
    private static async Task<DimseResult> CompleteAsync(DimseOperation operation)
    {
        if (operation.Refusal is { } r) return r;
        if (operation.Sink is not { } sink) return new DimseResult(DimseStatus.ProcessingFailure, "no sink");
        try
        {
            return await sink.CompleteAsync(CancellationToken.None);
        }
        catch (DimseException e)
        {
            return new DimseResult(e.Status, e.Message);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            operation.Log.LogError(e, "{Association}: storing {SopInstance} failed", operation.Info, operation.Command.AffectedSopInstanceUid);
            return new DimseResult(DimseStatus.StoreOutOfResources, "storage failed: " + e.Message);
        }
    }

    public override DimseReply Refuse(DimseCommand request, DimseStatus status, string reason) => new(DimseCommand.StoreResponse(request, status, reason));
}
