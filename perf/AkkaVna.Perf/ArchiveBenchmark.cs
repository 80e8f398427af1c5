using System.Globalization;
using AkkaVna.Testing;

namespace AkkaVna.Perf;

/// <summary>
/// Issue 4's benchmark: dcmtk storescu (TCP_NODELAY=1) sends the same generated CT set (by default 8 studies x 150
/// instances of 512x512x16) to <c>akka-vna serve</c> (durable: every blob fsynced, journal and index committed before the
/// answer), to <c>akka-vna serve</c> without blob fsync (to show what the flush costs), to dcmtk storescp (the limit: it
/// writes files, neither fsyncs nor indexes) and to Debian's Orthanc (the peer; installed when missing), over 1 and 4
/// associations, in one run. Every target starts empty for every run and gets the same warm-up study first, over the
/// same associations (1,500 instances by default: .NET re-compiles its hot paths in tiers with dynamic PGO, and 300 left a third of the node's CPU to the JIT — perf/results/restructure-before-after.md — so a short warm-up measures the
/// JIT); afterwards the benchmark checks that it holds every instance. Everything runs in a private network namespace.
/// </summary>
public static class ArchiveBenchmark
{
    public static int Run(string[] args)
    {
        // Installed first: inside the network namespace there is no network to install from.
        Targets.EnsureDcmtk();
        Targets.EnsureOrthanc();
        if (Bench.ReexecInNetworkNamespace("archive", args) is { } exitCode) return exitCode;
        int studies = (int)Bench.Option(args, "--studies", 8), perStudy = (int)Bench.Option(args, "--instances", 150);
        int repeats = (int)Bench.Option(args, "--repeats", 1);
        bool byStudy = args.Contains("--by-study");

        using var dir = new TempDir();
        var files = Enumerable.Range(1, studies)
            .SelectMany(s => Instances.WriteStudy(Path.Combine(dir.Path, "src", s.ToString(CultureInfo.InvariantCulture)), perStudy, 512 * 512 * 2, seed: s)).ToList();
        int warmupCount = (int)Bench.Option(args, "--warmup", 1500);
        var warmup = Instances.WriteStudy(Path.Combine(dir.Path, "warmup"), warmupCount, 512 * 512 * 2, seed: 999);
        long bytes = files.Sum(f => new FileInfo(f).Length);

        var targets = new (string Name, Func<string, ITarget> Start)[]
        {
            ("akka-vna serve (durable)", work => new AkkaVnaTarget(work, flushBlobs: true)),
            ("akka-vna serve (no blob fsync)", work => new AkkaVnaTarget(work, flushBlobs: false)),
            ("dcmtk storescp", work => new StorescpTarget(work)),
            ("Orthanc " + Targets.OrthancVersion(), work => new OrthancTarget(work)),
        };
        Console.WriteLine($"# AkkaVna archive ingest benchmark ({DateTime.UtcNow:yyyy-MM-dd}, {Environment.ProcessorCount} cores, .NET {Environment.Version}, {Bench.DcmtkVersion()})");
        Console.WriteLine();
        Console.WriteLine($"dcmtk storescu (TCP_NODELAY=1) sends {files.Count} generated CT instances ({studies} studies x {perStudy}, 512x512x16, explicit VR little endian, "
            + $"{bytes / 1e6:F0} MB) {(byStudy ? "with whole studies per association" : "dealt to the associations one file at a time")} to each target, which starts empty and gets a {warmup.Count}-instance warm-up study first (same associations); median of {repeats} run(s). Each target is "
            + "checked to hold every instance afterwards.");
        Console.WriteLine();
        // --only NAME-PREFIX: run a subset while investigating (ratios then need the references in the same run).
        // --by-study: each association sends whole studies, as gateways do, instead of files dealt one at a time.
        int only = Array.IndexOf(args, "--only");
        if (only >= 0 && only + 1 < args.Length) targets = targets.Where(t => t.Name.StartsWith(args[only + 1], StringComparison.Ordinal)).ToArray();
        var breakdowns = new List<string>();
        Console.WriteLine("| target | associations | instances/s | MB/s | vs storescp | vs Orthanc |");
        Console.WriteLine("|---|---|---|---|---|---|");
        foreach (int associations in new[] { 1, 4 })
        {
            var seconds = new Dictionary<string, double>();
            foreach (var (name, start) in targets)
            {
                var runs = new List<double>();
                for (int r = 0; r < repeats; r++)
                {
                    using var target = Targets.StartEmpty(dir.Path, start);
                    Bench.Storescu(warmup, target.Port, target.AETitle, associations);
                    (target as AkkaVnaTarget)?.Mark();
                    runs.Add(Bench.Storescu(files, target.Port, target.AETitle, associations, byStudy));
                    long held = target.CountInstances();
                    if (target is AkkaVnaTarget akka) breakdowns.Add($"{name}, {associations} association(s): {akka.PhaseBreakdown()}");
                    if (held != files.Count + warmup.Count) throw new InvalidOperationException($"{name} holds {held} of {files.Count + warmup.Count} instances");
                }
                seconds[name] = Bench.Median(runs);
            }
            double scp = seconds.Where(kv => kv.Key.StartsWith("dcmtk", StringComparison.Ordinal)).Select(kv => kv.Value).FirstOrDefault(double.NaN);
            double orthanc = seconds.Where(kv => kv.Key.StartsWith("Orthanc", StringComparison.Ordinal)).Select(kv => kv.Value).FirstOrDefault(double.NaN);
            foreach (var (name, _) in targets)
            {
                double s = seconds[name];
                Console.WriteLine(Bench.Invariant($"| {name} | {associations} | {files.Count / s:F0} | {bytes / 1e6 / s:F0} | {scp / s:F2}x | {orthanc / s:F2}x |"));
            }
        }
        Console.WriteLine();
        Console.WriteLine("Where akka-vna's time goes after each data set has arrived (mean per instance, from its akkavna_ingest_phase_seconds metric):");
        Console.WriteLine();
        foreach (var b in breakdowns) Console.WriteLine("- " + b);
        return 0;
    }

}
