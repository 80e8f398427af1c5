using System.Buffers;
using System.IO.Compression;
using AkkaVna.Dicom.Buffers;

namespace AkkaVna.Dicom.IO;

public sealed record DicomReadOptions
{
    /// <summary>Stop before the first top-level element for which this returns true (e.g. <c>t => t == DicomTags.PixelData</c>).</summary>
    public Func<DicomTag, bool>? StopBefore { get; init; }

    /// <summary>Values longer than this are not loaded: they stay in the file or are spooled to a temporary file.</summary>
    public int LargeValueThreshold { get; init; } = 256 * 1024;

    /// <summary>Where spooled values go (deflated input); the system temp folder by default.</summary>
    public string? TempDirectory { get; init; }

    /// <summary>How spooled values are written: plain, or encrypted under a key only this process holds.</summary>
    public Buffers.Spool Spool { get; init; } = Buffers.Spool.Plain;
}

/// <summary>A DICOM file: File Meta Information (PS3.10 7.1) and the dataset.</summary>
public sealed class DicomFile : IDisposable
{
    private readonly TempFileLargeValues? _temp;

    public DicomFile(DicomDataset fileMetaInfo, DicomDataset dataset)
    {
        FileMetaInfo = fileMetaInfo;
        Dataset = dataset;
    }

    private DicomFile(DicomDataset meta, DicomDataset dataset, TempFileLargeValues? temp) : this(meta, dataset) => _temp = temp;

    public DicomDataset FileMetaInfo { get; }
    public DicomDataset Dataset { get; }

    /// <summary>The syntax the dataset was read in (after sniffing when the meta was missing or wrong).</summary>
    public DicomTransferSyntax TransferSyntax { get; init; } = DicomTransferSyntax.ExplicitVRLittleEndian;

    public bool HasPreamble { get; init; }

    /// <summary>Offset of the first byte of the dataset in the file.</summary>
    public long DatasetOffset { get; init; }

    /// <summary>True when the reader stopped at <see cref="DicomReadOptions.StopBefore"/>.</summary>
    public bool Stopped { get; init; }

    /// <summary>Offset where the reader stopped (the tag of the element it did not read), or the end.</summary>
    public long EndOffset { get; init; }

    public static DicomFile Open(string path, DicomReadOptions? options = null) => Open(new FileSource(path), options);

    /// <summary>
    /// Reads a Part 10 file from any random-access source (a file, a blob): small values are loaded, large ones stay in
    /// the source (which must stay readable while they are used) or, deflated, are spooled to temporary files.
    /// </summary>
    public static DicomFile Open(IRandomAccessSource source, DicomReadOptions? options = null)
    {
        options ??= new DicomReadOptions();
        using var fs = source.OpenRead();
        var layout = DicomFileReader.ReadLayout(fs, options);
        var dataset = new DicomDataset();
        var temp = new TempFileLargeValues(options.TempDirectory, options.Spool);
        ILargeValueStore store = layout.TransferSyntax.IsDeflated ? temp : new InPlaceLargeValues(source, temp);
        var builder = new DicomDatasetBuilder(dataset, store);
        try
        {
            var result = DicomFileReader.ParseDataset(fs, layout, builder, options);
            if (dataset.Count == 0 && !result.Stopped)
                throw new DicomParseException(layout.DatasetOffset, "no dataset follows the File Meta Information (the file is cut short or empty)");
            return new DicomFile(layout.FileMetaInfo, dataset, temp)
            {
                TransferSyntax = result.EffectiveSyntax,
                HasPreamble = layout.HasPreamble,
                DatasetOffset = layout.DatasetOffset,
                Stopped = result.Stopped,
                EndOffset = result.EndOffset,
            };
        }
        catch
        {
            temp.Dispose();
            throw;
        }
    }

    public void Dispose() => _temp?.Dispose();
}

public sealed record DicomFileLayout(DicomDataset FileMetaInfo, DicomTransferSyntax TransferSyntax, bool HasPreamble, long DatasetOffset, bool SyntaxFromMeta);

public sealed record DicomParseResult(DicomTransferSyntax EffectiveSyntax, bool Stopped, long EndOffset);

/// <summary>Reads Part 10 files (with or without preamble and File Meta) through the push parser.</summary>
public static class DicomFileReader
{
    private static readonly byte[] Magic = "DICM"u8.ToArray();

    /// <summary>Reads the preamble and File Meta Information and leaves <paramref name="stream"/> at the dataset.</summary>
    public static DicomFileLayout ReadLayout(Stream stream, DicomReadOptions options)
    {
        long origin = stream.Position;
        Span<byte> head = stackalloc byte[132];
        int n = stream.ReadAtLeast(head, 132, throwOnEndOfStream: false);
        bool preamble = n == 132 && head[128..132].SequenceEqual(Magic);
        long metaStart = preamble ? 132 : 0;
        if (!preamble && n >= 4 && head[..4].SequenceEqual(Magic)) metaStart = 4; // "DICM" without preamble
        if (n < 8 && !preamble) throw new DicomParseException(0, n == 0 ? "empty file" : $"file of {n} bytes is too short to be DICOM");

        stream.Position = origin + metaStart;
        var meta = new DicomDataset();
        long datasetOffset = metaStart;
        bool hasMeta = preamble || metaStart == 4 || (n >= 2 && head[0] == 0x02 && head[1] == 0x00);
        if (hasMeta)
        {
            var builder = new DicomDatasetBuilder(meta, InMemoryLargeValues.Instance);
            // The meta ends at the first element outside group 0002, or at a second (0002,0000): some writers put a
            // second meta group inside the dataset (dcmtk reads it as dataset elements too).
            bool sawGroupLength = false;
            bool EndOfMeta(DicomTag t)
            {
                if (t.Group != 0x0002) return true;
                if (t != DicomTags.FileMetaInformationGroupLength) return false;
                if (sawGroupLength) return true;
                sawGroupLength = true;
                return false;
            }
            var metaOptions = new DicomParserOptions { StopBefore = EndOfMeta, LargeValueThreshold = 1 << 20 };
            var parser = new DicomParser(builder, DicomTransferSyntax.ExplicitVRLittleEndian, metaOptions, metaStart);
            var status = Drive(stream, parser, seekBase: origin, maxBuffered: 1 << 21);
            datasetOffset = parser.Position;
            // (0002,0000) says where the meta ends; a file that ends before that is cut short.
            if (status == DicomParseStatus.Completed && meta[DicomTags.FileMetaInformationGroupLength] is DicomElement { Length: 4 } gl)
            {
                long declaredEnd = metaStart + 12 + System.Buffers.Binary.BinaryPrimitives.ReadUInt32LittleEndian(gl.Value.Memory.Span);
                if (datasetOffset < declaredEnd)
                    throw new DicomParseException(datasetOffset, $"the file ends inside the File Meta Information, whose group length says it ends at {declaredEnd}");
            }
        }
        else
        {
            // A raw dataset (no preamble, no meta) must begin with a data element of a plausible group.
            ushort le = System.Buffers.Binary.BinaryPrimitives.ReadUInt16LittleEndian(head);
            ushort be = System.Buffers.Binary.BinaryPrimitives.ReadUInt16BigEndian(head);
            static bool Plausible(ushort g) => g >= 0x0002 && g <= 0x7FE0;
            if (!Plausible(le) && !Plausible(be))
                throw new DicomParseException(0, $"not DICOM: no preamble and File Meta, and the first bytes are no data element (group {le:X4})");
        }
        stream.Position = origin + datasetOffset;

        string? tsUid = meta.GetString(DicomTags.TransferSyntaxUID);
        var ts = string.IsNullOrEmpty(tsUid) ? null : DicomTransferSyntax.Resolve(tsUid);
        return new DicomFileLayout(meta, ts ?? DicomTransferSyntax.ImplicitVRLittleEndian, preamble, datasetOffset, ts is not null);
    }

    /// <summary>Parses the dataset at the stream's position into <paramref name="observer"/>.</summary>
    public static DicomParseResult ParseDataset(Stream stream, DicomFileLayout layout, IDicomParserObserver observer, DicomReadOptions options)
    {
        var parserOptions = new DicomParserOptions { StopBefore = options.StopBefore, LargeValueThreshold = options.LargeValueThreshold };
        var ts = layout.TransferSyntax;
        if (ts.IsDeflated)
        {
            // PS3.5 A.5: everything after the File Meta is a raw deflate stream (no zlib header).
            using var inflated = new DeflateStream(stream, CompressionMode.Decompress, leaveOpen: true);
            var p = new DicomParser(observer, ts, parserOptions, 0);
            var status = Drive(inflated, p, seekBase: null, maxBuffered: options.LargeValueThreshold + 64);
            return new DicomParseResult(ts, status == DicomParseStatus.Stopped, p.Position);
        }
        var parser = new DicomParser(observer, ts, parserOptions, layout.DatasetOffset);
        var st = Drive(stream, parser, seekBase: stream.Position - layout.DatasetOffset, maxBuffered: options.LargeValueThreshold + 64);
        var effective = ts;
        if (parser.TopLevelExplicitVR != ts.IsExplicitVR || parser.TopLevelBigEndian != ts.IsBigEndian)
        {
            effective = !parser.TopLevelExplicitVR ? DicomTransferSyntax.ImplicitVRLittleEndian
                : parser.TopLevelBigEndian ? DicomTransferSyntax.ExplicitVRBigEndian : ts.IsEncapsulated ? ts : DicomTransferSyntax.ExplicitVRLittleEndian;
        }
        return new DicomParseResult(effective, st == DicomParseStatus.Stopped, parser.Position);
    }

    /// <summary>
    /// Feeds <paramref name="stream"/> to <paramref name="parser"/> until it completes or stops. With a seekable stream
    /// (<paramref name="seekBase"/> = stream offset of parser position 0), skipped values are sought past, not read.
    /// </summary>
    public static DicomParseStatus Drive(Stream stream, DicomParser parser, long? seekBase, int maxBuffered)
    {
        byte[] buffer = ArrayPool<byte>.Shared.Rent(64 * 1024);
        int start = 0, end = 0;
        bool eof = false;
        try
        {
            while (true)
            {
                long skip = parser.PendingSkip;
                if (skip > 0)
                {
                    int inBuffer = end - start;
                    if (skip <= inBuffer)
                    {
                        start += (int)skip;
                        parser.Skipped(skip);
                        continue;
                    }
                    start = end = 0;
                    parser.Skipped(inBuffer);
                    long rest = skip - inBuffer;
                    if (seekBase is long b && stream.CanSeek)
                    {
                        long target = b + parser.Position + rest;
                        if (target > stream.Length) throw new DicomParseException(stream.Length - b, $"data ends inside a value: {target - stream.Length} bytes missing");
                        stream.Position = target;
                        parser.Skipped(rest);
                        continue;
                    }
                    // Not seekable: read through (the parser discards what it does not deliver).
                }

                var status = parser.Parse(new ReadOnlySequence<byte>(buffer, start, end - start), eof, out var consumed);
                start = consumed.GetInteger(); // array-backed sequence: positions are array indices
                if (status != DicomParseStatus.NeedMoreData) return status;
                if (eof) throw new DicomParseException(parser.Position, "unexpected end of data"); // parser throws first; defensive
                // Make room: compact, then grow up to maxBuffered.
                if (start > 0)
                {
                    Buffer.BlockCopy(buffer, start, buffer, 0, end - start);
                    end -= start;
                    start = 0;
                }
                if (end == buffer.Length)
                {
                    if (buffer.Length >= maxBuffered) throw new DicomParseException(parser.Position, $"an element needs more than {maxBuffered} bytes of buffer");
                    var bigger = ArrayPool<byte>.Shared.Rent(Math.Min(maxBuffered, buffer.Length * 2));
                    Buffer.BlockCopy(buffer, 0, bigger, 0, end);
                    ArrayPool<byte>.Shared.Return(buffer);
                    buffer = bigger;
                }
                int read = stream.Read(buffer, end, buffer.Length - end);
                if (read == 0) eof = true;
                end += read;
            }
        }
        catch (InvalidDataException e)
        {
            throw new DicomParseException(parser.Position, "corrupt deflate stream: " + e.Message);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }
}
