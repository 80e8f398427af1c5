using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Json;
using System.Text.Json;
using AkkaVna.Archive.Hosting;
using AkkaVna.Archive.Index;
using AkkaVna.Testing;
using Microsoft.Extensions.Logging.Abstractions;

namespace AkkaVna.Perf;

/// <summary>
/// Issue 4's benchmark: dcmtk storescu (TCP_NODELAY=1) sends the same generated CT set (by default 8 studies x 150
/// instances of 512x512x16) to <c>akka-vna serve</c> (durable: every blob fsynced, journal and index committed before the
/// answer), to <c>akka-vna serve</c> without blob fsync (to show what the flush costs), to dcmtk storescp (the limit: it
/// writes files, neither fsyncs nor indexes) and to Debian's Orthanc (the peer; installed when missing), over 1 and 4
/// associations, in one run. Every target starts empty for every run and gets the same 50-instance warm-up study first;
/// afterwards the benchmark checks that it holds every instance. Everything runs in a private network namespace.
/// </summary>
public static class ArchiveBenchmark
{
    private const int DicomPort = 11112, HttpPort = 18080, OrthancHttp = 18042;

    public static int Run(string[] args)
    {
        if (Bench.ReexecInNetworkNamespace("archive", args) is { } exitCode) return exitCode;
        int studies = (int)Bench.Option(args, "--studies", 8), perStudy = (int)Bench.Option(args, "--instances", 150);
        int repeats = (int)Bench.Option(args, "--repeats", 1);
        bool byStudy = args.Contains("--by-study");
        EnsureOrthanc();

        using var dir = new TempDir();
        var files = Enumerable.Range(1, studies)
            .SelectMany(s => Instances.WriteStudy(Path.Combine(dir.Path, "src", s.ToString(CultureInfo.InvariantCulture)), perStudy, 512 * 512 * 2, seed: s)).ToList();
        var warmup = Instances.WriteStudy(Path.Combine(dir.Path, "warmup"), 50, 512 * 512 * 2, seed: 999);
        long bytes = files.Sum(f => new FileInfo(f).Length);

        var targets = new (string Name, Func<string, ITarget> Start)[]
        {
            ("akka-vna serve (durable)", work => new AkkaVnaTarget(work, flushBlobs: true)),
            ("akka-vna serve (no blob fsync)", work => new AkkaVnaTarget(work, flushBlobs: false)),
            ("dcmtk storescp", work => new StorescpTarget(work)),
            ("Orthanc " + OrthancVersion(), work => new OrthancTarget(work)),
        };
        Console.WriteLine($"# AkkaVna archive ingest benchmark ({DateTime.UtcNow:yyyy-MM-dd}, {Environment.ProcessorCount} cores, .NET {Environment.Version}, {Bench.DcmtkVersion()})");
        Console.WriteLine();
        Console.WriteLine($"dcmtk storescu (TCP_NODELAY=1) sends {files.Count} generated CT instances ({studies} studies x {perStudy}, 512x512x16, explicit VR little endian, "
            + $"{bytes / 1e6:F0} MB) {(byStudy ? "with whole studies per association" : "dealt to the associations one file at a time")} to each target, which starts empty and gets a 50-instance warm-up study first; median of {repeats} run(s). Each target is "
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
                    string work = Path.Combine(dir.Path, "run");
                    if (Directory.Exists(work)) Directory.Delete(work, recursive: true);
                    Directory.CreateDirectory(work);
                    using var target = start(work);
                    Bench.Storescu(warmup, target.Port, target.AETitle, 1);
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

    private interface ITarget : IDisposable
    {
        int Port { get; }
        string AETitle { get; }
        long CountInstances();
    }

    private sealed class AkkaVnaTarget : ITarget
    {
        private readonly ServerProcess _process;
        private readonly string _data;

        public AkkaVnaTarget(string work, bool flushBlobs)
        {
            _data = Path.Combine(work, "data");
            string config = Path.Combine(work, "bench.conf");
            File.WriteAllText(config, $"akka-vna.ingest.flush-blobs = {(flushBlobs ? "on" : "off")}\nakka-vna.dicom.max-pdu = 131072\n"
                + (Environment.GetEnvironmentVariable("AKKAVNA_BENCH_CONF") is { Length: > 0 } extra ? File.ReadAllText(extra) : ""));
            _process = new ServerProcess("dotnet", [AkkaVnaCli.Dll, "serve", "--data", _data, "--config", config, "--dicom-port", DicomPort.ToString(CultureInfo.InvariantCulture),
                "--http-port", HttpPort.ToString(CultureInfo.InvariantCulture)], "akka-vna serve: ready", TimeSpan.FromSeconds(90));
        }

        public int Port => DicomPort;
        public string AETitle => "AKKAVNA";

        public long CountInstances()
        {
            var index = new SqliteArchiveIndex(ArchiveNode.IndexPath(_data), NullLogger.Instance);
            try
            {
                index.InitializeAsync(CancellationToken.None).GetAwaiter().GetResult();
                return index.CountAsync(CancellationToken.None).GetAwaiter().GetResult().Instances;
            }
            finally
            {
                index.DisposeAsync().AsTask().GetAwaiter().GetResult();
            }
        }

        /// <summary>The mean of each ingest phase, from the node's Prometheus metrics.</summary>
        public string PhaseBreakdown()
        {
            using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(30) };
            var text = http.GetStringAsync($"http://127.0.0.1:{HttpPort}/metrics").GetAwaiter().GetResult();
            double Value(string series) => text.Split('\n').Where(l => l.StartsWith(series + " ", StringComparison.Ordinal))
                .Select(l => double.Parse(l[(series.Length + 1)..], CultureInfo.InvariantCulture)).FirstOrDefault();
            var parts = new List<string>();
            foreach (var phase in new[] { "seal", "header", "lookup", "commit", "promote" })
            {
                double sum = Value($"akkavna_ingest_phase_seconds_sum{{phase=\"{phase}\"}}"), count = Value($"akkavna_ingest_phase_seconds_count{{phase=\"{phase}\"}}");
                if (count > 0) parts.Add(Bench.Invariant($"{phase} {sum / count * 1000:F2} ms"));
            }
            foreach (var phase in new[] { "journal", "index" })
            {
                double sum = Value($"akkavna_study_commit_seconds_sum{{phase=\"{phase}\"}}"), count = Value($"akkavna_study_commit_seconds_count{{phase=\"{phase}\"}}");
                if (count > 0) parts.Add(Bench.Invariant($"{phase} {sum / count * 1000:F2} ms per batch"));
            }
            double batches = Value("akkavna_study_batch_instances_count"), batched = Value("akkavna_study_batch_instances_sum");
            if (batches > 0) parts.Add(Bench.Invariant($"{batched / batches:F1} instances per batch"));
            return string.Join(", ", parts);
        }

        public void Dispose() => _process.Dispose();
    }

    private sealed class StorescpTarget : ITarget
    {
        private readonly ServerProcess _process;
        private readonly string _out;

        public StorescpTarget(string work)
        {
            _out = Directory.CreateDirectory(Path.Combine(work, "scp")).FullName;
            // dcmtk sets TCP_NODELAY on its sockets only when the variable is set: give storescp the same as storescu.
            _process = new ServerProcess("env", ["TCP_NODELAY=1", Tool.Dcmtk("storescp"), "--fork", "+B", "--max-pdu", "131072", "-aet", "STORESCP", "-od", _out,
                DicomPort.ToString(CultureInfo.InvariantCulture)], readyMarker: null, readyPort: DicomPort);
        }

        public int Port => DicomPort;
        public string AETitle => "STORESCP";

        public long CountInstances()
        {
            // Forked children may still be closing their last file.
            var deadline = Stopwatch.StartNew();
            long count;
            while ((count = Directory.EnumerateFiles(_out).Count(f => !Path.GetFileName(f).StartsWith('.'))) == 0 || deadline.Elapsed < TimeSpan.FromSeconds(1)) Thread.Sleep(50);
            return count;
        }

        public void Dispose() => _process.Dispose();
    }

    private sealed class OrthancTarget : ITarget
    {
        private readonly ServerProcess _process;

        public OrthancTarget(string work)
        {
            string config = Path.Combine(work, "orthanc.json");
            File.WriteAllText(config, JsonSerializer.Serialize(new Dictionary<string, object>
            {
                ["Name"] = "bench", ["StorageDirectory"] = Path.Combine(work, "orthanc-storage"), ["IndexDirectory"] = Path.Combine(work, "orthanc-index"),
                ["DicomAet"] = "ORTHANC", ["DicomPort"] = DicomPort, ["HttpPort"] = OrthancHttp, ["RemoteAccessAllowed"] = false,
                ["AuthenticationEnabled"] = false, ["DicomCheckCalledAet"] = false, ["DicomAlwaysAllowStore"] = true, ["StorageCompression"] = false,
                ["Plugins"] = Array.Empty<string>(),
            }));
            _process = new ServerProcess("env", ["TCP_NODELAY=1", "Orthanc", config], readyMarker: null, TimeSpan.FromSeconds(60), readyPort: DicomPort);
        }

        public int Port => DicomPort;
        public string AETitle => "ORTHANC";

        public long CountInstances()
        {
            using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(30) };
            var stats = http.GetFromJsonAsync<JsonElement>($"http://127.0.0.1:{OrthancHttp}/statistics").GetAwaiter().GetResult();
            return stats.GetProperty("CountInstances").GetInt64();
        }

        public void Dispose() => _process.Dispose();
    }

    /// <summary>Installs Debian's Orthanc when it is missing (the benchmark starts its own instance; the package's service is not used).</summary>
    private static void EnsureOrthanc()
    {
        if (Tool.Run("which", ["Orthanc"]).ExitCode == 0) return;
        Console.Error.WriteLine("installing Orthanc from Debian...");
        var r = Tool.Run("bash", ["-c", "DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends orthanc"], TimeSpan.FromMinutes(10));
        if (r.ExitCode != 0) throw new InvalidOperationException("cannot install orthanc: " + r.StdErr);
    }

    private static string OrthancVersion()
    {
        var r = Tool.Run("Orthanc", ["--version"]);
        return r.StdOut.Split('\n').FirstOrDefault()?.Split(' ').LastOrDefault()?.Trim() ?? "";
    }
}
