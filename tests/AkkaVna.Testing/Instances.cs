using AkkaVna.Dicom;
using AkkaVna.Dicom.Buffers;
using AkkaVna.Dicom.IO;

namespace AkkaVna.Testing;

/// <summary>Generated CT-like instances (fresh UIDs, pixel data that does not compress to nothing), written with AkkaVna's writer.</summary>
public static class Instances
{
    public static string NewUid() => DicomImplementation.NewUid();

    /// <summary>Writes <paramref name="count"/> instances of one study with <paramref name="pixelBytes"/> of pixel data each; returns their paths.</summary>
    public static List<string> WriteStudy(string folder, int count, int pixelBytes, int seed = 1, DicomTransferSyntax? syntax = null)
    {
        Directory.CreateDirectory(folder);
        string study = NewUid(), series = NewUid();
        var random = new Random(seed);
        var pixels = new byte[pixelBytes];
        var paths = new List<string>(count);
        int side = (int)Math.Sqrt(pixelBytes / 2.0);
        for (int i = 0; i < count; i++)
        {
            random.NextBytes(pixels);
            var ds = new DicomDataset();
            ds.AddString(DicomTags.SOPClassUID, DicomVR.UI, DicomUids.CTImageStorage);
            string sop = NewUid();
            ds.AddString(DicomTags.SOPInstanceUID, DicomVR.UI, sop);
            ds.AddString(DicomTags.StudyDate, DicomVR.DA, "20261122");
            ds.AddString(DicomTags.Modality, DicomVR.CS, "CT");
            ds.AddString(DicomTags.PatientName, DicomVR.PN, "Test^Patient");
            ds.AddString(DicomTags.PatientID, DicomVR.LO, "P" + seed);
            ds.AddString(DicomTags.StudyInstanceUID, DicomVR.UI, study);
            ds.AddString(DicomTags.SeriesInstanceUID, DicomVR.UI, series);
            ds.AddString(DicomTags.InstanceNumber, DicomVR.IS, (i + 1).ToString(System.Globalization.CultureInfo.InvariantCulture));
            ds.AddUInt16(DicomTags.SamplesPerPixel, 1);
            ds.AddString(DicomTags.PhotometricInterpretation, DicomVR.CS, "MONOCHROME2");
            ds.AddUInt16(DicomTags.Rows, (ushort)side);
            ds.AddUInt16(DicomTags.Columns, (ushort)(pixelBytes / 2 / Math.Max(side, 1)));
            ds.AddUInt16(DicomTags.BitsAllocated, 16);
            ds.AddUInt16(DicomTags.BitsStored, 16);
            ds.AddUInt16(DicomTags.HighBit, 15);
            ds.AddUInt16(DicomTags.PixelRepresentation, 0);
            ds.Add(new DicomElement(DicomTags.PixelData, DicomVR.OW, new MemoryByteBuffer((byte[])pixels.Clone())));
            string path = Path.Combine(folder, sop + ".dcm");
            DicomWriter.WriteFile(path, ds, syntax ?? DicomTransferSyntax.ExplicitVRLittleEndian);
            paths.Add(path);
        }
        return paths;
    }
}
