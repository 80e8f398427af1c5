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

namespace AkkaVna.Blobs.S3;

/// <summary>Where an S3 store is and how it is reached.</summary>
public sealed record S3BlobStoreOptions
{
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
}

/// <summary>
/// The blob port on an S3-compatible object store (AWSSDK.S3). A blob is staged on the node's local disk as it arrives
/// (streamed, SHA-256 on the way, fsynced when sealed) and uploaded when promoted: one PUT up to the multipart
/// threshold, else a multipart upload of parts read from the staged file (an interrupted one is aborted, not left
/// behind). Integrity is end to end: every PUT and part carries its Content-MD5, which the store checks on receipt; the
/// object records the blob's SHA-256 in its metadata, and a promotion is complete only when the stored object's size and
/// recorded SHA-256 are the staged file's. Reads are streamed and ranged (a seekable stream of ranged GETs), so a
/// WADO-RS frame reads only its bytes. Keys are readable and spread: <c>PREFIX fff/study/series/sop.dcm</c>, <c>fff</c> a
/// stable hash of the Study Instance UID. Every request has a timeout and is retried with backoff by the SDK.
/// </summary>
public sealed class S3BlobStore : IBlobStore
{
    private const string ShaMetadata = "x-amz-meta-akkavna-sha256";
    private readonly S3BlobStoreOptions _options;
    private readonly IAmazonS3 _s3;
    private readonly StagingArea _staging;
    private readonly string _tier;
    private int _bucketReady;

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
    }

    public string Name { get; }

    public string Description => $"s3://{_options.Bucket}/{_options.Prefix}" + (_options.ServiceUrl is { } url ? $" at {url}" : "");

    public BlobRef RefFor(string studyInstanceUid, string seriesInstanceUid, string sopInstanceUid, string representation = BlobRef.Original) =>
        BlobKeys.For(Name, _tier, studyInstanceUid, seriesInstanceUid, sopInstanceUid, representation);

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

    public ValueTask<IBlobWriter> CreateAsync(CancellationToken cancellationToken) => ValueTask.FromResult(_staging.Create(UploadAsync));

    /// <summary>Promotion: the staged file uploaded under the key, checked, and then removed from the staging folder.</summary>
    private async ValueTask UploadAsync(string staged, BlobRef blob, CancellationToken cancellationToken)
    {
        string key = KeyOf(blob);
        try
        {
            await EnsureBucketAsync(cancellationToken).ConfigureAwait(false);
            long length = new FileInfo(staged).Length;
            string sha;
            await using (var fs = File.OpenRead(staged)) sha = Convert.ToHexStringLower(await SHA256.HashDataAsync(fs, cancellationToken).ConfigureAwait(false));
            if (length <= _options.MultipartThreshold) await PutAsync(staged, key, sha, cancellationToken).ConfigureAwait(false);
            else await PutMultipartAsync(staged, key, sha, length, cancellationToken).ConfigureAwait(false);
            // End to end: what the store holds now is these bytes (each request's MD5 was checked on receipt).
            var head = await _s3.GetObjectMetadataAsync(new GetObjectMetadataRequest { BucketName = _options.Bucket, Key = key }, cancellationToken).ConfigureAwait(false);
            if (head.ContentLength != length || head.Metadata[ShaMetadata] != sha)
                throw new IOException($"s3://{_options.Bucket}/{key} holds {head.ContentLength} bytes (SHA-256 {head.Metadata[ShaMetadata]}) after the upload of {length} ({sha})");
        }
        catch (Exception e) when (Unreachable(e, cancellationToken))
        {
            throw new IOException($"cannot upload s3://{_options.Bucket}/{key}: {e.Message}", e);
        }
        File.Delete(staged);
    }

    private static string Md5Of(Stream stream)
    {
        using var md5 = MD5.Create();
        return Convert.ToBase64String(md5.ComputeHash(stream));
    }

    private async Task PutAsync(string staged, string key, string sha, CancellationToken cancellationToken)
    {
        await using var file = File.OpenRead(staged);
        string md5 = Md5Of(file);
        file.Position = 0;
        var request = new PutObjectRequest
        {
            BucketName = _options.Bucket, Key = key, InputStream = file, AutoCloseStream = false, MD5Digest = md5, ContentType = "application/dicom",
            UseChunkEncoding = false,
        };
        request.Metadata[ShaMetadata] = sha;
        await _s3.PutObjectAsync(request, cancellationToken).ConfigureAwait(false);
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
        try
        {
            var head = await _s3.GetObjectMetadataAsync(new GetObjectMetadataRequest { BucketName = _options.Bucket, Key = key }, cancellationToken).ConfigureAwait(false);
            return new S3Content(this, blob, key, head.ContentLength);
        }
        catch (AmazonS3Exception e) when (e.StatusCode == HttpStatusCode.NotFound)
        {
            throw new BlobNotFoundException(blob);
        }
        catch (Exception e) when (Unreachable(e, cancellationToken))
        {
            throw new IOException($"cannot read s3://{_options.Bucket}/{key}: {e.Message}", e);
        }
    }

    /// <summary>A failure of the store or the way to it (as opposed to a caller's cancellation): surfaced as an I/O error.</summary>
    private static bool Unreachable(Exception e, CancellationToken cancellationToken) =>
        e is AmazonServiceException or HttpRequestException || (e is OperationCanceledException && !cancellationToken.IsCancellationRequested);

    public async ValueTask<bool> ExistsAsync(BlobRef blob, CancellationToken cancellationToken)
    {
        try
        {
            await _s3.GetObjectMetadataAsync(new GetObjectMetadataRequest { BucketName = _options.Bucket, Key = KeyOf(blob) }, cancellationToken).ConfigureAwait(false);
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
        try
        {
            await _s3.DeleteObjectAsync(new DeleteObjectRequest { BucketName = _options.Bucket, Key = KeyOf(blob) }, cancellationToken).ConfigureAwait(false);
        }
        catch (AmazonS3Exception e) when (e.StatusCode == HttpStatusCode.NotFound)
        {
            // never written, or its bucket not yet made: nothing to delete
        }
        catch (Exception e) when (Unreachable(e, cancellationToken))
        {
            throw new IOException($"cannot delete from s3://{_options.Bucket}: {e.Message}", e);
        }
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

    public Task<StagedRecovery> RecoverStagedAsync(Func<IBlobContent, Task<BlobRef?>> resolve, TimeSpan olderThan, CancellationToken cancellationToken) =>
        _staging.RecoverAsync(resolve, UploadAsync, olderThan, cancellationToken);

    public async ValueTask DisposeAsync()
    {
        await _staging.DisposeAsync().ConfigureAwait(false);
        _s3.Dispose();
    }

    /// <summary>What both streams here share: read-only, seekable over a known length, the position kept by the reader.</summary>
    private abstract class ReadOnlySeekableStream(long length) : Stream
    {
        protected long Current;

        public override bool CanRead => true;
        public override bool CanSeek => true;
        public override bool CanWrite => false;
        public override long Length => length;

        public override long Position
        {
            get => Current;
            set
            {
                ArgumentOutOfRangeException.ThrowIfNegative(value);
                Current = value;
            }
        }

        public override long Seek(long offset, SeekOrigin origin) => Position = origin switch
        {
            SeekOrigin.Begin => offset,
            SeekOrigin.Current => Current + offset,
            _ => length + offset,
        };

        public override void Flush() { }
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }

    /// <summary>A byte range of a file as a stream (one part of a multipart upload).</summary>
    private sealed class FileSlice(string path, long offset, long length) : ReadOnlySeekableStream(length)
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
    private sealed class S3Content(S3BlobStore store, BlobRef blob, string key, long length) : IBlobContent
    {
        public BlobRef Blob { get; } = blob;
        public long Length { get; } = length;
        public string Description => $"s3://{store._options.Bucket}/{key}";
        public Stream OpenRead() => new RangedStream(store, key, Length);
        public ValueTask DisposeAsync() => ValueTask.CompletedTask;
    }

    /// <summary>
    /// A seekable read-only stream over an object: a read at a position opens a ranged GET from there (up to the read
    /// window, or the whole rest for a large sequential read) and keeps reading it while the reader goes on in order; a
    /// seek elsewhere drops it. Bytes before a seek target are never fetched.
    /// </summary>
    private sealed class RangedStream(S3BlobStore store, string key, long length) : ReadOnlySeekableStream(length)
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
