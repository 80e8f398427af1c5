using System.Buffers;
using AkkaVna.Dicom.Buffers;

namespace AkkaVna.Dicom.IO;

/// <summary>Where the values of large elements go while a dataset is built.</summary>
public interface ILargeValueStore
{
    /// <summary>A buffer for a value already in a seekable file at this offset, or null to have the bytes delivered.</summary>
    IByteBuffer? Locate(in DicomElementHeader header);

    /// <summary>Begins collecting a delivered value.</summary>
    ILargeValueWriter Begin(in DicomElementHeader header);
}

public interface ILargeValueWriter
{
    void Write(ReadOnlySequence<byte> chunk);
    IByteBuffer Complete();
}

/// <summary>Builds a <see cref="DicomDataset"/> from parser events, converting values to little endian.</summary>
public sealed class DicomDatasetBuilder(DicomDataset root, ILargeValueStore largeValues) : IDicomParserObserver
{
    private readonly Stack<DicomDataset> _datasets = new([root]);
    private readonly Stack<DicomSequence> _sequences = new();
    private DicomFragmentSequence? _fragments;
    private DicomElementHeader _fragmentsHeader;
    private bool _fragmentsHaveOffsetTable;
    private DicomElementHeader _large;
    private ILargeValueWriter? _largeWriter;
    private IByteBuffer? _largeBuffer;

    public DicomDataset Root => root;

    public void OnElement(in DicomElementHeader header, ReadOnlySequence<byte> value)
    {
        var bytes = value.ToArray();
        if (header.VRFromDictionary && header.VR == DicomVR.US && _fragments is null && IsUSorSS(header.Tag)
            && _datasets.Peek().GetUInt16(DicomTags.PixelRepresentation) == 1)
        {
            // US/SS elements (e.g. Smallest Image Pixel Value) are signed when Pixel Representation is 1 (PS3.3 C.7.6.3.1.4).
            Store(header with { VR = DicomVR.SS }, Swapped(header, bytes));
            return;
        }
        Store(header, Swapped(header, bytes));
    }

    private MemoryByteBuffer Swapped(in DicomElementHeader header, byte[] bytes)
    {
        if (header.BigEndian && header.VR.ByteSwapUnit() > 1 && _fragments is null) ByteSwap.InPlace(bytes, header.VR.ByteSwapUnit());
        return new MemoryByteBuffer(bytes);
    }

    private static bool IsUSorSS(DicomTag tag) => Dictionary.DicomDictionary.Lookup(tag) is { VR: DicomVR.US, VR2: DicomVR.SS };

    private void Store(in DicomElementHeader header, IByteBuffer buffer)
    {
        if (_fragments is not null)
        {
            if (!_fragmentsHaveOffsetTable)
            {
                _fragments = new DicomFragmentSequence(_fragmentsHeader.Tag, _fragmentsHeader.VR, buffer);
                _fragmentsHaveOffsetTable = true;
            }
            else _fragments.Fragments.Add(buffer);
            return;
        }
        _datasets.Peek().Add(new DicomElement(header.Tag, header.VR, buffer));
    }

    public bool OnLargeValueStart(in DicomElementHeader header)
    {
        _large = header;
        var located = largeValues.Locate(header);
        if (located is not null)
        {
            _largeBuffer = Swap(header, located);
            return false;
        }
        _largeWriter = largeValues.Begin(header);
        return true;
    }

    private IByteBuffer Swap(in DicomElementHeader header, IByteBuffer buffer) =>
        header.BigEndian && header.VR.ByteSwapUnit() > 1 && _fragments is null ? new SwappedByteBuffer(buffer, header.VR.ByteSwapUnit()) : buffer;

    public void OnLargeValueChunk(ReadOnlySequence<byte> chunk) => _largeWriter!.Write(chunk);

    public void OnLargeValueEnd()
    {
        var buffer = _largeBuffer ?? Swap(_large, _largeWriter!.Complete());
        _largeBuffer = null;
        _largeWriter = null;
        Store(_large, buffer);
    }

    public void OnSequenceStart(in DicomElementHeader header)
    {
        var sq = new DicomSequence(header.Tag) { SourceVR = header.VR };
        _datasets.Peek().Add(sq);
        _sequences.Push(sq);
    }

    public void OnSequenceItemStart(long offset, uint length)
    {
        var item = new DicomDataset { Parent = _datasets.Peek() };
        _sequences.Peek().Items.Add(item);
        _datasets.Push(item);
    }

    public void OnSequenceItemEnd() => _datasets.Pop();

    public void OnSequenceEnd() => _sequences.Pop();

    public void OnFragmentsStart(in DicomElementHeader header)
    {
        _fragmentsHeader = header;
        _fragmentsHaveOffsetTable = false;
        _fragments = new DicomFragmentSequence(header.Tag, header.VR, MemoryByteBuffer.Empty);
    }

    public void OnFragmentsEnd()
    {
        var f = _fragments!;
        _fragments = null;
        _datasets.Peek().Add(f);
    }
}

/// <summary>Large values of a seekable, non-deflated source stay in the source (a file, a blob); nothing is copied.</summary>
public sealed class InPlaceLargeValues(IRandomAccessSource source, ILargeValueStore fallback) : ILargeValueStore
{
    public InPlaceLargeValues(string path, ILargeValueStore fallback) : this(new FileSource(path), fallback)
    {
    }

    public IByteBuffer? Locate(in DicomElementHeader header) => source is FileSource file
        ? new FileByteBuffer(file.Path, header.ValueOffset, header.Length)
        : new SourceByteBuffer(source, header.ValueOffset, header.Length);

    public ILargeValueWriter Begin(in DicomElementHeader header) => fallback.Begin(header);
}

/// <summary>Large values spooled to temporary files, deleted when the store is disposed.</summary>
public sealed class TempFileLargeValues(string? directory = null, Spool? spool = null) : ILargeValueStore, IDisposable
{
    private readonly List<string> _files = [];

    public IByteBuffer? Locate(in DicomElementHeader header) => null;

    public ILargeValueWriter Begin(in DicomElementHeader header)
    {
        string path = Path.Combine(directory ?? Path.GetTempPath(), "akkavna-" + Guid.NewGuid().ToString("N") + ".value");
        lock (_files) _files.Add(path);
        return new Writer(path, spool ?? Spool.Plain);
    }

    public void Dispose()
    {
        lock (_files)
        {
            foreach (var f in _files)
            {
                try { File.Delete(f); } catch (IOException) { } catch (UnauthorizedAccessException) { }
            }
            _files.Clear();
        }
    }

    private sealed class Writer(string path, Spool spool) : ILargeValueWriter
    {
        private readonly Stream _stream = spool.Create(path);
        private long _length;

        public void Write(ReadOnlySequence<byte> chunk)
        {
            foreach (var m in chunk) _stream.Write(m.Span);
            _length += chunk.Length;
        }

        public IByteBuffer Complete()
        {
            _stream.Dispose();
            return spool.IsEncrypted ? new SourceByteBuffer(spool.Open(path), 0, _length) : new FileByteBuffer(path, 0, _length);
        }
    }
}

/// <summary>Large values kept in memory (for small inputs and tests only).</summary>
public sealed class InMemoryLargeValues : ILargeValueStore
{
    public static readonly InMemoryLargeValues Instance = new();

    public IByteBuffer? Locate(in DicomElementHeader header) => null;

    public ILargeValueWriter Begin(in DicomElementHeader header) => new Writer();

    private sealed class Writer : ILargeValueWriter
    {
        private readonly MemoryStream _ms = new();
        public void Write(ReadOnlySequence<byte> chunk) { foreach (var m in chunk) _ms.Write(m.Span); }
        public IByteBuffer Complete() => new MemoryByteBuffer(_ms.ToArray());
    }
}
