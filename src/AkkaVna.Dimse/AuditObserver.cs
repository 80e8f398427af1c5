using System.Net;
using AkkaVna.Core.Audit;
using AkkaVna.Dicom.Network;
using AkkaVna.Dicom.Network.Dimse;

namespace AkkaVna.Dimse;

/// <summary>
/// The DICOM side of the audit trail: an association accepted is a Login (User Authentication), one refused for who or
/// where it is a failed Login, a refused TLS handshake a Node Authentication alert, an operation refused for want of
/// permission a Use of Restricted Function alert; an association's end reports the instances it stored.
/// </summary>
public sealed class AuditObserver(IAuditTrail audit, AuditParticipant archive, TimeProvider time) : IAssociationObserver
{
    /// <summary>The calling AE as an audit participant: its AE title, the address it came from.</summary>
    public static AuditParticipant Peer(AssociationInfo a, bool isRequestor = true, AuditRole role = AuditRole.None) =>
        new(a.CallingAE is { Length: > 0 } ae ? ae : "unknown", a.CallingAE is { Length: > 0 } ? a.CallingAE : null, HostOf(a.RemoteEndPoint), isRequestor, role);

    public static string? HostOf(EndPoint? endPoint) => endPoint switch
    {
        IPEndPoint ip => (ip.Address.IsIPv4MappedToIPv6 ? ip.Address.MapToIPv4() : ip.Address).ToString(),
        DnsEndPoint dns => dns.Host,
        _ => null,
    };

    /// <summary>The key under which an association's stored instances are gathered.</summary>
    public static string TransferOf(AssociationInfo a) => "dicom:" + a.Id.ToString(System.Globalization.CultureInfo.InvariantCulture);

    public void Accepted(AssociationInfo association) =>
        audit.Record(new Authentication(time.GetUtcNow(), AuditOutcome.Success, $"association {association.CallingAE} -> {association.CalledAE} accepted",
            Peer(association), archive));

    public void Rejected(AssociationInfo association, string reason) =>
        audit.Record(new Authentication(time.GetUtcNow(), AuditOutcome.MinorFailure, $"association {association.CallingAE} -> {association.CalledAE} rejected: {reason}",
            Peer(association), archive));

    public void Ended(AssociationInfo association) => audit.EndOfTransfer(TransferOf(association));

    public void Refused(AssociationInfo association, DimseCommandField operation, string reason) =>
        audit.Record(new SecurityAlert(time.GetUtcNow(), SecurityAlertType.UseOfRestrictedFunction, $"{operation} refused (0124H): {reason}", archive, Peer(association)));

    public void ConnectionRefused(EndPoint? remote, string reason) =>
        audit.Record(new SecurityAlert(time.GetUtcNow(), SecurityAlertType.NodeAuthentication, reason, archive,
            new AuditParticipant(HostOf(remote) ?? "unknown", null, HostOf(remote), IsRequestor: true)));
}
