using System.Diagnostics;
using System.Globalization;
using AkkaVna.Index.PostgreSql;
using AkkaVna.Testing;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;

namespace AkkaVna.Perf;

/// <summary>
/// Issue 15's benchmark: dcmtk storescu sends the same generated CT set over 4 associations (whole studies per
/// association, as gateways send) to akka-vna as 1, 2 and 3 nodes of one cluster on PostgreSQL (index and journal) and a
/// shared blob folder — the associations dealt over the nodes — beside the single embedded node (SQLite) and Orthanc with
/// its PostgreSQL index plugin (Debian's orthanc-postgresql), all in one run, all durable where they can be (akka-vna
/// fsyncs every blob; Orthanc does not). Then the same into one node whose PostgreSQL index already holds 1 M instances
/// (10,000 studies, written straight into the tables), against the empty one. PostgreSQL is a throwaway server started
/// by the benchmark (Unix socket, fsync on); everything runs in a private network namespace.
/// </summary>
public static class ClusterBenchmark
{
    public static int Run(string[] args)
    {
        Targets.EnsureDcmtk();
        Targets.EnsureOrthanc();
        Targets.EnsureOrthancPostgreSql();
        Targets.EnsurePostgreSql();
        if (Bench.ReexecInNetworkNamespace("cluster", args) is { } exitCode) return exitCode;
        int studies = (int)Bench.Option(args, "--studies", 8), perStudy = (int)Bench.Option(args, "--instances", 150);
        int repeats = (int)Bench.Option(args, "--repeats", 1);
        int warmupCount = (int)Bench.Option(args, "--warmup", 1500);
        long prefill = (long)Bench.Option(args, "--prefill", 1_000_000);
        const int Associations = 4;

        using var dir = new TempDir();
        var files = Enumerable.Range(1, studies)
            .SelectMany(s => Instances.WriteStudy(Path.Combine(dir.Path, "src", s.ToString(CultureInfo.InvariantCulture)), perStudy, 512 * 512 * 2, seed: s)).ToList();
        var warmup = Instances.WriteStudy(Path.Combine(dir.Path, "warmup"), warmupCount, 512 * 512 * 2, seed: 999);
        long bytes = files.Sum(f => new FileInfo(f).Length);
        // A production-like server: shared buffers that hold the prefilled index (a quarter of this machine's memory would be more).
        using var pg = new PostgresServer(sharedBuffers: "2GB");

        var targets = new List<(string Name, Func<string, ITarget> Start)>
        {
            ("akka-vna, 1 node, SQLite", work => new AkkaVnaTarget(work, flushBlobs: true)),
            ("akka-vna, 1 node, PostgreSQL", work => new AkkaVnaTarget(work, flushBlobs: true, nodes: 1, postgres: pg.CreateDatabase())),
            ("akka-vna, 2 nodes, PostgreSQL", work => new AkkaVnaTarget(work, flushBlobs: true, nodes: 2, postgres: pg.CreateDatabase())),
            ("akka-vna, 3 nodes, PostgreSQL", work => new AkkaVnaTarget(work, flushBlobs: true, nodes: 3, postgres: pg.CreateDatabase())),
            ("Orthanc " + Targets.OrthancVersion() + " + PostgreSQL index", work => new OrthancTarget(work, pg.CreateDatabase())),
        };
        if (prefill > 0)
            targets.Add(($"akka-vna, 1 node, PostgreSQL holding {prefill:N0} instances", work =>
            {
                string db = pg.CreateDatabase();
                var sw = Stopwatch.StartNew();
                Prefill(db, prefill).GetAwaiter().GetResult();
                Console.Error.WriteLine(Bench.Invariant($"prefilled {prefill:N0} instances in {sw.Elapsed.TotalSeconds:F0} s"));
                return new AkkaVnaTarget(work, flushBlobs: true, nodes: 1, postgres: db);
            }));
        int only = Array.IndexOf(args, "--only");
        if (only >= 0 && only + 1 < args.Length) targets = [.. targets.Where(t => t.Name.StartsWith(args[only + 1], StringComparison.Ordinal))];

        Console.WriteLine($"# AkkaVna cluster ingest benchmark ({DateTime.UtcNow:yyyy-MM-dd}, {Environment.ProcessorCount} cores, .NET {Environment.Version}, {Bench.DcmtkVersion()}, PostgreSQL {PostgresVersion()})");
        Console.WriteLine();
        Console.WriteLine($"dcmtk storescu (TCP_NODELAY=1) sends {files.Count} generated CT instances ({studies} studies x {perStudy}, 512x512x16, {bytes / 1e6:F0} MB) over "
            + $"{Associations} associations, whole studies per association, dealt over the target's nodes; each target starts empty (but for the prefilled index) and gets "
            + $"a {warmup.Count}-instance warm-up study first; median of {repeats} run(s); PostgreSQL 2 GB shared buffers, fsync on; every target is checked to hold every instance afterwards. akka-vna "
            + "answers only after the blob is fsynced and the journal and index are committed; Orthanc does not fsync its files.");
        Console.WriteLine();
        Console.WriteLine("| target | instances/s | MB/s | vs 1 node SQLite | vs Orthanc + PostgreSQL |");
        Console.WriteLine("|---|---|---|---|---|");
        var seconds = new Dictionary<string, double>();
        var breakdowns = new List<string>();
        foreach (var (name, start) in targets)
        {
            var runs = new List<double>();
            for (int r = 0; r < repeats; r++)
            {
                using var target = Targets.StartEmpty(dir.Path, start);
                long before = target.CountInstances();
                Bench.Storescu(warmup, target.Ports, target.AETitle, Associations);
                (target as AkkaVnaTarget)?.Mark();
                double pgCpu = pg.CpuSeconds();
                runs.Add(Bench.Storescu(files, target.Ports, target.AETitle, Associations, byStudy: true));
                pgCpu = pg.CpuSeconds() - pgCpu;
                long held = target.CountInstances() - before;
                string database = name.Contains("PostgreSQL", StringComparison.Ordinal) ? Bench.Invariant($"PostgreSQL CPU {pgCpu / files.Count * 1000:F2} ms per instance, ") : "";
                if (target is AkkaVnaTarget akka) breakdowns.Add($"{name}: {database}{akka.PhaseBreakdown()}");
                else if (database.Length > 0) breakdowns.Add($"{name}: {database.TrimEnd(',', ' ')}");
                if (held != files.Count + warmup.Count) throw new InvalidOperationException($"{name} holds {held} of {files.Count + warmup.Count} new instances");
            }
            seconds[name] = Bench.Median(runs);
        }
        double sqlite = seconds.Where(kv => kv.Key.EndsWith("SQLite", StringComparison.Ordinal)).Select(kv => kv.Value).FirstOrDefault(double.NaN);
        double orthanc = seconds.Where(kv => kv.Key.StartsWith("Orthanc", StringComparison.Ordinal)).Select(kv => kv.Value).FirstOrDefault(double.NaN);
        foreach (var (name, s) in seconds)
            Console.WriteLine(Bench.Invariant($"| {name} | {files.Count / s:F0} | {bytes / 1e6 / s:F0} | {sqlite / s:F2}x | {orthanc / s:F2}x |"));
        var empty = seconds.Where(kv => kv.Key == "akka-vna, 1 node, PostgreSQL").Select(kv => kv.Value).FirstOrDefault(double.NaN);
        var full = seconds.Where(kv => kv.Key.Contains("holding", StringComparison.Ordinal)).Select(kv => kv.Value).FirstOrDefault(double.NaN);
        Console.WriteLine();
        if (!double.IsNaN(empty) && !double.IsNaN(full))
            Console.WriteLine(Bench.Invariant($"Ingest into an index holding {prefill:N0} instances runs at {empty / full * 100:F0} % of the rate into an empty one (goal: at least 90 %)."));
        Console.WriteLine();
        Console.WriteLine("Where akka-vna's time goes (mean per instance over all nodes, from their metrics):");
        Console.WriteLine();
        foreach (var b in breakdowns) Console.WriteLine("- " + b);
        return 0;
    }

    private static string PostgresVersion()
    {
        var bin = Directory.EnumerateDirectories("/usr/lib/postgresql").Order(StringComparer.Ordinal).LastOrDefault();
        return bin is null ? "?" : Path.GetFileName(bin);
    }

    /// <summary>
    /// Fills the index of a new database with <paramref name="instances"/> instances in studies of 100 (one series each),
    /// 10 studies per patient, over 24 months, written straight into the tables in batches of 1,000 studies — what a
    /// migrated archive's index holds, without blobs.
    /// </summary>
    private static async Task Prefill(string connection, long instances)
    {
        await using (var index = new PostgreSqlArchiveIndex(connection, NullLogger.Instance)) await index.InitializeAsync(CancellationToken.None);
        await using var data = NpgsqlDataSource.Create(new NpgsqlConnectionStringBuilder(connection) { SearchPath = "akkavna", CommandTimeout = 0 }.ConnectionString);
        long studyCount = (instances + 99) / 100;
        const string Root = "1.2.826.0.1.3680043.10.543.77";
        for (long first = 1; first <= studyCount; first += 1000)
        {
            long last = Math.Min(studyCount, first + 999);
            await using var batch = data.CreateBatch();
            void Add(string sql)
            {
                var cmd = new NpgsqlBatchCommand(sql);
                cmd.Parameters.AddWithValue("a", first);
                cmd.Parameters.AddWithValue("b", last);
                batch.BatchCommands.Add(cmd);
            }
            const string Date = "'20' || lpad((22 + (s % 24) / 12)::text, 2, '0') || lpad((1 + s % 12)::text, 2, '0') || '15'";
            Add($"""
                INSERT INTO studies SELECT '{Root}.' || s, 'PF' || (s / 10), '', 'PREFILL^' || (s / 10), '19700101', 'O', {Date}, '120000', 'ACC' || s, '1', 'CT CHEST',
                    NULL, substr({Date}, 1, 6), 'CT', 1, 100, 52428800, true, 0, NULL, 0, 1
                FROM generate_series(@a::bigint, @b::bigint) s
                """);
            Add($"INSERT INTO patient_studies SELECT 'PF' || (s / 10), '', '{Root}.' || s, {Date} FROM generate_series(@a::bigint, @b::bigint) s");
            Add($"INSERT INTO date_studies SELECT substr({Date}, 1, 6), '{Root}.' || s, {Date} FROM generate_series(@a::bigint, @b::bigint) s");
            Add($"INSERT INTO series SELECT '{Root}.' || s, '{Root}.' || s || '.1', 'CT', 1, 'AXIAL', 'CHEST', {Date}, 100 FROM generate_series(@a::bigint, @b::bigint) s");
            Add($"""
                INSERT INTO instances SELECT '{Root}.' || s, '{Root}.' || s || '.1', '{Root}.' || s || '.1.' || i, '1.2.840.10008.5.1.4.1.1.2', '1.2.840.10008.1.2.1',
                    i, NULL, 512, 512, 'primary', 'prefill/' || s || '/' || i || '.dcm', 'original', 'standard', 524288, md5(s::text || '.' || i), 0, 'PREFILL'
                FROM generate_series(@a::bigint, @b::bigint) s, generate_series(1, 100) i
                """);
            Add($"""
                INSERT INTO instance_locations SELECT '{Root}.' || s || '.1.' || i, '{Root}.' || s, '{Root}.' || s || '.1'
                FROM generate_series(@a::bigint, @b::bigint) s, generate_series(1, 100) i
                """);
            await batch.ExecuteNonQueryAsync();
        }
        await using var analyze = data.CreateCommand("ANALYZE");
        await analyze.ExecuteNonQueryAsync();
    }
}
