using System.Net;
using Akka.Configuration;
using AkkaVna.Actors.Logging;
using AkkaVna.Actors.Studies;
using AkkaVna.Core.Compression;
using AkkaVna.Core.Lifecycle;
using AkkaVna.Core.Ingest;
using AkkaVna.Core.Model;
using AkkaVna.Core.Studies;
using AkkaVna.Dimse.Store;

namespace AkkaVna.Host;

/// <summary>A node's settings, read from HOCON: the built-in <c>config/akka-vna.conf</c>, then a user file, then flags.</summary>
public sealed record ArchiveOptions
{
    public required string DataFolder { get; init; }
    /// <summary>The index adapter (<c>akka-vna.index.provider</c>): sqlite or postgresql.</summary>
    public string IndexProvider { get; init; } = "sqlite";
    /// <summary>The blob-store adapter (<c>akka-vna.blobs.provider</c>): filesystem.</summary>
    public string BlobProvider { get; init; } = "filesystem";
    /// <summary>The filesystem store's folder.</summary>
    public required string BlobsFolder { get; init; }
    /// <summary>The S3 store's settings (<c>akka-vna.blobs.s3</c>), when the blob provider is s3.</summary>
    public S3Settings? S3 { get; init; }
    /// <summary>Further stores blob references may name (<c>akka-vna.blobs.stores</c>): tiers beside the primary store.</summary>
    public IReadOnlyList<BlobStoreSettings> BlobStores { get; init; } = [];
    /// <summary>The journal adapter (<c>akka-vna.journal.provider</c>): sqlite or postgresql; by default the index's.</summary>
    public string JournalProvider { get; init; } = "sqlite";
    /// <summary>The shared PostgreSQL (<c>akka-vna.postgresql.connection-string</c>), when an adapter uses it.</summary>
    public string? PostgresConnectionString { get; init; }
    /// <summary>The PostgreSQL schema of the archive's tables (index and journal).</summary>
    public string PostgresSchema { get; init; } = "akkavna";
    /// <summary>The split-brain resolver's strategy (<c>akka-vna.cluster.split-brain-resolver</c>).</summary>
    public string DowningStrategy { get; init; } = "keep-majority";
    /// <summary>How long the cluster's membership must be stable before the resolver downs unreachable members.</summary>
    public TimeSpan DowningStableAfter { get; init; } = TimeSpan.FromSeconds(15);
    /// <summary>This node's name where nodes share state (its projection checkpoint): stable across its restarts, unique in the cluster.</summary>
    public required string NodeName { get; init; }
    /// <summary>The clock wherever time decides something (stability, timers, checkpoints); tests give a fake one.</summary>
    public TimeProvider Time { get; init; } = TimeProvider.System;
    public required string AETitle { get; init; }
    public required IPAddress DicomBind { get; init; }
    public required int DicomPort { get; init; }
    public required IReadOnlySet<string> AllowedCallingAETitles { get; init; }

    /// <summary>Known DICOM peers (AE title, hosts, permissions) and whether unknown ones are let in.</summary>
    public Dicom.Network.PeerAccess Peers { get; init; } = Dicom.Network.PeerAccess.Open;
    public required int MaxAssociations { get; init; }
    public required uint MaxPdu { get; init; }
    public required int MaxAsyncOperations { get; init; }
    public required TimeSpan ArtimTimeout { get; init; }
    public required TimeSpan DimseTimeout { get; init; }
    public required TimeSpan IdleTimeout { get; init; }

    /// <summary>The DICOM TLS listener (<c>akka-vna.dicom.tls</c>), beside the plain one; null when no certificate is configured.</summary>
    public DicomTlsOptions? Tls { get; init; }
    /// <summary>How long a stopping node lets open associations finish before it aborts them.</summary>
    public required TimeSpan ShutdownGrace { get; init; }
    public required IPAddress HttpBind { get; init; }
    public required int HttpPort { get; init; }

    /// <summary>Bearer-token authentication for HTTP (<c>akka-vna.http.auth</c>); null when off (everything open).</summary>
    public HttpAuthOptions? HttpAuth { get; init; }

    /// <summary>The HTTPS listener (<c>akka-vna.http.https</c>); null when off.</summary>
    public HttpsOptions? Https { get; init; }

    /// <summary>The origins browsers may call from (<c>akka-vna.http.cors</c>); null: no CORS headers.</summary>
    public CorsOptions? Cors { get; init; }

    /// <summary>Encryption at rest (<c>akka-vna.encryption</c>): the master key and the previous ones; null when off.</summary>
    public EncryptionOptions? Encryption { get; init; }

    /// <summary>The audit trail (<c>akka-vna.audit</c>); null when off.</summary>
    public AuditOptions? Audit { get; init; }
    public required IngestSettings Ingest { get; init; }
    public required TimeSpan SweepInterval { get; init; }
    /// <summary>How often the index is synced to disk with a projection checkpoint (it commits without waiting for the disk).</summary>
    public required TimeSpan IndexSyncInterval { get; init; }
    public required TimeSpan StagedGrace { get; init; }
    public required StudySettings Studies { get; init; }
    public required TimeSpan StabilityPoll { get; init; }

    /// <summary>The compression children's settings (<c>akka-vna.compression</c>).</summary>
    public required CompressionSettings Compression { get; init; }

    /// <summary>How often the compression watch looks for studies whose compression pass is due and unfinished.</summary>
    public required TimeSpan CompressionPoll { get; init; }

    /// <summary>The lifecycle's rules and settings (<c>akka-vna.lifecycle</c>).</summary>
    public LifecycleSettings Lifecycle { get; init; } = LifecycleSettings.Disabled;
    public required int Shards { get; init; }
    public required TimeSpan PassivateAfter { get; init; }
    public required string ClusterHostname { get; init; }
    public required int ClusterPort { get; init; }
    public required IReadOnlyList<string> SeedNodes { get; init; }
    public required int MaxQueryMatches { get; init; }
    public required bool CaseInsensitiveNames { get; init; }
    /// <summary>C-MOVE destinations by AE title.</summary>
    public required IReadOnlyDictionary<string, Dicom.Network.MoveDestination> MoveDestinations { get; init; }
    public required string SpoolFolder { get; init; }
    public required long MaxStowBytes { get; init; }
    /// <summary>The ingest trace file (under the data folder), or null when recording is off.</summary>
    public string? TraceFile { get; init; }
    public required int MaxStowParts { get; init; }

    /// <summary>
    /// The <c>akka</c> section of the user's configuration file, if any: Akka.NET settings (logging, remoting, the
    /// journal plugin's tuning) that win over the ones the node derives from its own settings.
    /// </summary>
    public Config AkkaOverrides { get; init; } = Config.Empty;

    /// <summary>The built-in defaults (the text of config/akka-vna.conf).</summary>
    public static string DefaultConfigText()
    {
        using var stream = typeof(ArchiveOptions).Assembly.GetManifestResourceStream("akka-vna.conf")
            ?? throw new InvalidOperationException("the built-in akka-vna.conf is missing from the assembly");
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    }

    /// <summary>
    /// Loads the settings: <paramref name="overrides"/> (HOCON from flags) over <paramref name="configFile"/> over the
    /// defaults. Throws <see cref="ArchiveConfigException"/> naming the setting that is wrong.
    /// </summary>
    public static ArchiveOptions Load(string? configFile, string? overrides = null)
    {
        Config config = ConfigurationFactory.ParseString(DefaultConfigText());
        Config akka = Config.Empty;
        if (configFile is not null)
        {
            if (!File.Exists(configFile)) throw new ArchiveConfigException($"the configuration file {configFile} does not exist");
            try
            {
                var user = ConfigurationFactory.ParseString(File.ReadAllText(configFile));
                if (user.HasPath("akka")) akka = user; // its akka-vna section, if any, is ignored by the actor system
                config = user.WithFallback(config);
            }
            catch (Exception e) when (e is not ArchiveConfigException)
            {
                throw new ArchiveConfigException($"{configFile}: {e.Message}");
            }
        }
        var environment = string.Join('\n', EnvironmentVariables
            .Where(e => !string.IsNullOrEmpty(Environment.GetEnvironmentVariable(e.Key)))
            .Select(e => $"akka-vna.{e.Value} = {Quote(Environment.GetEnvironmentVariable(e.Key)!)}"));
        if (Environment.GetEnvironmentVariable("AKKAVNA_SEED_NODES") is { Length: > 0 } seeds)
            environment += $"\nakka-vna.cluster.seed-nodes = [{string.Join(", ", seeds.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(Quote))}]";
        if (environment.Length > 0) config = ConfigurationFactory.ParseString(environment).WithFallback(config);
        if (!string.IsNullOrWhiteSpace(overrides)) config = ConfigurationFactory.ParseString(overrides).WithFallback(config);
        var c = config.GetConfig("akka-vna");
        try
        {
            return FromConfig(c) with { AkkaOverrides = akka };
        }
        catch (Exception e) when (e is not ArchiveConfigException)
        {
            throw new ArchiveConfigException($"invalid configuration: {e.Message}");
        }
    }

    /// <summary>Environment variables that set a setting (over files, under flags), as documented in config/akka-vna.conf.</summary>
    public static readonly IReadOnlyDictionary<string, string> EnvironmentVariables = new Dictionary<string, string>
    {
        ["AKKAVNA_DATA"] = "data",
        ["AKKAVNA_NODE_NAME"] = "node-name",
        ["AKKAVNA_INDEX_PROVIDER"] = "index.provider",
        ["AKKAVNA_JOURNAL_PROVIDER"] = "journal.provider",
        ["AKKAVNA_BLOBS_PROVIDER"] = "blobs.provider",
        ["AKKAVNA_BLOBS"] = "blobs.path",
        ["AKKAVNA_POSTGRES"] = "postgresql.connection-string",
        ["AKKAVNA_S3_ENDPOINT"] = "blobs.s3.endpoint",
        ["AKKAVNA_AE_TITLE"] = "dicom.ae-title",
        ["AKKAVNA_DICOM_PORT"] = "dicom.port",
        ["AKKAVNA_DICOM_BIND"] = "dicom.bind",
        ["AKKAVNA_HTTP_PORT"] = "http.port",
        ["AKKAVNA_HTTP_BIND"] = "http.bind",
        ["AKKAVNA_QUIET_PERIOD"] = "studies.quiet-period",
        ["AKKAVNA_COMPRESSION"] = "compression.enabled",
        ["AKKAVNA_LIFECYCLE"] = "lifecycle.enabled",
        ["AKKAVNA_CLUSTER_HOSTNAME"] = "cluster.hostname",
        ["AKKAVNA_CLUSTER_PORT"] = "cluster.port",
    };

    /// <summary>
    /// A seed node as an Akka address: <c>HOST:PORT</c> (what an operator types) or a whole address
    /// (<c>akka.tcp://akka-vna@HOST:PORT</c>).
    /// </summary>
    public static string SeedNode(string seed)
    {
        seed = seed.Trim();
        if (seed.Contains("://", StringComparison.Ordinal))
        {
            try
            {
                return Akka.Actor.Address.Parse(seed).ToString();
            }
            catch (Exception e) when (e is UriFormatException or ArgumentException or FormatException)
            {
                throw new ArchiveConfigException($"akka-vna.cluster.seed-nodes: '{seed}' is not an address ({e.Message})");
            }
        }
        int colon = seed.LastIndexOf(':');
        if (colon <= 0 || !int.TryParse(seed.AsSpan(colon + 1), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int port)
            || port is < 1 or > 65535 || seed.AsSpan(0, colon).ContainsAny("/@ "))
            throw new ArchiveConfigException($"akka-vna.cluster.seed-nodes: '{seed}' is not HOST:PORT (e.g. 10.0.0.1:4053)");
        return $"akka.tcp://akka-vna@{seed[..colon]}:{port}";
    }

    /// <summary>A HOCON string literal.</summary>
    public static string Quote(string s) => "\"" + s.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal) + "\"";

    private static ArchiveOptions FromConfig(Config c)
    {
        string Str(string path) => c.GetString(path) is { Length: > 0 } s ? s : throw new ArchiveConfigException($"akka-vna.{path} must be set");
        int Int(string path, int min, int max) => c.GetInt(path) is var v && v >= min && v <= max ? v
            : throw new ArchiveConfigException($"akka-vna.{path} must be between {min} and {max}, not {v}");
        TimeSpan Time(string path) => c.GetTimeSpan(path, allowInfinite: false) is var t && t > TimeSpan.Zero ? t
            : throw new ArchiveConfigException($"akka-vna.{path} must be a positive duration");
        IPAddress Address(string path) => IPAddress.TryParse(Str(path), out var a) ? a : throw new ArchiveConfigException($"akka-vna.{path}: '{Str(path)}' is not an IP address");
        string AE(string title, string path) => Dicom.Network.Pdus.PduCodec.IsValidAETitle(title) ? title
            : throw new ArchiveConfigException($"akka-vna.{path}: '{title}' is not an AE title (1-16 characters, no backslash or control characters)");

        var policy = Str("ingest.conflict-policy") switch
        {
            "reject" => ConflictPolicy.Reject,
            "overwrite" => ConflictPolicy.Overwrite,
            var other => throw new ArchiveConfigException($"akka-vna.ingest.conflict-policy must be reject or overwrite, not '{other}'"),
        };
        var destinations = new Dictionary<string, Dicom.Network.MoveDestination>(StringComparer.Ordinal);
        if (c.GetConfig("retrieve.destinations") is { IsEmpty: false } d)
        {
            foreach (var ae in d.Root.GetObject().Items.Keys)
            {
                string host = d.GetString($"\"{ae}\".host") is { Length: > 0 } h ? h
                    : throw new ArchiveConfigException($"akka-vna.retrieve.destinations.{ae}.host must be set");
                int port = d.GetInt($"\"{ae}\".port");
                if (port is < 1 or > 65535) throw new ArchiveConfigException($"akka-vna.retrieve.destinations.{ae}.port must be between 1 and 65535, not {port}");
                destinations[AE(ae, "retrieve.destinations")] = new Dicom.Network.MoveDestination(ae, host, port) { Tls = d.GetBoolean($"\"{ae}\".tls", false) };
            }
        }
        string data = Path.GetFullPath(Str("data"));
        string Provider(string section, IReadOnlyList<string> known, string? fallback = null) =>
            (c.GetString($"{section}.provider") is { Length: > 0 } p ? p : fallback ?? Str($"{section}.provider")) is var v && known.Contains(v) ? v
                : throw new ArchiveConfigException(Adapters.Unknown(section, v, known));
        // --blobs s3://BUCKET[/PREFIX] (or blobs.path so) selects the S3 store.
        string blobsPath = c.GetString("blobs.path") ?? "";
        bool s3Path = blobsPath.StartsWith("s3://", StringComparison.Ordinal);
        string blobProvider = s3Path ? "s3" : Provider("blobs", Adapters.BlobProviders);
        S3Settings? s3 = blobProvider == "s3"
            ? S3Settings.From(c.GetConfig("blobs.s3") ?? Akka.Configuration.Config.Empty, "akka-vna.blobs.s3", s3Path ? blobsPath : null, data, Path.Combine(data, "s3-cache"))
            : null;
        // Further stores a blob reference may name (tiers: `hot` is the primary store, `cold` another).
        var stores = new List<BlobStoreSettings>();
        if (c.GetConfig("blobs.stores") is { IsEmpty: false } extra)
        {
            foreach (var storeName in extra.Root.GetObject().Items.Keys)
            {
                string where = $"akka-vna.blobs.stores.{storeName}";
                if (storeName == BlobRef.PrimaryStore || storeName.Length > 32 || !storeName.All(ch => char.IsAsciiLetterLower(ch) || char.IsAsciiDigit(ch) || ch == '-'))
                    throw new ArchiveConfigException($"{where}: a store's name is lower-case letters, digits and dashes, and not '{BlobRef.PrimaryStore}' (the primary store's)");
                var section = extra.GetConfig(storeName);
                string path = section.GetString("path") ?? "";
                bool isS3 = path.StartsWith("s3://", StringComparison.Ordinal);
                string provider = isS3 ? "s3" : section.GetString("provider") is { Length: > 0 } p ? p : "filesystem";
                if (!Adapters.BlobProviders.Contains(provider)) throw new ArchiveConfigException($"{where}.provider is '{provider}'; this build has: {string.Join(", ", Adapters.BlobProviders)}");
                if (provider == "filesystem" && path.Length == 0) throw new ArchiveConfigException($"{where}.path must name the store's folder");
                stores.Add(new BlobStoreSettings(storeName, provider, provider == "filesystem" ? Path.GetFullPath(Path.Combine(data, path)) : "",
                    provider == "s3" ? S3Settings.From(section.GetConfig("s3") ?? Akka.Configuration.Config.Empty, where + ".s3", isS3 ? path : null, data,
                        Path.Combine(data, "s3-cache-" + storeName)) : null));
            }
        }
        string index = Provider("index", Adapters.IndexProviders);
        string journal = Provider("journal", Adapters.JournalProviders, fallback: index);
        string? postgres = c.GetString("postgresql.connection-string") is { Length: > 0 } pg ? pg : null;
        if (postgres is null && (index == "postgresql" || journal == "postgresql"))
            throw new ArchiveConfigException("akka-vna.postgresql.connection-string must be set (--postgres, or AKKAVNA_POSTGRES) when the index or journal is postgresql");
        var seedNodes = (c.GetStringList("cluster.seed-nodes") ?? []).Select(SeedNode).ToList();
        if (seedNodes.Count > 0 && (index == "sqlite" || journal == "sqlite"))
            throw new ArchiveConfigException("a node that joins a cluster (akka-vna.cluster.seed-nodes) needs the shared index and journal: "
                + "SQLite cannot be shared by several nodes; use --index postgresql --postgres CONNECTION_STRING");
        string schema = c.GetString("postgresql.schema") is { Length: > 0 } sc ? sc : "akkavna";
        if (!(schema.Length <= 63 && schema.All(ch => char.IsAsciiLetterLower(ch) || char.IsAsciiDigit(ch) || ch == '_') && !char.IsAsciiDigit(schema[0])))
            throw new ArchiveConfigException($"akka-vna.postgresql.schema: '{schema}' is not a schema name (lower-case letters, digits, underscores)");
        string downing = c.GetString("cluster.split-brain-resolver.active-strategy") is { Length: > 0 } ds ? ds : "keep-majority";
        if (downing is not ("keep-majority" or "keep-oldest" or "down-all"))
            throw new ArchiveConfigException($"akka-vna.cluster.split-brain-resolver.active-strategy must be keep-majority, keep-oldest or down-all, not '{downing}'");
        var dicomTls = DicomTlsOptions.Read(c, data);
        if (dicomTls is null && destinations.Values.FirstOrDefault(x => x.Tls) is { } tlsDestination)
            throw new ArchiveConfigException($"akka-vna.retrieve.destinations.{tlsDestination.AETitle}.tls = on needs akka-vna.dicom.tls (its certificate and key identify this AE, its ca the destinations it trusts)");
        return new ArchiveOptions
        {
            DataFolder = data,
            IndexProvider = index,
            BlobProvider = blobProvider,
            BlobsFolder = blobsPath.Length > 0 && !s3Path ? Path.GetFullPath(Path.Combine(data, blobsPath)) : Path.Combine(data, "blobs"),
            S3 = s3,
            BlobStores = stores,
            JournalProvider = journal,
            PostgresConnectionString = postgres,
            PostgresSchema = schema,
            DowningStrategy = downing,
            DowningStableAfter = Time("cluster.split-brain-resolver.stable-after"),
            // The default names the machine and the data folder: stable across restarts, distinct for two nodes on one machine.
            NodeName = c.GetString("node-name") is { Length: > 0 } name ? name
                : $"{Environment.MachineName}:{Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(data)))[..8]}",
            MaxQueryMatches = Int("query.max-matches", 1, 10_000_000),
            CaseInsensitiveNames = c.GetBoolean("query.case-insensitive-names"),
            MoveDestinations = destinations,
            SpoolFolder = Path.Combine(data, Str("retrieve.spool")),
            MaxStowBytes = c.GetByteSize("http.max-stow-bytes") is long b and >= 1024 ? b : throw new ArchiveConfigException("akka-vna.http.max-stow-bytes must be at least 1KiB"),
            MaxStowParts = Int("http.max-stow-parts", 1, 1_000_000),
            TraceFile = c.GetString("ingest.trace") is { Length: > 0 } trace ? Path.Combine(data, trace) : null,
            AETitle = AE(Str("dicom.ae-title"), "dicom.ae-title"),
            DicomBind = Address("dicom.bind"),
            DicomPort = Int("dicom.port", 0, 65535),
            AllowedCallingAETitles = ((IEnumerable<string>?)c.GetStringList("dicom.allowed-calling-ae-titles") ?? []).Select(t => AE(t, "dicom.allowed-calling-ae-titles")).ToHashSet(StringComparer.Ordinal),
            Peers = PeersConfig.Read(c, destinations),
            MaxAssociations = Int("dicom.max-associations", 1, 100_000),
            MaxPdu = (uint)Int("dicom.max-pdu", 4096, 64 * 1024 * 1024),
            MaxAsyncOperations = Int("dicom.max-async-operations", 1, 1024),
            ArtimTimeout = Time("dicom.artim-timeout"),
            DimseTimeout = Time("dicom.dimse-timeout"),
            IdleTimeout = Time("dicom.idle-timeout"),
            Tls = dicomTls,
            ShutdownGrace = Time("dicom.shutdown-grace"),
            HttpBind = Address("http.bind"),
            HttpPort = Int("http.port", 0, 65535),
            HttpAuth = HttpAuthOptions.Read(c, data),
            Https = HttpsOptions.Read(c, data, dicomTls),
            Cors = CorsOptions.Read(c),
            Audit = AuditOptions.Read(c, data),
            Encryption = EncryptionOptions.Read(c, data),
            Ingest = new IngestSettings(c.GetBoolean("ingest.flush-blobs"), Time("ingest.commit-timeout")),
            SweepInterval = Time("ingest.sweep-interval"),
            IndexSyncInterval = Time("ingest.index-sync-interval"),
            StagedGrace = Time("ingest.staged-grace"),
            Studies = new StudySettings(Time("studies.quiet-period"), policy, Int("studies.snapshot-every", 10, 1_000_000), Int("studies.max-batch", 1, 100_000)),
            StabilityPoll = Time("studies.stability-poll"),
            Compression = new CompressionSettings(c.GetBoolean("compression.enabled"), c.GetTimeSpan("compression.delay", allowInfinite: false) is var delay && delay >= TimeSpan.Zero ? delay
                    : throw new ArchiveConfigException("akka-vna.compression.delay must not be negative"),
                CompressionConfig.Read(c), Int("compression.workers", 1, 64), Time("compression.retry-min"), Time("compression.retry-max"))
            {
                KeepOriginal = c.GetBoolean("compression.keep-original"),
            },
            CompressionPoll = Time("compression.poll"),
            Lifecycle = LifecycleConfig.Read(c, LifecycleConfig.StoreNames(stores)),
            Shards = Int("studies.shards", 1, 100_000),
            PassivateAfter = Time("studies.passivate-after"),
            ClusterHostname = Str("cluster.hostname"),
            ClusterPort = Int("cluster.port", 0, 65535),
            SeedNodes = seedNodes,
        };
    }
}

public sealed class ArchiveConfigException(string message) : Exception(message);

/// <summary>Lossless syntaxes a compression rule may name (what the codecs encode), and "none" (leave the instance).</summary>
internal static class CompressionConfig
{
    /// <summary>A rule's <c>match</c> section (compression's and the lifecycle's): each attribute, one of <paramref name="allowed"/>, with its values.</summary>
    public static Dictionary<string, IReadOnlyList<string>> Match(Config rule, string where, IReadOnlySet<string> allowed)
    {
        var match = new Dictionary<string, IReadOnlyList<string>>(StringComparer.Ordinal);
        if (!rule.HasPath("match")) return match;
        foreach (var (key, v) in rule.GetConfig("match").AsEnumerable())
        {
            if (!allowed.Contains(key))
                throw new ArchiveConfigException($"{where}.match.{key}: not an attribute rules match on ({string.Join(", ", allowed.Order(StringComparer.Ordinal))})");
            match[key] = v.IsArray() ? [.. v.GetStringList()] : [v.GetString()];
        }
        return match;
    }

    /// <summary>The objects of a HOCON list (<c>akka-vna.PATH = [ {...} {...} ]</c>), each with where it is, for messages (<c>akka-vna.PATH[2]</c>).</summary>
    public static IEnumerable<(string Where, Config Item)> Objects(Config c, string path)
    {
        int n = 0;
        foreach (var value in c.GetValue(path)?.GetArray() ?? [])
            yield return ($"akka-vna.{path}[{++n}]", new Config(new Akka.Configuration.Hocon.HoconRoot(value)));
    }

    public static CompressionRules Read(Config c)
    {
        var rules = new List<CompressionRule>();
        foreach (var (where, rule) in Objects(c, "compression.rules"))
        {
            string syntax = rule.GetString("transfer-syntax") ?? throw new ArchiveConfigException($"{where}.transfer-syntax must be set (a lossless transfer syntax UID, or none)");
            if (syntax != "none" && !AkkaVna.Codecs.DicomTranscoder.CanEncode(syntax))
                throw new ArchiveConfigException($"{where}.transfer-syntax {syntax} is not a lossless syntax this build compresses to (1.2.840.10008.1.2.4.80 JPEG-LS, 1.2.840.10008.1.2.4.90 JPEG 2000, 1.2.840.10008.1.2.4.201 HTJ2K, 1.2.840.10008.1.2.4.70 JPEG Lossless SV1, 1.2.840.10008.1.2.5 RLE) or none");
            var match = Match(rule, where, CompressionRule.Attributes);
            long min = rule.HasPath("min-size") ? rule.GetByteSize("min-size") ?? 0 : 0, max = rule.HasPath("max-size") ? rule.GetByteSize("max-size") ?? long.MaxValue : long.MaxValue;
            rules.Add(new CompressionRule(match, syntax == "none" ? null : syntax, min, max));
        }
        return new CompressionRules(rules);
    }
}

/// <summary>One more blob store a blob reference may name (<c>akka-vna.blobs.stores.NAME</c>): a tier beside the primary store.</summary>
public sealed record BlobStoreSettings(string Name, string Provider, string Folder, S3Settings? S3);

/// <summary>The S3 blob store's settings (<c>akka-vna.blobs.s3</c>, or a further store's <c>s3</c>).</summary>
public sealed record S3Settings(string Bucket, string Prefix, string? Endpoint, string Region, bool ForcePathStyle, string? AccessKey, string? SecretKey,
    long MultipartThreshold, long PartSize, TimeSpan RequestTimeout, int MaxRetries)
{
    public AkkaVna.Blobs.S3.S3Acknowledge Acknowledge { get; init; } = AkkaVna.Blobs.S3.S3Acknowledge.AfterUpload;
    /// <summary>The node's receive cache folder.</summary>
    public required string CacheFolder { get; init; }
    /// <summary>The cache's bound; 0: no cache (after-upload only).</summary>
    public long CacheMaxBytes { get; init; }
    public int UploadConcurrency { get; init; } = 4;

    /// <summary>
    /// Reads an <c>s3</c> section (<paramref name="where"/> names it in errors); <paramref name="url"/>
    /// (<c>s3://BUCKET[/PREFIX]</c>) names the bucket and prefix when given; <paramref name="defaultCache"/> is the cache
    /// folder when none is set (relative folders are in <paramref name="data"/>).
    /// </summary>
    internal static S3Settings From(Akka.Configuration.Config c, string where, string? url, string data, string defaultCache)
    {
        string bucket = c.GetString("bucket") ?? "", prefix = c.GetString("prefix") ?? "";
        if (url is not null)
        {
            string rest = url["s3://".Length..];
            int slash = rest.IndexOf('/');
            bucket = slash < 0 ? rest : rest[..slash];
            prefix = slash < 0 ? "" : rest[(slash + 1)..];
        }
        // S3's bucket naming rules (3-63 lower-case letters, digits, dots and dashes, starting and ending with a letter or digit).
        if (bucket.Length is < 3 or > 63 || !bucket.All(ch => char.IsAsciiLetterLower(ch) || char.IsAsciiDigit(ch) || ch is '-' or '.')
            || !char.IsAsciiLetterOrDigit(bucket[0]) || !char.IsAsciiLetterOrDigit(bucket[^1]))
            throw new ArchiveConfigException($"{where}.bucket: '{bucket}' is not a bucket name (3-63 lower-case letters, digits, dots and dashes)");
        prefix = prefix.Trim('/');
        if (prefix.Contains("..", StringComparison.Ordinal) || prefix.Any(char.IsControl))
            throw new ArchiveConfigException($"{where}.prefix: '{prefix}' is not a key prefix");
        if (prefix.Length > 0) prefix += "/";
        string? endpoint = c.GetString("endpoint") is { Length: > 0 } e ? e : null;
        if (endpoint is not null && !(Uri.TryCreate(endpoint, UriKind.Absolute, out var uri) && uri.Scheme is "http" or "https"))
            throw new ArchiveConfigException($"{where}.endpoint: '{endpoint}' is not an http or https URL");
        long part = c.GetByteSize("part-size") ?? 16L * 1024 * 1024;
        if (part < 5L * 1024 * 1024) throw new ArchiveConfigException($"{where}.part-size must be at least 5MiB (S3's smallest part)");
        long threshold = c.GetByteSize("multipart-threshold") ?? 64L * 1024 * 1024;
        if (threshold < part) throw new ArchiveConfigException($"{where}.multipart-threshold must be at least the part size");
        var timeout = c.GetTimeSpan("request-timeout", TimeSpan.FromSeconds(60), allowInfinite: false);
        if (timeout <= TimeSpan.Zero) throw new ArchiveConfigException($"{where}.request-timeout must be a positive duration");
        int retries = c.GetInt("max-retries", 4);
        if (retries is < 0 or > 20) throw new ArchiveConfigException($"{where}.max-retries must be between 0 and 20");
        var acknowledge = (c.GetString("acknowledge") is { Length: > 0 } a ? a : "after-upload") switch
        {
            "after-upload" => AkkaVna.Blobs.S3.S3Acknowledge.AfterUpload,
            "after-local-commit" => AkkaVna.Blobs.S3.S3Acknowledge.AfterLocalCommit,
            var other => throw new ArchiveConfigException($"{where}.acknowledge must be after-upload or after-local-commit, not '{other}'"),
        };
        long cacheMax = c.GetByteSize("cache.max-size") ?? 10L * 1024 * 1024 * 1024;
        if (cacheMax < 0) throw new ArchiveConfigException($"{where}.cache.max-size must not be negative");
        if (cacheMax == 0 && acknowledge == AkkaVna.Blobs.S3.S3Acknowledge.AfterLocalCommit)
            throw new ArchiveConfigException($"{where}.acknowledge = after-local-commit keeps what is not yet in S3 in the receive cache: cache.max-size must be more than 0");
        int concurrency = c.GetInt("upload-concurrency", 4);
        if (concurrency is < 1 or > 64) throw new ArchiveConfigException($"{where}.upload-concurrency must be between 1 and 64");
        string cache = c.GetString("cache.folder") is { Length: > 0 } f ? Path.GetFullPath(Path.Combine(data, f)) : defaultCache;
        return new S3Settings(bucket, prefix, endpoint, c.GetString("region") is { Length: > 0 } r ? r : "us-east-1",
            c.GetBoolean("force-path-style", true), c.GetString("access-key") is { Length: > 0 } ak ? ak : null,
            c.GetString("secret-key") is { Length: > 0 } sk ? sk : null, threshold, part, timeout, retries)
        {
            Acknowledge = acknowledge, CacheFolder = cache, CacheMaxBytes = cacheMax, UploadConcurrency = concurrency,
        };
    }
}

/// <summary>
/// <c>akka-vna.dicom.tls</c>: the port of the TLS listener (2762 by convention), this AE's certificate and key (PEM),
/// the authorities a client's certificate must chain to (PEM), whether clients must present one, the handshake's limit.
/// </summary>
public sealed record DicomTlsOptions(int Port, string Certificate, string Key, string? Authorities, bool RequireClientCertificate, TimeSpan HandshakeTimeout)
{
    /// <summary>Only the TLS listener: no plain DICOM port at all (<c>akka-vna.dicom.tls.only</c>).</summary>
    public bool Only { get; init; }

    internal static DicomTlsOptions? Read(Config c, string data)
    {
        string certificate = c.GetString("dicom.tls.certificate") ?? "";
        if (certificate.Length == 0) return null;
        string Path_(string key) => System.IO.Path.GetFullPath(System.IO.Path.Combine(data, c.GetString(key) ?? ""));
        string key = c.GetString("dicom.tls.key") is { Length: > 0 } ? Path_("dicom.tls.key")
            : throw new ArchiveConfigException("akka-vna.dicom.tls.key must name the private key (PEM) of akka-vna.dicom.tls.certificate");
        string? ca = c.GetString("dicom.tls.ca") is { Length: > 0 } ? Path_("dicom.tls.ca") : null;
        bool require = c.GetBoolean("dicom.tls.require-client-certificate", false);
        if (require && ca is null)
            throw new ArchiveConfigException("akka-vna.dicom.tls.require-client-certificate = on needs akka-vna.dicom.tls.ca (the authorities client certificates must chain to)");
        int port = c.GetInt("dicom.tls.port", 2762);
        if (port is < 0 or > 65535) throw new ArchiveConfigException($"akka-vna.dicom.tls.port must be between 0 and 65535, not {port}");
        var timeout = c.GetTimeSpan("dicom.tls.handshake-timeout", TimeSpan.FromSeconds(10), allowInfinite: false);
        if (timeout <= TimeSpan.Zero) throw new ArchiveConfigException("akka-vna.dicom.tls.handshake-timeout must be a positive duration");
        foreach (var file in new[] { Path_("dicom.tls.certificate"), key }.Concat(ca is null ? [] : [ca]))
            if (!File.Exists(file)) throw new ArchiveConfigException($"akka-vna.dicom.tls: {file} does not exist");
        return new DicomTlsOptions(port, Path_("dicom.tls.certificate"), key, ca, require, timeout) { Only = c.GetBoolean("dicom.tls.only", false) };
    }

    /// <summary>The certificates loaded (a bad file is a configuration error, named).</summary>
    public Dicom.Network.Transport.TlsSettings Load()
    {
        try
        {
            return Dicom.Network.Transport.TlsSettings.FromPem(Certificate, Key, Authorities, RequireClientCertificate) with { HandshakeTimeout = HandshakeTimeout };
        }
        catch (Exception e) when (e is System.Security.Cryptography.CryptographicException or ArgumentException or IOException)
        {
            throw new ArchiveConfigException($"akka-vna.dicom.tls: cannot load {Certificate} with {Key}{(Authorities is null ? "" : " and " + Authorities)}: {e.Message}");
        }
    }
}

/// <summary>
/// <c>akka-vna.encryption</c>: blobs encrypted at rest (AES-256-GCM, a data key per study wrapped by the master key). The
/// master key comes from a file or an environment variable (32 bytes as 64 hex digits or base64); previous master keys
/// still unwrap the study keys they wrapped, which are wrapped again with the current one as they are used.
/// </summary>
public sealed record EncryptionOptions(AkkaVna.Core.Blobs.MasterKey Current, IReadOnlyList<AkkaVna.Core.Blobs.MasterKey> Previous)
{
    internal static EncryptionOptions? Read(Config c, string data)
    {
        if (!c.GetBoolean("encryption.enabled", false)) return null;
        const string at = "akka-vna.encryption";
        AkkaVna.Core.Blobs.MasterKey Load(string file, string where)
        {
            string path = System.IO.Path.GetFullPath(System.IO.Path.Combine(data, file));
            if (!File.Exists(path)) throw new ArchiveConfigException($"{where}: {path} does not exist");
            try
            {
                return AkkaVna.Core.Blobs.MasterKey.Parse(File.ReadAllText(path), path);
            }
            catch (ArgumentException e)
            {
                throw new ArchiveConfigException($"{where}: {e.Message}");
            }
        }
        AkkaVna.Core.Blobs.MasterKey current;
        string env = c.GetString("encryption.master-key-env") is { Length: > 0 } e ? e : "AKKAVNA_MASTER_KEY";
        if (c.GetString("encryption.master-key-file") is { Length: > 0 } file) current = Load(file, at + ".master-key-file");
        else if (Environment.GetEnvironmentVariable(env) is { Length: > 0 } fromEnv)
        {
            try
            {
                current = AkkaVna.Core.Blobs.MasterKey.Parse(fromEnv, "the environment variable " + env);
            }
            catch (ArgumentException x)
            {
                throw new ArchiveConfigException($"{at}: {x.Message}");
            }
        }
        else throw new ArchiveConfigException($"{at}.enabled = on needs a master key: {at}.master-key-file, or the environment variable {env}");
        var previous = (c.GetStringList("encryption.previous-master-keys") ?? []).Where(p => p.Length > 0).Select(p => Load(p, at + ".previous-master-keys")).ToList();
        return new EncryptionOptions(current, previous);
    }
}
