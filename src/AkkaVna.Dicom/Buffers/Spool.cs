using System.Buffers.Binary;
using System.Security.Cryptography;

namespace AkkaVna.Dicom.Buffers;

/// <summary>
/// How temporary copies of data sets are written (a STOW-RS request's parts, a retrieve's converted copies, deflated
/// values): as plain files, or encrypted (AES-256-GCM in 64 KiB chunks) under a key that exists only in this process's
/// memory — a spool file is then unreadable by anyone, this process once it ends included, which is all a temporary
/// copy needs. Each file has its own key, derived from the process key and a random salt in its header:
/// <code>"AVNASPL1" | salt (16) | plaintext length (u64 LE) | chunks: AES-GCM(chunk i), tag; nonce = i; AD = i | last</code>
/// </summary>
public sealed class Spool
{
    private const int ChunkSize = ChunkedGcmReadStream.ChunkSize, TagSize = ChunkedGcmReadStream.TagSize, HeaderSize = 32;
    private static readonly byte[] Magic = "AVNASPL1"u8.ToArray();
    private readonly byte[]? _key;

    private Spool(byte[]? key) => _key = key;

    /// <summary>Plain files.</summary>
    public static readonly Spool Plain = new(null);

    /// <summary>Files encrypted under a new random key held by this instance only.</summary>
    public static Spool Encrypted() => new(RandomNumberGenerator.GetBytes(32));

    public bool IsEncrypted => _key is not null;

    /// <summary>A new spool file to write (sequentially); disposing it completes it. The file must not exist.</summary>
    public Stream Create(string path)
    {
        var file = new FileStream(path, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.Read, 64 * 1024);
        if (_key is null) return file;
        try
        {
            return new EncryptingStream(file, _key);
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    /// <summary>A completed spool file's content (plaintext, any range).</summary>
    public IRandomAccessSource Open(string path) => _key is null ? new FileSource(path) : new EncryptedSource(path, _key);

    private static byte[] FileKey(byte[] processKey, ReadOnlySpan<byte> salt) => HMACSHA256.HashData(processKey, salt);

    private static readonly byte[] ZeroPrefix = new byte[4];


    private sealed class EncryptingStream : Stream
    {
        private readonly FileStream _file;
        private readonly ChunkedGcmSealer _sealer;
        private bool _done;

        public EncryptingStream(FileStream file, byte[] processKey)
        {
            _file = file;
            byte[] header = new byte[HeaderSize];
            Magic.CopyTo(header, 0);
            RandomNumberGenerator.Fill(header.AsSpan(8, 16));
            _sealer = new ChunkedGcmSealer(FileKey(processKey, header.AsSpan(8, 16)), ZeroPrefix);
            _file.Write(header);
        }

        public override bool CanRead => false;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Length => _sealer.Length;
        public override long Position { get => _sealer.Length; set => throw new NotSupportedException(); }

        public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

        public override void Write(ReadOnlySpan<byte> data)
        {
            ObjectDisposedException.ThrowIf(_done, this);
            while (!data.IsEmpty)
            {
                if (_sealer.Full) _file.Write(_sealer.Seal(last: false).Span);
                data = data[_sealer.Take(data)..];
            }
        }

        public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken)
        {
            Write(buffer.AsSpan(offset, count));
            return Task.CompletedTask;
        }

        public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
        {
            Write(buffer.Span);
            return ValueTask.CompletedTask;
        }

        public override void Flush() => _file.Flush();
        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();

        protected override void Dispose(bool disposing)
        {
            if (disposing && !_done)
            {
                _done = true;
                try
                {
                    _file.Write(_sealer.Seal(last: true).Span);
                    _file.Position = 24;
                    Span<byte> length = stackalloc byte[8];
                    BinaryPrimitives.WriteInt64LittleEndian(length, _sealer.Length);
                    _file.Write(length);
                }
                finally
                {
                    _file.Dispose();
                    _sealer.Dispose();
                }
            }
            base.Dispose(disposing);
        }
    }

    private sealed class EncryptedSource(string path, byte[] processKey) : IRandomAccessSource
    {
        public string Description => path + " (spool, encrypted)";

        public long Length
        {
            get
            {
                using var f = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read | FileShare.Delete, 1);
                return ReadHeader(f).Length;
            }
        }

        private static (byte[] Salt, long Length) ReadHeader(Stream f)
        {
            byte[] header = new byte[HeaderSize];
            f.ReadExactly(header);
            if (!header.AsSpan(0, 8).SequenceEqual(Magic)) throw new InvalidDataException($"{f} is not an encrypted spool file");
            return (header.AsSpan(8, 16).ToArray(), BinaryPrimitives.ReadInt64LittleEndian(header.AsSpan(24)));
        }

        public Stream OpenRead()
        {
            var f = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read | FileShare.Delete, 1, FileOptions.RandomAccess);
            try
            {
                var (salt, length) = ReadHeader(f);
                return new ChunkedGcmReadStream(f, HeaderSize, FileKey(processKey, salt), ZeroPrefix, length);
            }
            catch
            {
                f.Dispose();
                throw;
            }
        }
    }
}

/// <summary>
/// The writing side of <see cref="ChunkedGcmReadStream"/>'s format: plaintext gathered into chunks of
/// <see cref="ChunkedGcmReadStream.ChunkSize"/> bytes, each sealed with AES-256-GCM (its index and whether it is the last
/// as associated data). The writer takes bytes until the chunk is <see cref="Full"/>, writes out what <see cref="Seal"/>
/// returns (valid until the next seal), and seals the last chunk — possibly empty — with <c>last: true</c>.
/// </summary>
public sealed class ChunkedGcmSealer(byte[] key, byte[] noncePrefix) : IDisposable
{
    private const int ChunkSize = ChunkedGcmReadStream.ChunkSize, TagSize = ChunkedGcmReadStream.TagSize;
    private readonly AesGcm _gcm = new(key, TagSize);
    private readonly byte[] _chunk = new byte[ChunkSize], _sealed = new byte[ChunkSize + TagSize];
    private int _filled;
    private long _index;

    /// <summary>Plaintext bytes taken so far.</summary>
    public long Length { get; private set; }

    /// <summary>The gathered chunk is full: seal it (not as the last) before taking more.</summary>
    public bool Full => _filled == ChunkSize;

    /// <summary>Takes as much of <paramref name="data"/> as the chunk holds; how much.</summary>
    public int Take(ReadOnlySpan<byte> data)
    {
        int n = Math.Min(ChunkSize - _filled, data.Length);
        data[..n].CopyTo(_chunk.AsSpan(_filled));
        _filled += n;
        Length += n;
        return n;
    }

    /// <summary>The gathered chunk sealed (ciphertext and tag), to be written before the next call.</summary>
    public ReadOnlyMemory<byte> Seal(bool last)
    {
        Span<byte> nonce = stackalloc byte[12], aad = stackalloc byte[9];
        ChunkedGcmReadStream.NonceAndAad(nonce, aad, noncePrefix, _index, last);
        _gcm.Encrypt(nonce, _chunk.AsSpan(0, _filled), _sealed.AsSpan(0, _filled), _sealed.AsSpan(_filled, TagSize), aad);
        int length = _filled + TagSize;
        _index++;
        _filled = 0;
        return _sealed.AsMemory(0, length);
    }

    public void Dispose()
    {
        _gcm.Dispose();
        CryptographicOperations.ZeroMemory(_chunk);
    }
}

/// <summary>
/// Reads AES-256-GCM chunked ciphertext (what <see cref="Spool"/> and the encrypted blob store write) as its plaintext,
/// seekable: chunk i of at most <see cref="ChunkSize"/> bytes plus its tag at <c>offset + i * (ChunkSize + 16)</c>, nonce
/// <c>prefix (4) | i (u64 LE)</c>, associated data <c>i (u64 LE) | last (1)</c>; a chunk that does not authenticate (altered,
/// reordered, or the last one missing) is an <see cref="InvalidDataException"/>, never wrong bytes.
/// </summary>
public sealed class ChunkedGcmReadStream(Stream stored, long offset, byte[] key, byte[] noncePrefix, long length) : ReadOnlySeekableStream(length)
{
    public const int ChunkSize = 64 * 1024;
    public const int TagSize = 16;

    /// <summary>The nonce and associated data of chunk <paramref name="chunk"/>.</summary>
    public static void NonceAndAad(Span<byte> nonce, Span<byte> aad, ReadOnlySpan<byte> prefix, long chunk, bool last)
    {
        prefix.CopyTo(nonce);
        BinaryPrimitives.WriteInt64LittleEndian(nonce[4..], chunk);
        BinaryPrimitives.WriteInt64LittleEndian(aad, chunk);
        aad[8] = last ? (byte)1 : (byte)0;
    }

    private readonly AesGcm _gcm = new(key, TagSize);
    private readonly byte[] _plain = new byte[ChunkSize], _sealed = new byte[ChunkSize + TagSize];
    private readonly long _chunks = Math.Max(1, (length + ChunkSize - 1) / ChunkSize);
    private readonly long _length = length;
    private long _loaded = -1;
    private int _loadedLength;

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    public override int Read(Span<byte> buffer)
    {
        if (Current >= _length || buffer.IsEmpty) return 0;
        long chunk = Current / ChunkSize;
        if (chunk != _loaded)
        {
            int plain = (int)Math.Min(ChunkSize, _length - chunk * ChunkSize);
            stored.Position = offset + chunk * (ChunkSize + TagSize);
            stored.ReadExactly(_sealed, 0, plain + TagSize);
            Span<byte> nonce = stackalloc byte[12], aad = stackalloc byte[9];
            NonceAndAad(nonce, aad, noncePrefix, chunk, chunk == _chunks - 1);
            try
            {
                _gcm.Decrypt(nonce, _sealed.AsSpan(0, plain), _sealed.AsSpan(plain, TagSize), _plain.AsSpan(0, plain), aad);
            }
            catch (AuthenticationTagMismatchException e)
            {
                throw new InvalidDataException($"chunk {chunk} of encrypted content does not authenticate: it is damaged or was altered", e);
            }
            _loaded = chunk;
            _loadedLength = plain;
        }
        int at = (int)(Current - chunk * ChunkSize);
        int n = Math.Min(buffer.Length, _loadedLength - at);
        _plain.AsSpan(at, n).CopyTo(buffer);
        Current += n;
        return n;
    }

    public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) => ValueTask.FromResult(Read(buffer.Span));
    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) => Task.FromResult(Read(buffer.AsSpan(offset, count)));


    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _gcm.Dispose();
            stored.Dispose();
            CryptographicOperations.ZeroMemory(key);
            CryptographicOperations.ZeroMemory(_plain);
        }
        base.Dispose(disposing);
    }
}
