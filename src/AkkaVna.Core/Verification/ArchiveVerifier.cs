using System.Security.Cryptography;
using AkkaVna.Dicom.IO;
using AkkaVna.Core.Blobs;
using AkkaVna.Core.Model;
using AkkaVna.Core.Ports;

namespace AkkaVna.Core.Verification;

/// <summary>What <see cref="ArchiveVerifier"/> found. Clean means every indexed instance has its blob with its checksum and every blob is indexed.</summary>
public sealed record VerifyReport(
    long IndexedInstances,
    long Blobs,
    long ChecksumsVerified,
    IReadOnlyList<string> MissingBlobs,
    IReadOnlyList<string> OrphanBlobs,
    IReadOnlyList<string> ChecksumMismatches,
    IReadOnlyList<string> SizeMismatches,
    int StagedBlobs)
{
    /// <summary>Archived instances whose blob is not a whole DICOM data set (checked with the checksums), each with why.</summary>
    public IReadOnlyList<string> Unparseable { get; init; } = [];

    /// <summary>With repair: the missing or damaged blobs written again from a good local copy.</summary>
    public IReadOnlyList<string> Repaired { get; init; } = [];

    /// <summary>With repair: the missing or damaged blobs no copy here can mend.</summary>
    public IReadOnlyList<string> Unrepairable { get; init; } = [];

    /// <summary>Originals kept beside compressed copies (<c>compression.keep-original</c>), checked like instances' blobs.</summary>
    public long KeptOriginals { get; init; }

    /// <summary>Whether the verification spilled to disk (more blobs than it holds in memory).</summary>
    public bool Spilled { get; init; }

    /// <summary>Whether the missing or damaged blobs were all repaired (true when there were none).</summary>
    private bool Mended => Repaired.Count > 0 && Unrepairable.Count == 0;

    /// <summary>Of <see cref="Unparseable"/>, those whose bytes are the indexed ones (archived so: nothing to repair them from).</summary>
    public int UnparseableAsIndexed { get; init; }

    public bool IsClean => Mended ? OrphanBlobs.Count == 0 && UnparseableAsIndexed == 0
        : MissingBlobs.Count == 0 && ChecksumMismatches.Count == 0 && SizeMismatches.Count == 0 && OrphanBlobs.Count == 0 && Unparseable.Count == 0;
}

/// <summary>How <see cref="ArchiveVerifier"/> runs.</summary>
public sealed record VerifyOptions
{
    /// <summary>Read every blob to compare its SHA-256 and parse it (else presence and sizes only).</summary>
    public bool Checksums { get; init; } = true;
    /// <summary>Write missing or damaged blobs again from a good local copy (<see cref="IBlobRepair"/>: a node's receive cache).</summary>
    public bool Repair { get; init; }
    /// <summary>
    /// How many blob listings the check holds in memory; past it, both sides spill to files hashed into buckets on disk
    /// and are compared a bucket at a time, so a store of millions of blobs is checked in bounded memory.
    /// </summary>
    public int InMemoryBlobs { get; init; } = 250_000;
    /// <summary>The spill's bucket count.</summary>
    public int SpillBuckets { get; init; } = 256;
    /// <summary>Where spill files go (deleted at the end); null: the system's temporary folder.</summary>
    public string? SpillFolder { get; init; }
}

/// <summary>
/// Checks the index against the blob store: a blob for every indexed instance (of the indexed size and SHA-256) and an
/// index row for every blob; with checksums, also that every blob parses as a whole data set (read once for both).
/// The store is listed a page at a time and the index streamed; up to <see cref="VerifyOptions.InMemoryBlobs"/> blobs the
/// two meet in memory, past it both sides spill to hashed bucket files compared one bucket at a time (memory bounded by a
/// bucket, whatever the store holds). Safe on a running node: whatever looks wrong is looked at again at the end, so an
/// instance committed while the check runs is not reported. With repair, what is missing or damaged is written again
/// from a good local copy where the store has one.
/// </summary>
public static class ArchiveVerifier
{
    private readonly record struct Row(string Sop, string Study, BlobRef Blob, long Size, string Sha256);

    private sealed class Problems
    {
        public readonly List<string> Missing = [], Mismatched = [], WrongSize = [], Unparseable = [];
        public readonly List<Row> ToRepair = [];
        public long Indexed, Verified, Kept;
        public int UnparseableAsIndexed;
    }

    public static async Task<VerifyReport> VerifyAsync(IArchiveIndex index, IBlobStore blobs, VerifyOptions options, IProgress<(long Done, long Total)>? progress,
        CancellationToken cancellationToken)
    {
        var total = (await index.CountAsync(cancellationToken)).Instances;
        var problems = new Problems();
        var stored = new Dictionary<BlobRef, long>();
        Spill? spill = null;
        long blobCount = 0;
        var orphanCandidates = new List<BlobRef>();
        try
        {
            await foreach (var listing in blobs.ListAsync(cancellationToken))
            {
                blobCount++;
                if (spill is not null) spill.Listing(listing.Blob, listing.Length);
                else if (stored.Count < options.InMemoryBlobs) stored[listing.Blob] = listing.Length;
                else
                {
                    spill = new Spill(options);
                    foreach (var (blob, length) in stored) spill.Listing(blob, length);
                    stored.Clear();
                    spill.Listing(listing.Blob, listing.Length);
                }
            }
            await foreach (var row in IndexedAsync(index, cancellationToken))
            {
                if (spill is not null)
                {
                    spill.Indexed(row);
                    continue;
                }
                await CheckAsync(row, stored.TryGetValue(row.Blob, out var length) ? length : null, blobs, options, problems, cancellationToken);
                stored.Remove(row.Blob);
                if (problems.Indexed % 256 == 0) progress?.Report((problems.Indexed, Math.Max(total, problems.Indexed)));
            }
            if (spill is null) orphanCandidates.AddRange(stored.Keys);
            else
            {
                // A bucket at a time: its listings in memory, its index rows streamed against them.
                spill.EndWriting();
                for (int b = 0; b < spill.Buckets; b++)
                {
                    var bucket = spill.ReadListings(b);
                    foreach (var row in spill.ReadIndexed(b))
                    {
                        await CheckAsync(row, bucket.TryGetValue(row.Blob, out var length) ? length : null, blobs, options, problems, cancellationToken);
                        bucket.Remove(row.Blob);
                        if (problems.Indexed % 256 == 0) progress?.Report((problems.Indexed, Math.Max(total, problems.Indexed)));
                    }
                    orphanCandidates.AddRange(bucket.Keys);
                }
            }
        }
        finally
        {
            spill?.Dispose();
        }
        progress?.Report((problems.Indexed, problems.Indexed));
        // Committed while the index was read? What the index names now is no orphan.
        var orphans = new List<string>();
        foreach (var blob in orphanCandidates)
        {
            if (BlobKeys.Parse(blob.Key) is var (study, _, sop) && (await index.FindInstanceAsync(sop, cancellationToken) is { } now && now.Blob == blob
                || await index.ListKeptBlobsAsync(study, cancellationToken).AnyAsync(k => k.Blob == blob, cancellationToken))) continue;
            orphans.Add($"{blob}: not in the index");
        }
        List<string> repaired = [], unrepairable = [];
        if (options.Repair)
        {
            foreach (var row in problems.ToRepair)
            {
                bool done;
                try
                {
                    done = blobs is IBlobRepair repair && await repair.TryRepairAsync(row.Blob, row.Sha256, cancellationToken);
                }
                catch (IOException e)
                {
                    unrepairable.Add($"{row.Sop} (study {row.Study}): blob {row.Blob}: the store cannot take it now: {e.Message}");
                    continue;
                }
                (done ? repaired : unrepairable).Add(done ? $"{row.Sop}: blob {row.Blob} written again from a local copy"
                    : $"{row.Sop} (study {row.Study}): blob {row.Blob}: no good copy here (restore it from a backup or have it sent again)");
            }
        }
        return new VerifyReport(problems.Indexed - problems.Kept, blobCount, problems.Verified, problems.Missing, orphans, problems.Mismatched, problems.WrongSize,
            await blobs.CountStagedAsync(cancellationToken))
        {
            KeptOriginals = problems.Kept, Unparseable = problems.Unparseable, UnparseableAsIndexed = problems.UnparseableAsIndexed, Repaired = repaired, Unrepairable = unrepairable, Spilled = spill is not null,
        };
    }

    /// <summary>How a kept original is named in the report (beside its instance's SOP Instance UID).</summary>
    private const string KeptSuffix = " (kept original)";

    /// <summary>Every blob the index names: each instance's current one, then the originals kept beside compressed copies.</summary>
    private static async IAsyncEnumerable<Row> IndexedAsync(IArchiveIndex index, [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken)
    {
        await foreach (var i in index.ListInstancesAsync(null, cancellationToken))
            yield return new Row(i.SopInstanceUid, i.StudyInstanceUid, i.Blob, i.Size, i.Sha256);
        await foreach (var k in index.ListKeptBlobsAsync(null, cancellationToken))
            yield return new Row(k.SopInstanceUid + KeptSuffix, k.StudyInstanceUid, k.Blob, k.Size, k.Sha256);
    }

    /// <summary>One indexed instance against what the listing says of its blob (<paramref name="listedLength"/>: null when not listed).</summary>
    private static async Task CheckAsync(Row row, long? listedLength, IBlobStore blobs, VerifyOptions options, Problems problems, CancellationToken cancellationToken)
    {
        problems.Indexed++;
        if (row.Sop.EndsWith(KeptSuffix, StringComparison.Ordinal)) problems.Kept++;
        if (listedLength is not { } length)
        {
            // Promoted after the listing (or held in a node's cache, not yet uploaded)? Then it is there now.
            if (!await blobs.ExistsAsync(row.Blob, cancellationToken))
            {
                problems.Missing.Add($"{row.Sop} (study {row.Study}): no blob {row.Blob}");
                problems.ToRepair.Add(row);
            }
            return;
        }
        bool damaged = length != row.Size;
        if (damaged) problems.WrongSize.Add($"{row.Sop}: blob {row.Blob} has {length} bytes, the index says {row.Size}");
        if (!options.Checksums)
        {
            if (damaged) problems.ToRepair.Add(row);
            return;
        }
        // One read for both: the checksum of the bytes and whether they parse as a whole data set.
        string sha;
        string? parseError = null;
        await using (var content = await blobs.OpenAsync(row.Blob, cancellationToken))
        await using (var stream = new HashingReadStream(content.OpenRead()))
        {
            try
            {
                await Task.Run(() => DatasetInspector.InspectFile(stream), cancellationToken);
            }
            catch (DicomParseException e)
            {
                parseError = e.Message;
            }
            sha = stream.FinishHash();
        }
        problems.Verified++;
        if (sha != row.Sha256) problems.Mismatched.Add($"{row.Sop}: blob {row.Blob} has SHA-256 {sha}, the index says {row.Sha256}");
        if (damaged || sha != row.Sha256) problems.ToRepair.Add(row);
        if (parseError is null) return;
        problems.Unparseable.Add($"{row.Sop} (study {row.Study}): blob {row.Blob} is not a whole data set: {parseError}");
        if (!damaged && sha == row.Sha256) problems.UnparseableAsIndexed++;
    }

    /// <summary>
    /// Both sides of the check on disk, hashed by blob reference into bucket files (tab-separated lines: references hold
    /// UIDs, digits, dots and names only), so that each bucket's listings fit in memory.
    /// </summary>
    private sealed class Spill : IDisposable
    {
        private readonly string _folder;
        private readonly StreamWriter[] _listings, _indexed;

        public Spill(VerifyOptions options)
        {
            _folder = Directory.CreateDirectory(Path.Combine(options.SpillFolder ?? Path.GetTempPath(), "akkavna-verify-" + Guid.NewGuid().ToString("N"))).FullName;
            Buckets = options.SpillBuckets;
            _listings = Enumerable.Range(0, Buckets).Select(b => new StreamWriter(Path.Combine(_folder, $"blobs-{b}"))).ToArray();
            _indexed = Enumerable.Range(0, Buckets).Select(b => new StreamWriter(Path.Combine(_folder, $"index-{b}"))).ToArray();
        }

        public int Buckets { get; }

        private int BucketOf(BlobRef blob) => (int)((StableHash.Fnv1a(blob.Store + "\t" + blob.Key) & 0x7FFFFFFF) % (uint)Buckets);

        private static string Line(BlobRef b) => string.Join('\t', b.Store, b.Key, b.Representation, b.Tier);

        private static BlobRef RefOf(string[] f) => new(f[0], f[1], f[2], f[3]);

        public void Listing(BlobRef blob, long length) => _listings[BucketOf(blob)].WriteLine(Line(blob) + "\t" + length);

        public void Indexed(Row row) => _indexed[BucketOf(row.Blob)].WriteLine(string.Join('\t', Line(row.Blob), row.Size, row.Sha256, row.Sop, row.Study));

        public void EndWriting()
        {
            foreach (var w in _listings.Concat(_indexed)) w.Dispose();
        }

        public Dictionary<BlobRef, long> ReadListings(int bucket)
        {
            var listings = new Dictionary<BlobRef, long>();
            foreach (var line in File.ReadLines(Path.Combine(_folder, $"blobs-{bucket}")))
            {
                var f = line.Split('\t');
                listings[RefOf(f)] = long.Parse(f[4], System.Globalization.CultureInfo.InvariantCulture);
            }
            return listings;
        }

        public IEnumerable<Row> ReadIndexed(int bucket)
        {
            foreach (var line in File.ReadLines(Path.Combine(_folder, $"index-{bucket}")))
            {
                var f = line.Split('\t');
                yield return new Row(f[6], f[7], RefOf(f), long.Parse(f[4], System.Globalization.CultureInfo.InvariantCulture), f[5]);
            }
        }

        public void Dispose()
        {
            foreach (var w in _listings.Concat(_indexed)) w.Dispose();
            try { Directory.Delete(_folder, recursive: true); }
            catch (IOException) { }
        }
    }

    /// <summary>
    /// Reads a seekable stream through, hashing each byte once in order (the parser seeks back over the File Meta it has
    /// peeked at, never forward), so one read checks both the checksum and the structure. Whatever the parser leaves
    /// unread at the end is read and hashed by <see cref="FinishHash"/>.
    /// </summary>
    private sealed class HashingReadStream(Stream inner) : Stream
    {
        private readonly IncrementalHash _sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        private long _hashed;

        public string FinishHash()
        {
            inner.Position = _hashed;
            var buffer = new byte[64 * 1024];
            while (Read(buffer, 0, buffer.Length) > 0) { }
            return Convert.ToHexStringLower(_sha.GetHashAndReset());
        }

        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

        public override int Read(Span<byte> buffer)
        {
            long at = inner.Position;
            if (at > _hashed) throw new InvalidOperationException("the hashing stream was sought past bytes it has not hashed");
            int n = inner.Read(buffer);
            long end = at + n;
            if (end > _hashed)
            {
                _sha.AppendData(buffer.Slice((int)(_hashed - at), (int)(end - _hashed)));
                _hashed = end;
            }
            return n;
        }

        public override bool CanRead => true;
        public override bool CanSeek => true;
        public override bool CanWrite => false;
        public override long Length => inner.Length;
        public override long Position { get => inner.Position; set => inner.Position = value; }
        public override void Flush() { }
        public override long Seek(long offset, SeekOrigin origin) => inner.Seek(offset, origin);
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                inner.Dispose();
                _sha.Dispose();
            }
            base.Dispose(disposing);
        }
    }
}
