using AkkaVna.Core.Model;
using AkkaVna.Core.Ports;

namespace AkkaVna.Core.Blobs;

/// <summary>
/// Reading and cleaning up an instance's blobs while they may move under the reader: a compression or a tier move
/// records a new blob for an instance, then deletes the old one. What a reader listed a moment ago may be gone by the
/// time it opens it; the index then names where the instance is now.
/// </summary>
public static class InstanceBlobs
{
    /// <summary>
    /// Opens the blob of instance <paramref name="sopInstanceUid"/> that the caller read from the index; when it is gone,
    /// asks the index again and opens what it names now (a move or a compression committed meanwhile), waiting a moment when
    /// the index still names the missing blob (its copy is being put in place right after its commit). Throws
    /// <see cref="BlobNotFoundException"/> when it is still missing.
    /// </summary>
    public static async ValueTask<IBlobContent> OpenAsync(IBlobStore blobs, IArchiveIndex index, string sopInstanceUid, BlobRef blob, CancellationToken ct)
    {
        for (int attempt = 1; ; attempt++)
        {
            try
            {
                return await blobs.OpenAsync(blob, ct).ConfigureAwait(false);
            }
            catch (BlobNotFoundException) when (attempt < 4)
            {
                if (await index.FindInstanceAsync(sopInstanceUid, ct).ConfigureAwait(false) is not { } row) throw;
                if (row.Blob == blob) await Task.Delay(TimeSpan.FromMilliseconds(50 * attempt), ct).ConfigureAwait(false);
                blob = row.Blob;
            }
        }
    }

    /// <summary>The store named <paramref name="name"/> among <paramref name="blobs"/> (a <see cref="BlobStoreSet"/>, or a single store of that name).</summary>
    public static IBlobStore Store(IBlobStore blobs, string name) => blobs switch
    {
        BlobStoreSet set => set.Named(name),
        _ when blobs.Name == name => blobs,
        _ => throw new ArgumentException($"this node has no blob store '{name}' (it has '{blobs.Name}'; akka-vna.blobs.stores names more)", nameof(name)),
    };

    /// <summary>
    /// Deletes each replaced blob (a compressed or moved instance's old copy, a replaced kept original) once the index
    /// names another blob for its instance and that blob exists; the ones deleted. One still named, or whose
    /// replacement is not in place yet, stays (the study's next start asks again).
    /// </summary>
    public static async Task<IReadOnlyList<BlobRef>> DeleteIfReplacedAsync(IBlobStore blobs, IArchiveIndex index, IReadOnlyList<BlobRef> replaced, CancellationToken ct)
    {
        var deleted = new List<BlobRef>();
        var kept = new Dictionary<string, HashSet<BlobRef>>(StringComparer.Ordinal);
        foreach (var blob in replaced)
        {
            if (BlobKeys.Parse(blob.Key) is not var (study, _, sop)) continue;
            var row = await index.FindInstanceAsync(sop, ct).ConfigureAwait(false);
            if (row is null || row.Blob == blob || !await blobs.ExistsAsync(row.Blob, ct).ConfigureAwait(false)) continue;
            // A kept original is named by the kept-blob table, not the instance row.
            if (!kept.TryGetValue(study, out var named))
            {
                kept[study] = named = [];
                await foreach (var k in index.ListKeptBlobsAsync(study, ct).ConfigureAwait(false)) named.Add(k.Blob);
            }
            if (named.Contains(blob)) continue;
            await blobs.DeleteAsync(blob, ct).ConfigureAwait(false);
            deleted.Add(blob);
        }
        return deleted;
    }
}
