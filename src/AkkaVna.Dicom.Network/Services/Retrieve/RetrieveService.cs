using AkkaVna.Dicom.Network.Dimse;
using AkkaVna.Dicom.Network.Scp;

namespace AkkaVna.Dicom.Network.Services;

/// <summary>
/// C-MOVE and C-GET (PS3.4 C.4.2, C.4.3): the handler resolves the identifier, and the C-STORE sub-operations run to the
/// move destination or back over the requestor's own association (<see cref="RetrieveOperation"/>).
/// </summary>
public sealed class RetrieveService(ICRetrieveHandler handler, RetrieveOptions options) : DimseService
{
    public override IReadOnlyCollection<DimseCommandField> Requests { get; } = [DimseCommandField.CMoveRequest, DimseCommandField.CGetRequest];

    public override bool Windowed => true;

    public override async Task<DimseReply> PerformAsync(DimseOperation operation)
    {
        DicomDataset identifier;
        try
        {
            identifier = operation.ParseDataSet();
        }
        catch (DimseFormatException e)
        {
            return Refuse(operation.Command, DimseStatus.UnableToProcess, "malformed identifier: " + e.Message);
        }
        var retrieve = new RetrieveOperation(operation.Association, operation.Command, handler, options, operation.Association.Options, operation.Log, operation.SendPending);
        return await retrieve.RunAsync(operation.Context.AbstractSyntax, identifier, operation.Cancellation);
    }

    public override DimseReply Refuse(DimseCommand request, DimseStatus status, string reason) =>
        new(DimseCommand.RetrieveResponse(request, status, default, false, reason));
}
