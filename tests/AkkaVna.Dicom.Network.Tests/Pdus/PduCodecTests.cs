using System.Buffers;
using AkkaVna.Dicom.Network.Pdus;

namespace AkkaVna.Dicom.Network.Tests.Pdus;

/// <summary>Every PDU and sub-item of PS3.8 9.3 and PS3.7 D.3.3 encodes and decodes back; malformed ones name the A-ABORT reason.</summary>
public sealed class PduCodecTests
{
    private static T RoundTrip<T>(T pdu) where T : Pdu
    {
        var bytes = PduCodec.Encode(pdu);
        Assert.Equal((byte)pdu.Type, bytes[0]);
        Assert.Equal((uint)(bytes.Length - 6), System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(bytes.AsSpan(2)));
        return Assert.IsType<T>(PduCodec.Decode(pdu.Type, new ReadOnlySequence<byte>(bytes, 6, bytes.Length - 6)));
    }

    [Fact]
    public void An_A_ASSOCIATE_RQ_with_every_sub_item_round_trips()
    {
        var rq = new AssociateRequest
        {
            CalledAE = "ARCHIVE", CallingAE = "MODALITY",
            PresentationContexts =
            [
                new PresentationContextProposal(1, DicomUids.CTImageStorage, [DicomUids.JPEGLSLossless, DicomUids.ExplicitVRLittleEndian]),
                new PresentationContextProposal(3, DicomUids.Verification, [DicomUids.ImplicitVRLittleEndian]),
            ],
            UserInformation = new UserInformation
            {
                MaximumLength = 65536, ImplementationClassUid = "1.2.3.4.5", ImplementationVersionName = "TEST_1",
                AsyncOperations = (8, 2),
                RoleSelections = [new RoleSelection(DicomUids.CTImageStorage, true, true)],
                ExtendedNegotiations = [new ExtendedNegotiation(DicomUids.StudyRootQueryRetrieveInformationModelFind, [1, 1, 0])],
                CommonExtendedNegotiations = [new CommonExtendedNegotiation(DicomUids.CTImageStorage, "1.2.840.10008.4.2", ["1.2.3", "1.2.4"])],
                UserIdentity = new UserIdentityRequest(UserIdentityType.UsernameAndPasscode, true, "alice"u8.ToArray(), "secret"u8.ToArray()),
                Unknown = [(0x7A, new byte[] { 9, 9 })],
            },
        };
        var back = RoundTrip(rq);
        Assert.Equal(("ARCHIVE", "MODALITY", (ushort)1, DicomUids.DICOMApplicationContext), (back.CalledAE, back.CallingAE, back.ProtocolVersion, back.ApplicationContext));
        Assert.Equal(2, back.PresentationContexts.Count);
        Assert.Equal(rq.PresentationContexts[0].TransferSyntaxes, back.PresentationContexts[0].TransferSyntaxes);
        var u = back.UserInformation;
        Assert.Equal((65536u, "1.2.3.4.5", "TEST_1"), (u.MaximumLength, u.ImplementationClassUid, u.ImplementationVersionName));
        Assert.Equal(((ushort)8, (ushort)2), u.AsyncOperations);
        Assert.Equal(rq.UserInformation.RoleSelections, u.RoleSelections);
        Assert.Equal([1, 1, 0], u.ExtendedNegotiations.Single().ApplicationInformation);
        Assert.Equal(["1.2.3", "1.2.4"], u.CommonExtendedNegotiations.Single().RelatedGeneralSopClasses);
        Assert.Equal("1.2.840.10008.4.2", u.CommonExtendedNegotiations.Single().ServiceClassUid);
        Assert.Equal((UserIdentityType.UsernameAndPasscode, true), (u.UserIdentity!.IdentityType, u.UserIdentity.PositiveResponseRequested));
        Assert.Equal("alice"u8.ToArray(), u.UserIdentity.PrimaryField);
        Assert.Equal("secret"u8.ToArray(), u.UserIdentity.SecondaryField);
        Assert.Equal((byte)0x7A, u.Unknown.Single().Type);
    }

    [Fact]
    public void An_A_ASSOCIATE_AC_with_results_and_a_user_identity_response_round_trips()
    {
        var ac = new AssociateAccept
        {
            CalledAE = "ARCHIVE", CallingAE = "MODALITY",
            PresentationContexts =
            [
                new PresentationContextResult(1, PresentationContextResultReason.Acceptance, DicomUids.JPEGLSLossless),
                new PresentationContextResult(3, PresentationContextResultReason.AbstractSyntaxNotSupported, ""),
            ],
            UserInformation = new UserInformation { MaximumLength = 0, UserIdentityServerResponse = [1, 2, 3] },
        };
        var back = RoundTrip(ac);
        Assert.Equal(ac.PresentationContexts, back.PresentationContexts);
        Assert.Equal([1, 2, 3], back.UserInformation.UserIdentityServerResponse);
    }

    [Fact]
    public void The_fixed_size_PDUs_round_trip()
    {
        Assert.Equal(new AssociateReject(RejectResult.Transient, RejectSource.ServiceProviderPresentation, 2), RoundTrip(new AssociateReject(RejectResult.Transient, RejectSource.ServiceProviderPresentation, 2)));
        Assert.Equal(new Abort(AbortSource.ServiceProvider, Abort.UnexpectedPdu), RoundTrip(new Abort(AbortSource.ServiceProvider, Abort.UnexpectedPdu)));
        RoundTrip(ReleaseRequest.Instance);
        RoundTrip(ReleaseResponse.Instance);
    }

    [Theory]
    [InlineData(PduType.AssociateReject, "00000102", "A-ASSOCIATE-RJ result 0")]     // result must be 1 or 2
    [InlineData(PduType.ReleaseRequest, "000000", "not 4")]                        // three bytes
    [InlineData(PduType.Abort, "0000000000", "not 4")]                             // five bytes
    public void Malformed_fixed_PDUs_give_invalid_parameter(PduType type, string hex, string message)
    {
        var e = Assert.Throws<PduFormatException>(() => PduCodec.Decode(type, new ReadOnlySequence<byte>(Convert.FromHexString(hex))));
        Assert.Equal(Abort.InvalidPduParameterValue, e.AbortReason);
        Assert.Contains(message, e.Message);
    }

    [Fact]
    public void An_even_presentation_context_ID_is_invalid()
    {
        var bytes = PduCodec.Encode(new AssociateRequest
        {
            CalledAE = "A", CallingAE = "B",
            PresentationContexts = [new PresentationContextProposal(2, DicomUids.Verification, [DicomUids.ImplicitVRLittleEndian])],
        });
        var e = Assert.Throws<PduFormatException>(() => PduCodec.Decode(PduType.AssociateRequest, new ReadOnlySequence<byte>(bytes, 6, bytes.Length - 6)));
        Assert.Contains("not odd", e.Message);
    }

    [Theory]
    [InlineData("AKKAVNA", true)]
    [InlineData("SIXTEEN-CHARS-OK", true)]
    [InlineData("SEVENTEEN-CHARS-X", false)]
    [InlineData("BACK\\SLASH", false)]
    [InlineData("   ", false)]
    [InlineData("", false)]
    public void AE_titles_are_validated(string ae, bool valid) => Assert.Equal(valid, PduCodec.IsValidAETitle(ae));
}
