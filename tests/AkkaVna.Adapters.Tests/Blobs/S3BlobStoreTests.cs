using System.Security.Cryptography;
using Amazon.Runtime;
using Amazon.S3;
using Amazon.S3.Model;
using AkkaVna.Blobs.S3;
using AkkaVna.Core.Model;
using AkkaVna.Core.Ports;
using AkkaVna.Testing;
using AkkaVna.Testing.Contracts;

namespace AkkaVna.Adapters.Tests.Blobs;

/// <summary>
/// The S3 store against a real S3 server (Ceph's radosgw, started by the tests): the blob contract unchanged, and what
/// only an object store has (multipart uploads, the recorded checksum, keys under a prefix, no parts left behind).
/// </summary>
public sealed class S3BlobStoreTests : BlobStoreContract
{
    private readonly TempDir _dir = new();
    private readonly string _bucket = RadosGateway.Shared.NewBucket();

    private S3BlobStoreOptions Options(string prefix = "archive/") => new()
    {
        Bucket = _bucket, Prefix = prefix, ServiceUrl = RadosGateway.Shared.Endpoint, Credentials = new BasicAWSCredentials(RadosGateway.AccessKey, RadosGateway.SecretKey),
        StagingFolder = Path.Combine(_dir.Path, "staging"), MultipartThreshold = 5 * 1024 * 1024, PartSize = 5 * 1024 * 1024,
    };

    protected override Task<IBlobStore> CreateStoreAsync() => Task.FromResult<IBlobStore>(new S3BlobStore(Options()));

    public override async Task DisposeAsync()
    {
        await Store.DisposeAsync();
        _dir.Dispose();
    }

    private AmazonS3Client Client() => new(new BasicAWSCredentials(RadosGateway.AccessKey, RadosGateway.SecretKey), new AmazonS3Config
    {
        ServiceURL = RadosGateway.Shared.Endpoint, ForcePathStyle = true, AuthenticationRegion = "us-east-1",
        RequestChecksumCalculation = RequestChecksumCalculation.WHEN_REQUIRED, ResponseChecksumValidation = ResponseChecksumValidation.WHEN_REQUIRED,
    });

    [Fact]
    public async Task A_blob_over_the_multipart_threshold_goes_up_in_parts_and_comes_back_whole_with_its_checksum_recorded()
    {
        var bytes = new byte[12 * 1024 * 1024 + 12345];
        new Random(7).NextBytes(bytes);
        var blob = Store.RefFor("1.2.3", "1.2.3.4", "1.2.3.4.99");
        await using (var w = await Store.CreateAsync(CancellationToken.None))
        {
            for (int i = 0; i < bytes.Length; i += 100_000) await w.WriteAsync(bytes.AsMemory(i, Math.Min(100_000, bytes.Length - i)), CancellationToken.None);
            Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(bytes)), await w.SealAsync(true, CancellationToken.None));
            await w.PromoteAsync(blob, CancellationToken.None);
        }
        using var s3 = Client();
        var head = await s3.GetObjectMetadataAsync(_bucket, "archive/" + blob.Key);
        Assert.Equal(bytes.Length, head.ContentLength);
        Assert.Contains("-", head.ETag, StringComparison.Ordinal); // a multipart object's ETag is MD5-of-parts "-N"
        Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(bytes)), head.Metadata["x-amz-meta-akkavna-sha256"]);
        await using var content = await Store.OpenAsync(blob, CancellationToken.None);
        await using var stream = content.OpenRead();
        using var ms = new MemoryStream();
        await stream.CopyToAsync(ms);
        Assert.Equal(bytes, ms.ToArray());
        // No upload is left open in the bucket.
        var uploads = await s3.ListMultipartUploadsAsync(_bucket);
        Assert.Empty(uploads.MultipartUploads ?? []);
    }

    [Fact]
    public async Task Keys_are_readable_under_the_prefix_and_a_key_from_elsewhere_is_refused()
    {
        var (blob, _) = (Store.RefFor("1.2.3", "1.2.3.4", "1.2.3.4.5"), 0);
        Assert.Matches("^[0-9a-f]{3}/1.2.3/1.2.3.4/1.2.3.4.5.dcm$", blob.Key);
        await Assert.ThrowsAsync<ArgumentException>(async () => await Store.OpenAsync(blob with { Key = "../../other-bucket/x.dcm" }, CancellationToken.None));
        await Assert.ThrowsAsync<ArgumentException>(async () => await Store.OpenAsync(blob with { Key = "000/1.2/1.2/../../x.dcm" }, CancellationToken.None));
        Assert.Throws<ArgumentException>(() => new S3BlobStore(Options("/absolute/")));
    }

    [Fact]
    public async Task With_the_gateway_down_a_promotion_fails_as_an_IO_error_and_the_node_uploads_what_it_staged_when_it_comes_back()
    {
        // The bucket exists (its first write makes the gateway's pools, which takes seconds on a fresh Ceph).
        await using (var w = await Store.CreateAsync(CancellationToken.None))
        {
            await w.WriteAsync(new byte[] { 9 }, CancellationToken.None);
            await w.SealAsync(true, CancellationToken.None);
            await w.PromoteAsync(Store.RefFor("1.2.3", "1.2.3.4", "1.2.3.4.76"), CancellationToken.None);
        }
        var blob = Store.RefFor("1.2.3", "1.2.3.4", "1.2.3.4.77");
        // A node that gives up fast: the gateway is taken away for the length of this promotion only.
        var impatient = new S3BlobStore(Options() with { Node = "node-b", RequestTimeout = TimeSpan.FromSeconds(2), MaxRetries = 1 });
        await using (var w = await impatient.CreateAsync(CancellationToken.None))
        {
            await w.WriteAsync(new byte[] { 1, 2, 3 }, CancellationToken.None);
            await w.SealAsync(true, CancellationToken.None);
            RadosGateway.Shared.Stop();
            try
            {
                await Assert.ThrowsAsync<IOException>(async () => await w.PromoteAsync(blob, CancellationToken.None));
            }
            finally
            {
                RadosGateway.Shared.Start();
            }
            w.LeaveForRecovery(); // the commit's outcome is unknown to the writer: recovery decides
        }
        await impatient.DisposeAsync();
        // The node starts again (same name, same staging folder) and settles what it left: the upload happens now.
        await using var restarted = new S3BlobStore(Options() with { Node = "node-b" });
        Assert.Equal(1, await restarted.CountStagedAsync(CancellationToken.None));
        var settled = await restarted.RecoverStagedAsync(new DelegateResolver(_ => Task.FromResult<BlobRef?>(blob)), TimeSpan.Zero, CancellationToken.None);
        Assert.Equal(new StagedRecovery(1, 0, 0), settled);
        Assert.Equal(0, await restarted.CountStagedAsync(CancellationToken.None));
        await using var content = await restarted.OpenAsync(blob, CancellationToken.None);
        Assert.Equal(3, content.Length);
    }

    /// <summary>An endpoint where nothing listens: S3 out of reach, at once.</summary>
    private const string Nowhere = "http://127.0.0.1:1";

    private static async Task<(BlobRef Blob, byte[] Bytes)> StoreInstanceAsync(IBlobStore store, string sop, int length, int seed, bool prepare = true)
    {
        var bytes = new byte[length];
        new Random(seed).NextBytes(bytes);
        await using var w = await store.CreateAsync(CancellationToken.None);
        await w.WriteAsync(bytes, CancellationToken.None);
        var blob = store.RefFor("1.2.3", "1.2.3.4", sop, BlobRef.Original, await w.SealAsync(true, CancellationToken.None));
        if (prepare) await w.PrepareAsync(blob, CancellationToken.None);
        await w.PromoteAsync(blob, CancellationToken.None);
        return (blob, bytes);
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
    public async Task After_upload_the_object_is_in_S3_before_the_commit_under_a_key_of_its_content()
    {
        var bytes = new byte[70_000];
        new Random(11).NextBytes(bytes);
        using var s3 = Client();
        await using var w = await Store.CreateAsync(CancellationToken.None);
        await w.WriteAsync(bytes, CancellationToken.None);
        string sha = await w.SealAsync(true, CancellationToken.None);
        var blob = Store.RefFor("1.2.3", "1.2.3.4", "1.2.3.4.30", BlobRef.Original, sha);
        Assert.EndsWith($"/1.2.3.4.30_{sha[..16]}.dcm", blob.Key, StringComparison.Ordinal);
        await w.PrepareAsync(blob, CancellationToken.None);
        Assert.True(w.IsPrepared);
        var head = await s3.GetObjectMetadataAsync(_bucket, "archive/" + blob.Key); // before any promotion
        Assert.Equal(sha, head.Metadata["x-amz-meta-akkavna-sha256"]);
        await w.PromoteAsync(blob, CancellationToken.None);
        Assert.Equal(bytes, await ReadAsync(Store, blob));
    }

    [Fact]
    public async Task A_failed_upload_before_the_commit_leaves_a_note_and_recovery_removes_the_object_only_when_no_row_names_it()
    {
        await StoreInstanceAsync(Store, "1.2.3.4.40", 10, 1); // the bucket exists
        var bytes = new byte[5000];
        new Random(12).NextBytes(bytes);
        BlobRef blob;
        var away = new S3BlobStore(Options() with { Node = "node-c", ServiceUrl = Nowhere, RequestTimeout = TimeSpan.FromSeconds(2), MaxRetries = 0 });
        await using (var w = await away.CreateAsync(CancellationToken.None))
        {
            await w.WriteAsync(bytes, CancellationToken.None);
            blob = away.RefFor("1.2.3", "1.2.3.4", "1.2.3.4.41", BlobRef.Original, await w.SealAsync(true, CancellationToken.None));
            await Assert.ThrowsAsync<IOException>(async () => await w.PrepareAsync(blob, CancellationToken.None));
        }
        await away.DisposeAsync();
        // Not staged any more (nothing was committed) — but the PUT might have gone through after all: here it did.
        using var s3 = Client();
        await s3.PutObjectAsync(new PutObjectRequest { BucketName = _bucket, Key = "archive/" + blob.Key, InputStream = new MemoryStream(bytes), UseChunkEncoding = false });
        await using var back = new S3BlobStore(Options() with { Node = "node-c" });
        Assert.Equal(0, await back.CountStagedAsync(CancellationToken.None));
        // An index that names it keeps it; one that does not has it removed.
        Assert.Equal(new StagedRecovery(0, 1, 0),
            await back.RecoverStagedAsync(new DelegateResolver(_ => Task.FromResult<BlobRef?>(null), referenced: b => b == blob), TimeSpan.Zero, CancellationToken.None));
        Assert.True(await back.ExistsAsync(blob, CancellationToken.None));
        await using (var w = await back.CreateAsync(CancellationToken.None)) // the same once more, now with no row naming it
        {
            await w.WriteAsync(bytes, CancellationToken.None);
            await w.SealAsync(true, CancellationToken.None);
            await w.PrepareAsync(blob, CancellationToken.None);
            w.LeaveForRecovery();
        }
        Assert.Equal(new StagedRecovery(0, 1, 0),
            await back.RecoverStagedAsync(new DelegateResolver(_ => Task.FromResult<BlobRef?>(null)), TimeSpan.Zero, CancellationToken.None));
        Assert.False(await back.ExistsAsync(blob, CancellationToken.None));
    }

    [Fact]
    public async Task After_local_commit_reads_come_from_the_cache_and_the_queue_survives_a_restart_and_uploads_when_S3_answers()
    {
        string cache = Path.Combine(_dir.Path, "cache");
        var offline = new S3BlobStore(Options() with
        {
            Node = "node-d", ServiceUrl = Nowhere, RequestTimeout = TimeSpan.FromSeconds(1), MaxRetries = 0,
            Acknowledge = S3Acknowledge.AfterLocalCommit, CacheFolder = cache, CacheMaxBytes = 1024 * 1024,
        });
        var stored = new List<(BlobRef Blob, byte[] Bytes)>();
        for (int i = 0; i < 3; i++) stored.Add(await StoreInstanceAsync(offline, $"1.2.3.4.5{i}", 200_000, 50 + i));
        // Acknowledged with S3 out of reach: read from the node's cache, and queued.
        foreach (var (blob, bytes) in stored) Assert.Equal(bytes, await ReadAsync(offline, blob));
        Assert.Equal(3, offline.PendingUploads);
        // Past the cache's bound with nothing uploaded: refused (the sender is told to try later).
        stored.Add(await StoreInstanceAsync(offline, "1.2.3.4.59", 500_000, 59));
        var full = await Assert.ThrowsAsync<IOException>(async () => await offline.CreateAsync(CancellationToken.None));
        Assert.Contains("not yet in S3", full.Message, StringComparison.Ordinal);
        await offline.DisposeAsync();

        // The node comes back with S3 in reach: the queue it left uploads by itself.
        await using var online = new S3BlobStore(Options() with
        {
            Node = "node-d", Acknowledge = S3Acknowledge.AfterLocalCommit, CacheFolder = cache, CacheMaxBytes = 1024 * 1024,
        });
        var until = DateTime.UtcNow.AddMinutes(1);
        while (online.PendingUploads > 0 && DateTime.UtcNow < until) await Task.Delay(200);
        Assert.Equal(0, online.PendingUploads);
        using var s3 = Client();
        foreach (var (blob, bytes) in stored)
        {
            var head = await s3.GetObjectMetadataAsync(_bucket, "archive/" + blob.Key);
            Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(bytes)), head.Metadata["x-amz-meta-akkavna-sha256"]);
        }
        // Room again: new instances are taken, and past the bound what is safely in S3 is evicted (and read from S3).
        stored.Add(await StoreInstanceAsync(online, "1.2.3.4.60", 300_000, 60));
        until = DateTime.UtcNow.AddMinutes(1);
        while ((online.PendingUploads > 0 || online.CachedBytes > 1024 * 1024) && DateTime.UtcNow < until) await Task.Delay(200);
        Assert.InRange(online.CachedBytes, 1, 1024 * 1024);
        foreach (var (blob, bytes) in stored) Assert.Equal(bytes, await ReadAsync(online, blob));
    }

    [Fact]
    public async Task A_multipart_upload_a_crash_cut_short_is_aborted_by_recovery()
    {
        await using var store = new S3BlobStore(Options() with { AbandonedUploadAge = TimeSpan.Zero });
        await StoreInstanceAsync(store, "1.2.3.4.70", 10, 70);
        using var s3 = Client();
        var started = await s3.InitiateMultipartUploadAsync(new InitiateMultipartUploadRequest { BucketName = _bucket, Key = "archive/000/1.2/1.2.3/1.2.3.4.dcm" });
        Assert.Single((await s3.ListMultipartUploadsAsync(_bucket)).MultipartUploads ?? []);
        await store.RecoverStagedAsync(new DelegateResolver(_ => Task.FromResult<BlobRef?>(null)), TimeSpan.Zero, CancellationToken.None);
        Assert.Empty((await s3.ListMultipartUploadsAsync(_bucket)).MultipartUploads ?? []);
        Assert.NotNull(started.UploadId);
    }
}
