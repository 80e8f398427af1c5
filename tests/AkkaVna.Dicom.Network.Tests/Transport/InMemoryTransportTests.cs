using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using AkkaVna.Dicom.IO;
using AkkaVna.Dicom.Network.Dimse;
using AkkaVna.Dicom.Network.Pdus;
using AkkaVna.Dicom.Network.Scp;
using AkkaVna.Dicom.Network.Transport;
using AkkaVna.Testing;

namespace AkkaVna.Dicom.Network.Tests.Transport;

/// <summary>
/// The association knows only its transport's duplex pipe: the same requestor and acceptor run over a pair of in-memory
/// pipes (no socket at all) — negotiation, C-ECHO, C-STORE of corpus files, release — and over a transport that dies.
/// </summary>
public sealed class InMemoryTransportTests
{
    /// <summary>One end of an in-memory connection; closing it completes what the other end reads.</summary>
    private sealed class PipeEnd(PipeReader input, PipeWriter output, string name) : IDicomTransport
    {
        private int _closed;
        public PipeReader Input { get; } = input;
        public PipeWriter Output { get; } = output;
        public EndPoint? RemoteEndPoint { get; } = new DnsEndPoint(name, 0);

        public void Close()
        {
            if (Interlocked.Exchange(ref _closed, 1) != 0) return;
            Output.Complete();
            Input.CancelPendingRead();
        }

        public ValueTask DisposeAsync()
        {
            Close();
            return ValueTask.CompletedTask;
        }
    }

    private static (PipeEnd Client, PipeEnd Server) Connection()
    {
        var toServer = new Pipe();
        var toClient = new Pipe();
        return (new PipeEnd(toClient.Reader, toServer.Writer, "server"), new PipeEnd(toServer.Reader, toClient.Writer, "client"));
    }

    private sealed class Connector(IDicomTransport transport) : IDicomConnector
    {
        public ValueTask<IDicomTransport> ConnectAsync(string host, int port, TimeSpan timeout, CancellationToken cancellationToken) => ValueTask.FromResult(transport);
    }

    private static AssociateRequest Request(params StoreFile[] files) => new()
    {
        CalledAE = "MEMORY",
        CallingAE = "TESTER",
        PresentationContexts = [new PresentationContextProposal(1, DicomUids.Verification, [DicomTransferSyntax.ImplicitVRLittleEndian.Uid]),
            .. files.Select((f, i) => new PresentationContextProposal((byte)(3 + 2 * i), f.SopClassUid, [f.TransferSyntax.Uid]))],
        UserInformation = new UserInformation { ImplementationClassUid = DicomImplementation.ClassUid },
    };

    [Fact]
    public async Task An_association_runs_over_in_memory_pipes_as_over_tcp()
    {
        using var dir = new TempDir();
        var store = new FolderStoreHandler(dir.File("received"));
        await using var server = new DicomServer(new DicomServerOptions(), new DicomServices
        {
            Policy = new AssociationPolicy { CalledAETitles = new HashSet<string> { "MEMORY" } },
            Store = store,
        });
        var (client, serverEnd) = Connection();
        var serving = server.ServeAsync(serverEnd);
        var files = new[] { "pydicom/MR_small.dcm", "dicomParser/CT1_UNC.explicit_little_endian.dcm" }.Select(f => StoreFile.Read(Corpus.Get(f).Path)).ToArray();
        await using (var association = await DicomAssociation.ConnectAsync("memory", 0, Request(files), new DicomAssociationOptions { Connector = new Connector(client) }))
        {
            Assert.Equal(DimseStatus.Success, await association.EchoAsync());
            foreach (var f in files)
            {
                var pc = association.FindContext(f.SopClassUid, f.TransferSyntax.Uid)!;
                var (data, length) = f.OpenDataSet();
                await using (data)
                {
                    var rsp = await association.SendRequestAsync(pc.Id, DimseCommand.StoreRequest(association.NextMessageId(), f.SopClassUid, f.SopInstanceUid), data, length);
                    Assert.Equal(DimseStatus.Success, rsp.Status);
                }
            }
            await association.ReleaseAsync();
        }
        await serving.WaitAsync(TimeSpan.FromSeconds(10));
        foreach (var f in files)
            DatasetAssert.Equal(DicomFile.Open(f.Path).Dataset, DicomFile.Open(Path.Combine(store.Folder, FolderStoreHandler.FileNameFor(f.SopInstanceUid))).Dataset);
    }

    [Fact]
    public async Task A_transport_that_dies_mid_association_ends_it_on_both_sides()
    {
        await using var server = new DicomServer(new DicomServerOptions(), new DicomServices
        {
            Policy = new AssociationPolicy { CalledAETitles = new HashSet<string> { "MEMORY" } },
        });
        var (client, serverEnd) = Connection();
        var serving = server.ServeAsync(serverEnd);
        var association = await DicomAssociation.ConnectAsync("memory", 0, Request(), new DicomAssociationOptions { Connector = new Connector(client) });
        serverEnd.Close(); // the connection drops under the acceptor
        await association.Completion.WaitAsync(TimeSpan.FromSeconds(10));
        await serving.WaitAsync(TimeSpan.FromSeconds(10));
        await Assert.ThrowsAsync<DicomAssociationException>(() => association.EchoAsync());
        await association.DisposeAsync();
    }
}
