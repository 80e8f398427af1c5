using System.Buffers;
using AkkaVna.Dicom.Buffers;
using AkkaVna.Core.Model;

namespace AkkaVna.Core.Ports;

/// <summary>
/// Where instance bytes live (the object storage port), shaped for object stores as much as for files: every call is
/// async, nothing hands out a local path, reads are streamed and ranged (<see cref="IBlobContent"/>), and a reference
/// names the store, representation and tier. A node writes the blobs it receives itself: actor messages carry only a
/// reference and a checksum. Writing is two-phase so that nothing unacknowledged is ever visible and nothing
/// acknowledged is ever lost: a blob is first <em>staged</em> (written, flushed, checksummed) on the receiving node, the
/// study actor commits the index and journal, and only then is the staged blob <em>promoted</em> to its reference. A
/// crash in between leaves a staged blob that <see cref="RecoverStagedAsync"/> promotes or discards by asking the index.
/// A store that acknowledges only what it holds (S3 with <c>acknowledge = after-upload</c>) takes the bytes between the
/// seal and the commit (<see cref="IBlobWriter.PrepareAsync"/>), under a key of their own content, so that a commit
/// never names bytes the store does not have and a prepared blob never overwrites what an index row names.
/// </summary>
public interface IBlobStore : IAsyncDisposable
{
    /// <summary>This store's name (<see cref="BlobRef.Store"/>).</summary>
    string Name { get; }

    /// <summary>Where this store keeps its blobs, for logs.</summary>
    string Description { get; }

    /// <summary>
    /// The reference of an instance's blob in this store. Throws <see cref="ArgumentException"/> unless every UID is well
    /// formed. <paramref name="contentSha256"/> (the blob's SHA-256, known once it is sealed): a store that never
    /// overwrites in place keys each content apart; others ignore it.
    /// </summary>
    BlobRef RefFor(string studyInstanceUid, string seriesInstanceUid, string sopInstanceUid, string representation = BlobRef.Original,
        string? contentSha256 = null);

    /// <summary>Begins staging a new blob. Disposing the writer before it is promoted discards it.</summary>
    ValueTask<IBlobWriter> CreateAsync(CancellationToken cancellationToken);

    /// <summary>Opens a promoted blob for reading (streamed or ranged); throws <see cref="BlobNotFoundException"/> when there is none.</summary>
    ValueTask<IBlobContent> OpenAsync(BlobRef blob, CancellationToken cancellationToken);

    ValueTask<bool> ExistsAsync(BlobRef blob, CancellationToken cancellationToken);

    /// <summary>Deletes a promoted blob (a replaced instance's old one); no error when it is already gone.</summary>
    ValueTask DeleteAsync(BlobRef blob, CancellationToken cancellationToken);

    /// <summary>Blobs staged and not yet promoted or discarded (in flight, or left by a crash until recovery runs).</summary>
    ValueTask<int> CountStagedAsync(CancellationToken cancellationToken);

    /// <summary>Every promoted blob with its size (for verification; order unspecified).</summary>
    IAsyncEnumerable<BlobListing> ListAsync(CancellationToken cancellationToken);

    /// <summary>
    /// Resolves blobs left staged (by a crash, or an unanswered commit) longer than <paramref name="olderThan"/>:
    /// <paramref name="resolver"/> reads each one and returns the reference to promote it to (its commit happened) or null
    /// (it was never acknowledged: it is deleted, with what was written for it before a commit no index row names); when
    /// it throws, the blob stays staged for the next run.
    /// </summary>
    Task<StagedRecovery> RecoverStagedAsync(IStagedBlobResolver resolver, TimeSpan olderThan, CancellationToken cancellationToken);
}

/// <summary>What the archive answers to blob-store recovery: the index decides what a staged or prepared blob is.</summary>
public interface IStagedBlobResolver
{
    /// <summary>The reference a staged blob was committed under, or null when no commit names it. Throws when it cannot tell now.</summary>
    Task<BlobRef?> ResolveAsync(IBlobContent staged, CancellationToken cancellationToken);

    /// <summary>Whether the index names <paramref name="blob"/> (bytes written before a commit whose outcome was never learnt). Throws when it cannot tell now.</summary>
    Task<bool> IsReferencedAsync(BlobRef blob, CancellationToken cancellationToken);
}

/// <summary>One blob being staged.</summary>
public interface IBlobWriter : IAsyncDisposable
{
    long Length { get; }

    ValueTask WriteAsync(ReadOnlySequence<byte> data, CancellationToken cancellationToken);

    ValueTask WriteAsync(ReadOnlyMemory<byte> data, CancellationToken cancellationToken);

    /// <summary>Ends writing: the bytes are flushed to stable storage (when <paramref name="flushToDisk"/>) and their SHA-256 returned (hex).</summary>
    ValueTask<string> SealAsync(bool flushToDisk, CancellationToken cancellationToken);

    /// <summary>
    /// Before the commit, for a store that acknowledges only what it holds: writes the sealed blob's bytes under
    /// <paramref name="blob"/> (a reference made with the blob's checksum); elsewhere nothing. An I/O error means the
    /// store cannot take them now (nothing may be committed). When the commit then names other bytes, disposing the
    /// writer removes them again; when its outcome is unknown, recovery does, unless the index names them.
    /// </summary>
    ValueTask PrepareAsync(BlobRef blob, CancellationToken cancellationToken);

    /// <summary>Whether <see cref="PrepareAsync"/> wrote the bytes to the store (then they are in place, whatever a concurrent writer of the same bytes does).</summary>
    bool IsPrepared { get; }

    /// <summary>
    /// Before the commit is sent: a commit naming this blob may happen until <paramref name="deadline"/> (the study actor
    /// refuses a command that reaches it later). Recovery leaves the staged blob alone until then (and a margin for clocks),
    /// so that it never discards a blob whose commit is only late.
    /// </summary>
    void KeepStagedUntil(DateTimeOffset deadline);

    /// <summary>Makes the sealed blob readable under <paramref name="blob"/>, atomically replacing any blob there.</summary>
    ValueTask PromoteAsync(BlobRef blob, CancellationToken cancellationToken);

    /// <summary>
    /// Leaves the sealed blob staged when the commit's outcome is unknown (a timeout, a failure after the journal write):
    /// recovery promotes it if the index has it, and discards it otherwise.
    /// </summary>
    void LeaveForRecovery();
}

/// <summary>
/// An open blob: its bytes as a random-access source (sequential streams, seeks, ranges — a WADO-RS frame reads only its
/// bytes). Values of a data set parsed from it stay in it, so it must stay open while they are used.
/// </summary>
public interface IBlobContent : IRandomAccessSource, IAsyncDisposable
{
    BlobRef Blob { get; }
}

/// <summary>A store that writes to a remote store after the commit (S3 with <c>acknowledge = after-local-commit</c>): its backlog, for metrics and health.</summary>
public interface IUploadBacklog
{
    /// <summary>Instances received and not yet in the remote store.</summary>
    int PendingUploads { get; }

    long PendingUploadBytes { get; }

    /// <summary>What the node's receive cache holds (recent instances, and those pending).</summary>
    long CachedBytes { get; }

    long Uploaded { get; }

    long UploadFailures { get; }

    /// <summary>Bytes read back from the remote store (object bodies).</summary>
    long BytesDownloaded { get; }
}

/// <summary>A store that can mend a missing or damaged blob from a copy of its own (a node's receive cache).</summary>
public interface IBlobRepair
{
    /// <summary>Writes the blob again from a local copy with the indexed checksum; false when there is none.</summary>
    Task<bool> TryRepairAsync(BlobRef blob, string sha256, CancellationToken cancellationToken);
}
