using AkkaVna.Core;
using System.Buffers;
using System.Security.Cryptography;
using AkkaVna.Dicom.Dictionary;
using Microsoft.Win32.SafeHandles;
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
    private const string LockFile = ".lock";
    private readonly string _root;
    private readonly string _stagingRoot;
    private readonly string _staging;
    private readonly string _tier;
    private readonly TimeProvider _time;
    private readonly TimeSpan _othersGrace;
    private readonly EarlyWriteback _writeback = new();
    private readonly Lock _lockGate = new();
    private FileStream? _stagingLock;

    /// <param name="name">The store's name in blob references (<see cref="BlobRef.PrimaryStore"/> for the one ingest writes to).</param>
    /// <param name="node">The writing node's name (its staging folder); nodes sharing the folder must have distinct ones.</param>
    /// <param name="othersGrace">How long a blob staged by another live node may stay before recovery settles it (an unanswered commit).</param>
    public FileSystemBlobStore(string root, string name = BlobRef.PrimaryStore, string tier = BlobRef.DefaultTier, TimeProvider? time = null,
        string node = "local", TimeSpan? othersGrace = null)
    {
        _time = time ?? TimeProvider.System;
        _root = Directory.CreateDirectory(root).FullName;
        _stagingRoot = Directory.CreateDirectory(Path.Combine(_root, StagingFolder)).FullName;
        _staging = Path.Combine(_stagingRoot, SafeName(node));
        _othersGrace = othersGrace ?? TimeSpan.FromMinutes(10);
        Name = name;
        _tier = tier;
    }

    /// <summary>A node name as a folder name: letters, digits, dots, dashes and underscores kept, anything else hex-escaped.</summary>
    private static string SafeName(string node)
    {
        var b = new System.Text.StringBuilder();
        foreach (char c in node)
        {
            if (char.IsAsciiLetterOrDigit(c) || c is '-' or '_' || (c == '.' && b.Length > 0)) b.Append(c);
            else b.Append('~').Append(((int)c).ToString("x4", System.Globalization.CultureInfo.InvariantCulture));
        }
        return b.Length is > 0 and <= 200 ? b.ToString() : Convert.ToHexStringLower(SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(node)))[..32];
    }

    /// <summary>
    /// This node's staging folder, locked (on first write) for as long as the store lives: a second live writer under the
    /// same node name is refused, and other nodes see this one as alive.
    /// </summary>
    private string Staging()
    {
        lock (_lockGate)
        {
            if (_stagingLock is null)
            {
                Directory.CreateDirectory(_staging);
                try
                {
                    _stagingLock = new FileStream(Path.Combine(_staging, LockFile), FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
                }
                catch (IOException e)
                {
                    throw new IOException($"the staging folder {_staging} is held by another live node with the same name (node-name must be unique in a cluster): {e.Message}", e);
                }
            }
            return _staging;
        }
    }

    /// <summary>Releases this node's staging folder (its blobs in flight are then another node's to settle).</summary>
    public ValueTask DisposeAsync()
    {
        lock (_lockGate)
        {
            _stagingLock?.Dispose();
            _stagingLock = null;
        }
        return ValueTask.CompletedTask;
    }

    /// <summary>Whether a staging folder's node is gone: its lock can be taken (then it is held until the folder is settled).</summary>
    private static FileStream? TryTakeOver(string folder)
    {
        try
        {
            return new FileStream(Path.Combine(folder, LockFile), FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
        }
        catch (IOException)
        {
            return null; // held: that node is alive
        }
        catch (UnauthorizedAccessException)
        {
            return null;
        }
    }

    public string Name { get; }

    public string Description => _root;

    public BlobRef RefFor(string studyInstanceUid, string seriesInstanceUid, string sopInstanceUid, string representation = BlobRef.Original)
    {
        foreach (var uid in (ReadOnlySpan<string>)[studyInstanceUid, seriesInstanceUid, sopInstanceUid])
            if (!DicomUidRegistry.IsWellFormed(uid)) throw new ArgumentException($"'{uid}' is not a well-formed UID", nameof(studyInstanceUid));
        if (representation.Length is 0 or > 32 || !representation.All(c => char.IsAsciiLetterLower(c) || char.IsAsciiDigit(c) || c == '-'))
            throw new ArgumentException($"'{representation}' is not a representation name (lower-case letters, digits and dashes)", nameof(representation));
        string file = representation == BlobRef.Original ? sopInstanceUid : sopInstanceUid + "." + representation;
        return new BlobRef(Name, $"{StableHash.Fnv1a(studyInstanceUid) & 0xFFF:x3}/{studyInstanceUid}/{seriesInstanceUid}/{file}.dcm", representation, _tier);
    }

    public ValueTask<IBlobWriter> CreateAsync(CancellationToken cancellationToken) =>
        ValueTask.FromResult<IBlobWriter>(new Writer(this, Path.Combine(Staging(), Guid.NewGuid().ToString("N") + ".part")));

    public ValueTask<IBlobContent> OpenAsync(BlobRef blob, CancellationToken cancellationToken)
    {
        string path = PathOf(blob);
        if (!File.Exists(path)) throw new BlobNotFoundException(blob);
        return ValueTask.FromResult<IBlobContent>(new FileContent(blob, path));
    }

    public ValueTask<bool> ExistsAsync(BlobRef blob, CancellationToken cancellationToken) => ValueTask.FromResult(File.Exists(PathOf(blob)));

    /// <summary>Every node's staged blobs (verification reports them).</summary>
    public ValueTask<int> CountStagedAsync(CancellationToken cancellationToken) =>
        ValueTask.FromResult(Directory.EnumerateFiles(_stagingRoot, "*.part", SearchOption.AllDirectories).Count());

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
                string name = Path.GetFileNameWithoutExtension(file);
                int dot = name.LastIndexOf('.');
                string representation = dot > 0 && !char.IsAsciiDigit(name[dot + 1]) ? name[(dot + 1)..] : BlobRef.Original;
                yield return new BlobListing(new BlobRef(Name, key, representation, _tier), new FileInfo(file).Length);
            }
        }
    }

    /// <summary>
    /// This node's staged blobs older than <paramref name="olderThan"/>; those of a node that is gone (its lock is free),
    /// all of them; those of another live node, when older than the grace the store was made with.
    /// </summary>
    public async Task<StagedRecovery> RecoverStagedAsync(Func<IBlobContent, Task<BlobRef?>> resolve, TimeSpan olderThan, CancellationToken cancellationToken)
    {
        var total = new StagedRecovery(0, 0, 0);
        var now = _time.GetUtcNow().UtcDateTime;
        // Blobs staged by an earlier version, straight in .staging/: nobody owns them.
        total += await RecoverFolderAsync(_stagingRoot, _stagingRoot, resolve, now - olderThan, cancellationToken).ConfigureAwait(false);
        foreach (var folder in Directory.EnumerateDirectories(_stagingRoot))
        {
            if (folder == _staging)
            {
                total += await RecoverFolderAsync(folder, folder, resolve, now - olderThan, cancellationToken).ConfigureAwait(false);
                continue;
            }
            var takenOver = TryTakeOver(folder);
            if (takenOver is null)
            {
                total += await RecoverFolderAsync(folder, folder, resolve, now - _othersGrace, cancellationToken).ConfigureAwait(false);
                continue;
            }
            StagedRecovery settled;
            await using (takenOver)
                settled = await RecoverFolderAsync(folder, folder, resolve, DateTime.MaxValue, cancellationToken).ConfigureAwait(false);
            total += settled;
            if (settled.Kept == 0 && !Directory.EnumerateFiles(folder, "*.part").Any())
            {
                try { Directory.Delete(folder, recursive: true); }
                catch (IOException) { } // a node of that name came back meanwhile
            }
        }
        return total;
    }

    private async Task<StagedRecovery> RecoverFolderAsync(string folder, string keyFolder, Func<IBlobContent, Task<BlobRef?>> resolve, DateTime cutoff,
        CancellationToken cancellationToken)
    {
        int promoted = 0, discarded = 0, kept = 0;
        foreach (var file in Directory.EnumerateFiles(folder, "*.part"))
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (File.GetLastWriteTimeUtc(file) > cutoff) continue;
            BlobRef? target;
            try
            {
                string key = Path.GetRelativePath(_root, Path.Combine(keyFolder, Path.GetFileName(file))).Replace(Path.DirectorySeparatorChar, '/');
                await using var staged = new FileContent(new BlobRef(Name, key), file);
                target = await resolve(staged).ConfigureAwait(false);
            }
            catch (FileNotFoundException)
            {
                continue; // its writer settled it meanwhile
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                kept++; // undecided (the study or the index did not answer): left for the next run
                continue;
            }
            try
            {
                if (target is null)
                {
                    File.Delete(file);
                    discarded++;
                }
                else
                {
                    Move(file, target);
                    promoted++;
                }
            }
            catch (FileNotFoundException)
            {
                // its writer promoted or discarded it meanwhile
            }
        }
        return new StagedRecovery(promoted, discarded, kept);
    }

    private string PathOf(BlobRef blob)
    {
        if (blob.Store != Name) throw new ArgumentException($"blob {blob} is not in store {Name}", nameof(blob));
        // Keys come from RefFor (or from the index, which got them from RefFor): still, never leave the root.
        var full = Path.GetFullPath(Path.Combine(_root, blob.Key));
        if (!full.StartsWith(_root + Path.DirectorySeparatorChar, StringComparison.Ordinal) || blob.Key.Contains(StagingFolder, StringComparison.Ordinal))
            throw new ArgumentException($"'{blob.Key}' is not a blob key of this store", nameof(blob));
        return full;
    }

    private void Move(string staged, BlobRef blob)
    {
        var target = PathOf(blob);
        Directory.CreateDirectory(Path.GetDirectoryName(target)!);
        File.Move(staged, target, overwrite: true);
    }

    /// <summary>A blob file, read through its own streams (each reader opens one; ranged reads seek).</summary>
    private sealed class FileContent(BlobRef blob, string path) : IBlobContent
    {
        public BlobRef Blob { get; } = blob;
        public long Length { get; } = new FileInfo(path).Length;
        public string Description => Blob.ToString();

        public Stream OpenRead() => new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read | FileShare.Delete, 1, FileOptions.SequentialScan);

        public ValueTask DisposeAsync() => ValueTask.CompletedTask;
    }

    private sealed class Writer(FileSystemBlobStore store, string path) : IBlobWriter
    {
        private readonly SafeFileHandle _handle = File.OpenHandle(path, FileMode.CreateNew, FileAccess.Write, FileShare.Read, FileOptions.None);
        private readonly IncrementalHash _sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        private long _length, _writebackFrom;
        private bool _sealed, _promoted, _disposed;

        public long Length => _length;

        public ValueTask WriteAsync(ReadOnlySequence<byte> data, CancellationToken cancellationToken)
        {
            foreach (var segment in data) Write(segment.Span);
            return ValueTask.CompletedTask;
        }

        public ValueTask WriteAsync(ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
        {
            Write(data.Span);
            return ValueTask.CompletedTask;
        }

        private void Write(ReadOnlySpan<byte> span)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (_sealed) throw new InvalidOperationException("the blob is sealed");
            if (span.IsEmpty) return;
            RandomAccess.Write(_handle, span, _length);
            _sha.AppendData(span);
            _length += span.Length;
            if (_length - _writebackFrom >= EarlyWriteback.Chunk)
            {
                store._writeback.Start(_handle, _writebackFrom, _length - _writebackFrom);
                _writebackFrom = _length;
            }
        }

        public ValueTask<string> SealAsync(bool flushToDisk, CancellationToken cancellationToken)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (flushToDisk) RandomAccess.FlushToDisk(_handle);
            _sealed = true;
            _handle.Dispose();
            return ValueTask.FromResult(Convert.ToHexStringLower(_sha.GetHashAndReset()));
        }

        public ValueTask PromoteAsync(BlobRef blob, CancellationToken cancellationToken)
        {
            if (!_sealed) throw new InvalidOperationException("seal the blob before promoting it");
            store.Move(path, blob);
            _promoted = true;
            return ValueTask.CompletedTask;
        }

        public void LeaveForRecovery()
        {
            if (!_sealed) throw new InvalidOperationException("only a sealed blob can be left for recovery");
            _promoted = true; // not deleted on dispose
        }

        public ValueTask DisposeAsync()
        {
            if (_disposed) return ValueTask.CompletedTask;
            _disposed = true;
            _handle.Dispose();
            _sha.Dispose();
            if (!_promoted)
            {
                try { File.Delete(path); }
                catch (IOException) { } // left for recovery, which discards what the index does not know
            }
            return ValueTask.CompletedTask;
        }
    }
}

/// <summary>
/// Starts writing a blob's pages to disk while the rest of it is still arriving (Linux <c>sync_file_range</c>, which does
/// not wait), so the fsync that seals it waits only for the tail instead of the whole instance.
/// </summary>
internal sealed class EarlyWriteback
{
    public const long Chunk = 256 * 1024;
    private const uint SyncFileRangeWrite = 2;
    private bool _unavailable = !OperatingSystem.IsLinux();

    public void Start(SafeFileHandle handle, long offset, long length)
    {
        if (_unavailable) return;
        try
        {
            sync_file_range((int)handle.DangerousGetHandle(), offset, length, SyncFileRangeWrite);
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            _unavailable = true; // an optimisation only: the seal's fsync still makes the blob durable
        }
    }

    [System.Runtime.InteropServices.DllImport("libc", SetLastError = true)]
    private static extern int sync_file_range(int fd, long offset, long nbytes, uint flags);
}
