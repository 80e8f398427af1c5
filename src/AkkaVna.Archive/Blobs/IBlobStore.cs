using System.Buffers;

namespace AkkaVna.Archive.Blobs;

/// <summary>
/// Where instance bytes live (the object storage port). A node writes the blobs it receives itself: actor messages carry
/// only a key and a checksum. Writing is two-phase so that nothing unacknowledged is ever visible and nothing
/// acknowledged is ever lost: a blob is first <em>staged</em> (written, flushed, checksummed) on the receiving node, the
/// study actor commits the index and journal, and only then is the staged blob <em>promoted</em> to its key. A crash in
/// between leaves a staged blob that <see cref="RecoverStagedAsync"/> promotes or discards by asking the index.
/// </summary>
public interface IBlobStore
{
    /// <summary>Where this store keeps its blobs, for logs.</summary>
    string Description { get; }

    /// <summary>The key of an instance. Throws <see cref="ArgumentException"/> unless every UID is well formed.</summary>
    string KeyFor(string studyInstanceUid, string seriesInstanceUid, string sopInstanceUid);

    /// <summary>Begins staging a new blob. Disposing the writer before it is promoted discards it.</summary>
    IBlobWriter Create();

    /// <summary>Opens a promoted blob for reading; throws <see cref="FileNotFoundException"/> when there is none.</summary>
    Stream OpenRead(string key);

    bool Exists(string key);

    /// <summary>
    /// The blob as a local file, for what reads it by path (parsing a header, sending it in a C-STORE sub-operation):
    /// a file store's own file. Throws <see cref="ArgumentException"/> for a malformed key.
    /// </summary>
    string FullPath(string key);

    /// <summary>Deletes a promoted blob (a replaced instance's old key); no error when it is already gone.</summary>
    void Delete(string key);

    /// <summary>Blobs staged and not yet promoted or discarded (in flight, or left by a crash until recovery runs).</summary>
    int StagedCount { get; }

    /// <summary>Every promoted blob with its size (for verification; order unspecified).</summary>
    IEnumerable<(string Key, long Length)> List();

    /// <summary>
    /// Resolves blobs left staged by a crash: <paramref name="resolve"/> gets each one and returns the key to promote it
    /// to (its commit happened) or null (it was never acknowledged: it is deleted); when it throws, the blob stays staged
    /// for the next run. Returns the counts of each.
    /// </summary>
    Task<(int Promoted, int Discarded, int Kept)> RecoverStagedAsync(Func<string, Task<string?>> resolve, TimeSpan olderThan, CancellationToken cancellationToken);
}

/// <summary>One blob being staged.</summary>
public interface IBlobWriter : IAsyncDisposable
{
    /// <summary>The staged file, readable until it is promoted or discarded.</summary>
    string StagedPath { get; }

    long Length { get; }

    ValueTask WriteAsync(ReadOnlySequence<byte> data, CancellationToken cancellationToken);

    ValueTask WriteAsync(ReadOnlyMemory<byte> data, CancellationToken cancellationToken);

    /// <summary>Ends writing: the bytes are flushed to stable storage (when <paramref name="flushToDisk"/>) and their SHA-256 returned (hex).</summary>
    ValueTask<string> SealAsync(bool flushToDisk, CancellationToken cancellationToken);

    /// <summary>Makes the sealed blob readable under <paramref name="key"/>, atomically replacing any blob there.</summary>
    void Promote(string key);

    /// <summary>
    /// Leaves the sealed blob staged when the commit's outcome is unknown (a timeout, a failure after the journal write):
    /// recovery promotes it if the index has it, and discards it otherwise.
    /// </summary>
    void LeaveForRecovery();
}
