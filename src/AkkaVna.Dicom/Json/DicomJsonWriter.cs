using System.Buffers.Binary;
using System.Globalization;
using System.Text.Json;
using AkkaVna.Dicom.Buffers;

namespace AkkaVna.Dicom.Json;

public enum DicomJsonBinaryMode { InlineBinary, BulkDataUri }

public sealed record DicomJsonOptions
{
    /// <summary>How binary values (OB, OD, OF, OL, OV, OW, UN and encapsulated pixel data) are written.</summary>
    public DicomJsonBinaryMode BinaryMode { get; init; } = DicomJsonBinaryMode.InlineBinary;

    /// <summary>With <see cref="DicomJsonBinaryMode.BulkDataUri"/>: the URI for a value, given the tag path from the top level (e.g. "7FE00010" or "00400275/0/00400008").</summary>
    public Func<string, DicomItem, string>? BulkDataUri { get; init; }

    /// <summary>With BulkDataUri mode, values up to this size are still inlined.</summary>
    public long InlineThreshold { get; init; }

    public bool Indented { get; init; }
}

/// <summary>The DICOM JSON Model (PS3.18 Annex F) writer.</summary>
public static class DicomJsonWriter
{
    public static void Write(Stream output, DicomDataset dataset, DicomJsonOptions? options = null)
    {
        options ??= new DicomJsonOptions();
        using var w = new Utf8JsonWriter(output, new JsonWriterOptions { Indented = options.Indented, SkipValidation = false });
        WriteDataset(w, dataset, options, "");
        w.Flush();
    }

    public static string ToJson(DicomDataset dataset, DicomJsonOptions? options = null)
    {
        using var ms = new MemoryStream();
        Write(ms, dataset, options);
        return System.Text.Encoding.UTF8.GetString(ms.ToArray());
    }

    private static void WriteDataset(Utf8JsonWriter w, DicomDataset ds, DicomJsonOptions o, string path)
    {
        w.WriteStartObject();
        foreach (var item in ds)
        {
            if (item.Tag.IsGroupLength) continue; // group lengths are not attributes of the model (PS3.18 F.2)
            string key = item.Tag.Value.ToString("X8", CultureInfo.InvariantCulture);
            w.WritePropertyName(key);
            WriteItem(w, ds, item, o, path.Length == 0 ? key : path + "/" + key);
        }
        w.WriteEndObject();
    }

    private static void WriteItem(Utf8JsonWriter w, DicomDataset ds, DicomItem item, DicomJsonOptions o, string path)
    {
        w.WriteStartObject();
        w.WriteString("vr", item.VR.Code());
        switch (item)
        {
            case DicomSequence sq:
                if (sq.Items.Count > 0)
                {
                    w.WriteStartArray("Value");
                    for (int i = 0; i < sq.Items.Count; i++) WriteDataset(w, sq.Items[i], o, path + "/" + i.ToString(CultureInfo.InvariantCulture));
                    w.WriteEndArray();
                }
                break;
            case DicomFragmentSequence f:
                WriteBinary(w, item, o, path, () => EncapsulatedBytes(f), EncapsulatedLength(f));
                break;
            case DicomElement e:
                WriteElementValue(w, ds, e, o, path);
                break;
        }
        w.WriteEndObject();
    }

    private static void WriteElementValue(Utf8JsonWriter w, DicomDataset ds, DicomElement e, DicomJsonOptions o, string path)
    {
        if (e.Length == 0) return;
        var vr = e.VR;
        if (vr.IsBulkBinary())
        {
            WriteBinary(w, e, o, path, () => e.Value.Memory.ToArray(), e.Length);
            return;
        }
        if (vr.IsString())
        {
            string s = ds.DecodeString(e);
            if (s.Length == 0) return;
            string[] values = vr.IsMultiValuedString() ? s.Split('\\') : [s];
            if (vr == DicomVR.PN && values.All(x => DicomDataset.TrimPadding(x, vr).TrimEnd('^', '=', ' ').Length == 0)) return;
            w.WriteStartArray("Value");
            foreach (var raw in values)
            {
                string v = DicomDataset.TrimPadding(raw, vr);
                if (vr == DicomVR.PN) v = v.TrimEnd('^', '=', ' '); // trailing empty components are insignificant (PS3.5 6.2.1)
                if (v.Length == 0) { w.WriteNullValue(); continue; } // an empty value among several (PS3.18 F.2.5)
                switch (vr)
                {
                    case DicomVR.PN:
                        WritePersonName(w, v);
                        break;
                    case DicomVR.DS:
                        WriteDecimalString(w, v);
                        break;
                    case DicomVR.IS:
                        // IS is a 32-bit signed integer (PS3.5 Table 6.2-1); anything else (e.g. "1A", or 13 digits)
                        // is kept as text rather than altered.
                        if (int.TryParse(v, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out int l)) w.WriteNumberValue(l);
                        else w.WriteStringValue(v);
                        break;
                    default:
                        w.WriteStringValue(v);
                        break;
                }
            }
            w.WriteEndArray();
            return;
        }
        var span = e.Value.Memory.Span;
        int size = vr.NumericSize();
        if (size == 0 || span.Length < size)
        {
            WriteBinary(w, e, o, path, () => e.Value.Memory.ToArray(), e.Length);
            return;
        }
        w.WriteStartArray("Value");
        for (int i = 0; i + size <= span.Length; i += size)
        {
            var s = span[i..];
            switch (vr)
            {
                case DicomVR.US: w.WriteNumberValue(BinaryPrimitives.ReadUInt16LittleEndian(s)); break;
                case DicomVR.SS: w.WriteNumberValue(BinaryPrimitives.ReadInt16LittleEndian(s)); break;
                case DicomVR.UL: w.WriteNumberValue(BinaryPrimitives.ReadUInt32LittleEndian(s)); break;
                case DicomVR.SL: w.WriteNumberValue(BinaryPrimitives.ReadInt32LittleEndian(s)); break;
                case DicomVR.SV: w.WriteNumberValue(BinaryPrimitives.ReadInt64LittleEndian(s)); break;
                case DicomVR.UV: w.WriteNumberValue(BinaryPrimitives.ReadUInt64LittleEndian(s)); break;
                case DicomVR.FL: WriteFloat(w, BinaryPrimitives.ReadSingleLittleEndian(s)); break;
                case DicomVR.FD: WriteFloat(w, BinaryPrimitives.ReadDoubleLittleEndian(s)); break;
                case DicomVR.AT:
                    w.WriteStringValue(new DicomTag(BinaryPrimitives.ReadUInt16LittleEndian(s), BinaryPrimitives.ReadUInt16LittleEndian(s[2..])).Value.ToString("X8", CultureInfo.InvariantCulture));
                    break;
            }
        }
        w.WriteEndArray();
    }

    private static void WriteFloat(Utf8JsonWriter w, double d)
    {
        // JSON has no NaN or infinity (PS3.18 F.2.3.1 leaves them out); they are written as strings so nothing is lost.
        if (double.IsFinite(d)) w.WriteNumberValue(d);
        else w.WriteStringValue(d.ToString(CultureInfo.InvariantCulture));
    }

    private static void WriteFloat(Utf8JsonWriter w, float f)
    {
        if (float.IsFinite(f)) w.WriteNumberValue(f);
        else w.WriteStringValue(f.ToString(CultureInfo.InvariantCulture));
    }

    /// <summary>DS as a JSON number (PS3.18 F.2.3): the source text when it is valid JSON, else its parsed value, else the text.</summary>
    private static void WriteDecimalString(Utf8JsonWriter w, string v)
    {
        if (!double.TryParse(v, NumberStyles.Float, CultureInfo.InvariantCulture, out double d) || !double.IsFinite(d))
        {
            w.WriteStringValue(v);
            return;
        }
        if (IsJsonNumber(v)) w.WriteRawValue(v, skipInputValidation: true);
        else w.WriteNumberValue(d);
    }

    private static bool IsJsonNumber(string s)
    {
        int i = 0, n = s.Length;
        if (i < n && s[i] == '-') i++;
        if (i >= n) return false;
        if (s[i] == '0') i++;
        else if (s[i] is >= '1' and <= '9') while (i < n && char.IsAsciiDigit(s[i])) i++;
        else return false;
        if (i < n && s[i] == '.')
        {
            i++;
            int d = i;
            while (i < n && char.IsAsciiDigit(s[i])) i++;
            if (i == d) return false;
        }
        if (i < n && s[i] is 'e' or 'E')
        {
            i++;
            if (i < n && s[i] is '+' or '-') i++;
            int d = i;
            while (i < n && char.IsAsciiDigit(s[i])) i++;
            if (i == d) return false;
        }
        return i == n;
    }

    private static void WritePersonName(Utf8JsonWriter w, string v)
    {
        w.WriteStartObject();
        string[] groups = v.Split('=');
        string[] names = ["Alphabetic", "Ideographic", "Phonetic"];
        for (int i = 0; i < groups.Length && i < 3; i++)
            if (groups[i].Length > 0) w.WriteString(names[i], groups[i]);
        w.WriteEndObject();
    }

    private static void WriteBinary(Utf8JsonWriter w, DicomItem item, DicomJsonOptions o, string path, Func<byte[]> bytes, long length)
    {
        if (o.BinaryMode == DicomJsonBinaryMode.BulkDataUri && o.BulkDataUri is { } uri && length > o.InlineThreshold)
        {
            w.WriteString("BulkDataURI", uri(path, item));
            return;
        }
        if (length > FileByteBuffer.MaxInMemory) throw new InvalidOperationException($"{item.Tag}: {length} bytes are too many to inline; use BulkDataURI.");
        w.WriteBase64String("InlineBinary", bytes());
    }

    /// <summary>Encapsulated pixel data as its item stream (PS3.5 A.4): Basic Offset Table item, fragment items, sequence delimiter.</summary>
    internal static byte[] EncapsulatedBytes(DicomFragmentSequence f)
    {
        using var ms = new MemoryStream();
        void Item(IByteBuffer b)
        {
            Span<byte> h = stackalloc byte[8];
            BinaryPrimitives.WriteUInt16LittleEndian(h, 0xFFFE);
            BinaryPrimitives.WriteUInt16LittleEndian(h[2..], 0xE000);
            BinaryPrimitives.WriteUInt32LittleEndian(h[4..], (uint)(b.Length + (b.Length & 1)));
            ms.Write(h);
            b.CopyTo(ms);
            if ((b.Length & 1) == 1) ms.WriteByte(0);
        }
        Item(f.OffsetTable);
        foreach (var frag in f.Fragments) Item(frag);
        ms.Write([0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0]);
        return ms.ToArray();
    }

    internal static long EncapsulatedLength(DicomFragmentSequence f) =>
        8 + f.OffsetTable.Length + (f.OffsetTable.Length & 1) + f.Fragments.Sum(x => 8 + x.Length + (x.Length & 1)) + 8;
}
