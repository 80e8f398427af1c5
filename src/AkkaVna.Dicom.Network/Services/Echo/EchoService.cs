using AkkaVna.Dicom.Network.Dimse;

namespace AkkaVna.Dicom.Network.Services;

/// <summary>C-ECHO (Verification, PS3.7 9.1.5): success unless the handler says otherwise.</summary>
public sealed class EchoService(ICEchoHandler? handler) : DimseService
{
    public override IReadOnlyCollection<DimseCommandField> Requests { get; } = [DimseCommandField.CEchoRequest];

    public override async Task<DimseReply> PerformAsync(DimseOperation operation)
    {
        var result = handler is null ? DimseResult.Success : await handler.EchoAsync(operation.Info, CancellationToken.None);
        return new DimseReply(DimseCommand.EchoResponse(operation.Command, result.Status));
    }

    public override DimseReply Refuse(DimseCommand request, DimseStatus status, string reason) => new(DimseCommand.EchoResponse(request, status));
}
