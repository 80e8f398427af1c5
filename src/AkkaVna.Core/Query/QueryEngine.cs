using AkkaVna.Core.Blobs;
using System.Globalization;
using System.Runtime.CompilerServices;
using AkkaVna.Dicom;
using AkkaVna.Dicom.Dictionary;
using AkkaVna.Dicom.IO;
using AkkaVna.Core.Model;
using AkkaVna.Core.Ports;

namespace AkkaVna.Core.Query;

public enum QueryLevel { Patient, Study, Series, Image }

/// <summary>Patient Root (and the retired Patient/Study Only) or Study Root: which levels a query may ask for.</summary>
public enum InformationModel { PatientRoot, StudyRoot }

/// <param name="MaxMatches">A query that matches more stops there with a failure status (narrow the query).</param>
/// <param name="CaseInsensitivePersonNames">PN keys match regardless of case ("doe^john" finds "DOE^JOHN").</param>
/// <param name="RetrieveAETitle">Returned as Retrieve AE Title (0008,0054) when asked for.</param>
public sealed record QuerySettings(int MaxMatches, bool CaseInsensitivePersonNames, string RetrieveAETitle);

/// <summary>One match: the response identifier, and whether keys of the query were ignored (FF01H).</summary>
public readonly record struct QueryMatch(DicomDataset Identifier, bool OptionalKeysNotSupported);

/// <summary>More matches than the configured maximum.</summary>
public sealed class TooManyMatchesException(int max) : Exception($"more than {max} matches: narrow the query")
{
    public int Max { get; } = max;
}

/// <summary>
/// Answers queries (C-FIND, QIDO-RS) from the index alone, never waking a study actor. Candidates come from the
/// narrowest partition the keys allow — the study UIDs, the patient's studies, the months of a Study Date range, the
/// instance-location table for SOP Instance UIDs — and a full scan of the studies only when no key narrows it. The keys
/// are then matched in memory (so a wide-column adapter needs no secondary indexes). Image-level keys the index does
/// not hold are read from the instance's header in the blob (never its pixel data).
/// </summary>
public sealed class QueryEngine(IArchiveIndex index, IBlobStore blobs, QuerySettings settings)
{
    public QuerySettings Settings => settings;

    /// <summary>
    /// The matches of <paramref name="identifier"/>, streamed. Throws <see cref="QueryException"/> for an identifier that
    /// cannot be performed (no or a wrong level, malformed values) and <see cref="TooManyMatchesException"/>.
    /// </summary>
    /// <param name="caseInsensitiveNames">Overrides the configured PN matching for this query (QIDO-RS fuzzymatching).</param>
    public async IAsyncEnumerable<QueryMatch> FindAsync(InformationModel model, DicomDataset identifier, [EnumeratorCancellation] CancellationToken cancellationToken,
        bool? caseInsensitiveNames = null)
    {
        var query = ParsedQuery.Parse(model, identifier, caseInsensitiveNames ?? settings.CaseInsensitivePersonNames);
        int count = 0;
        var matches = query.Level switch
        {
            QueryLevel.Patient => PatientsAsync(query, cancellationToken),
            QueryLevel.Study => StudiesAsync(query, cancellationToken),
            QueryLevel.Series => SeriesAsync(query, cancellationToken),
            _ => ImagesAsync(query, cancellationToken),
        };
        await foreach (var match in matches.WithCancellation(cancellationToken))
        {
            if (++count > settings.MaxMatches) throw new TooManyMatchesException(settings.MaxMatches);
            yield return match;
        }
    }

    // ------------------------------------------------------------------ levels

    private async IAsyncEnumerable<QueryMatch> PatientsAsync(ParsedQuery q, [EnumeratorCancellation] CancellationToken ct)
    {
        await foreach (var p in CandidatePatientsAsync(q, ct))
        {
            string? Resolve(DicomTag t) => Attributes.Patient(p, t) ?? Attributes.Common(t, settings);
            if (q.Matches(QueryLevel.Patient, Resolve)) yield return q.Respond("PATIENT", Resolve);
        }
    }

    /// <summary>
    /// The patients of a Patient ID's partition, or every patient streamed from <c>patient_studies</c> in key order (one
    /// patient's studies at a time, never the whole archive in memory).
    /// </summary>
    private async IAsyncEnumerable<PatientRow> CandidatePatientsAsync(ParsedQuery q, [EnumeratorCancellation] CancellationToken ct)
    {
        var rows = q.SingleValue(DicomTags.PatientID) is { } patientId
            ? PatientPartitionAsync(patientId, q.SingleValue(DicomTags.IssuerOfPatientID), ct)
            : index.ScanPatientStudiesAsync(ct);
        PatientRow? current = null;
        await foreach (var (id, issuer, uid) in rows.WithCancellation(ct))
        {
            if (current is not null && (current.PatientId != id || current.Issuer != issuer))
            {
                yield return current;
                current = null;
            }
            if (await index.GetStudyAsync(uid, ct) is not { } study) continue; // removed while we read
            current = current is null ? PatientRow.From(study) : current.With(study);
        }
        if (current is not null) yield return current;
    }

    /// <summary>The studies of one Patient ID, ordered by issuer (each issuer is another patient).</summary>
    private async IAsyncEnumerable<(string PatientId, string IssuerOfPatientId, string StudyInstanceUid)> PatientPartitionAsync(string patientId, string? issuer,
        [EnumeratorCancellation] CancellationToken ct)
    {
        var studies = new List<StudyRecord>();
        foreach (var uid in await index.StudiesOfPatientAsync(patientId, issuer, ct))
            if (await index.GetStudyAsync(uid, ct) is { } study) studies.Add(study);
        foreach (var s in studies.OrderBy(s => s.IssuerOfPatientId, StringComparer.Ordinal)) yield return (s.PatientId, s.IssuerOfPatientId, s.StudyInstanceUid);
    }

    private async IAsyncEnumerable<QueryMatch> StudiesAsync(ParsedQuery q, [EnumeratorCancellation] CancellationToken ct)
    {
        await foreach (var study in MatchingStudiesAsync(q, ct))
        {
            string? Resolve(DicomTag t) => Attributes.Study(study, t) ?? Attributes.Common(t, settings);
            yield return q.Respond("STUDY", Resolve);
        }
    }

    private async IAsyncEnumerable<QueryMatch> SeriesAsync(ParsedQuery q, [EnumeratorCancellation] CancellationToken ct)
    {
        await foreach (var study in MatchingStudiesAsync(q, ct))
            foreach (var series in await index.GetSeriesAsync(study.StudyInstanceUid, ct))
            {
                string? Resolve(DicomTag t) => Attributes.Series(series, t) ?? Attributes.Study(study, t) ?? Attributes.Common(t, settings);
                if (q.Matches(QueryLevel.Series, Resolve)) yield return q.Respond("SERIES", Resolve);
            }
    }

    private async IAsyncEnumerable<QueryMatch> ImagesAsync(ParsedQuery q, [EnumeratorCancellation] CancellationToken ct)
    {
        var sopUids = q.UidList(DicomTags.SOPInstanceUID);
        IAsyncEnumerable<(StudyRecord, IndexedInstance)> candidates = sopUids is not null && q.UidList(DicomTags.StudyInstanceUID) is null
            ? InstancesByLocationAsync(sopUids, ct)
            : InstancesOfMatchingStudiesAsync(q, ct);
        var seriesCache = new Dictionary<string, IReadOnlyList<SeriesRecord>>(StringComparer.Ordinal);
        await foreach (var (study, instance) in candidates.WithCancellation(ct))
        {
            if (!seriesCache.TryGetValue(study.StudyInstanceUid, out var seriesList))
                seriesCache[study.StudyInstanceUid] = seriesList = await index.GetSeriesAsync(study.StudyInstanceUid, ct);
            var series = seriesList.FirstOrDefault(s => s.SeriesInstanceUid == instance.SeriesInstanceUid);
            if (series is null) continue; // removed while we read
            string? Indexed(DicomTag t) =>
                Attributes.Image(instance, t) ?? Attributes.Series(series, t) ?? Attributes.Study(study, t) ?? Attributes.Common(t, settings);
            // Patient and study keys again: instances found by SOP Instance UID did not go through the study match.
            if (!q.Matches(QueryLevel.Patient, Indexed) || !q.Matches(QueryLevel.Study, Indexed) || !q.MatchesStudyDateTime(study) || !q.Matches(QueryLevel.Series, Indexed)) continue;
            if (!q.NeedsInstanceHeader)
            {
                if (q.Matches(QueryLevel.Image, Indexed)) yield return q.Respond("IMAGE", Indexed);
                continue;
            }
            // Keys the index does not hold come from the instance's header in its blob (never its pixel data), which
            // stays open until the response is built from it.
            QueryMatch? response;
            await using (var content = await OpenQuietlyAsync(instance, ct))
            {
                var header = content is null ? null : ReadHeader(content);
                string? Resolve(DicomTag t) => Indexed(t) ?? (header is null ? null : Attributes.FromDataset(header, t));
                response = q.Matches(QueryLevel.Image, Resolve) ? q.Respond("IMAGE", Resolve) : null;
            }
            if (response is { } match) yield return match;
        }
    }

    private async IAsyncEnumerable<(StudyRecord, IndexedInstance)> InstancesByLocationAsync(IReadOnlyCollection<string> sopUids, [EnumeratorCancellation] CancellationToken ct)
    {
        var studies = new Dictionary<string, StudyRecord?>(StringComparer.Ordinal);
        foreach (var uid in sopUids)
        {
            if (await index.FindInstanceAsync(uid, ct) is not { } instance) continue;
            if (!studies.TryGetValue(instance.StudyInstanceUid, out var study))
                studies[instance.StudyInstanceUid] = study = await index.GetStudyAsync(instance.StudyInstanceUid, ct);
            if (study is not null) yield return (study, instance);
        }
    }

    private async IAsyncEnumerable<(StudyRecord, IndexedInstance)> InstancesOfMatchingStudiesAsync(ParsedQuery q, [EnumeratorCancellation] CancellationToken ct)
    {
        var seriesUids = q.UidList(DicomTags.SeriesInstanceUID);
        await foreach (var study in MatchingStudiesAsync(q, ct))
            await foreach (var instance in index.ListInstancesAsync(study.StudyInstanceUid, ct))
                if (seriesUids is null || seriesUids.Contains(instance.SeriesInstanceUid)) yield return (study, instance);
    }

    private async ValueTask<IBlobContent?> OpenQuietlyAsync(IndexedInstance instance, CancellationToken ct)
    {
        try
        {
            return await InstanceBlobs.OpenAsync(blobs, index, instance.SopInstanceUid, instance.Blob, ct);
        }
        catch (Exception e) when (e is BlobNotFoundException or IOException or UnauthorizedAccessException)
        {
            return null; // a missing blob: `verify` reports it; the query answers from the index
        }
    }

    private static DicomDataset? ReadHeader(IBlobContent content)
    {
        try
        {
            using var file = DicomFile.Open(content, new DicomReadOptions { StopBefore = t => t.Group >= 0x7FE0, LargeValueThreshold = 64 * 1024 });
            return file.Dataset;
        }
        catch (Exception e) when (e is IOException or DicomParseException or UnauthorizedAccessException)
        {
            return null; // an unreadable blob: `verify` reports it; the query answers from the index
        }
    }

    // ------------------------------------------------------------------ candidates

    /// <summary>The studies whose study- and patient-level keys match, from the narrowest partition available.</summary>
    private async IAsyncEnumerable<StudyRecord> MatchingStudiesAsync(ParsedQuery q, [EnumeratorCancellation] CancellationToken ct)
    {
        await foreach (var study in CandidateStudiesAsync(q, ct))
        {
            string? Resolve(DicomTag t) => Attributes.Study(study, t);
            if (q.Matches(QueryLevel.Patient, Resolve) && q.Matches(QueryLevel.Study, Resolve) && q.MatchesStudyDateTime(study)) yield return study;
        }
    }

    private async IAsyncEnumerable<StudyRecord> CandidateStudiesAsync(ParsedQuery q, [EnumeratorCancellation] CancellationToken ct)
    {
        IEnumerable<string>? uids = q.UidList(DicomTags.StudyInstanceUID);
        if (uids is null && q.SingleValue(DicomTags.PatientID) is { } patientId)
            uids = await index.StudiesOfPatientAsync(patientId, q.SingleValue(DicomTags.IssuerOfPatientID), ct);
        if (uids is null && q.StudyDateMonths() is { } months)
        {
            // A study sits in exactly one month: the months are read one after another, never gathered.
            foreach (var month in months)
                foreach (var uid in await index.StudiesInMonthAsync(month, ct))
                    if (await index.GetStudyAsync(uid, ct) is { } study) yield return study;
            yield break;
        }
        if (uids is null)
        {
            await foreach (var study in index.ScanStudiesAsync(ct)) yield return study;
            yield break;
        }
        foreach (var uid in uids.Distinct(StringComparer.Ordinal))
            if (await index.GetStudyAsync(uid, ct) is { } study) yield return study;
    }
}

/// <summary>A patient as the studies of its (Patient ID, Issuer of Patient ID) describe it.</summary>
internal sealed record PatientRow(string PatientId, string Issuer, string? Name, string? BirthDate, string? Sex, int Studies, int Series, int Instances)
{
    public static PatientRow From(StudyRecord s) => new(s.PatientId, s.IssuerOfPatientId, s.PatientName, s.PatientBirthDate, s.PatientSex, 1, s.SeriesCount, s.InstanceCount);

    public PatientRow With(StudyRecord s) => this with
    {
        Name = Name ?? s.PatientName, BirthDate = BirthDate ?? s.PatientBirthDate, Sex = Sex ?? s.PatientSex,
        Studies = Studies + 1, Series = Series + s.SeriesCount, Instances = Instances + s.InstanceCount,
    };
}

/// <summary>The keys of a C-FIND identifier (or a QIDO-RS query turned into one), with their matchers.</summary>
internal sealed class ParsedQuery
{
    private readonly List<(DicomTag Tag, DicomVR VR, QueryLevel? Level, ValueMatcher? Matcher)> _keys = [];
    private readonly DicomDataset _identifier;
    private TemporalMatcher? _combinedDate, _combinedTime;

    private ParsedQuery(QueryLevel level, DicomDataset identifier)
    {
        Level = level;
        _identifier = identifier;
    }

    public QueryLevel Level { get; }

    /// <summary>Keys the index cannot answer at this level (matched as universal, returned empty): FF01H.</summary>
    public bool HasUnsupportedKeys { get; private set; }

    /// <summary>An image-level key the index does not hold: the instance header is read from the blob.</summary>
    public bool NeedsInstanceHeader { get; private set; }

    public static ParsedQuery Parse(InformationModel model, DicomDataset identifier, bool caseInsensitiveNames)
    {
        string levelText = identifier.GetString(DicomTags.QueryRetrieveLevel)?.Trim().ToUpperInvariant() ?? "";
        var level = levelText switch
        {
            "PATIENT" when model == InformationModel.PatientRoot => QueryLevel.Patient,
            "PATIENT" => throw new QueryException("the Study Root model has no PATIENT level"),
            "STUDY" => QueryLevel.Study,
            "SERIES" => QueryLevel.Series,
            "IMAGE" => QueryLevel.Image,
            "" => throw new QueryException("the identifier has no Query/Retrieve Level (0008,0052)"),
            _ => throw new QueryException($"'{levelText}' is not a Query/Retrieve Level (PATIENT, STUDY, SERIES or IMAGE)"),
        };
        var q = new ParsedQuery(level, identifier);
        foreach (var item in identifier)
        {
            var tag = item.Tag;
            if (tag == DicomTags.QueryRetrieveLevel || tag == DicomTags.SpecificCharacterSet || tag.Group == 0x0002 || tag.IsGroupLength) continue;
            var keyLevel = Attributes.LevelOf(tag);
            ValueMatcher? matcher = null;
            if (item is DicomElement e && e.Length > 0)
            {
                string value = item.VR is DicomVR.US or DicomVR.SS or DicomVR.UL or DicomVR.SL
                    ? identifier.GetInt(tag)?.ToString(CultureInfo.InvariantCulture) ?? ""
                    : identifier.GetString(tag) ?? "";
                matcher = ValueMatcher.For(item.VR, value, caseInsensitiveNames);
            }
            else if (item is DicomSequence { Items.Count: > 0 } sq && sq.Items.Any(i => i.Count > 0))
            {
                q.HasUnsupportedKeys = true; // sequence matching is not supported: the key is returned, not matched
            }
            bool indexed = keyLevel is not null || Attributes.IsCommon(tag);
            if (!indexed)
            {
                if (level == QueryLevel.Image) q.NeedsInstanceHeader = true;
                else if (matcher is not null) q.HasUnsupportedKeys = true;
            }
            if (keyLevel is { } kl && kl > level) matcher = null; // a key below the query level is returned empty, never matched
            q._keys.Add((tag, item.VR, indexed ? keyLevel : level == QueryLevel.Image ? QueryLevel.Image : null, matcher));
        }
        if (q.Matcher(DicomTags.StudyDate) is TemporalMatcher { IsRange: true } d && q.Matcher(DicomTags.StudyTime) is TemporalMatcher { IsRange: true } t)
        {
            q._combinedDate = d;
            q._combinedTime = t;
        }
        return q;
    }

    private ValueMatcher? Matcher(DicomTag tag) => _keys.FirstOrDefault(k => k.Tag == tag).Matcher;

    /// <summary>The UIDs of a list (or single) UID key; null when the key is absent or universal.</summary>
    public IReadOnlyCollection<string>? UidList(DicomTag tag)
    {
        if (Matcher(tag) is null) return null;
        var values = _identifier.GetString(tag)?.Split('\\').Select(v => v.Trim()).Where(v => v.Length > 0).ToHashSet(StringComparer.Ordinal);
        return values is { Count: > 0 } ? values : null;
    }

    /// <summary>The value of a key given as one literal value (no wildcard, no list), else null.</summary>
    public string? SingleValue(DicomTag tag)
    {
        if (Matcher(tag) is null) return null;
        var v = _identifier.GetString(tag)?.Trim();
        return string.IsNullOrEmpty(v) || v.IndexOfAny(['*', '?', '\\']) >= 0 ? null : v;
    }

    /// <summary>The months of a bounded Study Date key (at most ten years of them), for the date partition.</summary>
    public IReadOnlyList<string>? StudyDateMonths()
    {
        if (Matcher(DicomTags.StudyDate) is not TemporalMatcher { Lower: { } lo, Upper: { } hi }) return null;
        if (!DateTime.TryParseExact(lo[..8], "yyyyMMdd", CultureInfo.InvariantCulture, DateTimeStyles.None, out var from)) return null;
        if (!DateTime.TryParseExact(hi[..8], "yyyyMMdd", CultureInfo.InvariantCulture, DateTimeStyles.None, out var to)) return null;
        var months = new List<string>();
        for (var m = new DateTime(from.Year, from.Month, 1); m <= to && months.Count <= 120; m = m.AddMonths(1))
            months.Add(m.ToString("yyyyMM", CultureInfo.InvariantCulture));
        return months.Count is > 0 and <= 120 ? months : null;
    }

    /// <summary>Whether every key of <paramref name="level"/> matches the record <paramref name="resolve"/> describes.</summary>
    public bool Matches(QueryLevel level, Func<DicomTag, string?> resolve)
    {
        foreach (var (tag, _, keyLevel, matcher) in _keys)
        {
            if (matcher is null || keyLevel != level) continue;
            if (_combinedDate is not null && (tag == DicomTags.StudyDate || tag == DicomTags.StudyTime)) continue;
            if (!matcher.Matches(resolve(tag))) return false;
        }
        return true;
    }

    public bool MatchesStudyDateTime(StudyRecord study) =>
        _combinedDate is null || TemporalMatcher.MatchesCombined(_combinedDate, _combinedTime!, study.StudyDate, study.StudyTime);

    /// <summary>The response identifier: exactly the requested keys (with their values, or empty), and the level.</summary>
    public QueryMatch Respond(string level, Func<DicomTag, string?> resolve)
    {
        var values = new List<(DicomTag Tag, DicomVR VR, string? Value)>(_keys.Count);
        bool nonAscii = false;
        foreach (var (tag, vr, _, _) in _keys)
        {
            string? value = vr == DicomVR.SQ ? null : resolve(tag);
            nonAscii |= value is not null && value.Any(c => c > 0x7F);
            values.Add((tag, vr, value));
        }
        var ds = new DicomDataset();
        if (nonAscii) ds.AddString(DicomTags.SpecificCharacterSet, DicomVR.CS, "ISO_IR 192");
        else if (_identifier.GetString(DicomTags.SpecificCharacterSet) is { Length: > 0 } cs) ds.AddString(DicomTags.SpecificCharacterSet, DicomVR.CS, cs);
        ds.AddString(DicomTags.QueryRetrieveLevel, DicomVR.CS, level);
        foreach (var (tag, vr, value) in values)
        {
            if (vr == DicomVR.SQ) ds.Add(new DicomSequence(tag));
            else if (value is null) ds.AddBytes(tag, vr, new Dicom.Buffers.MemoryByteBuffer(ReadOnlyMemory<byte>.Empty));
            else if (vr is DicomVR.US && ushort.TryParse(value, CultureInfo.InvariantCulture, out var us)) ds.AddUInt16(tag, us);
            else if (vr is DicomVR.US or DicomVR.SS or DicomVR.UL or DicomVR.SL or DicomVR.FL or DicomVR.FD or DicomVR.AT or DicomVR.OB or DicomVR.OW or DicomVR.UN)
                ds.AddBytes(tag, vr, new Dicom.Buffers.MemoryByteBuffer(ReadOnlyMemory<byte>.Empty));
            else ds.AddString(tag, vr, value);
        }
        return new QueryMatch(ds, HasUnsupportedKeys);
    }
}

/// <summary>Which attributes the index answers at each level, and their values in a record.</summary>
internal static class Attributes
{
    private static readonly HashSet<DicomTag> PatientTags =
    [
        DicomTags.PatientName, DicomTags.PatientID, DicomTags.IssuerOfPatientID, DicomTags.PatientBirthDate, DicomTags.PatientSex,
        DicomTags.NumberOfPatientRelatedStudies, DicomTags.NumberOfPatientRelatedSeries, DicomTags.NumberOfPatientRelatedInstances,
    ];

    private static readonly HashSet<DicomTag> StudyTags =
    [
        DicomTags.StudyInstanceUID, DicomTags.StudyDate, DicomTags.StudyTime, DicomTags.AccessionNumber, DicomTags.StudyID, DicomTags.StudyDescription,
        DicomTags.ReferringPhysicianName, DicomTags.ModalitiesInStudy, DicomTags.NumberOfStudyRelatedSeries, DicomTags.NumberOfStudyRelatedInstances,
    ];

    private static readonly HashSet<DicomTag> SeriesTags =
    [
        DicomTags.SeriesInstanceUID, DicomTags.Modality, DicomTags.SeriesNumber, DicomTags.SeriesDescription, DicomTags.BodyPartExamined,
        DicomTags.SeriesDate, DicomTags.NumberOfSeriesRelatedInstances,
    ];

    private static readonly HashSet<DicomTag> ImageTags =
    [
        DicomTags.SOPInstanceUID, DicomTags.SOPClassUID, DicomTags.InstanceNumber, DicomTags.NumberOfFrames, DicomTags.Rows, DicomTags.Columns,
        DicomTags.AvailableTransferSyntaxUID,
    ];

    public static QueryLevel? LevelOf(DicomTag tag) =>
        PatientTags.Contains(tag) ? QueryLevel.Patient
        : StudyTags.Contains(tag) ? QueryLevel.Study
        : SeriesTags.Contains(tag) ? QueryLevel.Series
        : ImageTags.Contains(tag) ? QueryLevel.Image
        : null;

    public static bool IsCommon(DicomTag tag) => tag == DicomTags.RetrieveAETitle || tag == DicomTags.InstanceAvailability;

    public static string? Common(DicomTag tag, QuerySettings settings) =>
        tag == DicomTags.RetrieveAETitle ? settings.RetrieveAETitle : tag == DicomTags.InstanceAvailability ? "ONLINE" : null;

    private static string? Number(int? n) => n?.ToString(CultureInfo.InvariantCulture);

    public static string? Patient(PatientRow p, DicomTag t) =>
        t == DicomTags.PatientID ? p.PatientId
        : t == DicomTags.IssuerOfPatientID ? p.Issuer
        : t == DicomTags.PatientName ? p.Name
        : t == DicomTags.PatientBirthDate ? p.BirthDate
        : t == DicomTags.PatientSex ? p.Sex
        : t == DicomTags.NumberOfPatientRelatedStudies ? Number(p.Studies)
        : t == DicomTags.NumberOfPatientRelatedSeries ? Number(p.Series)
        : t == DicomTags.NumberOfPatientRelatedInstances ? Number(p.Instances)
        : null;

    public static string? Study(StudyRecord s, DicomTag t) =>
        t == DicomTags.PatientID ? s.PatientId
        : t == DicomTags.IssuerOfPatientID ? s.IssuerOfPatientId
        : t == DicomTags.PatientName ? s.PatientName
        : t == DicomTags.PatientBirthDate ? s.PatientBirthDate
        : t == DicomTags.PatientSex ? s.PatientSex
        : t == DicomTags.StudyInstanceUID ? s.StudyInstanceUid
        : t == DicomTags.StudyDate ? s.StudyDate
        : t == DicomTags.StudyTime ? s.StudyTime
        : t == DicomTags.AccessionNumber ? s.AccessionNumber
        : t == DicomTags.StudyID ? s.StudyId
        : t == DicomTags.StudyDescription ? s.StudyDescription
        : t == DicomTags.ReferringPhysicianName ? s.ReferringPhysicianName
        : t == DicomTags.ModalitiesInStudy ? s.Modalities
        : t == DicomTags.NumberOfStudyRelatedSeries ? Number(s.SeriesCount)
        : t == DicomTags.NumberOfStudyRelatedInstances ? Number(s.InstanceCount)
        : null;

    public static string? Series(SeriesRecord s, DicomTag t) =>
        t == DicomTags.SeriesInstanceUID ? s.SeriesInstanceUid
        : t == DicomTags.Modality ? s.Modality
        : t == DicomTags.SeriesNumber ? Number(s.SeriesNumber)
        : t == DicomTags.SeriesDescription ? s.SeriesDescription
        : t == DicomTags.BodyPartExamined ? s.BodyPartExamined
        : t == DicomTags.SeriesDate ? s.SeriesDate
        : t == DicomTags.NumberOfSeriesRelatedInstances ? Number(s.InstanceCount)
        : null;

    public static string? Image(IndexedInstance i, DicomTag t) =>
        t == DicomTags.SOPInstanceUID ? i.SopInstanceUid
        : t == DicomTags.SOPClassUID ? i.SopClassUid
        : t == DicomTags.InstanceNumber ? Number(i.InstanceNumber)
        : t == DicomTags.NumberOfFrames ? Number(i.NumberOfFrames)
        : t == DicomTags.Rows ? Number(i.Rows)
        : t == DicomTags.Columns ? Number(i.Columns)
        : t == DicomTags.AvailableTransferSyntaxUID ? i.TransferSyntaxUid
        : null;

    /// <summary>A value from an instance's own header (image-level keys the index does not hold).</summary>
    public static string? FromDataset(DicomDataset ds, DicomTag t) => ds[t] switch
    {
        DicomElement { VR: DicomVR.US or DicomVR.SS or DicomVR.UL or DicomVR.SL } => ds.GetInt(t)?.ToString(CultureInfo.InvariantCulture),
        DicomElement e when e.VR.IsString() => ds.GetString(t),
        _ => null,
    };
}
