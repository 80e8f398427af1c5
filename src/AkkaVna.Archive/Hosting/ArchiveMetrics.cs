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

    public static readonly Gauge Associations = Metrics.CreateGauge("akkavna_dicom_associations", "DICOM associations open on this node.");
}
