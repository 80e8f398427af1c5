using AkkaVna.Core.Ingest;
using AkkaVna.Core.Model;
using AkkaVna.Core.Ports;
using AkkaVna.Core.Studies;

namespace AkkaVna.Testing;

public static class Samples
{
    public const string Study = "1.2.3.4";

    public static InstanceHeader Header(string sop, string series = "1.2.3.4.1", string study = Study, string patientId = "P1", string? studyDate = "20260115", string modality = "CT") => new()
    {
        PatientId = patientId, IssuerOfPatientId = "HOSP-A", PatientName = "Doe^Jane", StudyInstanceUid = study, StudyDate = studyDate,
        SeriesInstanceUid = series, Modality = modality, SeriesNumber = 1, SopClassUid = "1.2.840.10008.5.1.4.1.1.2", SopInstanceUid = sop,
        TransferSyntaxUid = "1.2.840.10008.1.2.1", InstanceNumber = 3, Rows = 512, Columns = 512,
    };

    public static StoredInstance Instance(string sop, string sha = "aa", string series = "1.2.3.4.1", DateTimeOffset? at = null, string study = Study,
        string patientId = "P1", string? studyDate = "20260115") =>
        new(Header(sop, series, study, patientId, studyDate), new BlobRef(BlobRef.PrimaryStore, $"abc/{study}/{series}/{sop}.dcm"), 1000, sha + new string('0', 62), at ?? new DateTimeOffset(2026, 11, 22, 10, 0, 0, TimeSpan.Zero), "GATEWAY1");
}
