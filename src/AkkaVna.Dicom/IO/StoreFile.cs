using AkkaVna.Dicom.Buffers;

namespace AkkaVna.Dicom.IO;

/// <summary>
/// A Part 10 file ready to send: its SOP class and instance, the transfer syntax its data set is really encoded in,
/// and where the data set lies in the file (sent from there as is, never loaded whole).
/// </summary>
public sealed record StoreFile(string Path, string SopClassUid, string SopInstanceUid, DicomTransferSyntax TransferSyntax, long DataSetOffset, long DataSetLength)
{
    /// <summary>Where the bytes are read from when sent: the file at <see cref="Path"/> unless the file was read from another source (a blob).</summary>
    public IRandomAccessSource Source { get; init; } = new FileSource(Path);

    public static StoreFile Read(string path) => Read(new FileSource(path));

    /// <summary>
    /// Reads what sending needs from the start of a Part 10 file held by any random-access source (a file, a blob): the
    /// File Meta, and the data set's first elements when the meta lacks the UIDs.
    /// </summary>
    public static StoreFile Read(IRandomAccessSource source)
    {
        using var fs = source.OpenRead();
        var options = new DicomReadOptions { StopBefore = t => t.Group > 0x0008 || (t.Group == 0x0008 && t.Element > 0x0018) };
        var layout = DicomFileReader.ReadLayout(fs, options);
        string? sopClass = layout.FileMetaInfo.GetString(DicomTags.MediaStorageSOPClassUID);
        string? sopInstance = layout.FileMetaInfo.GetString(DicomTags.MediaStorageSOPInstanceUID);
        var ds = new DicomDataset();
        var result = DicomFileReader.ParseDataset(fs, layout, new DicomDatasetBuilder(ds, InMemoryLargeValues.Instance), options);
        sopClass = ds.GetString(DicomTags.SOPClassUID) is { Length: > 0 } c ? c : sopClass;
        sopInstance = ds.GetString(DicomTags.SOPInstanceUID) is { Length: > 0 } i ? i : sopInstance;
        if (string.IsNullOrEmpty(sopClass)) throw new DicomParseException(0, "no SOP Class UID in the File Meta or the data set");
        if (string.IsNullOrEmpty(sopInstance)) throw new DicomParseException(0, "no SOP Instance UID in the File Meta or the data set");
        // The meta may name a syntax the data set is not in (the parser sniffs it); send what is really there.
        var ts = layout.TransferSyntax.IsDeflated ? layout.TransferSyntax : result.EffectiveSyntax;
        long length = source.Length;
        return new StoreFile(source is FileSource file ? file.Path : source.Description, sopClass, sopInstance, ts, layout.DatasetOffset, length - layout.DatasetOffset)
        {
            Source = source,
        };
    }

    /// <summary>
    /// The data set as a C-STORE sends it: read from the file at its offset in large chunks (PDVs are often only 16 KB).
    /// PDV fragments have even lengths (PS3.8 9.3.5.1), so a deflated bitstream of odd length gets one trailing NUL
    /// byte (PS3.5 A.5), which inflaters ignore; other data sets are sent as they are.
    /// </summary>
    public (Stream Source, long Length) OpenDataSet()
    {
        var fs = Source.OpenRead(); // unbuffered: each PDV's bytes are read straight into the send buffer
        fs.Position = DataSetOffset;
        return TransferSyntax.IsDeflated && DataSetLength % 2 == 1 ? (new PaddedStream(fs, DataSetLength), DataSetLength + 1) : (fs, DataSetLength);
    }
}

/// <summary>Reads <c>length</c> bytes of a stream, then one NUL byte. Owns the stream: disposing this disposes it.</summary>
public sealed class PaddedStream(Stream inner, long length) : Stream
{
    private long _read;

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    public override int Read(Span<byte> buffer)
    {
        if (_read < length)
        {
            int n = inner.Read(buffer[..(int)Math.Min(buffer.Length, length - _read)]);
            if (n == 0) throw new IOException("the data set ended early");
            _read += n;
            return n;
        }
        if (_read == length && buffer.Length > 0)
        {
            buffer[0] = 0;
            _read++;
            return 1;
        }
        return 0;
    }

    public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) => ValueTask.FromResult(Read(buffer.Span));
    public override bool CanRead => true;
    public override bool CanSeek => false;
    public override bool CanWrite => false;
    public override long Length => length + 1;
    public override long Position { get => _read; set => throw new NotSupportedException(); }
    public override void Flush() { }
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    protected override void Dispose(bool disposing)
    {
        if (disposing) inner.Dispose();
        base.Dispose(disposing);
    }
}
