using AkkaVna.Core.Model;
using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Json;
using System.Text.Json;
using AkkaVna.Testing;
using Microsoft.Extensions.Logging.Abstractions;
using AkkaVna.Actors.Logging;
using AkkaVna.Core.Ports;
using AkkaVna.Host;
using AkkaVna.Index.Sqlite;

namespace AkkaVna.Perf;

/// <summary>The storage SCPs the benchmarks compare, each started empty in a work folder, on fixed ports (inside the benchmark's network namespace).</summary>
internal static partial class Targets
{
    public const int DicomPort = 11112, HttpPort = 18080, OrthancHttp = 18042;

    /// <summary>Starts a target on an empty work folder under <paramref name="root"/> (what an earlier run left is deleted first).</summary>
    public static ITarget StartEmpty(string root, Func<string, ITarget> start)
    {
        string work = Path.Combine(root, "run");
        if (Directory.Exists(work)) Directory.Delete(work, recursive: true);
        Directory.CreateDirectory(work);
        return start(work);
    }
}

internal interface ITarget : IDisposable
{
    int Port { get; }
    /// <summary>Every node's DICOM port (the associations are dealt over them).</summary>
    IReadOnlyList<int> Ports => [Port];
    string AETitle { get; }
    long CountInstances();
}

/// <summary>
/// <c>akka-vna serve</c>: one node on embedded defaults (SQLite), or <paramref name="nodes"/> nodes as one cluster on a
/// PostgreSQL database and a blob folder they share (DICOM ports from <see cref="Targets.DicomPort"/> up, HTTP from
/// <see cref="Targets.HttpPort"/>, cluster from 25520).
/// </summary>
internal sealed class AkkaVnaTarget : ITarget
{
    private readonly List<ServerProcess> _processes = [];
    private readonly string _data;
    private readonly string? _postgres;
    private readonly string _blobs;
    private readonly int _nodes;

    /// <summary>The node's data folder in <paramref name="work"/> (a benchmark may fill its index before the node starts).</summary>
    public static string DataFolder(string work) => Path.Combine(work, "data");

    /// <param name="extraConfig">More HOCON for the nodes (an S3 store and its acknowledge mode).</param>
    public AkkaVnaTarget(string work, bool flushBlobs, int nodes = 1, string? postgres = null, string? extraConfig = null)
    {
        if (nodes > 1 && postgres is null) throw new ArgumentException("a cluster needs PostgreSQL", nameof(postgres));
        _data = DataFolder(work);
        _postgres = postgres;
        _nodes = nodes;
        _blobs = Path.Combine(work, "blobs");
        string config = Path.Combine(work, "bench.conf");
        File.WriteAllText(config, $"akka-vna.ingest.flush-blobs = {(flushBlobs ? "on" : "off")}\nakka-vna.dicom.max-pdu = 131072\n"
            + (Environment.GetEnvironmentVariable("AKKAVNA_BENCH_CONF") is { Length: > 0 } extra ? File.ReadAllText(extra) : "") + (extraConfig ?? "") + "\n");
        for (int i = 0; i < nodes; i++)
        {
            var args = new List<string> { AkkaVnaCli.Dll, "serve", "--data", i == 0 ? _data : _data + i.ToString(CultureInfo.InvariantCulture), "--config", config,
                "--dicom-port", (Targets.DicomPort + i).ToString(CultureInfo.InvariantCulture), "--http-port", (Targets.HttpPort + i).ToString(CultureInfo.InvariantCulture) };
            if (postgres is not null)
                args.AddRange(["--index", "postgresql", "--postgres", postgres, "--blobs", _blobs, "--node-name", "n" + i.ToString(CultureInfo.InvariantCulture),
                    "--cluster-port", (25520 + i).ToString(CultureInfo.InvariantCulture), "--seed-node", "127.0.0.1:25520"]);
            _processes.Add(new ServerProcess("dotnet", args, "akka-vna serve: ready", TimeSpan.FromSeconds(120)));
        }
        if (nodes > 1) WaitForMembers();
    }

    private void WaitForMembers()
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(30) };
        var until = DateTime.UtcNow + TimeSpan.FromMinutes(2);
        while (true)
        {
            var report = http.GetFromJsonAsync<JsonElement>($"http://127.0.0.1:{Targets.HttpPort}/admin/cluster").GetAwaiter().GetResult();
            if (report.GetProperty("members").EnumerateArray().Count(m => m.GetProperty("status").GetString() == "Up") == _nodes) return;
            if (DateTime.UtcNow > until) throw new TimeoutException($"the cluster did not reach {_nodes} members: {report}");
            Thread.Sleep(500);
        }
    }

    public int Port => Targets.DicomPort;
    public IReadOnlyList<int> Ports => [.. Enumerable.Range(Targets.DicomPort, _nodes)];
    public string AETitle => "AKKAVNA";

    private ArchiveOptions Options => ArchiveOptions.Load(null, $"akka-vna.data = {ArchiveOptions.Quote(_data)}" + (_postgres is null ? ""
        : $"\nakka-vna.index.provider = postgresql\nakka-vna.postgresql.connection-string = {ArchiveOptions.Quote(_postgres)}\nakka-vna.blobs.path = {ArchiveOptions.Quote(_blobs)}"));

    public long CountInstances()
    {
        var index = Adapters.CreateIndex(Options, NullLoggerFactory.Instance);
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

    private double _cpuAtMark;
    private long _instancesAtMark;

    private List<string> Metrics()
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(30) };
        return [.. Enumerable.Range(0, _nodes).Select(i => http.GetStringAsync($"http://127.0.0.1:{Targets.HttpPort + i}/metrics").GetAwaiter().GetResult())];
    }

    /// <summary>A metric of the first node (0 when it has none).</summary>
    public double Metric(string series) => Value(Metrics(), series);

    /// <summary>A series summed over the nodes.</summary>
    private static double Value(List<string> metrics, string series) => metrics.Sum(m => m.Split('\n').Where(l => l.StartsWith(series + " ", StringComparison.Ordinal))
        .Select(l => double.Parse(l[(series.Length + 1)..], CultureInfo.InvariantCulture)).FirstOrDefault());

    /// <summary>Marks the start of the measured run: <see cref="PhaseBreakdown"/> reports the nodes' CPU time per instance since.</summary>
    public void Mark()
    {
        _cpuAtMark = Value(Metrics(), "process_cpu_seconds_total");
        _instancesAtMark = CountInstances();
    }

    /// <summary>The mean of each ingest phase, from the nodes' Prometheus metrics, and their CPU time per instance since <see cref="Mark"/>.</summary>
    public string PhaseBreakdown()
    {
        var text = Metrics();
        double Value(string series) => AkkaVnaTarget.Value(text, series);
        var parts = new List<string>();
        long instances = CountInstances() - _instancesAtMark;
        if (instances > 0) parts.Add(Bench.Invariant($"node CPU {(Value("process_cpu_seconds_total") - _cpuAtMark) / instances * 1000:F2} ms per instance"));
        foreach (var phase in new[] { "seal", "header", "lookup", "prepare", "commit", "promote" })
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

    public void Dispose()
    {
        // The later nodes leave first; the seed last.
        for (int i = _processes.Count - 1; i >= 0; i--) _processes[i].Dispose();
    }
}

internal sealed class StorescpTarget : ITarget
{
    private readonly ServerProcess _process;
    private readonly string _out;

    public StorescpTarget(string work)
    {
        _out = Directory.CreateDirectory(Path.Combine(work, "scp")).FullName;
        // dcmtk sets TCP_NODELAY on its sockets only when the variable is set: give storescp the same as storescu.
        _process = new ServerProcess("env", ["TCP_NODELAY=1", Tool.Dcmtk("storescp"), "--fork", "+B", "--max-pdu", "131072", "-aet", "STORESCP", "-od", _out,
            Targets.DicomPort.ToString(CultureInfo.InvariantCulture)], readyMarker: null, readyPort: Targets.DicomPort);
    }

    public int Port => Targets.DicomPort;
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

internal sealed class OrthancTarget : ITarget
{
    private readonly ServerProcess _process;

    /// <param name="postgres">Run Orthanc's index on this PostgreSQL database (Debian's orthanc-postgresql plugin); otherwise its SQLite.</param>
    public OrthancTarget(string work, string? postgres = null)
    {
        string config = Path.Combine(work, "orthanc.json");
        var settings = new Dictionary<string, object>
        {
            ["Name"] = "bench", ["StorageDirectory"] = Path.Combine(work, "orthanc-storage"), ["IndexDirectory"] = Path.Combine(work, "orthanc-index"),
            ["DicomAet"] = "ORTHANC", ["DicomPort"] = Targets.DicomPort, ["HttpPort"] = Targets.OrthancHttp, ["RemoteAccessAllowed"] = false,
            ["AuthenticationEnabled"] = false, ["DicomCheckCalledAet"] = false, ["DicomAlwaysAllowStore"] = true, ["StorageCompression"] = false,
            ["Plugins"] = Array.Empty<string>(),
            // C-FIND and C-GET (query benchmark): Orthanc answers only modalities it knows.
            ["DicomModalities"] = new Dictionary<string, object> { ["getscu"] = new object[] { "GETSCU", "127.0.0.1", 104 }, ["bench"] = new object[] { "BENCH", "127.0.0.1", 104 } },
            ["DicomAlwaysAllowGet"] = true, ["DicomAlwaysAllowFind"] = true,
        };
        if (postgres is not null)
        {
            var pg = new Npgsql.NpgsqlConnectionStringBuilder(postgres);
            settings["Plugins"] = new[] { "/usr/share/orthanc/plugins/libOrthancPostgreSQLIndex.so" };
            settings["PostgreSQL"] = new Dictionary<string, object>
            {
                ["EnableIndex"] = true, ["EnableStorage"] = false, ["Host"] = pg.Host!, ["Port"] = pg.Port, ["Database"] = pg.Database!,
                ["Username"] = pg.Username!, ["Password"] = pg.Password ?? "", ["Lock"] = false, ["IndexConnectionsCount"] = 4,
            };
        }
        File.WriteAllText(config, JsonSerializer.Serialize(settings));
        _process = new ServerProcess("env", ["TCP_NODELAY=1", "Orthanc", config], readyMarker: null, TimeSpan.FromSeconds(60), readyPort: Targets.DicomPort);
    }

    public int Port => Targets.DicomPort;
    public string AETitle => "ORTHANC";

    public long CountInstances()
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(30) };
        var stats = http.GetFromJsonAsync<JsonElement>($"http://127.0.0.1:{Targets.OrthancHttp}/statistics").GetAwaiter().GetResult();
        return stats.GetProperty("CountInstances").GetInt64();
    }

    public void Dispose() => _process.Dispose();
}

internal static partial class Targets
{
    /// <summary>Installs Debian's Orthanc when it is missing (the benchmark starts its own instance; the package's service is not used).</summary>
    /// <summary>Installs dcmtk from Debian when its storescp is missing.</summary>
    public static void EnsureDcmtk()
    {
        if (Tool.Run("which", ["storescp"]).ExitCode == 0) return;
        Console.Error.WriteLine("installing dcmtk from Debian...");
        var r = Tool.Run("bash", ["-c", "DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends dcmtk"], TimeSpan.FromMinutes(10));
        if (r.ExitCode != 0) throw new InvalidOperationException("cannot install dcmtk: " + r.StdErr);
    }

    public static void EnsureOrthanc()
    {
        if (Tool.Run("which", ["Orthanc"]).ExitCode == 0) return;
        Console.Error.WriteLine("installing Orthanc from Debian...");
        var r = Tool.Run("bash", ["-c", "DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends orthanc"], TimeSpan.FromMinutes(10));
        if (r.ExitCode != 0) throw new InvalidOperationException("cannot install orthanc: " + r.StdErr);
    }

    /// <summary>Installs Debian's PostgreSQL plugin for Orthanc when it is missing.</summary>
    public static void EnsureOrthancPostgreSql()
    {
        if (File.Exists("/usr/share/orthanc/plugins/libOrthancPostgreSQLIndex.so")) return;
        Console.Error.WriteLine("installing orthanc-postgresql from Debian...");
        var r = Tool.Run("bash", ["-c", "DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends orthanc-postgresql"], TimeSpan.FromMinutes(10));
        if (r.ExitCode != 0) throw new InvalidOperationException("cannot install orthanc-postgresql: " + r.StdErr);
    }

    /// <summary>Installs Debian's PostgreSQL when its server binaries are missing (the benchmark starts its own throwaway server).</summary>
    public static void EnsurePostgreSql()
    {
        if (Directory.Exists("/usr/lib/postgresql") && Directory.EnumerateFiles("/usr/lib/postgresql", "initdb", SearchOption.AllDirectories).Any()) return;
        Console.Error.WriteLine("installing postgresql from Debian...");
        var r = Tool.Run("bash", ["-c", "DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql"], TimeSpan.FromMinutes(10));
        if (r.ExitCode != 0) throw new InvalidOperationException("cannot install postgresql: " + r.StdErr);
    }

    public static string OrthancVersion()
    {
        var r = Tool.Run("Orthanc", ["--version"]);
        return r.StdOut.Split('\n').FirstOrDefault()?.Split(' ').LastOrDefault()?.Trim() ?? "";
    }
}
