using System.Runtime.CompilerServices;
using AkkaVna.Core.Model;
using AkkaVna.Core.Ports;

namespace AkkaVna.Core.Blobs;

/// <summary>
/// Several blob stores as one (<c>akka-vna.blobs.stores</c>: tiers): new blobs go to the primary store, and every read,
/// check or delete goes to the store its reference names (<see cref="BlobRef.Store"/>), so a study may live on more than
/// one store and be read wherever each of its blobs is. Listing, staged counts and recovery cover them all.
/// </summary>
public sealed class BlobStoreSet : IBlobStore, IUploadBacklog, IBlobRepair
{
    private readonly IBlobStore _primary;
    private readonly Dictionary<string, IBlobStore> _stores;

    public BlobStoreSet(IBlobStore primary, IEnumerable<IBlobStore> others)
    {
        _primary = primary;
        _stores = new Dictionary<string, IBlobStore>(StringComparer.Ordinal) { [primary.Name] = primary };
        foreach (var store in others)
            if (!_stores.TryAdd(store.Name, store)) throw new ArgumentException($"two blob stores are named '{store.Name}'", nameof(others));
    }

    /// <summary>The stores by name, the primary first.</summary>
    public IReadOnlyList<IBlobStore> Stores => [_primary, .. _stores.Values.Where(s => s != _primary)];

    public string Name => _primary.Name;

    public string Description => string.Join("; ", Stores.Select(s => $"{s.Name}: {s.Description}"));

    /// <summary>The store a reference names; an <see cref="ArgumentException"/> for one this node does not have.</summary>
    public IBlobStore StoreOf(BlobRef blob) =>
        _stores.TryGetValue(blob.Store, out var store) ? store
            : throw new ArgumentException($"blob {blob} is in store '{blob.Store}', which this node does not have (akka-vna.blobs.stores names: {string.Join(", ", _stores.Keys)})", nameof(blob));

    /// <summary>The store named <paramref name="name"/>; an <see cref="ArgumentException"/> for one this node does not have.</summary>
    public IBlobStore Named(string name) =>
        _stores.TryGetValue(name, out var store) ? store
            : throw new ArgumentException($"this node has no blob store '{name}' (akka-vna.blobs.stores names: {string.Join(", ", _stores.Keys)})", nameof(name));

    public BlobRef RefFor(string studyInstanceUid, string seriesInstanceUid, string sopInstanceUid, string representation = BlobRef.Original,
        string? contentSha256 = null) =>
        _primary.RefFor(studyInstanceUid, seriesInstanceUid, sopInstanceUid, representation, contentSha256);

    public ValueTask<IBlobWriter> CreateAsync(CancellationToken cancellationToken) => _primary.CreateAsync(cancellationToken);

    public ValueTask<IBlobContent> OpenAsync(BlobRef blob, CancellationToken cancellationToken) => StoreOf(blob).OpenAsync(blob, cancellationToken);

    public ValueTask<bool> ExistsAsync(BlobRef blob, CancellationToken cancellationToken) => StoreOf(blob).ExistsAsync(blob, cancellationToken);

    public ValueTask DeleteAsync(BlobRef blob, CancellationToken cancellationToken) => StoreOf(blob).DeleteAsync(blob, cancellationToken);

    public async ValueTask<int> CountStagedAsync(CancellationToken cancellationToken)
    {
        int staged = 0;
        foreach (var store in Stores) staged += await store.CountStagedAsync(cancellationToken).ConfigureAwait(false);
        return staged;
    }

    public async IAsyncEnumerable<BlobListing> ListAsync([EnumeratorCancellation] CancellationToken cancellationToken)
    {
        foreach (var store in Stores)
            await foreach (var listing in store.ListAsync(cancellationToken).ConfigureAwait(false))
                yield return listing;
    }

    public async Task<StagedRecovery> RecoverStagedAsync(IStagedBlobResolver resolver, TimeSpan olderThan, CancellationToken cancellationToken)
    {
        var total = new StagedRecovery();
        foreach (var store in Stores) total += await store.RecoverStagedAsync(resolver, olderThan, cancellationToken).ConfigureAwait(false);
        return total;
    }

    private IEnumerable<IUploadBacklog> Backlogs => Stores.OfType<IUploadBacklog>();

    public int PendingUploads => Backlogs.Sum(b => b.PendingUploads);
    public long PendingUploadBytes => Backlogs.Sum(b => b.PendingUploadBytes);
    public long CachedBytes => Backlogs.Sum(b => b.CachedBytes);
    public long Uploaded => Backlogs.Sum(b => b.Uploaded);
    public long UploadFailures => Backlogs.Sum(b => b.UploadFailures);
    public long BytesDownloaded => Backlogs.Sum(b => b.BytesDownloaded);

    public Task<bool> TryRepairAsync(BlobRef blob, string sha256, CancellationToken cancellationToken) =>
        StoreOf(blob) is IBlobRepair repair ? repair.TryRepairAsync(blob, sha256, cancellationToken) : Task.FromResult(false);

    public async ValueTask DisposeAsync()
    {
        foreach (var store in Stores) await store.DisposeAsync().ConfigureAwait(false);
    }
}
