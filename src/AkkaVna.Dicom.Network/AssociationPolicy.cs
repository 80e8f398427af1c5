using AkkaVna.Dicom.Dictionary;
using AkkaVna.Dicom.Network.Pdus;

namespace AkkaVna.Dicom.Network;

/// <summary>
/// How an SCP answers an A-ASSOCIATE-RQ: which called AE titles it answers to, which calling AE titles it admits, which
/// abstract and transfer syntaxes it accepts. The defaults suit a VNA: every storage SOP class of the UID registry,
/// Verification and the Query/Retrieve classes, and every transfer syntax the toolkit can parse (compressed included) —
/// an archive keeps what it receives.
/// </summary>
public sealed record AssociationPolicy
{
    /// <summary>Called AE titles this SCP answers to; empty = any.</summary>
    public IReadOnlySet<string> CalledAETitles { get; init; } = new HashSet<string>(StringComparer.Ordinal) { "AKKAVNA" };

    /// <summary>Calling AE titles admitted; empty = any.</summary>
    public IReadOnlySet<string> CallingAETitles { get; init; } = new HashSet<string>(StringComparer.Ordinal);

    public Func<string, bool> AcceptAbstractSyntax { get; init; } = DefaultAbstractSyntaxes;

    public Func<string, bool> AcceptTransferSyntax { get; init; } = DefaultTransferSyntaxes;

    /// <summary>Who may associate, from where, and do what (<see cref="PeerAccess.Open"/>: anyone, anything).</summary>
    public PeerAccess Peers { get; init; } = PeerAccess.Open;

    /// <summary>Operations the requestor may have outstanding on this SCP when it proposes asynchronous operations.</summary>
    public ushort MaxAsyncOperations { get; init; } = 16;

    /// <summary>
    /// Verification, the storage classes and the Query/Retrieve information models of the registry, and any SOP class the
    /// registry does not know: devices store private SOP classes (Philips 1.3.46.670589..., vendors' 2.25 UIDs) and a VNA
    /// keeps them as it keeps everything else. Registered classes of other services (print, worklist...) are refused.
    /// </summary>
    public static bool DefaultAbstractSyntaxes(string uid)
    {
        if (uid == DicomUids.Verification) return true;
        var entry = DicomUidRegistry.Lookup(uid);
        if (entry is null) return IsSyntacticallyValidUid(uid);
        return entry.IsStorageSopClass || IsQueryRetrieve(uid);
    }

    private static bool IsSyntacticallyValidUid(string uid) =>
        uid.Length is > 0 and <= 64 && uid.All(c => c is >= '0' and <= '9' or '.') && !uid.StartsWith('.') && !uid.EndsWith('.') && !uid.Contains("..", StringComparison.Ordinal);

    /// <summary>Patient Root, Study Root and Patient/Study Only (retired) FIND/MOVE/GET, and composite instance root retrieve.</summary>
    public static bool IsQueryRetrieve(string uid) => uid.StartsWith("1.2.840.10008.5.1.4.1.2.", StringComparison.Ordinal);

    /// <summary>Every registered transfer syntax the toolkit reads: native, encapsulated (kept as received) and deflated.</summary>
    public static bool DefaultTransferSyntaxes(string uid) => DicomTransferSyntax.Lookup(uid) is { IsFileEncoding: true };

    /// <summary>
    /// Answers an association request: an <see cref="AssociateAccept"/> (advertising <paramref name="maxReceivePduLength"/>,
    /// the limit the association enforces) or an <see cref="AssociateReject"/>.
    /// </summary>
    /// <param name="peer">The admitted peer (<see cref="PeerAccess.Admit"/>): the Verification context is rejected when it may not echo.</param>
    public Pdu Negotiate(AssociateRequest rq, uint maxReceivePduLength, DicomPeer? peer = null)
    {
        if (CalledAETitles.Count > 0 && !CalledAETitles.Contains(rq.CalledAE))
            return new AssociateReject(RejectResult.Permanent, RejectSource.ServiceUser, AssociateReject.CalledAENotRecognized);
        if (CallingAETitles.Count > 0 && !CallingAETitles.Contains(rq.CallingAE))
            return new AssociateReject(RejectResult.Permanent, RejectSource.ServiceUser, AssociateReject.CallingAENotRecognized);
        if (rq.ApplicationContext != DicomUids.DICOMApplicationContext)
            return new AssociateReject(RejectResult.Permanent, RejectSource.ServiceUser, AssociateReject.ApplicationContextNotSupported);
        if (rq.PresentationContexts.Count == 0)
            return new AssociateReject(RejectResult.Permanent, RejectSource.ServiceUser, AssociateReject.NoReasonGiven);

        var results = new List<PresentationContextResult>(rq.PresentationContexts.Count);
        var seen = new HashSet<byte>();
        foreach (var pc in rq.PresentationContexts)
        {
            if (!seen.Add(pc.Id))
            {
                results.Add(new PresentationContextResult(pc.Id, PresentationContextResultReason.NoReason, ""));
                continue;
            }
            if (pc.AbstractSyntax == DicomUids.Verification && peer is not null && !peer.May(DicomPermissions.Echo))
            {
                results.Add(new PresentationContextResult(pc.Id, PresentationContextResultReason.UserRejection, "")); // the peer may not echo
                continue;
            }
            if (!AcceptAbstractSyntax(pc.AbstractSyntax))
            {
                results.Add(new PresentationContextResult(pc.Id, PresentationContextResultReason.AbstractSyntaxNotSupported, ""));
                continue;
            }
            // The proposer's order is its preference; the first syntax we read wins (a VNA keeps what it receives).
            string? ts = pc.TransferSyntaxes.FirstOrDefault(AcceptTransferSyntax);
            results.Add(ts is null
                ? new PresentationContextResult(pc.Id, PresentationContextResultReason.TransferSyntaxesNotSupported, "")
                : new PresentationContextResult(pc.Id, PresentationContextResultReason.Acceptance, ts));
        }

        var u = rq.UserInformation;
        var roles = u.RoleSelections
            .Where(r => AcceptAbstractSyntax(r.SopClassUid))
            .Select(r => new RoleSelection(r.SopClassUid, r.ScuRole, r.ScpRole))
            .ToList();
        (ushort, ushort)? window = u.AsyncOperations is { } a
            ? (Limit(a.Invoked, MaxAsyncOperations), 1) // we perform what the requestor invokes; we invoke one at a time
            : null;
        return new AssociateAccept
        {
            CalledAE = rq.CalledAE,
            CallingAE = rq.CallingAE,
            PresentationContexts = results,
            UserInformation = new UserInformation
            {
                MaximumLength = maxReceivePduLength,
                ImplementationClassUid = DicomImplementation.ClassUid,
                ImplementationVersionName = DicomImplementation.VersionName,
                AsyncOperations = window,
                RoleSelections = roles,
            },
        };
    }

    private static ushort Limit(ushort proposed, ushort max) => proposed == 0 ? max : Math.Min(proposed, max);
}
