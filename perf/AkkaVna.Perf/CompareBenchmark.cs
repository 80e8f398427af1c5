using AkkaVna.Dicom.IO;
using System.Globalization;
using AkkaVna.Dicom.Network.Replay;
using AkkaVna.Testing;

namespace AkkaVna.Perf;

/// <summary>
/// The comparison harness: the replay tool sends the same generated load (fresh realistic CT studies) to
/// <c>akka-vna serve</c> (durable), dcmtk's storescp (the limit: no fsync, no index) and Debian's Orthanc (installed when
/// missing), each started empty inside a private network namespace, over 1 and 4 gateway associations; checks that
/// every target stored every instance; prints instances/s, MB/s, latency percentiles and the ratios.
/// </summary>
public static class CompareBenchmark
{
    public static int Run(string[] args)
    {
        // Installed first: inside the network namespace there is no network to install from.
        Targets.EnsureDcmtk();
        Targets.EnsureOrthanc();
        if (Bench.ReexecInNetworkNamespace("compare", args) is { } exitCode) return exitCode;
        int studies = (int)Bench.Option(args, "--studies", 8), perStudy = (int)Bench.Option(args, "--instances", 150);
        double rate = Bench.Option(args, "--rate", 0);
        var associationCounts = (args.SkipWhile(a => a != "--associations").Skip(1).FirstOrDefault() ?? "1,4").Split(',').Select(int.Parse).ToList();
        using var dir = new TempDir();
        var files = ReplaySources.Generate(new GeneratorOptions(studies, perStudy, "CT", 512, 512, Seed: 1), Path.Combine(dir.Path, "load"));
        var warmup = ReplaySources.Generate(new GeneratorOptions(1, 20, "CT", 128, 128, Seed: 2), Path.Combine(dir.Path, "warmup"));
        long bytes = files.Sum(f => f.DataSetLength);
        var targets = new (string Name, Func<string, ITarget> Start)[]
        {
            ("akka-vna serve (durable)", work => new AkkaVnaTarget(work, flushBlobs: true)),
            ("dcmtk storescp", work => new StorescpTarget(work)),
            ("Orthanc " + Targets.OrthancVersion(), work => new OrthancTarget(work)),
        };
        bool openLoop = rate > 0;
        Console.WriteLine($"# akka-vna replay: AkkaVna against dcmtk storescp and Orthanc ({DateTime.UtcNow:yyyy-MM-dd}, {Environment.ProcessorCount} cores, .NET {Environment.Version}, {Bench.DcmtkVersion()})");
        Console.WriteLine();
        Console.WriteLine($"The replay tool sends {files.Count} generated CT instances ({studies} studies x {perStudy}, 512x512x16, {bytes / 1e6:F0} MB) "
            + (openLoop ? $"at {rate} per second (open loop: latency from the scheduled time)" : "as fast as each target answers (latency from the send)")
            + ", dealt over the gateway associations, to each target started empty, after a 20-instance warm-up; each target is checked to hold every instance.");
        Console.WriteLine();
        Console.WriteLine("| target | associations | instances/s | MB/s | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | vs storescp | vs Orthanc |");
        Console.WriteLine("|---|---|---|---|---|---|---|---|---|---|---|");
        foreach (int associations in associationCounts)
        {
            var reports = new Dictionary<string, ReplayReport>();
            foreach (var (name, start) in targets)
            {
                using var target = Targets.StartEmpty(dir.Path, start);
                Replay(target, warmup, 1, 0);
                var report = Replay(target, files, associations, rate);
                long held = target.CountInstances();
                if (report.Stored != files.Count || held != files.Count + warmup.Count)
                    throw new InvalidOperationException($"{name}: {report.Stored} of {files.Count} stored, {held} held; failures: {string.Join(", ", report.Failures)}");
                reports[name] = report;
            }
            double scp = reports.First(kv => kv.Key.StartsWith("dcmtk", StringComparison.Ordinal)).Value.InstancesPerSecond;
            double orthanc = reports.First(kv => kv.Key.StartsWith("Orthanc", StringComparison.Ordinal)).Value.InstancesPerSecond;
            foreach (var (name, r) in reports)
            {
                var l = r.Latency;
                Console.WriteLine(Bench.Invariant($"| {name} | {associations} | {r.InstancesPerSecond:F0} | {r.MegabytesPerSecond:F0} | {l.Percentile(50):F2} | {l.Percentile(90):F2} | {l.Percentile(99):F2} | {l.Percentile(99.9):F2} | {l.MaxMs:F2} | {r.InstancesPerSecond / scp:F2}x | {r.InstancesPerSecond / orthanc:F2}x |"));
            }
        }
        return 0;
    }

    private static ReplayReport Replay(ITarget target, List<Dicom.IO.StoreFile> files, int associations, double rate)
    {
        var items = ReplaySources.Schedule(files, new ScheduleOptions(associations, "GW", target.AETitle, rate > 0 ? rate : null));
        var options = new ReplayOptions { OpenLoop = rate > 0, Timeout = TimeSpan.FromSeconds(60) };
        var outcomes = ReplayRunner.RunAsync("127.0.0.1", target.Port, items, options).GetAwaiter().GetResult();
        return ReplayReport.From($"{target.AETitle}@127.0.0.1:{target.Port}", DateTimeOffset.UtcNow, outcomes, options.OpenLoop);
    }
}
