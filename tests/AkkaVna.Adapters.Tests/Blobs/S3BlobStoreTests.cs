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
        var settled = await restarted.RecoverStagedAsync(_ => Task.FromResult<BlobRef?>(blob), TimeSpan.Zero, CancellationToken.None);
        Assert.Equal(new StagedRecovery(1, 0, 0), settled);
        Assert.Equal(0, await restarted.CountStagedAsync(CancellationToken.None));
        await using var content = await restarted.OpenAsync(blob, CancellationToken.None);
        Assert.Equal(3, content.Length);
    }
}
