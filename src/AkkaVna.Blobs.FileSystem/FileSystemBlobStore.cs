using AkkaVna.Core;
using System.Buffers;
using System.Security.Cryptography;
using AkkaVna.Dicom.Dictionary;
using AkkaVna.Core.Blobs;
using AkkaVna.Core.Model;
using AkkaVna.Core.Ports;

namespace AkkaVna.Blobs.FileSystem;

/// <summary>
/// The embedded blob store: files under one folder. A key is <c>fff/study/series/sop.dcm</c> (another representation:
/// <c>sop.REPRESENTATION.dcm</c>), where <c>fff</c> spreads studies over 4096 folders (a stable hash of the Study
/// Instance UID), so no folder grows past a few thousand entries at two million studies. Blobs are staged in
/// <c>.staging/NODE/</c> on the same file system and promoted by an atomic rename. Only well-formed UIDs (digits and dots)
/// and representation names (lower-case letters, digits and dashes) ever reach a path.
/// <para>
/// Several nodes may share the folder (a cluster's shared mount): each stages in a folder of its own and holds an
/// exclusive lock on its <c>.lock</c> file while it writes, so recovery can tell a live node's blobs in flight (left
/// to it unless older than the grace) from those of a node that died (its lock is free: they are settled at once).
/// </para>
/// </summary>
public sealed class FileSystemBlobStore : IBlobStore
{
    private const string StagingFolder = ".staging";
    private readonly string _root;
    private readonly string _tier;
    private readonly StagingArea _staging;
    private readonly IStagingTarget _target;

    /// <param name="name">The store's name in blob references (<see cref="BlobRef.PrimaryStore"/> for the one ingest writes to).</param>
    /// <param name="node">The writing node's name (its staging folder); nodes sharing the folder must have distinct ones.</param>
    /// <param name="othersGrace">How long a blob staged by another live node may stay before recovery settles it (an unanswered commit).</param>
    public FileSystemBlobStore(string root, string name = BlobRef.PrimaryStore, string tier = BlobRef.DefaultTier, TimeProvider? time = null,
        string node = "local", TimeSpan? othersGrace = null)
    {
        _root = Directory.CreateDirectory(root).FullName;
        _staging = new StagingArea(Path.Combine(_root, StagingFolder), node, name, _root, othersGrace ?? TimeSpan.FromMinutes(10), time ?? TimeProvider.System);
        Name = name;
        _tier = tier;
        _target = new PromoteOnlyTarget(MoveAsync);
    }

    public string Name { get; }

    public string Description => _root;

    /// <summary>A file is replaced by an atomic rename, so keys are not versioned by content here.</summary>
    public BlobRef RefFor(string studyInstanceUid, string seriesInstanceUid, string sopInstanceUid, string representation = BlobRef.Original,
        string? contentSha256 = null) =>
        BlobKeys.For(Name, _tier, studyInstanceUid, seriesInstanceUid, sopInstanceUid, representation);

    public ValueTask<IBlobWriter> CreateAsync(CancellationToken cancellationToken) => ValueTask.FromResult(_staging.Create(_target));

    public ValueTask<IBlobContent> OpenAsync(BlobRef blob, CancellationToken cancellationToken)
    {
        string path = PathOf(blob);
        if (!File.Exists(path)) throw new BlobNotFoundException(blob);
        return ValueTask.FromResult<IBlobContent>(new StagingArea.LocalFileContent(blob, path));
    }

    public ValueTask<bool> ExistsAsync(BlobRef blob, CancellationToken cancellationToken) => ValueTask.FromResult(File.Exists(PathOf(blob)));

    /// <summary>Every node's staged blobs (verification reports them).</summary>
    public ValueTask<int> CountStagedAsync(CancellationToken cancellationToken) => ValueTask.FromResult(_staging.Count());

    public ValueTask DeleteAsync(BlobRef blob, CancellationToken cancellationToken)
    {
        try
        {
            File.Delete(PathOf(blob));
        }
        catch (DirectoryNotFoundException)
        {
            // never written: nothing to delete
        }
        return ValueTask.CompletedTask;
    }

    public async IAsyncEnumerable<BlobListing> ListAsync([System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken)
    {
        await Task.Yield();
        foreach (var fanout in Directory.EnumerateDirectories(_root))
        {
            if (Path.GetFileName(fanout) == StagingFolder) continue;
            foreach (var file in Directory.EnumerateFiles(fanout, "*", SearchOption.AllDirectories))
            {
                cancellationToken.ThrowIfCancellationRequested();
                string key = Path.GetRelativePath(_root, file).Replace(Path.DirectorySeparatorChar, '/');
                // sop.dcm is the original; sop.REPRESENTATION.dcm another representation (UIDs hold digits and dots only).
                yield return new BlobListing(new BlobRef(Name, key, BlobKeys.RepresentationOf(key), _tier), new FileInfo(file).Length);
            }
        }
    }

    public Task<StagedRecovery> RecoverStagedAsync(IStagedBlobResolver resolver, TimeSpan olderThan, CancellationToken cancellationToken) =>
        _staging.RecoverAsync(resolver, _target, olderThan, cancellationToken);

    /// <summary>Releases this node's staging folder (its blobs in flight are then another node's to settle).</summary>
    public ValueTask DisposeAsync() => _staging.DisposeAsync();

    private string PathOf(BlobRef blob)
    {
        if (blob.Store != Name) throw new ArgumentException($"blob {blob} is not in store {Name}", nameof(blob));
        // Keys come from RefFor (or from the index, which got them from RefFor): still, never leave the root.
        var full = Path.GetFullPath(Path.Combine(_root, blob.Key));
        if (!full.StartsWith(_root + Path.DirectorySeparatorChar, StringComparison.Ordinal) || blob.Key.Contains(StagingFolder, StringComparison.Ordinal))
            throw new ArgumentException($"'{blob.Key}' is not a blob key of this store", nameof(blob));
        return full;
    }

    /// <summary>Promotion: an atomic rename into place.</summary>
    private ValueTask MoveAsync(string staged, BlobRef blob, CancellationToken cancellationToken)
    {
        var target = PathOf(blob);
        Directory.CreateDirectory(Path.GetDirectoryName(target)!);
        File.Move(staged, target, overwrite: true);
        return ValueTask.CompletedTask;
    }

}
