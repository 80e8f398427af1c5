using System.Net;
using System.Security.Cryptography;
using Akka.Actor;
using Akka.Actor.Setup;
using Akka.Cluster;
using Akka.Cluster.Sharding;
using Akka.Cluster.Tools.Singleton;
using Akka.Configuration;
using AkkaVna.Dicom.Network;
using AkkaVna.Dicom.Network.Trace;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Prometheus;
using AkkaVna.Actors.Logging;
using AkkaVna.Actors.Compression;
using AkkaVna.Actors.Studies;
using AkkaVna.Core.Ingest;
using AkkaVna.Core.Blobs;
using AkkaVna.Core.Lifecycle;
using AkkaVna.Core.Model;
using AkkaVna.Core.Ports;
using AkkaVna.Core.Query;
using AkkaVna.Core.Studies;
using AkkaVna.DicomWeb;
using AkkaVna.Dimse.QueryRetrieve;
using AkkaVna.Dimse.Store;

namespace AkkaVna.Host;

/// <summary>
/// One archive node: the actor system (a cluster member with the study shard region and the stability watch), the
/// blob store and index, the DICOM server whose C-STOREs feed the study actors, and the HTTP endpoint for health and
/// metrics. <see cref="StartAsync"/> brings it up in dependency order and <see cref="StopAsync"/> takes it down in
/// reverse, finishing what is in flight.
/// </summary>
public sealed class ArchiveNode : IAsyncDisposable
{
    public ArchiveOptions Options { get; }
    public ActorSystem System { get; }
    /// <summary>The study actors (the shard region), behind the gateway the use cases use.</summary>
    public IStudyGateway Studies { get; }
    public ArchiveMetrics Metrics { get; }
    public IArchiveIndex Index { get; }
    public IBlobStore Blobs { get; }
    public IPEndPoint DicomEndPoint => (IPEndPoint)_dicom.LocalEndPoint!;
    /// <summary>The plain HTTP port (0 when <c>http.https.only</c> turned it off).</summary>
    public int HttpPort { get; }
    /// <summary>The HTTPS port (null without <c>akka-vna.http.https</c>).</summary>
    public int? HttpsPort { get; }
    /// <summary>This node's address in the cluster (what other nodes give as a seed node).</summary>
    public string ClusterAddress => Cluster.Get(System).SelfAddress.ToString();
    /// <summary>Completes when the actor system ends without <see cref="StopAsync"/> (the cluster downed this node).</summary>
    public Task Downed { get; }

    private readonly DicomServer _dicom;
    private DicomServer? _dicomTls;

    /// <summary>The DICOM TLS listener's address (null without <c>akka-vna.dicom.tls</c>).</summary>
    public IPEndPoint? DicomTlsEndPoint => (IPEndPoint?)_dicomTls?.LocalEndPoint ?? (Options.Tls is { Only: true } ? DicomEndPoint : null);
    private readonly WebApplication _http;
    private readonly ILogger _log;
    private readonly CancellationTokenSource _stopping = new();
    private readonly Task _sweeper, _indexSync;
    private readonly ProjectionTracker _tracker;
    private readonly ArchiveMetrics _metrics;
    private readonly ILoggerFactory _loggerFactory;
    private int _stopped;
    private StoreTraceWriter? _trace;
    private AuditTrail? _audit;
    private AkkaVna.Core.Audit.AuditParticipant? _archive;

    private ArchiveNode(ArchiveOptions options, ActorSystem system, IStudyGateway studies, IArchiveIndex index, IBlobStore blobs, DicomServer dicom,
        WebApplication http, ILogger log, ProjectionTracker tracker, ArchiveMetrics metrics, ILoggerFactory loggerFactory)
    {
        _tracker = tracker;
        Metrics = _metrics = metrics;
        _loggerFactory = loggerFactory;
        Options = options;
        System = system;
        Studies = studies;
        Index = index;
        Blobs = blobs;
        _dicom = dicom;
        _http = http;
        _log = log;
        var urls = http.Urls.Select(u => new Uri(u)).ToList();
        HttpPort = urls.FirstOrDefault(u => u.Scheme == "http")?.Port ?? 0;
        HttpsPort = urls.FirstOrDefault(u => u.Scheme == "https")?.Port;
        Downed = WhenDownedAsync(system);
        _sweeper = Task.Run(SweepLoopAsync);
        _indexSync = Task.Run(IndexSyncLoopAsync);
    }

    /// <summary>Completes when the actor system ends while the node is not stopping; never when <see cref="StopAsync"/> ended it.</summary>
    private async Task WhenDownedAsync(ActorSystem system)
    {
        await system.WhenTerminated.ConfigureAwait(false);
        if (Volatile.Read(ref _stopped) != 0) await Task.Delay(Timeout.Infinite).ConfigureAwait(false);
    }

    public static async Task<ArchiveNode> StartAsync(ArchiveOptions options, Action<ILoggingBuilder> logging, CancellationToken cancellationToken)
    {
        var loggerFactory = LoggerFactory.Create(logging);
        var log = loggerFactory.CreateLogger("akka-vna");
        Directory.CreateDirectory(options.DataFolder);
        var time = options.Time;
        // The adapters the configuration names (the one place they are chosen).
        var index = Adapters.CreateIndex(options, loggerFactory);
        var blobs = Adapters.CreateBlobStore(options, serving: true, loggerFactory, index);
        // With encryption at rest, temporary copies (STOW-RS parts, converted copies) are encrypted too, under a key only this process holds.
        var spool = options.Encryption is null ? AkkaVna.Dicom.Buffers.Spool.Plain : AkkaVna.Dicom.Buffers.Spool.Encrypted();
        if (options.Encryption is { } encryption)
            log.LogInformation("encryption at rest: ON (AES-256-GCM, a data key per study; master key {MasterKey}, {Previous} previous)", encryption.Current.Id, encryption.Previous.Count);
        var journal = Adapters.CreateJournal(options);
        AuditTrail? startingAudit = null;
        await index.InitializeAsync(cancellationToken);
        await journal.PrepareAsync(cancellationToken);
        log.LogInformation("index: {Index}; journal: {Journal}; blobs: {Blobs} ({Store})", options.IndexProvider, journal.Description, blobs.Description, blobs.Name);
        if (await index.GetProjectionCheckpointAsync(cancellationToken) is not { } checkpoint)
        {
            // An index written before projection checkpoints existed committed every transaction synchronously: it is whole
            // as it stands, and re-projecting the whole journal (every study of the archive) would only cost time.
            checkpoint = time.GetUtcNow();
            log.LogInformation("the index has no projection checkpoint yet (written by an earlier version, every commit synchronous): taken as up to date");
        }
        var tracker = new ProjectionTracker(time);
        tracker.StartedFrom(checkpoint);

        var metrics = new ArchiveMetrics();
        if (blobs is IUploadBacklog backlog) metrics.Watch(backlog);
        var system = ActorSystem.Create("akka-vna", ActorSystemSetup.Create(BootstrapSetup.Create().WithConfig(AkkaConfig(options, journal)), new LoggingSetup(loggerFactory)));
        try
        {
            var cluster = Cluster.Get(system);
            var up = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            cluster.RegisterOnMemberUp(() => up.TrySetResult());
            if (options.SeedNodes.Count == 0) cluster.Join(cluster.SelfAddress);
            else cluster.JoinSeedNodes(options.SeedNodes.Select(Address.Parse));
            await up.Task.WaitAsync(TimeSpan.FromSeconds(60), cancellationToken);

            var sharding = ClusterSharding.Get(system);
            var shardingSettings = ClusterShardingSettings.Create(system).WithPassivateIdleAfter(options.PassivateAfter);
            var transcoder = new AkkaVna.Codecs.CodecTranscoder();
            CompressionServices? compression = null;
            // Compression needs its codecs' native libraries on this machine: without them it is off, said once and plainly.
            var missing = options.Compression.Enabled
                ? options.Compression.Rules.Rules.Select(r => r.TransferSyntaxUid).OfType<string>().Distinct()
                    .Select(AkkaVna.Codecs.DicomTranscoder.Unavailable).OfType<string>().ToList()
                : [];
            if (missing.Count > 0)
                log.LogError("compression is off on this node: {Reasons} (install the package named, or set akka-vna.compression.enabled = off)", string.Join("; ", missing));
            if (options.Compression.Enabled && missing.Count == 0)
            {
                var pool = new CompressionPool(options.Compression.Workers);
                system.RegisterOnTermination(pool.Dispose);
                metrics.Watch(pool);
                compression = new CompressionServices(new CodecCompressor(options.SpoolFolder, spool), blobs, index, pool, options.Compression, metrics, time);
                log.LogInformation("compression: on, {Delay} after a study is stable, {Rules} rule(s), {Workers} worker(s)", options.Compression.Delay,
                    options.Compression.Rules.Rules.Count, pool.Workers);
            }
            // The audit trail (IHE ATNA): DICOM audit messages to a file and/or a syslog collector, never blocking the caller.
            var audit = options.Audit is { } auditOptions ? new AuditTrail(auditOptions, options.NodeName, index, metrics, loggerFactory.CreateLogger("audit")) : null;
            AkkaVna.Core.Audit.IAuditTrail trail = audit ?? AkkaVna.Core.Audit.IAuditTrail.None;
            startingAudit = audit;
            var archive = new AkkaVna.Core.Audit.AuditParticipant(options.AETitle, options.AETitle, global::System.Net.Dns.GetHostName(), IsRequestor: false,
                AkkaVna.Core.Audit.AuditRole.Application);
            if (options.Audit is { } ao)
                log.LogInformation("audit trail: DICOM audit messages (PS3.15 A.5) {Where}", string.Join(" and ", new[]
                {
                    ao.File is { } af ? "appended to " + af : null,
                    ao.Transport == AuditSyslogTransport.None ? null : $"sent to syslog {ao.Transport.ToString().ToLowerInvariant()}://{ao.SyslogHost}:{ao.SyslogPort}",
                }.Where(x => x is not null)));
            else log.LogWarning("audit trail: OFF (akka-vna.audit.enabled): nothing records who stored, queried or retrieved what");
            var studySettings = options.Studies with { ReadJournalPluginId = journal.ReadJournalPluginId };
            // The lifecycle's services are there even when it is off: a destruction a crash cut short finishes regardless.
            var lifecycle = new AkkaVna.Actors.Lifecycle.LifecycleServices(index, blobs, journal, options.Lifecycle, time)
            {
                Metrics = metrics,
                Throttle = new MoveThrottle(options.Lifecycle.MoveBytesPerSecond, time),
                Audit = trail,
            };
            var studies = await sharding.StartAsync("study", uid => StudyActor.Props(uid, studySettings, index, tracker, time, metrics, compression, lifecycle), shardingSettings,
                new StudyMessageExtractor(options.Shards), sharding.DefaultShardAllocationStrategy(shardingSettings), StopStudy.Instance);
            system.ActorOf(ClusterSingletonManager.Props(StabilityWatch.Props(index, studies, options.StabilityPoll, time), PoisonPill.Instance,
                ClusterSingletonManagerSettings.Create(system)), "stability-watch");
            if (compression is not null)
                system.ActorOf(ClusterSingletonManager.Props(CompressionWatch.Props(index, studies, options.CompressionPoll, time), PoisonPill.Instance,
                    ClusterSingletonManagerSettings.Create(system)), "compression-watch");
            if (options.Lifecycle.Enabled)
            {
                system.ActorOf(ClusterSingletonManager.Props(LifecycleWatch.Props(index, studies, options.Lifecycle.Poll, time), PoisonPill.Instance,
                    ClusterSingletonManagerSettings.Create(system)), "lifecycle-watch");
                log.LogWarning("lifecycle: ON, {Rules} rule(s) ({Names}); destruction {Approval}; a destroyed study sent again is {Resend}",
                    options.Lifecycle.Rules.Count, string.Join(", ", options.Lifecycle.Rules.Select(r => r.Name)),
                    options.Lifecycle.RequireApproval ? "waits for an operator's approval" : "happens WITHOUT approval when due",
                    options.Lifecycle.Resend == DestroyedResend.Refuse ? "refused" : "archived as new");
                long replanned = await LifecycleReplan.RunAsync(index, options.Lifecycle, time.GetUtcNow(), cancellationToken);
                if (replanned > 0) log.LogInformation("lifecycle: the rules changed; {Studies} stud(ies) re-planned", replanned);
            }
            log.LogInformation("cluster member {Address} is up; study shard region started ({Shards} shards)", cluster.SelfAddress, options.Shards);
            var gateway = new ShardStudyGateway(studies);

            // The index is brought up to the journal, and blobs a crash left staged are settled, before any association is taken.
            var caughtUpTo = time.GetUtcNow();
            await IndexCatchUp.RunAsync(journal, checkpoint, gateway, log, cancellationToken);
            await index.MakeDurableAsync(options.NodeName, tracker.Checkpoint(), cancellationToken);
            // Checkpoints of nodes silent for a long while (crashed, not back) are covered by this catch-up: dropped.
            var silent = TimeSpan.FromTicks(Math.Max(TimeSpan.FromMinutes(1).Ticks, options.IndexSyncInterval.Ticks * 30));
            await index.RecordCatchUpAsync(caughtUpTo, caughtUpTo - silent, cancellationToken);
            var (promoted, discarded, kept) = await RecoverStagedAsync(blobs, index, gateway, log, TimeSpan.Zero, cancellationToken);
            if (promoted + discarded + kept > 0)
                log.LogInformation("recovery: {Promoted} staged blob(s) promoted (committed before a crash), {Discarded} discarded (never acknowledged), {Kept} left for the next sweep",
                    promoted, discarded, kept);

            // The spool holds converted copies only while they are sent: what a crash left there is garbage.
            Directory.CreateDirectory(options.SpoolFolder);
            foreach (var stale in Directory.EnumerateFiles(options.SpoolFolder)) File.Delete(stale);
            var engine = new QueryEngine(index, blobs, new QuerySettings(options.MaxQueryMatches, options.CaseInsensitiveNames, options.AETitle));
            var queries = new ArchiveQueryHandler(engine, index, blobs, options.MoveDestinations, loggerFactory.CreateLogger("query")) { Audit = trail, Archive = archive };
            var trace = options.TraceFile is { } traceFile ? new StoreTraceWriter(traceFile) : null;
            if (trace is not null) log.LogInformation("recording an ingest trace to {TraceFile}", options.TraceFile);
            var ingest = new IngestService(blobs, index, gateway, options.Ingest, metrics, loggerFactory.CreateLogger("ingest"), time);
            var handler = new ArchiveStoreHandler(ingest, trace) { Audit = trail, Archive = archive };
            var services = new DicomServices
            {
                Policy = new AssociationPolicy
                {
                    CalledAETitles = new HashSet<string> { options.AETitle },
                    CallingAETitles = options.AllowedCallingAETitles,
                    Peers = options.Peers,
                    MaxAsyncOperations = (ushort)options.MaxAsyncOperations,
                },
                Store = handler,
                Observer = audit is null ? null : new AkkaVna.Dimse.AuditObserver(trail, archive, time),
                Find = queries,
                Retrieve = queries,
                Retrieval = new RetrieveOptions
                {
                    CallingAE = options.AETitle,
                    TempDirectory = options.SpoolFolder,
                    Spool = spool,
                    Transcoder = transcoder,
                    // Destinations with tls = on: this AE's certificate as the client's, the configured authorities as trust.
                    TlsConnector = options.Tls is { } outgoing ? new AkkaVna.Dicom.Network.Transport.TlsConnector(outgoing.Load() with { RequireClientCertificate = false }) : null,
                    Association = new DicomAssociationOptions { ArtimTimeout = options.ArtimTimeout, DimseTimeout = options.DimseTimeout, IdleTimeout = options.IdleTimeout },
                },
            };
            var listener = new DicomServerOptions
            {
                BindAddress = options.DicomBind,
                Port = options.DicomPort,
                MaxAssociations = options.MaxAssociations,
                Association = new DicomAssociationOptions
                {
                    MaxReceivePduLength = options.MaxPdu,
                    ArtimTimeout = options.ArtimTimeout,
                    DimseTimeout = options.DimseTimeout,
                    IdleTimeout = options.IdleTimeout,
                },
            };
            // DICOM TLS (PS3.15 Annex B): a second listener with the same services and limits, its connections wrapped in TLS;
            // with tls.only the TLS listener is the only one (no plain DICOM port).
            var tlsListener = options.Tls is { } tls
                ? listener with { Port = tls.Port, Acceptor = new AkkaVna.Dicom.Network.Transport.TlsTransport.Acceptor(tls.Load()) }
                : null;
            var dicom = new DicomServer(options.Tls is { Only: true } ? tlsListener! : listener, services, loggerFactory);
            var dicomTls = tlsListener is not null && options.Tls is not { Only: true } ? new DicomServer(tlsListener, services, loggerFactory) : null;
            if (options.Tls is { Only: true }) log.LogInformation("DICOM over TLS only (akka-vna.dicom.tls.only): no plain DICOM port");

            metrics.Registry.AddBeforeCollectCallback(() => metrics.Associations.Set(dicom.ActiveAssociations + (dicomTls?.ActiveAssociations ?? 0)));
            var web = new DicomWebEndpoints(engine, index, blobs, ingest, options.SpoolFolder,
                new MultipartLimits { MaxBodyBytes = options.MaxStowBytes, MaxParts = options.MaxStowParts }, loggerFactory.CreateLogger("dicomweb"), transcoder)
            {
                Audit = trail, Archive = archive, Spool = spool,
            };
            SigningKeys? keys = null;
            if (options.HttpAuth is { } auth)
            {
                keys = new SigningKeys(auth, loggerFactory.CreateLogger("http.auth"));
                await keys.StartAsync(cancellationToken);
            }
            else
                log.LogWarning("HTTP IS OPEN TO ANYONE who reaches {Bind}: DICOMweb (read and store), /admin and /metrics need no token. Turn on akka-vna.http.auth "
                    + "(bearer tokens from your identity provider) before the archive holds real patients", options.HttpBind);
            var http = BuildHttp(options, logging, () => cluster.SelfMember.Status == MemberStatus.Up && dicom.LocalEndPoint is not null, index, gateway, web, metrics,
                () => ClusterReport.GetAsync(system, studies, TimeSpan.FromSeconds(10)), keys, loggerFactory.CreateLogger("http.auth"), trail, archive);
            await http.StartAsync(cancellationToken);
            dicom.Start();
            dicomTls?.Start();
            var node = new ArchiveNode(options, system, gateway, index, blobs, dicom, http, log, tracker, metrics, loggerFactory) { _trace = trace, _dicomTls = dicomTls, _audit = audit, _archive = archive };
            trail.Record(new AkkaVna.Core.Audit.ApplicationActivity(time.GetUtcNow(), Started: true, archive));
            if (dicomTls is not null)
                log.LogInformation("listening for DICOM over TLS (1.2, 1.3) on {Endpoint}{Clients}", dicomTls.LocalEndPoint,
                    options.Tls!.RequireClientCertificate ? "; clients must present a certificate from " + options.Tls.Authorities : "");
            log.LogInformation("listening for DICOM on {DicomEndPoint} as {AETitle}; HTTP on {HttpUrl}; data in {Data}", node.DicomEndPoint, options.AETitle,
                string.Join(" and ", http.Urls), options.DataFolder);
            return node;
        }
        catch
        {
            if (startingAudit is not null) await startingAudit.StopAsync(TimeSpan.FromSeconds(2));
            await system.Terminate();
            await index.DisposeAsync();
            throw;
        }
    }

    private static Config AkkaConfig(ArchiveOptions o, IJournalStore journal)
    {
        var hocon = $$"""
            akka {
              loggers = ["AkkaVna.Actors.Logging.AkkaLogBridge, AkkaVna.Actors"]
              loglevel = INFO
              stdout-loglevel = WARNING
              log-dead-letters = 0
              log-dead-letters-during-shutdown = off
              # The node stops the actor system itself, after the DICOM server has drained (StopAsync): Akka's own
              # SIGTERM hook would leave the cluster while a C-STORE is still waiting for its commit.
              coordinated-shutdown.run-by-clr-shutdown-hook = off
              actor {
                provider = cluster
              }
              remote.dot-netty.tcp { hostname = {{ArchiveOptions.Quote(o.ClusterHostname)}}, port = {{o.ClusterPort}} }
              cluster {
                min-nr-of-members = 1
                # This machine class (2 cores, heavy disk work) delays heartbeats by seconds: be patient before suspecting a node.
                failure-detector.acceptable-heartbeat-pause = 10s
                # Unreachable members are downed by the split-brain resolver (config/akka-vna.conf, cluster.split-brain-resolver);
                # a downed node runs its coordinated shutdown, and the node process then exits.
                downing-provider-class = "Akka.Cluster.SBR.SplitBrainResolverProvider, Akka.Cluster"
                split-brain-resolver {
                  active-strategy = {{o.DowningStrategy}}
                  stable-after = {{(int)o.DowningStableAfter.TotalMilliseconds}}ms
                  keep-oldest.down-if-alone = on
                }
                run-coordinated-shutdown-when-down = on
                sharding {
                  state-store-mode = ddata
                  remember-entities = off
                  distributed-data.durable.keys = []
                }
              }
            }
            """;
        return o.AkkaOverrides.WithFallback(ConfigurationFactory.ParseString(hocon)).WithFallback(PersistenceConfig(journal));
    }

    /// <summary>
    /// The journal adapter's persistence settings with the study protocol's serializer and the "study" tag: also what a
    /// reader of the study event stream (<see cref="StudyEventStream"/>) configures its actor system with.
    /// </summary>
    public static Config PersistenceConfig(IJournalStore journal) =>
        ConfigurationFactory.ParseString(StudyEventTagger.Binding(journal.JournalPluginId))
            .WithFallback(ConfigurationFactory.ParseString(journal.PersistenceConfiguration))
            .WithFallback(ConfigurationFactory.ParseString(StudySerializer.Binding));

    private static WebApplication BuildHttp(ArchiveOptions options, Action<ILoggingBuilder> logging, Func<bool> clusterReady, IArchiveIndex index, IStudyGateway studies,
        DicomWebEndpoints web, ArchiveMetrics metrics, Func<Task<ClusterReport>> clusterReport, SigningKeys? keys, ILogger authLog,
        AkkaVna.Core.Audit.IAuditTrail audit, AkkaVna.Core.Audit.AuditParticipant archive)
    {
        // No appsettings.json and no file watching: the node is configured by its HOCON file, and a watcher on the working
        // folder (the default content root) would wake for every blob written under a data folder inside it.
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions
        {
            ContentRootPath = AppContext.BaseDirectory,
            Args = ["--hostBuilder:reloadConfigOnChange=false"],
        });
        builder.Logging.ClearProviders();
        logging(builder.Logging);
        // Kestrel's default body limit (30 MB) stays for every endpoint but STOW-RS, which lifts it and enforces
        // http.max-stow-bytes itself, with a reason.
        var certificate = options.Https?.Load();
        builder.WebHost.ConfigureKestrel(k =>
        {
            if (options.Https is not { Only: true }) k.Listen(options.HttpBind, options.HttpPort);
            if (options.Https is { } https)
                k.Listen(options.HttpBind, https.Port, listen => listen.UseHttps(new Microsoft.AspNetCore.Server.Kestrel.Https.HttpsConnectionAdapterOptions
                {
                    ServerCertificate = certificate,
                    SslProtocols = global::System.Security.Authentication.SslProtocols.Tls12 | global::System.Security.Authentication.SslProtocols.Tls13,
                }));
        });
        if (options.HttpAuth is { } auth) HttpAccess.AddServices(builder.Services, auth, keys!);
        if (options.Cors is not null) builder.Services.AddCors();
        var app = builder.Build();
        if (keys is not null) app.Lifetime.ApplicationStopped.Register(keys.Dispose);
        // Every error response says why: routes that match nothing (404), methods a resource does not take (405) and
        // any other empty 4xx/5xx get a plain-text reason, as the DICOMweb handlers give theirs.
        app.UseStatusCodePages(async context =>
        {
            var request = context.HttpContext.Request;
            var response = context.HttpContext.Response;
            string path = request.Path.Value ?? "/";
            string reason = response.StatusCode switch
            {
                StatusCodes.Status404NotFound => $"no resource at {path}: DICOMweb is served under {DicomWebEndpoints.Prefix} (studies, series, instances, "
                    + "metadata, frames, bulkdata), WADO-URI at /wado, health at /health/live and /health/ready, metrics at /metrics",
                StatusCodes.Status405MethodNotAllowed => $"{request.Method} is not allowed on {path}"
                    + (response.Headers.Allow.Count > 0 ? $"; it takes {response.Headers.Allow}" : ""),
                _ => $"{response.StatusCode} {Microsoft.AspNetCore.WebUtilities.ReasonPhrases.GetReasonPhrase(response.StatusCode)}",
            };
            response.ContentType = "text/plain; charset=utf-8";
            await response.WriteAsync(reason + "\n");
        });
        // A browser viewer on another origin: preflights answered here, before the token check (they carry no token).
        if (options.Cors is { } cors)
            app.UseCors(p =>
            {
                if (cors.Origins.Contains("*")) p.AllowAnyOrigin();
                else p.WithOrigins([.. cors.Origins]);
                p.WithMethods("GET", "HEAD", "POST", "OPTIONS").WithHeaders("Authorization", "Accept", "Content-Type", "Cache-Control")
                    .WithExposedHeaders("Content-Type", "Content-Length", "Content-Location", "Location", "Warning", "WWW-Authenticate")
                    .SetPreflightMaxAge(cors.MaxAge);
            });
        if (options.HttpAuth is { } authOptions) HttpAccess.Use(app, authOptions, metrics, authLog, audit, archive);
        web.Map(app);
        LifecycleEndpoints.Map(app, index, options.Lifecycle, options.Time);
        app.MapGet("/health/live", () => Results.Text("alive\n"));
        app.MapGet("/health/ready", async (CancellationToken ct) =>
        {
            var problems = new List<string>();
            if (!clusterReady()) problems.Add("the cluster member is not up or the DICOM server is not listening");
            try
            {
                await index.CountAsync(ct);
            }
            catch (Exception e) when (e is global::System.Data.Common.DbException or InvalidOperationException or IOException)
            {
                problems.Add("the index cannot be read: " + e.Message);
            }
            return problems.Count == 0 ? Results.Text("ready\n") : Results.Text(string.Join('\n', problems) + "\n", statusCode: StatusCodes.Status503ServiceUnavailable);
        });
        app.MapMetrics("/metrics", metrics.Registry);
        // For operators: the cluster as this member sees it (members, status, roles, shards and active studies per node).
        app.MapGet("/admin/cluster", async () => Results.Json(await clusterReport(), ClusterReport.Json));
        // For operators: a study as its actor (not the index) sees it — journal sequence number, stable state.
        app.MapGet("/admin/studies/{uid}", async (string uid, CancellationToken ct) =>
        {
            if (!Dicom.Dictionary.DicomUidRegistry.IsWellFormed(uid)) return Results.BadRequest(new { error = $"'{uid}' is not a valid UID" });
            try
            {
                var s = await studies.GetSummaryAsync(uid, TimeSpan.FromSeconds(30), ct);
                if (s.SequenceNr == 0)
                    return await index.Lifecycle.GetTombstoneAsync(uid, ct) is { } t
                        ? Results.Json(new { error = $"study {uid} was destroyed", tombstone = new { t.Rule, state = t.State.ToString(), t.Instances, t.Bytes, t.StartedAt, t.DestroyedAt, t.ApprovedBy } },
                            statusCode: StatusCodes.Status410Gone)
                        : Results.NotFound(new { error = $"no study {uid}" });
                // Each instance as stored now (answered after the actor's projection, so the index is up to date with it).
                var stored = new List<object>();
                var stores = new SortedDictionary<string, (int Blobs, long Bytes)>(StringComparer.Ordinal);
                void Count(BlobRef blob, long size) => stores[blob.Store] = stores.TryGetValue(blob.Store, out var c) ? (c.Blobs + 1, c.Bytes + size) : (1, size);
                await foreach (var i in index.ListInstancesAsync(uid, ct))
                {
                    stored.Add(new { sopInstanceUid = i.SopInstanceUid, seriesInstanceUid = i.SeriesInstanceUid, transferSyntaxUid = i.TransferSyntaxUid, sizeBytes = i.Size,
                        representation = i.Blob.Representation, store = i.Blob.Store });
                    Count(i.Blob, i.Size);
                }
                // Originals kept beside their compressed copies (compression.keep-original).
                var kept = new List<object>();
                await foreach (var k in index.ListKeptBlobsAsync(uid, ct))
                {
                    kept.Add(new { sopInstanceUid = k.SopInstanceUid, transferSyntaxUid = k.TransferSyntaxUid, sizeBytes = k.Size, representation = k.Blob.Representation,
                        sha256 = k.Sha256, store = k.Blob.Store });
                    Count(k.Blob, k.Size);
                }
                // The lifecycle as the rules see it now: the rule, its dates, the holds that name the study, an approval waiting.
                object? lifecycle = null;
                if (options.Lifecycle.Rules.Count > 0 && await LifecycleFacts.ReadAsync(index, uid, options.Lifecycle.MatchedAttributes, ct) is { } facts)
                {
                    var now = options.Time.GetUtcNow();
                    var holds = await index.Lifecycle.HoldsNamingAsync(facts.PatientId, facts.IssuerOfPatientId, uid, facts.AccessionNumber, ct);
                    var plan = LifecyclePlanner.Plan(facts, options.Lifecycle.Rules, holds, now);
                    var pending = await index.Lifecycle.GetPendingAsync(uid, ct);
                    lifecycle = new
                    {
                        enabled = options.Lifecycle.Enabled, rule = plan.Rule, anchor = plan.Anchor, destroyAt = plan.DestroyAt, tiers = plan.Tiers,
                        holds = plan.Holds.Select(h => new { h.Id, scope = h.Scope.ToString(), h.Value, h.Reason, h.PlacedBy, h.PlacedAt, h.Until }),
                        // A study in two stores (a move under way or cut short) is due now, as its child sees it.
                        nextDue = plan.NextDue(now, stores.Count == 1 ? stores.Keys.First() : "(several stores)", BlobRef.PrimaryStore), note = plan.Note,
                        approval = pending is null ? null : new { pending.Rule, pending.DueAt, pending.QueuedAt, pending.ApprovedBy, pending.ApprovedAt },
                    };
                }
                return Results.Ok(new
                {
                    studyInstanceUid = s.StudyInstanceUid, series = s.SeriesCount, instances = s.InstanceCount, sizeBytes = s.SizeBytes,
                    stable = s.Stable, stableDue = s.StableDue, stableAt = s.StableAt, journalSequenceNr = s.SequenceNr, node = s.Node,
                    stores = stores.Select(kv => new { store = kv.Key, blobs = kv.Value.Blobs, bytes = kv.Value.Bytes }),
                    stored, kept, lifecycle,
                });
            }
            catch (TimeoutException)
            {
                return Results.Json(new { error = "the study actor did not answer within 30 s" }, statusCode: StatusCodes.Status503ServiceUnavailable);
            }
        });
        return app;
    }

    /// <summary>
    /// Settles staged blobs: each is read (its header names the study and instance), its study actor is woken (so it
    /// re-projects any commit the index missed), and the index decides — promote to the indexed key when the checksum
    /// matches, delete otherwise (with what was uploaded for it before a commit that no row names).
    /// </summary>
    private static Task<StagedRecovery> RecoverStagedAsync(IBlobStore blobs, IArchiveIndex index, IStudyGateway studies, ILogger log, TimeSpan olderThan,
        CancellationToken cancellationToken) =>
        blobs.RecoverStagedAsync(new IndexResolver(index, studies, log), olderThan, cancellationToken);

    private sealed class IndexResolver(IArchiveIndex index, IStudyGateway studies, ILogger log) : IStagedBlobResolver
    {
        public async Task<BlobRef?> ResolveAsync(IBlobContent staged, CancellationToken cancellationToken)
        {
            InstanceHeader header;
            try
            {
                header = InstanceHeader.Read(staged);
            }
            catch (Exception e) when (e is InvalidInstanceException or IOException)
            {
                log.LogInformation("recovery: staged blob {Staged} is cut short or unreadable ({Reason}): never acknowledged, discarded", staged.Description, e.Message);
                return null; // cut short or unreadable: it was never acknowledged
            }
            await studies.GetSummaryAsync(header.StudyInstanceUid, TimeSpan.FromSeconds(60), cancellationToken);
            if (await index.FindInstanceAsync(header.SopInstanceUid, cancellationToken) is not { } row)
            {
                log.LogInformation("recovery: staged blob {Staged} of {SopInstance} (study {Study}) is not indexed: never acknowledged, discarded",
                    staged.Description, header.SopInstanceUid, header.StudyInstanceUid);
                return null;
            }
            string sha;
            await using (var fs = staged.OpenRead()) sha = Convert.ToHexStringLower(await SHA256.HashDataAsync(fs, cancellationToken));
            // The same bytes may be staged in two stores (a tier move copies them): only the copy in the store the index names is the committed one.
            string store = staged.Blob.Store;
            if (sha == row.Sha256 && row.StudyInstanceUid == header.StudyInstanceUid && row.Blob.Store == store)
            {
                log.LogInformation("recovery: staged blob {Staged} of {SopInstance} (study {Study}) is indexed: promoted to {Blob}",
                    staged.Description, header.SopInstanceUid, header.StudyInstanceUid, row.Blob);
                return row.Blob;
            }
            if (row.StudyInstanceUid == header.StudyInstanceUid)
                await foreach (var kept in index.ListKeptBlobsAsync(row.StudyInstanceUid, cancellationToken))
                    if (kept.SopInstanceUid == header.SopInstanceUid && kept.Sha256 == sha && kept.Blob.Store == store)
                    {
                        log.LogInformation("recovery: staged blob {Staged} of {SopInstance} (study {Study}) is its kept original: promoted to {Blob}",
                            staged.Description, header.SopInstanceUid, header.StudyInstanceUid, kept.Blob);
                        return kept.Blob;
                    }
            log.LogInformation("recovery: staged blob {Staged} of {SopInstance} (study {Study}) is not what the index holds (SHA-256 {Sha}, indexed {IndexedSha} in study {IndexedStudy}, store {IndexedStore}): discarded",
                staged.Description, header.SopInstanceUid, header.StudyInstanceUid, sha[..16], row.Sha256[..Math.Min(16, row.Sha256.Length)], row.StudyInstanceUid, row.Blob.Store);
            return null;
        }

        public async Task<bool> IsReferencedAsync(BlobRef blob, CancellationToken cancellationToken)
        {
            if (BlobKeys.Parse(blob.Key) is not var (study, _, sop)) return false;
            await studies.GetSummaryAsync(study, TimeSpan.FromSeconds(60), cancellationToken);
            if (await index.FindInstanceAsync(sop, cancellationToken) is not { } row) return false;
            if (row.Blob == blob) return true;
            await foreach (var kept in index.ListKeptBlobsAsync(study, cancellationToken))
                if (kept.Blob == blob) return true;
            return false;
        }
    }

    private async Task SweepLoopAsync()
    {
        try
        {
            while (!_stopping.IsCancellationRequested)
            {
                await Task.Delay(Options.SweepInterval, _stopping.Token);
                try
                {
                    var (promoted, discarded, kept) = await RecoverStagedAsync(Blobs, Index, Studies, _log, Options.StagedGrace, _stopping.Token);
                    if (promoted + discarded + kept > 0)
                        _log.LogInformation("sweep: {Promoted} staged blob(s) promoted, {Discarded} discarded, {Kept} left for the next sweep", promoted, discarded, kept);
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    _log.LogWarning(e, "sweep of staged blobs failed; it runs again in {Interval}", Options.SweepInterval);
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    /// <summary>Syncs the index to disk every interval, recording how far the journal is durably projected.</summary>
    private async Task IndexSyncLoopAsync()
    {
        try
        {
            while (!_stopping.IsCancellationRequested)
            {
                await Task.Delay(Options.IndexSyncInterval, _stopping.Token);
                try
                {
                    await Index.MakeDurableAsync(Options.NodeName, _tracker.Checkpoint(), _stopping.Token);
                    _metrics.StudiesBehindIndex.Set(_tracker.Behind);
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    _log.LogWarning(e, "index sync failed; it runs again in {Interval}", Options.IndexSyncInterval);
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    /// <summary>Stops taking associations, lets those open finish (up to <paramref name="grace"/>), leaves the cluster and closes the stores.</summary>
    public async Task StopAsync(TimeSpan grace)
    {
        if (Interlocked.Exchange(ref _stopped, 1) != 0) return;
        _log.LogInformation("stopping: finishing open associations (up to {Grace})", grace);
        _stopping.Cancel();
        await Task.WhenAll(_dicom.StopAsync(grace), _dicomTls?.StopAsync(grace) ?? Task.CompletedTask);
        if (_trace is not null) await _trace.DisposeAsync();
        if (_audit is not null)
        {
            // Application Stop is the last message; what is queued is written first (the index is still open for patients).
            _audit.Record(new AkkaVna.Core.Audit.ApplicationActivity(Options.Time.GetUtcNow(), Started: false, _archive!));
            await _audit.StopAsync(TimeSpan.FromSeconds(10));
        }
        await _sweeper;
        await _indexSync;
        await CoordinatedShutdown.Get(System).Run(CoordinatedShutdown.ClusterLeavingReason.Instance);
        try
        {
            // The study actors have stopped: whatever they projected is made durable with a checkpoint as late as it can be.
            await Index.MakeDurableAsync(Options.NodeName, _tracker.Checkpoint(), CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(30));
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            _log.LogWarning(e, "the last index sync failed; the next start re-projects from the previous checkpoint");
        }
        await Index.DisposeAsync();
        await Blobs.DisposeAsync();
        using (var httpStop = new CancellationTokenSource(TimeSpan.FromSeconds(5))) await _http.StopAsync(httpStop.Token);
        await _http.DisposeAsync();
        _log.LogInformation("stopped");
        _loggerFactory.Dispose();
    }

    public async ValueTask DisposeAsync() => await StopAsync(TimeSpan.FromSeconds(10));
}
