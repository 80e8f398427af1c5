using System.Data.Common;
using AkkaVna.Core.Model;

namespace AkkaVna.Core.Ports;

/// <summary>
/// The row shapes every SQL index adapter reads back, in one place: the columns each query selects (in this order) and
/// how a row becomes a record. The query-first tables have the same columns on every database; only the SQL dialect
/// around them differs.
/// </summary>
public static class IndexRows
{
    public const string StudyColumns = """
        study_uid, patient_id, issuer_of_patient_id, patient_name, study_date, accession_number, modalities, series_count, instance_count,
        size_bytes, stable, stable_due, stable_at, journal_seq, patient_birth_date, patient_sex, study_time, study_id, study_description, referring_physician,
        procedure_codes
        """;

    public const string SeriesColumns = "study_uid, series_uid, modality, series_number, instance_count, series_description, body_part, series_date, institution_name";

    /// <summary>The columns added for lifecycle rules (appended, so inserts by position stay valid), the same on every database.</summary>
    public const string ProcedureAndInstitutionColumns = """
        ALTER TABLE studies ADD COLUMN procedure_codes TEXT;
        ALTER TABLE series ADD COLUMN institution_name TEXT;
        """;

    public const string InstanceColumns =
        "study_uid, series_uid, sop_uid, sop_class_uid, transfer_syntax_uid, instance_number, blob_key, size_bytes, sha256, received_at, number_of_frames, rows, columns, "
        + "blob_store, blob_representation, blob_tier, calling_ae";

    public const string KeptBlobColumns = "study_uid, sop_uid, blob_store, blob_key, blob_representation, blob_tier, size_bytes, sha256, transfer_syntax_uid";

    /// <summary>The kept-blob table, the same on every database (a study's partition, clustered by SOP Instance UID).</summary>
    public const string KeptBlobTable = """
        CREATE TABLE IF NOT EXISTS kept_blobs (
            study_uid TEXT NOT NULL, sop_uid TEXT NOT NULL,
            blob_store TEXT NOT NULL, blob_key TEXT NOT NULL, blob_representation TEXT NOT NULL, blob_tier TEXT NOT NULL,
            size_bytes BIGINT NOT NULL, sha256 TEXT NOT NULL, transfer_syntax_uid TEXT NOT NULL,
            PRIMARY KEY (study_uid, sop_uid, blob_key)
        )
        """;

    /// <summary>
    /// What removes one study (@study) from every index table, the same on every database; the patient and date partitions
    /// first, found through the study row.
    /// </summary>
    public static readonly string[] DeleteStudyStatements =
    [
        "DELETE FROM patient_studies WHERE study_uid = @study AND patient_id IN (SELECT patient_id FROM studies WHERE study_uid = @study)",
        "DELETE FROM date_studies WHERE study_uid = @study AND date_bucket IN (SELECT date_bucket FROM studies WHERE study_uid = @study)",
        "DELETE FROM instance_locations WHERE study_uid = @study AND sop_uid IN (SELECT sop_uid FROM instances WHERE study_uid = @study)",
        "DELETE FROM instances WHERE study_uid = @study",
        "DELETE FROM series WHERE study_uid = @study",
        "DELETE FROM kept_blobs WHERE study_uid = @study",
        "DELETE FROM stability_timers WHERE study_uid = @study",
        "DELETE FROM compression_timers WHERE study_uid = @study",
        "DELETE FROM studies WHERE study_uid = @study",
    ];

    /// <summary>A row of <see cref="KeptBlobColumns"/>.</summary>
    public static KeptBlob ReadKeptBlob(DbDataReader r) =>
        new(r.GetString(0), r.GetString(1), new BlobRef(r.GetString(2), r.GetString(3), r.GetString(4), r.GetString(5)), r.GetInt64(6), r.GetString(7), r.GetString(8));

    /// <summary>A row of <see cref="StudyColumns"/>.</summary>
    public static StudyRecord ReadStudy(DbDataReader r) =>
        new(r.GetString(0), r.GetString(1), r.GetString(2), Str(r, 3), Str(r, 4), Str(r, 5), r.GetString(6), r.GetInt32(7), r.GetInt32(8),
            r.GetInt64(9), Bool(r, 10), Time(r, 11), Time(r, 12), r.GetInt64(13))
        {
            PatientBirthDate = Str(r, 14), PatientSex = Str(r, 15), StudyTime = Str(r, 16), StudyId = Str(r, 17), StudyDescription = Str(r, 18),
            ReferringPhysicianName = Str(r, 19), ProcedureCodes = Str(r, 20),
        };

    /// <summary>A row of <see cref="SeriesColumns"/>.</summary>
    public static SeriesRecord ReadSeries(DbDataReader r) =>
        new(r.GetString(0), r.GetString(1), Str(r, 2), Int(r, 3), r.GetInt32(4))
        {
            SeriesDescription = Str(r, 5), BodyPartExamined = Str(r, 6), SeriesDate = Str(r, 7), InstitutionName = Str(r, 8),
        };

    /// <summary>A row of <see cref="InstanceColumns"/>.</summary>
    public static IndexedInstance ReadInstance(DbDataReader r) =>
        new(r.GetString(0), r.GetString(1), r.GetString(2), r.GetString(3), r.GetString(4), Int(r, 5),
            new BlobRef(r.GetString(13), r.GetString(6), r.GetString(14), r.GetString(15)), r.GetInt64(7), r.GetString(8),
            DateTimeOffset.FromUnixTimeMilliseconds(r.GetInt64(9)))
        {
            NumberOfFrames = Int(r, 10), Rows = Int(r, 11), Columns = Int(r, 12), CallingAE = Str(r, 16),
        };

    /// <summary>Milliseconds since the epoch, or null.</summary>
    public static DateTimeOffset? Time(DbDataReader r, int i) => r.IsDBNull(i) ? null : DateTimeOffset.FromUnixTimeMilliseconds(r.GetInt64(i));

    public static string? Str(DbDataReader r, int i) => r.IsDBNull(i) ? null : r.GetString(i);

    public static int? Int(DbDataReader r, int i) => r.IsDBNull(i) ? null : r.GetInt32(i);

    /// <summary>A boolean column (a boolean where the database has one, 0 or 1 where it does not).</summary>
    private static bool Bool(DbDataReader r, int i) => r.GetValue(i) is bool b ? b : Convert.ToInt64(r.GetValue(i), System.Globalization.CultureInfo.InvariantCulture) != 0;
}
