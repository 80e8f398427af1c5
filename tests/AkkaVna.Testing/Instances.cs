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
        var paths = new List<string>(count);
        for (int i = 0; i < count; i++)
        {
            string sop = NewUid();
            string path = Path.Combine(folder, sop + ".dcm");
            DicomWriter.WriteFile(path, CT(study, series, sop, pixelBytes, random, "P" + seed, i + 1), syntax ?? DicomTransferSyntax.ExplicitVRLittleEndian);
            paths.Add(path);
        }
        return paths;
    }

    /// <summary>Writes one CT instance with the given UIDs (e.g. one SOP Instance UID in two studies) and random pixels from <paramref name="seed"/>.</summary>
    public static string WriteInstance(string path, string study, string series, string sop, int pixelBytes, int seed = 1, DicomTransferSyntax? syntax = null,
        string patientId = "P1")
    {
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        DicomWriter.WriteFile(path, CT(study, series, sop, pixelBytes, new Random(seed), patientId, 1), syntax ?? DicomTransferSyntax.ExplicitVRLittleEndian);
        return path;
    }

    private static DicomDataset CT(string study, string series, string sop, int pixelBytes, Random random, string patientId, int number)
    {
        var pixels = new byte[pixelBytes];
        random.NextBytes(pixels);
        int side = (int)Math.Sqrt(pixelBytes / 2.0);
        var ds = new DicomDataset();
        ds.AddString(DicomTags.SOPClassUID, DicomVR.UI, DicomUids.CTImageStorage);
        ds.AddString(DicomTags.SOPInstanceUID, DicomVR.UI, sop);
        ds.AddString(DicomTags.StudyDate, DicomVR.DA, "20261122");
        ds.AddString(DicomTags.Modality, DicomVR.CS, "CT");
        ds.AddString(DicomTags.PatientName, DicomVR.PN, "Test^Patient");
        ds.AddString(DicomTags.PatientID, DicomVR.LO, patientId);
        ds.AddString(DicomTags.StudyInstanceUID, DicomVR.UI, study);
        ds.AddString(DicomTags.SeriesInstanceUID, DicomVR.UI, series);
        ds.AddString(DicomTags.InstanceNumber, DicomVR.IS, number.ToString(System.Globalization.CultureInfo.InvariantCulture));
        ds.AddUInt16(DicomTags.SamplesPerPixel, 1);
        ds.AddString(DicomTags.PhotometricInterpretation, DicomVR.CS, "MONOCHROME2");
        ds.AddUInt16(DicomTags.Rows, (ushort)side);
        ds.AddUInt16(DicomTags.Columns, (ushort)(pixelBytes / 2 / Math.Max(side, 1)));
        ds.AddUInt16(DicomTags.BitsAllocated, 16);
        ds.AddUInt16(DicomTags.BitsStored, 16);
        ds.AddUInt16(DicomTags.HighBit, 15);
        ds.AddUInt16(DicomTags.PixelRepresentation, 0);
        ds.Add(new DicomElement(DicomTags.PixelData, DicomVR.OW, new MemoryByteBuffer(pixels)));
        return ds;
    }
}
