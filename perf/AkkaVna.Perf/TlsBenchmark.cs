using System.Globalization;
using AkkaVna.Dicom.Network.Replay;
using AkkaVna.Testing;

namespace AkkaVna.Perf;

/// <summary>
/// Issue 20's TLS cost on ingest: the same CT instances stored by dcmtk's storescu into a durable akka-vna node over plain
/// TCP and over TLS (storescu +tls with a client certificate, the node requiring one; dcmtk's default BCP 195
/// non-downgrading profile), each into an empty node, at 1 and 4 associations, in one invocation.
/// </summary>
internal static class TlsBenchmark
{
    public static int Run(string[] args)
    {
        int count = (int)Bench.Option(args, "--instances", 600);
        int repeats = (int)Bench.Option(args, "--repeats", 3);
        using var dir = new TempDir();
        var files = ReplaySources.Generate(new GeneratorOptions(Math.Max(1, count / 100), 100, "CT", 512, 512, Seed: 20), Path.Combine(dir.Path, "ct"))
            .Select(f => f.Path).Take(count).ToList();
        long bytes = files.Sum(f => new FileInfo(f).Length);
        var pki = TestCertificates.Create(Path.Combine(dir.Path, "pki"));
        int tlsPort = Targets.DicomPort + 40;
        string tlsConfig = $$"""
            akka-vna.dicom.tls {
              port = {{tlsPort}}
              certificate = "{{pki.ServerCertificate}}"
              key = "{{pki.ServerKey}}"
              ca = "{{pki.CaCertificate}}"
              require-client-certificate = on
            }
            """;
        string tlsOptions = $"+tls '{pki.ClientKey}' '{pki.ClientCertificate}' +cf '{pki.CaCertificate}'";
        Console.WriteLine($"# DICOM TLS: ingest over TLS against plain TCP ({DateTime.UtcNow:yyyy-MM-dd}, {Environment.ProcessorCount} cores, .NET {Environment.Version}, {Bench.DcmtkVersion()})");
        Console.WriteLine();
        Console.WriteLine(Bench.Invariant($"{files.Count} CT instances (512x512x16, {bytes / 1e6 / files.Count:F2} MB each, {bytes / 1e6:F0} MB) stored by storescu into a durable akka-vna (SQLite, files, blobs fsynced), each run into an empty node; median of {repeats}."));
        Console.WriteLine();
        Console.WriteLine("| associations | plain TCP: instances/s | TLS: instances/s | TLS / plain |");
        Console.WriteLine("|---|---|---|---|");
        foreach (int associations in new[] { 1, 4 })
        {
            var plain = new List<double>();
            var tls = new List<double>();
            for (int r = 0; r < repeats; r++)
            {
                using (var target = Targets.StartEmpty(dir.Path, work => new AkkaVnaTarget(work, flushBlobs: true)))
                    plain.Add(files.Count / Bench.Storescu(files, [target.Port], target.AETitle, associations));
                using (var target = Targets.StartEmpty(dir.Path, work => new AkkaVnaTarget(work, flushBlobs: true, extraConfig: tlsConfig)))
                    tls.Add(files.Count / Bench.Storescu(files, [tlsPort], target.AETitle, associations, options: tlsOptions));
            }
            double p = Bench.Median(plain), t = Bench.Median(tls);
            Console.WriteLine(Bench.Invariant($"| {associations} | {p:F0} | {t:F0} | {t / p:F2} |"));
        }
        Console.WriteLine();
        Console.WriteLine("The TLS runs pay the handshake once per association and AES-GCM on every byte, on both ends (storescu and the node share the two cores).");
        return 0;
    }
}
