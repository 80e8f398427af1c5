using System.Buffers;
using System.Buffers.Binary;
using System.Globalization;
using System.IO.Pipelines;
using System.Runtime.InteropServices;
using AkkaVna.Dicom.Buffers;

namespace AkkaVna.Dicom.Imaging;

/// <summary>
/// Pixel data that cannot be split into frames, and why: no pixel data, a frame number out of range, image attributes
/// that disagree with the value's size, or an offset table that does not fit the fragments. The HTTP layer answers
/// with <see cref="Exception.Message"/> as it is.
/// </summary>
public sealed class PixelDataException(string reason) : Exception(reason)
{
    public string Reason => Message;
}

/// <summary>How the frames of a pixel data value were found.</summary>
public enum FrameLayout
{
    /// <summary>Native, each frame a whole number of bytes: frame k starts at byte (k-1) * frame size.</summary>
    Native,

    /// <summary>Native, frames not byte aligned (Bits Allocated 1, or odd pixel counts at 12 bits): frame k starts at bit (k-1) * frame bits and is repacked to bit 0.</summary>
    BitPacked,

    /// <summary>Encapsulated, located by the Extended Offset Table (7FE0,0001) and its lengths (7FE0,0002).</summary>
    ExtendedOffsetTable,

    /// <summary>Encapsulated, located by the Basic Offset Table (the first item of the fragment sequence).</summary>
    BasicOffsetTable,

    /// <summary>Encapsulated without offset table, as many fragments as frames: one fragment per frame.</summary>
    OneFragmentPerFrame,

    /// <summary>Encapsulated, one frame: all fragments, concatenated.</summary>
    SingleFrame,

    /// <summary>
    /// Encapsulated without offset table, fewer frames than fragments: a frame starts at each fragment that begins a
    /// JPEG / JPEG-LS (SOI) or JPEG 2000 (SOC, JP2 signature) codestream. PS3.5 A.4 forbids a fragment to hold parts of
    /// two frames, so frames begin at fragment starts, and these markers cannot begin a continuation fragment of a
    /// well-formed codestream (entropy-coded data never holds FF D8 or FF 4F).
    /// </summary>
    CodestreamStarts,
}

/// <summary>
/// The frames of a dataset's pixel data (Pixel Data, Float Pixel Data or Double Float Pixel Data), numbered from 1 as
/// DICOMweb numbers them (PS3.18 8.3.5.1). Nothing is loaded: the dataset's values stay where <see cref="IO.DicomFile"/>
/// left them (in the file, or in a temporary file for deflated input), and each frame is streamed from there when
/// opened. The frame layout and every offset table are checked when this is built, so a frame that opens is
/// consistent with its neighbours. The dataset's <see cref="IO.DicomFile"/> must stay undisposed while frames are read
/// (disposing deletes the temporary files of deflated input).
/// </summary>
public sealed class PixelDataFrames
{
    /// <summary>Offset tables, and the bytes a bit-packed frame is repacked in, are read into memory up to this size.</summary>
    public const int MaxInMemoryBytes = 64 * 1024 * 1024;

    private static readonly DicomTag[] PixelDataTags = [DicomTags.PixelData, DicomTags.FloatPixelData, DicomTags.DoubleFloatPixelData];

    private readonly DicomElement? _native;
    private readonly long _frameBits;
    private readonly DicomFragmentSequence? _encapsulated;
    private readonly int[] _firstFragment = []; // encapsulated: frame k (0-based) is fragments [_firstFragment[k], _firstFragment[k + 1])
    private readonly long[]? _frameLengths; // from the Extended Offset Table Lengths: the frame's bytes without trailing padding

    private PixelDataFrames(DicomTag tag, int count, FrameLayout layout, DicomElement native, long frameBits)
    {
        Tag = tag;
        Count = count;
        Layout = layout;
        _native = native;
        _frameBits = frameBits;
    }

    private PixelDataFrames(DicomTag tag, int count, FrameLayout layout, DicomFragmentSequence encapsulated, int[] firstFragment, long[]? frameLengths)
    {
        Tag = tag;
        Count = count;
        Layout = layout;
        _encapsulated = encapsulated;
        _firstFragment = firstFragment;
        _frameLengths = frameLengths;
    }

    /// <summary>The attribute that holds the frames.</summary>
    public DicomTag Tag { get; }

    /// <summary>Number of frames: Number of Frames (0028,0008), or 1 when it is absent or empty.</summary>
    public int Count { get; }

    public FrameLayout Layout { get; }

    public bool IsEncapsulated => _encapsulated is not null;

    /// <summary>True when the dataset has one of the pixel data attributes at its top level.</summary>
    public static bool HasPixelData(DicomDataset dataset) => PixelDataTags.Any(dataset.Contains);

    /// <summary>Locates the frames of <paramref name="dataset"/>'s pixel data; throws <see cref="PixelDataException"/> with the reason when it cannot.</summary>
    public static PixelDataFrames Of(DicomDataset dataset)
    {
        var present = PixelDataTags.Where(dataset.Contains).ToList();
        if (present.Count == 0)
            throw new PixelDataException("the dataset has no Pixel Data (7FE0,0010), Float Pixel Data (7FE0,0008) or Double Float Pixel Data (7FE0,0009)");
        if (present.Count > 1)
            throw new PixelDataException($"the dataset has both {present[0]} and {present[1]}: which of them holds the frames is ambiguous");
        var tag = present[0];
        int frames = NumberOfFrames(dataset);
        return dataset[tag] switch
        {
            DicomElement e => OfNative(dataset, tag, e, frames),
            DicomFragmentSequence f => OfEncapsulated(dataset, tag, f, frames),
            _ => throw new PixelDataException($"{tag} is a sequence of items, neither a pixel value nor encapsulated fragments"),
        };
    }

    /// <summary>Frame <paramref name="number"/>, counted from 1.</summary>
    public PixelDataFrame GetFrame(int number)
    {
        if (number < 1 || number > Count)
            throw new PixelDataException($"frame {number} does not exist: the pixel data has {Count} frame{(Count == 1 ? "" : "s")}, numbered from 1");
        int k = number - 1;
        if (_native is not null)
        {
            if (Layout == FrameLayout.BitPacked)
            {
                long startBit = k * _frameBits;
                long sourceBytes = (startBit % 8 + _frameBits + 7) / 8;
                long length = (_frameBits + 7) / 8;
                var source = new ValueRange(_native.Value, startBit / 8, Math.Min(sourceBytes, _native.Length - startBit / 8));
                return new PixelDataFrame(number, length, [source], new BitWindow((int)(startBit % 8), _frameBits));
            }
            long size = _frameBits / 8;
            return new PixelDataFrame(number, size, [new ValueRange(_native.Value, k * size, size)], null);
        }

        var fragments = _encapsulated!.Fragments;
        var ranges = new List<ValueRange>(_firstFragment[k + 1] - _firstFragment[k]);
        long total = 0;
        long? wanted = _frameLengths?[k];
        for (int i = _firstFragment[k]; i < _firstFragment[k + 1]; i++)
        {
            long take = fragments[i].Length;
            if (wanted is long w) take = Math.Min(take, w - total);
            if (take > 0) ranges.Add(new ValueRange(fragments[i], 0, take));
            total += take;
        }
        return new PixelDataFrame(number, total, ranges, null);
    }

    /// <summary>All frames in order.</summary>
    public IEnumerable<PixelDataFrame> Frames()
    {
        for (int n = 1; n <= Count; n++) yield return GetFrame(n);
    }

    private static int NumberOfFrames(DicomDataset dataset)
    {
        if (dataset[DicomTags.NumberOfFrames] is not DicomElement) return 1;
        string text = dataset.GetString(DicomTags.NumberOfFrames) ?? "";
        if (text.Length == 0) return 1;
        if (!int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out int n) || n < 1)
            throw new PixelDataException($"Number of Frames (0028,0008) is '{text}', not a positive integer");
        return n;
    }

    private static PixelDataFrames OfNative(DicomDataset dataset, DicomTag tag, DicomElement value, int frames)
    {
        if (value.Length == 0) throw new PixelDataException($"{tag} is empty: there are no frames");
        int rows = RequiredUInt16(dataset, DicomTags.Rows, "Rows");
        int columns = RequiredUInt16(dataset, DicomTags.Columns, "Columns");
        int bits = RequiredUInt16(dataset, DicomTags.BitsAllocated, "Bits Allocated");
        // Samples per Pixel is type 1, but ACR-NEMA era files omit it; they are all single-sample images.
        int samples = dataset.Contains(DicomTags.SamplesPerPixel) ? RequiredUInt16(dataset, DicomTags.SamplesPerPixel, "Samples per Pixel") : 1;
        Int128 allBits = (Int128)rows * columns * samples * bits * frames; // four 16-bit factors and an int: no overflow in 128 bits
        if (allBits > long.MaxValue)
            throw new PixelDataException($"{frames} frame(s) of {rows} x {columns} x {samples} samples at {bits} bits are too large to address");
        long frameBits = (long)rows * columns * samples * bits;
        long needed = (long)((allBits + 7) / 8);
        if (value.Length < needed)
            throw new PixelDataException($"{tag} holds {value.Length} bytes, but {frames} frame{(frames == 1 ? "" : "s")} of {rows} x {columns} pixels, "
                + $"{samples} sample{(samples == 1 ? "" : "s")} of {bits} bits need {needed}");
        var layout = frameBits % 8 == 0 ? FrameLayout.Native : FrameLayout.BitPacked;
        if (layout == FrameLayout.BitPacked && (frameBits + 7) / 8 > MaxInMemoryBytes)
            throw new PixelDataException($"a bit-packed frame of {(frameBits + 7) / 8} bytes is larger than the {MaxInMemoryBytes} bytes it may be repacked in");
        return new PixelDataFrames(tag, frames, layout, value, frameBits);
    }

    private static int RequiredUInt16(DicomDataset dataset, DicomTag tag, string name)
    {
        if (!dataset.Contains(tag)) throw new PixelDataException($"{name} {tag} is missing, so the size of a frame is unknown");
        int? v = dataset.GetUInt16(tag) ?? dataset.GetInt(tag);
        if (v is not > 0) throw new PixelDataException($"{name} {tag} is {(v is null ? "empty or not a number" : v.Value.ToString(CultureInfo.InvariantCulture))}, so the size of a frame is unknown");
        return v.Value;
    }

    private static PixelDataFrames OfEncapsulated(DicomDataset dataset, DicomTag tag, DicomFragmentSequence sequence, int frames)
    {
        var fragments = sequence.Fragments;
        if (fragments.Count == 0) throw new PixelDataException($"encapsulated {tag} has no fragments after its Basic Offset Table");
        // Offset of each fragment's Item tag from the first fragment's Item tag (PS3.5 A.4: 8 bytes of tag and length, then the value).
        var itemOffsets = new long[fragments.Count + 1];
        for (int i = 0; i < fragments.Count; i++) itemOffsets[i + 1] = itemOffsets[i] + 8 + fragments[i].Length;

        if (dataset[DicomTags.ExtendedOffsetTable] is DicomElement eot)
        {
            if (dataset[DicomTags.ExtendedOffsetTableLengths] is not DicomElement eotLengths)
                throw new PixelDataException("the Extended Offset Table (7FE0,0001) is present without its Extended Offset Table Lengths (7FE0,0002)");
            var offsets = ReadUInt64s(eot.Value, frames, "Extended Offset Table (7FE0,0001)");
            var lengths = ReadUInt64s(eotLengths.Value, frames, "Extended Offset Table Lengths (7FE0,0002)");
            var first = FirstFragments(offsets, itemOffsets, "Extended Offset Table (7FE0,0001)");
            var frameLengths = new long[frames];
            for (int k = 0; k < frames; k++)
            {
                long available = itemOffsets[first[k + 1]] - itemOffsets[first[k]] - 8L * (first[k + 1] - first[k]);
                long withoutLast = available - fragments[first[k + 1] - 1].Length;
                ulong length = lengths[k];
                if (length > (ulong)available || (first[k + 1] - first[k] > 1 && length <= (ulong)withoutLast))
                    throw new PixelDataException($"the Extended Offset Table Lengths (7FE0,0002) give frame {k + 1} {length} bytes, but its "
                        + $"{first[k + 1] - first[k]} fragment(s) hold {available}");
                frameLengths[k] = (long)length;
            }
            return new PixelDataFrames(tag, frames, FrameLayout.ExtendedOffsetTable, sequence, first, frameLengths);
        }

        if (sequence.OffsetTable.Length > 0)
        {
            var table = sequence.OffsetTable;
            if (table.Length % 4 != 0 || table.Length / 4 != frames)
                throw new PixelDataException($"the Basic Offset Table holds {table.Length} bytes, not 4 per frame for {frames} frame{(frames == 1 ? "" : "s")}");
            var bytes = ReadSmall(table, "Basic Offset Table").Span;
            var offsets = new ulong[frames];
            for (int k = 0; k < frames; k++) offsets[k] = BinaryPrimitives.ReadUInt32LittleEndian(bytes[(k * 4)..]);
            var first = FirstFragments(offsets, itemOffsets, "Basic Offset Table");
            return new PixelDataFrames(tag, frames, FrameLayout.BasicOffsetTable, sequence, first, null);
        }

        if (frames == 1)
            return new PixelDataFrames(tag, 1, FrameLayout.SingleFrame, sequence, [0, fragments.Count], null);
        if (fragments.Count == frames)
            return new PixelDataFrames(tag, frames, FrameLayout.OneFragmentPerFrame, sequence, [.. Enumerable.Range(0, frames + 1)], null);
        if (fragments.Count < frames)
            throw new PixelDataException($"{frames} frames cannot be in {fragments.Count} fragments: a fragment holds at most one frame (PS3.5 A.4)");
        return new PixelDataFrames(tag, frames, FrameLayout.CodestreamStarts, sequence, CodestreamStarts(fragments, frames), null);
    }

    /// <summary>
    /// Maps each frame's offset (from the first fragment's Item tag) to the index of the fragment that starts there.
    /// The result has one more entry than there are frames: the end (the fragment count).
    /// </summary>
    private static int[] FirstFragments(ulong[] offsets, long[] itemOffsets, string table)
    {
        int frames = offsets.Length;
        var first = new int[frames + 1];
        first[frames] = itemOffsets.Length - 1;
        int fragment = 0;
        for (int k = 0; k < frames; k++)
        {
            ulong offset = offsets[k];
            if (k == 0 && offset != 0)
                throw new PixelDataException($"the {table} says frame 1 starts at byte {offset}, but the first frame starts at the first fragment (offset 0)");
            if (k > 0 && offset <= offsets[k - 1])
                throw new PixelDataException($"the {table} is not ascending: frame {k + 1} starts at byte {offset}, frame {k} at {offsets[k - 1]}");
            while (fragment < itemOffsets.Length - 1 && (ulong)itemOffsets[fragment] < offset) fragment++;
            if (fragment == itemOffsets.Length - 1 || (ulong)itemOffsets[fragment] != offset)
                throw new PixelDataException($"the {table} says frame {k + 1} starts at byte {offset}, which is not the start of a fragment "
                    + $"(the {itemOffsets.Length - 1} fragments span {itemOffsets[^1]} bytes)");
            first[k] = fragment;
        }
        return first;
    }

    private static ulong[] ReadUInt64s(IByteBuffer value, int count, string what)
    {
        if (value.Length != 8L * count)
            throw new PixelDataException($"the {what} holds {value.Length} bytes, not 8 per frame for {count} frame{(count == 1 ? "" : "s")}");
        var bytes = ReadSmall(value, what).Span;
        var result = new ulong[count];
        for (int k = 0; k < count; k++) result[k] = BinaryPrimitives.ReadUInt64LittleEndian(bytes[(k * 8)..]);
        return result;
    }

    private static ReadOnlyMemory<byte> ReadSmall(IByteBuffer value, string what)
    {
        if (value.Length > MaxInMemoryBytes)
            throw new PixelDataException($"the {what} holds {value.Length} bytes, more than the {MaxInMemoryBytes} bytes an offset table may take");
        if (value.IsMemory || value is SourceByteBuffer) return value.Memory;
        using var ms = new MemoryStream((int)value.Length);
        value.CopyTo(ms);
        return ms.ToArray();
    }

    // JPEG and JPEG-LS begin with SOI (FF D8), a JPEG 2000 codestream with SOC + SIZ (FF 4F FF 51), a JP2 file with its signature box.
    private static readonly byte[][] CodestreamSignatures =
    [
        [0xFF, 0xD8],
        [0xFF, 0x4F, 0xFF, 0x51],
        [0x00, 0x00, 0x00, 0x0C, 0x6A, 0x50, 0x20, 0x20],
    ];

    private static int[] CodestreamStarts(List<IByteBuffer> fragments, int frames)
    {
        var head = new byte[8];
        int Head(IByteBuffer fragment)
        {
            int n = (int)Math.Min(head.Length, fragment.Length);
            using var s = ValueRange.Open(new ValueRange(fragment, 0, n));
            s.ReadExactly(head, 0, n);
            return n;
        }
        int n0 = Head(fragments[0]);
        var signature = CodestreamSignatures.FirstOrDefault(sig => n0 >= sig.Length && head.AsSpan(0, sig.Length).SequenceEqual(sig))
            ?? throw new PixelDataException($"{frames} frames are in {fragments.Count} fragments without an offset table, and the first fragment "
                + "begins no JPEG or JPEG 2000 codestream, so where each frame begins is unknown");
        var starts = new List<int>(frames + 1) { 0 };
        for (int i = 1; i < fragments.Count; i++)
        {
            int n = Head(fragments[i]);
            if (n >= signature.Length && head.AsSpan(0, signature.Length).SequenceEqual(signature)) starts.Add(i);
        }
        if (starts.Count != frames)
            throw new PixelDataException($"{frames} frames are in {fragments.Count} fragments without an offset table, and {starts.Count} "
                + "fragments begin a codestream: the frames cannot be told apart");
        starts.Add(fragments.Count);
        return [.. starts];
    }
}

/// <summary>
/// One frame: its length, known before any byte is read, and its bytes as a stream. An encapsulated frame made of
/// several fragments is their concatenation; a native frame is its slice of the value (little endian, as the dataset
/// holds every value); a bit-packed frame is repacked to start at bit 0, its unused high bits zero.
/// </summary>
public sealed class PixelDataFrame
{
    private readonly IReadOnlyList<ValueRange> _ranges;
    private readonly BitWindow? _bits;

    internal PixelDataFrame(int number, long length, IReadOnlyList<ValueRange> ranges, BitWindow? bits)
    {
        Number = number;
        Length = length;
        _ranges = ranges;
        _bits = bits;
    }

    /// <summary>The frame number, from 1.</summary>
    public int Number { get; }

    public long Length { get; }

    /// <summary>
    /// A read-only stream of the frame's bytes, read from the value's file as it is consumed (only a bit-packed frame is
    /// repacked in memory, at most <see cref="PixelDataFrames.MaxInMemoryBytes"/>). Sync and async reads share one path.
    /// </summary>
    public Stream Open() => _bits is { } bits ? new RepackedStream(_ranges[0], bits) : new FrameStream(_ranges, Length);

    public void CopyTo(Stream destination)
    {
        using var s = Open();
        s.CopyTo(destination, 81920);
    }

    public async Task CopyToAsync(Stream destination, CancellationToken cancellationToken = default)
    {
        var s = Open();
        await using (s.ConfigureAwait(false))
            await s.CopyToAsync(destination, 81920, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>The ranges of the fragments (or the slice) this frame is read from, in order.</summary>
    private sealed class FrameStream(IReadOnlyList<ValueRange> ranges, long length) : ReadOnlyStream
    {
        private int _next;
        private Stream? _current;
        private long _position;

        public override long Length => length;
        public override long Position { get => _position; set => throw new NotSupportedException(); }

        public override int Read(Span<byte> buffer)
        {
            while (!buffer.IsEmpty)
            {
                if (_current is null)
                {
                    if (_next == ranges.Count) return 0;
                    _current = ValueRange.Open(ranges[_next++]);
                }
                int n = _current.Read(buffer);
                if (n > 0)
                {
                    _position += n;
                    return n;
                }
                _current.Dispose();
                _current = null;
            }
            return 0;
        }

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            while (!buffer.IsEmpty)
            {
                if (_current is null)
                {
                    if (_next == ranges.Count) return 0;
                    _current = ValueRange.Open(ranges[_next++]);
                }
                int n = await _current.ReadAsync(buffer, cancellationToken).ConfigureAwait(false);
                if (n > 0)
                {
                    _position += n;
                    return n;
                }
                await _current.DisposeAsync().ConfigureAwait(false);
                _current = null;
            }
            return 0;
        }

        protected override void Dispose(bool disposing)
        {
            if (disposing) _current?.Dispose();
            _current = null;
            base.Dispose(disposing);
        }
    }

    /// <summary>A bit-packed frame: its source bytes read (sync or async) on the first read, then shifted down to bit 0.</summary>
    private sealed class RepackedStream(ValueRange source, BitWindow bits) : ReadOnlyStream
    {
        private MemoryStream? _repacked;

        public override long Length => (bits.FrameBits + 7) / 8;
        public override long Position { get => _repacked?.Position ?? 0; set => throw new NotSupportedException(); }

        public override int Read(Span<byte> buffer) => Load(async: false, default).GetAwaiter().GetResult().Read(buffer);

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
            (await Load(async: true, cancellationToken).ConfigureAwait(false)).Read(buffer.Span);

        private async ValueTask<MemoryStream> Load(bool async, CancellationToken cancellationToken)
        {
            if (_repacked is not null) return _repacked;
            var raw = new byte[source.Length];
            var s = ValueRange.Open(source);
            await using (s.ConfigureAwait(false))
            {
                if (async) await s.ReadExactlyAsync(raw, cancellationToken).ConfigureAwait(false);
                else s.ReadExactly(raw);
            }
            _repacked = new MemoryStream(bits.Repack(raw), writable: false);
            return _repacked;
        }
    }
}

/// <summary>Where a bit-packed frame sits in its source bytes: it starts <see cref="Shift"/> bits into the first byte.</summary>
internal readonly record struct BitWindow(int Shift, long FrameBits)
{
    /// <summary>
    /// Moves the frame's bits down to bit 0. DICOM packs bits from the least significant bit of each byte (PS3.5 8.1.1,
    /// Bits Allocated 1), so output byte i is the source's bits [8i + shift, 8i + shift + 8); bits past the frame are zeroed.
    /// </summary>
    public byte[] Repack(ReadOnlySpan<byte> source)
    {
        var frame = new byte[(FrameBits + 7) / 8];
        for (int i = 0; i < frame.Length; i++)
        {
            int low = i < source.Length ? source[i] >> Shift : 0;
            int high = Shift > 0 && i + 1 < source.Length ? source[i + 1] << (8 - Shift) : 0;
            frame[i] = (byte)(low | high);
        }
        int tailBits = (int)(FrameBits % 8);
        if (tailBits != 0) frame[^1] &= (byte)((1 << tailBits) - 1);
        return frame;
    }
}

/// <summary>A byte range of a value: how it is read depends on where the value lives.</summary>
internal readonly record struct ValueRange(IByteBuffer Buffer, long Offset, long Length)
{
    /// <summary>
    /// A stream of exactly <see cref="Length"/> bytes. A file value is read in place (seek, then bounded reads); a value
    /// in memory is sliced; any other buffer (the byte-swapping view of a big endian file value, which can only copy
    /// itself from its start) is pushed through a bounded pipe by a producer thread that skips to the range.
    /// </summary>
    public static Stream Open(ValueRange range)
    {
        if (range.Offset < 0 || range.Length < 0 || range.Offset + range.Length > range.Buffer.Length)
            throw new PixelDataException($"bytes {range.Offset}..{range.Offset + range.Length} lie outside a value of {range.Buffer.Length} bytes");
        switch (range.Buffer)
        {
            case SourceByteBuffer file:
                var fs = file.Source.OpenRead();
                try
                {
                    fs.Position = file.Offset + range.Offset;
                    return new BoundedStream(fs, range.Length, $"{file.Source.Description} ends before offset {file.Offset + range.Offset + range.Length}");
                }
                catch
                {
                    fs.Dispose();
                    throw;
                }
            case { IsMemory: true } memory:
                var slice = memory.Memory.Slice((int)range.Offset, (int)range.Length);
                return MemoryMarshal.TryGetArray(slice, out var segment)
                    ? new MemoryStream(segment.Array!, segment.Offset, segment.Count, writable: false)
                    : new MemoryStream(slice.ToArray(), writable: false);
            default:
                return new PushedRangeStream(range);
        }
    }

    /// <summary>At most <c>length</c> bytes of an inner stream; an inner stream that ends sooner is an error, not a short frame.</summary>
    private sealed class BoundedStream(Stream inner, long length, string shortMessage) : ReadOnlyStream
    {
        private readonly long _length = length;
        private long _left = length;

        public override long Length => _length;
        public override long Position { get => _length - _left; set => throw new NotSupportedException(); }

        public override int Read(Span<byte> buffer)
        {
            if (_left == 0 || buffer.IsEmpty) return 0;
            int n = inner.Read(buffer[..(int)Math.Min(buffer.Length, _left)]);
            return Advance(n);
        }

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            if (_left == 0 || buffer.IsEmpty) return 0;
            int n = await inner.ReadAsync(buffer[..(int)Math.Min(buffer.Length, _left)], cancellationToken).ConfigureAwait(false);
            return Advance(n);
        }

        private int Advance(int n)
        {
            if (n == 0) throw new EndOfStreamException(shortMessage);
            _left -= n;
            return n;
        }

        protected override void Dispose(bool disposing)
        {
            if (disposing) inner.Dispose();
            base.Dispose(disposing);
        }
    }

    /// <summary>
    /// A range of a buffer that only offers <see cref="IByteBuffer.CopyTo"/>: a dedicated thread copies the buffer into a
    /// sink that drops the bytes before the range and stops after it; a pipe of at most 1 MiB carries the range to the
    /// reader, so memory stays bounded and the producer waits while the reader does not read. Disposing the reader stops
    /// the producer at its next write. Reading frame N this way costs reading the value up to frame N.
    /// </summary>
    private sealed class PushedRangeStream : ReadOnlyStream
    {
        private readonly Pipe _pipe = new(new PipeOptions(pauseWriterThreshold: 1 << 20, resumeWriterThreshold: 1 << 19, useSynchronizationContext: false));
        private readonly Stream _reader;
        private readonly long _length;
        private long _position;

        public PushedRangeStream(ValueRange range)
        {
            _length = range.Length;
            _reader = _pipe.Reader.AsStream();
            Task.Factory.StartNew(() => Produce(range), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        }

        public override long Length => _length;
        public override long Position { get => _position; set => throw new NotSupportedException(); }

        private void Produce(ValueRange range)
        {
            var sink = new WindowSink(_pipe.Writer, range.Offset, range.Length);
            try
            {
                if (range.Length > 0) range.Buffer.CopyTo(sink);
                if (sink.Left > 0) throw new EndOfStreamException($"the value ended {sink.Left} bytes before the end of the range it was read for");
                _pipe.Writer.Complete();
            }
            catch (WindowSink.StopException)
            {
                _pipe.Writer.Complete();
            }
            catch (Exception e)
            {
                _pipe.Writer.Complete(e);
            }
        }

        public override int Read(Span<byte> buffer)
        {
            int n = _reader.Read(buffer);
            _position += n;
            return n;
        }

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            int n = await _reader.ReadAsync(buffer, cancellationToken).ConfigureAwait(false);
            _position += n;
            return n;
        }

        protected override void Dispose(bool disposing)
        {
            if (disposing) _reader.Dispose(); // completes the pipe's reader: the producer's next flush sees it and stops
            base.Dispose(disposing);
        }

        private sealed class WindowSink(PipeWriter writer, long skip, long take) : Stream
        {
            private static readonly TimeSpan IdleTimeout = TimeSpan.FromMinutes(2);

            public sealed class StopException : Exception;

            public long Left => take;

            public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

            public override void Write(ReadOnlySpan<byte> data)
            {
                if (take == 0) throw new StopException();
                if (skip > 0)
                {
                    int dropped = (int)Math.Min(skip, data.Length);
                    skip -= dropped;
                    data = data[dropped..];
                }
                if (data.IsEmpty) return;
                var part = data[..(int)Math.Min(data.Length, take)];
                writer.Write(part);
                take -= part.Length;
                // Waits while the pipe is full. A reader that neither reads nor disposes its stream would hold this thread
                // for ever: after IdleTimeout the flush is cancelled and the reader, if it comes back, gets the timeout.
                var flush = writer.FlushAsync().AsTask();
                if (!flush.Wait(IdleTimeout))
                {
                    writer.CancelPendingFlush();
                    throw new TimeoutException($"the frame's reader took no bytes for {IdleTimeout.TotalSeconds:0} s; reading stopped");
                }
                var flushed = flush.Result;
                if (flushed.IsCompleted || flushed.IsCanceled || take == 0) throw new StopException(); // reader gone, or the range is complete
            }

            public override bool CanRead => false;
            public override bool CanSeek => false;
            public override bool CanWrite => true;
            public override long Length => throw new NotSupportedException();
            public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
            public override void Flush() { }
            public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
            public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
            public override void SetLength(long value) => throw new NotSupportedException();
        }
    }
}

/// <summary>The members every read-only, forward-only stream here shares; subclasses give the span and memory reads.</summary>
internal abstract class ReadOnlyStream : Stream
{
    public override bool CanRead => true;
    public override bool CanSeek => false;
    public override bool CanWrite => false;

    public abstract override int Read(Span<byte> buffer);
    public abstract override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default);

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override void Flush() { }
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
}
