using System.Globalization;
using AkkaVna.Testing;
using Microsoft.Extensions.Logging.Abstractions;
using AkkaVna.Actors.Logging;
using AkkaVna.Blobs.FileSystem;
using AkkaVna.Core.Model;
using AkkaVna.Core.Ports;
using AkkaVna.Host;
using AkkaVna.Index.Sqlite;

namespace AkkaVna.Host.Tests.Serve;

/// <summary>
/// <c>akka-vna serve</c> as a real process on a data folder, with free ports and an optional configuration file; the
/// test reads its index (SQLite in WAL mode: readable while the node writes) and blob store directly.
/// </summary>
public sealed class ArchiveServer : IDisposable
{
    public string DataFolder { get; }
    public int DicomPort { get; }
    public int HttpPort { get; }
    private readonly ServerProcess _process;

    /// <param name="network">Run the node inside this network namespace (to reach storescp or Orthanc as move destinations).</param>
    /// <param name="dicomPort">A fixed DICOM port (for peers in a network namespace that are configured with it); otherwise the
    /// node takes free ports itself (0) and names them in its ready line — no port picked here can be taken by anything
    /// else (Akka remoting's own ephemeral port, once) before the node binds it.</param>
    public ArchiveServer(string dataFolder, string? config = null, int? dicomPort = null, NetworkNamespace? network = null, IEnumerable<string>? extraArgs = null)
    {
        DataFolder = dataFolder;
        var args = new List<string> { AkkaVnaCli.Dll, "serve", "--data", dataFolder, "--dicom-port", (dicomPort ?? 0).ToString(CultureInfo.InvariantCulture),
            "--http-port", "0" };
        args.AddRange(StoreArgs(dataFolder));
        if (extraArgs is not null) args.AddRange(extraArgs);
        if (S3Of(dataFolder) is { } s3) config = s3 + "\n" + (config ?? "");
        if (config is not null)
        {
            string path = Path.Combine(Path.GetDirectoryName(dataFolder)!, "akka-vna-" + Guid.NewGuid().ToString("N")[..8] + ".conf");
            File.WriteAllText(path, config);
            args.AddRange(["--config", path]);
        }
        _process = network is null
            ? new ServerProcess("dotnet", args, "akka-vna serve: ready", TimeSpan.FromSeconds(90))
            : network.Start("dotnet", args, "akka-vna serve: ready", TimeSpan.FromSeconds(90));
        // "akka-vna serve: ready; DICOM AKKAVNA@127.0.0.1:40435, HTTP port 43663, data ..."
        DicomPort = _process.ReadyPort("127.0.0.1:");
        HttpPort = _process.ReadyLine!.Contains("HTTP port ", StringComparison.Ordinal) ? _process.ReadyPort("HTTP port ") : 0;
        HttpsPort = _process.ReadyLine!.Contains("HTTPS port ", StringComparison.Ordinal) ? _process.ReadyPort("HTTPS port ") : null;
        TlsPort = _process.ReadyLine!.Contains("DICOM TLS port ", StringComparison.Ordinal) ? _process.ReadyPort("DICOM TLS port ") : null;
    }

    /// <summary>The HTTPS port, when the node listens for HTTPS (akka-vna.http.https).</summary>
    public int? HttpsPort { get; }

    /// <summary>The DICOM TLS port, when the node listens for TLS (akka-vna.dicom.tls).</summary>
    public int? TlsPort { get; }

    public string Output => _process.Output;
    public int ProcessId => _process.ProcessId;

    /// <summary>SIGTERM, then the exit code.</summary>
    public int Stop() => _process.Stop();

    /// <summary>SIGTERM without waiting: the node drains (dicom.shutdown-grace) and exits.</summary>
    public void Terminate() => _process.Terminate();

    public int? WaitForExit(TimeSpan timeout) => _process.WaitForExit(timeout);

    public bool HasExited => _process.HasExited;

    /// <summary>SIGKILL: no shutdown at all.</summary>
    public void Kill() => _process.Kill();

    public void Dispose() => _process.Dispose();

    /// <summary>The backends the serve suite runs on: SQLite, PostgreSQL (index and journal), S3 (blobs on radosgw, SQLite index).</summary>
    public const string Sqlite = "sqlite", PostgreSql = "postgresql", S3 = "s3";

    private static readonly System.Collections.Concurrent.ConcurrentDictionary<string, string> Postgres = new(StringComparer.Ordinal);
    private static readonly System.Collections.Concurrent.ConcurrentDictionary<string, string> S3Stores = new(StringComparer.Ordinal);

    /// <summary>The HOCON that puts a data folder's blobs on S3 (a bucket of its own on the tests' radosgw), or null.</summary>
    public static string? S3Of(string dataFolder) => S3Stores.TryGetValue(dataFolder, out var c) ? c : null;

    /// <summary>
    /// A new data folder under <paramref name="dir"/> for a node on <paramref name="backend"/>: SQLite (embedded) or
    /// PostgreSQL (a fresh database of the tests' throwaway server, index and journal; the blobs stay under the folder).
    /// Every helper here then opens the node's stores as the node does.
    /// </summary>
    public static string NewDataFolder(TempDir dir, string backend, string name = "data")
    {
        string data = dir.File(name);
        if (backend == PostgreSql) Postgres[data] = PostgresServer.Shared.CreateDatabase();
        else if (backend == S3)
            S3Stores[data] = $"""
                akka-vna.blobs.path = "s3://{RadosGateway.Shared.NewBucket()}/archive"
                akka-vna.blobs.s3.endpoint = "{RadosGateway.Shared.Endpoint}"
                akka-vna.blobs.s3.access-key = "{RadosGateway.AccessKey}"
                akka-vna.blobs.s3.secret-key = "{RadosGateway.SecretKey}"
                """;
        else if (backend != Sqlite) throw new ArgumentException($"unknown backend {backend}", nameof(backend));
        return data;
    }

    /// <summary>The PostgreSQL connection string of a data folder's node, or null when it runs on SQLite.</summary>
    public static string? PostgresOf(string dataFolder) => Postgres.TryGetValue(dataFolder, out var c) ? c : null;

    /// <summary>The store flags of a node (and of verify) on a data folder.</summary>
    public static IReadOnlyList<string> StoreArgs(string dataFolder) => PostgresOf(dataFolder) is { } pg ? ["--index", "postgresql", "--postgres", pg] : [];

    /// <summary>The options of a node on <paramref name="dataFolder"/>: its adapters come from <see cref="Adapters"/>, as the node's.</summary>
    public static ArchiveOptions OptionsFor(string dataFolder) => ArchiveOptions.Load(null, $"akka-vna.data = {ArchiveOptions.Quote(dataFolder)}"
        + (PostgresOf(dataFolder) is { } pg ? $"\nakka-vna.index.provider = postgresql\nakka-vna.postgresql.connection-string = {ArchiveOptions.Quote(pg)}" : "")
        + (S3Of(dataFolder) is { } s3 ? "\n" + s3 : "")
        + "\nakka-vna.node-name = test-reader");

    /// <summary>Opens the node's index (it may be running: SQLite in WAL mode is readable while the node writes).</summary>
    public static async Task<IArchiveIndex> OpenIndexAsync(string dataFolder)
    {
        var index = Adapters.CreateIndex(OptionsFor(dataFolder), NullLoggerFactory.Instance);
        await index.InitializeAsync(CancellationToken.None);
        return index;
    }

    public static IBlobStore OpenBlobs(string dataFolder) => Adapters.CreateBlobStore(OptionsFor(dataFolder));

    /// <summary>The journal store of the archive in <paramref name="dataFolder"/> (to count what it holds of a study).</summary>
    public static IJournalStore OpenJournal(string dataFolder) => Adapters.CreateJournal(OptionsFor(dataFolder));

    /// <summary>The node's embedded index file (tests that play a power loss edit it with SQL).</summary>
    public static string IndexFile(string dataFolder) => Adapters.SqliteIndexPath(dataFolder);

    /// <summary>How many promoted blobs the node's store holds.</summary>
    public static async Task<int> CountBlobsAsync(string dataFolder)
    {
        int n = 0;
        await foreach (var _ in OpenBlobs(dataFolder).ListAsync(CancellationToken.None)) n++;
        return n;
    }

    /// <summary>Where the filesystem store of a node on <paramref name="dataFolder"/> keeps a blob (tests compare files with dcmtk and the toolkit).</summary>
    public static string BlobPath(string dataFolder, BlobRef blob) => Path.Combine(OptionsFor(dataFolder).BlobsFolder, blob.Key);

    /// <summary>A blob as a local file, read through the node's store (a copy under <paramref name="scratch"/> when it is not on the file system).</summary>
    public static async Task<string> BlobFileAsync(string dataFolder, BlobRef blob, string scratch)
    {
        if (S3Of(dataFolder) is null) return BlobPath(dataFolder, blob);
        string path = Path.Combine(scratch, Guid.NewGuid().ToString("N") + ".dcm");
        Directory.CreateDirectory(scratch);
        await using var store = OpenBlobs(dataFolder);
        await using var content = await store.OpenAsync(blob, CancellationToken.None);
        await using (var from = content.OpenRead())
        await using (var to = File.Create(path)) await from.CopyToAsync(to);
        return path;
    }

    public static async Task<List<IndexedInstance>> ListAsync(IArchiveIndex index)
    {
        var list = new List<IndexedInstance>();
        await foreach (var i in index.ListInstancesAsync(null, CancellationToken.None)) list.Add(i);
        return list;
    }

    /// <summary>Runs <c>akka-vna verify</c> and returns its exit code and output.</summary>
    public static Tool.Result Verify(string dataFolder, params string[] options)
    {
        var args = new List<string> { "verify", "--data", dataFolder };
        args.AddRange(options);
        args.AddRange(StoreArgs(dataFolder));
        if (S3Of(dataFolder) is { } s3)
        {
            string conf = dataFolder + ".verify.conf";
            File.WriteAllText(conf, s3);
            args.AddRange(["--config", conf]);
        }
        return AkkaVnaCli.Run(TimeSpan.FromMinutes(3), [.. args]);
    }
}
