using Prometheus;
using AkkaVna.Core.Ports;

namespace AkkaVna.Host;

/// <summary>
/// One node's Prometheus metrics (served at its /metrics) in a registry of its own, with the process's own statistics:
/// no static state, so two nodes in one process count apart.
/// </summary>
public sealed class ArchiveMetrics : IArchiveMetrics
{
    public CollectorRegistry Registry { get; } = Metrics.NewCustomRegistry();

    private readonly Counter _instances, _bytes, _compressed, _compressedBytes, _lifecycle, _destroyedBytes, _movedBytes;
    private readonly Counter _httpRefused, _audit;
    private readonly Histogram _commit, _phase, _studyCommit, _batch;

    /// <summary>Studies whose journal events the index does not reflect yet (set at each index sync).</summary>
    public Gauge StudiesBehindIndex { get; }

    /// <summary>DICOM associations open on this node.</summary>
    public Gauge Associations { get; }

    /// <summary>Exports an S3 store's upload backlog (after-local-commit) and receive cache, read at each scrape.</summary>
    public void Watch(IUploadBacklog backlog)
    {
        var f = Metrics.WithCustomRegistry(Registry);
        var pending = f.CreateGauge("akkavna_blob_uploads_pending",
            "Instances acknowledged (after-local-commit) and not yet in S3: they exist on this node's disk only until uploaded.");
        var pendingBytes = f.CreateGauge("akkavna_blob_uploads_pending_bytes", "Bytes of the instances waiting for upload to S3.");
        var cached = f.CreateGauge("akkavna_blob_cache_bytes", "Bytes in the node's receive cache (recent instances, and those waiting for upload).");
        var uploaded = f.CreateGauge("akkavna_blob_uploads_total", "Instances the upload queue uploaded since the node started.");
        var failures = f.CreateGauge("akkavna_blob_upload_failures_total", "Uploads from the queue that failed (S3 out of reach) since the node started; each is retried.");
        var downloaded = f.CreateGauge("akkavna_blob_s3_read_bytes_total", "Bytes read from S3 (object bodies) since the node started; reads of recent instances come from the receive cache instead.");
        Registry.AddBeforeCollectCallback(() =>
        {
            downloaded.Set(backlog.BytesDownloaded);
            pending.Set(backlog.PendingUploads);
            pendingBytes.Set(backlog.PendingUploadBytes);
            cached.Set(backlog.CachedBytes);
            uploaded.Set(backlog.Uploaded);
            failures.Set(backlog.UploadFailures);
        });
    }

    public ArchiveMetrics()
    {
        DotNetStats.Register(Registry);
        var f = Metrics.WithCustomRegistry(Registry);
        _instances = f.CreateCounter("akkavna_ingest_instances_total",
            "Instances answered by the archive (C-STORE and STOW-RS), by outcome (stored, duplicate, replaced, rejected, refused, failed).",
            new CounterConfiguration { LabelNames = ["outcome"] });
        _bytes = f.CreateCounter("akkavna_ingest_bytes_total", "Bytes of instances archived (Part 10 files, stored or replaced).");
        _commit = f.CreateHistogram("akkavna_ingest_commit_seconds", "From the end of the data set to the answer of the study actor (blob flush, journal, index).",
            new HistogramConfiguration { Buckets = Histogram.ExponentialBuckets(0.0005, 2, 16) });
        _phase = f.CreateHistogram("akkavna_ingest_phase_seconds",
            "Where an instance's time goes after its data set arrived: seal (blob flush and checksum), header (the indexed attributes, read while the data "
            + "set streamed), lookup (SOP Instance UID across studies), prepare (an S3 upload before the commit, acknowledge = after-upload), commit (the study actor: journal and index), promote (the blob to its reference).",
            new HistogramConfiguration { LabelNames = ["phase"], Buckets = Histogram.ExponentialBuckets(0.00005, 2, 18) });
        _studyCommit = f.CreateHistogram("akkavna_study_commit_seconds",
            "A study actor's batch commit, by phase: journal (PersistAllAsync) and index (the index transaction).",
            new HistogramConfiguration { LabelNames = ["phase"], Buckets = Histogram.ExponentialBuckets(0.00005, 2, 18) });
        _batch = f.CreateHistogram("akkavna_study_batch_instances", "Instances committed per study actor batch (coalescing at work).",
            new HistogramConfiguration { Buckets = Histogram.ExponentialBuckets(1, 2, 11) });
        StudiesBehindIndex = f.CreateGauge("akkavna_index_studies_behind",
            "Studies whose journal events the index does not reflect yet (at the last index sync); stuck above zero means index writes fail.");
        Associations = f.CreateGauge("akkavna_dicom_associations", "DICOM associations open on this node.");
        _compressed = f.CreateCounter("akkavna_compression_instances_total",
            "Instances the compression children handled, by outcome: compressed (verified and switched), refused (cannot be compressed exactly: left as it is), failed (retried with backoff), stale (changed meanwhile).",
            new CounterConfiguration { LabelNames = ["outcome"] });
        _compressedBytes = f.CreateCounter("akkavna_compression_bytes_total", "Bytes of the instances compressed, before and after (stage).",
            new CounterConfiguration { LabelNames = ["stage"] });
        _lifecycle = f.CreateCounter("akkavna_lifecycle_studies_total",
            "Studies the lifecycle children handled, by outcome: planned (a due time kept), queued (due, waiting for approval), moved (to another tier), destroyed, aborted (a hold placed meanwhile), failed (retried).",
            new CounterConfiguration { LabelNames = ["outcome"] });
        _destroyedBytes = f.CreateCounter("akkavna_lifecycle_destroyed_bytes_total", "Bytes of the studies destroyed (their instances as stored).");
        _httpRefused = f.CreateCounter("akkavna_http_refused_total",
            "HTTP requests refused by akka-vna.http.auth: status 401 (no token, or a bad one) or 403 (a good token without the scope), by the permission the route needs.",
            new CounterConfiguration { LabelNames = ["status", "permission"] });
        _audit = f.CreateCounter("akkavna_audit_messages_total",
            "Audit messages (DICOM PS3.15 A.5) by outcome: sent (to every configured place: file, syslog), failed (a place did not take it), dropped (the bounded queue was full: audit never blocks ingest).",
            new CounterConfiguration { LabelNames = ["outcome"] });
        _movedBytes = f.CreateCounter("akkavna_lifecycle_moved_bytes_total", "Bytes the lifecycle moved to another tier (copied, verified, the old copy deleted).");
    }

    /// <summary>Exports the compression pool's queue (instances waiting for a thread, and running), read at each scrape.</summary>
    public void Watch(AkkaVna.Actors.Compression.CompressionPool pool)
    {
        var queued = Metrics.WithCustomRegistry(Registry).CreateGauge("akkavna_compression_queue", "Instances waiting for a compression thread or being compressed on this node.");
        Registry.AddBeforeCollectCallback(() => queued.Set(pool.Queued));
    }

    public void Lifecycle(string outcome, long bytes = 0)
    {
        _lifecycle.WithLabels(outcome).Inc();
        if (outcome == "destroyed") _destroyedBytes.Inc(bytes);
        if (outcome == "moved") _movedBytes.Inc(bytes);
    }

    public void InstanceCompression(string outcome, long bytesBefore, long bytesAfter)
    {
        _compressed.WithLabels(outcome).Inc();
        if (outcome != "compressed") return;
        _compressedBytes.WithLabels("before").Inc(bytesBefore);
        _compressedBytes.WithLabels("after").Inc(bytesAfter);
    }

    public void HttpRefused(int status, HttpPermission permission) =>
        _httpRefused.WithLabels(status.ToString(System.Globalization.CultureInfo.InvariantCulture), permission.ToString().ToLowerInvariant()).Inc();

    public void AuditMessages(string outcome, int count) => _audit.WithLabels(outcome).Inc(count);

    public void InstanceAnswered(string outcome) => _instances.WithLabels(outcome).Inc();
    public void BytesArchived(long bytes) => _bytes.Inc(bytes);
    public void IngestCommitted(TimeSpan elapsed) => _commit.Observe(elapsed.TotalSeconds);
    public void IngestPhase(string phase, TimeSpan elapsed) => _phase.WithLabels(phase).Observe(elapsed.TotalSeconds);
    public void StudyBatch(int instances) => _batch.Observe(instances);
    public void StudyCommitPhase(string phase, TimeSpan elapsed) => _studyCommit.WithLabels(phase).Observe(elapsed.TotalSeconds);
}
