using System.Globalization;
using System.Text;
using System.Xml;

namespace AkkaVna.Core.Audit;

/// <summary>
/// Writes an <see cref="AuditEvent"/> as DICOM audit messages (PS3.15 A.5: the schema of A.5.1, the conventions of A.5.2,
/// the message types of A.5.3), one message per study (A.5.3.4 allows one patient per message). Coded values carry
/// csd-code, codeSystemName and originalText; participant objects list the study with its SOP classes and the patient.
/// </summary>
public static class AuditMessage
{
    private readonly record struct Code(string Value, string System, string Text);

    private static readonly Code ApplicationActivityId = new("110100", "DCM", "Application Activity");
    private static readonly Code InstancesTransferredId = new("110104", "DCM", "DICOM Instances Transferred");
    private static readonly Code StudyDeletedId = new("110105", "DCM", "DICOM Study Deleted");
    private static readonly Code QueryId = new("110112", "DCM", "Query");
    private static readonly Code SecurityAlertId = new("110113", "DCM", "Security Alert");
    private static readonly Code UserAuthenticationId = new("110114", "DCM", "User Authentication");
    private static readonly Code ApplicationStart = new("110120", "DCM", "Application Start");
    private static readonly Code ApplicationStop = new("110121", "DCM", "Application Stop");
    private static readonly Code Login = new("110122", "DCM", "Login");
    private static readonly Code NodeAuthentication = new("110126", "DCM", "Node Authentication");
    private static readonly Code UseOfRestrictedFunction = new("110132", "DCM", "Use of Restricted Function");
    private static readonly Code StudyInstanceUid = new("110180", "DCM", "Study Instance UID");
    private static readonly Code SopClassUid = new("110181", "DCM", "SOP Class UID");
    private static readonly Code NodeId = new("110182", "DCM", "Node ID");
    private static readonly Code PatientNumber = new("2", "RFC-3881", "Patient Number");
    private static readonly Code ApplicationServer = new("4", "RFC-3881", "Application Server");

    private static Code RoleCode(AuditRole role) => role switch
    {
        AuditRole.Application => new("110150", "DCM", "Application"),
        AuditRole.ApplicationLauncher => new("110151", "DCM", "Application Launcher"),
        AuditRole.Destination => new("110152", "DCM", "Destination Role ID"),
        AuditRole.Source => new("110153", "DCM", "Source Role ID"),
        _ => throw new ArgumentOutOfRangeException(nameof(role)),
    };

    /// <summary>The messages for <paramref name="e"/>, from the audit source <paramref name="sourceId"/> (this node) of the enterprise <paramref name="siteId"/>.</summary>
    public static IReadOnlyList<string> Write(AuditEvent e, string sourceId, string? siteId) => e switch
    {
        InstancesTransferred t => t.Studies.Select(study => One(e, sourceId, siteId, w =>
        {
            Event(w, e, InstancesTransferredId, t.Created ? "C" : "R");
            Participant(w, t.Source);
            Participant(w, t.Destination);
            if (t.Requestor is { } other) Participant(w, other);
            Source(w, sourceId, siteId);
            Study(w, study);
            Patient(w, study);
        })).ToList(),
        StudyDeleted d => [One(e, sourceId, siteId, w =>
        {
            Event(w, e, StudyDeletedId, "D");
            Participant(w, d.Actor);
            Source(w, sourceId, siteId);
            Study(w, d.Study);
            Patient(w, d.Study);
        })],
        ApplicationActivity a => [One(e, sourceId, siteId, w =>
        {
            Event(w, e, ApplicationActivityId, "E", a.Started ? ApplicationStart : ApplicationStop);
            Participant(w, a.Application);
            Participant(w, new AuditParticipant(Environment.UserName is { Length: > 0 } u ? u : "unknown", null, null, true, AuditRole.ApplicationLauncher));
            Source(w, sourceId, siteId);
        })],
        Authentication a => [One(e, sourceId, siteId, w =>
        {
            Event(w, e, UserAuthenticationId, "E", Login);
            Participant(w, a.User);
            Participant(w, a.Node);
            Source(w, sourceId, siteId);
        })],
        SecurityAlert s => [One(e, sourceId, siteId, w =>
        {
            Event(w, e, SecurityAlertId, "E", s.Type == SecurityAlertType.NodeAuthentication ? NodeAuthentication : UseOfRestrictedFunction);
            Participant(w, s.Reporter);
            if (s.Offender is { } offender) Participant(w, offender);
            Source(w, sourceId, siteId);
            // The alert's subject: the node (its address) that failed, or the function it was refused.
            string subject = s.Offender?.Host ?? s.Offender?.UserId ?? "unknown";
            Object(w, subject, "2", "13", NodeId, name: s.Offender?.AETitle);
        })],
        QueryAudit q => [One(e, sourceId, siteId, w =>
        {
            Event(w, e, QueryId, "E");
            Participant(w, q.Requestor);
            Participant(w, q.Archive);
            Source(w, sourceId, siteId);
            w.WriteStartElement("ParticipantObjectIdentification");
            w.WriteAttributeString("ParticipantObjectID", q.SopClassUid);
            w.WriteAttributeString("ParticipantObjectTypeCode", "2");
            w.WriteAttributeString("ParticipantObjectTypeCodeRole", "3");
            Coded(w, "ParticipantObjectIDTypeCode", SopClassUid);
            w.WriteElementString("ParticipantObjectQuery", Convert.ToBase64String(q.Query));
            w.WriteEndElement();
        })],
        _ => throw new ArgumentException($"no audit message for {e.GetType().Name}", nameof(e)),
    };

    private static string One(AuditEvent e, string sourceId, string? siteId, Action<XmlWriter> body)
    {
        var sb = new StringBuilder(1024);
        using (var w = XmlWriter.Create(sb, new XmlWriterSettings { OmitXmlDeclaration = true, Indent = false, CheckCharacters = true }))
        {
            w.WriteStartElement("AuditMessage");
            body(w);
            w.WriteEndElement();
        }
        return sb.ToString();
    }

    private static void Event(XmlWriter w, AuditEvent e, Code id, string action, Code? type = null)
    {
        w.WriteStartElement("EventIdentification");
        w.WriteAttributeString("EventActionCode", action);
        w.WriteAttributeString("EventDateTime", e.At.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", CultureInfo.InvariantCulture));
        w.WriteAttributeString("EventOutcomeIndicator", ((int)e.Outcome).ToString(CultureInfo.InvariantCulture));
        Coded(w, "EventID", id);
        if (type is { } t) Coded(w, "EventTypeCode", t);
        if (e.OutcomeDescription is { Length: > 0 } d) w.WriteElementString("EventOutcomeDescription", Clean(d));
        w.WriteEndElement();
    }

    private static void Participant(XmlWriter w, AuditParticipant p)
    {
        w.WriteStartElement("ActiveParticipant");
        w.WriteAttributeString("UserID", Clean(p.UserId));
        // A.5.2.1: an application's AE titles go in AlternativeUserID as "AETITLES=A;B".
        if (p.AETitle is { Length: > 0 } ae) w.WriteAttributeString("AlternativeUserID", "AETITLES=" + Clean(ae));
        if (p.UserName is { Length: > 0 } name) w.WriteAttributeString("UserName", Clean(name));
        w.WriteAttributeString("UserIsRequestor", p.IsRequestor ? "true" : "false");
        if (p.Host is { Length: > 0 } host)
        {
            w.WriteAttributeString("NetworkAccessPointID", host);
            // 2: an IP address, 1: a machine name.
            w.WriteAttributeString("NetworkAccessPointTypeCode", System.Net.IPAddress.TryParse(host, out _) ? "2" : "1");
        }
        if (p.Role != AuditRole.None) Coded(w, "RoleIDCode", RoleCode(p.Role));
        w.WriteEndElement();
    }

    private static void Source(XmlWriter w, string sourceId, string? siteId)
    {
        w.WriteStartElement("AuditSourceIdentification");
        if (siteId is { Length: > 0 }) w.WriteAttributeString("AuditEnterpriseSiteID", siteId);
        w.WriteAttributeString("AuditSourceID", sourceId);
        Coded(w, "AuditSourceTypeCode", ApplicationServer);
        w.WriteEndElement();
    }

    private static void Study(XmlWriter w, AuditStudy study)
    {
        w.WriteStartElement("ParticipantObjectIdentification");
        w.WriteAttributeString("ParticipantObjectID", study.StudyInstanceUid);
        w.WriteAttributeString("ParticipantObjectTypeCode", "2");
        w.WriteAttributeString("ParticipantObjectTypeCodeRole", "3");
        Coded(w, "ParticipantObjectIDTypeCode", StudyInstanceUid);
        foreach (var (sopClass, count) in study.InstancesBySopClass.OrderBy(kv => kv.Key, StringComparer.Ordinal))
        {
            w.WriteStartElement("SOPClass");
            w.WriteAttributeString("UID", sopClass);
            w.WriteAttributeString("NumberOfInstances", count.ToString(CultureInfo.InvariantCulture));
            w.WriteEndElement();
        }
        w.WriteEndElement();
    }

    private static void Patient(XmlWriter w, AuditStudy study) =>
        Object(w, study.PatientId is { Length: > 0 } id ? id : "unknown", "1", "1", PatientNumber, study.PatientName);

    private static void Object(XmlWriter w, string id, string type, string role, Code idType, string? name = null)
    {
        w.WriteStartElement("ParticipantObjectIdentification");
        w.WriteAttributeString("ParticipantObjectID", Clean(id));
        w.WriteAttributeString("ParticipantObjectTypeCode", type);
        w.WriteAttributeString("ParticipantObjectTypeCodeRole", role);
        Coded(w, "ParticipantObjectIDTypeCode", idType);
        if (name is { Length: > 0 }) w.WriteElementString("ParticipantObjectName", Clean(name));
        w.WriteEndElement();
    }

    private static void Coded(XmlWriter w, string element, Code code)
    {
        w.WriteStartElement(element);
        w.WriteAttributeString("csd-code", code.Value);
        w.WriteAttributeString("codeSystemName", code.System);
        w.WriteAttributeString("originalText", code.Text);
        w.WriteEndElement();
    }

    /// <summary>Text from the network made safe for XML: characters XML cannot carry are replaced, never passed through.</summary>
    private static string Clean(string s)
    {
        if (s.All(XmlConvert.IsXmlChar)) return s;
        var sb = new StringBuilder(s.Length);
        foreach (char c in s) sb.Append(XmlConvert.IsXmlChar(c) ? c : '?');
        return sb.ToString();
    }
}
