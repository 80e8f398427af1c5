using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using AkkaVna.Dicom.Network.Replay;
using AkkaVna.Testing;

namespace AkkaVna.Perf;

/// <summary>
/// Issue 20's cost of security, in one invocation: the same CT instances stored by dcmtk's storescu into a durable
/// akka-vna node over plain TCP, over DICOM TLS (storescu +tls with a client certificate, the node requiring one;
/// dcmtk's default BCP 195 non-downgrading profile), with encryption at rest, and with both, each into an empty node, at
/// 1 and 4 associations; then a whole study retrieved by dcmtk's getscu from each (over TLS through stunnel, a TLS client
/// tunnel: dcmtk 3.6.7's getscu has no TLS of its own).
/// </summary>
internal static class TlsBenchmark
{
    private sealed record Variant(string Name, bool Tls, bool Encrypted);

    public static int Run(string[] args)
    {
        int count = (int)Bench.Option(args, "--instances", 600);
        int repeats = (int)Bench.Option(args, "--repeats", 3);
        using var dir = new TempDir();
        var files = ReplaySources.Generate(new GeneratorOptions(Math.Max(1, count / 100), 100, "CT", 512, 512, Seed: 20), Path.Combine(dir.Path, "ct"))
            .Select(f => f.Path).Take(count).ToList();
        long bytes = files.Sum(f => new FileInfo(f).Length);
        string study;
        using (var first = AkkaVna.Dicom.IO.DicomFile.Open(files[0]))
            study = first.Dataset.GetString(AkkaVna.Dicom.DicomTags.StudyInstanceUID)!;
        int studySize = files.Count(f =>
        {
            using var file = AkkaVna.Dicom.IO.DicomFile.Open(f, new AkkaVna.Dicom.IO.DicomReadOptions { StopBefore = t => t.Group > 0x0020 });
            return file.Dataset.GetString(AkkaVna.Dicom.DicomTags.StudyInstanceUID) == study;
        });
        var pki = TestCertificates.Create(Path.Combine(dir.Path, "pki"));
        string keyFile = Path.Combine(dir.Path, "master.key");
        File.WriteAllText(keyFile, Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(32)));
        int tlsPort = Targets.DicomPort + 40, tunnelPort = Targets.DicomPort + 41;
        string TlsConfig() => $$"""
            akka-vna.dicom.tls {
              port = {{tlsPort}}
              certificate = "{{pki.ServerCertificate}}"
              key = "{{pki.ServerKey}}"
              ca = "{{pki.CaCertificate}}"
              require-client-certificate = on
            }
            """;
        string EncryptionConfig() => $"akka-vna.encryption {{\n enabled = on\n master-key-file = \"{keyFile}\"\n}}\n";
        string tlsOptions = $"+tls '{pki.ClientKey}' '{pki.ClientCertificate}' +cf '{pki.CaCertificate}'";
        Variant[] variants = [new("plain TCP", false, false), new("TLS", true, false), new("encrypted at rest", false, true), new("TLS + encrypted", true, true)];

        Console.WriteLine($"# Security's cost: DICOM TLS and encryption at rest against plain ({DateTime.UtcNow:yyyy-MM-dd}, {Environment.ProcessorCount} cores, .NET {Environment.Version}, {Bench.DcmtkVersion()})");
        Console.WriteLine();
        Console.WriteLine(Bench.Invariant($"{files.Count} CT instances (512x512x16, {bytes / 1e6 / files.Count:F2} MB each, {bytes / 1e6:F0} MB) stored by storescu into a durable akka-vna (SQLite, files, blobs fsynced), each run into an empty node; then a {studySize}-instance study retrieved by getscu (after the 1-association ingest); median of {repeats}."));
        Console.WriteLine();
        var ingest = variants.ToDictionary(v => v, _ => new Dictionary<int, List<double>> { [1] = [], [4] = [] });
        var retrieve = variants.ToDictionary(v => v, _ => new List<double>());
        for (int r = 0; r < repeats; r++)
            foreach (int associations in new[] { 1, 4 })
                foreach (var v in variants)
                {
                    string config = (v.Tls ? TlsConfig() : "") + "\n" + (v.Encrypted ? EncryptionConfig() : "");
                    using var target = Targets.StartEmpty(dir.Path, work => new AkkaVnaTarget(work, flushBlobs: true, extraConfig: config));
                    double seconds = v.Tls ? Bench.Storescu(files, [tlsPort], target.AETitle, associations, options: tlsOptions)
                        : Bench.Storescu(files, [target.Port], target.AETitle, associations);
                    ingest[v][associations].Add(files.Count / seconds);
                    if (associations == 1) retrieve[v].Add(studySize / Getscu(dir.Path, v.Tls ? tunnelPort : target.Port, target.AETitle, study, studySize, v.Tls ? pki : null, tlsPort));
                }

        Console.WriteLine("| ingest, instances/s | " + string.Join(" | ", variants.Select(v => v.Name)) + " |");
        Console.WriteLine("|---|" + string.Join("", variants.Select(_ => "---|")));
        foreach (int associations in new[] { 1, 4 })
        {
            double plain = Bench.Median(ingest[variants[0]][associations]);
            Console.WriteLine(Bench.Invariant($"| {associations} association(s) | ") + string.Join(" | ", variants.Select(v =>
            {
                double m = Bench.Median(ingest[v][associations]);
                return v == variants[0] ? Bench.Invariant($"{m:F0}") : Bench.Invariant($"{m:F0} ({m / plain:F2}x)");
            })) + " |");
        }
        double plainGet = Bench.Median(retrieve[variants[0]]);
        Console.WriteLine(Bench.Invariant($"| C-GET of {studySize} instances, instances/s | ") + string.Join(" | ", variants.Select(v =>
        {
            double m = Bench.Median(retrieve[v]);
            return v == variants[0] ? Bench.Invariant($"{m:F0}") : Bench.Invariant($"{m:F0} ({m / plainGet:F2}x)");
        })) + " |");
        Console.WriteLine();
        Console.WriteLine("TLS pays the handshake once per association and AES-GCM on every byte on both ends; encryption at rest pays AES-GCM "
            + "on every blob byte written and read, and a study key lookup per study. C-GET over TLS goes through stunnel (one more process and copy on the client side).");
        return 0;
    }

    /// <summary>Seconds for getscu to retrieve the study (through a stunnel TLS tunnel to <paramref name="tlsPort"/> when <paramref name="pki"/> is given).</summary>
    private static double Getscu(string root, int port, string aet, string study, int expected, TestCertificates? pki, int tlsPort)
    {
        string output = Path.Combine(root, "get-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(output);
        Process? tunnel = null;
        try
        {
            if (pki is not null)
            {
                string conf = Path.Combine(root, "stunnel.conf");
                File.WriteAllText(conf, $"foreground = yes\npid =\n[dicom]\nclient = yes\naccept = 127.0.0.1:{port}\nconnect = 127.0.0.1:{tlsPort}\n"
                    + $"cert = {pki.ClientCertificate}\nkey = {pki.ClientKey}\nCAfile = {pki.CaCertificate}\nverifyChain = yes\ncheckIP = 127.0.0.1\n");
                tunnel = Process.Start(new ProcessStartInfo("stunnel4", [conf]) { RedirectStandardError = true, RedirectStandardOutput = true })!;
                var until = DateTime.UtcNow.AddSeconds(20);
                while (true)
                {
                    try
                    {
                        using var probe = new System.Net.Sockets.TcpClient();
                        probe.Connect("127.0.0.1", port);
                        break;
                    }
                    catch (System.Net.Sockets.SocketException) when (DateTime.UtcNow < until)
                    {
                        Thread.Sleep(100);
                    }
                }
            }
            var sw = Stopwatch.StartNew();
            var result = Tool.Run("env", ["TCP_NODELAY=1", Tool.Dcmtk("getscu"), "-S", "-aec", aet, "-od", output, "-k", "QueryRetrieveLevel=STUDY", "-k", $"StudyInstanceUID={study}",
                "127.0.0.1", port.ToString(CultureInfo.InvariantCulture)], TimeSpan.FromMinutes(5));
            double seconds = sw.Elapsed.TotalSeconds;
            int received = Directory.GetFiles(output).Length;
            if (result.ExitCode != 0 || received != expected) throw new InvalidOperationException($"getscu from {aet}: {received} of {expected} files; {result.StdErr}");
            return seconds;
        }
        finally
        {
            if (tunnel is not null)
            {
                tunnel.Kill();
                tunnel.WaitForExit(5000);
                tunnel.Dispose();
            }
            Directory.Delete(output, recursive: true);
        }
    }
}
