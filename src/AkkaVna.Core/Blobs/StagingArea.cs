using System.Buffers;
using System.Security.Cryptography;
using AkkaVna.Core.Model;
using AkkaVna.Core.Ports;
using Microsoft.Win32.SafeHandles;

namespace AkkaVna.Core.Blobs;

/// <summary>
/// What a store does with the blobs staged for it: the staging area keeps the files, the store says how they reach it.
/// </summary>
public interface IStagingTarget
{
    /// <summary>
    /// Whether the store takes a blob's bytes before its commit (<see cref="PrepareAsync"/>): an object store that
    /// acknowledges only what it holds. The area then keeps a note of the reference beside the staged file (a
    /// <c>.key</c> file), so that what a crash or an unknown outcome leaves in the store is removed when nothing names it.
    /// </summary>
    bool PreparesBeforeCommit { get; }

    /// <summary>Before the commit: writes the sealed file's bytes (of SHA-256 <paramref name="sha256"/>) where <paramref name="blob"/> points (an upload).</summary>
    ValueTask PrepareAsync(string staged, BlobRef blob, string sha256, CancellationToken cancellationToken);

    /// <summary>
    /// After the commit (or by recovery, once the index names it): makes the staged file readable under
    /// <paramref name="blob"/> and takes it out of the staging folder (moved or deleted). <paramref name="prepared"/>:
    /// this writer's own <see cref="PrepareAsync"/> put the bytes there already. <paramref name="sha256"/>: the file's
    /// checksum when the writer knows it (null from recovery).
    /// </summary>
    ValueTask PromoteAsync(string staged, BlobRef blob, string? sha256, bool prepared, CancellationToken cancellationToken);

    /// <summary>Removes what <see cref="PrepareAsync"/> wrote for a blob that no commit names; no error when there is nothing.</summary>
    ValueTask DiscardPreparedAsync(BlobRef blob, CancellationToken cancellationToken);
}

/// <summary>A store whose promotion is a move (or an upload) and that writes nothing before the commit.</summary>
public sealed class PromoteOnlyTarget(Func<string, BlobRef, CancellationToken, ValueTask> promote) : IStagingTarget
{
    public bool PreparesBeforeCommit => false;
    public ValueTask PrepareAsync(string staged, BlobRef blob, string sha256, CancellationToken cancellationToken) => ValueTask.CompletedTask;
    public ValueTask PromoteAsync(string staged, BlobRef blob, string? sha256, bool prepared, CancellationToken cancellationToken) => promote(staged, blob, cancellationToken);
    public ValueTask DiscardPreparedAsync(BlobRef blob, CancellationToken cancellationToken) => ValueTask.CompletedTask;
}

/// <summary>
/// Where a blob store's writes land first: files on a local disk, written as they arrive (streamed, SHA-256 on the way,
/// writeback started early), flushed when sealed, and promoted by the store (a rename into a folder, an upload to an
/// object store). Each node stages in a folder of its own under <c>root</c> and holds an exclusive lock on its
/// <c>.lock</c> file while it writes, so that where several nodes share the root, recovery tells a live node's blobs in
/// flight (left to it unless older than a grace) from those of a node that died (its lock is free: settled at once).
/// Blobs staged straight in <c>root</c> by an earlier version are nobody's and settled like this node's own.
/// </summary>
public sealed class StagingArea : IAsyncDisposable
{
    private const string LockFile = ".lock";
    private readonly string _root;
    private readonly string _mine;
    private readonly string _store;
    private readonly string _keyRoot;
    private readonly TimeProvider _time;
    private readonly TimeSpan _othersGrace;
    private readonly EarlyWriteback _writeback = new();
    private readonly Lock _gate = new();
    /// <summary>The staged files this process's writers hold open (recovery of this node's folder never decides those).</summary>
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, byte> _live = new(StringComparer.Ordinal);
    private FileStream? _lock;

    /// <param name="root">The staging folder (created when missing).</param>
    /// <param name="node">This node's name: its own folder under <paramref name="root"/>.</param>
    /// <param name="store">The store's name, for the references of staged content.</param>
    /// <param name="keyRoot">Where staged keys are relative to (staged content is named by its path below it).</param>
    /// <param name="othersGrace">How long another live node's staged blob may stay before recovery settles it (an unanswered commit).</param>
    public StagingArea(string root, string node, string store, string keyRoot, TimeSpan othersGrace, TimeProvider time)
    {
        _root = Directory.CreateDirectory(root).FullName;
        _mine = Path.Combine(_root, SafeName(node));
        _store = store;
        _keyRoot = Path.GetFullPath(keyRoot);
        _othersGrace = othersGrace;
        _time = time;
    }

    /// <summary>The staging root (stores that keep their blobs beside it skip it when they list).</summary>
    public string Root => _root;

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
    /// This node's folder, locked (on first write) for as long as the area lives: a second live writer under the same
    /// node name is refused, and other nodes see this one as alive.
    /// </summary>
    private string Mine()
    {
        lock (_gate)
        {
            if (_lock is null)
            {
                Directory.CreateDirectory(_mine);
                try
                {
                    try
                    {
                        _lock = new FileStream(Path.Combine(_mine, LockFile), FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
                    }
                    catch (DirectoryNotFoundException)
                    {
                        // Another node's recovery removed the folder of this node's previous life just now: made again.
                        Directory.CreateDirectory(_mine);
                        _lock = new FileStream(Path.Combine(_mine, LockFile), FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
                    }
                }
                catch (IOException e)
                {
                    throw new IOException($"the staging folder {_mine} is held by another live node with the same name (node-name must be unique in a cluster): {e.Message}", e);
                }
            }
            return _mine;
        }
    }

    /// <summary>Whether a staging folder's node is gone: its lock can be taken (then held until the folder is settled).</summary>
    private static FileStream? TryTakeOver(string folder)
    {
        try
        {
            return new FileStream(Path.Combine(folder, LockFile), FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null; // held: that node is alive
        }
    }

    private const string NoteExtension = ".key";

    /// <summary>
    /// How far apart the clocks of a cluster's nodes may be: a staged blob whose commit may happen until a deadline
    /// (<see cref="IBlobWriter.KeepStagedUntil"/>) is dated that much later, so that no node's recovery decides it
    /// while another node's study actor may still commit it.
    /// </summary>
    public static readonly TimeSpan ClockSkewAllowance = TimeSpan.FromSeconds(10);

    /// <summary>Begins a staged blob; <paramref name="target"/> says how it reaches the store.</summary>
    public IBlobWriter Create(IStagingTarget target) =>
        new Writer(this, Path.Combine(Mine(), Guid.NewGuid().ToString("N") + ".part"), target);

    /// <summary>The note beside a staged file naming where its bytes were written before the commit.</summary>
    private static string NoteOf(string staged) => Path.ChangeExtension(staged, NoteExtension);

    private static void WriteNote(string staged, BlobRef blob)
    {
        // Written (and flushed) before the bytes go out: whatever a crash leaves in the store, the note names it.
        using var note = new FileStream(NoteOf(staged), FileMode.Create, FileAccess.Write, FileShare.None, 1, FileOptions.WriteThrough);
        note.Write(System.Text.Encoding.UTF8.GetBytes(string.Join('\n', blob.Store, blob.Key, blob.Representation, blob.Tier)));
    }

    private static BlobRef? ReadNote(string note)
    {
        string[] lines;
        try
        {
            var info = new FileInfo(note);
            if (!info.Exists || info.Length > 4096) return null;
            lines = File.ReadAllText(note).Split('\n');
        }
        catch (FileNotFoundException)
        {
            return null;
        }
        return lines.Length == 4 && lines.All(l => l.Length > 0) ? new BlobRef(lines[0], lines[1], lines[2], lines[3]) : null;
    }

    /// <summary>Every node's staged blobs.</summary>
    public int Count() => Directory.EnumerateFiles(_root, "*.part", SearchOption.AllDirectories).Count();

    /// <summary>A staged (or any local) file as blob content.</summary>
    public IBlobContent Content(string path) =>
        new LocalFileContent(new BlobRef(_store, Path.GetRelativePath(_keyRoot, path).Replace(Path.DirectorySeparatorChar, '/')), path);

    /// <summary>
    /// This node's staged blobs older than <paramref name="olderThan"/>; those of a node that is gone, all of them;
    /// those of another live node, when older than the grace. The resolver names the reference to promote each to (its
    /// commit happened) or none (never acknowledged: deleted, with whatever was written for it before a commit that no
    /// index row names); when it throws, the blob stays for the next run.
    /// </summary>
    public async Task<StagedRecovery> RecoverAsync(IStagedBlobResolver resolve, IStagingTarget promote, TimeSpan olderThan, CancellationToken cancellationToken)
    {
        var now = _time.GetUtcNow().UtcDateTime;
        var total = await RecoverFolderAsync(_root, resolve, promote, now - olderThan, promoteEarly: true, cancellationToken).ConfigureAwait(false);
        foreach (var folder in Directory.EnumerateDirectories(_root))
        {
            if (folder == _mine)
            {
                total += await RecoverFolderAsync(folder, resolve, promote, now - olderThan, promoteEarly: true, cancellationToken).ConfigureAwait(false);
                continue;
            }
            var takenOver = TryTakeOver(folder);
            if (takenOver is null)
            {
                total += await RecoverFolderAsync(folder, resolve, promote, now - _othersGrace, promoteEarly: false, cancellationToken).ConfigureAwait(false);
                continue;
            }
            await using (takenOver)
            {
                // A dead node's blobs are settled at once, except those whose commit may still happen: a command it sent
                // can sit in a shard's buffer or a recovering actor's stash until its deadline (their date, see KeepStagedUntil).
                var settled = await RecoverFolderAsync(folder, resolve, promote, now, promoteEarly: true, cancellationToken).ConfigureAwait(false);
                total += settled;
                if (settled.Kept == 0 && !Directory.EnumerateFileSystemEntries(folder).Any(e => Path.GetFileName(e) != LockFile))
                {
                    // Removed while its lock is held: a node of that name coming back meanwhile cannot have written in it.
                    // (It makes the folder again, with a new lock, once this one is gone.)
                    try
                    {
                        File.Delete(Path.Combine(folder, LockFile));
                        Directory.Delete(folder);
                    }
                    catch (IOException) { } // something arrived meanwhile: the next run settles it
                }
            }
        }
        return total;
    }

    /// <param name="cutoff">Only files last written before it are discarded when no commit names them (a later date: a commit may still come).</param>
    /// <param name="promoteEarly">Files after the cutoff are resolved too, and promoted when the index names them (a
    /// committed blob is safe to promote at any time); off for another live node's folder, whose writers may be promoting
    /// their own.</param>
    private async Task<StagedRecovery> RecoverFolderAsync(string folder, IStagedBlobResolver resolve, IStagingTarget target, DateTime cutoff, bool promoteEarly,
        CancellationToken cancellationToken)
    {
        int promoted = 0, discarded = 0, kept = 0;
        // Notes left alone: an upload before a commit whose outcome its writer never learnt, its staged file gone.
        foreach (var note in Directory.EnumerateFiles(folder, "*" + NoteExtension))
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (File.Exists(Path.ChangeExtension(note, ".part")) || File.GetLastWriteTimeUtc(note) > cutoff) continue;
            try
            {
                if (ReadNote(note) is { } written && !await resolve.IsReferencedAsync(written, cancellationToken).ConfigureAwait(false))
                    await target.DiscardPreparedAsync(written, cancellationToken).ConfigureAwait(false);
                File.Delete(note);
                discarded++;
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                kept++; // the index or the store did not answer: the next run tries again
            }
        }
        foreach (var file in Directory.EnumerateFiles(folder, "*.part"))
        {
            cancellationToken.ThrowIfCancellationRequested();
            // A writer of this process still holds it (an ingest, a compression under way — even while a startup recovery runs).
            if (_live.ContainsKey(file)) continue;
            bool young = File.GetLastWriteTimeUtc(file) > cutoff;
            if (young && !promoteEarly) continue;
            BlobRef? resolved;
            try
            {
                await using var staged = Content(file);
                resolved = await resolve.ResolveAsync(staged, cancellationToken).ConfigureAwait(false);
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
                string note = NoteOf(file);
                if (resolved is null && young)
                {
                    kept++; // not named yet, and its commit may still come: decided after its deadline
                }
                else if (resolved is null)
                {
                    if (ReadNote(note) is { } written && !await resolve.IsReferencedAsync(written, cancellationToken).ConfigureAwait(false))
                        await target.DiscardPreparedAsync(written, cancellationToken).ConfigureAwait(false);
                    File.Delete(file);
                    File.Delete(note);
                    discarded++;
                }
                else
                {
                    await target.PromoteAsync(file, resolved, sha256: null, prepared: false, cancellationToken).ConfigureAwait(false);
                    File.Delete(note);
                    promoted++;
                }
            }
            catch (FileNotFoundException)
            {
                // its writer promoted or discarded it meanwhile
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                kept++; // the store (or the index) could not take it or let go of it now: the next run tries again
            }
        }
        return new StagedRecovery(promoted, discarded, kept);
    }

    /// <summary>Releases this node's folder (its blobs in flight are then another node's to settle).</summary>
    public ValueTask DisposeAsync()
    {
        lock (_gate)
        {
            _lock?.Dispose();
            _lock = null;
        }
        return ValueTask.CompletedTask;
    }

    /// <summary>A local file, read through its own streams (each reader opens one; ranged reads seek).</summary>
    public sealed class LocalFileContent(BlobRef blob, string path) : IBlobContent
    {
        public BlobRef Blob { get; } = blob;
        public long Length { get; } = new FileInfo(path).Length;
        public string Description => Blob.ToString();

        public Stream OpenRead() => new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read | FileShare.Delete, 1, FileOptions.SequentialScan);

        public ValueTask DisposeAsync() => ValueTask.CompletedTask;
    }

    private sealed class Writer : IBlobWriter
    {
        private readonly StagingArea area;
        private readonly string path;
        private readonly IStagingTarget target;
        private readonly SafeFileHandle _handle;

        public Writer(StagingArea area, string path, IStagingTarget target)
        {
            this.area = area;
            this.path = path;
            this.target = target;
            area._live[path] = 0;
            try
            {
                _handle = File.OpenHandle(path, FileMode.CreateNew, FileAccess.Write, FileShare.Read, FileOptions.None);
            }
            catch
            {
                area._live.TryRemove(path, out _);
                throw;
            }
        }

        private readonly IncrementalHash _sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        private long _length, _writebackFrom;
        private bool _sealed, _settled, _disposed;
        private BlobRef? _prepared, _prepareFailed;
        private string? _sealedSha;

        public long Length => _length;

        public bool IsPrepared => _prepared is not null;

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
                area._writeback.Start(_handle, _writebackFrom, _length - _writebackFrom);
                _writebackFrom = _length;
            }
        }

        public ValueTask<string> SealAsync(bool flushToDisk, CancellationToken cancellationToken)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (flushToDisk) RandomAccess.FlushToDisk(_handle);
            _sealed = true;
            _handle.Dispose();
            _sealedSha = Convert.ToHexStringLower(_sha.GetHashAndReset());
            return ValueTask.FromResult(_sealedSha);
        }

        public async ValueTask PrepareAsync(BlobRef blob, CancellationToken cancellationToken)
        {
            if (!_sealed) throw new InvalidOperationException("seal the blob before preparing it");
            if (_prepared is not null || _prepareFailed is not null) throw new InvalidOperationException("the blob is prepared already");
            if (!target.PreparesBeforeCommit) return;
            WriteNote(path, blob);
            try
            {
                await target.PrepareAsync(path, blob, _sealedSha!, cancellationToken).ConfigureAwait(false);
            }
            catch
            {
                _prepareFailed = blob; // maybe written in part, or whole after all: the note stays for recovery
                throw;
            }
            _prepared = blob;
        }

        public void KeepStagedUntil(DateTimeOffset deadline)
        {
            if (!_sealed) throw new InvalidOperationException("seal the blob before committing it");
            // Recovery decides only files last written before its cutoff: dated past the deadline (and the clock margin),
            // this one is left alone until no commit naming it can happen any more.
            File.SetLastWriteTimeUtc(path, (deadline + ClockSkewAllowance).UtcDateTime);
        }

        public async ValueTask PromoteAsync(BlobRef blob, CancellationToken cancellationToken)
        {
            if (!_sealed) throw new InvalidOperationException("seal the blob before promoting it");
            await target.PromoteAsync(path, blob, _sealedSha, prepared: _prepared == blob, cancellationToken).ConfigureAwait(false);
            _settled = true;
            DeleteQuietly(NoteOf(path));
        }

        public void LeaveForRecovery()
        {
            if (!_sealed) throw new InvalidOperationException("only a sealed blob can be left for recovery");
            _settled = true; // neither the file nor its note is deleted on dispose
        }

        public async ValueTask DisposeAsync()
        {
            if (_disposed) return;
            _disposed = true;
            _handle.Dispose();
            _sha.Dispose();
            try
            {
                await SettleAsync().ConfigureAwait(false);
            }
            finally
            {
                area._live.TryRemove(path, out _); // from now on (left for it, or gone) the file is recovery's
            }
        }

        private async ValueTask SettleAsync()
        {
            if (_settled) return;
            if (_prepared is { } written)
            {
                // The commit named other bytes (a refusal, or a duplicate of other content): what was written goes.
                try
                {
                    await target.DiscardPreparedAsync(written, CancellationToken.None).ConfigureAwait(false);
                }
                catch (Exception e) when (e is IOException or TimeoutException or OperationCanceledException)
                {
                    return; // the store is out of reach: recovery removes it (the note names it)
                }
                DeleteQuietly(NoteOf(path));
            }
            // After a failed preparation the note stays (the bytes may be there after all): recovery asks the index.
            DeleteQuietly(path);
        }

        private static void DeleteQuietly(string file)
        {
            try { File.Delete(file); }
            catch (IOException) { } // left for recovery, which discards what the index does not know
        }
    }
}

/// <summary>
/// Starts writing a staged blob's pages to disk while the rest of it is still arriving (Linux <c>sync_file_range</c>,
/// which does not wait), so the fsync that seals it waits only for the tail instead of the whole instance.
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
