using System.Net;
using Akka.Configuration;
using AkkaVna.Dicom.Network;

namespace AkkaVna.Host;

/// <summary>Reads <c>akka-vna.dicom.peers</c> and <c>akka-vna.dicom.accept-unknown-peers</c>: who may associate, from where, and do what.</summary>
internal static class PeersConfig
{
    public static PeerAccess Read(Config c, IReadOnlyDictionary<string, MoveDestination> destinations)
    {
        var peers = new List<DicomPeer>();
        foreach (var (where, p) in CompressionConfig.Objects(c, "dicom.peers"))
        {
            string ae = p.GetString("ae-title") is { } t && Dicom.Network.Pdus.PduCodec.IsValidAETitle(t) ? t
                : throw new ArchiveConfigException($"{where}.ae-title must be an AE title (1-16 characters, no backslash or control characters)");
            var hosts = new List<IPNetwork>();
            foreach (var h in p.GetStringList("hosts") ?? [])
            {
                string text = h.Trim();
                if (IPNetwork.TryParse(text, out var network)) hosts.Add(network);
                else if (IPAddress.TryParse(text, out var address)) hosts.Add(new IPNetwork(address, address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork ? 32 : 128));
                else throw new ArchiveConfigException($"{where}.hosts: '{h}' is not an address or a network (10.1.2.3, 10.1.2.0/24, ::1)");
            }
            var permissions = DicomPermissions.None;
            foreach (var word in p.GetStringList("permissions") ?? [])
                permissions |= DicomPeer.Permission(word) ?? throw new ArchiveConfigException($"{where}.permissions: '{word}' is not one of echo, store, find, get, move");
            IReadOnlySet<string>? moveTo = null;
            if (p.HasPath("move-destinations"))
            {
                moveTo = (p.GetStringList("move-destinations") ?? []).ToHashSet(StringComparer.Ordinal);
                foreach (var d in moveTo)
                    if (!destinations.ContainsKey(d))
                        throw new ArchiveConfigException($"{where}.move-destinations: '{d}' is not a destination of akka-vna.retrieve.destinations");
            }
            string? subject = p.GetString("certificate-subject") is { Length: > 0 } cs ? cs : null;
            if (subject is not null)
            {
                try
                {
                    _ = new System.Security.Cryptography.X509Certificates.X500DistinguishedName(subject);
                }
                catch (System.Security.Cryptography.CryptographicException)
                {
                    throw new ArchiveConfigException($"{where}.certificate-subject: '{subject}' is not a distinguished name (e.g. \"CN=CT1, O=Hospital\")");
                }
            }
            peers.Add(new DicomPeer(ae, hosts, permissions) { MoveDestinations = moveTo, CertificateSubject = subject });
        }
        return new PeerAccess(peers, c.GetBoolean("dicom.accept-unknown-peers", true));
    }
}
