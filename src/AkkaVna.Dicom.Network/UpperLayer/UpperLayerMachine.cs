using AkkaVna.Dicom.Network.Pdus;

namespace AkkaVna.Dicom.Network.UpperLayer;

/// <summary>What the Upper Layer's actions act on: the transport, the ARTIM timer and the local service user.</summary>
public interface IUpperLayerPort
{
    /// <summary>AE-1: issue a transport connect request. The caller then raises Evt2 (or Evt17 when it fails).</summary>
    ValueTask ConnectTransportAsync();
    /// <summary>Writes an encoded PDU (A-ASSOCIATE-*, A-RELEASE-*, A-ABORT).</summary>
    ValueTask SendAsync(Pdu pdu);
    /// <summary>DT-1 / AR-7: writes the P-DATA-TF PDUs of a P-DATA request.</summary>
    ValueTask SendPDataAsync(PDataRequest request);
    void CloseTransport();
    void StartArtim();
    void StopArtim();

    // Primitives issued to the local service user.
    ValueTask AssociateIndicationAsync(AssociateRequest request);
    void AssociateConfirmation(Pdu acceptOrReject);
    ValueTask PDataIndicationAsync(PDataReceived data);
    void ReleaseIndication();
    void ReleaseConfirmation();
    /// <summary>A-ABORT indication (service-user initiated abort by the peer, AA-3).</summary>
    void AbortIndication(Abort abort);
    /// <summary>A-P-ABORT indication (service-provider initiated abort or transport failure).</summary>
    void ProviderAbortIndication(string reason);
}

/// <summary>A P-DATA request primitive: writes the P-DATA-TF PDUs of one fragment run.</summary>
public sealed record PDataRequest(Func<CancellationToken, ValueTask> Write);

/// <summary>
/// The DICOM Upper Layer protocol machine (PS3.8 9.2): one instance per association, fed events from the network (PDUs,
/// transport close, ARTIM) and from the local user (primitives). <see cref="UlStateTable"/> says which action an event
/// triggers in the current state; each action below names its cells and returns the next state. An event without a cell
/// for a received PDU cannot occur (every PDU has a cell from Sta2 on); for a local primitive it is a programming error.
/// Not thread-safe: the association serializes events.
/// </summary>
public sealed class UpperLayerMachine(IUpperLayerPort port, bool isRequestor)
{
    public UlState State { get; internal set; } = UlState.Sta1;
    public bool IsRequestor { get; } = isRequestor;

    /// <summary>The action last executed (for logs and tests).</summary>
    public UlAction? LastAction { get; private set; }

    /// <summary>
    /// Feeds one event. <paramref name="argument"/> carries the event's PDU or primitive: the A-ASSOCIATE-RQ/AC/RJ,
    /// A-ABORT or P-DATA-TF PDU, the A-ASSOCIATE response (an <see cref="AssociateAccept"/> or <see cref="AssociateReject"/>),
    /// a <see cref="PDataRequest"/>, or for Evt19 the <see cref="PduFormatException"/> that made the PDU invalid.
    /// </summary>
    public async ValueTask HandleAsync(UlEvent evt, object? argument = null)
    {
        var action = UlStateTable.Lookup(State, evt)
            ?? throw new InvalidOperationException($"{evt} cannot occur in {State} (PS3.8 Table 9-10 has no cell for it)");
        LastAction = action;
        State = action switch
        {
            UlAction.AE1 => await AE1(),
            UlAction.AE2 => await AE2((AssociateRequest)argument!),
            UlAction.AE3 => AE3((AssociateAccept)argument!),
            UlAction.AE4 => AE4((AssociateReject)argument!),
            UlAction.AE5 => AE5(),
            UlAction.AE6 => await AE6((AssociateRequest)argument!),
            UlAction.AE7 => await AE7((AssociateAccept)argument!),
            UlAction.AE8 => await AE8((AssociateReject)argument!),
            UlAction.DT1 => await DT1((PDataRequest)argument!),
            UlAction.DT2 => await DT2((PDataReceived)argument!),
            UlAction.AR1 => await AR1(),
            UlAction.AR2 => AR2(),
            UlAction.AR3 => AR3(),
            UlAction.AR4 => await AR4(),
            UlAction.AR5 => AR5(),
            UlAction.AR6 => await AR6((PDataReceived)argument!),
            UlAction.AR7 => await AR7((PDataRequest)argument!),
            UlAction.AR8 => AR8(),
            UlAction.AR9 => await AR9(),
            UlAction.AR10 => AR10(),
            UlAction.AA1 => await AA1(),
            UlAction.AA2 => AA2(),
            UlAction.AA3 => AA3(argument as Abort),
            UlAction.AA4 => AA4(),
            UlAction.AA5 => AA5(),
            UlAction.AA6 => AA6(),
            UlAction.AA7 => await AA7(argument),
            UlAction.AA8 => await AA8(evt, argument),
            _ => throw new InvalidOperationException($"unknown action {action}"),
        };
    }

    // ------------------------------------------------------------ association establishment (Table 9-6)

    /// <summary>Sta1 + Evt1: issue transport connect request.</summary>
    private async ValueTask<UlState> AE1()
    {
        await port.ConnectTransportAsync();
        return UlState.Sta4;
    }

    /// <summary>Sta4 + Evt2: send A-ASSOCIATE-RQ PDU.</summary>
    private async ValueTask<UlState> AE2(AssociateRequest rq)
    {
        await port.SendAsync(rq);
        return UlState.Sta5;
    }

    /// <summary>Sta5 + Evt3: issue A-ASSOCIATE confirmation (accept).</summary>
    private UlState AE3(AssociateAccept ac)
    {
        port.AssociateConfirmation(ac);
        return UlState.Sta6;
    }

    /// <summary>Sta5 + Evt4: issue A-ASSOCIATE confirmation (reject) and close transport.</summary>
    private UlState AE4(AssociateReject rj)
    {
        port.AssociateConfirmation(rj);
        port.CloseTransport();
        return UlState.Sta1;
    }

    /// <summary>Sta1 + Evt5: issue transport connection response, start ARTIM.</summary>
    private UlState AE5()
    {
        port.StartArtim();
        return UlState.Sta2;
    }

    /// <summary>
    /// Sta2 + Evt6: stop ARTIM; if the A-ASSOCIATE-RQ is acceptable by the service provider, issue an A-ASSOCIATE
    /// indication (Sta3); otherwise send A-ASSOCIATE-RJ and start ARTIM (Sta13). The provider checks the protocol version
    /// (bit 0 of the version field, PS3.8 9.3.2).
    /// </summary>
    private async ValueTask<UlState> AE6(AssociateRequest rq)
    {
        port.StopArtim();
        if ((rq.ProtocolVersion & 1) == 0)
        {
            await port.SendAsync(new AssociateReject(RejectResult.Permanent, RejectSource.ServiceProviderAcse, AssociateReject.ProtocolVersionNotSupported));
            port.StartArtim();
            return UlState.Sta13;
        }
        await port.AssociateIndicationAsync(rq);
        return UlState.Sta3;
    }

    /// <summary>Sta3 + Evt7: send A-ASSOCIATE-AC PDU.</summary>
    private async ValueTask<UlState> AE7(AssociateAccept ac)
    {
        await port.SendAsync(ac);
        return UlState.Sta6;
    }

    /// <summary>Sta3 + Evt8: send A-ASSOCIATE-RJ PDU and start ARTIM.</summary>
    private async ValueTask<UlState> AE8(AssociateReject rj)
    {
        await port.SendAsync(rj);
        port.StartArtim();
        return UlState.Sta13;
    }

    // ------------------------------------------------------------ data transfer (Table 9-7)

    /// <summary>Sta6 + Evt9: send P-DATA-TF PDU.</summary>
    private async ValueTask<UlState> DT1(PDataRequest rq)
    {
        await port.SendPDataAsync(rq);
        return UlState.Sta6;
    }

    /// <summary>Sta6 + Evt10: issue P-DATA indication.</summary>
    private async ValueTask<UlState> DT2(PDataReceived data)
    {
        await port.PDataIndicationAsync(data);
        return UlState.Sta6;
    }

    // ------------------------------------------------------------ association release (Table 9-8)

    /// <summary>Sta6 + Evt11: send A-RELEASE-RQ PDU.</summary>
    private async ValueTask<UlState> AR1()
    {
        await port.SendAsync(ReleaseRequest.Instance);
        return UlState.Sta7;
    }

    /// <summary>Sta6 + Evt12: issue A-RELEASE indication.</summary>
    private UlState AR2()
    {
        port.ReleaseIndication();
        return UlState.Sta8;
    }

    /// <summary>Sta7 + Evt13, Sta11 + Evt13: issue A-RELEASE confirmation, close transport.</summary>
    private UlState AR3()
    {
        port.ReleaseConfirmation();
        port.CloseTransport();
        return UlState.Sta1;
    }

    /// <summary>Sta8 + Evt14, Sta12 + Evt14: send A-RELEASE-RP PDU, start ARTIM.</summary>
    private async ValueTask<UlState> AR4()
    {
        await port.SendAsync(ReleaseResponse.Instance);
        port.StartArtim();
        return UlState.Sta13;
    }

    /// <summary>Sta13 + Evt17: stop ARTIM.</summary>
    private UlState AR5()
    {
        port.StopArtim();
        return UlState.Sta1;
    }

    /// <summary>Sta7 + Evt10: issue P-DATA indication.</summary>
    private async ValueTask<UlState> AR6(PDataReceived data)
    {
        await port.PDataIndicationAsync(data);
        return UlState.Sta7;
    }

    /// <summary>Sta8 + Evt9: send P-DATA-TF PDU.</summary>
    private async ValueTask<UlState> AR7(PDataRequest rq)
    {
        await port.SendPDataAsync(rq);
        return UlState.Sta8;
    }

    /// <summary>Sta7 + Evt12: release collision — issue A-RELEASE indication; requestor to Sta9, acceptor to Sta10.</summary>
    private UlState AR8()
    {
        port.ReleaseIndication();
        return IsRequestor ? UlState.Sta9 : UlState.Sta10;
    }

    /// <summary>Sta9 + Evt14: send A-RELEASE-RP PDU.</summary>
    private async ValueTask<UlState> AR9()
    {
        await port.SendAsync(ReleaseResponse.Instance);
        return UlState.Sta11;
    }

    /// <summary>Sta10 + Evt13: issue A-RELEASE confirmation.</summary>
    private UlState AR10()
    {
        port.ReleaseConfirmation();
        return UlState.Sta12;
    }

    // ------------------------------------------------------------ association abort (Table 9-9)

    /// <summary>
    /// Sta2 + Evt3/4/10/12/13/19, Sta3..Sta12 + Evt15: send A-ABORT PDU (service-user source), start (or restart) ARTIM.
    /// </summary>
    private async ValueTask<UlState> AA1()
    {
        await port.SendAsync(new Abort(AbortSource.ServiceUser, 0));
        port.StartArtim();
        return UlState.Sta13;
    }

    /// <summary>Sta2 + Evt16/18, Sta4 + Evt15, Sta13 + Evt16/18: stop ARTIM if running, close transport.</summary>
    private UlState AA2()
    {
        port.StopArtim();
        port.CloseTransport();
        return UlState.Sta1;
    }

    /// <summary>Sta3, Sta5..Sta12 + Evt16: issue A-ABORT (or A-P-ABORT when the provider aborted) indication, close transport.</summary>
    private UlState AA3(Abort? abort)
    {
        if (abort is null || abort.Source == AbortSource.ServiceUser) port.AbortIndication(abort ?? new Abort(AbortSource.ServiceUser, 0));
        else port.ProviderAbortIndication(abort.Describe());
        port.CloseTransport();
        return UlState.Sta1;
    }

    /// <summary>Sta3..Sta12 + Evt17: issue A-P-ABORT indication.</summary>
    private UlState AA4()
    {
        port.ProviderAbortIndication("the transport connection closed");
        return UlState.Sta1;
    }

    /// <summary>Sta2 + Evt17: stop ARTIM.</summary>
    private UlState AA5()
    {
        port.StopArtim();
        return UlState.Sta1;
    }

    /// <summary>Sta13 + Evt3/4/10/12/13: ignore the PDU.</summary>
    private static UlState AA6() => UlState.Sta13;

    /// <summary>Sta13 + Evt6/19: send A-ABORT PDU.</summary>
    private async ValueTask<UlState> AA7(object? argument)
    {
        await port.SendAsync(new Abort(AbortSource.ServiceProvider, ReasonFor(UlEvent.Evt19, argument)));
        return UlState.Sta13;
    }

    /// <summary>
    /// Sta3, Sta5..Sta12 + an unexpected PDU (Evt3/4/6/10/12/13) or an invalid one (Evt19): send A-ABORT PDU
    /// (service-provider source), issue an A-P-ABORT indication, start ARTIM.
    /// </summary>
    private async ValueTask<UlState> AA8(UlEvent evt, object? argument)
    {
        var abort = new Abort(AbortSource.ServiceProvider, ReasonFor(evt, argument));
        await port.SendAsync(abort);
        port.ProviderAbortIndication(argument is PduFormatException e ? e.Message : $"unexpected {evt} in {State}: {abort.Describe()}");
        port.StartArtim();
        return UlState.Sta13;
    }

    /// <summary>The A-ABORT reason: the decoder's when the PDU was invalid, unexpected-PDU when it was valid but out of place.</summary>
    private static byte ReasonFor(UlEvent evt, object? argument) =>
        argument is PduFormatException e ? e.AbortReason : evt == UlEvent.Evt19 ? Abort.UnrecognizedPdu : Abort.UnexpectedPdu;
}
