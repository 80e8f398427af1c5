using AkkaVna.Dicom;
using AkkaVna.Dicom.IO;
using AkkaVna.Dicom.Network;
using AkkaVna.Dicom.Network.Dimse;
using AkkaVna.Dicom.Network.Pdus;
using AkkaVna.Dicom.Network.Scu;
using AkkaVna.Testing;

namespace AkkaVna.Host.Tests.Serve;

/// <summary>
/// The edges of C-FIND on a loopback archive with a low match limit, driven by AkkaVna's own SCU (which can send what
/// dcmtk's tools do not: a C-CANCEL right behind its C-FIND, a malformed identifier).
/// </summary>
public sealed class QueryLimitsTests : IAsyncLifetime
{
    private const int MaxMatches = 25, Instances = 60;
    private readonly TempDir _dir = new();
    private ArchiveServer _server = null!;
    private string _study = "";

    public Task InitializeAsync()
    {
        _server = new ArchiveServer(_dir.File("data"), $"akka-vna.query.max-matches = {MaxMatches}");
        var files = Testing.Instances.WriteStudy(_dir.File("study"), Instances, 2048, seed: 7).Select(StoreFile.Read).ToList();
        _study = IngestTests.StudyOf(files[0].Path);
        var r = Assert.Single(Storescu.Send(Storescu.WriteConfig(_dir, files), _server.DicomPort, files, 1, TimeSpan.FromMinutes(2)));
        Assert.All(Storescu.Responses(r).Values, v => Assert.Equal("Success", v));
        return Task.CompletedTask;
    }

    public Task DisposeAsync()
    {
        _server.Dispose();
        _dir.Dispose();
        return Task.CompletedTask;
    }

    private async Task<DicomAssociation> ConnectAsync() =>
        await DicomAssociation.ConnectAsync("127.0.0.1", _server.DicomPort, new AssociateRequest
        {
            CalledAE = "AKKAVNA",
            CallingAE = "LIMITS",
            PresentationContexts =
            [
                new PresentationContextProposal(1, DicomUids.StudyRootQueryRetrieveInformationModelFind, [DicomUids.ExplicitVRLittleEndian]),
                new PresentationContextProposal(3, DicomUids.Verification, [DicomUids.ImplicitVRLittleEndian]),
            ],
            UserInformation = new UserInformation { ImplementationClassUid = "1.2.3.4" },
        });

    private static MemoryStream Encode(DicomDataset identifier)
    {
        var ms = new MemoryStream();
        DicomWriter.WriteDataset(ms, identifier, DicomTransferSyntax.ExplicitVRLittleEndian);
        ms.Position = 0;
        return ms;
    }

    private static DicomDataset ImageQuery(string study)
    {
        var id = new DicomDataset();
        id.AddString(DicomTags.QueryRetrieveLevel, DicomVR.CS, "IMAGE");
        id.AddString(DicomTags.StudyInstanceUID, DicomVR.UI, study);
        id.AddBytes(DicomTags.SOPInstanceUID, DicomVR.UI, new Dicom.Buffers.MemoryByteBuffer(ReadOnlyMemory<byte>.Empty));
        return id;
    }

    [Fact]
    public async Task A_query_matching_more_than_the_limit_stops_there_with_out_of_resources_and_the_reason()
    {
        await using var a = await ConnectAsync();
        int pending = 0;
        using var identifier = Encode(ImageQuery(_study));
        var rsp = await a.SendRequestAsync(1, DimseCommand.FindRequest(a.NextMessageId(), DicomUids.StudyRootQueryRetrieveInformationModelFind), identifier, identifier.Length,
            _ => Interlocked.Increment(ref pending));
        Assert.Equal(DimseStatus.QueryOutOfResources, rsp.Status);
        Assert.Contains("narrow the query", rsp.Command.ErrorComment, StringComparison.Ordinal);
        Assert.Equal(MaxMatches, pending);
        await a.ReleaseAsync();
    }

    [Fact]
    public async Task A_cancel_right_behind_the_find_ends_it_with_the_cancel_status()
    {
        await using var a = await ConnectAsync();
        int pending = 0;
        ushort id = a.NextMessageId();
        using var identifier = Encode(ImageQuery(_study));
        var find = a.SendRequestAsync(1, DimseCommand.FindRequest(id, DicomUids.StudyRootQueryRetrieveInformationModelFind), identifier, identifier.Length,
            _ => Interlocked.Increment(ref pending));
        await a.CancelAsync(1, id);
        var rsp = await find.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(DimseStatus.Cancel, rsp.Status);
        Assert.InRange(pending, 0, MaxMatches - 1);
        Assert.True((await a.EchoAsync()).IsSuccess);
        await a.ReleaseAsync();
    }

    [Fact]
    public async Task A_malformed_identifier_gets_unable_to_process_with_the_reason_and_the_association_goes_on()
    {
        await using var a = await ConnectAsync();
        // An element whose length runs past the end of the data set.
        using var garbage = new MemoryStream([0x08, 0x00, 0x52, 0x00, (byte)'C', (byte)'S', 0x40, 0x00, (byte)'S', (byte)'T']);
        var rsp = await a.SendRequestAsync(1, DimseCommand.FindRequest(a.NextMessageId(), DicomUids.StudyRootQueryRetrieveInformationModelFind), garbage, garbage.Length);
        Assert.Equal(DimseStatus.UnableToProcess, rsp.Status);
        Assert.StartsWith("malformed identifier", rsp.Command.ErrorComment, StringComparison.Ordinal);
        // A query with no level is refused as not matching the SOP class.
        var noLevel = new DicomDataset();
        noLevel.AddString(DicomTags.PatientID, DicomVR.LO, "P7");
        using var identifier = Encode(noLevel);
        rsp = await a.SendRequestAsync(1, DimseCommand.FindRequest(a.NextMessageId(), DicomUids.StudyRootQueryRetrieveInformationModelFind), identifier, identifier.Length);
        Assert.Equal(DimseStatus.IdentifierDoesNotMatchSopClass, rsp.Status);
        Assert.Contains("Query/Retrieve Level", rsp.Command.ErrorComment, StringComparison.Ordinal);
        Assert.True((await a.EchoAsync()).IsSuccess);
        await a.ReleaseAsync();
        await using var index = await ArchiveServer.OpenIndexAsync(_dir.File("data"));
        Assert.Equal(Instances, (await index.CountAsync(CancellationToken.None)).Instances);
    }
}
