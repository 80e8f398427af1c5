namespace AkkaVna.Core.Audit;

/// <summary>EventOutcomeIndicator (PS3.15 A.5.1): 0 success, 4 minor failure, 8 serious failure, 12 major failure.</summary>
public enum AuditOutcome { Success = 0, MinorFailure = 4, SeriousFailure = 8, MajorFailure = 12 }

/// <summary>
/// Who took part (ActiveParticipant): a user id (an AE title, a token's subject, this node), the AE title when it is a
/// DICOM application, the host it came from, whether it asked for what happened, and its role (source, destination...).
/// </summary>
public sealed record AuditParticipant(string UserId, string? AETitle, string? Host, bool IsRequestor, AuditRole Role = AuditRole.None)
{
    public string? UserName { get; init; }
}

/// <summary>RoleIDCode (DCID 402), where the message type uses one.</summary>
public enum AuditRole { None, Application, ApplicationLauncher, Destination, Source }

/// <summary>One study's part in an event: its instances by SOP class, and its patient (filled in before sending when unknown).</summary>
public sealed record AuditStudy(string StudyInstanceUid, IReadOnlyDictionary<string, int> InstancesBySopClass)
{
    public string? PatientId { get; init; }
    public string? PatientName { get; init; }
    public int Instances => InstancesBySopClass.Values.Sum();
}

/// <summary>
/// One audited event, as the archive saw it; <see cref="AuditMessage"/> writes it as a DICOM audit message (PS3.15 A.5).
/// Every event carries who, what and the outcome; <see cref="At"/> is when it happened.
/// </summary>
public abstract record AuditEvent(DateTimeOffset At, AuditOutcome Outcome, string? OutcomeDescription);

/// <summary>Application Activity (110100): the node started or stopped (A.5.3.1).</summary>
public sealed record ApplicationActivity(DateTimeOffset At, bool Started, AuditParticipant Application)
    : AuditEvent(At, AuditOutcome.Success, null);

/// <summary>
/// An association or an HTTP request admitted (User Authentication 110114, Login) or refused for who it is (a failed
/// Login: an unknown AE, a host it may not come from, a bad token).
/// </summary>
public sealed record Authentication(DateTimeOffset At, AuditOutcome Outcome, string? OutcomeDescription, AuditParticipant User, AuditParticipant Node)
    : AuditEvent(At, Outcome, OutcomeDescription);

/// <summary>Security Alert (110113): a refused TLS handshake (Node Authentication) or a use refused for want of permission (Use of Restricted Function).</summary>
public sealed record SecurityAlert(DateTimeOffset At, SecurityAlertType Type, string Description, AuditParticipant Reporter, AuditParticipant? Offender)
    : AuditEvent(At, AuditOutcome.MinorFailure, Description);

/// <summary>EventTypeCode of a Security Alert (DCID 403).</summary>
public enum SecurityAlertType { NodeAuthentication, UseOfRestrictedFunction }

/// <summary>DICOM Instances Transferred (110104): stored here (action C) or sent out (R: C-GET, C-MOVE, WADO), per study.</summary>
public sealed record InstancesTransferred(DateTimeOffset At, AuditOutcome Outcome, string? OutcomeDescription, bool Created, AuditParticipant Source,
    AuditParticipant Destination, AuditParticipant? Requestor, IReadOnlyList<AuditStudy> Studies)
    : AuditEvent(At, Outcome, OutcomeDescription);

/// <summary>Query (110112): a C-FIND (the identifier as the query) or a QIDO-RS request (its query string), by whom.</summary>
public sealed record QueryAudit(DateTimeOffset At, AuditOutcome Outcome, string? OutcomeDescription, AuditParticipant Requestor, AuditParticipant Archive,
    string SopClassUid, byte[] Query) : AuditEvent(At, Outcome, OutcomeDescription);

/// <summary>DICOM Study Deleted (110105): a study destroyed at the end of its life (or deleted by an operator).</summary>
public sealed record StudyDeleted(DateTimeOffset At, AuditParticipant Actor, AuditStudy Study, string Reason)
    : AuditEvent(At, AuditOutcome.Success, Reason);

/// <summary>
/// The audit trail's port: events go in without waiting (a bounded buffer behind it: audit never blocks ingest; what it
/// cannot keep it counts as dropped). Instances stored are gathered per association (or request) and study, and reported
/// together when it ends (<see cref="EndOfTransfer"/>).
/// </summary>
public interface IAuditTrail
{
    void Record(AuditEvent e);

    /// <summary>One instance stored through association or request <paramref name="transfer"/>; reported with the others of its study at its end.</summary>
    void InstanceStored(string transfer, AuditParticipant source, AuditParticipant destination, string studyInstanceUid, string sopClassUid);

    /// <summary>The association or request <paramref name="transfer"/> ended: its stored instances are reported now.</summary>
    void EndOfTransfer(string transfer);

    /// <summary>No audit trail: nothing recorded.</summary>
    public static readonly IAuditTrail None = new NoAuditTrail();

    private sealed class NoAuditTrail : IAuditTrail
    {
        public void Record(AuditEvent e) { }
        public void InstanceStored(string transfer, AuditParticipant source, AuditParticipant destination, string studyInstanceUid, string sopClassUid) { }
        public void EndOfTransfer(string transfer) { }
    }
}
