using System.CommandLine;
using System.Runtime.InteropServices;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using AkkaVna.Core.Ports;
using AkkaVna.Core.Verification;
using AkkaVna.Host;

namespace AkkaVna.Cli.Commands;

/// <summary><c>serve</c> (an archive node) and <c>verify</c> (index against blobs).</summary>
public static class ArchiveCommands
{
    public static Command Serve()
    {
        var config = new Option<FileInfo?>("--config", "-c") { Description = "A HOCON file of settings over the built-in defaults (see config/akka-vna.conf)." };
        var data = new Option<DirectoryInfo?>("--data", "-d") { Description = "Data folder (blobs, index, journal). Default: akka-vna.data, i.e. ./data." };
        var dicomPort = new Option<int?>("--dicom-port") { Description = "DICOM port. Default: akka-vna.dicom.port (11112)." };
        var httpPort = new Option<int?>("--http-port") { Description = "HTTP port for health and metrics. Default: akka-vna.http.port (8080)." };
        var aet = new Option<string?>("--ae-title", "-aet") { Description = "AE title of the archive. Default: akka-vna.dicom.ae-title (AKKAVNA)." };
        var json = new Option<bool>("--log-json") { Description = "Log as JSON lines (one object per event) instead of text lines." };
        var verbose = new Option<bool>("--verbose", "-v") { Description = "Log debug events too." };
        var stores = new StoreFlags();
        var nodeName = new Option<string?>("--node-name") { Description = "This node's name, stable across restarts and unique in the cluster. Default: akka-vna.node-name (machine and data folder)." };
        var clusterHost = new Option<string?>("--cluster-hostname") { Description = "Address other nodes reach this one at. Default: akka-vna.cluster.hostname (127.0.0.1)." };
        var clusterPort = new Option<int?>("--cluster-port") { Description = "Cluster (Akka.Remote) port. Default: akka-vna.cluster.port (0: any free port; give one for a seed node)." };
        var seeds = new Option<string[]>("--seed-node")
        {
            Description = "A seed node, HOST:PORT (repeatable). With seed nodes the node joins a cluster and needs --index postgresql. Default: akka-vna.cluster.seed-nodes.",
            AllowMultipleArgumentsPerToken = false,
        };
        var cmd = new Command("serve", "Run an archive node: takes C-STORE on the DICOM port, archives every instance durably (blob, journal, index) "
            + "before answering, and serves health and metrics over HTTP. Runs on embedded defaults (SQLite, files under the data folder) with no "
            + "options. Several nodes form a cluster on a shared PostgreSQL and blob folder (--index postgresql --postgres ... --blobs DIR "
            + "--cluster-port N --seed-node HOST:PORT). Stops cleanly on Ctrl-C or SIGTERM: lets open associations finish (dicom.shutdown-grace, "
            + "30 s), hands its studies over to the other nodes and leaves the cluster. Exits 3 when the cluster downs it.")
        {
            config, data, dicomPort, httpPort, aet, json, verbose, nodeName, clusterHost, clusterPort, seeds,
        };
        stores.AddTo(cmd);
        cmd.SetAction((r, ct) =>
        {
            var overrides = stores.Overrides(r);
            if (r.GetValue(nodeName) is { } n) overrides.Add($"akka-vna.node-name = {ArchiveOptions.Quote(n)}");
            if (r.GetValue(clusterHost) is { } h) overrides.Add($"akka-vna.cluster.hostname = {ArchiveOptions.Quote(h)}");
            if (r.GetValue(clusterPort) is { } p) overrides.Add($"akka-vna.cluster.port = {p}");
            if (r.GetValue(seeds) is { Length: > 0 } list) overrides.Add($"akka-vna.cluster.seed-nodes = [{string.Join(", ", list.Select(ArchiveOptions.Quote))}]");
            return RunServe(r.GetValue(config), r.GetValue(data), r.GetValue(dicomPort), r.GetValue(httpPort), r.GetValue(aet), r.GetValue(json),
                r.GetValue(verbose), overrides, ct);
        });
        return cmd;
    }

    /// <summary>The flags that choose the stores (<c>serve</c> and <c>verify</c> take the same).</summary>
    private sealed class StoreFlags
    {
        private readonly Option<string?> _index = new("--index")
        {
            Description = "The index (and, by default, journal) provider: sqlite (embedded, one node) or postgresql (shared by a cluster). Default: akka-vna.index.provider.",
        };
        private readonly Option<string?> _postgres = new("--postgres")
        {
            Description = "PostgreSQL connection string (Npgsql), e.g. \"Host=db1;Database=archive;Username=akkavna;Password=...\". Default: akka-vna.postgresql.connection-string, env AKKAVNA_POSTGRES.",
        };
        private readonly Option<string?> _blobs = new("--blobs")
        {
            Description = "Where the blobs are: a folder (the filesystem store; in a cluster one every node mounts, the data folder staying node-local) "
                + "or s3://BUCKET[/PREFIX] (an S3-compatible store; credentials from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY). "
                + "Default: akka-vna.blobs.path, env AKKAVNA_BLOBS, else DATA/blobs.",
        };
        private readonly Option<string?> _s3Endpoint = new("--s3-endpoint")
        {
            Description = "The S3 store's URL for an on-premises store, e.g. http://10.0.0.5:7480 (path-style). Default: akka-vna.blobs.s3.endpoint, env AKKAVNA_S3_ENDPOINT; none: AWS.",
        };

        public void AddTo(Command cmd)
        {
            _index.AcceptOnlyFromAmong("sqlite", "postgresql");
            cmd.Options.Add(_index);
            cmd.Options.Add(_postgres);
            cmd.Options.Add(_blobs);
            cmd.Options.Add(_s3Endpoint);
        }

        public List<string> Overrides(ParseResult r)
        {
            var overrides = new List<string>();
            if (r.GetValue(_index) is { } i) overrides.Add($"akka-vna.index.provider = {ArchiveOptions.Quote(i)}");
            if (r.GetValue(_postgres) is { } pg) overrides.Add($"akka-vna.postgresql.connection-string = {ArchiveOptions.Quote(pg)}");
            if (r.GetValue(_blobs) is { Length: > 0 } b)
                overrides.Add($"akka-vna.blobs.path = {ArchiveOptions.Quote(b.StartsWith("s3://", StringComparison.Ordinal) ? b : Path.GetFullPath(b))}");
            if (r.GetValue(_s3Endpoint) is { Length: > 0 } e) overrides.Add($"akka-vna.blobs.s3.endpoint = {ArchiveOptions.Quote(e)}");
            return overrides;
        }
    }

    private static async Task<int> RunServe(FileInfo? config, DirectoryInfo? data, int? dicomPort, int? httpPort, string? aet, bool json, bool verbose,
        List<string> overrides, CancellationToken ct)
    {
        if (data is not null) overrides.Add($"akka-vna.data = {ArchiveOptions.Quote(data.FullName)}");
        if (dicomPort is { } dp) overrides.Add($"akka-vna.dicom.port = {dp}");
        if (httpPort is { } hp) overrides.Add($"akka-vna.http.port = {hp}");
        if (aet is not null) overrides.Add($"akka-vna.dicom.ae-title = {ArchiveOptions.Quote(aet)}");
        ArchiveOptions options;
        try
        {
            options = ArchiveOptions.Load(config?.FullName, string.Join('\n', overrides));
        }
        catch (ArchiveConfigException e)
        {
            Console.Error.WriteLine("error: " + e.Message);
            return 2;
        }
        void Logging(ILoggingBuilder b)
        {
            if (json) b.AddJsonConsole(o => o.TimestampFormat = "yyyy-MM-ddTHH:mm:ss.fffZ");
            else b.AddSimpleConsole(o =>
            {
                o.SingleLine = true;
                o.TimestampFormat = "yyyy-MM-ddTHH:mm:ss.fff ";
            });
            b.SetMinimumLevel(verbose ? LogLevel.Debug : LogLevel.Information)
                .AddFilter("Microsoft.AspNetCore", LogLevel.Warning)
                .AddFilter("akka", verbose ? LogLevel.Debug : LogLevel.Information);
        }

        var stop = new TaskCompletionSource();
        using var reg = ct.Register(() => stop.TrySetResult());
        using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c =>
        {
            c.Cancel = true;
            stop.TrySetResult();
        });
        using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, c =>
        {
            c.Cancel = true;
            stop.TrySetResult();
        });
        ArchiveNode node;
        try
        {
            node = await ArchiveNode.StartAsync(options, Logging, ct);
        }
        catch (Exception e) when (e is IOException or System.Net.Sockets.SocketException or UnauthorizedAccessException or TimeoutException
                                      or System.Data.Common.DbException or ArchiveConfigException)
        {
            Console.Error.WriteLine($"error: the node cannot start: {e.Message}");
            return 1;
        }
        // Scripts wait for this line (or poll /health/ready).
        Console.WriteLine($"akka-vna serve: ready; DICOM {options.AETitle}@{node.DicomEndPoint}{(node.DicomTlsEndPoint is { } tlsAt ? $", DICOM TLS port {tlsAt.Port}" : "")}, {(node.HttpPort > 0 ? $"HTTP port {node.HttpPort}" : "no plain HTTP")}{(node.HttpsPort is { } httpsAt ? $", HTTPS port {httpsAt}" : "")}, data {options.DataFolder}, "
            + $"cluster {node.ClusterAddress}");
        if (await Task.WhenAny(stop.Task, node.Downed) == node.Downed)
        {
            // Downed by the cluster (a partition or a pause it took for death): its studies are another node's now.
            Console.Error.WriteLine("error: this node was removed from the cluster; it stops without taking more associations");
            await node.StopAsync(TimeSpan.FromSeconds(5));
            return 3;
        }
        await node.StopAsync(options.ShutdownGrace);
        return 0;
    }

    public static Command Verify()
    {
        var data = new Option<DirectoryInfo?>("--data", "-d") { Description = "Data folder of the archive to check (the embedded index and blobs under it)." };
        var config = new Option<FileInfo?>("--config", "-c") { Description = "The node's configuration file (HOCON), for the adapters it names (index, blobs)." };
        var noChecksums = new Option<bool>("--no-checksums") { Description = "Check presence and sizes only; do not read every blob to compare its SHA-256." };
        var repair = new Option<bool>("--repair")
        {
            Description = "Write missing or damaged blobs again from a good local copy (an S3 node's receive cache, whose bytes must have the indexed "
                + "SHA-256), and list what no copy here can mend. Run it on the node whose cache it is.",
        };
        var inMemory = new Option<int>("--in-memory-blobs")
        {
            Description = "How many blob listings are compared in memory; past it both sides spill to hashed files and are compared a bucket at a time.",
            DefaultValueFactory = _ => new VerifyOptions().InMemoryBlobs,
        };
        inMemory.Validators.Add(r =>
        {
            if (r.GetValueOrDefault<int>() < 1) r.AddError("--in-memory-blobs must be at least 1");
        });
        var stores = new StoreFlags();
        var cmd = new Command("verify", "Check an archive's index against its blobs: a blob (of the indexed size and SHA-256, and that parses as a whole "
            + "data set) for every indexed instance and an index row for every blob. Prints the counts and each problem; exits 0 only when the archive is clean. "
            + "A cluster's archive is checked with the same store options as its nodes: --index postgresql --postgres ... --blobs DIR (or s3://BUCKET). "
            + "Stores of millions of blobs are listed a page at a time and compared in bounded memory (spilled to hashed files in the temporary folder).")
        {
            data, config, noChecksums, repair, inMemory,
        };
        stores.AddTo(cmd);
        cmd.SetAction((r, ct) => RunVerify(r.GetValue(data), r.GetValue(config), new VerifyOptions
            {
                Checksums = !r.GetValue(noChecksums), Repair = r.GetValue(repair), InMemoryBlobs = r.GetValue(inMemory),
            },
            stores.Overrides(r), ct));
        return cmd;
    }

    private static async Task<int> RunVerify(DirectoryInfo? data, FileInfo? configFile, VerifyOptions verify, List<string> overrides, CancellationToken ct)
    {
        ArchiveOptions options;
        try
        {
            if (data is not null) overrides.Insert(0, $"akka-vna.data = {ArchiveOptions.Quote(data.FullName)}");
            options = ArchiveOptions.Load(configFile?.FullName, string.Join('\n', overrides));
        }
        catch (ArchiveConfigException e)
        {
            Console.Error.WriteLine($"error: {e.Message}");
            return 2;
        }
        if (options.IndexProvider == "sqlite" && !File.Exists(Adapters.SqliteIndexPath(options.DataFolder)))
        {
            Console.Error.WriteLine($"error: {options.DataFolder} is not an archive data folder (no index.db); give --data, or the cluster's --index postgresql --postgres ... --blobs DIR");
            return 2;
        }
        await using var index = Adapters.CreateIndex(options, NullLoggerFactory.Instance);
        await index.InitializeAsync(ct);
        await using var blobs = Adapters.CreateBlobStore(options, index: index);
        var counts = await index.CountAsync(ct);
        using var bar = Progress.Start((int)Math.Min(counts.Instances, int.MaxValue));
        VerifyReport report;
        try
        {
            report = await ArchiveVerifier.VerifyAsync(index, blobs, verify, new Progress<(long Done, long Total)>(p => bar.Report((int)p.Done)), ct);
        }
        catch (IOException e)
        {
            bar.Dispose();
            Console.Error.WriteLine($"error: the blob store cannot be read: {e.Message}");
            return 2;
        }
        bar.Dispose();
        Console.WriteLine($"studies: {counts.Studies}, series: {counts.Series}, instances: {report.IndexedInstances} indexed, "
            + (report.KeptOriginals > 0 ? $"{report.KeptOriginals} kept original(s), " : "") + $"{report.Blobs} blob(s), "
            + $"{report.ChecksumsVerified} checksum(s) verified, {report.StagedBlobs} staged" + (report.Spilled ? " (compared on disk, a bucket at a time)" : ""));
        if (blobs is IUploadBacklog { PendingUploads: > 0 } backlog)
            Console.WriteLine($"{backlog.PendingUploads} instance(s) received and not yet uploaded to S3 (read from the node's cache meanwhile)");
        void List(string what, IReadOnlyList<string> items)
        {
            Console.WriteLine($"{what}: {items.Count}");
            foreach (var item in items.Take(50)) Console.WriteLine("  " + item);
            if (items.Count > 50) Console.WriteLine($"  ... and {items.Count - 50} more");
        }
        List("missing blobs", report.MissingBlobs);
        List("orphan blobs", report.OrphanBlobs);
        List("checksum mismatches", report.ChecksumMismatches);
        List("size mismatches", report.SizeMismatches);
        if (verify.Checksums) List("not whole data sets", report.Unparseable);
        if (verify.Repair)
        {
            List("repaired", report.Repaired);
            List("cannot be repaired here", report.Unrepairable);
        }
        Console.WriteLine(report.IsClean ? "clean" : "NOT CLEAN");
        return report.IsClean ? 0 : 1;
    }
}
