using System.Globalization;
using AkkaVna.Dicom;
using AkkaVna.Dicom.Buffers;
using AkkaVna.Dicom.IO;
using AkkaVna.Testing;

namespace AkkaVna.Host.Tests.Serve;

/// <summary>
/// A generated set for query/retrieve tests with attributes chosen so that each matching type has a known answer:
/// three patients (AKKAQR1-3, one name in UTF-8), four studies A-D with dates and times around year ends and midnight,
/// six series, eleven instances (study C's one in implicit VR little endian, the others explicit). Studies and series are named by letter ("A", "A1") and mapped to their fresh UIDs.
/// </summary>
public sealed class QueryRetrieveSet
{
    public Dictionary<string, string> Uid { get; } = new(StringComparer.Ordinal);

    /// <summary>Instance files by series name.</summary>
    public Dictionary<string, List<string>> Files { get; } = new(StringComparer.Ordinal);

    public IEnumerable<string> AllFiles => Files.Values.SelectMany(f => f);

    /// <summary>The study or series name of a UID.</summary>
    public string NameOf(string uid) => Uid.FirstOrDefault(kv => kv.Value == uid).Key ?? uid;

    private sealed record Patient(string Id, string Name, string BirthDate, string Sex, bool Utf8 = false);

    public static QueryRetrieveSet Write(string folder)
    {
        var set = new QueryRetrieveSet();
        var p1 = new Patient("AKKAQR1", "Smith^John", "19700101", "M");
        var p2 = new Patient("AKKAQR2", "SMITH^JANE", "19801212", "F");
        var p3 = new Patient("AKKAQR3", "Müller^Jürgen", "19900505", "M", Utf8: true);
        // study, patient, date, time, accession, description; then series: name, modality, number, description, instances
        set.Study(folder, "A", p1, "20240115", "083000", "QRACC1", "CT CHEST", [("A1", "CT", 1, "AXIAL", 3), ("A2", "CT", 2, "CORONAL", 2)]);
        set.Study(folder, "B", p1, "20240310", "221500", "QRACC2", "MR BRAIN", [("B1", "MR", 1, "T1", 2), ("B2", "OT", 2, "KEY IMAGES", 1)]);
        set.Study(folder, "C", p2, "20231231", "235900", "QRACC3", "XR HAND", [("C1", "CR", 1, "PA", 1)]);
        set.Study(folder, "D", p3, "20250601", "120000", "QRACC4", "CT ABDOMEN", [("D1", "CT", 1, "VENOUS", 2)]);
        return set;
    }

    private void Study(string folder, string name, Patient patient, string date, string time, string accession, string description,
        (string Name, string Modality, int Number, string Description, int Count)[] series)
    {
        Uid[name] = Instances.NewUid();
        var random = new Random(name.GetHashCode(StringComparison.Ordinal));
        foreach (var s in series)
        {
            Uid[s.Name] = Instances.NewUid();
            var files = Files[s.Name] = [];
            for (int i = 1; i <= s.Count; i++)
            {
                var ds = new DicomDataset();
                if (patient.Utf8) ds.AddString(DicomTags.SpecificCharacterSet, DicomVR.CS, "ISO_IR 192");
                string sopClass = s.Modality switch { "MR" => DicomUids.MRImageStorage, "CR" => DicomUids.ComputedRadiographyImageStorage, "OT" => DicomUids.SecondaryCaptureImageStorage, _ => DicomUids.CTImageStorage };
                string sop = Instances.NewUid();
                Uid[$"{s.Name}-{i}"] = sop;
                ds.AddString(DicomTags.SOPClassUID, DicomVR.UI, sopClass);
                ds.AddString(DicomTags.SOPInstanceUID, DicomVR.UI, sop);
                ds.AddString(DicomTags.StudyDate, DicomVR.DA, date);
                ds.AddString(DicomTags.SeriesDate, DicomVR.DA, date);
                ds.AddString(DicomTags.StudyTime, DicomVR.TM, time);
                ds.AddString(DicomTags.AccessionNumber, DicomVR.SH, accession);
                ds.AddString(DicomTags.Modality, DicomVR.CS, s.Modality);
                ds.AddString(DicomTags.Manufacturer, DicomVR.LO, "AkkaQR");
                ds.AddString(DicomTags.ReferringPhysicianName, DicomVR.PN, "Who^Doctor");
                ds.AddString(DicomTags.StudyDescription, DicomVR.LO, description);
                ds.AddString(DicomTags.SeriesDescription, DicomVR.LO, s.Description);
                ds.AddString(DicomTags.PatientName, DicomVR.PN, patient.Name);
                ds.AddString(DicomTags.PatientID, DicomVR.LO, patient.Id);
                ds.AddString(DicomTags.PatientBirthDate, DicomVR.DA, patient.BirthDate);
                ds.AddString(DicomTags.PatientSex, DicomVR.CS, patient.Sex);
                ds.AddString(DicomTags.StudyInstanceUID, DicomVR.UI, Uid[name]);
                ds.AddString(DicomTags.SeriesInstanceUID, DicomVR.UI, Uid[s.Name]);
                ds.AddString(DicomTags.StudyID, DicomVR.SH, name);
                ds.AddString(DicomTags.SeriesNumber, DicomVR.IS, s.Number.ToString(CultureInfo.InvariantCulture));
                ds.AddString(DicomTags.InstanceNumber, DicomVR.IS, i.ToString(CultureInfo.InvariantCulture));
                ds.AddUInt16(DicomTags.SamplesPerPixel, 1);
                ds.AddString(DicomTags.PhotometricInterpretation, DicomVR.CS, "MONOCHROME2");
                ds.AddUInt16(DicomTags.Rows, 64);
                ds.AddUInt16(DicomTags.Columns, 64);
                ds.AddUInt16(DicomTags.BitsAllocated, 16);
                ds.AddUInt16(DicomTags.BitsStored, 12);
                ds.AddUInt16(DicomTags.HighBit, 11);
                ds.AddUInt16(DicomTags.PixelRepresentation, 0);
                var pixels = new byte[64 * 64 * 2];
                random.NextBytes(pixels);
                ds.Add(new DicomElement(DicomTags.PixelData, DicomVR.OW, new MemoryByteBuffer(pixels)));
                string path = Path.Combine(folder, $"{s.Name}-{i}.dcm");
                Directory.CreateDirectory(folder);
                DicomWriter.WriteFile(path, ds, name == "C" ? DicomTransferSyntax.ImplicitVRLittleEndian : DicomTransferSyntax.ExplicitVRLittleEndian);
                files.Add(path);
            }
        }
    }
}
