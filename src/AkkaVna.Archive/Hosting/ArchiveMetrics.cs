using Prometheus;

namespace AkkaVna.Archive.Hosting;

/// <summary>The archive's Prometheus metrics (served at /metrics).</summary>
public static class ArchiveMetrics
{
    public static readonly Counter Instances = Metrics.CreateCounter("akkavna_ingest_instances_total",
        "C-STORE requests answered by the archive, by outcome (stored, duplicate, replaced, rejected, refused, failed).",
        new CounterConfiguration { LabelNames = ["outcome"] });

    public static readonly Counter Bytes = Metrics.CreateCounter("akkavna_ingest_bytes_total", "Bytes of instances archived (Part 10 files, stored or replaced).");

    public static readonly Histogram CommitSeconds = Metrics.CreateHistogram("akkavna_ingest_commit_seconds",
        "From the end of the data set to the answer of the study actor (blob flush, journal, index).",
        new HistogramConfiguration { Buckets = Histogram.ExponentialBuckets(0.0005, 2, 16) });

    public static readonly Histogram PhaseSeconds = Metrics.CreateHistogram("akkavna_ingest_phase_seconds",
        "Where a C-STORE's time goes after its data set arrived: seal (blob flush and checksum), header (reading the indexed attributes), "
        + "lookup (SOP Instance UID across studies), commit (the study actor: journal and index), promote (the blob to its key).",
        new HistogramConfiguration { LabelNames = ["phase"], Buckets = Histogram.ExponentialBuckets(0.00005, 2, 18) });

    public static readonly Histogram CommitPhaseSeconds = Metrics.CreateHistogram("akkavna_study_commit_seconds",
        "A study actor's batch commit, by phase: journal (PersistAllAsync) and index (the index transaction).",
        new HistogramConfiguration { LabelNames = ["phase"], Buckets = Histogram.ExponentialBuckets(0.00005, 2, 18) });

    public static readonly Histogram BatchSize = Metrics.CreateHistogram("akkavna_study_batch_instances",
        "Instances committed per study actor batch (coalescing at work).", new HistogramConfiguration { Buckets = Histogram.ExponentialBuckets(1, 2, 11) });

    public static readonly Gauge StudiesBehindIndex = Metrics.CreateGauge("akkavna_index_studies_behind",
        "Studies whose journal events the index does not reflect yet (at the last index sync); stuck above zero means index writes fail.");

    public static readonly Gauge Associations = Metrics.CreateGauge("akkavna_dicom_associations", "DICOM associations open on this node.");
}
