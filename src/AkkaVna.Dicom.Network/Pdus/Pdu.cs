namespace AkkaVna.Dicom.Network.Pdus;

/// <summary>PDU types of PS3.8 9.3.1.</summary>
public enum PduType : byte
{
    AssociateRequest = 0x01,
    AssociateAccept = 0x02,
    AssociateReject = 0x03,
    PData = 0x04,
    ReleaseRequest = 0x05,
    ReleaseResponse = 0x06,
    Abort = 0x07,
}

/// <summary>A wire PDU (as opposed to the service primitives the Upper Layer issues to its user).</summary>
public abstract record Pdu
{
    public abstract PduType Type { get; }
}

/// <summary>A-ASSOCIATE-RQ (PS3.8 9.3.2).</summary>
public sealed record AssociateRequest : Pdu
{
    public override PduType Type => PduType.AssociateRequest;
    public ushort ProtocolVersion { get; init; } = 1;
    public required string CalledAE { get; init; }
    public required string CallingAE { get; init; }
    public string ApplicationContext { get; init; } = DicomUids.DICOMApplicationContext;
    public IReadOnlyList<PresentationContextProposal> PresentationContexts { get; init; } = [];
    public UserInformation UserInformation { get; init; } = new();
}

/// <summary>A-ASSOCIATE-AC (PS3.8 9.3.3).</summary>
public sealed record AssociateAccept : Pdu
{
    public override PduType Type => PduType.AssociateAccept;
    public ushort ProtocolVersion { get; init; } = 1;
    /// <summary>Reserved in the AC: sent as received in the RQ, not tested.</summary>
    public required string CalledAE { get; init; }
    public required string CallingAE { get; init; }
    public string ApplicationContext { get; init; } = DicomUids.DICOMApplicationContext;
    public IReadOnlyList<PresentationContextResult> PresentationContexts { get; init; } = [];
    public UserInformation UserInformation { get; init; } = new();
}

public enum RejectResult : byte { Permanent = 1, Transient = 2 }

public enum RejectSource : byte
{
    ServiceUser = 1,
    ServiceProviderAcse = 2,
    ServiceProviderPresentation = 3,
}

/// <summary>A-ASSOCIATE-RJ (PS3.8 9.3.4, Table 9-21). The reason's meaning depends on the source.</summary>
public sealed record AssociateReject(RejectResult Result, RejectSource Source, byte Reason) : Pdu
{
    public override PduType Type => PduType.AssociateReject;

    // Source 1 (service-user)
    public const byte NoReasonGiven = 1;
    public const byte ApplicationContextNotSupported = 2;
    public const byte CallingAENotRecognized = 3;
    public const byte CalledAENotRecognized = 7;
    // Source 2 (service-provider, ACSE)
    public const byte ProtocolVersionNotSupported = 2;
    // Source 3 (service-provider, presentation)
    public const byte TemporaryCongestion = 1;
    public const byte LocalLimitExceeded = 2;

    public string Describe() => (Source, Reason) switch
    {
        (RejectSource.ServiceUser, NoReasonGiven) => "rejected by the service user: no reason given",
        (RejectSource.ServiceUser, ApplicationContextNotSupported) => "application context name not supported",
        (RejectSource.ServiceUser, CallingAENotRecognized) => "calling AE title not recognized",
        (RejectSource.ServiceUser, CalledAENotRecognized) => "called AE title not recognized",
        (RejectSource.ServiceProviderAcse, NoReasonGiven) => "rejected by the service provider (ACSE): no reason given",
        (RejectSource.ServiceProviderAcse, ProtocolVersionNotSupported) => "protocol version not supported",
        (RejectSource.ServiceProviderPresentation, TemporaryCongestion) => "temporary congestion",
        (RejectSource.ServiceProviderPresentation, LocalLimitExceeded) => "local limit exceeded",
        _ => $"source {(byte)Source}, reason {Reason}",
    } + (Result == RejectResult.Transient ? " (transient)" : " (permanent)");
}

/// <summary>
/// P-DATA-TF as received (PS3.8 9.3.5): <see cref="Body"/> is the PDU's variable part (the PDV items), a slice of the
/// transport's buffer that is valid only until the next read.
/// </summary>
public sealed record PDataReceived(System.Buffers.ReadOnlySequence<byte> Body) : Pdu
{
    public override PduType Type => PduType.PData;
}

/// <summary>A-RELEASE-RQ (PS3.8 9.3.6).</summary>
public sealed record ReleaseRequest : Pdu
{
    public static readonly ReleaseRequest Instance = new();
    public override PduType Type => PduType.ReleaseRequest;
}

/// <summary>A-RELEASE-RP (PS3.8 9.3.7).</summary>
public sealed record ReleaseResponse : Pdu
{
    public static readonly ReleaseResponse Instance = new();
    public override PduType Type => PduType.ReleaseResponse;
}

public enum AbortSource : byte { ServiceUser = 0, Reserved = 1, ServiceProvider = 2 }

/// <summary>A-ABORT (PS3.8 9.3.8, Table 9-26). The reason is significant only when the source is the service provider.</summary>
public sealed record Abort(AbortSource Source, byte Reason) : Pdu
{
    public override PduType Type => PduType.Abort;

    public const byte ReasonNotSpecified = 0;
    public const byte UnrecognizedPdu = 1;
    public const byte UnexpectedPdu = 2;
    public const byte UnrecognizedPduParameter = 4;
    public const byte UnexpectedPduParameter = 5;
    public const byte InvalidPduParameterValue = 6;

    public string Describe() => Source switch
    {
        AbortSource.ServiceUser => "aborted by the service user",
        _ => "aborted by the service provider: " + Reason switch
        {
            ReasonNotSpecified => "reason not specified",
            UnrecognizedPdu => "unrecognized PDU",
            UnexpectedPdu => "unexpected PDU",
            UnrecognizedPduParameter => "unrecognized PDU parameter",
            UnexpectedPduParameter => "unexpected PDU parameter",
            InvalidPduParameterValue => "invalid PDU parameter value",
            _ => $"reason {Reason}",
        },
    };
}

/// <summary>Presentation context item of an A-ASSOCIATE-RQ (item type 20H).</summary>
public sealed record PresentationContextProposal(byte Id, string AbstractSyntax, IReadOnlyList<string> TransferSyntaxes);

public enum PresentationContextResultReason : byte
{
    Acceptance = 0,
    UserRejection = 1,
    NoReason = 2,
    AbstractSyntaxNotSupported = 3,
    TransferSyntaxesNotSupported = 4,
}

/// <summary>Presentation context item of an A-ASSOCIATE-AC (item type 21H). The transfer syntax is significant only when accepted.</summary>
public sealed record PresentationContextResult(byte Id, PresentationContextResultReason Result, string TransferSyntax);

/// <summary>SCP/SCU Role Selection sub-item (54H, PS3.7 D.3.3.4).</summary>
public sealed record RoleSelection(string SopClassUid, bool ScuRole, bool ScpRole);

/// <summary>SOP Class Extended Negotiation sub-item (56H, PS3.7 D.3.3.5): service-class-specific bytes.</summary>
public sealed record ExtendedNegotiation(string SopClassUid, byte[] ApplicationInformation);

/// <summary>SOP Class Common Extended Negotiation sub-item (57H, PS3.7 D.3.3.6), request only.</summary>
public sealed record CommonExtendedNegotiation(string SopClassUid, string ServiceClassUid, IReadOnlyList<string> RelatedGeneralSopClasses);

public enum UserIdentityType : byte
{
    Username = 1,
    UsernameAndPasscode = 2,
    KerberosTicket = 3,
    SamlAssertion = 4,
    JsonWebToken = 5,
}

/// <summary>User Identity sub-item of the RQ (58H, PS3.7 D.3.3.7.1).</summary>
public sealed record UserIdentityRequest(UserIdentityType IdentityType, bool PositiveResponseRequested, byte[] PrimaryField, byte[] SecondaryField);

/// <summary>User Information item (50H) and its sub-items (PS3.8 D.1, PS3.7 D.3.3).</summary>
public sealed record UserInformation
{
    /// <summary>Maximum length of the variable part of P-DATA-TF PDUs the sender can receive; 0 = unlimited.</summary>
    public uint MaximumLength { get; init; }
    public string? ImplementationClassUid { get; init; }
    public string? ImplementationVersionName { get; init; }
    /// <summary>Asynchronous Operations Window (53H): maximum invoked / performed; 0 = unlimited. Null = not negotiated (1/1).</summary>
    public (ushort Invoked, ushort Performed)? AsyncOperations { get; init; }
    public IReadOnlyList<RoleSelection> RoleSelections { get; init; } = [];
    public IReadOnlyList<ExtendedNegotiation> ExtendedNegotiations { get; init; } = [];
    public IReadOnlyList<CommonExtendedNegotiation> CommonExtendedNegotiations { get; init; } = [];
    public UserIdentityRequest? UserIdentity { get; init; }
    /// <summary>User Identity server response (59H), AC only.</summary>
    public byte[]? UserIdentityServerResponse { get; init; }
    /// <summary>Sub-items of types this stack does not know, kept as (type, bytes) so they are not lost.</summary>
    public IReadOnlyList<(byte Type, byte[] Value)> Unknown { get; init; } = [];
}
