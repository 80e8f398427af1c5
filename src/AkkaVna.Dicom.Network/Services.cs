using System.Buffers;
using System.Net;
using AkkaVna.Dicom.Network.Dimse;

namespace AkkaVna.Dicom.Network;

/// <summary>Who is on the other end of an association, as negotiated.</summary>
public sealed record AssociationInfo(string CallingAE, string CalledAE, EndPoint? RemoteEndPoint, string? ImplementationClassUid, string? ImplementationVersionName)
{
    public override string ToString() => $"{CallingAE} -> {CalledAE} ({RemoteEndPoint})";
}

/// <summary>A C-STORE request as the SCP sees it when its data set begins to arrive.</summary>
public sealed record StoreRequest(AssociationInfo Association, DimseCommand Command, string SopClassUid, string SopInstanceUid, DicomTransferSyntax TransferSyntax);

/// <summary>The outcome of a DIMSE operation: a status and, for failures and warnings, why (sent as Error Comment).</summary>
public readonly record struct DimseResult(DimseStatus Status, string? Comment = null)
{
    public static readonly DimseResult Success = new(DimseStatus.Success);
}

/// <summary>Thrown by a handler to refuse an operation with a status and a reason.</summary>
public sealed class DimseException(DimseStatus status, string comment) : Exception(comment)
{
    public DimseStatus Status { get; } = status;
}

/// <summary>
/// The one handler for "C-STORE received" (an intervention, not a notification): it opens a sink for the data set,
/// which then arrives fragment by fragment as P-DATA PDUs are read — never whole in memory — and returns the status
/// when the data set is complete. Throwing <see cref="DimseException"/> refuses the instance with that status (the rest of
/// the data set is read and discarded).
/// </summary>
public interface ICStoreHandler
{
    ValueTask<IStoreSink> BeginAsync(StoreRequest request, CancellationToken cancellationToken);
}

/// <summary>
/// Receives one data set as it arrives. <see cref="WriteAsync"/> gets slices of the transport's buffer, valid only until
/// it returns: the association does not read further until the sink has taken them (back-pressure). Disposed without
/// <see cref="CompleteAsync"/> when the association fails mid-data-set: the sink must then discard what it wrote.
/// </summary>
public interface IStoreSink : IAsyncDisposable
{
    ValueTask WriteAsync(ReadOnlySequence<byte> data, CancellationToken cancellationToken);

    /// <summary>All fragments arrived: make the instance durable (or not) and say so. The C-STORE-RSP carries the result.</summary>
    ValueTask<DimseResult> CompleteAsync(CancellationToken cancellationToken);
}

/// <summary>The handler for C-ECHO (Verification): success unless it says otherwise.</summary>
public interface ICEchoHandler
{
    ValueTask<DimseResult> EchoAsync(AssociationInfo association, CancellationToken cancellationToken);
}

/// <summary>What an SCP offers on its associations: its negotiation policy and one handler per service.</summary>
public sealed record DicomServices
{
    public AssociationPolicy Policy { get; init; } = new();
    public ICStoreHandler? Store { get; init; }
    public ICEchoHandler? Echo { get; init; }
}
