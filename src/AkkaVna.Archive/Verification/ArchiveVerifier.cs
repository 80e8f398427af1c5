using System.Security.Cryptography;
using AkkaVna.Archive.Blobs;
using AkkaVna.Archive.Index;

namespace AkkaVna.Archive.Verification;

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
    public bool IsClean => MissingBlobs.Count == 0 && OrphanBlobs.Count == 0 && ChecksumMismatches.Count == 0 && SizeMismatches.Count == 0;
}

/// <summary>
/// Checks the index against the blob store: a blob for every indexed instance (of the indexed size and SHA-256) and an
/// index row for every blob. Safe on a running node: whatever looks wrong is looked at again at the end, so an instance
/// committed while the check runs is not reported.
/// </summary>
public static class ArchiveVerifier
{
    public static async Task<VerifyReport> VerifyAsync(IArchiveIndex index, IBlobStore blobs, bool checksums, IProgress<(long Done, long Total)>? progress,
        CancellationToken cancellationToken)
    {
        var onDisk = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (var (key, length) in blobs.List()) onDisk[key] = length;
        var total = (await index.CountAsync(cancellationToken)).Instances;
        List<string> missing = [], mismatched = [], wrongSize = [];
        var indexedKeys = new HashSet<string>(StringComparer.Ordinal);
        long indexed = 0, verified = 0;
        await foreach (var row in index.ListInstancesAsync(null, cancellationToken))
        {
            indexed++;
            indexedKeys.Add(row.BlobKey);
            if (!onDisk.TryGetValue(row.BlobKey, out var length))
            {
                if (!blobs.Exists(row.BlobKey)) missing.Add($"{row.SopInstanceUid} (study {row.StudyInstanceUid}): no blob at {row.BlobKey}");
            }
            else if (length != row.Size) wrongSize.Add($"{row.SopInstanceUid}: blob {row.BlobKey} has {length} bytes, the index says {row.Size}");
            else if (checksums)
            {
                string sha;
                await using (var stream = blobs.OpenRead(row.BlobKey)) sha = Convert.ToHexStringLower(await SHA256.HashDataAsync(stream, cancellationToken));
                verified++;
                if (sha != row.Sha256) mismatched.Add($"{row.SopInstanceUid}: blob {row.BlobKey} has SHA-256 {sha}, the index says {row.Sha256}");
            }
            if (indexed % 256 == 0) progress?.Report((indexed, Math.Max(total, indexed)));
        }
        progress?.Report((indexed, indexed));
        List<string> orphans = [];
        foreach (var key in onDisk.Keys.Where(k => !indexedKeys.Contains(k)))
        {
            // Committed after the listing? Its key names the instance: look it up again.
            var sop = Path.GetFileNameWithoutExtension(key);
            if (await index.FindInstanceAsync(sop, cancellationToken) is { } row && row.BlobKey == key) continue;
            orphans.Add($"{key}: not in the index");
        }
        return new VerifyReport(indexed, onDisk.Count, verified, missing, orphans, mismatched, wrongSize, blobs.StagedCount);
    }
}
