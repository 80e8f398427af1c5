using System.Buffers.Binary;
using System.Globalization;
using System.Text;
using AkkaVna.Dicom.Dictionary;

namespace AkkaVna.Dicom.IO;

/// <summary>A dcmdump-like listing: one line per element with tag, VR, value, length, VM and keyword.</summary>
public static class DicomDump
{
    private const int MaxValueChars = 64;

    public static void Write(TextWriter w, DicomFile file)
    {
        w.WriteLine("# Dicom-File-Format");
        w.WriteLine();
        w.WriteLine("# Dicom-Meta-Information-Header");
        w.WriteLine("# Used TransferSyntax: Little Endian Explicit");
        WriteDataset(w, file.FileMetaInfo, 0);
        w.WriteLine();
        w.WriteLine("# Dicom-Data-Set");
        w.WriteLine($"# Used TransferSyntax: {file.TransferSyntax.Name}");
        WriteDataset(w, file.Dataset, 0);
    }

    public static void WriteDataset(TextWriter w, DicomDataset ds, int depth)
    {
        string indent = new(' ', depth * 2);
        foreach (var item in ds)
        {
            switch (item)
            {
                case DicomSequence sq:
                    Line(w, indent, sq.Tag, "SQ", "(Sequence)", "u/l", sq.Items.Count.ToString(CultureInfo.InvariantCulture), Keyword(sq.Tag, ds));
                    foreach (var child in sq.Items)
                    {
                        w.WriteLine($"{indent}  (fffe,e000) na (Item)");
                        WriteDataset(w, child, depth + 2);
                        w.WriteLine($"{indent}  (fffe,e00d) na (ItemDelimitationItem)");
                    }
                    w.WriteLine($"{indent}(fffe,e0dd) na (SequenceDelimitationItem)");
                    break;
                case DicomFragmentSequence f:
                    Line(w, indent, f.Tag, f.VR.Code(), "(PixelSequence)", "u/l", (f.Fragments.Count + 1).ToString(CultureInfo.InvariantCulture), Keyword(f.Tag, ds));
                    w.WriteLine($"{indent}  (fffe,e000) pi (Basic Offset Table, {f.OffsetTable.Length} bytes)");
                    foreach (var frag in f.Fragments) w.WriteLine($"{indent}  (fffe,e000) pi (fragment, {frag.Length} bytes)");
                    w.WriteLine($"{indent}(fffe,e0dd) na (SequenceDelimitationItem)");
                    break;
                case DicomElement e:
                    var (text, vm) = Describe(ds, e);
                    Line(w, indent, e.Tag, e.VR.Code(), text, e.Length.ToString(CultureInfo.InvariantCulture), vm.ToString(CultureInfo.InvariantCulture), Keyword(e.Tag, ds));
                    break;
            }
        }
    }

    private static void Line(TextWriter w, string indent, DicomTag tag, string vr, string value, string length, string vm, string keyword)
    {
        string head = $"{indent}({tag.Group:x4},{tag.Element:x4}) {vr} {value}";
        w.WriteLine($"{head.PadRight(Math.Max(52, head.Length))} # {length,4}, {vm} {keyword}");
    }

    private static string Keyword(DicomTag tag, DicomDataset ds)
    {
        if (tag.IsPrivateCreator) return "PrivateCreator";
        if (tag.IsPrivate)
        {
            string? creator = ds.GetString(tag.PrivateCreatorTag);
            var p = creator is null ? null : DicomPrivateDictionary.Lookup(creator, tag);
            return p is null ? "Unknown Tag & Data" : (p.Keyword.Length > 0 ? p.Keyword : p.Name);
        }
        if (tag.IsGroupLength && tag.Group > 0x0002) return "GenericGroupLength";
        return DicomDictionary.Lookup(tag)?.Keyword ?? "Unknown Tag & Data";
    }

    private static (string Text, int VM) Describe(DicomDataset ds, DicomElement e)
    {
        if (e.Length == 0) return ("(no value available)", 0);
        var vr = e.VR;
        if (vr.IsString())
        {
            string s = ds.DecodeString(e);
            int vm = vr.IsMultiValuedString() ? s.Split('\\').Length : 1;
            return ("[" + Clip(s.Replace("\r", "\\r").Replace("\n", "\\n")) + "]", vm);
        }
        int size = vr.NumericSize();
        if (size > 0 && e.Length <= 4096)
        {
            var span = e.Value.Memory.Span;
            var sb = new StringBuilder();
            int count = 0;
            for (int i = 0; i + size <= span.Length; i += size, count++)
            {
                if (sb.Length > MaxValueChars) { sb.Append("..."); count = span.Length / size; break; }
                if (count > 0) sb.Append('\\');
                var s = span[i..];
                sb.Append(vr switch
                {
                    DicomVR.US => BinaryPrimitives.ReadUInt16LittleEndian(s).ToString(CultureInfo.InvariantCulture),
                    DicomVR.SS => BinaryPrimitives.ReadInt16LittleEndian(s).ToString(CultureInfo.InvariantCulture),
                    DicomVR.UL => BinaryPrimitives.ReadUInt32LittleEndian(s).ToString(CultureInfo.InvariantCulture),
                    DicomVR.SL => BinaryPrimitives.ReadInt32LittleEndian(s).ToString(CultureInfo.InvariantCulture),
                    DicomVR.SV => BinaryPrimitives.ReadInt64LittleEndian(s).ToString(CultureInfo.InvariantCulture),
                    DicomVR.UV => BinaryPrimitives.ReadUInt64LittleEndian(s).ToString(CultureInfo.InvariantCulture),
                    DicomVR.FL => BinaryPrimitives.ReadSingleLittleEndian(s).ToString("R", CultureInfo.InvariantCulture),
                    DicomVR.FD => BinaryPrimitives.ReadDoubleLittleEndian(s).ToString("R", CultureInfo.InvariantCulture),
                    _ => $"({BinaryPrimitives.ReadUInt16LittleEndian(s):x4},{BinaryPrimitives.ReadUInt16LittleEndian(s[2..]):x4})",
                });
            }
            return (sb.ToString(), count);
        }
        // Binary: the first bytes in hex; large values are not read beyond that.
        var head = e.Length <= 4096 ? e.Value.Memory.Span : ReadOnlySpan<byte>.Empty;
        var hex = new StringBuilder();
        for (int i = 0; i < head.Length && hex.Length < MaxValueChars; i++) hex.Append(head[i].ToString("x2", CultureInfo.InvariantCulture)).Append('\\');
        string text = hex.Length == 0 ? $"(binary, {e.Length} bytes)" : hex.ToString().TrimEnd('\\') + (head.Length * 3 > MaxValueChars ? "..." : "");
        return (text, 1);
    }

    private static string Clip(string s) => s.Length <= MaxValueChars ? s : s[..MaxValueChars] + "...";
}
