using System.Buffers.Binary;
using System.IO.Compression;
using AkkaVna.Dicom.Buffers;

namespace AkkaVna.Dicom.IO;

/// <summary>
/// Writes datasets and Part 10 files (PS3.10 7.1). Strict: values padded to even length, group lengths (retired outside
/// group 0002) dropped, sequences and items of undefined length, encapsulated pixel data only in an encapsulated syntax.
/// </summary>
public static class DicomWriter
{
    private const uint Undefined = 0xFFFFFFFF;

    /// <summary>Writes a Part 10 file: 128-byte preamble, "DICM", File Meta (rebuilt) and the dataset in <paramref name="syntax"/>.</summary>
    public static void WriteFile(Stream output, DicomDataset dataset, DicomTransferSyntax syntax, DicomDataset? sourceMeta = null)
    {
        var meta = BuildFileMeta(dataset, syntax, sourceMeta);
        using var buffered = new BufferedStream(output, 64 * 1024);
        buffered.Write(new byte[128]);
        buffered.Write("DICM"u8);
        WriteFileMeta(buffered, meta);
        if (syntax.IsDeflated)
        {
            using (var deflate = new DeflateStream(buffered, CompressionLevel.Optimal, leaveOpen: true))
            {
                WriteDataset(deflate, dataset, syntax);
            }
        }
        else WriteDataset(buffered, dataset, syntax);
        buffered.Flush();
    }

    public static void WriteFile(string path, DicomDataset dataset, DicomTransferSyntax syntax, DicomDataset? sourceMeta = null)
    {
        using var fs = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None, 1);
        WriteFile(fs, dataset, syntax, sourceMeta);
    }

    /// <summary>File Meta Information for <paramref name="dataset"/>: SOP class/instance from the dataset, AkkaVna's implementation identity.</summary>
    public static DicomDataset BuildFileMeta(DicomDataset dataset, DicomTransferSyntax syntax, DicomDataset? sourceMeta = null)
    {
        var meta = new DicomDataset();
        meta.Add(new DicomElement(DicomTags.FileMetaInformationVersion, DicomVR.OB, new MemoryByteBuffer(new byte[] { 0, 1 })));
        string sopClass = dataset.GetString(DicomTags.SOPClassUID) ?? sourceMeta?.GetString(DicomTags.MediaStorageSOPClassUID) ?? "";
        string sopInstance = dataset.GetString(DicomTags.SOPInstanceUID) ?? sourceMeta?.GetString(DicomTags.MediaStorageSOPInstanceUID) ?? "";
        meta.AddString(DicomTags.MediaStorageSOPClassUID, DicomVR.UI, sopClass);
        meta.AddString(DicomTags.MediaStorageSOPInstanceUID, DicomVR.UI, sopInstance);
        meta.AddString(DicomTags.TransferSyntaxUID, DicomVR.UI, syntax.Uid);
        meta.AddString(DicomTags.ImplementationClassUID, DicomVR.UI, DicomImplementation.ClassUid);
        meta.AddString(DicomTags.ImplementationVersionName, DicomVR.SH, DicomImplementation.VersionName);
        if (sourceMeta?.GetString(DicomTags.SourceApplicationEntityTitle) is { Length: > 0 } aet)
            meta.AddString(DicomTags.SourceApplicationEntityTitle, DicomVR.AE, aet);
        return meta;
    }

    /// <summary>Group 0002, explicit VR little endian, preceded by its group length.</summary>
    public static void WriteFileMeta(Stream output, DicomDataset meta)
    {
        using var body = new MemoryStream();
        var le = DicomTransferSyntax.ExplicitVRLittleEndian;
        foreach (var item in meta)
            if (item.Tag.Group == 0x0002 && !item.Tag.IsGroupLength) WriteItem(body, item, le.IsExplicitVR, false);
        Span<byte> gl = stackalloc byte[12];
        BinaryPrimitives.WriteUInt16LittleEndian(gl, 0x0002);
        BinaryPrimitives.WriteUInt16LittleEndian(gl[2..], 0x0000);
        gl[4] = (byte)'U'; gl[5] = (byte)'L';
        BinaryPrimitives.WriteUInt16LittleEndian(gl[6..], 4);
        BinaryPrimitives.WriteUInt32LittleEndian(gl[8..], (uint)body.Length);
        output.Write(gl);
        body.Position = 0;
        body.CopyTo(output);
    }

    /// <summary>Writes the dataset's elements (no File Meta, no deflate) in the given encoding.</summary>
    public static void WriteDataset(Stream output, DicomDataset dataset, DicomTransferSyntax syntax)
    {
        if (!syntax.IsFileEncoding) throw new NotSupportedException($"{syntax} is not a file encoding.");
        if (!syntax.IsEncapsulated && dataset[DicomTags.PixelData] is DicomFragmentSequence)
            throw new InvalidOperationException($"The pixel data is encapsulated: it cannot be written in {syntax} without decompression.");
        foreach (var item in dataset)
        {
            if (item.Tag.Group == 0x0002 || item.Tag.IsGroupLength) continue;
            WriteItem(output, item, syntax.IsExplicitVR, syntax.IsBigEndian);
        }
    }

    private static void WriteItem(Stream o, DicomItem item, bool explicitVR, bool be)
    {
        switch (item)
        {
            case DicomElement e:
                WriteElement(o, e, explicitVR, be);
                break;
            case DicomSequence sq:
                WriteHeader(o, sq.Tag, DicomVR.SQ, Undefined, explicitVR, be);
                foreach (var ds in sq.Items)
                {
                    WriteTagLength(o, DicomTag.Item, Undefined, be);
                    foreach (var child in ds)
                        if (!child.Tag.IsGroupLength) WriteItem(o, child, explicitVR, be);
                    WriteTagLength(o, DicomTag.ItemDelimitation, 0, be);
                }
                WriteTagLength(o, DicomTag.SequenceDelimitation, 0, be);
                break;
            case DicomFragmentSequence f:
                WriteHeader(o, f.Tag, f.VR == DicomVR.OW ? DicomVR.OW : DicomVR.OB, Undefined, explicitVR, be);
                WriteFragment(o, f.OffsetTable, be);
                foreach (var frag in f.Fragments) WriteFragment(o, frag, be);
                WriteTagLength(o, DicomTag.SequenceDelimitation, 0, be);
                break;
        }
    }

    private static void WriteFragment(Stream o, IByteBuffer value, bool be)
    {
        long len = value.Length + (value.Length & 1);
        WriteTagLength(o, DicomTag.Item, checked((uint)len), be);
        value.CopyTo(o);
        if ((value.Length & 1) == 1) o.WriteByte(0);
    }

    private static void WriteElement(Stream o, DicomElement e, bool explicitVR, bool be)
    {
        long len = e.Length;
        bool pad = (len & 1) == 1;
        long padded = len + (pad ? 1 : 0);
        if (padded > uint.MaxValue - 1) throw new InvalidOperationException($"Value of {e.Tag} is too long ({len} bytes) for DICOM.");
        var vr = e.VR;
        // A value too long for a 16-bit length cannot keep its VR in explicit VR: PS3.5 6.2.2 note -> UN.
        if (explicitVR && !vr.HasLongLength() && padded > 0xFFFE) vr = DicomVR.UN;
        WriteHeader(o, e.Tag, vr, (uint)padded, explicitVR, be);
        int unit = e.VR.ByteSwapUnit();
        if (be && unit > 1) new SwappedByteBuffer(e.Value, unit).CopyTo(o);
        else e.Value.CopyTo(o);
        if (pad) o.WriteByte(e.VR.PaddingByte());
    }

    private static void WriteTagLength(Stream o, DicomTag tag, uint length, bool be)
    {
        Span<byte> h = stackalloc byte[8];
        PutTag(h, tag, be);
        if (be) BinaryPrimitives.WriteUInt32BigEndian(h[4..], length);
        else BinaryPrimitives.WriteUInt32LittleEndian(h[4..], length);
        o.Write(h);
    }

    private static void PutTag(Span<byte> h, DicomTag tag, bool be)
    {
        if (be)
        {
            BinaryPrimitives.WriteUInt16BigEndian(h, tag.Group);
            BinaryPrimitives.WriteUInt16BigEndian(h[2..], tag.Element);
        }
        else
        {
            BinaryPrimitives.WriteUInt16LittleEndian(h, tag.Group);
            BinaryPrimitives.WriteUInt16LittleEndian(h[2..], tag.Element);
        }
    }

    private static void WriteHeader(Stream o, DicomTag tag, DicomVR vr, uint length, bool explicitVR, bool be)
    {
        if (!explicitVR)
        {
            WriteTagLength(o, tag, length, be);
            return;
        }
        Span<byte> h = stackalloc byte[12];
        PutTag(h, tag, be);
        if (vr == DicomVR.None) vr = DicomVR.UN;
        h[4] = (byte)((ushort)vr >> 8);
        h[5] = (byte)vr;
        if (vr.HasLongLength())
        {
            h[6] = h[7] = 0;
            if (be) BinaryPrimitives.WriteUInt32BigEndian(h[8..], length);
            else BinaryPrimitives.WriteUInt32LittleEndian(h[8..], length);
            o.Write(h);
        }
        else
        {
            if (be) BinaryPrimitives.WriteUInt16BigEndian(h[6..], (ushort)length);
            else BinaryPrimitives.WriteUInt16LittleEndian(h[6..], (ushort)length);
            o.Write(h[..8]);
        }
    }
}
