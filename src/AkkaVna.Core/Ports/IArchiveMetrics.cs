namespace AkkaVna.Core.Ports;

/// <summary>
/// What the use cases and actors measure, as a port: the host exports it (Prometheus, one registry per node), tests and
/// tools pass <see cref="NoMetrics"/>. No static state: two nodes in one process count apart.
/// </summary>
public interface IArchiveMetrics
{
    /// <summary>An instance answered, by outcome: stored, duplicate, replaced, rejected, refused, failed.</summary>
    void InstanceAnswered(string outcome);

    void BytesArchived(long bytes);

    /// <summary>From the end of a data set to the study actor's answer.</summary>
    void IngestCommitted(TimeSpan elapsed);

    /// <summary>Where an instance's time goes after its data set arrived: seal, header, lookup, prepare (an upload before the commit), commit, promote.</summary>
    void IngestPhase(string phase, TimeSpan elapsed);

    /// <summary>Instances in one study actor batch.</summary>
    void StudyBatch(int instances);

    /// <summary>A study actor's batch commit, by phase: journal, index.</summary>
    void StudyCommitPhase(string phase, TimeSpan elapsed);

    /// <summary>One instance's compression: compressed (with its bytes before and after), refused, failed or stale.</summary>
    void InstanceCompression(string outcome, long bytesBefore, long bytesAfter);

    /// <summary>One lifecycle step of a study: planned, queued (for approval), moved or destroyed (with its bytes), aborted (a hold), failed.</summary>
    void Lifecycle(string outcome, long bytes = 0);
}

/// <summary>Measures nothing.</summary>
public sealed class NoMetrics : IArchiveMetrics
{
    public static readonly NoMetrics Instance = new();

    public void InstanceAnswered(string outcome) { }
    public void BytesArchived(long bytes) { }
    public void IngestCommitted(TimeSpan elapsed) { }
    public void IngestPhase(string phase, TimeSpan elapsed) { }
    public void StudyBatch(int instances) { }
    public void StudyCommitPhase(string phase, TimeSpan elapsed) { }
    public void InstanceCompression(string outcome, long bytesBefore, long bytesAfter) { }
    public void Lifecycle(string outcome, long bytes = 0) { }
}
