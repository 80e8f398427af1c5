using System.Diagnostics;
using System.Globalization;
using AkkaVna.Testing;

namespace AkkaVna.Perf;

/// <summary>
/// Issue 3's benchmark: dcmtk storescu (TCP_NODELAY=1) sends the same generated CT instances (512x512x16) to
/// <c>akka-vna receive</c> and to dcmtk storescp (the limit: it writes files and neither fsyncs nor indexes), with 1 and 4
/// associations, in one run. Both servers get the same maximum PDU (128 KiB, dcmtk's ceiling) and write the data set bit
/// for bit (storescp +B); storescp forks per association so 4 associations really run at once. Everything runs inside a
/// private network namespace (storescp cannot bind to loopback only). Prints a Markdown table; no assertions on time.
/// </summary>
public static class NetworkBenchmark
{
    public static int Run(string[] args)
    {
        int instances = (int)Bench.Option(args, "--instances", 400);
        int repeats = (int)Bench.Option(args, "--repeats", 3);
        Targets.EnsureDcmtk(); // before the namespace: inside it there is no network to install from
        if (Bench.ReexecInNetworkNamespace("network", args) is { } exitCode) return exitCode;

        using var dir = new TempDir();
        string source = Path.Combine(dir.Path, "src");
        var files = new List<string>();
        int perStudy = 50;
        for (int s = 0; files.Count < instances; s++)
            files.AddRange(Instances.WriteStudy(Path.Combine(source, s.ToString(CultureInfo.InvariantCulture)), Math.Min(perStudy, instances - files.Count), 512 * 512 * 2, seed: s + 1));
        long bytes = files.Sum(f => new FileInfo(f).Length);

        string akkaOut = Path.Combine(dir.Path, "akka"), scpOut = Path.Combine(dir.Path, "scp");
        Directory.CreateDirectory(akkaOut);
        Directory.CreateDirectory(scpOut);
        const int akkaPort = 11112, scpPort = 11113;
        using var akka = new ServerProcess("dotnet", [AkkaVnaCli.Dll, "receive", "--port", "11112", "--out", akkaOut, "--bind", "127.0.0.1", "--max-pdu", "131072"], "listening on");
        // dcmtk sets TCP_NODELAY on its sockets only when the variable is set: give storescp the same as storescu.
        using var scp = new ServerProcess("env", ["TCP_NODELAY=1", Tool.Dcmtk("storescp"), "--fork", "+B", "--max-pdu", "131072", "-aet", "STORESCP", "-od", scpOut, scpPort.ToString(CultureInfo.InvariantCulture)], readyMarker: null, readyPort: scpPort);

        Console.WriteLine($"# AkkaVna network benchmark ({DateTime.UtcNow:yyyy-MM-dd}, {Environment.ProcessorCount} cores, .NET {Environment.Version}, {Bench.DcmtkVersion()})");
        Console.WriteLine();
        Console.WriteLine($"dcmtk storescu (TCP_NODELAY=1) sends {files.Count} generated CT instances (512x512x16, explicit VR little endian, {bytes / 1e6:F0} MB) to each target; median of {repeats} runs.");
        Console.WriteLine("Both targets write each data set as received to a file (no fsync), with a 128 KiB maximum PDU; storescp also runs with TCP_NODELAY=1, forking per association.");
        Console.WriteLine();
        Console.WriteLine("| target | associations | instances/s | MB/s | ratio to storescp |");
        Console.WriteLine("|---|---|---|---|---|");
        foreach (int associations in new[] { 1, 4 })
        {
            // Warm-up round for each target (JIT, page cache), then alternate the targets run by run.
            Send(files, akkaPort, "AKKAVNA", associations, akkaOut);
            Send(files, scpPort, "STORESCP", associations, scpOut);
            var a = new List<double>();
            var d = new List<double>();
            for (int r = 0; r < repeats; r++)
            {
                a.Add(Send(files, akkaPort, "AKKAVNA", associations, akkaOut));
                d.Add(Send(files, scpPort, "STORESCP", associations, scpOut));
            }
            double am = Bench.Median(a), dm = Bench.Median(d);
            Console.WriteLine(Bench.Invariant($"| akka-vna receive | {associations} | {files.Count / am:F0} | {bytes / 1e6 / am:F0} | {dm / am:F2}x |"));
            Console.WriteLine(Bench.Invariant($"| dcmtk storescp | {associations} | {files.Count / dm:F0} | {bytes / 1e6 / dm:F0} | 1.00x |"));
        }
        return 0;
    }

    /// <summary>Sends every file with storescu over <paramref name="associations"/> processes; returns seconds. Checks every file arrived.</summary>
    private static double Send(List<string> files, int port, string aet, int associations, string outDir)
    {
        foreach (var f in Directory.EnumerateFiles(outDir)) File.Delete(f);
        double seconds = Bench.Storescu(files, port, aet, associations);
        // storescp (forked children) may still be closing its last file: wait briefly for the count.
        var deadline = Stopwatch.StartNew();
        int count;
        while ((count = Directory.EnumerateFiles(outDir).Count(f => !Path.GetFileName(f).StartsWith('.'))) < files.Count && deadline.Elapsed < TimeSpan.FromSeconds(10)) Thread.Sleep(20);
        if (count < files.Count) throw new InvalidOperationException($"{aet} holds {count} of {files.Count} files");
        return seconds;
    }
}
