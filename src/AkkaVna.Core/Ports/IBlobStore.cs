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
/// </summary>
public interface IBlobStore : IAsyncDisposable
{
    /// <summary>This store's name (<see cref="BlobRef.Store"/>).</summary>
    string Name { get; }

    /// <summary>Where this store keeps its blobs, for logs.</summary>
    string Description { get; }

    /// <summary>The reference of an instance's blob in this store. Throws <see cref="ArgumentException"/> unless every UID is well formed.</summary>
    BlobRef RefFor(string studyInstanceUid, string seriesInstanceUid, string sopInstanceUid, string representation = BlobRef.Original);

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
    /// <paramref name="resolve"/> reads each one and returns the reference to promote it to (its commit happened) or null
    /// (it was never acknowledged: it is deleted); when it throws, the blob stays staged for the next run.
    /// </summary>
    Task<StagedRecovery> RecoverStagedAsync(Func<IBlobContent, Task<BlobRef?>> resolve, TimeSpan olderThan, CancellationToken cancellationToken);
}

/// <summary>One blob being staged.</summary>
public interface IBlobWriter : IAsyncDisposable
{
    long Length { get; }

    ValueTask WriteAsync(ReadOnlySequence<byte> data, CancellationToken cancellationToken);

    ValueTask WriteAsync(ReadOnlyMemory<byte> data, CancellationToken cancellationToken);

    /// <summary>Ends writing: the bytes are flushed to stable storage (when <paramref name="flushToDisk"/>) and their SHA-256 returned (hex).</summary>
    ValueTask<string> SealAsync(bool flushToDisk, CancellationToken cancellationToken);

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
