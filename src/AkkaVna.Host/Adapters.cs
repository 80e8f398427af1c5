using AkkaVna.Blobs.FileSystem;
using AkkaVna.Blobs.S3;
using AkkaVna.Core.Blobs;
using AkkaVna.Core.Model;
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

    /// <summary>
    /// The blob stores the options name: the primary one (ingest writes there) and, when <c>akka-vna.blobs.stores</c>
    /// names more, all of them behind a <see cref="BlobStoreSet"/> that reads each blob from the store its reference
    /// names. <paramref name="serving"/>: the node itself (it owns its S3 receive cache and runs the upload queue); a
    /// tool beside it (verify, tests) only reads the cache.
    /// </summary>
    /// <param name="index">The index whose key store holds the study keys; needed when encryption at rest is on.</param>
    public static IBlobStore CreateBlobStore(ArchiveOptions options, bool serving = false, ILoggerFactory? loggers = null, IArchiveIndex? index = null)
    {
        // Encryption at rest wraps each store (not the set): a tier move reads plaintext and writes ciphertext again.
        var keyring = options.Encryption is { } encryption
            ? new AkkaVna.Core.Blobs.StudyKeyring((index ?? throw new ArgumentException("encryption at rest needs the index's key store", nameof(index))).Lifecycle,
                encryption.Current, encryption.Previous, options.Time)
            : null;
        IBlobStore Wrap(IBlobStore store) => keyring is null ? store : new AkkaVna.Core.Blobs.EncryptedBlobStore(store, keyring);
        var primary = Wrap(CreateStore(BlobRef.PrimaryStore, options.BlobProvider, options.BlobsFolder, options.S3, options, serving, loggers));
        if (options.BlobStores.Count == 0) return primary;
        var others = new List<IBlobStore>();
        try
        {
            foreach (var store in options.BlobStores) others.Add(Wrap(CreateStore(store.Name, store.Provider, store.Folder, store.S3, options, serving, loggers)));
            return new BlobStoreSet(primary, others);
        }
        catch
        {
            foreach (var store in others.Prepend(primary)) store.DisposeAsync().AsTask().GetAwaiter().GetResult();
            throw;
        }
    }

    private static IBlobStore CreateStore(string name, string provider, string folder, S3Settings? s3, ArchiveOptions options, bool serving, ILoggerFactory? loggers) =>
        provider switch
        {
            "filesystem" => new FileSystemBlobStore(folder, name, time: options.Time, node: options.NodeName, othersGrace: options.StagedGrace),
            "s3" when s3 is not null => new S3BlobStore(new S3BlobStoreOptions
            {
                Bucket = s3.Bucket, Prefix = s3.Prefix, ServiceUrl = s3.Endpoint, Region = s3.Region, ForcePathStyle = s3.ForcePathStyle,
                // Keys from the configuration when given; otherwise the SDK's chain (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, profiles, roles).
                Credentials = s3.AccessKey is { } ak && s3.SecretKey is { } sk ? new Amazon.Runtime.BasicAWSCredentials(ak, sk) : null,
                StagingFolder = Path.Combine(options.DataFolder, name == BlobRef.PrimaryStore ? "s3-staging" : "s3-staging-" + name), Node = options.NodeName,
                MultipartThreshold = s3.MultipartThreshold, PartSize = s3.PartSize, RequestTimeout = s3.RequestTimeout, MaxRetries = s3.MaxRetries,
                Acknowledge = s3.Acknowledge, CacheFolder = s3.CacheMaxBytes > 0 ? s3.CacheFolder : null, CacheMaxBytes = s3.CacheMaxBytes,
                OwnsCache = serving, UploadConcurrency = s3.UploadConcurrency, Log = loggers?.CreateLogger("blobs." + name),
                VersionNamesPlaintext = options.Encryption is not null,
            }, name, time: options.Time, othersGrace: options.StagedGrace),
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
