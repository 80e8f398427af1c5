using System.Globalization;
using AkkaVna.Dicom.IO;
using AkkaVna.Dicom.Network.Replay;
using AkkaVna.Testing;
using AkkaVna.Testing.Audit;
using Xunit.Abstractions;

namespace AkkaVna.Host.Tests.Serve;

/// <summary>
/// Issue 20's audit trail against a running node and a syslog receiver started here (TLS, RFC 5425): a scripted session —
/// a store, a query, a retrieve, a refused association, an operation refused for want of permission, a DICOMweb read —
/// gives the DICOM audit messages PS3.15 A.5.3 describes, each valid against the A.5.1 schema (checked by jing), with
/// who (AE title, host), what (study, patient) and the outcome; the local audit file holds the same messages.
/// </summary>
public sealed class AuditTests(ITestOutputHelper output)
{
    private static readonly TimeSpan ToolTimeout = TimeSpan.FromMinutes(2);

    [Fact]
    public async Task A_scripted_session_gives_the_expected_audit_messages_each_valid_against_the_schema()
    {
        using var dir = new TempDir();
        var pki = TestCertificates.Create(dir.File("pki"));
        using var collector = SyslogCollector.Tls(pki.ServerCertificate, pki.ServerKey);
        string data = ArchiveServer.NewDataFolder(dir, ArchiveServer.Sqlite);
        string config = $$"""
            akka-vna.dicom.accept-unknown-peers = off
            akka-vna.dicom.peers = [
              {
                ae-title = "MODALITY"
                hosts = ["127.0.0.1"]
                permissions = [echo, store, find, get]
              }
            ]
            akka-vna.audit {
              site-id = "HOSPITALS"
              syslog {
                transport = tls
                host = "127.0.0.1"
                port = {{collector.Port}}
                ca = {{AkkaVna.Host.ArchiveOptions.Quote(pki.CaCertificate)}}
              }
            }
            """;
        var files = ReplaySources.Generate(new GeneratorOptions(1, 3, "CT", 32, 32, Seed: 51), dir.File("ct")).Select(f => StoreFile.Read(f.Path)).ToList();
        string study, patient;
        using (var file = DicomFile.Open(files[0].Path))
        {
            study = file.Dataset.GetString(AkkaVna.Dicom.DicomTags.StudyInstanceUID)!;
            patient = file.Dataset.GetString(AkkaVna.Dicom.DicomTags.PatientID)!;
        }
        using var server = new ArchiveServer(data, config);
        string port = server.DicomPort.ToString(CultureInfo.InvariantCulture);

        // The session: MODALITY stores 3 instances, queries and retrieves them; STRANGER is refused; MODALITY asks for a
        // C-MOVE, which it may not do; a viewer reads the study's metadata over DICOMweb.
        var stored = Tool.Run(Tool.Dcmtk("storescu"), ["-aet", "MODALITY", "-aec", "AKKAVNA", "127.0.0.1", port, .. files.Select(f => f.Path)], ToolTimeout);
        Assert.True(stored.ExitCode == 0, stored.StdOut + stored.StdErr);
        var found = QueryRetrieveTools.Find(null, server.DicomPort, false, ["QueryRetrieveLevel=STUDY", $"StudyInstanceUID={study}"], "-aet", "MODALITY");
        Assert.Equal("Success", found.FinalStatus);
        var got = QueryRetrieveTools.Get(null, server.DicomPort, dir.File("get"), ["QueryRetrieveLevel=STUDY", $"StudyInstanceUID={study}"], "-aet", "MODALITY");
        Assert.True(got.FinalStatus == "Success", got.Output);
        var stranger = Tool.Run(Tool.Dcmtk("echoscu"), ["-aet", "STRANGER", "-aec", "AKKAVNA", "127.0.0.1", port], ToolTimeout);
        Assert.NotEqual(0, stranger.ExitCode);
        var moved = QueryRetrieveTools.Move(null, server.DicomPort, "ELSEWHERE", ["QueryRetrieveLevel=STUDY", $"StudyInstanceUID={study}"], false, "-aet", "MODALITY");
        Assert.Equal(0x0124, moved.Code);
        using (var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{server.HttpPort}/") })
            Assert.True((await http.GetAsync($"dicom-web/studies/{study}/metadata")).IsSuccessStatusCode);
        Assert.Equal(0, server.Stop());

        // The messages arrive as the writer gets to them: wait for Application Stop, the last one.
        await Waits.UntilAsync(() => Task.FromResult(collector.Messages.Any(m => m.EventId == "110100" && m.EventType == "110121")), TimeSpan.FromSeconds(30),
            "the Application Stop message", () => string.Join('\n', collector.Messages.Select(m => m.Xml)) + string.Join('\n', collector.Errors));
        var messages = collector.Messages;
        foreach (var m in messages) output.WriteLine($"{m.Priority} {m.MsgId} {m.EventId}/{m.EventType} {m.Action} {m.Outcome} {string.Join(",", m.UserIds)}");
        Assert.Empty(collector.Errors);
        Assert.All(messages, m => Assert.Equal("IHE+RFC-3881", m.MsgId));
        Assert.All(messages, m => Assert.Equal("akka-vna", m.App));

        // Each message is valid against the DICOM audit message schema.
        string invalid = SyslogCollector.ValidateAgainstSchema(messages.Select(m => m.Xml), dir.File("xml"));
        Assert.True(invalid.Length == 0, invalid);

        // Application Start first, Application Stop last.
        Assert.Equal(("110100", "110120"), (messages[0].EventId, messages[0].EventType));
        Assert.Equal(("110100", "110121"), (messages[^1].EventId, messages[^1].EventType));
        // The store: one DICOM Instances Transferred (create) for the study, its 3 CT instances, the patient, MODALITY as source.
        var transfer = Assert.Single(messages, m => m.EventId == "110104" && m.Action == "C");
        Assert.Equal("0", transfer.Outcome);
        Assert.Contains("MODALITY", transfer.UserIds);
        Assert.Contains(transfer.Objects, o => o.Attribute("ParticipantObjectID")!.Value == study
            && o.Element("SOPClass")?.Attribute("NumberOfInstances")!.Value == "3");
        Assert.Contains(transfer.Objects, o => o.Attribute("ParticipantObjectID")!.Value == patient && o.Attribute("ParticipantObjectTypeCodeRole")!.Value == "1");
        // The query: the Study Root FIND SOP class and the identifier as asked (it names the study).
        var query = Assert.Single(messages, m => m.EventId == "110112");
        var queried = Assert.Single(query.Objects);
        Assert.Equal("1.2.840.10008.5.1.4.1.2.2.1", queried.Attribute("ParticipantObjectID")!.Value);
        Assert.Contains(study, System.Text.Encoding.ASCII.GetString(Convert.FromBase64String(queried.Element("ParticipantObjectQuery")!.Value)), StringComparison.Ordinal);
        // The retrieves: C-GET to MODALITY, and the DICOMweb read, each a DICOM Instances Transferred (read) of the study.
        var reads = messages.Where(m => m.EventId == "110104" && m.Action == "R").ToList();
        Assert.Equal(2, reads.Count);
        Assert.All(reads, r => Assert.Contains(r.Objects, o => o.Attribute("ParticipantObjectID")!.Value == study));
        Assert.All(reads, r => Assert.Contains(r.Objects, o => o.Attribute("ParticipantObjectID")!.Value == patient));
        Assert.Contains(reads, r => r.UserIds.Contains("MODALITY"));
        // Associations: MODALITY's logins succeeded (store, find, get, move), STRANGER's failed; the move was a use of a
        // restricted function, refused.
        var logins = messages.Where(m => m.EventId == "110114" && m.EventType == "110122").ToList();
        Assert.Equal(4, logins.Count(l => l.Outcome == "0" && l.UserIds.Contains("MODALITY")));
        var refusedLogin = Assert.Single(logins, l => l.Outcome != "0");
        Assert.Contains("STRANGER", refusedLogin.UserIds);
        Assert.Contains("not a known peer", refusedLogin.Root.Element("EventIdentification")!.Element("EventOutcomeDescription")!.Value, StringComparison.Ordinal);
        var alert = Assert.Single(messages, m => m.EventId == "110113");
        Assert.Equal("110132", alert.EventType);
        Assert.Contains("MODALITY", alert.UserIds);

        // The local file holds the same messages, one per line.
        var lines = File.ReadAllLines(Path.Combine(data, "audit.log"));
        Assert.Equal(messages.Count, lines.Length);
        Assert.All(lines, l => Assert.Contains("IHE+RFC-3881 - \uFEFF<AuditMessage>", l, StringComparison.Ordinal));
    }
}
