using System.Buffers.Binary;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using AkkaVna.Dicom.Network.Pdus;
using AkkaVna.Dicom.Network.Scp;
using AkkaVna.Testing;

namespace AkkaVna.Dicom.Network.Tests.Protocol;

/// <summary>
/// A scripted peer that speaks raw bytes to a real server on 127.0.0.1. Each misbehaviour must be answered as PS3.8 says
/// (A-ASSOCIATE-RJ or A-ABORT with the standard's source and reason, or the connection closed when ARTIM expires), within
/// the configured timeouts, and the server must go on serving: every test ends with a good C-ECHO.
/// </summary>
public sealed class BadPeerTests : IAsyncLifetime
{
    private static readonly TimeSpan Artim = TimeSpan.FromSeconds(2);
    private static readonly TimeSpan Dimse = TimeSpan.FromSeconds(2);
    private readonly TempDir _dir = new();
    private DicomServer _server = null!;

    public Task InitializeAsync()
    {
        var association = new DicomAssociationOptions { ArtimTimeout = Artim, DimseTimeout = Dimse, IdleTimeout = TimeSpan.FromSeconds(3), MaxReceivePduLength = 16384 };
        _server = new DicomServer(new DicomServerOptions { Port = 0, Association = association },
            new DicomServices { Store = new FolderStoreHandler(_dir.Path) });
        _server.Start();
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        // The server still serves after whatever the test did.
        var status = await EchoAsync();
        Assert.True(status.IsSuccess);
        await _server.DisposeAsync();
        _dir.Dispose();
    }

    private Task<Network.Dimse.DimseStatus> EchoAsync() => Task.Run(async () =>
    {
        var rq = ValidRequest() with { PresentationContexts = [new PresentationContextProposal(1, DicomUids.Verification, [DicomUids.ImplicitVRLittleEndian])] };
        await using var a = await DicomAssociation.ConnectAsync("127.0.0.1", _server.LocalEndPoint.Port, rq);
        var s = await a.EchoAsync();
        await a.ReleaseAsync();
        return s;
    });

    private static AssociateRequest ValidRequest() => new()
    {
        CalledAE = "AKKAVNA",
        CallingAE = "BADPEER",
        PresentationContexts = [new PresentationContextProposal(1, DicomUids.CTImageStorage, [DicomUids.ExplicitVRLittleEndian])],
        UserInformation = new UserInformation { MaximumLength = 16384, ImplementationClassUid = "1.2.3.4" },
    };

    /// <summary>What the server sent back until it closed the connection, and how long that took.</summary>
    private sealed record Reply(byte[] Bytes, bool Closed, TimeSpan Elapsed)
    {
        public byte FirstPduType => Bytes.Length > 0 ? Bytes[0] : (byte)0;

        /// <summary>The last PDU the server sent (after an A-ASSOCIATE-AC, the A-ABORT that follows).</summary>
        public byte[] LastPdu()
        {
            int offset = 0;
            byte[] last = [];
            while (offset + 6 <= Bytes.Length)
            {
                int len = (int)BinaryPrimitives.ReadUInt32BigEndian(Bytes.AsSpan(offset + 2));
                last = Bytes.AsSpan(offset, Math.Min(6 + len, Bytes.Length - offset)).ToArray();
                offset += 6 + len;
            }
            return last;
        }
    }

    private async Task<Reply> Talk(params byte[][] chunks)
    {
        using var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        await socket.ConnectAsync(IPAddress.Loopback, _server.LocalEndPoint.Port);
        var sw = Stopwatch.StartNew();
        try
        {
            foreach (var c in chunks)
            {
                await socket.SendAsync(c);
                await Task.Delay(20);
            }
        }
        catch (SocketException)
        {
            // The server already closed the connection (what it sent before is still read below).
        }
        var received = new MemoryStream();
        var buffer = new byte[65536];
        using var cts = new CancellationTokenSource(Artim + Dimse + TimeSpan.FromSeconds(8));
        try
        {
            while (true)
            {
                int n = await socket.ReceiveAsync(buffer, SocketFlags.None, cts.Token);
                if (n == 0) return new Reply(received.ToArray(), true, sw.Elapsed);
                received.Write(buffer, 0, n);
            }
        }
        catch (OperationCanceledException)
        {
            return new Reply(received.ToArray(), false, sw.Elapsed);
        }
        catch (SocketException)
        {
            return new Reply(received.ToArray(), true, sw.Elapsed);
        }
    }

    private async Task<Reply> AfterAssociation(params byte[][] chunks)
    {
        return await Talk([PduCodec.Encode(ValidRequest()), .. chunks]);
    }

    private static void AssertAbort(byte[] pdu, AbortSource source, byte reason)
    {
        Assert.True(pdu.Length == 10 && pdu[0] == 0x07, $"expected an A-ABORT PDU, got {Convert.ToHexString(pdu)}");
        Assert.Equal((byte)source, pdu[8]);
        Assert.Equal(reason, pdu[9]);
    }

    private static void AssertReject(Reply r, RejectResult result, RejectSource source, byte reason)
    {
        Assert.True(r.Bytes.Length >= 10 && r.Bytes[0] == 0x03, $"expected an A-ASSOCIATE-RJ PDU, got {Convert.ToHexString(r.Bytes)}");
        Assert.Equal([(byte)result, (byte)source, reason], r.Bytes[7..10]);
        Assert.True(r.Closed, "the connection stays open after the reject");
    }

    private static void AssertClosedWithin(Reply r, TimeSpan limit)
    {
        Assert.True(r.Closed, "the server never closed the connection");
        Assert.True(r.Elapsed < limit + TimeSpan.FromSeconds(3), $"closed after {r.Elapsed}, configured {limit}");
    }

    private static byte[] Header(byte type, uint length)
    {
        var h = new byte[6];
        h[0] = type;
        BinaryPrimitives.WriteUInt32BigEndian(h.AsSpan(2), length);
        return h;
    }

    [Fact]
    public async Task An_unknown_PDU_type_before_association_gets_A_ABORT_then_the_connection_closes()
    {
        // Sta2 + Evt19 -> AA-1: A-ABORT (service-user source), then ARTIM.
        var r = await Talk([.. Header(0x09, 4), 0, 0, 0, 0]);
        AssertAbort(r.LastPdu(), AbortSource.ServiceUser, 0);
        AssertClosedWithin(r, Artim);
    }

    [Fact]
    public async Task An_unknown_PDU_type_on_an_association_gets_A_ABORT_unrecognized_PDU()
    {
        // Sta6 + Evt19 -> AA-8: A-ABORT (service-provider, unrecognized PDU).
        var r = await AfterAssociation([.. Header(0x55, 4), 0, 0, 0, 0]);
        Assert.Equal(0x02, r.FirstPduType);
        AssertAbort(r.LastPdu(), AbortSource.ServiceProvider, Abort.UnrecognizedPdu);
        AssertClosedWithin(r, Artim);
    }

    [Fact]
    public async Task A_P_DATA_longer_than_the_negotiated_maximum_is_refused_from_its_header_alone()
    {
        // The body of 1 GB is never sent: the abort proves the server refused before buffering.
        var r = await AfterAssociation(Header(0x04, 1_000_000_000));
        AssertAbort(r.LastPdu(), AbortSource.ServiceProvider, Abort.InvalidPduParameterValue);
        AssertClosedWithin(r, Artim);
    }

    [Fact]
    public async Task An_A_ASSOCIATE_RQ_longer_than_the_limit_is_refused_from_its_header_alone()
    {
        var r = await Talk(Header(0x01, 500_000_000));
        AssertAbort(r.LastPdu(), AbortSource.ServiceUser, 0);
        AssertClosedWithin(r, Artim);
    }

    [Fact]
    public async Task A_truncated_PDU_followed_by_a_close_ends_the_association_quietly()
    {
        var rq = PduCodec.Encode(ValidRequest());
        using var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(IPAddress.Loopback, _server.LocalEndPoint.Port);
        await socket.SendAsync(rq.AsMemory(0, rq.Length / 2));
        socket.Shutdown(SocketShutdown.Send); // Sta2 + Evt17 -> AA-5
        var buffer = new byte[64];
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        Assert.Equal(0, await socket.ReceiveAsync(buffer, SocketFlags.None, cts.Token));
    }

    [Fact]
    public async Task A_truncated_PDU_then_silence_is_closed_when_ARTIM_expires()
    {
        // Sta2: the peer sends half an A-ASSOCIATE-RQ and goes silent -> Evt18 -> AA-2 (close).
        var rq = PduCodec.Encode(ValidRequest());
        var r = await Talk(rq[..(rq.Length / 2)]);
        Assert.Empty(r.Bytes);
        AssertClosedWithin(r, Artim);
    }

    [Fact]
    public async Task A_peer_silent_in_the_middle_of_a_P_DATA_PDU_is_aborted_after_the_DIMSE_timeout()
    {
        var r = await AfterAssociation([.. Header(0x04, 100), 0, 0, 0, 20]);
        Assert.Equal(0x02, r.FirstPduType);
        AssertAbort(r.LastPdu(), AbortSource.ServiceUser, 0);
        AssertClosedWithin(r, Dimse + Artim);
    }

    [Fact]
    public async Task P_DATA_before_association_gets_A_ABORT()
    {
        // Sta2 + Evt10 -> AA-1.
        var r = await Talk([.. Header(0x04, 8), 0, 0, 0, 4, 1, 3, 0, 0]);
        AssertAbort(r.LastPdu(), AbortSource.ServiceUser, 0);
        AssertClosedWithin(r, Artim);
    }

    [Fact]
    public async Task An_A_ASSOCIATE_RQ_without_presentation_contexts_is_rejected_by_the_service_user()
    {
        var r = await Talk(PduCodec.Encode(ValidRequest() with { PresentationContexts = [] }));
        AssertReject(r, RejectResult.Permanent, RejectSource.ServiceUser, AssociateReject.NoReasonGiven);
    }

    [Fact]
    public async Task A_wrong_protocol_version_is_rejected_by_the_service_provider()
    {
        // AE-6: the provider rejects (permanent, ACSE, protocol-version-not-supported).
        var r = await Talk(PduCodec.Encode(ValidRequest() with { ProtocolVersion = 2 }));
        AssertReject(r, RejectResult.Permanent, RejectSource.ServiceProviderAcse, AssociateReject.ProtocolVersionNotSupported);
    }

    [Fact]
    public async Task An_unknown_called_AE_is_rejected_with_called_AE_not_recognized()
    {
        var r = await Talk(PduCodec.Encode(ValidRequest() with { CalledAE = "SOMEONE-ELSE" }));
        AssertReject(r, RejectResult.Permanent, RejectSource.ServiceUser, AssociateReject.CalledAENotRecognized);
    }

    [Fact]
    public async Task A_malformed_sub_item_in_the_A_ASSOCIATE_RQ_gets_A_ABORT()
    {
        // The abstract syntax sub-item claims more bytes than its presentation context holds.
        var rq = PduCodec.Encode(ValidRequest());
        int pc = 74 + 4 + BinaryPrimitives.ReadUInt16BigEndian(rq.AsSpan(76)); // after the application context item
        Assert.Equal(0x20, rq[pc]);
        Assert.Equal(0x30, rq[pc + 8]);
        BinaryPrimitives.WriteUInt16BigEndian(rq.AsSpan(pc + 10), 0x4000);
        var r = await Talk(rq);
        AssertAbort(r.LastPdu(), AbortSource.ServiceUser, 0);
        AssertClosedWithin(r, Artim);
    }

    [Fact]
    public async Task A_malformed_PDV_on_an_association_gets_A_ABORT_invalid_parameter()
    {
        // A PDV item length of 1 (less than its own two header bytes).
        var r = await AfterAssociation([.. Header(0x04, 6), 0, 0, 0, 1, 1, 3]);
        AssertAbort(r.LastPdu(), AbortSource.ServiceProvider, Abort.InvalidPduParameterValue);
        AssertClosedWithin(r, Artim);
    }

    [Fact]
    public async Task A_PDV_on_a_presentation_context_that_was_not_negotiated_gets_A_ABORT()
    {
        var r = await AfterAssociation([.. Header(0x04, 8), 0, 0, 0, 4, 99, 3, 0, 0]);
        AssertAbort(r.LastPdu(), AbortSource.ServiceProvider, Abort.InvalidPduParameterValue);
    }

    [Fact]
    public async Task Many_bad_peers_at_once_leave_no_association_behind()
    {
        await Task.WhenAll(Enumerable.Range(0, 32).Select(i => i % 2 == 0
            ? Talk([.. Header(0x09, 4), 0, 0, 0, 0])
            : AfterAssociation(Header(0x04, 1_000_000_000))));
        var sw = Stopwatch.StartNew();
        while (_server.ActiveAssociations > 0 && sw.Elapsed < TimeSpan.FromSeconds(10)) await Task.Delay(50);
        Assert.Equal(0, _server.ActiveAssociations);
    }
}
