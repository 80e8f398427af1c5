using System.Buffers.Binary;

namespace AkkaVna.Dicom.Buffers;

/// <summary>
/// An element value. Values are held in little endian byte order whatever the source's transfer syntax.
/// Large values stay out of memory: they point into a file (<see cref="FileByteBuffer"/>) and are read in chunks.
/// </summary>
public interface IByteBuffer
{
    long Length { get; }

    /// <summary>True when the bytes are in memory and <see cref="Memory"/> is cheap.</summary>
    bool IsMemory { get; }

    /// <summary>The bytes in memory; for file-backed buffers this reads them (use only on small values).</summary>
    ReadOnlyMemory<byte> Memory { get; }

    /// <summary>Copies the bytes to <paramref name="destination"/> in chunks.</summary>
    void CopyTo(Stream destination);
}

public sealed class MemoryByteBuffer(ReadOnlyMemory<byte> data) : IByteBuffer
{
    public static readonly MemoryByteBuffer Empty = new(ReadOnlyMemory<byte>.Empty);

    public long Length => data.Length;
    public bool IsMemory => true;
    public ReadOnlyMemory<byte> Memory => data;
    public void CopyTo(Stream destination) => destination.Write(data.Span);
}

/// <summary>
/// Bytes that can be read from any offset without holding them: a file, an object in a blob store (ranged reads). Values
/// of a data set read from one stay in it (<see cref="SourceByteBuffer"/>), so a 2 GB pixel data element costs no memory.
/// </summary>
public interface IRandomAccessSource
{
    long Length { get; }

    /// <summary>A new seekable stream over the bytes, positioned at the start; each reader opens its own.</summary>
    Stream OpenRead();

    /// <summary>Where the bytes are, for messages (a path, a blob key).</summary>
    string Description { get; }
}

/// <summary>A file as a random-access source.</summary>
public sealed class FileSource(string path) : IRandomAccessSource
{
    public string Path { get; } = path;
    public long Length => new FileInfo(Path).Length;
    public string Description => Path;

    public Stream OpenRead() => new FileStream(Path, FileMode.Open, FileAccess.Read, FileShare.Read | FileShare.Delete, 1, FileOptions.SequentialScan);
}

/// <summary>A value that stays in its source: (source, offset, length). Nothing is read until asked.</summary>
public class SourceByteBuffer(IRandomAccessSource source, long offset, long length) : IByteBuffer
{
    public const int MaxInMemory = 256 * 1024 * 1024;

    public IRandomAccessSource Source { get; } = source;
    public long Offset { get; } = offset;
    public long Length { get; } = length;
    public bool IsMemory => false;

    public ReadOnlyMemory<byte> Memory
    {
        get
        {
            if (Length > MaxInMemory) throw new InvalidOperationException($"Value of {Length} bytes is too large to load into memory; stream it with CopyTo.");
            var bytes = new byte[Length];
            using var stream = Source.OpenRead();
            stream.Position = Offset;
            stream.ReadExactly(bytes);
            return bytes;
        }
    }

    public void CopyTo(Stream destination)
    {
        using var stream = Source.OpenRead();
        stream.Position = Offset;
        byte[] chunk = System.Buffers.ArrayPool<byte>.Shared.Rent(81920);
        try
        {
            long left = Length;
            while (left > 0)
            {
                int n = stream.Read(chunk, 0, (int)Math.Min(chunk.Length, left));
                if (n == 0) throw new EndOfStreamException($"{Source.Description} ends before offset {Offset + Length}.");
                destination.Write(chunk, 0, n);
                left -= n;
            }
        }
        finally
        {
            System.Buffers.ArrayPool<byte>.Shared.Return(chunk);
        }
    }
}

/// <summary>A value that stays in its source file: (path, offset, length). Nothing is read until asked.</summary>
public sealed class FileByteBuffer(string path, long offset, long length) : SourceByteBuffer(new FileSource(path), offset, length)
{
    public string Path { get; } = path;
}

/// <summary>A big endian source value presented little endian: swaps each unit of 2, 4 or 8 bytes as it is read.</summary>
public sealed class SwappedByteBuffer(IByteBuffer inner, int unit) : IByteBuffer
{
    public long Length => inner.Length;
    public bool IsMemory => inner.IsMemory;

    public ReadOnlyMemory<byte> Memory
    {
        get
        {
            var bytes = inner.Memory.ToArray();
            ByteSwap.InPlace(bytes, unit);
            return bytes;
        }
    }

    public void CopyTo(Stream destination)
    {
        using var swapping = new SwappingStream(destination, unit);
        inner.CopyTo(swapping);
    }

    /// <summary>Write-through stream that swaps units; holds back an incomplete unit until the next write.</summary>
    private sealed class SwappingStream(Stream target, int unit) : Stream
    {
        private readonly byte[] _carry = new byte[8];
        private int _carried;

        public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

        public override void Write(ReadOnlySpan<byte> data)
        {
            byte[] tmp = System.Buffers.ArrayPool<byte>.Shared.Rent(data.Length + unit);
            try
            {
                int n = 0;
                if (_carried > 0)
                {
                    _carry.AsSpan(0, _carried).CopyTo(tmp);
                    n = _carried;
                }
                data.CopyTo(tmp.AsSpan(n));
                n += data.Length;
                int whole = n - n % unit;
                ByteSwap.InPlace(tmp.AsSpan(0, whole), unit);
                target.Write(tmp, 0, whole);
                _carried = n - whole;
                tmp.AsSpan(whole, _carried).CopyTo(_carry);
            }
            finally
            {
                System.Buffers.ArrayPool<byte>.Shared.Return(tmp);
            }
        }

        protected override void Dispose(bool disposing)
        {
            if (disposing && _carried > 0) target.Write(_carry, 0, _carried); // odd tail: written as is
            _carried = 0;
            base.Dispose(disposing);
        }

        public override bool CanRead => false;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override void Flush() => target.Flush();
        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
    }
}

public static class ByteSwap
{
    /// <summary>Reverses the byte order of each whole unit in place; a trailing partial unit is left as is.</summary>
    public static void InPlace(Span<byte> data, int unit)
    {
        switch (unit)
        {
            case 2:
                for (int i = 0; i + 1 < data.Length; i += 2) (data[i], data[i + 1]) = (data[i + 1], data[i]);
                break;
            case 4:
                for (int i = 0; i + 3 < data.Length; i += 4)
                    BinaryPrimitives.WriteUInt32LittleEndian(data[i..], BinaryPrimitives.ReadUInt32BigEndian(data[i..]));
                break;
            case 8:
                for (int i = 0; i + 7 < data.Length; i += 8)
                    BinaryPrimitives.WriteUInt64LittleEndian(data[i..], BinaryPrimitives.ReadUInt64BigEndian(data[i..]));
                break;
        }
    }
}
