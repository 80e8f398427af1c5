using AkkaVna.Dicom.Network.Dimse;
using AkkaVna.Dicom.Network.Pdus;
using AkkaVna.Dicom.Network.Services;

namespace AkkaVna.Dicom.Network.Tests.Transport;

/// <summary>
/// New DIMSE services join through the registry, without editing the association: a service for N-ACTION (what Storage
/// Commitment's push model sends) performs its requests over a real TCP association; one registry cannot hold two
/// services for one request.
/// </summary>
public sealed class ServiceRegistryTests
{
    private const string StorageCommitment = "1.2.840.10008.1.20.1";

    /// <summary>Answers N-ACTION with success and counts what it performed.</summary>
    private sealed class ActionService : DimseService
    {
        public int Performed;
        public override IReadOnlyCollection<DimseCommandField> Requests { get; } = [DimseCommandField.NActionRequest];

        public override Task<DimseReply> PerformAsync(DimseOperation operation)
        {
            Interlocked.Increment(ref Performed);
            return Task.FromResult(new DimseReply(DimseCommand.ResponseTo(operation.Command, DimseStatus.Success)));
        }

        public override DimseReply Refuse(DimseCommand request, DimseStatus status, string reason) => new(DimseCommand.ResponseTo(request, status));
    }

    [Fact]
    public async Task A_service_added_to_the_registry_performs_its_requests_and_others_stay_unrecognized()
    {
        var action = new ActionService();
        await using var server = new DicomServer(new DicomServerOptions { Port = 0 }, new DicomServices
        {
            Policy = new AssociationPolicy
            {
                CalledAETitles = new HashSet<string> { "REGISTRY" },
                AcceptAbstractSyntax = uid => uid == StorageCommitment || AssociationPolicy.DefaultAbstractSyntaxes(uid),
            },
            Extra = [action],
        });
        server.Start();
        var rq = new AssociateRequest
        {
            CalledAE = "REGISTRY",
            CallingAE = "TESTER",
            PresentationContexts = [new PresentationContextProposal(1, StorageCommitment, [DicomTransferSyntax.ImplicitVRLittleEndian.Uid])],
            UserInformation = new UserInformation { ImplementationClassUid = DicomImplementation.ClassUid },
        };
        await using var association = await DicomAssociation.ConnectAsync("127.0.0.1", server.LocalEndPoint.Port, rq);
        var rsp = await association.SendRequestAsync(1, DimseCommand.Request(DimseCommandField.NActionRequest, StorageCommitment, association.NextMessageId(), false));
        Assert.Equal((DimseCommandField.NActionResponse, DimseStatus.Success), (rsp.Command.Field, rsp.Status));
        Assert.Equal(1, action.Performed);
        var other = await association.SendRequestAsync(1, DimseCommand.Request(DimseCommandField.NEventReportRequest, StorageCommitment, association.NextMessageId(), false));
        Assert.Equal(DimseStatus.UnrecognizedOperation, other.Status);
        await association.ReleaseAsync();
    }

    [Fact]
    public void Two_services_for_one_request_are_refused() =>
        Assert.Throws<ArgumentException>(() => new DimseServiceRegistry([new EchoService(null), new EchoService(null)]));
}
