namespace AkkaVna.Dicom.Buffers;

/// <summary>
/// What the blob stores' read streams share: read-only, seekable over a known length, the position kept by the reader
/// (S3's ranged reads and file slices, encrypted content read through <see cref="ChunkedGcmReadStream"/>).
/// </summary>
public abstract class ReadOnlySeekableStream(long length) : Stream
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
