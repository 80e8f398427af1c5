using System.Net;
using AkkaVna.Dicom.Network;
using AkkaVna.Dicom.Network.Pdus;

namespace AkkaVna.Dicom.Network.Tests.Access;

public sealed class PeerAccessTests
{
    private static readonly DicomPeer Modality = new("CT1", [IPNetwork.Parse("10.1.2.0/24")], DicomPermissions.Echo | DicomPermissions.Store);
    private static readonly DicomPeer Viewer = new("VIEWER", [IPNetwork.Parse("10.1.3.5/32"), IPNetwork.Parse("fd00::/8")], DicomPermissions.Find | DicomPermissions.Move)
    {
        MoveDestinations = new HashSet<string> { "VIEWER" },
    };

    [Theory]
    [InlineData("CT1", "10.1.2.77", true, null)]
    [InlineData("CT1", "::ffff:10.1.2.77", true, null)]          // an IPv4 peer seen through a dual-stack socket
    [InlineData("CT1", "10.1.3.5", false, "may not associate from 10.1.3.5")]
    [InlineData("VIEWER", "fd00::12", true, null)]
    [InlineData("VIEWER", "10.1.3.6", false, "may not associate from 10.1.3.6")]
    [InlineData("ct1", "10.1.2.77", false, "is not a known peer")]  // AE titles are case-sensitive
    [InlineData("STRANGER", "10.1.2.77", false, "is not a known peer")]
    public void Only_a_known_AE_title_from_one_of_its_hosts_is_admitted_when_unknown_peers_are_refused(string ae, string from, bool admitted, string? why)
    {
        var access = new PeerAccess([Modality, Viewer], AcceptUnknownPeers: false);
        var (peer, refusal) = access.Admit(ae, IPAddress.Parse(from));
        Assert.Equal(admitted, peer is not null);
        if (why is null) Assert.Null(refusal);
        else Assert.Contains(why, refusal, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("CN=CT1, O=Hospital", true, null)]
    [InlineData("cn=ct1,  o=HOSPITAL", true, null)]                 // case and spacing aside
    [InlineData("CN=CT2, O=Hospital", false, "(it presented 'CN=CT2, O=Hospital')")]
    [InlineData("O=Hospital, CN=CT1", false, "must present a TLS client certificate with subject 'CN=CT1, O=Hospital'")] // order matters
    [InlineData(null, false, "(it presented none)")]
    public void A_peer_with_a_certificate_subject_is_admitted_only_with_a_certificate_naming_it(string? presented, bool admitted, string? why)
    {
        var ct = Modality with { CertificateSubject = "CN=CT1, O=Hospital" };
        var (peer, refusal) = new PeerAccess([ct], AcceptUnknownPeers: false).Admit("CT1", IPAddress.Parse("10.1.2.7"), presented);
        Assert.Equal(admitted, peer is not null);
        if (why is null) Assert.Null(refusal);
        else Assert.Contains(why, refusal, StringComparison.Ordinal);
        // The host is checked first: from elsewhere, the certificate does not help.
        Assert.Contains("may not associate from", new PeerAccess([ct], false).Admit("CT1", IPAddress.Parse("10.9.9.9"), "CN=CT1, O=Hospital").Refusal, StringComparison.Ordinal);
    }

    [Fact]
    public void Unknown_peers_when_accepted_may_do_everything_and_known_ones_still_only_their_part()
    {
        var access = new PeerAccess([Modality], AcceptUnknownPeers: true);
        var (stranger, _) = access.Admit("STRANGER", IPAddress.Loopback);
        Assert.True(stranger!.May(DicomPermissions.All));
        Assert.False(stranger.IsKnown);
        Assert.True(stranger.MayMoveTo("ANYWHERE"));
        // A known AE title from a host it is not allowed from is refused even then: the list says where it may come from.
        Assert.NotNull(access.Admit("CT1", IPAddress.Loopback).Refusal);
        var (ct, _) = access.Admit("CT1", IPAddress.Parse("10.1.2.1"));
        Assert.True(ct!.May(DicomPermissions.Store));
        Assert.False(ct.May(DicomPermissions.Find));
        Assert.False(ct.May(DicomPermissions.Store | DicomPermissions.Find));
    }

    [Fact]
    public void A_peer_moves_only_to_its_destinations_and_its_verification_context_needs_echo()
    {
        Assert.True(Viewer.MayMoveTo("VIEWER"));
        Assert.False(Viewer.MayMoveTo("PACS2"));
        var rq = new AssociateRequest
        {
            CalledAE = "AKKAVNA",
            CallingAE = "VIEWER",
            PresentationContexts =
            [
                new PresentationContextProposal(1, DicomUids.Verification, [DicomTransferSyntax.ImplicitVRLittleEndian.Uid]),
                new PresentationContextProposal(3, DicomUids.StudyRootQueryRetrieveInformationModelFind, [DicomTransferSyntax.ImplicitVRLittleEndian.Uid]),
            ],
        };
        var ac = Assert.IsType<AssociateAccept>(new AssociationPolicy().Negotiate(rq, 16384, Viewer));
        Assert.Equal(PresentationContextResultReason.UserRejection, ac.PresentationContexts.Single(c => c.Id == 1).Result);
        Assert.Equal(PresentationContextResultReason.Acceptance, ac.PresentationContexts.Single(c => c.Id == 3).Result);
        var open = Assert.IsType<AssociateAccept>(new AssociationPolicy().Negotiate(rq, 16384, Modality));
        Assert.Equal(PresentationContextResultReason.Acceptance, open.PresentationContexts.Single(c => c.Id == 1).Result);
    }
}
