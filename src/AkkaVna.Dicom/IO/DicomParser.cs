using System.Buffers;
using System.Buffers.Binary;
using AkkaVna.Dicom.Dictionary;

namespace AkkaVna.Dicom.IO;

/// <summary>What the parser knows of an element when it hands it to the observer.</summary>
public readonly record struct DicomElementHeader(DicomTag Tag, DicomVR VR, uint Length, long Offset, long ValueOffset, bool BigEndian, int Depth)
{
    /// <summary>The VR came from the dictionary (implicit VR, or unreadable VR bytes), not from the stream.</summary>
    public bool VRFromDictionary { get; init; }

    public bool IsUndefinedLength => Length == DicomParser.UndefinedLength;
}

/// <summary>
/// Receives what the parser finds, in stream order. Small values arrive whole (<see cref="OnElement"/>), values longer than
/// <see cref="DicomParserOptions.LargeValueThreshold"/> arrive in chunks between <see cref="OnLargeValueStart"/> and
/// <see cref="OnLargeValueEnd"/>. Values are in the source's byte order (<see cref="DicomElementHeader.BigEndian"/>).
/// </summary>
public interface IDicomParserObserver
{
    void OnElement(in DicomElementHeader header, ReadOnlySequence<byte> value);

    /// <summary>Returns false to have the bytes skipped instead of delivered (the source is seekable and the value is read later).</summary>
    bool OnLargeValueStart(in DicomElementHeader header);
    void OnLargeValueChunk(ReadOnlySequence<byte> chunk);
    void OnLargeValueEnd();

    void OnSequenceStart(in DicomElementHeader header);
    void OnSequenceItemStart(long offset, uint length);
    void OnSequenceItemEnd();
    void OnSequenceEnd();

    /// <summary>Encapsulated pixel data: the items follow as elements/large values with tag (FFFE,E000) — first the Basic Offset Table.</summary>
    void OnFragmentsStart(in DicomElementHeader header);
    void OnFragmentsEnd();
}

public sealed record DicomParserOptions
{
    /// <summary>Values longer than this are streamed in chunks instead of buffered.</summary>
    public int LargeValueThreshold { get; init; } = 256 * 1024;

    /// <summary>Stop before the first top-level element for which this returns true (e.g. Pixel Data).</summary>
    public Func<DicomTag, bool>? StopBefore { get; init; }

    /// <summary>Deepest nesting of sequences accepted (protects the stack against hostile input).</summary>
    public int MaxDepth { get; init; } = 64;
}

public enum DicomParseStatus { NeedMoreData, Completed, Stopped }

/// <summary>A malformed stream: where and what.</summary>
public sealed class DicomParseException(long offset, string message) : Exception($"at byte offset {offset}: {message}")
{
    public long Offset { get; } = offset;
    public string Reason { get; } = message;
}

/// <summary>
/// A resumable, push-driven DICOM dataset parser (Tag -> VR -> Length -> Value) for one transfer syntax.
/// Feed it bytes as they arrive (<see cref="Parse"/>); it consumes whole element headers and small values, streams
/// large values, and reports <see cref="DicomParseStatus.NeedMoreData"/> when it must wait. It never buffers more than
/// one header or one small value: the caller keeps the unconsumed bytes (as a PipeReader does) and feeds them again.
/// Lenient reading (PS3.5 is strict, devices are not): implicit/explicit VR sniffed per dataset, VR UN with undefined
/// length read as an implicit VR sequence (CP-246), private elements of unknown VR whose value starts with an Item tag
/// read as sequences, unknown VR bytes resolved from the dictionary.
/// </summary>
public sealed class DicomParser
{
    public const uint UndefinedLength = 0xFFFFFFFF;

    private enum FrameKind { Dataset, Sequence, Fragments }

    /// <summary>A container being parsed: a dataset (top level or item), a sequence, or encapsulated pixel data.</summary>
    private sealed class Frame
    {
        public FrameKind Kind;
        public long End; // absolute end offset, or -1 when the length is undefined
        public bool ExplicitVR;
        public bool BigEndian;
        public bool Sniff; // dataset whose VR encoding has not been checked yet
        public Dictionary<int, string>? PrivateCreators; // (group << 8 | block) -> creator, per dataset
        public DicomTag Tag;
    }

    private readonly IDicomParserObserver _observer;
    private readonly DicomParserOptions _options;
    private readonly List<Frame> _stack = [];
    private long _position;
    private long _largeRemaining = -1; // >= 0 while streaming a large value
    private bool _largeDeliver;
    private bool _stopped;
    // What a NeedMoreData waits for, kept as values and formatted only if the data really ends (not on the hot path).
    private (bool Set, bool Fragment, DicomTag Tag, DicomVR VR, uint Length, long Present) _waiting;

    /// <param name="startOffset">Offset of the first byte fed, for error messages and headers.</param>
    public DicomParser(IDicomParserObserver observer, DicomTransferSyntax syntax, DicomParserOptions? options = null, long startOffset = 0, bool sniffEncoding = true)
    {
        _observer = observer;
        _options = options ?? new DicomParserOptions();
        _position = startOffset;
        _stack.Add(new Frame { Kind = FrameKind.Dataset, End = -1, ExplicitVR = syntax.IsExplicitVR, BigEndian = syntax.IsBigEndian, Sniff = sniffEncoding });
    }

    /// <summary>Absolute offset of the next byte to consume.</summary>
    public long Position => _position;

    /// <summary>Whether the top-level dataset was read as explicit VR (after sniffing).</summary>
    public bool TopLevelExplicitVR => _stack[0].ExplicitVR;
    public bool TopLevelBigEndian => _stack[0].BigEndian;

    /// <summary>Bytes of a large value the observer chose not to receive that are still to come; a seekable source may seek past them and call <see cref="Skipped"/>.</summary>
    public long PendingSkip => _largeRemaining > 0 && !_largeDeliver ? _largeRemaining : 0;

    public void Skipped(long count)
    {
        if (count > PendingSkip) throw new ArgumentOutOfRangeException(nameof(count));
        _largeRemaining -= count;
        _position += count;
        if (_largeRemaining == 0) FinishLargeValue();
    }

    /// <summary>
    /// Parses as much of <paramref name="buffer"/> as it can. <paramref name="consumed"/> is how far the caller may advance.
    /// When <paramref name="isFinal"/> is true there is no more data: the stream must end here, at the end of the top-level dataset.
    /// </summary>
    public DicomParseStatus Parse(ReadOnlySequence<byte> buffer, bool isFinal, out SequencePosition consumed)
    {
        var reader = new SequenceReader<byte>(buffer);
        try
        {
            var status = Run(ref reader, isFinal);
            return status;
        }
        finally
        {
            consumed = reader.Position;
        }
    }

    private DicomParseStatus Run(ref SequenceReader<byte> r, bool isFinal)
    {
        if (_stopped) return DicomParseStatus.Stopped;
        while (true)
        {
            if (_largeRemaining >= 0)
            {
                if (!ContinueLargeValue(ref r)) return More(isFinal, $"{_largeTag} {_largeVR.Code()}: {_largeLength - _largeRemaining} of {_largeLength} bytes");
                continue;
            }

            var frame = _stack[^1];
            // Leave containers whose defined length is used up.
            if (frame.End >= 0 && _position >= frame.End)
            {
                if (_position > frame.End) throw new DicomParseException(frame.End, $"{Describe(frame)} overruns its defined length by {_position - frame.End} bytes");
                PopFrame();
                continue;
            }

            if (frame.Kind == FrameKind.Dataset)
            {
                if (_stack.Count == 1 && r.Remaining == 0 && isFinal) return DicomParseStatus.Completed;
                _waiting = default;
                if (!ReadDatasetElement(ref r, frame, out bool stop))
                {
                    if (stop) return DicomParseStatus.Stopped;
                    return More(isFinal, frame);
                }
            }
            else
            {
                _waiting = default;
                if (!ReadItem(ref r, frame)) return More(isFinal, frame);
            }
        }
    }

    private DicomParseStatus More(bool isFinal, string what)
    {
        if (!isFinal) return DicomParseStatus.NeedMoreData;
        // Short and front-loaded: the reason travels as a 64-character Error Comment.
        throw new DicomParseException(_position, what.StartsWith("before", StringComparison.Ordinal) ? $"data ends {what}" : $"data ends inside {what}");
    }

    private DicomParseStatus More(bool isFinal, Frame frame)
    {
        if (!isFinal) return DicomParseStatus.NeedMoreData;
        var w = _waiting;
        string what = !w.Set ? DescribeExpected(frame)
            : w.Fragment ? $"a fragment of {w.Tag}: {w.Present} of {w.Length} bytes"
            : $"{w.Tag} {w.VR.Code()}: {w.Present} of {w.Length} bytes";
        return More(isFinal, what);
    }

    private string DescribeExpected(Frame f) => f.Kind switch
    {
        FrameKind.Dataset when _stack.Count == 1 => "an element header",
        FrameKind.Dataset => $"before the delimiter of an item of {_stack[^2].Tag}",
        FrameKind.Sequence => $"before the delimiter of sequence {f.Tag}",
        _ => $"before the delimiter of the fragments of {f.Tag}",
    };

    private static string Describe(Frame f) => f.Kind switch
    {
        FrameKind.Dataset => "item",
        FrameKind.Sequence => $"sequence {f.Tag}",
        _ => $"encapsulated pixel data {f.Tag}",
    };

    private void PopFrame()
    {
        var f = _stack[^1];
        _stack.RemoveAt(_stack.Count - 1);
        switch (f.Kind)
        {
            case FrameKind.Dataset: _observer.OnSequenceItemEnd(); break;
            case FrameKind.Sequence: _observer.OnSequenceEnd(); break;
            case FrameKind.Fragments: _observer.OnFragmentsEnd(); break;
        }
    }

    private void Push(Frame f)
    {
        if (_stack.Count > _options.MaxDepth * 2) throw new DicomParseException(_position, $"sequences nested deeper than {_options.MaxDepth}");
        _stack.Add(f);
    }

    private static ushort U16(ReadOnlySpan<byte> s, bool be) => be ? BinaryPrimitives.ReadUInt16BigEndian(s) : BinaryPrimitives.ReadUInt16LittleEndian(s);
    private static uint U32(ReadOnlySpan<byte> s, bool be) => be ? BinaryPrimitives.ReadUInt32BigEndian(s) : BinaryPrimitives.ReadUInt32LittleEndian(s);

    private static bool IsUpper(byte b) => b >= (byte)'A' && b <= (byte)'Z';

    /// <summary>Decides explicit or implicit VR (and byte order) for a dataset from its first element.</summary>
    private static void SniffEncoding(ReadOnlySpan<byte> h, Frame frame)
    {
        bool vrLooksValid = DicomVRInfo.TryParse(h[4], h[5], out _);
        if (frame.ExplicitVR && !vrLooksValid && !(IsUpper(h[4]) && IsUpper(h[5])))
        {
            frame.ExplicitVR = false; // e.g. meta says explicit VR but the dataset was written implicit
            frame.BigEndian = false;
        }
        else if (!frame.ExplicitVR && vrLooksValid)
        {
            // Implicit VR: bytes 4-5 are the low half of the length; two upper-case letters there mean a 16-bit length
            // of 0x4141 or more for a first element, far more likely an explicit VR.
            frame.ExplicitVR = true;
        }
        // Byte order: a group number read the wrong way round is big; the first group of a dataset is small.
        ushort le = BinaryPrimitives.ReadUInt16LittleEndian(h);
        ushort be = BinaryPrimitives.ReadUInt16BigEndian(h);
        if (frame.ExplicitVR && !frame.BigEndian && le > 0x00FF && be <= 0x00FF && be != 0) frame.BigEndian = true;
        else if (frame.BigEndian && be > 0x00FF && le <= 0x00FF && le != 0) frame.BigEndian = false;
    }

    /// <summary>Reads one element of a dataset. False when more data is needed (nothing consumed) or on a stop.</summary>
    private bool ReadDatasetElement(ref SequenceReader<byte> r, Frame frame, out bool stop)
    {
        stop = false;
        Span<byte> h = stackalloc byte[12];
        if (!r.TryCopyTo(h[..8]))
        {
            // An item delimiter needs only 8 bytes; anything shorter is incomplete.
            return false;
        }
        if (frame.Sniff)
        {
            SniffEncoding(h, frame);
            frame.Sniff = false;
        }
        bool be = frame.BigEndian;
        long start = _position;
        // Group 0002 is always explicit VR little endian (PS3.10 7.1); the parser is used for it with that syntax.
        var tag = new DicomTag(U16(h, be), U16(h[2..], be));

        if (tag.Group == 0xFFFE)
        {
            uint len = U32(h[4..], be);
            if (tag == DicomTag.ItemDelimitation && _stack.Count > 1 && frame.End < 0)
            {
                r.Advance(8);
                _position += 8;
                PopFrame(); // end of the item
                return true;
            }
            if (tag == DicomTag.SequenceDelimitation && _stack.Count > 1 && frame.End < 0)
            {
                // Item ended without an item delimiter and the sequence delimiter follows: tolerated.
                PopFrame();
                return true;
            }
            if (_stack.Count == 1 && tag == DicomTag.SequenceDelimitation)
            {
                // A stray sequence delimiter at top level (seen after encapsulated data in some files): skip it.
                r.Advance(8);
                _position += 8;
                return true;
            }
            throw new DicomParseException(start, $"unexpected {tag} (length {len}) inside a dataset");
        }

        if (_stack.Count == 1 && _options.StopBefore is { } stopBefore && stopBefore(tag))
        {
            _stopped = true;
            stop = true;
            return false;
        }

        DicomVR vr;
        uint length;
        int headerLength;
        bool explicitVR = frame.ExplicitVR;
        bool vrFromDictionary = true;
        if (explicitVR)
        {
            if (DicomVRInfo.TryParse(h[4], h[5], out vr))
            {
                vrFromDictionary = false;
                if (vr.HasLongLength())
                {
                    if (!r.TryCopyTo(h)) return false;
                    length = U32(h[8..], be);
                    headerLength = 12;
                }
                else
                {
                    length = U16(h[6..], be);
                    headerLength = 8;
                }
            }
            else
            {
                // Unknown VR bytes (e.g. two spaces): a 16-bit length, and the value kept as UN bytes, as dcmtk does.
                vr = DicomVR.UN;
                length = U16(h[6..], be);
                headerLength = 8;
            }
        }
        else
        {
            vr = ResolveImplicitVR(tag, frame);
            length = U32(h[4..], be);
            headerLength = 8;
        }

        // Sequence decisions (PS3.5 7.5, CP-246).
        bool undefined = length == UndefinedLength;
        if (tag == DicomTags.PixelData && undefined && vr is DicomVR.OB or DicomVR.OW or DicomVR.UN)
        {
            r.Advance(headerLength);
            _position += headerLength;
            var hdr = new DicomElementHeader(tag, vr == DicomVR.UN ? DicomVR.OB : vr, length, start, start + headerLength, be, _stack.Count - 1);
            _observer.OnFragmentsStart(hdr);
            Push(new Frame { Kind = FrameKind.Fragments, End = -1, ExplicitVR = explicitVR, BigEndian = be, Tag = tag });
            return true;
        }

        bool isSequence = vr == DicomVR.SQ || (undefined && vr == DicomVR.UN);
        bool childExplicit = explicitVR, childBig = be;
        DicomVR sourceVR = vr;
        if (vr == DicomVR.UN && undefined)
        {
            childExplicit = false; // CP-246: the content of an undefined-length UN is implicit VR little endian
            childBig = false;
        }
        else if (!isSequence && !explicitVR && vr == DicomVR.UN && tag.IsPrivate && length >= 8)
        {
            // Implicit VR private element of unknown VR: a sequence if its value begins with an Item tag.
            if (!r.TryCopyTo(h[..(headerLength + 4)])) return false;
            if (U16(h[headerLength..], be) == 0xFFFE && U16(h[(headerLength + 2)..], be) == 0xE000) isSequence = true;
        }
        if (undefined && !isSequence)
            throw new DicomParseException(start, $"element {tag} {vr.Code()} has undefined length but is not a sequence or encapsulated pixel data");

        if (isSequence)
        {
            r.Advance(headerLength);
            _position += headerLength;
            _observer.OnSequenceStart(new DicomElementHeader(tag, sourceVR, length, start, start + headerLength, be, _stack.Count - 1));
            Push(new Frame { Kind = FrameKind.Sequence, End = undefined ? -1 : _position + length, ExplicitVR = childExplicit, BigEndian = childBig, Tag = tag });
            return true;
        }

        CheckFits(start, headerLength + (long)length, tag);
        var header = new DicomElementHeader(tag, vr, length, start, start + headerLength, be, _stack.Count - 1) { VRFromDictionary = vrFromDictionary };
        if (length > _options.LargeValueThreshold)
        {
            r.Advance(headerLength);
            _position += headerLength;
            StartLargeValue(header);
            return true;
        }
        if (r.Remaining < headerLength + length)
        {
            _waiting = (true, false, tag, vr, length, Math.Max(0, r.Remaining - headerLength));
            return false;
        }
        r.Advance(headerLength);
        var value = r.UnreadSequence.Slice(0, length);
        if (tag.IsPrivateCreator) RememberCreator(frame, tag, value);
        _observer.OnElement(header, value);
        r.Advance(length);
        _position += headerLength + length;
        return true;
    }

    private void CheckFits(long start, long size, DicomTag tag)
    {
        // The innermost defined length bounds the element.
        for (int i = _stack.Count - 1; i >= 0; i--)
        {
            if (_stack[i].End < 0) continue;
            if (start + size > _stack[i].End)
                throw new DicomParseException(start, $"element {tag} of {size} bytes runs past the end of its {Describe(_stack[i])} at offset {_stack[i].End}");
            break;
        }
    }

    /// <summary>Reads an item header inside a sequence or encapsulated pixel data.</summary>
    private bool ReadItem(ref SequenceReader<byte> r, Frame frame)
    {
        Span<byte> h = stackalloc byte[8];
        if (!r.TryCopyTo(h)) return false;
        bool be = frame.BigEndian;
        long start = _position;
        var tag = new DicomTag(U16(h, be), U16(h[2..], be));
        uint length = U32(h[4..], be);
        if (tag == DicomTag.SequenceDelimitation && frame.End < 0)
        {
            r.Advance(8);
            _position += 8;
            PopFrame();
            return true;
        }
        if (tag != DicomTag.Item)
            throw new DicomParseException(start, $"expected an item (FFFE,E000) in {Describe(frame)} but found {tag}");

        if (frame.Kind == FrameKind.Fragments)
        {
            if (length == UndefinedLength) throw new DicomParseException(start, $"fragment of {frame.Tag} has undefined length");
            CheckFits(start, 8 + (long)length, tag);
            var header = new DicomElementHeader(DicomTag.Item, DicomVR.OB, length, start, start + 8, be, _stack.Count - 1);
            if (length > _options.LargeValueThreshold)
            {
                r.Advance(8);
                _position += 8;
                StartLargeValue(header);
                return true;
            }
            if (r.Remaining < 8 + length)
            {
                _waiting = (true, true, frame.Tag, DicomVR.OB, length, Math.Max(0, r.Remaining - 8));
                return false;
            }
            r.Advance(8);
            _observer.OnElement(header, r.UnreadSequence.Slice(0, length));
            r.Advance(length);
            _position += 8 + length;
            return true;
        }

        long itemEnd = length == UndefinedLength ? -1 : start + 8 + (long)length;
        if (itemEnd > frame.End && frame.End >= 0)
        {
            // An item longer than what is left of its defined-length sequence: writers that edit items leave such stale
            // lengths; the enclosing length wins (dcmtk reads these files the same way).
            itemEnd = frame.End;
        }
        else if (itemEnd >= 0) CheckFits(start, 8 + (long)length, tag);
        r.Advance(8);
        _position += 8;
        _observer.OnSequenceItemStart(start, length);
        Push(new Frame
        {
            Kind = FrameKind.Dataset,
            End = itemEnd,
            ExplicitVR = frame.ExplicitVR,
            BigEndian = be,
            Sniff = false,
            Tag = frame.Tag,
        });
        return true;
    }

    private DicomTag _largeTag;
    private DicomVR _largeVR;
    private long _largeLength;

    private void StartLargeValue(in DicomElementHeader header)
    {
        _largeTag = header.Tag;
        _largeVR = header.VR;
        _largeLength = header.Length;
        _largeRemaining = header.Length;
        _largeDeliver = _observer.OnLargeValueStart(header);
        if (_largeRemaining == 0) FinishLargeValue();
    }

    private bool ContinueLargeValue(ref SequenceReader<byte> r)
    {
        long n = Math.Min(r.Remaining, _largeRemaining);
        if (n == 0) return false;
        if (_largeDeliver) _observer.OnLargeValueChunk(r.UnreadSequence.Slice(0, n));
        r.Advance(n);
        _position += n;
        _largeRemaining -= n;
        if (_largeRemaining == 0) FinishLargeValue();
        return true;
    }

    private void FinishLargeValue()
    {
        _largeRemaining = -1;
        _observer.OnLargeValueEnd();
    }

    private static void RememberCreator(Frame frame, DicomTag tag, ReadOnlySequence<byte> value)
    {
        frame.PrivateCreators ??= [];
        frame.PrivateCreators[(tag.Group << 8) | tag.Element] = System.Text.Encoding.ASCII.GetString(value.ToArray()).Trim(' ', '\0');
    }

    private DicomVR ResolveImplicitVR(DicomTag tag, Frame frame)
    {
        if (tag.IsPrivate && !tag.IsPrivateCreator && tag.Element > 0x00FF)
        {
            // The creator is declared in this dataset (or, leniently, an enclosing one).
            int key = (tag.Group << 8) | (tag.Element >> 8);
            for (int i = _stack.Count - 1; i >= 0; i--)
            {
                if (_stack[i].PrivateCreators is { } pc && pc.TryGetValue(key, out var creator))
                    return DicomPrivateDictionary.Lookup(creator, tag)?.VR ?? DicomVR.UN;
            }
            return DicomVR.UN;
        }
        return DicomDictionary.ImplicitVR(tag);
    }
}
