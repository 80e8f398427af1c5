using System.Buffers.Binary;
using System.Globalization;
using System.Text;
using System.Text.Json;
using AkkaVna.Dicom.Buffers;

namespace AkkaVna.Dicom.Json;

/// <summary>A DICOM JSON document that does not follow PS3.18 Annex F.</summary>
public sealed class DicomJsonException(string path, string message) : Exception($"{path}: {message}")
{
    public string Path { get; } = path;
}

/// <summary>The DICOM JSON Model (PS3.18 Annex F) reader.</summary>
public static class DicomJsonReader
{
    /// <param name="bulkData">Resolves a BulkDataURI to the value; when null, BulkDataURI elements are an error.</param>
    public static DicomDataset Read(string json, Func<string, IByteBuffer>? bulkData = null)
    {
        using var doc = JsonDocument.Parse(json, new JsonDocumentOptions { MaxDepth = 256 });
        return ReadDataset(doc.RootElement, bulkData, "$", null);
    }

    public static DicomDataset Read(Stream json, Func<string, IByteBuffer>? bulkData = null)
    {
        using var doc = JsonDocument.Parse(json, new JsonDocumentOptions { MaxDepth = 256 });
        return ReadDataset(doc.RootElement, bulkData, "$", null);
    }

    private static DicomDataset ReadDataset(JsonElement obj, Func<string, IByteBuffer>? bulk, string path, DicomDataset? parent)
    {
        if (obj.ValueKind != JsonValueKind.Object) throw new DicomJsonException(path, "a dataset must be a JSON object");
        var ds = new DicomDataset { Parent = parent };
        // Specific Character Set first, so the text that follows is encoded with it.
        var props = obj.EnumerateObject().OrderBy(p => p.Name, StringComparer.OrdinalIgnoreCase).ToList();
        foreach (var p in props)
        {
            string at = path + "." + p.Name;
            if (p.Name.Length != 8 || !uint.TryParse(p.Name, NumberStyles.HexNumber, CultureInfo.InvariantCulture, out uint t))
                throw new DicomJsonException(at, "attribute keys are 8 hexadecimal digits");
            var tag = new DicomTag(t);
            if (p.Value.ValueKind != JsonValueKind.Object) throw new DicomJsonException(at, "an attribute must be a JSON object");
            if (!p.Value.TryGetProperty("vr", out var vrProp) || vrProp.ValueKind != JsonValueKind.String || !DicomVRInfo.TryParse(vrProp.GetString(), out var vr))
                throw new DicomJsonException(at, "missing or unknown \"vr\"");
            ds.Add(ReadAttribute(tag, vr, p.Value, bulk, at, ds));
        }
        return ds;
    }

    private static DicomItem ReadAttribute(DicomTag tag, DicomVR vr, JsonElement a, Func<string, IByteBuffer>? bulk, string path, DicomDataset ds)
    {
        if (a.TryGetProperty("InlineBinary", out var inline))
        {
            byte[] bytes;
            try { bytes = inline.GetBytesFromBase64(); }
            catch (FormatException) { throw new DicomJsonException(path, "InlineBinary is not base64"); }
            if (tag == DicomTags.PixelData && bytes.Length >= 8 && BinaryPrimitives.ReadUInt32LittleEndian(bytes) == 0xE000FFFE)
                return ReadEncapsulated(tag, vr, bytes, path);
            return new DicomElement(tag, vr, new MemoryByteBuffer(bytes));
        }
        if (a.TryGetProperty("BulkDataURI", out var uri))
        {
            if (bulk is null) throw new DicomJsonException(path, "BulkDataURI given but no bulk data resolver");
            return new DicomElement(tag, vr, bulk(uri.GetString() ?? ""));
        }
        if (!a.TryGetProperty("Value", out var value) || value.ValueKind == JsonValueKind.Null)
            return vr == DicomVR.SQ ? new DicomSequence(tag) : new DicomElement(tag, vr, MemoryByteBuffer.Empty);
        if (value.ValueKind != JsonValueKind.Array) throw new DicomJsonException(path, "\"Value\" must be an array");

        if (vr == DicomVR.SQ)
        {
            var sq = new DicomSequence(tag);
            int i = 0;
            foreach (var item in value.EnumerateArray()) sq.Items.Add(ReadDataset(item, bulk, $"{path}[{i++}]", ds));
            return sq;
        }
        if (vr.IsString())
        {
            var parts = new List<string>();
            foreach (var v in value.EnumerateArray())
            {
                parts.Add(v.ValueKind switch
                {
                    JsonValueKind.Null => "",
                    JsonValueKind.String => v.GetString()!,
                    JsonValueKind.Number => v.GetRawText(),
                    JsonValueKind.Object when vr == DicomVR.PN => PersonName(v, path),
                    _ => throw new DicomJsonException(path, $"unexpected {v.ValueKind} in a {vr.Code()} value"),
                });
            }
            string joined = string.Join('\\', parts);
            byte[] bytes = vr.UsesCharacterSet() ? (ds.CharacterSet).Encode(joined, vr) : Encoding.ASCII.GetBytes(joined);
            return new DicomElement(tag, vr, new MemoryByteBuffer(DicomDataset.PadToEven(bytes, vr)));
        }
        int size = vr.NumericSize();
        if (size == 0) throw new DicomJsonException(path, $"{vr.Code()} takes InlineBinary or BulkDataURI, not Value");
        var buf = new byte[value.GetArrayLength() * size];
        int k = 0;
        foreach (var v in value.EnumerateArray())
        {
            var s = buf.AsSpan(k);
            try
            {
                switch (vr)
                {
                    case DicomVR.US: BinaryPrimitives.WriteUInt16LittleEndian(s, v.GetUInt16()); break;
                    case DicomVR.SS: BinaryPrimitives.WriteInt16LittleEndian(s, v.GetInt16()); break;
                    case DicomVR.UL: BinaryPrimitives.WriteUInt32LittleEndian(s, v.GetUInt32()); break;
                    case DicomVR.SL: BinaryPrimitives.WriteInt32LittleEndian(s, v.GetInt32()); break;
                    case DicomVR.SV: BinaryPrimitives.WriteInt64LittleEndian(s, v.ValueKind == JsonValueKind.String ? long.Parse(v.GetString()!, CultureInfo.InvariantCulture) : v.GetInt64()); break;
                    case DicomVR.UV: BinaryPrimitives.WriteUInt64LittleEndian(s, v.ValueKind == JsonValueKind.String ? ulong.Parse(v.GetString()!, CultureInfo.InvariantCulture) : v.GetUInt64()); break;
                    case DicomVR.FL: BinaryPrimitives.WriteSingleLittleEndian(s, v.ValueKind == JsonValueKind.String ? float.Parse(v.GetString()!, CultureInfo.InvariantCulture) : v.GetSingle()); break;
                    case DicomVR.FD: BinaryPrimitives.WriteDoubleLittleEndian(s, v.ValueKind == JsonValueKind.String ? double.Parse(v.GetString()!, CultureInfo.InvariantCulture) : v.GetDouble()); break;
                    case DicomVR.AT:
                        if (!DicomTag.TryParse(v.GetString(), out var at)) throw new FormatException();
                        BinaryPrimitives.WriteUInt16LittleEndian(s, at.Group);
                        BinaryPrimitives.WriteUInt16LittleEndian(s[2..], at.Element);
                        break;
                }
            }
            catch (Exception e) when (e is FormatException or InvalidOperationException or OverflowException)
            {
                throw new DicomJsonException(path, $"value {v.GetRawText()} is not a valid {vr.Code()}");
            }
            k += size;
        }
        return new DicomElement(tag, vr, new MemoryByteBuffer(buf));
    }

    private static string PersonName(JsonElement v, string path)
    {
        string G(string name) => v.TryGetProperty(name, out var p) ? p.GetString() ?? "" : "";
        string s = G("Alphabetic") + "=" + G("Ideographic") + "=" + G("Phonetic");
        _ = path;
        return s.TrimEnd('=');
    }

    private static DicomFragmentSequence ReadEncapsulated(DicomTag tag, DicomVR vr, byte[] bytes, string path)
    {
        var items = new List<IByteBuffer>();
        int pos = 0;
        while (pos + 8 <= bytes.Length)
        {
            uint t = BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(pos));
            uint len = BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(pos + 4));
            pos += 8;
            if (t == 0xE0DDFFFE) break;
            if (t != 0xE000FFFE || len > bytes.Length - pos) throw new DicomJsonException(path, $"malformed encapsulated pixel data at byte {pos - 8}");
            items.Add(new MemoryByteBuffer(bytes.AsMemory(pos, (int)len)));
            pos += (int)len;
        }
        if (items.Count == 0) throw new DicomJsonException(path, "encapsulated pixel data without a Basic Offset Table item");
        return new DicomFragmentSequence(tag, vr, items[0], items.Skip(1));
    }
}
