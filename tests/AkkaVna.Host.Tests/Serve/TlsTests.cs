using System.Globalization;
using AkkaVna.Dicom.IO;
using AkkaVna.Dicom.Network.Replay;
using AkkaVna.Testing;
using Xunit.Abstractions;

namespace AkkaVna.Host.Tests.Serve;

/// <summary>
/// Issue 20's DICOM TLS against dcmtk built with OpenSSL: echoscu, storescu and findscu with <c>+tls</c> echo, store and
/// query over the TLS port (BCP 195 non-downgrading profile, dcmtk's default); with client certificates required, a
/// client without one or with one from another authority is refused, and a plain-TCP client on the TLS port is dropped
/// when the handshake does not come.
/// </summary>
public sealed class TlsTests(ITestOutputHelper output)
{
    private static readonly TimeSpan ToolTimeout = TimeSpan.FromMinutes(2);

    /// <summary>The node's <c>akka-vna.dicom.tls</c> block with the test PKI's server certificate and authority.</summary>
    private static string TlsBlock(TestCertificates pki, int port, string more = "") => $$"""
        akka-vna.dicom.tls {
          port = {{port}}
          certificate = {{AkkaVna.Host.ArchiveOptions.Quote(pki.ServerCertificate)}}
          key = {{AkkaVna.Host.ArchiveOptions.Quote(pki.ServerKey)}}
          ca = {{AkkaVna.Host.ArchiveOptions.Quote(pki.CaCertificate)}}
          {{more}}
        }
        """;

    [Fact]
    public void Dcmtk_stores_and_queries_over_TLS_and_clients_without_a_trusted_certificate_are_refused()
    {
        using var dir = new TempDir();
        var pki = TestCertificates.Create(dir.File("pki"));
        string data = ArchiveServer.NewDataFolder(dir, ArchiveServer.Sqlite);
        int tlsPort = Ports.Free();
        string config = TlsBlock(pki, tlsPort, "require-client-certificate = on\n  handshake-timeout = 3s");
        using var server = new ArchiveServer(data, config);
        Assert.Equal(tlsPort, server.TlsPort);
        string[] tls = ["+tls", pki.ClientKey, pki.ClientCertificate, "+cf", pki.CaCertificate];
        string port = tlsPort.ToString(CultureInfo.InvariantCulture);

        // Echo, store, query and retrieve over TLS with a client certificate of the trusted authority.
        var echo = Tool.Run(Tool.Dcmtk("echoscu"), ["-v", .. tls, "-aec", "AKKAVNA", "127.0.0.1", port], ToolTimeout);
        Assert.True(echo.ExitCode == 0, echo.StdOut + echo.StdErr + server.Output);
        var files = ReplaySources.Generate(new GeneratorOptions(1, 4, "CT", 64, 64, Seed: 30), dir.File("ct")).Select(f => StoreFile.Read(f.Path)).ToList();
        string study;
        using (var file = DicomFile.Open(files[0].Path)) study = file.Dataset.GetString(AkkaVna.Dicom.DicomTags.StudyInstanceUID)!;
        var stored = Tool.Run(Tool.Dcmtk("storescu"), ["-v", .. tls, "-aec", "AKKAVNA", "127.0.0.1", port, .. files.Select(f => f.Path)], ToolTimeout);
        Assert.True(stored.ExitCode == 0, stored.StdOut + stored.StdErr);
        Assert.Equal(files.Count, Storescu.Responses(stored).Values.Count(s => s == "Success"));
        var found = QueryRetrieveTools.Find(null, tlsPort, false, ["QueryRetrieveLevel=STUDY", $"StudyInstanceUID={study}", "NumberOfStudyRelatedInstances"], tls);
        Assert.Equal("Success", found.FinalStatus);
        Assert.Equal(files.Count.ToString(CultureInfo.InvariantCulture), Assert.Single(found.DataSets).GetString(AkkaVna.Dicom.DicomTags.NumberOfStudyRelatedInstances));
        // (dcmtk 3.6.7's getscu and movescu have no TLS options: retrieval over TLS is not shown with dcmtk here.)

        // No client certificate, or one from another authority: refused in the handshake.
        var anonymous = Tool.Run(Tool.Dcmtk("echoscu"), ["-v", "+tla", "+cf", pki.CaCertificate, "-aec", "AKKAVNA", "127.0.0.1", port], ToolTimeout);
        Assert.NotEqual(0, anonymous.ExitCode);
        var rogue = Tool.Run(Tool.Dcmtk("echoscu"), ["-v", "+tls", pki.RogueClientKey, pki.RogueClientCertificate, "+cf", pki.CaCertificate, "-aec", "AKKAVNA",
            "127.0.0.1", port], ToolTimeout);
        Assert.NotEqual(0, rogue.ExitCode);
        // A client that does not trust the server's authority gives up itself.
        var distrustful = Tool.Run(Tool.Dcmtk("echoscu"), ["-v", .. tls[..3], "+cf", pki.OtherCaCertificate, "-aec", "AKKAVNA", "127.0.0.1", port], ToolTimeout);
        Assert.NotEqual(0, distrustful.ExitCode);
        // Plain DICOM on the TLS port: no handshake comes, the node drops the connection after its handshake timeout.
        var plain = Tool.Run(Tool.Dcmtk("echoscu"), ["-v", "-to", "30", "-aec", "AKKAVNA", "127.0.0.1", port], ToolTimeout);
        Assert.NotEqual(0, plain.ExitCode);
        // ... while the plain port still answers plain DICOM.
        Assert.Equal(0, Tool.Run(Tool.Dcmtk("echoscu"), ["-aec", "AKKAVNA", "127.0.0.1", server.DicomPort.ToString(CultureInfo.InvariantCulture)], ToolTimeout).ExitCode);

        // Each of the four refused connections is logged with why (the log is written as they end: waited for).
        static int Refused(string log) => log.Split('\n').Count(l => l.Contains("TLS handshake with 127.0.0.1:", StringComparison.Ordinal));
        var until = DateTime.UtcNow + TimeSpan.FromSeconds(15);
        while (Refused(server.Output) < 4 && DateTime.UtcNow < until) Thread.Sleep(100);
        string log = server.Output;
        output.WriteLine(string.Join('\n', log.Split('\n').Where(l => l.Contains("TLS", StringComparison.Ordinal))));
        Assert.Equal(4, Refused(log));
        Assert.Contains("the peer sent no certificate", log, StringComparison.Ordinal);
        Assert.Contains("(CN=ROGUE) does not chain to a trusted authority", log, StringComparison.Ordinal);
        Assert.Equal(0, server.Stop());
        // Each refused handshake is a Node Authentication security alert in the audit trail (the node's audit file).
        var alerts = File.ReadAllLines(Path.Combine(data, "audit.log")).Where(l => l.Contains("csd-code=\"110126\"", StringComparison.Ordinal)).ToList();
        Assert.Equal(4, alerts.Count);
    }

    [Fact]
    public void A_peer_with_a_certificate_subject_is_admitted_only_over_TLS_with_that_certificate()
    {
        using var dir = new TempDir();
        var pki = TestCertificates.Create(dir.File("pki"));
        int tlsPort = Ports.Free();
        string config = TlsBlock(pki, tlsPort) + """

            akka-vna.dicom.accept-unknown-peers = off
            akka-vna.dicom.peers = [
              {
                ae-title = "MODALITY1"
                hosts = ["127.0.0.1"]
                permissions = [echo]
                certificate-subject = "cn=MODALITY1"
              }
            ]
            """;
        using var server = new ArchiveServer(ArchiveServer.NewDataFolder(dir, ArchiveServer.Sqlite), config);
        string tls = tlsPort.ToString(CultureInfo.InvariantCulture), plain = server.DicomPort.ToString(CultureInfo.InvariantCulture);
        Tool.Result Echo(string port, params string[] options) =>
            Tool.Run(Tool.Dcmtk("echoscu"), ["-v", "-aet", "MODALITY1", "-aec", "AKKAVNA", .. options, "127.0.0.1", port], ToolTimeout);

        // Its own certificate over TLS: admitted.
        var own = Echo(tls, "+tls", pki.ClientKey, pki.ClientCertificate, "+cf", pki.CaCertificate);
        Assert.True(own.ExitCode == 0, own.StdOut + own.StdErr + server.Output);
        // A certificate of the same authority naming someone else, none over TLS, or plain TCP: rejected, and why is logged.
        Assert.NotEqual(0, Echo(tls, "+tls", pki.WorkstationKey, pki.WorkstationCertificate, "+cf", pki.CaCertificate).ExitCode);
        Assert.NotEqual(0, Echo(tls, "+tla", "+cf", pki.CaCertificate).ExitCode);
        Assert.NotEqual(0, Echo(plain).ExitCode);
        string log = server.Output;
        Assert.Contains("must present a TLS client certificate with subject 'cn=MODALITY1' (it presented 'CN=WORKSTATION')", log, StringComparison.Ordinal);
        Assert.Equal(2, log.Split('\n').Count(l => l.Contains("must present a TLS client certificate with subject 'cn=MODALITY1' (it presented none)", StringComparison.Ordinal)));
        Assert.Equal(0, server.Stop());
    }

    [Fact]
    public void Instances_go_out_over_TLS_to_a_move_destination_to_getscu_through_a_TLS_tunnel_and_come_in_from_the_load_tool()
    {
        using var dir = new TempDir();
        var pki = TestCertificates.Create(dir.File("pki"));
        using var network = new NetworkNamespace();
        int destination = Ports.Free(), dicom = Ports.Free(), tlsPort = Ports.Free(), tunnelPort = Ports.Free();
        string received = dir.File("storescp");
        Directory.CreateDirectory(received);
        // dcmtk's storescp over TLS (it requires and checks the node's client certificate: the default), in the namespace.
        using var storescp = network.Start(Tool.Dcmtk("storescp"), ["-aet", "TLSDEST", "+tls", pki.ServerKey, pki.ServerCertificate, "+cf", pki.CaCertificate,
            "-od", received, destination.ToString(CultureInfo.InvariantCulture)], null);
        network.WaitForPort(destination, TimeSpan.FromSeconds(30));
        string config = TlsBlock(pki, tlsPort, "require-client-certificate = on") + $$"""

            akka-vna.retrieve.destinations {
              TLSDEST {
                host = "127.0.0.1"
                port = {{destination}}
                tls = on
              }
            }
            """;
        using var server = new ArchiveServer(ArchiveServer.NewDataFolder(dir, ArchiveServer.Sqlite), config, dicomPort: dicom, network: network);
        Assert.Equal(tlsPort, server.TlsPort);
        string tls = tlsPort.ToString(CultureInfo.InvariantCulture);
        string[] clientTls = ["--tls", "--tls-ca", pki.CaCertificate, "--tls-cert", pki.ClientCertificate, "--tls-key", pki.ClientKey];

        // In: the CLI's store and the load tool (replay) over TLS with a client certificate.
        var files = ReplaySources.Generate(new GeneratorOptions(1, 6, "CT", 64, 64, Seed: 31), dir.File("ct")).Select(f => StoreFile.Read(f.Path)).ToList();
        string study;
        using (var file = DicomFile.Open(files[0].Path)) study = file.Dataset.GetString(AkkaVna.Dicom.DicomTags.StudyInstanceUID)!;
        var store = network.Run("dotnet", [AkkaVnaCli.Dll, "store", .. clientTls, "-aec", "AKKAVNA", "127.0.0.1", tls, dir.File("ct")], ToolTimeout);
        Assert.True(store.ExitCode == 0, store.StdOut + store.StdErr);
        var replay = network.Run("dotnet", [AkkaVnaCli.Dll, "replay", "127.0.0.1", tls, "generate:1,4,CT,32x32", "-aec", "AKKAVNA", .. clientTls,
            "--report", dir.File("report")], ToolTimeout);
        Assert.True(replay.ExitCode == 0, replay.StdOut + replay.StdErr);
        using (var json = System.Text.Json.JsonDocument.Parse(File.ReadAllText(dir.File("report/replay.json"))))
            Assert.Equal(4, json.RootElement.GetProperty("stored").GetInt32());
        // ... and without a client certificate the load tool is refused in the handshake.
        var anonymous = network.Run("dotnet", [AkkaVnaCli.Dll, "echo", "--tls", "--tls-ca", pki.CaCertificate, "-aec", "AKKAVNA", "127.0.0.1", tls], ToolTimeout);
        Assert.NotEqual(0, anonymous.ExitCode);

        // Out: a C-MOVE (asked over plain DICOM) to the TLS destination; the node connects with TLS and its certificate.
        var moved = QueryRetrieveTools.Move(network, dicom, "TLSDEST", ["QueryRetrieveLevel=STUDY", $"StudyInstanceUID={study}"]);
        Assert.True(moved.Code == 0 && moved.Count("Completed") == files.Count, moved.Output + server.Output);
        var arrived = QueryRetrieveTools.Received(received);
        Assert.Equal(files.Count, arrived.Count);
        foreach (var f in files) Storescu.AssertSameDataSet(f.Path, arrived[f.SopInstanceUid]);

        // Out: C-GET by dcmtk's getscu (no TLS of its own in 3.6.7) through stunnel, a TLS client tunnel with the client's certificate.
        string tunnel = dir.File("stunnel.conf");
        File.WriteAllText(tunnel, $"""
            foreground = yes
            pid =
            [dicom]
            client = yes
            accept = 127.0.0.1:{tunnelPort}
            connect = 127.0.0.1:{tlsPort}
            cert = {pki.ClientCertificate}
            key = {pki.ClientKey}
            CAfile = {pki.CaCertificate}
            verifyChain = yes
            checkIP = 127.0.0.1
            """);
        using (network.Start("stunnel4", [tunnel], null))
        {
            network.WaitForPort(tunnelPort, TimeSpan.FromSeconds(30));
            var got = QueryRetrieveTools.Get(network, tunnelPort, dir.File("get"), ["QueryRetrieveLevel=STUDY", $"StudyInstanceUID={study}"]);
            Assert.True(got.FinalStatus == "Success", got.Output);
            var gotten = QueryRetrieveTools.Received(dir.File("get"));
            Assert.Equal(files.Count, gotten.Count);
            foreach (var f in files) Storescu.AssertSameDataSet(f.Path, gotten[f.SopInstanceUid]);
        }
        Assert.Equal(0, server.Stop());
    }

    [Fact]
    public void With_tls_only_there_is_no_plain_DICOM_port()
    {
        using var dir = new TempDir();
        var pki = TestCertificates.Create(dir.File("pki"));
        string config = TlsBlock(pki, 0, "only = on\n  handshake-timeout = 2s");
        using var server = new ArchiveServer(ArchiveServer.NewDataFolder(dir, ArchiveServer.Sqlite), config);
        Assert.Equal(server.DicomPort, server.TlsPort); // the one DICOM port is the TLS one
        string port = server.DicomPort.ToString(CultureInfo.InvariantCulture);
        var tls = Tool.Run(Tool.Dcmtk("echoscu"), ["+tls", pki.ClientKey, pki.ClientCertificate, "+cf", pki.CaCertificate, "-aec", "AKKAVNA", "127.0.0.1", port], ToolTimeout);
        Assert.True(tls.ExitCode == 0, tls.StdOut + tls.StdErr);
        Assert.NotEqual(0, Tool.Run(Tool.Dcmtk("echoscu"), ["-to", "20", "-aec", "AKKAVNA", "127.0.0.1", port], ToolTimeout).ExitCode);
        Assert.Contains("DICOM over TLS only", server.Output, StringComparison.Ordinal);
        Assert.Equal(0, server.Stop());
    }
}
