namespace AkkaVna.Dicom.Network;

/// <summary>Limits and timers of one association (both roles). Every wait has a timeout and every read a size limit.</summary>
public sealed record DicomAssociationOptions
{
    /// <summary>
    /// ARTIM (PS3.8 9.1.5): how long an acceptor waits for the A-ASSOCIATE-RQ after the connection opens, how long either
    /// side waits for the transport to close after a reject, release or abort, and how long a requestor waits for the
    /// A-ASSOCIATE-AC/RJ.
    /// </summary>
    public TimeSpan ArtimTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>How long a message may stall: a peer silent in the middle of a PDU or message, a response not arriving, a write not draining.</summary>
    public TimeSpan DimseTimeout { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>How long an established association may sit idle (nothing outstanding) before it is aborted.</summary>
    public TimeSpan IdleTimeout { get; init; } = TimeSpan.FromMinutes(5);

    /// <summary>Largest P-DATA-TF PDU this side receives (advertised as its maximum length).</summary>
    public uint MaxReceivePduLength { get; init; } = 256 * 1024;

    /// <summary>Largest P-DATA-TF PDU this side sends, whatever the peer allows (0 from the peer means unlimited).</summary>
    public uint MaxSendPduLength { get; init; } = 1024 * 1024;

    /// <summary>Largest A-ASSOCIATE-RQ/AC PDU accepted (128 presentation contexts with several syntaxes fit easily).</summary>
    public uint MaxAssociatePduLength { get; init; } = 256 * 1024;

    /// <summary>Largest data set kept in memory (C-FIND identifiers, responses): larger ones are refused.</summary>
    public int MaxInMemoryDataSetLength { get; init; } = 4 * 1024 * 1024;

    /// <summary>How long a requestor waits for the TCP connection.</summary>
    public TimeSpan ConnectTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>How a requestor connects to its peer: plain TCP unless another transport (TLS) is given.</summary>
    public Transport.IDicomConnector Connector { get; init; } = Transport.TcpTransport.Tcp;
}
