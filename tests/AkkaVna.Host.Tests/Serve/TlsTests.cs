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

    [Fact]
    public void Dcmtk_stores_and_queries_over_TLS_and_clients_without_a_trusted_certificate_are_refused()
    {
        using var dir = new TempDir();
        var pki = TestCertificates.Create(dir.File("pki"));
        string data = ArchiveServer.NewDataFolder(dir, ArchiveServer.Sqlite);
        int tlsPort = Ports.Free();
        string config = $$"""
            akka-vna.dicom.tls {
              port = {{tlsPort}}
              certificate = {{AkkaVna.Host.ArchiveOptions.Quote(pki.ServerCertificate)}}
              key = {{AkkaVna.Host.ArchiveOptions.Quote(pki.ServerKey)}}
              ca = {{AkkaVna.Host.ArchiveOptions.Quote(pki.CaCertificate)}}
              require-client-certificate = on
              handshake-timeout = 3s
            }
            """;
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
}
