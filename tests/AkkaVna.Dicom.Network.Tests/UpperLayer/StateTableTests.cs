using AkkaVna.Dicom.Network.Pdus;
using AkkaVna.Dicom.Network.UpperLayer;

namespace AkkaVna.Dicom.Network.Tests.UpperLayer;

/// <summary>
/// Every cell of PS3.8 Table 9-10: each state meets each event, and the machine must perform the standard's action —
/// observed through what it does to its port (PDUs sent, transport closed, ARTIM, primitives issued) — and reach the
/// standard's next state. An empty cell must be refused. The grid below is typed from the standard's table, independently
/// of how the implementation builds its own.
/// </summary>
public sealed class StateTableTests
{
    private const string Grid = """
              Sta1  Sta2  Sta3  Sta4  Sta5  Sta6  Sta7  Sta8  Sta9  Sta10 Sta11 Sta12 Sta13
        Evt1  AE-1  .     .     .     .     .     .     .     .     .     .     .     .
        Evt2  .     .     .     AE-2  .     .     .     .     .     .     .     .     .
        Evt3  .     AA-1  AA-8  .     AE-3  AA-8  AA-8  AA-8  AA-8  AA-8  AA-8  AA-8  AA-6
        Evt4  .     AA-1  AA-8  .     AE-4  AA-8  AA-8  AA-8  AA-8  AA-8  AA-8  AA-8  AA-6
        Evt5  AE-5  .     .     .     .     .     .     .     .     .     .     .     .
        Evt6  .     AE-6  AA-8  .     AA-8  AA-8  AA-8  AA-8  AA-8  AA-8  AA-8  AA-8  AA-7
        Evt7  .     .     AE-7  .     .     .     .     .     .     .     .     .     .
        Evt8  .     .     AE-8  .     .     .     .     .     .     .     .     .     .
        Evt9  .     .     .     .     .     DT-1  .     AR-7  .     .     .     .     .
        Evt10 .     AA-1  AA-8  .     AA-8  DT-2  AR-6  AA-8  AA-8  AA-8  AA-8  AA-8  AA-6
        Evt11 .     .     .     .     .     AR-1  .     .     .     .     .     .     .
        Evt12 .     AA-1  AA-8  .     AA-8  AR-2  AR-8  AA-8  AA-8  AA-8  AA-8  AA-8  AA-6
        Evt13 .     AA-1  AA-8  .     AA-8  AA-8  AR-3  AA-8  AA-8  AR-10 AR-3  AA-8  AA-6
        Evt14 .     .     .     .     .     .     .     AR-4  AR-9  .     .     AR-4  .
        Evt15 .     .     AA-1  AA-2  AA-1  AA-1  AA-1  AA-1  AA-1  AA-1  AA-1  AA-1  .
        Evt16 .     AA-2  AA-3  .     AA-3  AA-3  AA-3  AA-3  AA-3  AA-3  AA-3  AA-3  AA-2
        Evt17 .     AA-5  AA-4  AA-4  AA-4  AA-4  AA-4  AA-4  AA-4  AA-4  AA-4  AA-4  AR-5
        Evt18 .     AA-2  .     .     .     .     .     .     .     .     .     .     AA-2
        Evt19 .     AA-1  AA-8  .     AA-8  AA-8  AA-8  AA-8  AA-8  AA-8  AA-8  AA-8  AA-7
        """;

    /// <summary>What each action visibly does (PS3.8 Tables 9-6 to 9-9), and the state it leads to.</summary>
    private static (string[] Effects, UlState Next) Expected(string action, bool requestor) => action switch
    {
        "AE-1" => (["connect"], UlState.Sta4),
        "AE-2" => (["send A-ASSOCIATE-RQ"], UlState.Sta5),
        "AE-3" => (["confirm associate AC"], UlState.Sta6),
        "AE-4" => (["confirm associate RJ", "close"], UlState.Sta1),
        "AE-5" => (["artim start"], UlState.Sta2),
        "AE-6" => (["artim stop", "indicate associate"], UlState.Sta3),
        "AE-7" => (["send A-ASSOCIATE-AC"], UlState.Sta6),
        "AE-8" => (["send A-ASSOCIATE-RJ", "artim start"], UlState.Sta13),
        "DT-1" => (["send P-DATA-TF"], UlState.Sta6),
        "DT-2" => (["indicate P-DATA"], UlState.Sta6),
        "AR-1" => (["send A-RELEASE-RQ"], UlState.Sta7),
        "AR-2" => (["indicate release"], UlState.Sta8),
        "AR-3" => (["confirm release", "close"], UlState.Sta1),
        "AR-4" => (["send A-RELEASE-RP", "artim start"], UlState.Sta13),
        "AR-5" => (["artim stop"], UlState.Sta1),
        "AR-6" => (["indicate P-DATA"], UlState.Sta7),
        "AR-7" => (["send P-DATA-TF"], UlState.Sta8),
        "AR-8" => (["indicate release"], requestor ? UlState.Sta9 : UlState.Sta10),
        "AR-9" => (["send A-RELEASE-RP"], UlState.Sta11),
        "AR-10" => (["confirm release"], UlState.Sta12),
        "AA-1" => (["send A-ABORT source 0", "artim start"], UlState.Sta13),
        "AA-2" => (["artim stop", "close"], UlState.Sta1),
        "AA-3" => (["indicate abort", "close"], UlState.Sta1),
        "AA-4" => (["indicate provider abort"], UlState.Sta1),
        "AA-5" => (["artim stop"], UlState.Sta1),
        "AA-6" => ([], UlState.Sta13),
        "AA-7" => (["send A-ABORT source 2"], UlState.Sta13),
        "AA-8" => (["send A-ABORT source 2", "indicate provider abort", "artim start"], UlState.Sta13),
        _ => throw new ArgumentException(action),
    };

    public static TheoryData<int, int> Cells()
    {
        var data = new TheoryData<int, int>();
        for (int e = 1; e <= 19; e++)
            for (int s = 1; s <= 13; s++) data.Add(e, s);
        return data;
    }

    private static string? Cell(UlEvent evt, UlState state)
    {
        var rows = Grid.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        var row = rows.Single(r => r.Split(' ', StringSplitOptions.RemoveEmptyEntries)[0] == evt.ToString()).Split(' ', StringSplitOptions.RemoveEmptyEntries);
        string cell = row[(int)state];
        return cell == "." ? null : cell;
    }

    [Theory]
    [MemberData(nameof(Cells))]
    public async Task Every_state_and_event_does_what_the_standard_table_says(int evt, int state)
    {
        foreach (bool requestor in new[] { true, false })
        {
            var e = (UlEvent)evt;
            var s = (UlState)state;
            var port = new RecordingPort();
            var machine = new UpperLayerMachine(port, requestor) { State = s };
            string? action = Cell(e, s);
            if (action is null)
            {
                await Assert.ThrowsAsync<InvalidOperationException>(() => machine.HandleAsync(e, ArgumentFor(e)).AsTask());
                Assert.Equal(s, machine.State);
                Assert.Empty(port.Effects);
                continue;
            }
            await machine.HandleAsync(e, ArgumentFor(e));
            var (effects, next) = Expected(action, requestor);
            Assert.Equal(action.Replace("-", ""), machine.LastAction.ToString());
            Assert.Equal(effects, port.Effects);
            Assert.Equal(next, machine.State);
        }
    }

    [Fact]
    public async Task AE6_rejects_an_unsupported_protocol_version_with_the_provider_reason()
    {
        var port = new RecordingPort();
        var machine = new UpperLayerMachine(port, isRequestor: false) { State = UlState.Sta2 };
        await machine.HandleAsync(UlEvent.Evt6, Request() with { ProtocolVersion = 2 });
        Assert.Equal(["artim stop", "send A-ASSOCIATE-RJ", "artim start"], port.Effects);
        var rj = Assert.IsType<AssociateReject>(port.Sent.Single());
        Assert.Equal((RejectResult.Permanent, RejectSource.ServiceProviderAcse, AssociateReject.ProtocolVersionNotSupported), (rj.Result, rj.Source, rj.Reason));
        Assert.Equal(UlState.Sta13, machine.State);
    }

    [Fact]
    public async Task AA8_names_the_decoder_reason_for_an_invalid_PDU_and_unexpected_PDU_otherwise()
    {
        var port = new RecordingPort();
        var machine = new UpperLayerMachine(port, isRequestor: false) { State = UlState.Sta6 };
        await machine.HandleAsync(UlEvent.Evt19, new PduFormatException(Abort.InvalidPduParameterValue, "bad"));
        Assert.Equal(Abort.InvalidPduParameterValue, Assert.IsType<Abort>(port.Sent.Single()).Reason);

        port = new RecordingPort();
        machine = new UpperLayerMachine(port, isRequestor: false) { State = UlState.Sta6 };
        await machine.HandleAsync(UlEvent.Evt6, Request());
        Assert.Equal(Abort.UnexpectedPdu, Assert.IsType<Abort>(port.Sent.Single()).Reason);
    }

    private static AssociateRequest Request() => new() { CalledAE = "SCP", CallingAE = "SCU" };

    private static object? ArgumentFor(UlEvent e) => e switch
    {
        UlEvent.Evt2 or UlEvent.Evt6 => Request(),
        UlEvent.Evt3 or UlEvent.Evt7 => new AssociateAccept { CalledAE = "SCP", CallingAE = "SCU" },
        UlEvent.Evt4 or UlEvent.Evt8 => new AssociateReject(RejectResult.Permanent, RejectSource.ServiceUser, 1),
        UlEvent.Evt9 => new PDataRequest(_ => ValueTask.CompletedTask),
        UlEvent.Evt10 => new PDataReceived(default),
        UlEvent.Evt16 => new Abort(AbortSource.ServiceUser, 0),
        UlEvent.Evt19 => new PduFormatException(Abort.UnrecognizedPdu, "unrecognized PDU type 09H"),
        _ => null,
    };

    private sealed class RecordingPort : IUpperLayerPort
    {
        public List<string> Effects { get; } = [];
        public List<Pdu> Sent { get; } = [];

        public ValueTask ConnectTransportAsync() { Effects.Add("connect"); return ValueTask.CompletedTask; }

        public ValueTask SendAsync(Pdu pdu)
        {
            Sent.Add(pdu);
            Effects.Add(pdu switch
            {
                AssociateRequest => "send A-ASSOCIATE-RQ",
                AssociateAccept => "send A-ASSOCIATE-AC",
                AssociateReject => "send A-ASSOCIATE-RJ",
                ReleaseRequest => "send A-RELEASE-RQ",
                ReleaseResponse => "send A-RELEASE-RP",
                Abort a => $"send A-ABORT source {(byte)a.Source}",
                _ => "send " + pdu.Type,
            });
            return ValueTask.CompletedTask;
        }

        public ValueTask SendPDataAsync(PDataRequest request) { Effects.Add("send P-DATA-TF"); return ValueTask.CompletedTask; }
        public void CloseTransport() => Effects.Add("close");
        public void StartArtim() => Effects.Add("artim start");
        public void StopArtim() => Effects.Add("artim stop");
        public ValueTask AssociateIndicationAsync(AssociateRequest request) { Effects.Add("indicate associate"); return ValueTask.CompletedTask; }
        public void AssociateConfirmation(Pdu acceptOrReject) => Effects.Add(acceptOrReject is AssociateAccept ? "confirm associate AC" : "confirm associate RJ");
        public ValueTask PDataIndicationAsync(PDataReceived data) { Effects.Add("indicate P-DATA"); return ValueTask.CompletedTask; }
        public void ReleaseIndication() => Effects.Add("indicate release");
        public void ReleaseConfirmation() => Effects.Add("confirm release");
        public void AbortIndication(Abort abort) => Effects.Add("indicate abort");
        public void ProviderAbortIndication(string reason) => Effects.Add("indicate provider abort");
    }
}
