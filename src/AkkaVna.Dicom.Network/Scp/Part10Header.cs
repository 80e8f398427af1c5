using AkkaVna.Dicom.IO;

namespace AkkaVna.Dicom.Network.Scp;

/// <summary>The start of a Part 10 file for a received instance: preamble, "DICM" and File Meta from the command and the presentation context.</summary>
public static class Part10Header
{
    public static byte[] For(StoreRequest request)
    {
        var meta = new DicomDataset();
        meta.Add(new DicomElement(DicomTags.FileMetaInformationVersion, DicomVR.OB, new Buffers.MemoryByteBuffer(new byte[] { 0, 1 })));
        meta.AddString(DicomTags.MediaStorageSOPClassUID, DicomVR.UI, request.SopClassUid);
        meta.AddString(DicomTags.MediaStorageSOPInstanceUID, DicomVR.UI, request.SopInstanceUid);
        meta.AddString(DicomTags.TransferSyntaxUID, DicomVR.UI, request.TransferSyntax.Uid);
        meta.AddString(DicomTags.ImplementationClassUID, DicomVR.UI, DicomImplementation.ClassUid);
        meta.AddString(DicomTags.ImplementationVersionName, DicomVR.SH, DicomImplementation.VersionName);
        if (Pdus.PduCodec.IsValidAETitle(request.Association.CallingAE))
            meta.AddString(DicomTags.SourceApplicationEntityTitle, DicomVR.AE, request.Association.CallingAE);
        using var head = new MemoryStream(512);
        head.Write(new byte[128]);
        head.Write("DICM"u8);
        DicomWriter.WriteFileMeta(head, meta);
        return head.ToArray();
    }
}
