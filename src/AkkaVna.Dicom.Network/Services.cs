using System.Buffers;
using System.Net;
using AkkaVna.Dicom.Network.Dimse;

namespace AkkaVna.Dicom.Network;

/// <summary>Who is on the other end of an association, as negotiated.</summary>
public sealed record AssociationInfo(string CallingAE, string CalledAE, EndPoint? RemoteEndPoint, string? ImplementationClassUid, string? ImplementationVersionName)
{
    /// <summary>The peer as admitted (<see cref="PeerAccess"/>): what it may do. Null before the association is accepted.</summary>
    public DicomPeer? Peer { get; init; }

    /// <summary>Whether the peer may do <paramref name="permission"/> (a requestor's own view of an association: yes).</summary>
    public bool May(DicomPermissions permission) => Peer?.May(permission) ?? true;

    /// <summary>The refusal of an operation the peer has no permission for (sent as the Error Comment with 0124H).</summary>
    public string NotPermitted(string operation) =>
        $"{CallingAE} from {(RemoteEndPoint as IPEndPoint)?.Address.ToString() ?? "?"} may not {operation} here (akka-vna.dicom.peers)";

    /// <summary>The subject of the peer's TLS client certificate (null: none, or plain TCP).</summary>
    public string? CertificateSubject { get; init; }

    /// <summary>This process's number for the association (one per connection accepted), to tell two from the same peer apart.</summary>
    public long Id { get; init; }

    public override string ToString() => $"{CallingAE} -> {CalledAE} ({RemoteEndPoint})";
}

/// <summary>
/// What an acceptor's associations report as they go, for an audit trail: accepted, rejected (with why), ended, an
/// operation refused for want of permission (0124H), a connection dropped before DICOM began (a failed TLS handshake).
/// Called on the association's own tasks: an observer must return at once and never throw.
/// </summary>
public interface IAssociationObserver
{
    void Accepted(AssociationInfo association);
    void Rejected(AssociationInfo association, string reason);
    void Ended(AssociationInfo association);
    void Refused(AssociationInfo association, DimseCommandField operation, string reason);
    void ConnectionRefused(EndPoint? remote, string reason);
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

/// <summary>A C-FIND request: the information model (the SOP class of its presentation context) and the identifier.</summary>
public sealed record FindRequest(AssociationInfo Association, DimseCommand Command, string SopClassUid, DicomDataset Identifier);

/// <summary>One match of a C-FIND, sent as a pending response (FF01H when optional keys of the query were not supported).</summary>
public readonly record struct FindMatch(DicomDataset Identifier, bool OptionalKeysNotSupported = false);

/// <summary>
/// The handler for C-FIND: yields the matches one at a time (each goes out as a pending response as soon as it is
/// yielded); the token is cancelled by the requestor's C-CANCEL. Throwing <see cref="DimseException"/> ends the query
/// with that status and reason.
/// </summary>
public interface ICFindHandler
{
    IAsyncEnumerable<FindMatch> FindAsync(FindRequest request, CancellationToken cancellationToken);
}

/// <summary>A C-MOVE or C-GET request: the information model and the identifier of what to retrieve.</summary>
public sealed record RetrieveRequest(AssociationInfo Association, DimseCommand Command, string SopClassUid, DicomDataset Identifier);

/// <summary>
/// One instance to send in a C-STORE sub-operation: the syntax it is stored in (what is proposed to a move destination)
/// and how to open its Part 10 bytes (a file, a blob), read as they are sent. A source that is <see cref="IAsyncDisposable"/>
/// is disposed once sent.
/// </summary>
public sealed record RetrieveItem(string SopClassUid, string SopInstanceUid, string TransferSyntaxUid,
    Func<CancellationToken, ValueTask<Buffers.IRandomAccessSource>> OpenAsync)
{
    /// <summary>The instance's study, when the handler knows it (for the audit trail).</summary>
    public string? StudyInstanceUid { get; init; }
}

/// <summary>Where a C-MOVE destination AE title is reached.</summary>
public sealed record MoveDestination(string AETitle, string Host, int Port)
{
    /// <summary>Reached over DICOM TLS (with <see cref="RetrieveOptions.TlsConnector"/>).</summary>
    public bool Tls { get; init; }
}

/// <summary>
/// The handler for C-MOVE and C-GET: resolves an identifier to the instances to send (the association performs the
/// sub-operations), and a move destination's AE title to an address. Throwing <see cref="DimseException"/> refuses the
/// retrieve with that status and reason.
/// </summary>
public interface ICRetrieveHandler
{
    ValueTask<IReadOnlyList<RetrieveItem>> ResolveAsync(RetrieveRequest request, CancellationToken cancellationToken);

    /// <summary>The address of a C-MOVE destination, or null when the AE title is unknown (A801H).</summary>
    MoveDestination? FindDestination(AssociationInfo requestor, string aeTitle);

    /// <summary>The retrieve is over: what was sent (successfully) and how many sub-operations failed; to the move destination, or to the requestor (C-GET).</summary>
    void Retrieved(RetrieveRequest request, MoveDestination? destination, IReadOnlyList<RetrieveItem> sent, int failed) { }
}

/// <summary>How C-STORE sub-operations of C-MOVE reach their destination, and where converted data sets are spooled.</summary>
public sealed record RetrieveOptions
{
    /// <summary>The calling AE title of associations to move destinations; null: the AE title the requestor called.</summary>
    public string? CallingAE { get; init; }

    /// <summary>Timeouts and PDU limits of associations to move destinations.</summary>
    public DicomAssociationOptions Association { get; init; } = new();

    /// <summary>Where a data set converted to another transfer syntax is written before it is sent; the system temp folder by default.</summary>
    public string? TempDirectory { get; init; }

    /// <summary>How converted copies are written there: plain, or encrypted under a key only this process holds.</summary>
    public Buffers.Spool Spool { get; init; } = Buffers.Spool.Plain;

    /// <summary>A pending C-MOVE/C-GET response at most this often (and after the last sub-operation).</summary>
    public TimeSpan PendingInterval { get; init; } = TimeSpan.FromMilliseconds(250);

    /// <summary>
    /// Decodes (or compresses) pixel data for a receiver that does not take the stored syntax; null: only conversions
    /// between native syntaxes, and a compressed instance goes only to a receiver that takes its syntax.
    /// </summary>
    public AkkaVna.Dicom.Imaging.IPixelTranscoder? Transcoder { get; init; }

    /// <summary>How a destination with <see cref="MoveDestination.Tls"/> is reached (TLS with this AE's certificate); null: such destinations fail with the reason.</summary>
    public Transport.IDicomConnector? TlsConnector { get; init; }
}

/// <summary>What an SCP offers on its associations: its negotiation policy and one handler per service.</summary>
public sealed record DicomServices
{
    public AssociationPolicy Policy { get; init; } = new();
    public ICStoreHandler? Store { get; init; }
    public ICEchoHandler? Echo { get; init; }
    public ICFindHandler? Find { get; init; }
    public ICRetrieveHandler? Retrieve { get; init; }
    public RetrieveOptions Retrieval { get; init; } = new();

    /// <summary>Told of each association's admission, end and refusals (the audit trail); none by default.</summary>
    public IAssociationObserver? Observer { get; init; }

    /// <summary>More services (e.g. Storage Commitment) beside the built-in ones, dispatched the same way.</summary>
    public IReadOnlyList<Services.DimseService> Extra { get; init; } = [];
}
