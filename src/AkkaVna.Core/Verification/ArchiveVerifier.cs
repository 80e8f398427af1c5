using System.Security.Cryptography;
using AkkaVna.Dicom.IO;
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

    public bool IsClean => MissingBlobs.Count == 0 && OrphanBlobs.Count == 0 && ChecksumMismatches.Count == 0 && SizeMismatches.Count == 0 && Unparseable.Count == 0;
}

/// <summary>
/// Checks the index against the blob store: a blob for every indexed instance (of the indexed size and SHA-256) and an
/// index row for every blob; with checksums, also that every blob parses as a whole data set (read once for both).
/// Safe on a running node: whatever looks wrong is looked at again at the end, so an instance committed while the check
/// runs is not reported.
/// </summary>
public static class ArchiveVerifier
{
    public static async Task<VerifyReport> VerifyAsync(IArchiveIndex index, IBlobStore blobs, bool checksums, IProgress<(long Done, long Total)>? progress,
        CancellationToken cancellationToken)
    {
        var stored = new Dictionary<BlobRef, long>();
        await foreach (var listing in blobs.ListAsync(cancellationToken)) stored[listing.Blob] = listing.Length;
        var total = (await index.CountAsync(cancellationToken)).Instances;
        List<string> missing = [], mismatched = [], wrongSize = [], unparseable = [];
        var indexedBlobs = new HashSet<BlobRef>();
        long indexed = 0, verified = 0;
        await foreach (var row in index.ListInstancesAsync(null, cancellationToken))
        {
            indexed++;
            indexedBlobs.Add(row.Blob);
            if (indexed % 256 == 0) progress?.Report((indexed, Math.Max(total, indexed)));
            if (!stored.TryGetValue(row.Blob, out var length))
            {
                // Promoted after the listing? Then it is there now.
                if (!await blobs.ExistsAsync(row.Blob, cancellationToken)) missing.Add($"{row.SopInstanceUid} (study {row.StudyInstanceUid}): no blob {row.Blob}");
                continue;
            }
            if (length != row.Size) wrongSize.Add($"{row.SopInstanceUid}: blob {row.Blob} has {length} bytes, the index says {row.Size}");
            if (!checksums) continue;
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
            verified++;
            if (sha != row.Sha256) mismatched.Add($"{row.SopInstanceUid}: blob {row.Blob} has SHA-256 {sha}, the index says {row.Sha256}");
            if (parseError is not null) unparseable.Add($"{row.SopInstanceUid} (study {row.StudyInstanceUid}): blob {row.Blob} is not a whole data set: {parseError}");
        }
        progress?.Report((indexed, indexed));
        var orphans = stored.Keys.Where(b => !indexedBlobs.Contains(b)).ToList();
        if (orphans.Count > 0)
        {
            // Committed while the index was read? Read it once more: what is indexed now is no orphan.
            await foreach (var row in index.ListInstancesAsync(null, cancellationToken)) indexedBlobs.Add(row.Blob);
            orphans.RemoveAll(indexedBlobs.Contains);
        }
        return new VerifyReport(indexed, stored.Count, verified, missing, orphans.Select(b => $"{b}: not in the index").ToList(), mismatched, wrongSize,
            await blobs.CountStagedAsync(cancellationToken)) { Unparseable = unparseable };
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
