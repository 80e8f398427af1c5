using Amazon.Runtime;
using AkkaVna.Blobs.FileSystem;
using AkkaVna.Blobs.S3;
using AkkaVna.Core.Blobs;
using AkkaVna.Core.Model;
using AkkaVna.Core.Ports;
using AkkaVna.Testing;
using AkkaVna.Testing.Contracts;

namespace AkkaVna.Adapters.Tests.Blobs;

/// <summary>
/// Tiers: the primary store on the file system and a cold one on S3 (radosgw) behind one port. New blobs go to the
/// primary; every read goes to the store a reference names. The blob contract holds for the set as a whole.
/// </summary>
public sealed class BlobStoreSetTests : BlobStoreContract
{
    private readonly TempDir _dir = new();
    private readonly string _bucket = RadosGateway.Shared.NewBucket();

    private S3BlobStore Cold() => new(new S3BlobStoreOptions
    {
        Bucket = _bucket, ServiceUrl = RadosGateway.Shared.Endpoint, Credentials = new BasicAWSCredentials(RadosGateway.AccessKey, RadosGateway.SecretKey),
        StagingFolder = Path.Combine(_dir.Path, "cold-staging"),
    }, name: "cold", tier: "cold");

    protected override Task<IBlobStore> CreateStoreAsync() =>
        Task.FromResult<IBlobStore>(new BlobStoreSet(new FileSystemBlobStore(Path.Combine(_dir.Path, "hot")), [Cold()]));

    public override async Task DisposeAsync()
    {
        await Store.DisposeAsync();
        _dir.Dispose();
    }

    private static async Task<BlobRef> PutAsync(IBlobStore store, string sop, byte[] bytes)
    {
        await using var w = await store.CreateAsync(CancellationToken.None);
        await w.WriteAsync(bytes, CancellationToken.None);
        var blob = store.RefFor("1.2.3", "1.2.3.4", sop, BlobRef.Original, await w.SealAsync(true, CancellationToken.None));
        await w.PrepareAsync(blob, CancellationToken.None);
        await w.PromoteAsync(blob, CancellationToken.None);
        return blob;
    }

    private static async Task<byte[]> ReadAsync(IBlobStore store, BlobRef blob)
    {
        await using var content = await store.OpenAsync(blob, CancellationToken.None);
        await using var stream = content.OpenRead();
        using var ms = new MemoryStream();
        await stream.CopyToAsync(ms);
        return ms.ToArray();
    }

    [Fact]
    public async Task A_study_on_two_stores_reads_each_blob_from_the_store_its_reference_names()
    {
        var set = (BlobStoreSet)Store;
        byte[] hotBytes = [1, 2, 3], coldBytes = [4, 5, 6, 7];
        var hot = await PutAsync(set, "1.2.3.4.1", hotBytes);
        // The cold tier's copy is written there directly (moving studies by rule is the lifecycle's).
        var cold = await PutAsync(set.StoreOf(new BlobRef("cold", "x")), "1.2.3.4.2", coldBytes);
        Assert.Equal((BlobRef.PrimaryStore, "cold", "cold"), (hot.Store, cold.Store, cold.Tier));
        Assert.Equal(hotBytes, await ReadAsync(set, hot));
        Assert.Equal(coldBytes, await ReadAsync(set, cold));
        Assert.True(await set.ExistsAsync(cold, CancellationToken.None));
        Assert.False(await set.ExistsAsync(cold with { Store = BlobRef.PrimaryStore }, CancellationToken.None));
        var listed = new List<BlobRef>();
        await foreach (var l in set.ListAsync(CancellationToken.None)) listed.Add(l.Blob);
        Assert.Equal(new[] { hot, cold }.OrderBy(b => b.Store), listed.OrderBy(b => b.Store));
        await set.DeleteAsync(cold, CancellationToken.None);
        Assert.False(await set.ExistsAsync(cold, CancellationToken.None));
        // A reference to a store this node does not have is an error that names the stores it has.
        var e = await Assert.ThrowsAsync<ArgumentException>(async () => await set.OpenAsync(hot with { Store = "tape" }, CancellationToken.None));
        Assert.Contains("primary, cold", e.Message, StringComparison.Ordinal);
    }
}
