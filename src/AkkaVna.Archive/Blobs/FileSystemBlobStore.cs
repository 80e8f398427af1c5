using System.Buffers;
using System.Security.Cryptography;
using AkkaVna.Dicom.Dictionary;
using Microsoft.Win32.SafeHandles;

namespace AkkaVna.Archive.Blobs;

/// <summary>
/// The embedded blob store: files under one folder. A key is <c>fff/study/series/sop.dcm</c>, where <c>fff</c> spreads
/// studies over 4096 folders (a stable hash of the Study Instance UID), so no folder grows past a few thousand entries
/// at two million studies. Blobs are staged in <c>.staging</c> on the same file system and promoted by an atomic rename.
/// Only well-formed UIDs (digits and dots) ever reach a path.
/// </summary>
public sealed class FileSystemBlobStore : IBlobStore
{
    private const string StagingFolder = ".staging";
    private readonly string _root;
    private readonly string _staging;

    public FileSystemBlobStore(string root)
    {
        _root = Directory.CreateDirectory(root).FullName;
        _staging = Directory.CreateDirectory(Path.Combine(_root, StagingFolder)).FullName;
    }

    public string Description => _root;

    public string KeyFor(string studyInstanceUid, string seriesInstanceUid, string sopInstanceUid)
    {
        foreach (var uid in (ReadOnlySpan<string>)[studyInstanceUid, seriesInstanceUid, sopInstanceUid])
            if (!DicomUidRegistry.IsWellFormed(uid)) throw new ArgumentException($"'{uid}' is not a well-formed UID", nameof(studyInstanceUid));
        return $"{StableHash.Fnv1a(studyInstanceUid) & 0xFFF:x3}/{studyInstanceUid}/{seriesInstanceUid}/{sopInstanceUid}.dcm";
    }

    public IBlobWriter Create() => new Writer(this, Path.Combine(_staging, Guid.NewGuid().ToString("N") + ".part"));

    public Stream OpenRead(string key) =>
        new FileStream(PathOf(key), FileMode.Open, FileAccess.Read, FileShare.Read | FileShare.Delete, 64 * 1024, FileOptions.SequentialScan);

    public bool Exists(string key) => File.Exists(PathOf(key));

    public int StagedCount => Directory.EnumerateFiles(_staging, "*.part").Count();

    public void Delete(string key) => File.Delete(PathOf(key));

    public IEnumerable<(string Key, long Length)> List()
    {
        foreach (var fanout in Directory.EnumerateDirectories(_root))
        {
            if (Path.GetFileName(fanout) == StagingFolder) continue;
            foreach (var file in Directory.EnumerateFiles(fanout, "*", SearchOption.AllDirectories))
                yield return (Path.GetRelativePath(_root, file).Replace(Path.DirectorySeparatorChar, '/'), new FileInfo(file).Length);
        }
    }

    public async Task<(int Promoted, int Discarded, int Kept)> RecoverStagedAsync(Func<string, Task<string?>> resolve, TimeSpan olderThan, CancellationToken cancellationToken)
    {
        int promoted = 0, discarded = 0, kept = 0;
        var cutoff = DateTime.UtcNow - olderThan;
        foreach (var file in Directory.EnumerateFiles(_staging, "*.part"))
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (File.GetLastWriteTimeUtc(file) > cutoff) continue;
            string? key;
            try
            {
                key = await resolve(file).ConfigureAwait(false);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                kept++; // undecided (the study or the index did not answer): left for the next run
                continue;
            }
            if (key is null)
            {
                File.Delete(file);
                discarded++;
            }
            else
            {
                Move(file, key);
                promoted++;
            }
        }
        return (promoted, discarded, kept);
    }

    public string FullPath(string key) => PathOf(key);

    private string PathOf(string key)
    {
        // Keys come from KeyFor (or from the index, which got them from KeyFor): still, never leave the root.
        var full = Path.GetFullPath(Path.Combine(_root, key));
        if (!full.StartsWith(_root + Path.DirectorySeparatorChar, StringComparison.Ordinal) || key.Contains(StagingFolder, StringComparison.Ordinal))
            throw new ArgumentException($"'{key}' is not a blob key of this store", nameof(key));
        return full;
    }

    private void Move(string staged, string key)
    {
        var target = PathOf(key);
        Directory.CreateDirectory(Path.GetDirectoryName(target)!);
        File.Move(staged, target, overwrite: true);
    }

    private sealed class Writer(FileSystemBlobStore store, string path) : IBlobWriter
    {
        private readonly SafeFileHandle _handle = File.OpenHandle(path, FileMode.CreateNew, FileAccess.Write, FileShare.Read, FileOptions.None);
        private readonly IncrementalHash _sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        private long _length, _writebackFrom;
        private bool _sealed, _promoted, _disposed;

        public string StagedPath => path;
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
                EarlyWriteback.Start(_handle, _writebackFrom, _length - _writebackFrom);
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

        public void Promote(string key)
        {
            if (!_sealed) throw new InvalidOperationException("seal the blob before promoting it");
            store.Move(path, key);
            _promoted = true;
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
internal static class EarlyWriteback
{
    public const long Chunk = 256 * 1024;
    private const uint SyncFileRangeWrite = 2;
    private static bool _unavailable = !OperatingSystem.IsLinux();

    public static void Start(SafeFileHandle handle, long offset, long length)
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
