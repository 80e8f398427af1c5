using System.Text;
using AkkaVna.Dicom;
using AkkaVna.Dicom.Buffers;
using AkkaVna.Dicom.Dictionary;
using AkkaVna.Dicom.IO;
using AkkaVna.Core.Ingest;

namespace AkkaVna.Core.Model;

/// <summary>
/// The attributes of one instance that the index holds — what query/retrieve and lifecycle need at the patient, study,
/// series and instance levels. Everything else stays in the blob. Strings are decoded (Specific Character Set) and trimmed.
/// </summary>
public sealed record InstanceHeader
{
    // Patient
    public string PatientId { get; init; } = "";
    public string IssuerOfPatientId { get; init; } = "";
    public string? PatientName { get; init; }
    public string? PatientBirthDate { get; init; }
    public string? PatientSex { get; init; }
    // Study
    public required string StudyInstanceUid { get; init; }
    public string? StudyDate { get; init; }
    public string? StudyTime { get; init; }
    public string? AccessionNumber { get; init; }
    public string? StudyId { get; init; }
    public string? StudyDescription { get; init; }
    public string? ReferringPhysicianName { get; init; }
    /// <summary>The code values of Procedure Code Sequence (0008,1032), backslash-separated (what lifecycle rules match as ProcedureCode).</summary>
    public string? ProcedureCodes { get; init; }
    // Series
    public required string SeriesInstanceUid { get; init; }
    public string? Modality { get; init; }
    public int? SeriesNumber { get; init; }
    public string? SeriesDescription { get; init; }
    public string? BodyPartExamined { get; init; }
    public string? SeriesDate { get; init; }
    /// <summary>Institution Name (0008,0080), of the equipment that made the series.</summary>
    public string? InstitutionName { get; init; }
    // Instance
    public required string SopClassUid { get; init; }
    public required string SopInstanceUid { get; init; }
    public required string TransferSyntaxUid { get; init; }
    public int? InstanceNumber { get; init; }
    public int? NumberOfFrames { get; init; }
    public int? Rows { get; init; }
    public int? Columns { get; init; }

    /// <summary>The top-level attributes the index reads (and Specific Character Set, which decodes them).</summary>
    public static readonly IReadOnlySet<DicomTag> IndexedTags = new HashSet<DicomTag>
    {
        DicomTags.SpecificCharacterSet, DicomTags.PatientID, DicomTags.IssuerOfPatientID, DicomTags.PatientName, DicomTags.PatientBirthDate,
        DicomTags.PatientSex, DicomTags.StudyInstanceUID, DicomTags.StudyDate, DicomTags.StudyTime, DicomTags.AccessionNumber, DicomTags.StudyID,
        DicomTags.StudyDescription, DicomTags.ReferringPhysicianName, DicomTags.SeriesInstanceUID, DicomTags.Modality, DicomTags.SeriesNumber,
        DicomTags.SeriesDescription, DicomTags.BodyPartExamined, DicomTags.SeriesDate, DicomTags.SOPClassUID, DicomTags.SOPInstanceUID,
        DicomTags.InstanceNumber, DicomTags.NumberOfFrames, DicomTags.Rows, DicomTags.Columns, DicomTags.InstitutionName, DicomTags.ProcedureCodeSequence,
    };

    /// <summary>The last top-level tag read: everything the index needs precedes group 0029.</summary>
    private static bool PastIndexedAttributes(DicomTag tag) => tag.Group > 0x0028;

    /// <summary>
    /// Reads the indexed attributes from the start of a Part 10 file (it stops before group 0029, so pixel data is never
    /// read). Throws <see cref="InvalidInstanceException"/> when the instance cannot be archived.
    /// </summary>
    public static InstanceHeader Read(IRandomAccessSource source)
    {
        DicomFile file;
        try
        {
            file = DicomFile.Open(source, new DicomReadOptions { StopBefore = PastIndexedAttributes });
        }
        catch (DicomParseException e)
        {
            throw new InvalidInstanceException($"the data set cannot be parsed: {e.Message}");
        }
        using (file) return From(file.Dataset, file.TransferSyntax.Uid);
    }

    /// <summary>
    /// The indexed attributes of a data set (for one gathered by a <see cref="DatasetInspector"/> while it streamed, the
    /// elements of <see cref="IndexedTags"/>). Throws <see cref="InvalidInstanceException"/> when the instance cannot be archived.
    /// </summary>
    public static InstanceHeader From(DicomDataset ds, string transferSyntaxUid)
    {
        string Uid(DicomTag tag, string name)
        {
            var uid = ds.GetString(tag);
            if (string.IsNullOrEmpty(uid)) throw new InvalidInstanceException($"the data set has no {name}");
            if (!DicomUidRegistry.IsWellFormed(uid)) throw new InvalidInstanceException(NotAUid(name, uid));
            return uid;
        }
        return new InstanceHeader
        {
            PatientId = ds.GetString(DicomTags.PatientID) ?? "",
            IssuerOfPatientId = ds.GetString(DicomTags.IssuerOfPatientID) ?? "",
            PatientName = Text(ds, DicomTags.PatientName),
            PatientBirthDate = Text(ds, DicomTags.PatientBirthDate),
            PatientSex = Text(ds, DicomTags.PatientSex),
            StudyInstanceUid = Uid(DicomTags.StudyInstanceUID, "Study Instance UID"),
            StudyDate = Text(ds, DicomTags.StudyDate),
            StudyTime = Text(ds, DicomTags.StudyTime),
            AccessionNumber = Text(ds, DicomTags.AccessionNumber),
            StudyId = Text(ds, DicomTags.StudyID),
            StudyDescription = Text(ds, DicomTags.StudyDescription),
            ReferringPhysicianName = Text(ds, DicomTags.ReferringPhysicianName),
            SeriesInstanceUid = Uid(DicomTags.SeriesInstanceUID, "Series Instance UID"),
            Modality = Text(ds, DicomTags.Modality),
            SeriesNumber = ds.GetInt(DicomTags.SeriesNumber),
            SeriesDescription = Text(ds, DicomTags.SeriesDescription),
            BodyPartExamined = Text(ds, DicomTags.BodyPartExamined),
            SeriesDate = Text(ds, DicomTags.SeriesDate),
            InstitutionName = Text(ds, DicomTags.InstitutionName),
            ProcedureCodes = ds.GetSequence(DicomTags.ProcedureCodeSequence)?.Items.Select(i => Text(i, DicomTags.CodeValue)).OfType<string>().ToList()
                is { Count: > 0 } codes ? string.Join('\\', codes) : null,
            SopClassUid = Uid(DicomTags.SOPClassUID, "SOP Class UID"),
            SopInstanceUid = Uid(DicomTags.SOPInstanceUID, "SOP Instance UID"),
            TransferSyntaxUid = transferSyntaxUid,
            InstanceNumber = ds.GetInt(DicomTags.InstanceNumber),
            NumberOfFrames = ds.GetInt(DicomTags.NumberOfFrames),
            Rows = ds.GetInt(DicomTags.Rows),
            Columns = ds.GetInt(DicomTags.Columns),
        };
    }

    private static string? Text(DicomDataset ds, DicomTag tag)
    {
        try
        {
            return ds.GetString(tag) is { Length: > 0 } s ? s : null;
        }
        catch (Exception e) when (e is ArgumentException or FormatException or DecoderFallbackException)
        {
            return null; // an undecodable name is not a reason to refuse an instance; the blob keeps the bytes
        }
    }

    /// <summary>The reason given for a malformed UID (the value shown cut short and without control characters).</summary>
    internal static string NotAUid(string name, string uid) =>
        $"the {name} '{new string(uid.Take(80).Select(c => char.IsControl(c) ? '?' : c).ToArray())}' is not a valid UID (digits and dots, at most 64 characters)";
}

/// <summary>An instance the archive cannot take, with why (sent as the C-STORE Error Comment).</summary>
public sealed class InvalidInstanceException(string reason) : Exception(reason);
