using AkkaVna.Blobs.FileSystem;
using AkkaVna.Blobs.S3;
using AkkaVna.Core.Ports;
using AkkaVna.Index.PostgreSql;
using AkkaVna.Index.Sqlite;
using AkkaVna.Journal.Sql;
using Microsoft.Extensions.Logging;

namespace AkkaVna.Host;

/// <summary>
/// The adapters a configuration names — <c>akka-vna.index.provider</c>, <c>akka-vna.blobs.provider</c>,
/// <c>akka-vna.journal.provider</c> — built in one place: the node, <c>verify</c>, the tests and the benchmarks all get
/// their stores here. The names are checked when the options load (<see cref="ArchiveOptions"/>), so an unknown one is
/// a start-up error that names the setting, not a failure later.
/// </summary>
public static class Adapters
{
    public static readonly IReadOnlyList<string> IndexProviders = ["sqlite", "postgresql"];
    public static readonly IReadOnlyList<string> BlobProviders = ["filesystem", "s3"];
    public static readonly IReadOnlyList<string> JournalProviders = ["sqlite", "postgresql"];

    /// <summary>The embedded index file in a data folder.</summary>
    public static string SqliteIndexPath(string dataFolder) => Path.Combine(dataFolder, "index.db");

    /// <summary>The embedded journal file in a data folder.</summary>
    public static string SqliteJournalPath(string dataFolder) => Path.Combine(dataFolder, "journal.db");

    /// <summary>The index the options name, not yet initialized (call <see cref="IArchiveIndex.InitializeAsync"/>).</summary>
    public static IArchiveIndex CreateIndex(ArchiveOptions options, ILoggerFactory loggers) => options.IndexProvider switch
    {
        "sqlite" => new SqliteArchiveIndex(SqliteIndexPath(options.DataFolder), loggers.CreateLogger("index"), options.Time),
        "postgresql" => new PostgreSqlArchiveIndex(options.PostgresConnectionString!, loggers.CreateLogger("index"), options.Time, options.PostgresSchema),
        var other => throw new ArchiveConfigException(Unknown("index", other, IndexProviders)),
    };

    /// <summary>The primary blob store the options name (ingest writes there).</summary>
    public static IBlobStore CreateBlobStore(ArchiveOptions options) => options.BlobProvider switch
    {
        "filesystem" => new FileSystemBlobStore(options.BlobsFolder, time: options.Time, node: options.NodeName, othersGrace: options.StagedGrace),
        "s3" when options.S3 is { } s3 => new S3BlobStore(new S3BlobStoreOptions
        {
            Bucket = s3.Bucket, Prefix = s3.Prefix, ServiceUrl = s3.Endpoint, Region = s3.Region, ForcePathStyle = s3.ForcePathStyle,
            // Keys from the configuration when given; otherwise the SDK's chain (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, profiles, roles).
            Credentials = s3.AccessKey is { } ak && s3.SecretKey is { } sk ? new Amazon.Runtime.BasicAWSCredentials(ak, sk) : null,
            StagingFolder = Path.Combine(options.DataFolder, "s3-staging"), Node = options.NodeName,
            MultipartThreshold = s3.MultipartThreshold, PartSize = s3.PartSize, RequestTimeout = s3.RequestTimeout, MaxRetries = s3.MaxRetries,
        }, time: options.Time, othersGrace: options.StagedGrace),
        var other => throw new ArchiveConfigException(Unknown("blobs", other, BlobProviders)),
    };

    /// <summary>The journal the options name.</summary>
    public static IJournalStore CreateJournal(ArchiveOptions options) => options.JournalProvider switch
    {
        "sqlite" => new SqliteJournalStore(SqliteJournalPath(options.DataFolder)),
        "postgresql" => new PostgreSqlJournalStore(options.PostgresConnectionString!, options.PostgresSchema),
        var other => throw new ArchiveConfigException(Unknown("journal", other, JournalProviders)),
    };

    internal static string Unknown(string section, string value, IReadOnlyList<string> known) =>
        $"akka-vna.{section}.provider is '{value}', which this build does not have; it has: {string.Join(", ", known)}";
}
