using System.Net;

namespace AkkaVna.Dicom.Network;

/// <summary>What a peer may ask of this AE.</summary>
[Flags]
public enum DicomPermissions
{
    None = 0,
    Echo = 1,
    Store = 2,
    Find = 4,
    Get = 8,
    Move = 16,
    All = Echo | Store | Find | Get | Move,
}

/// <summary>
/// A known peer: its AE title, the hosts or networks it may associate from (empty: any), what it may do, and for C-MOVE
/// the destinations it may name (null: any this AE knows).
/// </summary>
public sealed record DicomPeer(string AETitle, IReadOnlyList<IPNetwork> Hosts, DicomPermissions Permissions)
{
    public IReadOnlySet<string>? MoveDestinations { get; init; }

    /// <summary>
    /// The subject its TLS client certificate must have (e.g. "CN=CT1, O=Hospital"); null: any, or none. A peer with a
    /// subject can associate only over TLS with a certificate that the listener trusts and that names it.
    /// </summary>
    public string? CertificateSubject { get; init; }

    /// <summary>Whether a connection whose client certificate has <paramref name="subject"/> (null: none, or plain TCP) may be this peer.</summary>
    public bool Presents(string? subject) => CertificateSubject is null || subject is not null && SameSubject(subject, CertificateSubject);

    /// <summary>Two distinguished names as equal: the same attributes and values in the same order, case and spacing aside.</summary>
    public static bool SameSubject(string a, string b)
    {
        static string Normal(string dn)
        {
            try
            {
                return new System.Security.Cryptography.X509Certificates.X500DistinguishedName(dn)
                    .Decode(System.Security.Cryptography.X509Certificates.X500DistinguishedNameFlags.UseCommas).ToUpperInvariant();
            }
            catch (System.Security.Cryptography.CryptographicException)
            {
                return string.Join(",", dn.Split(',').Select(p => p.Trim())).ToUpperInvariant();
            }
        }
        return Normal(a) == Normal(b);
    }

    /// <summary>A peer not in the list, let in because unknown peers are accepted: it may do everything.</summary>
    public static DicomPeer Unknown(string aeTitle) => new(aeTitle, [], DicomPermissions.All) { IsKnown = false };

    /// <summary>False for a peer let in only because unknown peers are accepted.</summary>
    public bool IsKnown { get; init; } = true;

    public bool May(DicomPermissions permission) => (Permissions & permission) == permission;

    public bool ComesFrom(IPAddress? address) =>
        Hosts.Count == 0 || address is not null && Hosts.Any(n => n.Contains(address.IsIPv4MappedToIPv6 ? address.MapToIPv4() : address));

    /// <summary>Whether this peer may have instances sent to <paramref name="destination"/> by C-MOVE.</summary>
    public bool MayMoveTo(string destination) => MoveDestinations is null || MoveDestinations.Contains(destination);

    /// <summary>Parses a permission name (echo, store, find, get, move); null for another word.</summary>
    public static DicomPermissions? Permission(string name) => name.Trim().ToLowerInvariant() switch
    {
        "echo" => DicomPermissions.Echo,
        "store" => DicomPermissions.Store,
        "find" => DicomPermissions.Find,
        "get" => DicomPermissions.Get,
        "move" => DicomPermissions.Move,
        _ => null,
    };
}

/// <summary>
/// Who may associate: the known peers (<c>akka-vna.dicom.peers</c>) and whether any other calling AE title is let in
/// (<c>accept-unknown-peers</c>). A known AE title from a host none of its entries allows is refused like an unknown one.
/// </summary>
public sealed record PeerAccess(IReadOnlyList<DicomPeer> Peers, bool AcceptUnknownPeers)
{
    /// <summary>No list, everyone in: the embedded first run.</summary>
    public static readonly PeerAccess Open = new([], true);

    /// <summary>The peer an association request comes from, or why it is refused.</summary>
    public (DicomPeer? Peer, string? Refusal) Admit(string callingAE, IPAddress? address, string? certificateSubject = null)
    {
        var named = Peers.Where(p => p.AETitle == callingAE).ToList();
        if (named.Count == 0)
            return AcceptUnknownPeers ? (DicomPeer.Unknown(callingAE), null)
                : (null, $"calling AE title '{callingAE}' is not a known peer (akka-vna.dicom.peers; accept-unknown-peers = off)");
        var near = named.Where(p => p.ComesFrom(address)).ToList();
        if (near.FirstOrDefault(p => p.Presents(certificateSubject)) is { } peer) return (peer, null);
        if (near.Count > 0)
            return (null, $"calling AE title '{callingAE}' must present a TLS client certificate with subject '{near.First(p => p.CertificateSubject is not null).CertificateSubject}' "
                + (certificateSubject is null ? "(it presented none)" : $"(it presented '{certificateSubject}')"));
        return (null, $"calling AE title '{callingAE}' may not associate from {address?.ToString() ?? "an unknown address"} (its hosts: "
            + string.Join(", ", named.SelectMany(p => p.Hosts).Select(h => h.ToString())) + ")");
    }
}
