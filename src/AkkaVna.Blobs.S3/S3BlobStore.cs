using System.Net;
using System.Runtime.CompilerServices;
using System.Security.Cryptography;
using Amazon.Runtime;
using Amazon.S3;
using Amazon.S3.Model;
using AkkaVna.Core;
using AkkaVna.Core.Blobs;
using AkkaVna.Core.Model;
using AkkaVna.Core.Ports;
using AkkaVna.Dicom.Dictionary;
using Microsoft.Extensions.Logging;

namespace AkkaVna.Blobs.S3;

/// <summary>Where an S3 store is and how it is reached.</summary>
public sealed record S3BlobStoreOptions
{
    /// <summary>
    /// Keys carry the version of what a layer above wrote, not of the bytes stored here (encryption at rest: the version
    /// is the plaintext's SHA-256, the object holds ciphertext): a local copy is then checked against its writer's own
    /// checksum only.
    /// </summary>
    public bool VersionNamesPlaintext { get; init; }

    /// <summary>The bucket (created when missing).</summary>
    public required string Bucket { get; init; }
    /// <summary>A key prefix inside the bucket ("" or ending in '/'), so that several archives can share a bucket.</summary>
    public string Prefix { get; init; } = "";
    /// <summary>The S3 endpoint (an on-premises store: http://10.0.0.5:7480); null: AWS, by region.</summary>
    public string? ServiceUrl { get; init; }
    /// <summary>Path-style addressing (bucket in the path), as on-premises stores need.</summary>
    public bool ForcePathStyle { get; init; } = true;
    public string Region { get; init; } = "us-east-1";
    /// <summary>Credentials; null: the SDK's default chain (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, profiles, instance roles).</summary>
    public AWSCredentials? Credentials { get; init; }
    /// <summary>The node-local folder blobs are staged in before they are uploaded.</summary>
    public required string StagingFolder { get; init; }
    public string Node { get; init; } = "local";
    /// <summary>Objects larger than this are uploaded in parts (streamed from the staged file, never held whole).</summary>
    public long MultipartThreshold { get; init; } = 64L * 1024 * 1024;
    public long PartSize { get; init; } = 16L * 1024 * 1024;
    /// <summary>The longest any one request may take; then it is retried (with backoff) up to <see cref="MaxRetries"/> times.</summary>
    public TimeSpan RequestTimeout { get; init; } = TimeSpan.FromSeconds(60);
    public int MaxRetries { get; init; } = 4;
    /// <summary>How much a sequential reader fetches per ranged GET.</summary>
    public int ReadWindow { get; init; } = 4 * 1024 * 1024;
    /// <summary>When a C-STORE success may be sent (<c>akka-vna.blobs.s3.acknowledge</c>).</summary>
    public S3Acknowledge Acknowledge { get; init; } = S3Acknowledge.AfterUpload;
    /// <summary>The node's receive cache (recent instances, and those not yet uploaded); null: none (after-upload only).</summary>
    public string? CacheFolder { get; init; }
    /// <summary>The cache's size bound: past it, what is in S3 is evicted; with after-local-commit, what is not yet in S3 past it is refused (A700H).</summary>
    public long CacheMaxBytes { get; init; } = 10L * 1024 * 1024 * 1024;
    /// <summary>Whether this process is the node that owns the cache (uploads its queue, evicts); tools beside it only read.</summary>
    public bool OwnsCache { get; init; } = true;
    /// <summary>Uploads the queue runs at once.</summary>
    public int UploadConcurrency { get; init; } = 4;
    /// <summary>A multipart upload started longer ago than this and not completed was cut short (a crash): recovery aborts it.</summary>
    public TimeSpan AbandonedUploadAge { get; init; } = TimeSpan.FromHours(1);
    public Microsoft.Extensions.Logging.ILogger? Log { get; init; }
}

/// <summary>When the S3 store lets a C-STORE success be sent.</summary>
public enum S3Acknowledge
{
    /// <summary>The object is in S3 (uploaded and checked) before the commit: a success means it is in S3.</summary>
    AfterUpload,
    /// <summary>The instance is durable in the node's cache and journal; the upload follows from a persistent queue.</summary>
    AfterLocalCommit,
}

/// <summary>
/// The blob port on an S3-compatible object store (AWSSDK.S3). A blob is staged on the node's local disk as it arrives
/// (streamed, SHA-256 on the way, fsynced when sealed), then uploaded: with <see cref="S3Acknowledge.AfterUpload"/>
/// before the commit, under a key versioned by its checksum (so it never overwrites what an index row names, and a
/// commit never names what S3 does not hold); with <see cref="S3Acknowledge.AfterLocalCommit"/> after it, from the
/// receive cache's persistent queue (<see cref="ReceiveCache"/>). One PUT up to the multipart threshold, else a multipart
/// upload of parts read from the local file (an interrupted one is aborted, not left behind). Integrity is end to end: every PUT and part carries its Content-MD5, which the store checks on receipt; the
/// object records the blob's SHA-256 in its metadata, and a promotion is complete only when the stored object's size and
/// recorded SHA-256 are the staged file's. Reads are streamed and ranged (a seekable stream of ranged GETs), so a
/// WADO-RS frame reads only its bytes. Keys are readable and spread: <c>PREFIX fff/study/series/sop.dcm</c>, <c>fff</c> a
/// stable hash of the Study Instance UID. Every request has a timeout and is retried with backoff by the SDK.
/// </summary>
public sealed class S3BlobStore : IBlobStore, IUploadBacklog, IBlobRepair
{
    private const string ShaMetadata = "x-amz-meta-akkavna-sha256";
    private readonly S3BlobStoreOptions _options;
    private readonly IAmazonS3 _s3;
    private readonly StagingArea _staging;
    private readonly Target _target;
    private readonly ReceiveCache? _cache;
    private readonly string _tier;
    private readonly SemaphoreSlim _wake = new(0);
    private readonly CancellationTokenSource _stopping = new();
    private readonly Task _uploader = Task.CompletedTask;
    private int _bucketReady;
    private long _uploaded, _uploadFailures, _downloaded;

    public S3BlobStore(S3BlobStoreOptions options, string name = BlobRef.PrimaryStore, string tier = BlobRef.DefaultTier, TimeProvider? time = null,
        TimeSpan? othersGrace = null)
    {
        if (options.Prefix.Length > 0 && (!options.Prefix.EndsWith('/') || options.Prefix.StartsWith('/') || options.Prefix.Contains("..", StringComparison.Ordinal)))
            throw new ArgumentException($"'{options.Prefix}' is not a key prefix (it ends in '/', does not start with one, and has no '..')", nameof(options));
        _options = options;
        Name = name;
        _tier = tier;
        var config = new AmazonS3Config
        {
            ForcePathStyle = options.ForcePathStyle,
            Timeout = options.RequestTimeout,
            MaxErrorRetry = options.MaxRetries,
            RetryMode = RequestRetryMode.Standard,
            // On-premises stores (Ceph radosgw) refuse the SDK's default trailing checksums: the store checks Content-MD5 instead.
            RequestChecksumCalculation = RequestChecksumCalculation.WHEN_REQUIRED,
            ResponseChecksumValidation = ResponseChecksumValidation.WHEN_REQUIRED,
        };
        if (options.ServiceUrl is { } url)
        {
            config.ServiceURL = url;
            config.AuthenticationRegion = options.Region;
        }
        else config.RegionEndpoint = Amazon.RegionEndpoint.GetBySystemName(options.Region);
        _s3 = options.Credentials is { } credentials ? new AmazonS3Client(credentials, config) : new AmazonS3Client(config);
        string staging = Directory.CreateDirectory(options.StagingFolder).FullName;
        _staging = new StagingArea(staging, options.Node, name, staging, othersGrace ?? TimeSpan.FromMinutes(10), time ?? TimeProvider.System);
        if (options.Acknowledge == S3Acknowledge.AfterLocalCommit && (options.CacheFolder is null || options.CacheMaxBytes <= 0))
            throw new ArgumentException("acknowledge = after-local-commit needs a receive cache (a folder and a size bound)", nameof(options));
        if (options.CacheFolder is { } cache && options.CacheMaxBytes > 0) _cache = new ReceiveCache(cache, options.CacheMaxBytes, options.OwnsCache);
        _target = new Target(this);
        if (_cache is not null && options.OwnsCache) _uploader = Task.Run(UploadLoopAsync);
    }

    public string Name { get; }

    public string Description => $"s3://{_options.Bucket}/{_options.Prefix}" + (_options.ServiceUrl is { } url ? $" at {url}" : "");

    /// <summary>Keys are versioned by content when the checksum is given (an object is never overwritten with other bytes).</summary>
    public BlobRef RefFor(string studyInstanceUid, string seriesInstanceUid, string sopInstanceUid, string representation = BlobRef.Original,
        string? contentSha256 = null) =>
        BlobKeys.For(Name, _tier, studyInstanceUid, seriesInstanceUid, sopInstanceUid, representation, contentSha256);

    /// <summary>The object key of a reference; only keys this store makes (UIDs, digits and dots) are accepted.</summary>
    private string KeyOf(BlobRef blob)
    {
        if (blob.Store != Name) throw new ArgumentException($"blob {blob} is not in store {Name}", nameof(blob));
        var parts = blob.Key.Split('/');
        if (parts.Length != 4 || parts[0].Length != 3 || !parts[0].All(char.IsAsciiHexDigitLower) || !parts[1..3].All(DicomUidRegistry.IsWellFormed)
            || !parts[3].EndsWith(".dcm", StringComparison.Ordinal) || parts[3].Contains("..", StringComparison.Ordinal))
            throw new ArgumentException($"'{blob.Key}' is not a blob key of this store", nameof(blob));
        return _options.Prefix + blob.Key;
    }

    /// <summary>The key below the prefix of a reference this store makes (checked as by <see cref="KeyOf"/>).</summary>
    private string RelativeKeyOf(BlobRef blob)
    {
        KeyOf(blob);
        return blob.Key;
    }

    private async Task EnsureBucketAsync(CancellationToken cancellationToken)
    {
        if (Volatile.Read(ref _bucketReady) == 1) return;
        try
        {
            await _s3.PutBucketAsync(new PutBucketRequest { BucketName = _options.Bucket }, cancellationToken).ConfigureAwait(false);
        }
        catch (AmazonS3Exception e) when (e.ErrorCode is "BucketAlreadyOwnedByYou" or "BucketAlreadyExists")
        {
        }
        Volatile.Write(ref _bucketReady, 1);
    }

    /// <summary>
    /// Begins a staged blob. With after-local-commit and the cache's bound reached by what is not yet in S3: while S3
    /// answers (the queue is only behind) the sender waits for room, as long as one upload may take (the request timeout,
    /// times the tries) — back-pressure, not a
    /// failure; while it does not, the instance is refused at once (A700H: send it again later).
    /// </summary>
    public async ValueTask<IBlobWriter> CreateAsync(CancellationToken cancellationToken)
    {
        if (_options.Acknowledge == S3Acknowledge.AfterLocalCommit && _cache is { } cache && cache.PendingBytes >= cache.MaxBytes)
        {
            var until = DateTime.UtcNow + _options.RequestTimeout * (_options.MaxRetries + 1);
            while (cache.PendingBytes >= cache.MaxBytes && LastUploadError is null && DateTime.UtcNow < until)
                await Task.Delay(20, cancellationToken).ConfigureAwait(false);
            if (cache.PendingBytes >= cache.MaxBytes)
                throw new IOException($"the receive cache holds {cache.PendingBytes / 1024} KiB not yet in S3, its bound: S3 is not taking uploads ({LastUploadError ?? "too slow"})");
        }
        return _staging.Create(_target);
    }

    /// <summary>What the staging area does for this store: upload before the commit, or queue after it.</summary>
    private sealed class Target(S3BlobStore store) : IStagingTarget
    {
        public bool PreparesBeforeCommit => store._options.Acknowledge == S3Acknowledge.AfterUpload;

        public async ValueTask PrepareAsync(string staged, BlobRef blob, string sha256, CancellationToken cancellationToken)
        {
            if (PreparesBeforeCommit) await store.UploadAsync(staged, store.RelativeKeyOf(blob), sha256, cancellationToken).ConfigureAwait(false);
        }

        public async ValueTask PromoteAsync(string staged, BlobRef blob, string? sha256, bool prepared, CancellationToken cancellationToken)
        {
            string key = store.RelativeKeyOf(blob);
            if (store._options.Acknowledge == S3Acknowledge.AfterLocalCommit)
            {
                store._cache!.Adopt(staged, key, pending: true, sha256);
                store._wake.Release();
                return;
            }
            // Recovery (or a writer whose preparation did not run): upload unless the object is these bytes already.
            if (!prepared) await store.UploadUnlessHeldAsync(staged, key, sha256, cancellationToken).ConfigureAwait(false);
            if (store._cache is { } cache && store._options.OwnsCache)
            {
                cache.Adopt(staged, key, pending: false);
                cache.Evict();
            }
            else File.Delete(staged);
        }

        public async ValueTask DiscardPreparedAsync(BlobRef blob, CancellationToken cancellationToken) =>
            await store.DeleteObjectAsync(store.RelativeKeyOf(blob), cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Uploads a local file under <paramref name="key"/> unless the object there is these bytes already (same size and recorded SHA-256).</summary>
    private async Task UploadUnlessHeldAsync(string local, string key, string? sha256, CancellationToken cancellationToken)
    {
        sha256 ??= await Sha256OfAsync(local, cancellationToken).ConfigureAwait(false);
        GetObjectMetadataResponse? head;
        try
        {
            head = await _s3.GetObjectMetadataAsync(new GetObjectMetadataRequest { BucketName = _options.Bucket, Key = _options.Prefix + key }, cancellationToken)
                .ConfigureAwait(false);
        }
        catch (AmazonS3Exception e) when (e.StatusCode == HttpStatusCode.NotFound || e.ErrorCode == "NoSuchBucket")
        {
            head = null;
        }
        catch (Exception e) when (Unreachable(e, cancellationToken))
        {
            throw new IOException($"cannot reach s3://{_options.Bucket}: {e.Message}", e);
        }
        if (head is not null && head.ContentLength == new FileInfo(local).Length && head.Metadata[ShaMetadata] == sha256) return;
        await UploadAsync(local, key, sha256, cancellationToken).ConfigureAwait(false);
    }

    private static async Task<string> Sha256OfAsync(string path, CancellationToken cancellationToken)
    {
        await using var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read | FileShare.Delete, 1 << 16, FileOptions.SequentialScan);
        return Convert.ToHexStringLower(await SHA256.HashDataAsync(fs, cancellationToken).ConfigureAwait(false));
    }

    /// <summary>
    /// A local file uploaded under <paramref name="relativeKey"/> (below the prefix) and checked; the file stays.
    /// <paramref name="knownSha256"/>: its checksum when the caller has it (computed as it was written), else read here.
    /// </summary>
    private async ValueTask UploadAsync(string local, string relativeKey, string? knownSha256, CancellationToken cancellationToken)
    {
        string key = _options.Prefix + relativeKey;
        string staged = local;
        try
        {
            await EnsureBucketAsync(cancellationToken).ConfigureAwait(false);
            long length = new FileInfo(staged).Length;
            if (length <= _options.MultipartThreshold)
            {
                // One PUT: the store checked its Content-MD5 on receipt, and its ETag is that MD5 — these bytes are what it holds.
                await PutAsync(staged, key, relativeKey, knownSha256, cancellationToken).ConfigureAwait(false);
                return;
            }
            string sha = await Sha256OfAsync(staged, cancellationToken).ConfigureAwait(false);
            CheckLocalCopy(staged, relativeKey, sha, knownSha256);
            await PutMultipartAsync(staged, key, sha, length, cancellationToken).ConfigureAwait(false);
            // End to end for a multipart object (each part's MD5 was checked on receipt): its size and recorded SHA-256.
            var head = await _s3.GetObjectMetadataAsync(new GetObjectMetadataRequest { BucketName = _options.Bucket, Key = key }, cancellationToken).ConfigureAwait(false);
            if (head.ContentLength != length || head.Metadata[ShaMetadata] != sha)
                throw new IOException($"s3://{_options.Bucket}/{key} holds {head.ContentLength} bytes (SHA-256 {head.Metadata[ShaMetadata]}) after the upload of {length} ({sha})");
        }
        catch (Exception e) when (Unreachable(e, cancellationToken))
        {
            throw new IOException($"cannot upload s3://{_options.Bucket}/{key}: {e.Message}", e);
        }
    }

    private async Task DeleteObjectAsync(string relativeKey, CancellationToken cancellationToken)
    {
        try
        {
            await _s3.DeleteObjectAsync(new DeleteObjectRequest { BucketName = _options.Bucket, Key = _options.Prefix + relativeKey }, cancellationToken)
                .ConfigureAwait(false);
        }
        catch (AmazonS3Exception e) when (e.StatusCode == HttpStatusCode.NotFound)
        {
            // never written, or its bucket not yet made: nothing to delete
        }
        catch (Exception e) when (Unreachable(e, cancellationToken))
        {
            throw new IOException($"cannot delete s3://{_options.Bucket}/{_options.Prefix}{relativeKey}: {e.Message}", e);
        }
    }

    /// <summary>Received and not yet in S3 (after-local-commit): what the upload queue holds.</summary>
    public int PendingUploads => _cache?.PendingCount ?? 0;

    public long PendingUploadBytes => _cache?.PendingBytes ?? 0;

    public long CachedBytes => _cache?.Bytes ?? 0;

    public long Uploaded => Interlocked.Read(ref _uploaded);

    public long UploadFailures => Interlocked.Read(ref _uploadFailures);

    /// <summary>Bytes read from S3 (object bodies) since the store was opened: ranged reads fetch what their readers need.</summary>
    public long BytesDownloaded => Interlocked.Read(ref _downloaded);

    /// <summary>Why the last upload from the queue failed (null once one succeeds again).</summary>
    public string? LastUploadError { get; private set; }

    /// <summary>
    /// The upload queue: what the cache holds and S3 does not yet, uploaded (a few at once) and checked, then unmarked.
    /// When S3 does not answer, a round stops at the first failure and the next waits (1 s, doubling to 30 s); it runs
    /// again at once when something is queued, and every few seconds anyway.
    /// </summary>
    private async Task UploadLoopAsync()
    {
        var log = _options.Log;
        var backoff = TimeSpan.FromSeconds(1);
        var cache = _cache!;
        while (!_stopping.IsCancellationRequested)
        {
            bool failed = false;
            try
            {
                using var round = CancellationTokenSource.CreateLinkedTokenSource(_stopping.Token);
                var pending = cache.Pending();
                foreach (var key in cache.DropMarkersWithoutFile(TimeSpan.FromHours(1)))
                    log?.LogWarning("upload queue: {Key} has no file in the cache after an hour (its staged copy was settled elsewhere): dropped", key);
                await Parallel.ForEachAsync(pending.Where(p => p.Path is not null),
                    new ParallelOptions { MaxDegreeOfParallelism = _options.UploadConcurrency, CancellationToken = round.Token }, async (p, ct) =>
                    {
                        try
                        {
                            await UploadAsync(p.Path!, p.Key, p.Sha256, ct).ConfigureAwait(false);
                            cache.Uploaded(p.Key);
                            Interlocked.Increment(ref _uploaded);
                            LastUploadError = null;
                        }
                        catch (Exception e) when (e is IOException or InvalidDataException && !_stopping.IsCancellationRequested)
                        {
                            Interlocked.Increment(ref _uploadFailures);
                            if (!failed) log?.LogWarning("upload queue: {Key} not uploaded ({Reason}); {Pending} instance(s) wait for S3", p.Key, e.Message, pending.Count);
                            LastUploadError = e.Message;
                            failed = true;
                            if (e is IOException) await round.CancelAsync().ConfigureAwait(false); // S3 is away: the rest waits too
                        }
                        catch (FileNotFoundException)
                        {
                            // deleted meanwhile
                        }
                    }).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (!_stopping.IsCancellationRequested)
            {
            }
            catch (OperationCanceledException)
            {
                break;
            }
            catch (Exception e)
            {
                failed = true;
                log?.LogError(e, "upload queue: a round failed");
            }
            cache.Evict();
            try
            {
                if (failed)
                {
                    await Task.Delay(backoff, _stopping.Token).ConfigureAwait(false);
                    backoff = TimeSpan.FromTicks(Math.Min(backoff.Ticks * 2, TimeSpan.FromSeconds(30).Ticks));
                }
                else
                {
                    backoff = TimeSpan.FromSeconds(1);
                    await _wake.WaitAsync(TimeSpan.FromSeconds(5), _stopping.Token).ConfigureAwait(false);
                }
            }
            catch (OperationCanceledException)
            {
                break;
            }
        }
    }

    private static string Md5Of(Stream stream) => Convert.ToBase64String(MD5.HashData(stream));

    /// <summary>A local copy is uploaded only when its bytes are the ones its key (and its writer) name: a damaged file never replaces a good object.</summary>
    private void CheckLocalCopy(string local, string relativeKey, string sha, string? expected)
    {
        if (expected is not null && sha != expected
            || !_options.VersionNamesPlaintext && BlobKeys.VersionOf(relativeKey) is { } version && !sha.StartsWith(version, StringComparison.Ordinal))
            throw new InvalidDataException($"{local} has SHA-256 {sha}, not the {expected ?? BlobKeys.VersionOf(relativeKey) + "…"} its key names: the local copy is damaged, it is not uploaded");
    }

    private async Task PutAsync(string staged, string key, string relativeKey, string? expectedSha256, CancellationToken cancellationToken)
    {
        await using var file = new FileStream(staged, FileMode.Open, FileAccess.Read, FileShare.Read | FileShare.Delete, 1, FileOptions.SequentialScan);
        // One read for both: the MD5 the store checks, and the SHA-256 the local copy must have.
        byte[] md5, sha;
        using (var md5Hash = IncrementalHash.CreateHash(HashAlgorithmName.MD5))
        using (var shaHash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256))
        {
            var buffer = System.Buffers.ArrayPool<byte>.Shared.Rent(1 << 18);
            try
            {
                for (int n; (n = await file.ReadAsync(buffer, cancellationToken).ConfigureAwait(false)) > 0;)
                {
                    md5Hash.AppendData(buffer, 0, n);
                    shaHash.AppendData(buffer, 0, n);
                }
            }
            finally
            {
                System.Buffers.ArrayPool<byte>.Shared.Return(buffer);
            }
            (md5, sha) = (md5Hash.GetHashAndReset(), shaHash.GetHashAndReset());
        }
        string shaHex = Convert.ToHexStringLower(sha);
        CheckLocalCopy(staged, relativeKey, shaHex, expectedSha256);
        file.Position = 0;
        var request = new PutObjectRequest
        {
            BucketName = _options.Bucket, Key = key, InputStream = file, AutoCloseStream = false, MD5Digest = Convert.ToBase64String(md5),
            ContentType = "application/dicom", UseChunkEncoding = false,
        };
        request.Metadata[ShaMetadata] = shaHex;
        var response = await _s3.PutObjectAsync(request, cancellationToken).ConfigureAwait(false);
        if (!string.Equals(response.ETag?.Trim('"'), Convert.ToHexStringLower(md5), StringComparison.OrdinalIgnoreCase))
            throw new IOException($"s3://{_options.Bucket}/{key}: the store answered ETag {response.ETag} for content of MD5 {Convert.ToHexStringLower(md5)}");
    }

    private async Task PutMultipartAsync(string staged, string key, string sha, long length, CancellationToken cancellationToken)
    {
        var initiate = new InitiateMultipartUploadRequest { BucketName = _options.Bucket, Key = key, ContentType = "application/dicom" };
        initiate.Metadata[ShaMetadata] = sha;
        string uploadId = (await _s3.InitiateMultipartUploadAsync(initiate, cancellationToken).ConfigureAwait(false)).UploadId;
        try
        {
            var etags = new List<PartETag>();
            int part = 1;
            for (long offset = 0; offset < length; offset += _options.PartSize, part++)
            {
                long size = Math.Min(_options.PartSize, length - offset);
                await using var slice = new FileSlice(staged, offset, size);
                string md5 = Md5Of(slice);
                slice.Position = 0;
                var response = await _s3.UploadPartAsync(new UploadPartRequest
                {
                    BucketName = _options.Bucket, Key = key, UploadId = uploadId, PartNumber = part, InputStream = slice, PartSize = size, MD5Digest = md5,
                    UseChunkEncoding = false,
                }, cancellationToken).ConfigureAwait(false);
                etags.Add(new PartETag(part, response.ETag));
            }
            await _s3.CompleteMultipartUploadAsync(new CompleteMultipartUploadRequest
            {
                BucketName = _options.Bucket, Key = key, UploadId = uploadId, PartETags = etags,
            }, cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            // Never leave the parts behind (they cost storage and are invisible to listings).
            try
            {
                using var abort = new CancellationTokenSource(_options.RequestTimeout);
                await _s3.AbortMultipartUploadAsync(new AbortMultipartUploadRequest { BucketName = _options.Bucket, Key = key, UploadId = uploadId }, abort.Token)
                    .ConfigureAwait(false);
            }
            catch (Exception e) when (e is AmazonServiceException or HttpRequestException or OperationCanceledException)
            {
                // the store's lifecycle rule for incomplete uploads is the last resort
            }
            throw;
        }
    }

    public async ValueTask<IBlobContent> OpenAsync(BlobRef blob, CancellationToken cancellationToken)
    {
        string key = KeyOf(blob);
        // Received lately (or not yet uploaded): the node reads from its cache, not from S3. A tool beside it (verify)
        // reads what S3 holds, and the cache only for what is not uploaded yet.
        if ((_options.OwnsCache || _cache?.IsPending(blob.Key) == true) && _cache?.TryGet(blob.Key) is { } cached)
        {
            try
            {
                return new StagingArea.LocalFileContent(blob, cached);
            }
            catch (FileNotFoundException)
            {
                // evicted just now: S3 has it
            }
        }
        try
        {
            // One GET for the object's first bytes, which name its length (Content-Range) and hold its header: readers
            // that parse the header and then stream it whole go back to S3 once more, for the rest.
            using var first = await _s3.GetObjectAsync(new GetObjectRequest
            {
                BucketName = _options.Bucket, Key = key, ByteRange = new ByteRange(0, HeadBytes - 1),
            }, cancellationToken).ConfigureAwait(false);
            long length = LengthOf(first.ContentRange) ?? first.ContentLength;
            var head = new byte[Math.Min(first.ContentLength, HeadBytes)];
            await first.ResponseStream.ReadExactlyAsync(head, cancellationToken).ConfigureAwait(false);
            Interlocked.Add(ref _downloaded, head.Length);
            return new S3Content(this, blob, key, length, head);
        }
        catch (AmazonS3Exception e) when (e.StatusCode == HttpStatusCode.NotFound)
        {
            throw new BlobNotFoundException(blob);
        }
        catch (AmazonS3Exception e) when (e.StatusCode == HttpStatusCode.RequestedRangeNotSatisfiable)
        {
            return new S3Content(this, blob, key, 0, []); // an empty object has no first byte
        }
        catch (Exception e) when (Unreachable(e, cancellationToken))
        {
            throw new IOException($"cannot read s3://{_options.Bucket}/{key}: {e.Message}", e);
        }
    }

    /// <summary>How much of an object its opening reads (the header of any instance but those with huge private tags).</summary>
    private const int HeadBytes = 64 * 1024;

    /// <summary>The total length in a Content-Range (<c>bytes 0-65535/524800</c>).</summary>
    private static long? LengthOf(string? contentRange) =>
        contentRange is { } r && r.LastIndexOf('/') is > 0 and var slash && long.TryParse(r.AsSpan(slash + 1), System.Globalization.NumberStyles.None,
            System.Globalization.CultureInfo.InvariantCulture, out long total) ? total : null;

    /// <summary>A failure of the store or the way to it (as opposed to a caller's cancellation): surfaced as an I/O error.</summary>
    private static bool Unreachable(Exception e, CancellationToken cancellationToken) =>
        e is AmazonServiceException or HttpRequestException || (e is OperationCanceledException && !cancellationToken.IsCancellationRequested);

    public async ValueTask<bool> ExistsAsync(BlobRef blob, CancellationToken cancellationToken)
    {
        string key = KeyOf(blob);
        if ((_options.OwnsCache || _cache?.IsPending(blob.Key) == true) && _cache?.TryGet(blob.Key) is not null) return true;
        try
        {
            await _s3.GetObjectMetadataAsync(new GetObjectMetadataRequest { BucketName = _options.Bucket, Key = key }, cancellationToken).ConfigureAwait(false);
            return true;
        }
        catch (AmazonS3Exception e) when (e.StatusCode == HttpStatusCode.NotFound)
        {
            return false;
        }
        catch (Exception e) when (Unreachable(e, cancellationToken))
        {
            throw new IOException($"cannot reach s3://{_options.Bucket}: {e.Message}", e);
        }
    }

    public async ValueTask DeleteAsync(BlobRef blob, CancellationToken cancellationToken)
    {
        KeyOf(blob);
        await DeleteObjectAsync(blob.Key, cancellationToken).ConfigureAwait(false);
        if (_options.OwnsCache) _cache?.Remove(blob.Key);
    }

    public ValueTask<int> CountStagedAsync(CancellationToken cancellationToken) => ValueTask.FromResult(_staging.Count());

    /// <summary>Every object under the prefix, a page (1,000 keys) at a time.</summary>
    public async IAsyncEnumerable<BlobListing> ListAsync([EnumeratorCancellation] CancellationToken cancellationToken)
    {
        string? token = null;
        do
        {
            ListObjectsV2Response page;
            try
            {
                page = await _s3.ListObjectsV2Async(new ListObjectsV2Request
                {
                    BucketName = _options.Bucket, Prefix = _options.Prefix, ContinuationToken = token, MaxKeys = 1000,
                }, cancellationToken).ConfigureAwait(false);
            }
            catch (AmazonS3Exception e) when (e.ErrorCode == "NoSuchBucket")
            {
                yield break;
            }
            catch (Exception e) when (Unreachable(e, cancellationToken))
            {
                throw new IOException($"cannot list s3://{_options.Bucket}/{_options.Prefix}: {e.Message}", e);
            }
            foreach (var o in page.S3Objects ?? [])
            {
                string key = o.Key[_options.Prefix.Length..];
                yield return new BlobListing(new BlobRef(Name, key, BlobKeys.RepresentationOf(key), _tier), o.Size ?? 0);
            }
            token = page.IsTruncated == true ? page.NextContinuationToken : null;
        }
        while (token is not null);
    }

    /// <summary>Settles what is staged (see <see cref="StagingArea.RecoverAsync"/>) and aborts multipart uploads a crash cut short.</summary>
    public async Task<StagedRecovery> RecoverStagedAsync(IStagedBlobResolver resolver, TimeSpan olderThan, CancellationToken cancellationToken)
    {
        var settled = await _staging.RecoverAsync(resolver, _target, olderThan, cancellationToken).ConfigureAwait(false);
        if (_options.OwnsCache) await AbortAbandonedUploadsAsync(cancellationToken).ConfigureAwait(false);
        return settled;
    }

    /// <summary>Multipart uploads under the prefix begun longer ago than <see cref="S3BlobStoreOptions.AbandonedUploadAge"/> (a node died mid-upload): aborted.</summary>
    public async Task<int> AbortAbandonedUploadsAsync(CancellationToken cancellationToken)
    {
        if (Volatile.Read(ref _bucketReady) == 0) return 0; // nothing uploaded by this node yet: its first upload makes the bucket
        int aborted = 0;
        var before = DateTime.UtcNow - _options.AbandonedUploadAge;
        try
        {
            string? keyMarker = null, uploadMarker = null;
            do
            {
                var page = await _s3.ListMultipartUploadsAsync(new ListMultipartUploadsRequest
                {
                    BucketName = _options.Bucket, Prefix = _options.Prefix, KeyMarker = keyMarker, UploadIdMarker = uploadMarker,
                }, cancellationToken).ConfigureAwait(false);
                foreach (var upload in page.MultipartUploads ?? [])
                {
                    if (upload.Initiated is not { } initiated || initiated.ToUniversalTime() > before) continue;
                    await _s3.AbortMultipartUploadAsync(new AbortMultipartUploadRequest { BucketName = _options.Bucket, Key = upload.Key, UploadId = upload.UploadId },
                        cancellationToken).ConfigureAwait(false);
                    aborted++;
                    _options.Log?.LogWarning("aborted the multipart upload of s3://{Bucket}/{Key} begun {Initiated:u} and never completed", _options.Bucket, upload.Key, initiated);
                }
                (keyMarker, uploadMarker) = page.IsTruncated == true ? (page.NextKeyMarker, page.NextUploadIdMarker) : (null, null);
            }
            while (keyMarker is not null);
        }
        catch (Exception e) when (Unreachable(e, cancellationToken))
        {
            throw new IOException($"cannot list the multipart uploads of s3://{_options.Bucket}: {e.Message}", e);
        }
        return aborted;
    }

    /// <summary>
    /// Repairs a blob that S3 lacks (or holds other bytes under) from the receive cache, when the cache still holds the
    /// indexed bytes: uploaded and checked. False when it cannot be repaired from here.
    /// </summary>
    public async Task<bool> TryRepairAsync(BlobRef blob, string sha256, CancellationToken cancellationToken)
    {
        string key = KeyOf(blob);
        if (_cache?.TryGet(blob.Key) is not { } local) return false;
        if (await Sha256OfAsync(local, cancellationToken).ConfigureAwait(false) != sha256) return false;
        await UploadAsync(local, blob.Key, sha256, cancellationToken).ConfigureAwait(false);
        if (_options.OwnsCache) _cache.Uploaded(blob.Key);
        return true;
    }

    public async ValueTask DisposeAsync()
    {
        await _stopping.CancelAsync().ConfigureAwait(false);
        await _uploader.ConfigureAwait(false);
        await _staging.DisposeAsync().ConfigureAwait(false);
        _cache?.Dispose();
        _s3.Dispose();
        _stopping.Dispose();
    }

    /// <summary>A byte range of a file as a stream (one part of a multipart upload).</summary>
    private sealed class FileSlice(string path, long offset, long length) : AkkaVna.Dicom.Buffers.ReadOnlySeekableStream(length)
    {
        private readonly FileStream _file = new(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);

        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

        public override int Read(Span<byte> buffer)
        {
            int n = (int)Math.Min(buffer.Length, Length - Current);
            if (n <= 0) return 0;
            _file.Position = offset + Current;
            n = _file.Read(buffer[..n]);
            Current += n;
            return n;
        }

        protected override void Dispose(bool disposing)
        {
            if (disposing) _file.Dispose();
            base.Dispose(disposing);
        }
    }

    /// <summary>An object as a random-access source: each reader gets a seekable stream of ranged GETs.</summary>
    private sealed class S3Content(S3BlobStore store, BlobRef blob, string key, long length, byte[] head) : IBlobContent
    {
        public BlobRef Blob { get; } = blob;
        public long Length { get; } = length;
        public string Description => $"s3://{store._options.Bucket}/{key}";
        public Stream OpenRead() => new RangedStream(store, key, Length, head);
        public ValueTask DisposeAsync() => ValueTask.CompletedTask;
    }

    /// <summary>
    /// A seekable read-only stream over an object: its first bytes come from what the opening read (no request); a read at
    /// a position past them opens a ranged GET from there (up to the read
    /// window, or the whole rest for a large sequential read) and keeps reading it while the reader goes on in order; a
    /// seek elsewhere drops it. Bytes before a seek target are never fetched.
    /// </summary>
    private sealed class RangedStream(S3BlobStore store, string key, long length, byte[] head) : AkkaVna.Dicom.Buffers.ReadOnlySeekableStream(length)
    {
        private GetObjectResponse? _response;
        private Stream? _body;
        private long _bodyAt, _bodyEnd;

        public override int Read(byte[] buffer, int offset, int count) => ReadAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();

        public override int Read(Span<byte> buffer)
        {
            var rented = System.Buffers.ArrayPool<byte>.Shared.Rent(buffer.Length);
            try
            {
                int n = ReadAsync(rented.AsMemory(0, buffer.Length)).AsTask().GetAwaiter().GetResult();
                rented.AsSpan(0, n).CopyTo(buffer);
                return n;
            }
            finally
            {
                System.Buffers.ArrayPool<byte>.Shared.Return(rented);
            }
        }

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            if (Current >= Length || buffer.IsEmpty) return 0;
            if (Current < head.Length)
            {
                // The object's first bytes, read when it was opened.
                int fromHead = (int)Math.Min(buffer.Length, head.Length - Current);
                head.AsSpan((int)Current, fromHead).CopyTo(buffer.Span);
                Current += fromHead;
                return fromHead;
            }
            if (_body is null || _bodyAt != Current || _bodyAt >= _bodyEnd)
            {
                Drop();
                long end = Math.Min(Length, Current + Math.Max(store._options.ReadWindow, buffer.Length)) - 1;
                try
                {
                    _response = await store._s3.GetObjectAsync(new GetObjectRequest
                    {
                        BucketName = store._options.Bucket, Key = key, ByteRange = new ByteRange(Current, end),
                    }, cancellationToken).ConfigureAwait(false);
                }
                catch (Exception e) when (e is AmazonServiceException or HttpRequestException)
                {
                    throw new IOException($"cannot read s3://{store._options.Bucket}/{key} at {Current}: {e.Message}", e);
                }
                _body = _response.ResponseStream;
                _bodyAt = Current;
                _bodyEnd = end + 1;
            }
            int want = (int)Math.Min(buffer.Length, _bodyEnd - _bodyAt);
            int n = await _body.ReadAsync(buffer[..want], cancellationToken).ConfigureAwait(false);
            Interlocked.Add(ref store._downloaded, n);
            if (n == 0) throw new IOException($"s3://{store._options.Bucket}/{key} ended at {_bodyAt} of {Length} bytes");
            _bodyAt += n;
            Current += n;
            return n;
        }

        private void Drop()
        {
            _body?.Dispose();
            _response?.Dispose();
            _body = null;
            _response = null;
        }

        protected override void Dispose(bool disposing)
        {
            if (disposing) Drop();
            base.Dispose(disposing);
        }
    }
}
