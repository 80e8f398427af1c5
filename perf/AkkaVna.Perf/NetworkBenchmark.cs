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
        int instances = (int)Option(args, "--instances", 400);
        int repeats = (int)Option(args, "--repeats", 3);
        if (Environment.GetEnvironmentVariable("AKKAVNA_NETNS") != "1")
        {
            // Re-run this benchmark inside a private network namespace with its loopback up.
            var self = Environment.ProcessPath!;
            var argv = string.Join(" ", new List<string> { "network" }.Concat(args).Select(a => $"'{a}'"));
            string dll = typeof(NetworkBenchmark).Assembly.Location;
            string command = self.EndsWith("dotnet", StringComparison.Ordinal) ? $"'{self}' '{dll}' {argv}" : $"'{self}' {argv}";
            var psi = new ProcessStartInfo("unshare", ["-n", "bash", "-c", $"ip link set lo up && AKKAVNA_NETNS=1 {command}"]) { UseShellExecute = false };
            using var p = Process.Start(psi)!;
            p.WaitForExit();
            return p.ExitCode;
        }

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

        Console.WriteLine($"# AkkaVna network benchmark ({DateTime.UtcNow:yyyy-MM-dd}, {Environment.ProcessorCount} cores, .NET {Environment.Version}, {DcmtkVersion()})");
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
            double am = Median(a), dm = Median(d);
            Console.WriteLine(Invariant($"| akka-vna receive | {associations} | {files.Count / am:F0} | {bytes / 1e6 / am:F0} | {dm / am:F2}x |"));
            Console.WriteLine(Invariant($"| dcmtk storescp | {associations} | {files.Count / dm:F0} | {bytes / 1e6 / dm:F0} | 1.00x |"));
        }
        return 0;
    }

    /// <summary>Sends every file with storescu over <paramref name="associations"/> processes; returns seconds. Checks every file arrived.</summary>
    private static double Send(List<string> files, int port, string aet, int associations, string outDir)
    {
        foreach (var f in Directory.EnumerateFiles(outDir)) File.Delete(f);
        var lists = Enumerable.Range(0, associations).Select(i => files.Where((_, k) => k % associations == i).ToList()).ToList();
        var listFiles = lists.Select((l, i) =>
        {
            string p = Path.Combine(Path.GetTempPath(), $"akkavna-bench-{Environment.ProcessId}-{i}.txt");
            File.WriteAllLines(p, l);
            return p;
        }).ToList();
        var sw = Stopwatch.StartNew();
        var procs = listFiles.Select(lf =>
        {
            var psi = new ProcessStartInfo("bash", ["-c", $"xargs -d '\\n' -a '{lf}' storescu -aec {aet} 127.0.0.1 {port}"])
            {
                UseShellExecute = false, RedirectStandardError = true, RedirectStandardOutput = true,
            };
            psi.Environment["TCP_NODELAY"] = "1";
            var p = Process.Start(psi)!;
            var err = p.StandardError.ReadToEndAsync();
            return (p, err);
        }).ToList();
        foreach (var (p, err) in procs)
        {
            p.WaitForExit();
            if (p.ExitCode != 0) throw new InvalidOperationException($"storescu to {aet} failed: {err.Result}");
        }
        double seconds = sw.Elapsed.TotalSeconds;
        foreach (var lf in listFiles) File.Delete(lf);
        // storescp (forked children) may still be closing its last file: wait briefly for the count.
        var deadline = Stopwatch.StartNew();
        int count;
        while ((count = Directory.EnumerateFiles(outDir).Count(f => !Path.GetFileName(f).StartsWith('.'))) < files.Count && deadline.Elapsed < TimeSpan.FromSeconds(10)) Thread.Sleep(20);
        if (count < files.Count) throw new InvalidOperationException($"{aet} holds {count} of {files.Count} files");
        return seconds;
    }

    private static string DcmtkVersion()
    {
        var r = Tool.Run(Tool.Dcmtk("storescu"), ["--version"]);
        var line = r.StdOut.Split('\n').FirstOrDefault(l => l.Contains("storescu", StringComparison.Ordinal)) ?? "dcmtk";
        return line.Trim().TrimStart('$').Trim();
    }

    private static double Median(List<double> xs)
    {
        var s = xs.Order().ToList();
        return s[s.Count / 2];
    }

    private static double Option(string[] args, string name, double fallback)
    {
        int i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length ? double.Parse(args[i + 1], CultureInfo.InvariantCulture) : fallback;
    }

    private static string Invariant(FormattableString s) => s.ToString(CultureInfo.InvariantCulture);
}
