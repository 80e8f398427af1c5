namespace AkkaVna.Dicom.Network.UpperLayer;

/// <summary>States of the DICOM Upper Layer protocol machine (PS3.8 Table 9-10).</summary>
public enum UlState
{
    /// <summary>Idle.</summary>
    Sta1 = 1,
    /// <summary>Transport connection open (awaiting A-ASSOCIATE-RQ PDU).</summary>
    Sta2,
    /// <summary>Awaiting local A-ASSOCIATE response primitive (from local user).</summary>
    Sta3,
    /// <summary>Awaiting transport connection opening to complete (from local transport service).</summary>
    Sta4,
    /// <summary>Awaiting A-ASSOCIATE-AC or A-ASSOCIATE-RJ PDU.</summary>
    Sta5,
    /// <summary>Association established and ready for data transfer.</summary>
    Sta6,
    /// <summary>Awaiting A-RELEASE-RP PDU.</summary>
    Sta7,
    /// <summary>Awaiting local A-RELEASE response primitive (from local user).</summary>
    Sta8,
    /// <summary>Release collision requestor side; awaiting A-RELEASE response (from local user).</summary>
    Sta9,
    /// <summary>Release collision acceptor side; awaiting A-RELEASE-RP PDU.</summary>
    Sta10,
    /// <summary>Release collision requestor side; awaiting A-RELEASE-RP PDU.</summary>
    Sta11,
    /// <summary>Release collision acceptor side; awaiting A-RELEASE response primitive (from local user).</summary>
    Sta12,
    /// <summary>Awaiting transport connection close indication (association no longer exists).</summary>
    Sta13,
}

/// <summary>Events of the DICOM Upper Layer protocol machine (PS3.8 Table 9-10).</summary>
public enum UlEvent
{
    /// <summary>A-ASSOCIATE request (local user).</summary>
    Evt1 = 1,
    /// <summary>Transport connect confirmation (local transport service).</summary>
    Evt2,
    /// <summary>A-ASSOCIATE-AC PDU (received on transport connection).</summary>
    Evt3,
    /// <summary>A-ASSOCIATE-RJ PDU (received on transport connection).</summary>
    Evt4,
    /// <summary>Transport connection indication (local transport service).</summary>
    Evt5,
    /// <summary>A-ASSOCIATE-RQ PDU (received on transport connection).</summary>
    Evt6,
    /// <summary>A-ASSOCIATE response primitive (accept).</summary>
    Evt7,
    /// <summary>A-ASSOCIATE response primitive (reject).</summary>
    Evt8,
    /// <summary>P-DATA request primitive.</summary>
    Evt9,
    /// <summary>P-DATA-TF PDU.</summary>
    Evt10,
    /// <summary>A-RELEASE request primitive.</summary>
    Evt11,
    /// <summary>A-RELEASE-RQ PDU (on transport).</summary>
    Evt12,
    /// <summary>A-RELEASE-RP PDU (on transport).</summary>
    Evt13,
    /// <summary>A-RELEASE response primitive.</summary>
    Evt14,
    /// <summary>A-ABORT request primitive.</summary>
    Evt15,
    /// <summary>A-ABORT PDU (on transport).</summary>
    Evt16,
    /// <summary>Transport connection closed indication (local transport service).</summary>
    Evt17,
    /// <summary>ARTIM timer expired (Association reject/release timer).</summary>
    Evt18,
    /// <summary>Unrecognized or invalid PDU received.</summary>
    Evt19,
}

/// <summary>Actions of PS3.8 Tables 9-6 to 9-9.</summary>
public enum UlAction
{
    AE1, AE2, AE3, AE4, AE5, AE6, AE7, AE8,
    DT1, DT2,
    AR1, AR2, AR3, AR4, AR5, AR6, AR7, AR8, AR9, AR10,
    AA1, AA2, AA3, AA4, AA5, AA6, AA7, AA8,
}

/// <summary>
/// The state transition table of PS3.8 Table 9-10, row by row (event) and column by column (state), as the standard
/// prints it. A cell that is absent means the event cannot happen in that state: a local primitive issued there is a
/// programming error, a PDU received there cannot happen either because every received PDU has a cell in every state
/// from Sta2 on.
/// </summary>
public static class UlStateTable
{
    private static readonly UlAction?[,] Cells = Build();

    public static UlAction? Lookup(UlState state, UlEvent evt) => Cells[(int)evt, (int)state];

    private static UlAction?[,] Build()
    {
        var t = new UlAction?[20, 14];
        void Row(UlEvent e, params (UlState From, UlState To, UlAction Action)[] spans)
        {
            foreach (var (from, to, action) in spans)
                for (int s = (int)from; s <= (int)to; s++) t[(int)e, s] = action;
        }
        static (UlState, UlState, UlAction) At(UlState s, UlAction a) => (s, s, a);
        static (UlState, UlState, UlAction) Span(UlState from, UlState to, UlAction a) => (from, to, a);

        Row(UlEvent.Evt1, At(UlState.Sta1, UlAction.AE1));
        Row(UlEvent.Evt2, At(UlState.Sta4, UlAction.AE2));
        Row(UlEvent.Evt3, At(UlState.Sta2, UlAction.AA1), At(UlState.Sta3, UlAction.AA8), At(UlState.Sta5, UlAction.AE3),
            Span(UlState.Sta6, UlState.Sta12, UlAction.AA8), At(UlState.Sta13, UlAction.AA6));
        Row(UlEvent.Evt4, At(UlState.Sta2, UlAction.AA1), At(UlState.Sta3, UlAction.AA8), At(UlState.Sta5, UlAction.AE4),
            Span(UlState.Sta6, UlState.Sta12, UlAction.AA8), At(UlState.Sta13, UlAction.AA6));
        Row(UlEvent.Evt5, At(UlState.Sta1, UlAction.AE5));
        Row(UlEvent.Evt6, At(UlState.Sta2, UlAction.AE6), At(UlState.Sta3, UlAction.AA8),
            Span(UlState.Sta5, UlState.Sta12, UlAction.AA8), At(UlState.Sta13, UlAction.AA7));
        Row(UlEvent.Evt7, At(UlState.Sta3, UlAction.AE7));
        Row(UlEvent.Evt8, At(UlState.Sta3, UlAction.AE8));
        Row(UlEvent.Evt9, At(UlState.Sta6, UlAction.DT1), At(UlState.Sta8, UlAction.AR7));
        Row(UlEvent.Evt10, At(UlState.Sta2, UlAction.AA1), At(UlState.Sta3, UlAction.AA8), At(UlState.Sta5, UlAction.AA8),
            At(UlState.Sta6, UlAction.DT2), At(UlState.Sta7, UlAction.AR6), Span(UlState.Sta8, UlState.Sta12, UlAction.AA8),
            At(UlState.Sta13, UlAction.AA6));
        Row(UlEvent.Evt11, At(UlState.Sta6, UlAction.AR1));
        Row(UlEvent.Evt12, At(UlState.Sta2, UlAction.AA1), At(UlState.Sta3, UlAction.AA8), At(UlState.Sta5, UlAction.AA8),
            At(UlState.Sta6, UlAction.AR2), At(UlState.Sta7, UlAction.AR8), Span(UlState.Sta8, UlState.Sta12, UlAction.AA8),
            At(UlState.Sta13, UlAction.AA6));
        Row(UlEvent.Evt13, At(UlState.Sta2, UlAction.AA1), At(UlState.Sta3, UlAction.AA8), Span(UlState.Sta5, UlState.Sta6, UlAction.AA8),
            At(UlState.Sta7, UlAction.AR3), Span(UlState.Sta8, UlState.Sta9, UlAction.AA8), At(UlState.Sta10, UlAction.AR10),
            At(UlState.Sta11, UlAction.AR3), At(UlState.Sta12, UlAction.AA8), At(UlState.Sta13, UlAction.AA6));
        Row(UlEvent.Evt14, At(UlState.Sta8, UlAction.AR4), At(UlState.Sta9, UlAction.AR9), At(UlState.Sta12, UlAction.AR4));
        Row(UlEvent.Evt15, At(UlState.Sta3, UlAction.AA1), At(UlState.Sta4, UlAction.AA2), Span(UlState.Sta5, UlState.Sta12, UlAction.AA1));
        Row(UlEvent.Evt16, At(UlState.Sta2, UlAction.AA2), At(UlState.Sta3, UlAction.AA3), Span(UlState.Sta5, UlState.Sta12, UlAction.AA3),
            At(UlState.Sta13, UlAction.AA2));
        Row(UlEvent.Evt17, At(UlState.Sta2, UlAction.AA5), Span(UlState.Sta3, UlState.Sta12, UlAction.AA4), At(UlState.Sta13, UlAction.AR5));
        Row(UlEvent.Evt18, At(UlState.Sta2, UlAction.AA2), At(UlState.Sta13, UlAction.AA2));
        Row(UlEvent.Evt19, At(UlState.Sta2, UlAction.AA1), At(UlState.Sta3, UlAction.AA8), Span(UlState.Sta5, UlState.Sta12, UlAction.AA8),
            At(UlState.Sta13, UlAction.AA7));
        return t;
    }
}
