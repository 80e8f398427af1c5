namespace AkkaVna.Dicom.IO;

/// <summary>
/// The start of a Part 10 file for a received data set: preamble, "DICM" and File Meta Information naming the SOP class
/// and instance, the syntax the data set is in, AkkaVna as the implementation and, when it is a valid AE title, the
/// source (PS3.10 7.1). The data set's bytes follow as received.
/// </summary>
public static class Part10Header
{
    public static byte[] For(string sopClassUid, string sopInstanceUid, DicomTransferSyntax syntax, string? sourceAETitle)
    {
        var meta = new DicomDataset();
        meta.Add(new DicomElement(DicomTags.FileMetaInformationVersion, DicomVR.OB, new Buffers.MemoryByteBuffer(new byte[] { 0, 1 })));
        meta.AddString(DicomTags.MediaStorageSOPClassUID, DicomVR.UI, sopClassUid);
        meta.AddString(DicomTags.MediaStorageSOPInstanceUID, DicomVR.UI, sopInstanceUid);
        meta.AddString(DicomTags.TransferSyntaxUID, DicomVR.UI, syntax.Uid);
        meta.AddString(DicomTags.ImplementationClassUID, DicomVR.UI, DicomImplementation.ClassUid);
        meta.AddString(DicomTags.ImplementationVersionName, DicomVR.SH, DicomImplementation.VersionName);
        if (IsAETitle(sourceAETitle)) meta.AddString(DicomTags.SourceApplicationEntityTitle, DicomVR.AE, sourceAETitle!);
        using var head = new MemoryStream(512);
        head.Write(new byte[128]);
        head.Write("DICM"u8);
        DicomWriter.WriteFileMeta(head, meta);
        return head.ToArray();
    }

    /// <summary>An AE value (PS3.5 6.2): 1 to 16 characters of the default repertoire, not only spaces, no backslash.</summary>
    public static bool IsAETitle(string? ae) => ae is { Length: > 0 and <= 16 } && ae.Trim().Length > 0 && ae.All(c => c >= 0x20 && c < 0x7F && c != '\\');
}
