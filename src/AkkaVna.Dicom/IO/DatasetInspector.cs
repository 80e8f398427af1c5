using System.Buffers;
using System.Buffers.Binary;
using System.IO.Compression;
using System.Security.Cryptography;
using AkkaVna.Dicom.Buffers;

namespace AkkaVna.Dicom.IO;

/// <summary>What a <see cref="DatasetInspector"/> is asked to gather besides proving the data set whole.</summary>
public sealed record DatasetInspectorOptions
{
    /// <summary>Top-level elements to keep (small values only, e.g. the attributes an index holds); null keeps none.</summary>
    public Func<DicomTag, bool>? Keep { get; init; }

    /// <summary>Compute <see cref="DatasetInspection.ContentSha256"/>, the checksum of the data set's content.</summary>
    public bool ContentHash { get; init; }

    /// <summary>Values longer than this stream through without being buffered.</summary>
    public int LargeValueThreshold { get; init; } = 256 * 1024;
}

/// <summary>
/// What an inspected data set holds: the elements kept, the content checksum (when asked), the syntax it was really read
/// in (after sniffing) and its length as received.
/// </summary>
public sealed record DatasetInspection(DicomDataset Kept, string? ContentSha256, DicomTransferSyntax EffectiveSyntax, long Length);

/// <summary>
/// Proves that a data set is whole while its bytes pass, without holding any value: fed the bytes as they arrive
/// (<see cref="Write(ReadOnlySequence{byte})"/>), it runs the streaming parser over them and, at <see cref="Complete"/>,
/// requires the data to end exactly at the end of the top-level data set — every element's declared length present,
/// every sequence and item closed, encapsulated pixel data ended by its delimiter. Ingest answers success only for a data
/// set that passes.
/// <para>
/// On the way it can keep the top-level attributes an index needs and compute a checksum of the data set's
/// <em>content</em>, which, unlike a checksum of the bytes, is the same whoever sends the instance and in whichever
/// uncompressed transfer syntax it comes: it covers each element's tag and value (in little endian, the VR left out)
/// and the structure of sequences, items and fragments, in stream order, and leaves out what depends only on the
/// encoding — group lengths (gggg,0000) and whether sequences and items had defined or undefined lengths. Encapsulated
/// pixel data is covered fragment by fragment, as received.
/// </para>
/// Deflated data sets are inflated on the way (a push-fed inflater; the bytes are never gathered).
/// </summary>
public sealed class DatasetInspector : IDisposable
{
    private readonly Observer _observer;
    private readonly DicomParser _parser;
    private readonly DicomTransferSyntax _syntax;
    private readonly int _maxCarry;
    private byte[] _carry = [];
    private int _carryLength;
    private long _length;
    private bool _completed;
    // Deflated data sets: compressed bytes go into a feed that the inflater reads, inflated bytes into the parser.
    private readonly FeedStream? _feed;
    private readonly DeflateStream? _inflater;
    private byte[]? _inflated;

    public DatasetInspector(DicomTransferSyntax syntax, DatasetInspectorOptions? options = null)
    {
        options ??= new DatasetInspectorOptions();
        _syntax = syntax;
        _observer = new Observer(options.Keep, options.ContentHash);
        _parser = new DicomParser(_observer, syntax, new DicomParserOptions { LargeValueThreshold = options.LargeValueThreshold });
        _maxCarry = options.LargeValueThreshold + 64;
        if (syntax.IsDeflated)
        {
            _feed = new FeedStream();
            _inflater = new DeflateStream(_feed, CompressionMode.Decompress);
            _inflated = ArrayPool<byte>.Shared.Rent(64 * 1024);
        }
    }

    /// <summary>Bytes of the data set fed so far (as received: compressed for a deflated data set).</summary>
    public long Length => _length;

    /// <summary>Feeds the next bytes. Throws <see cref="DicomParseException"/> as soon as they cannot be a valid data set.</summary>
    public void Write(ReadOnlySequence<byte> data)
    {
        if (_completed) throw new InvalidOperationException("the inspection is complete");
        _length += data.Length;
        if (_feed is not null)
        {
            foreach (var segment in data) _feed.Add(segment.ToArray());
            Inflate(isFinal: false);
            return;
        }
        Parse(data, isFinal: false);
    }

    public void Write(ReadOnlySpan<byte> data) => Write(new ReadOnlySequence<byte>(data.ToArray()));

    public void Write(ReadOnlyMemory<byte> data) => Write(new ReadOnlySequence<byte>(data));

    /// <summary>
    /// The data has ended: throws <see cref="DicomParseException"/> (naming what is missing and where) unless the data set
    /// is whole, and returns what was gathered.
    /// </summary>
    public DatasetInspection Complete()
    {
        if (_completed) throw new InvalidOperationException("the inspection is complete");
        _completed = true;
        if (_length == 0) throw new DicomParseException(0, "the data set is empty");
        if (_feed is not null)
        {
            _feed.Final = true;
            Inflate(isFinal: true);
        }
        else Parse(ReadOnlySequence<byte>.Empty, isFinal: true);
        var effective = _syntax;
        if (!_syntax.IsDeflated && (_parser.TopLevelExplicitVR != _syntax.IsExplicitVR || _parser.TopLevelBigEndian != _syntax.IsBigEndian))
            effective = !_parser.TopLevelExplicitVR ? DicomTransferSyntax.ImplicitVRLittleEndian
                : _parser.TopLevelBigEndian ? DicomTransferSyntax.ExplicitVRBigEndian : _syntax.IsEncapsulated ? _syntax : DicomTransferSyntax.ExplicitVRLittleEndian;
        return new DatasetInspection(_observer.Kept, _observer.FinishHash(), effective, _length);
    }

    /// <summary>Inspects a Part 10 file (or a bare data set) read from <paramref name="stream"/>, to its end.</summary>
    public static DatasetInspection InspectFile(Stream stream, DatasetInspectorOptions? options = null)
    {
        var layout = DicomFileReader.ReadLayout(stream, new DicomReadOptions());
        using var inspector = new DatasetInspector(layout.TransferSyntax, options);
        byte[] buffer = ArrayPool<byte>.Shared.Rent(256 * 1024);
        try
        {
            int n;
            while ((n = stream.Read(buffer, 0, buffer.Length)) > 0) inspector.Write(new ReadOnlySequence<byte>(buffer, 0, n));
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
        return inspector.Complete();
    }

    private void Inflate(bool isFinal)
    {
        try
        {
            int n;
            while ((n = _inflater!.Read(_inflated!, 0, _inflated!.Length)) > 0) Parse(new ReadOnlySequence<byte>(_inflated, 0, n), isFinal: false);
        }
        catch (InvalidDataException e)
        {
            throw new DicomParseException(_parser.Position, "corrupt deflate stream: " + e.Message);
        }
        if (isFinal) Parse(ReadOnlySequence<byte>.Empty, isFinal: true);
    }

    private void Parse(ReadOnlySequence<byte> data, bool isFinal)
    {
        // What the parser left unconsumed last time (at most one element header or small value) comes first.
        var input = _carryLength == 0 ? data : Chain(_carry.AsMemory(0, _carryLength), data);
        var status = _parser.Parse(input, isFinal, out var consumed);
        if (status == DicomParseStatus.Completed) return;
        var rest = input.Slice(consumed);
        if (rest.Length > _maxCarry) throw new DicomParseException(_parser.Position, $"an element needs more than {_maxCarry} bytes of buffer");
        if (rest.Length > _carry.Length)
        {
            var bigger = new byte[Math.Max((int)rest.Length, Math.Min(_maxCarry, Math.Max(_carry.Length * 2, 4096)))];
            rest.CopyTo(bigger);
            _carry = bigger;
        }
        else if (rest.Length > 0)
        {
            // The rest may overlap the carry itself: copy through a temporary when it does.
            if (_carryLength > 0 && rest.Start.GetObject() == input.Start.GetObject()) rest.ToArray().CopyTo(_carry, 0);
            else rest.CopyTo(_carry);
        }
        _carryLength = (int)rest.Length;
    }

    private static ReadOnlySequence<byte> Chain(ReadOnlyMemory<byte> first, ReadOnlySequence<byte> then)
    {
        var head = new Segment(first, 0);
        var tail = head;
        foreach (var m in then)
            if (!m.IsEmpty) tail = tail.Append(m);
        return new ReadOnlySequence<byte>(head, 0, tail, tail.Memory.Length);
    }

    public void Dispose()
    {
        _observer.Dispose();
        _inflater?.Dispose();
        if (_inflated is not null) ArrayPool<byte>.Shared.Return(_inflated);
        _inflated = null;
    }

    private sealed class Segment : ReadOnlySequenceSegment<byte>
    {
        public Segment(ReadOnlyMemory<byte> memory, long runningIndex)
        {
            Memory = memory;
            RunningIndex = runningIndex;
        }

        public Segment Append(ReadOnlyMemory<byte> memory)
        {
            var next = new Segment(memory, RunningIndex + Memory.Length);
            Next = next;
            return next;
        }
    }

    /// <summary>The compressed bytes fed so far, read by the inflater; it answers 0 when it has none yet, and the inflater resumes later.</summary>
    private sealed class FeedStream : Stream
    {
        private readonly Queue<byte[]> _chunks = new();
        private byte[]? _current;
        private int _position;
        public bool Final { get; set; }

        public void Add(byte[] chunk)
        {
            if (chunk.Length > 0) _chunks.Enqueue(chunk);
        }

        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

        public override int Read(Span<byte> buffer)
        {
            while (_current is null || _position == _current.Length)
            {
                if (!_chunks.TryDequeue(out _current)) return 0;
                _position = 0;
            }
            int n = Math.Min(buffer.Length, _current.Length - _position);
            _current.AsSpan(_position, n).CopyTo(buffer);
            _position += n;
            return n;
        }

        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }

    /// <summary>Keeps the asked-for top-level elements and feeds the content checksum; holds no large value.</summary>
    private sealed class Observer : IDicomParserObserver, IDisposable
    {
        private readonly Func<DicomTag, bool>? _keep;
        private readonly DicomDatasetBuilder? _builder;
        private readonly IncrementalHash? _hash;
        private readonly byte[] _pending = new byte[8192];
        private int _pendingLength;
        private int _fragmentsDepth;
        // A large value in big endian is swapped unit by unit: a unit split between chunks waits here.
        private DicomElementHeader _large;
        private bool _largeSwap;
        private readonly byte[] _unit = new byte[8];
        private int _unitLength;
        // A kept top-level sequence: its first items' short text elements are kept (a code sequence's values), nothing deeper.
        private const int MaxKeptItems = 16, MaxKeptItemValue = 1024;
        private DicomSequence? _sequence;
        private DicomDataset? _item;
        private int _nested;

        public Observer(Func<DicomTag, bool>? keep, bool hash)
        {
            _keep = keep;
            Kept = new DicomDataset();
            if (keep is not null) _builder = new DicomDatasetBuilder(Kept, InMemoryLargeValues.Instance);
            if (hash) _hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        }

        public DicomDataset Kept { get; }

        public string? FinishHash()
        {
            if (_hash is null) return null;
            FlushPending();
            return Convert.ToHexStringLower(_hash.GetHashAndReset());
        }

        public void OnElement(in DicomElementHeader header, ReadOnlySequence<byte> value)
        {
            if (header.Depth == 0 && _fragmentsDepth == 0 && _builder is not null && _keep!(header.Tag)) _builder.OnElement(header, value);
            else if (_item is not null && _nested == 0 && value.Length <= MaxKeptItemValue && header.VR.IsString() && !header.BigEndian)
                _item.Add(new DicomElement(header.Tag, header.VR, new MemoryByteBuffer(value.ToArray())));
            if (_hash is null || IsGroupLength(header.Tag)) return;
            Marker((byte)'E', header.Tag, value.Length);
            if (Swaps(header))
            {
                var bytes = value.ToArray();
                ByteSwap.InPlace(bytes, header.VR.ByteSwapUnit());
                Append(bytes);
            }
            else foreach (var m in value) Append(m.Span);
        }

        public bool OnLargeValueStart(in DicomElementHeader header)
        {
            if (_hash is null || IsGroupLength(header.Tag)) return false;
            _large = header;
            _largeSwap = Swaps(header);
            _unitLength = 0;
            Marker((byte)'L', header.Tag, header.Length);
            return true;
        }

        public void OnLargeValueChunk(ReadOnlySequence<byte> chunk)
        {
            if (!_largeSwap)
            {
                FlushPending();
                foreach (var m in chunk) _hash!.AppendData(m.Span);
                return;
            }
            int unit = _large.VR.ByteSwapUnit();
            foreach (var m in chunk)
            {
                var span = m.Span;
                while (!span.IsEmpty)
                {
                    int take = Math.Min(unit - _unitLength, span.Length);
                    span[..take].CopyTo(_unit.AsSpan(_unitLength));
                    _unitLength += take;
                    span = span[take..];
                    if (_unitLength == unit)
                    {
                        _unit.AsSpan(0, unit).Reverse();
                        Append(_unit.AsSpan(0, unit));
                        _unitLength = 0;
                    }
                }
            }
        }

        public void OnLargeValueEnd()
        {
            if (_largeSwap && _unitLength > 0) Append(_unit.AsSpan(0, _unitLength)); // a trailing partial unit, as is
            _unitLength = 0;
            _largeSwap = false;
        }

        public void OnSequenceStart(in DicomElementHeader header)
        {
            if (_hash is not null) Marker((byte)'S', header.Tag, 0);
            if (_sequence is not null) _nested++;
            else if (header.Depth == 0 && _fragmentsDepth == 0 && _builder is not null && _keep!(header.Tag))
            {
                _sequence = new DicomSequence(header.Tag);
                _nested = 0;
            }
        }

        public void OnSequenceItemStart(long offset, uint length)
        {
            Symbol((byte)'I');
            if (_sequence is not null && _nested == 0 && _sequence.Items.Count < MaxKeptItems) _sequence.Items.Add(_item = new DicomDataset());
        }

        public void OnSequenceItemEnd()
        {
            Symbol((byte)'i');
            if (_nested == 0) _item = null;
        }

        public void OnSequenceEnd()
        {
            Symbol((byte)'s');
            if (_sequence is null) return;
            if (_nested > 0)
            {
                _nested--;
                return;
            }
            Kept.Add(_sequence);
            _sequence = null;
        }

        public void OnFragmentsStart(in DicomElementHeader header)
        {
            _fragmentsDepth++;
            if (_hash is not null) Marker((byte)'F', header.Tag, 0);
        }

        public void OnFragmentsEnd()
        {
            _fragmentsDepth--;
            Symbol((byte)'f');
        }

        private bool Swaps(in DicomElementHeader header) => header.BigEndian && _fragmentsDepth == 0 && header.VR.ByteSwapUnit() > 1;

        private static bool IsGroupLength(DicomTag tag) => tag.Element == 0x0000 && tag.Group != 0xFFFE;

        private void Symbol(byte symbol)
        {
            if (_hash is null) return;
            Append([symbol]);
        }

        /// <summary>A marker, the tag and the value's length: the stream of markers cannot be read two ways.</summary>
        private void Marker(byte symbol, DicomTag tag, long length)
        {
            Span<byte> m = stackalloc byte[13];
            m[0] = symbol;
            BinaryPrimitives.WriteUInt16LittleEndian(m[1..], tag.Group);
            BinaryPrimitives.WriteUInt16LittleEndian(m[3..], tag.Element);
            BinaryPrimitives.WriteInt64LittleEndian(m[5..], length);
            Append(m);
        }

        private void Append(ReadOnlySpan<byte> data)
        {
            if (_pendingLength + data.Length > _pending.Length)
            {
                FlushPending();
                if (data.Length > _pending.Length)
                {
                    _hash!.AppendData(data);
                    return;
                }
            }
            data.CopyTo(_pending.AsSpan(_pendingLength));
            _pendingLength += data.Length;
        }

        private void FlushPending()
        {
            if (_pendingLength == 0) return;
            _hash!.AppendData(_pending.AsSpan(0, _pendingLength));
            _pendingLength = 0;
        }

        public void Dispose() => _hash?.Dispose();
    }
}
