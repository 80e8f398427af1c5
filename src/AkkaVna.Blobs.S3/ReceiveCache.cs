namespace AkkaVna.Blobs.S3;

/// <summary>
/// The node's receive cache in front of S3: the instances it received lately, as files named by their object keys
/// (<c>files/KEY</c>), so that reads of recent studies (a viewer opening what a modality just sent) never wait on S3.
/// Those not yet in S3 (<c>acknowledge = after-local-commit</c>) each have a marker in <c>queue/</c>: the persistent upload
/// queue. A marker is made before its file arrives, so a crash never leaves a file that nobody uploads, and removed only
/// once the object is in S3 and checked; files with a marker are never evicted. The cache has a size bound: past it, the
/// least recently used files that are safely in S3 go. One node owns a cache folder (a lock file).
/// </summary>
internal sealed class ReceiveCache : IDisposable
{
    private readonly string _files, _queue;
    private readonly long _maxBytes;
    private readonly Lock _gate = new();
    private readonly Dictionary<string, Entry> _entries = new(StringComparer.Ordinal);
    private readonly FileStream? _lock;
    private long _bytes, _pendingBytes, _clock;

    private sealed class Entry(long length, long lastUse, bool pending)
    {
        public long Length = length;
        public long LastUse = lastUse;
        public bool Pending = pending;
    }

    /// <param name="owner">Whether this process owns the cache (the serving node): it then holds the lock and may evict.
    /// A tool beside it (verify) reads it without owning it.</param>
    public ReceiveCache(string folder, long maxBytes, bool owner)
    {
        _files = Directory.CreateDirectory(Path.Combine(folder, "files")).FullName;
        _queue = Directory.CreateDirectory(Path.Combine(folder, "queue")).FullName;
        _maxBytes = maxBytes;
        if (owner)
        {
            try
            {
                _lock = new FileStream(Path.Combine(folder, ".lock"), FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            }
            catch (IOException e)
            {
                throw new IOException($"the receive cache {folder} is held by another live node (each node needs a cache folder of its own): {e.Message}", e);
            }
        }
        // What a previous run left: its files (oldest first in line for eviction) and its queue.
        var pending = Directory.EnumerateFiles(_queue).Select(m => KeyOfMarker(Path.GetFileName(m))).ToHashSet(StringComparer.Ordinal);
        foreach (var file in Directory.EnumerateFiles(_files, "*", SearchOption.AllDirectories).Where(f => !f.EndsWith(".tmp", StringComparison.Ordinal)))
        {
            var info = new FileInfo(file);
            string key = Path.GetRelativePath(_files, file).Replace(Path.DirectorySeparatorChar, '/');
            bool isPending = pending.Contains(key);
            _entries[key] = new Entry(info.Length, info.LastWriteTimeUtc.Ticks, isPending);
            _bytes += info.Length;
            if (isPending) _pendingBytes += info.Length;
        }
        _clock = DateTime.UtcNow.Ticks;
    }

    public long MaxBytes => _maxBytes;

    public long Bytes { get { lock (_gate) return _bytes; } }

    /// <summary>Bytes received and not yet in S3.</summary>
    public long PendingBytes { get { lock (_gate) return _pendingBytes; } }

    public int Count { get { lock (_gate) return _entries.Count; } }

    private static string MarkerOf(string key) => key.Replace('/', '+');

    private static string KeyOfMarker(string marker) => marker.Replace('+', '/');

    private string PathOf(string key) => Path.Combine(_files, key.Replace('/', Path.DirectorySeparatorChar));

    /// <summary>
    /// Takes a sealed staged file into the cache under <paramref name="key"/> (a move on the same disk), with a queue
    /// marker first when it is not yet in S3. A file already there under the key (the same content: keys are versioned by
    /// checksum) is replaced.
    /// </summary>
    public void Adopt(string staged, string key, bool pending, string? sha256 = null)
    {
        string path = PathOf(key);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        if (pending)
        {
            // The marker before the file: a crash between the two leaves a marker without its file (the staged file is
            // still staged, and recovery adopts it again), never a file that nobody uploads.
            // The marker holds the content's SHA-256 when the writer knows it: the upload checks the file against it.
            File.WriteAllText(Path.Combine(_queue, MarkerOf(key)), sha256 ?? "");
        }
        long length = new FileInfo(staged).Length;
        File.Move(staged, path, overwrite: true);
        lock (_gate)
        {
            if (_entries.Remove(key, out var old))
            {
                _bytes -= old.Length;
                if (old.Pending) _pendingBytes -= old.Length;
            }
            _entries[key] = new Entry(length, ++_clock, pending);
            _bytes += length;
            if (pending) _pendingBytes += length;
        }
    }

    /// <summary>The cached file of a key (its use noted for eviction), or null.</summary>
    public string? TryGet(string key)
    {
        lock (_gate)
        {
            if (!_entries.TryGetValue(key, out var entry)) return null;
            entry.LastUse = ++_clock;
        }
        string path = PathOf(key);
        return File.Exists(path) ? path : null;
    }

    public bool IsPending(string key)
    {
        lock (_gate) return _entries.TryGetValue(key, out var e) && e.Pending;
    }

    /// <summary>The keys waiting for upload (markers), oldest first, whether each has its file yet, and its SHA-256 when known.</summary>
    public IReadOnlyList<(string Key, string? Path, string? Sha256)> Pending()
    {
        var markers = new DirectoryInfo(_queue).EnumerateFiles().OrderBy(f => f.LastWriteTimeUtc).ToList();
        return markers.Select(m =>
        {
            string key = KeyOfMarker(m.Name);
            string path = PathOf(key);
            string? sha = null;
            try
            {
                if (m.Length == 64) sha = File.ReadAllText(m.FullName);
            }
            catch (FileNotFoundException)
            {
                // uploaded meanwhile
            }
            return (key, File.Exists(path) ? path : null, sha is { Length: 64 } && sha.All(char.IsAsciiHexDigitLower) ? sha : null);
        }).ToList();
    }

    /// <summary>The object is in S3 and checked: its marker goes (the file stays, now evictable).</summary>
    public void Uploaded(string key)
    {
        File.Delete(Path.Combine(_queue, MarkerOf(key)));
        lock (_gate)
        {
            if (_entries.TryGetValue(key, out var e) && e.Pending)
            {
                e.Pending = false;
                _pendingBytes -= e.Length;
            }
        }
    }

    /// <summary>Instances held here and not yet in S3 (from the books: no file is read).</summary>
    public int PendingCount
    {
        get { lock (_gate) return _entries.Values.Count(e => e.Pending); }
    }

    /// <summary>Markers whose file never came (their staged file was settled elsewhere) older than <paramref name="age"/>: dropped; their keys.</summary>
    public IReadOnlyList<string> DropMarkersWithoutFile(TimeSpan age)
    {
        var dropped = new List<string>();
        foreach (var marker in new DirectoryInfo(_queue).EnumerateFiles())
        {
            string key = KeyOfMarker(marker.Name);
            if (File.Exists(PathOf(key)) || marker.LastWriteTimeUtc > DateTime.UtcNow - age) continue;
            marker.Delete();
            dropped.Add(key);
        }
        return dropped;
    }

    /// <summary>Removes a key's file and marker (the blob was deleted).</summary>
    public void Remove(string key)
    {
        File.Delete(Path.Combine(_queue, MarkerOf(key)));
        File.Delete(PathOf(key));
        lock (_gate)
        {
            if (_entries.Remove(key, out var e))
            {
                _bytes -= e.Length;
                if (e.Pending) _pendingBytes -= e.Length;
            }
        }
    }

    /// <summary>
    /// Brings the cache under its bound by deleting the least recently used files that are safely in S3 (down to 90 %,
    /// so that eviction runs in batches); what is not yet in S3 is never evicted. Returns how many went.
    /// </summary>
    public int Evict()
    {
        List<(string Key, long Length)> victims = [];
        lock (_gate)
        {
            if (_bytes <= _maxBytes) return 0;
            long target = _maxBytes / 10 * 9, bytes = _bytes;
            foreach (var (key, entry) in _entries.Where(e => !e.Value.Pending).OrderBy(e => e.Value.LastUse))
            {
                if (bytes <= target) break;
                victims.Add((key, entry.Length));
                bytes -= entry.Length;
            }
            foreach (var (key, length) in victims)
            {
                _entries.Remove(key);
                _bytes -= length;
            }
        }
        foreach (var (key, _) in victims)
        {
            try { File.Delete(PathOf(key)); }
            catch (IOException) { } // a reader has it open on a file system that refuses: gone from the cache's books all the same
        }
        return victims.Count;
    }

    public void Dispose() => _lock?.Dispose();
}
