using System.Buffers;
using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Security.Cryptography;
using AkkaVna.Core.Model;
using AkkaVna.Core.Ports;

namespace AkkaVna.Core.Blobs;

/// <summary>
/// Encryption at rest around a blob store: each blob is AES-256-GCM encrypted in 64 KiB chunks under a random key of its
/// own, and that key is wrapped by its study's data key (<see cref="StudyKeyring"/>), itself wrapped by the master key.
/// What the store holds — staged, promoted, cached, uploaded — is only ciphertext:
/// <code>
/// header   "AVNAENC1" | chunk size (u32 LE) | nonce prefix (4) | 16 zero bytes                       32 bytes
/// chunks   AES-GCM(chunk i), tag; nonce = prefix | i (u64 LE); associated data = i (u64 LE) | last (1)   each ≤ 64 KiB + 16
/// trailer  study key ID (16) | wrap nonce (12) | wrapped blob key (32) | tag (16) | length (u64 LE) | "AVNAEND1"   92 bytes
/// </code>
/// Readers see the plaintext (its length, its SHA-256 as the integrity record) and read any range by decrypting only the
/// chunks it covers, so frames and headers are read without the rest. A truncated, reordered or altered blob fails its
/// tags, never yields wrong bytes. The trailer is written once the blob's study is known (when it is prepared or
/// promoted), in the same synchronous write that makes the blob durable.
/// </summary>
public sealed class EncryptedBlobStore(IBlobStore inner, StudyKeyring keys) : IBlobStore, IUploadBacklog, IBlobRepair
{
    public const int ChunkSize = AkkaVna.Dicom.Buffers.ChunkedGcmReadStream.ChunkSize;
    private const int TagSize = AkkaVna.Dicom.Buffers.ChunkedGcmReadStream.TagSize, HeaderSize = 32, TrailerSize = 92;
    private static readonly byte[] Magic = "AVNAENC1"u8.ToArray(), EndMagic = "AVNAEND1"u8.ToArray();

    public IBlobStore Inner => inner;
    public string Name => inner.Name;
    public string Description => inner.Description + ", encrypted at rest (AES-256-GCM, a key per study)";

    /// <summary>The plaintext length of a blob of <paramref name="stored"/> bytes in this format (-1 when no plaintext has that size).</summary>
    public static long PlainLength(long stored)
    {
        long body = stored - HeaderSize - TrailerSize;
        if (body < TagSize) return -1;
        long chunks = (body + ChunkSize + TagSize - 1) / (ChunkSize + TagSize);
        return body - chunks * TagSize;
    }

    public BlobRef RefFor(string studyInstanceUid, string seriesInstanceUid, string sopInstanceUid, string representation = BlobRef.Original, string? contentSha256 = null) =>
        inner.RefFor(studyInstanceUid, seriesInstanceUid, sopInstanceUid, representation, contentSha256);

    public async ValueTask<IBlobWriter> CreateAsync(CancellationToken cancellationToken) =>
        new Writer(this, await inner.CreateAsync(cancellationToken).ConfigureAwait(false));

    public async ValueTask<IBlobContent> OpenAsync(BlobRef blob, CancellationToken cancellationToken) =>
        await DecryptAsync(await inner.OpenAsync(blob, cancellationToken).ConfigureAwait(false), cancellationToken).ConfigureAwait(false);

    /// <summary>Stored content as its plaintext (the key looked up by the ID its trailer names).</summary>
    private async Task<IBlobContent> DecryptAsync(IBlobContent stored, CancellationToken cancellationToken)
    {
        try
        {
            if (stored.Length < HeaderSize + TagSize + TrailerSize) throw new InvalidDataException($"{stored.Description} is too short to be an encrypted blob");
            byte[] header = new byte[HeaderSize], trailer = new byte[TrailerSize];
            await using (var s = stored.OpenRead())
            {
                await s.ReadExactlyAsync(header, cancellationToken).ConfigureAwait(false);
                s.Seek(stored.Length - TrailerSize, SeekOrigin.Begin);
                await s.ReadExactlyAsync(trailer, cancellationToken).ConfigureAwait(false);
            }
            if (!header.AsSpan(0, 8).SequenceEqual(Magic) || BinaryPrimitives.ReadUInt32LittleEndian(header.AsSpan(8)) != ChunkSize)
                throw new InvalidDataException($"{stored.Description} is not an encrypted blob of this format (akka-vna.encryption was off when it was written?)");
            if (!trailer.AsSpan(84, 8).SequenceEqual(EndMagic))
                throw new InvalidDataException($"{stored.Description} has no key trailer: it was never finished (a crash before it was prepared)");
            string keyId = Convert.ToHexStringLower(trailer.AsSpan(0, 16));
            byte[] studyKey = await keys.KeyAsync(keyId, cancellationToken).ConfigureAwait(false);
            byte[] blobKey = new byte[32];
            using (var wrap = new AesGcm(studyKey, TagSize))
                wrap.Decrypt(trailer.AsSpan(16, 12), trailer.AsSpan(28, 32), trailer.AsSpan(60, 16), blobKey, [.. trailer.AsSpan(0, 16), .. header.AsSpan(12, 4)]);
            long length = BinaryPrimitives.ReadInt64LittleEndian(trailer.AsSpan(76, 8));
            if (length != PlainLength(stored.Length)) throw new InvalidDataException($"{stored.Description}: its trailer says {length} bytes, its size {stored.Length} does not fit");
            return new Content(stored, blobKey, header.AsSpan(12, 4).ToArray(), length);
        }
        catch
        {
            await stored.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    public ValueTask<bool> ExistsAsync(BlobRef blob, CancellationToken cancellationToken) => inner.ExistsAsync(blob, cancellationToken);
    public ValueTask DeleteAsync(BlobRef blob, CancellationToken cancellationToken) => inner.DeleteAsync(blob, cancellationToken);
    public ValueTask<int> CountStagedAsync(CancellationToken cancellationToken) => inner.CountStagedAsync(cancellationToken);

    public async IAsyncEnumerable<BlobListing> ListAsync([EnumeratorCancellation] CancellationToken cancellationToken)
    {
        await foreach (var l in inner.ListAsync(cancellationToken).ConfigureAwait(false))
            yield return l with { Length = PlainLength(l.Length) };
    }

    /// <summary>Recovery reads staged blobs through the keyring too; one without its trailer (never prepared) was never acknowledged.</summary>
    public Task<StagedRecovery> RecoverStagedAsync(IStagedBlobResolver resolver, TimeSpan olderThan, CancellationToken cancellationToken) =>
        inner.RecoverStagedAsync(new Resolver(this, resolver), olderThan, cancellationToken);

    private sealed class Resolver(EncryptedBlobStore owner, IStagedBlobResolver resolver) : IStagedBlobResolver
    {
        public async Task<BlobRef?> ResolveAsync(IBlobContent staged, CancellationToken cancellationToken)
        {
            IBlobContent plain;
            try
            {
                plain = await owner.DecryptAsync(new Unowned(staged), cancellationToken).ConfigureAwait(false);
            }
            catch (Exception e) when (e is InvalidDataException or CryptographicException or StudyKeyMissingException)
            {
                return null; // unreadable: never acknowledged (no trailer), or its study destroyed meanwhile
            }
            await using (plain) return await resolver.ResolveAsync(plain, cancellationToken).ConfigureAwait(false);
        }

        public Task<bool> IsReferencedAsync(BlobRef blob, CancellationToken cancellationToken) => resolver.IsReferencedAsync(blob, cancellationToken);
    }

    /// <summary>Content the recovery owns: reading it through here must not dispose it.</summary>
    private sealed class Unowned(IBlobContent content) : IBlobContent
    {
        public BlobRef Blob => content.Blob;
        public long Length => content.Length;
        public string Description => content.Description;
        public Stream OpenRead() => content.OpenRead();
        public ValueTask DisposeAsync() => ValueTask.CompletedTask;
    }

    // An object store's upload queue and repair are the inner store's (repair compares the stored bytes' checksum, which
    // is of the ciphertext: it cannot tell a good copy from the plaintext's record, so it repairs nothing).
    int IUploadBacklog.PendingUploads => (inner as IUploadBacklog)?.PendingUploads ?? 0;
    long IUploadBacklog.PendingUploadBytes => (inner as IUploadBacklog)?.PendingUploadBytes ?? 0;
    long IUploadBacklog.CachedBytes => (inner as IUploadBacklog)?.CachedBytes ?? 0;
    long IUploadBacklog.Uploaded => (inner as IUploadBacklog)?.Uploaded ?? 0;
    long IUploadBacklog.UploadFailures => (inner as IUploadBacklog)?.UploadFailures ?? 0;
    long IUploadBacklog.BytesDownloaded => (inner as IUploadBacklog)?.BytesDownloaded ?? 0;
    Task<bool> IBlobRepair.TryRepairAsync(BlobRef blob, string sha256, CancellationToken cancellationToken) => Task.FromResult(false);

    public ValueTask DisposeAsync() => inner.DisposeAsync();


    private sealed class Writer(EncryptedBlobStore owner, IBlobWriter inner) : IBlobWriter
    {
        private readonly byte[] _key = RandomNumberGenerator.GetBytes(32), _prefix = RandomNumberGenerator.GetBytes(4);
        private readonly IncrementalHash _sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        private AkkaVna.Dicom.Buffers.ChunkedGcmSealer? _sealer;
        private bool _sealed, _finished, _flush;

        public long Length => _sealer?.Length ?? 0;
        public bool IsPrepared => inner.IsPrepared;
        // Unfinished (never prepared: a resend of bytes archived already), nothing can name it: there is nothing to keep.
        public void KeepStagedUntil(DateTimeOffset deadline)
        {
            if (_finished) inner.KeepStagedUntil(deadline);
        }
        // A blob never prepared has no key trailer: no one could read it, and no commit can name it (prepare comes first):
        // it is discarded with its writer rather than left for recovery.
        public void LeaveForRecovery()
        {
            if (_finished) inner.LeaveForRecovery();
        }

        public async ValueTask WriteAsync(ReadOnlySequence<byte> data, CancellationToken cancellationToken)
        {
            foreach (var segment in data) await WriteAsync(segment, cancellationToken).ConfigureAwait(false);
        }

        public async ValueTask WriteAsync(ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
        {
            if (_sealed) throw new InvalidOperationException("the blob is sealed");
            var sealer = await StartAsync(cancellationToken).ConfigureAwait(false);
            _sha.AppendData(data.Span);
            while (!data.IsEmpty)
            {
                // A full chunk goes out only when more follows: the last chunk is sealed as the last one.
                if (sealer.Full) await inner.WriteAsync(sealer.Seal(last: false), cancellationToken).ConfigureAwait(false);
                data = data[sealer.Take(data.Span)..];
            }
        }

        private async ValueTask<AkkaVna.Dicom.Buffers.ChunkedGcmSealer> StartAsync(CancellationToken cancellationToken)
        {
            if (_sealer is { } started) return started;
            _sealer = new AkkaVna.Dicom.Buffers.ChunkedGcmSealer(_key, _prefix);
            byte[] header = new byte[HeaderSize];
            Magic.CopyTo(header, 0);
            BinaryPrimitives.WriteUInt32LittleEndian(header.AsSpan(8), ChunkSize);
            _prefix.CopyTo(header, 12);
            await inner.WriteAsync(header, cancellationToken).ConfigureAwait(false);
            return _sealer;
        }

        /// <summary>The last chunk and the plaintext's SHA-256; the blob is made durable with its key trailer when prepared.</summary>
        public async ValueTask<string> SealAsync(bool flushToDisk, CancellationToken cancellationToken)
        {
            if (_sealed) throw new InvalidOperationException("the blob is sealed already");
            var sealer = await StartAsync(cancellationToken).ConfigureAwait(false);
            await inner.WriteAsync(sealer.Seal(last: true), cancellationToken).ConfigureAwait(false);
            _sealed = true;
            _flush = flushToDisk;
            return Convert.ToHexStringLower(_sha.GetHashAndReset());
        }

        private async ValueTask FinishAsync(BlobRef blob, CancellationToken cancellationToken)
        {
            if (_finished) return;
            if (!_sealed) throw new InvalidOperationException("the blob must be sealed before it is prepared");
            string study = BlobKeys.Parse(blob.Key)?.Study ?? throw new ArgumentException($"'{blob.Key}' names no study: an encrypted blob needs its study's key", nameof(blob));
            var (keyId, studyKey) = await owner.Keys.KeyOfStudyAsync(study, cancellationToken).ConfigureAwait(false);
            byte[] trailer = new byte[TrailerSize];
            Convert.FromHexString(keyId).CopyTo(trailer, 0);
            RandomNumberGenerator.Fill(trailer.AsSpan(16, 12));
            using (var wrap = new AesGcm(studyKey, TagSize))
                wrap.Encrypt(trailer.AsSpan(16, 12), _key, trailer.AsSpan(28, 32), trailer.AsSpan(60, 16), [.. trailer.AsSpan(0, 16), .. _prefix]);
            BinaryPrimitives.WriteInt64LittleEndian(trailer.AsSpan(76), Length);
            EndMagic.CopyTo(trailer, 84);
            await inner.WriteAsync(trailer, cancellationToken).ConfigureAwait(false);
            await inner.SealAsync(_flush, cancellationToken).ConfigureAwait(false);
            _finished = true;
        }

        public async ValueTask PrepareAsync(BlobRef blob, CancellationToken cancellationToken)
        {
            await FinishAsync(blob, cancellationToken).ConfigureAwait(false);
            await inner.PrepareAsync(blob, cancellationToken).ConfigureAwait(false);
        }

        public async ValueTask PromoteAsync(BlobRef blob, CancellationToken cancellationToken)
        {
            await FinishAsync(blob, cancellationToken).ConfigureAwait(false);
            await inner.PromoteAsync(blob, cancellationToken).ConfigureAwait(false);
        }

        public async ValueTask DisposeAsync()
        {
            await inner.DisposeAsync().ConfigureAwait(false);
            _sealer?.Dispose();
            _sha.Dispose();
            CryptographicOperations.ZeroMemory(_key);
        }
    }

    internal StudyKeyring Keys => keys;

    /// <summary>A blob's plaintext: any range read by decrypting only the chunks it covers.</summary>
    private sealed class Content(IBlobContent stored, byte[] key, byte[] prefix, long length) : IBlobContent
    {
        public BlobRef Blob => stored.Blob;
        public long Length => length;
        public string Description => stored.Description + " (decrypted)";
        public Stream OpenRead() => new AkkaVna.Dicom.Buffers.ChunkedGcmReadStream(stored.OpenRead(), HeaderSize, key.ToArray(), prefix, length);

        public ValueTask DisposeAsync()
        {
            CryptographicOperations.ZeroMemory(key);
            return stored.DisposeAsync();
        }
    }
}
