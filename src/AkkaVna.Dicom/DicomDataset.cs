using System.Buffers.Binary;
using System.Collections;
using System.Globalization;
using System.Text;
using AkkaVna.Dicom.Buffers;
using AkkaVna.Dicom.Text;

namespace AkkaVna.Dicom;

/// <summary>A data element, sequence or encapsulated pixel data in a dataset.</summary>
public abstract class DicomItem(DicomTag tag, DicomVR vr)
{
    public DicomTag Tag { get; } = tag;
    public DicomVR VR { get; } = vr;
}

/// <summary>An element with a value (little endian byte order in memory, whatever the source's byte order).</summary>
public sealed class DicomElement(DicomTag tag, DicomVR vr, IByteBuffer value) : DicomItem(tag, vr)
{
    public IByteBuffer Value { get; } = value;
    public long Length => Value.Length;
}

/// <summary>A sequence of items (PS3.5 7.5).</summary>
public sealed class DicomSequence(DicomTag tag, IEnumerable<DicomDataset>? items = null) : DicomItem(tag, DicomVR.SQ)
{
    public List<DicomDataset> Items { get; } = items?.ToList() ?? [];

    /// <summary>The VR the source used when it was not SQ (UN in explicit VR per CP-246, or a private element sniffed in implicit VR).</summary>
    public DicomVR SourceVR { get; init; } = DicomVR.SQ;
}

/// <summary>Encapsulated pixel data (PS3.5 A.4): the Basic Offset Table item, then one item per fragment.</summary>
public sealed class DicomFragmentSequence(DicomTag tag, DicomVR vr, IByteBuffer offsetTable, IEnumerable<IByteBuffer>? fragments = null) : DicomItem(tag, vr)
{
    public IByteBuffer OffsetTable { get; } = offsetTable;
    public List<IByteBuffer> Fragments { get; } = fragments?.ToList() ?? [];
}

/// <summary>
/// A dataset: items kept in ascending tag order. Text is decoded with the Specific Character Set in force for this
/// dataset (its own (0008,0005), else its parent's, PS3.5 6.1.2.5.2 / C.12.1.1.2).
/// </summary>
public sealed class DicomDataset : IEnumerable<DicomItem>
{
    private readonly List<DicomItem> _items = [];

    public DicomDataset? Parent { get; internal set; }

    public int Count => _items.Count;

    public DicomItem? this[DicomTag tag] => Find(tag) is var i and >= 0 ? _items[i] : null;

    public bool Contains(DicomTag tag) => Find(tag) >= 0;

    /// <summary>Adds or replaces an item.</summary>
    public DicomDataset Add(DicomItem item)
    {
        if (item is DicomSequence sq)
            foreach (var d in sq.Items) d.Parent = this;
        int n = _items.Count;
        if (n == 0 || _items[n - 1].Tag.Value < item.Tag.Value)
        {
            _items.Add(item);
            return this;
        }
        int i = Find(item.Tag);
        if (i >= 0) _items[i] = item;
        else _items.Insert(~i, item);
        return this;
    }

    public bool Remove(DicomTag tag)
    {
        int i = Find(tag);
        if (i < 0) return false;
        _items.RemoveAt(i);
        return true;
    }

    public void RemoveWhere(Func<DicomItem, bool> predicate) => _items.RemoveAll(i => predicate(i));

    private int Find(DicomTag tag)
    {
        int lo = 0, hi = _items.Count - 1;
        uint t = tag.Value;
        while (lo <= hi)
        {
            int mid = (lo + hi) >>> 1;
            uint v = _items[mid].Tag.Value;
            if (v == t) return mid;
            if (v < t) lo = mid + 1; else hi = mid - 1;
        }
        return ~lo;
    }

    public IEnumerator<DicomItem> GetEnumerator() => _items.GetEnumerator();
    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();

    public DicomCharacterSet CharacterSet
    {
        get
        {
            for (var d = this; d is not null; d = d.Parent)
                if (d[DicomTags.SpecificCharacterSet] is DicomElement e)
                    return DicomCharacterSet.Parse(Encoding.Latin1.GetString(e.Value.Memory.Span));
            return DicomCharacterSet.Default;
        }
    }

    // ---- typed access ----

    /// <summary>The whole string value (all values joined by '\'), decoded and with padding trimmed; null when absent.</summary>
    public string? GetString(DicomTag tag) => this[tag] is DicomElement e ? DecodeString(e) : null;

    /// <summary>The values of a string element, split on '\' (none for an empty value).</summary>
    public string[] GetStrings(DicomTag tag)
    {
        var s = GetString(tag);
        if (string.IsNullOrEmpty(s)) return [];
        return this[tag]!.VR.IsMultiValuedString() ? s.Split('\\') : [s];
    }

    public string DecodeString(DicomElement e)
    {
        var bytes = e.Value.Memory.Span;
        var cs = e.VR.UsesCharacterSet() ? CharacterSet : DicomCharacterSet.Default;
        return TrimPadding(cs.Decode(bytes, e.VR), e.VR);
    }

    /// <summary>PS3.5 6.2: trailing spaces (leading ones too for most VRs) and trailing NULs are padding.</summary>
    public static string TrimPadding(string s, DicomVR vr)
    {
        if (vr == DicomVR.UI) return s.TrimEnd('\0', ' ');
        if (vr is DicomVR.LT or DicomVR.ST or DicomVR.UT) return s.TrimEnd(' ', '\0');
        if (!vr.IsMultiValuedString()) return s.Trim(' ', '\0');
        if (s.IndexOf('\\') < 0) return s.Trim(' ', '\0');
        return string.Join('\\', s.Split('\\').Select(v => v.Trim(' ', '\0')));
    }

    public ushort? GetUInt16(DicomTag tag, int index = 0) =>
        this[tag] is DicomElement { VR: DicomVR.US or DicomVR.SS or DicomVR.OW } e && e.Length >= (index + 1) * 2
            ? BinaryPrimitives.ReadUInt16LittleEndian(e.Value.Memory.Span[(index * 2)..]) : null;

    public int? GetInt(DicomTag tag)
    {
        if (this[tag] is not DicomElement e) return null;
        return e.VR switch
        {
            DicomVR.US => GetUInt16(tag),
            DicomVR.SS => e.Length >= 2 ? BinaryPrimitives.ReadInt16LittleEndian(e.Value.Memory.Span) : null,
            DicomVR.UL => e.Length >= 4 ? (int)BinaryPrimitives.ReadUInt32LittleEndian(e.Value.Memory.Span) : null,
            DicomVR.SL => e.Length >= 4 ? BinaryPrimitives.ReadInt32LittleEndian(e.Value.Memory.Span) : null,
            DicomVR.IS or DicomVR.DS => int.TryParse(GetStrings(tag).FirstOrDefault(), NumberStyles.Integer, CultureInfo.InvariantCulture, out int v) ? v : null,
            _ => null,
        };
    }

    public DicomSequence? GetSequence(DicomTag tag) => this[tag] as DicomSequence;

    // ---- building ----

    public DicomDataset AddString(DicomTag tag, DicomVR vr, string value)
    {
        byte[] bytes = vr.UsesCharacterSet() ? CharacterSet.Encode(value, vr) : Encoding.ASCII.GetBytes(value);
        return Add(new DicomElement(tag, vr, new MemoryByteBuffer(PadToEven(bytes, vr))));
    }

    public DicomDataset AddString(DicomTag tag, string value) => AddString(tag, DefaultVR(tag), value);

    public DicomDataset AddUInt16(DicomTag tag, params ushort[] values)
    {
        var b = new byte[values.Length * 2];
        for (int i = 0; i < values.Length; i++) BinaryPrimitives.WriteUInt16LittleEndian(b.AsSpan(i * 2), values[i]);
        return Add(new DicomElement(tag, DicomVR.US, new MemoryByteBuffer(b)));
    }

    public DicomDataset AddBytes(DicomTag tag, DicomVR vr, IByteBuffer value) => Add(new DicomElement(tag, vr, value));

    private static DicomVR DefaultVR(DicomTag tag) => Dictionary.DicomDictionary.ImplicitVR(tag);

    internal static byte[] PadToEven(byte[] bytes, DicomVR vr)
    {
        if ((bytes.Length & 1) == 0) return bytes;
        var padded = new byte[bytes.Length + 1];
        bytes.CopyTo(padded, 0);
        padded[^1] = vr.PaddingByte();
        return padded;
    }
}
