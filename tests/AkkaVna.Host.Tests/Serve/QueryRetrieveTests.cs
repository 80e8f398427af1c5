using System.Globalization;
using System.Text.Json;
using AkkaVna.Dicom;
using AkkaVna.Dicom.IO;
using AkkaVna.Dicom.Network.Scu;
using AkkaVna.Testing;

namespace AkkaVna.Host.Tests.Serve;

/// <summary>What dcmtk's findscu, movescu and getscu print and write.</summary>
internal static class QueryRetrieveTools
{
    public static readonly TimeSpan Timeout = TimeSpan.FromMinutes(3);

    public sealed record Outcome(string FinalStatus, List<DicomDataset> DataSets, string Output)
    {
        /// <summary>The Failed SOP Instance UID List (0008,0058) of the final response, as movescu -d dumps it.</summary>
        public HashSet<string> FailedUids => System.Text.RegularExpressions.Regex.Matches(Output, @"\(0008,0058\) UI \[([^\]]*)\]")
            .SelectMany(m => m.Groups[1].Value.Split('\\')).Select(u => u.Trim('\0', ' ')).Where(u => u.Length > 0).ToHashSet();

        /// <summary>The status code of the last response movescu -d dumped ("DIMSE Status : 0xa801: ..."), or -1.</summary>
        public int Code => System.Text.RegularExpressions.Regex.Matches(Output, @"DIMSE Status\s*:\s*0x([0-9a-fA-F]{4})").Select(m => Convert.ToInt32(m.Groups[1].Value, 16)).LastOrDefault(-1);

        /// <summary>A sub-operation count of the last response ("Number of Completed Suboperations : 5" or "Completed Suboperations : 5"), -1 if none.</summary>
        public int Count(string counter) =>
            System.Text.RegularExpressions.Regex.Matches(Output, counter + @" Suboperations\s*:\s*(\d+|none)").Select(m => m.Groups[1].Value)
                .Select(v => v == "none" ? 0 : int.Parse(v, CultureInfo.InvariantCulture)).LastOrDefault(-1);
    }

    private static Tool.Result Run(NetworkNamespace? network, string tool, IEnumerable<string> args, string workingDirectory) =>
        network is null ? Tool.Run(Tool.Dcmtk(tool), args, Timeout, workingDirectory) : network.Run(Tool.Dcmtk(tool), args, Timeout, workingDirectory);

    /// <summary>The status text of the final response: "Received Final Find Response (Success)" gives "Success".</summary>
    private static string Final(Tool.Result r, string what)
    {
        string output = r.StdOut + r.StdErr;
        var line = output.Split('\n').LastOrDefault(l => (l.Contains($"Received Final {what} Response (", StringComparison.Ordinal)
            || l.Contains($"Received {what} Response (", StringComparison.Ordinal) && !l.Contains("Pending", StringComparison.Ordinal)) && l.TrimEnd().EndsWith(')'));
        if (line is null) return "no final response:\n" + output;
        int open = line.IndexOf("Response (", StringComparison.Ordinal) + "Response (".Length;
        return line[open..line.LastIndexOf(')')];
    }

    /// <summary>findscu with -X: the matches as dcmtk wrote them (rsp0001.dcm...), in order, and the final status.</summary>
    public static Outcome Find(NetworkNamespace? network, int port, bool patientRoot, IEnumerable<string> keys, params string[] options)
    {
        using var dir = new TempDir();
        var r = Run(network, "findscu", [patientRoot ? "-P" : "-S", "-aec", "AKKAVNA", "-v", "-X", .. options, .. keys.SelectMany(k => new[] { "-k", k }),
            "127.0.0.1", port.ToString(CultureInfo.InvariantCulture)], dir.Path);
        var matches = Directory.GetFiles(dir.Path, "rsp*.dcm").Order(StringComparer.Ordinal).Select(f =>
        {
            using var file = DicomFile.Open(f);
            return file.Dataset;
        }).ToList();
        return new Outcome(Final(r, "Find"), matches, r.StdOut + r.StdErr);
    }

    /// <summary>getscu into <paramref name="output"/>.</summary>
    public static Outcome Get(NetworkNamespace? network, int port, string output, IEnumerable<string> keys, params string[] options)
    {
        Directory.CreateDirectory(output);
        var r = Run(network, "getscu", ["-S", "-aec", "AKKAVNA", "-v", "-od", output, .. options, .. keys.SelectMany(k => new[] { "-k", k }),
            "127.0.0.1", port.ToString(CultureInfo.InvariantCulture)], output);
        return new Outcome(Final(r, "C-GET"), [], r.StdOut + r.StdErr);
    }

    public static Outcome Move(NetworkNamespace? network, int port, string destination, IEnumerable<string> keys, bool patientRoot = false, params string[] options)
    {
        using var dir = new TempDir();
        var r = Run(network, "movescu", [patientRoot ? "-P" : "-S", "-aec", "AKKAVNA", "-aem", destination, "-d", .. options, .. keys.SelectMany(k => new[] { "-k", k }),
            "127.0.0.1", port.ToString(CultureInfo.InvariantCulture)], dir.Path);
        return new Outcome(Final(r, "Move"), [], r.StdOut + r.StdErr);
    }

    /// <summary>
    /// WADO-RS of a whole study as application/dicom parts, each written under <paramref name="folder"/> and checked
    /// dataset-equal to what was sent (<paramref name="sourceOf"/>: the file sent, by SOP Instance UID); the number of parts.
    /// </summary>
    public static async Task<int> WadoStudyAsync(HttpClient http, string study, Func<string, string> sourceOf, string folder)
    {
        Directory.CreateDirectory(folder);
        using var request = new HttpRequestMessage(HttpMethod.Get, $"dicom-web/studies/{study}");
        request.Headers.TryAddWithoutValidation("Accept", "multipart/related; type=\"application/dicom\"");
        using var rsp = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        Xunit.Assert.Equal(System.Net.HttpStatusCode.OK, rsp.StatusCode);
        string boundary = rsp.Content.Headers.ContentType!.Parameters.First(p => p.Name == "boundary").Value!.Trim('"');
        var reader = new Microsoft.AspNetCore.WebUtilities.MultipartReader(boundary, await rsp.Content.ReadAsStreamAsync()) { BodyLengthLimit = null };
        int n = 0;
        while (await reader.ReadNextSectionAsync() is { } section)
        {
            string part = Path.Combine(folder, $"{study}-{n++}.dcm");
            await using (var f = File.Create(part)) await section.Body.CopyToAsync(f);
            using var file = DicomFile.Open(part, new DicomReadOptions { StopBefore = t => t.Group > 0x0008 });
            Storescu.AssertSameDataSet(sourceOf(file.Dataset.GetString(DicomTags.SOPInstanceUID)!), part);
        }
        return n;
    }

    /// <summary>Every DICOM file under a folder, by SOP Instance UID.</summary>
    public static Dictionary<string, string> Received(string folder) =>
        Directory.GetFiles(folder, "*", SearchOption.AllDirectories).Where(f => !f.EndsWith(".log", StringComparison.Ordinal)).ToDictionary(f =>
        {
            using var file = DicomFile.Open(f, new DicomReadOptions { StopBefore = t => t.Group > 0x0008 });
            return file.Dataset.GetString(DicomTags.SOPInstanceUID)!;
        });
}

/// <summary>
/// One archive for the query/retrieve tests, in a private network namespace together with dcmtk's storescp and Orthanc
/// as move destinations (neither can bind to loopback only): the generated set and one copy of each corpus instance,
/// stored by storescu.
/// </summary>
public class QueryRetrieveFixture : IDisposable
{
    public const int DicomPort = 11112, StorescpPort = 11113, OrthancPort = 4242, OrthancHttp = 8042, JpegLsOnlyPort = 11114;

    public TempDir Dir { get; } = new();
    public NetworkNamespace Network { get; } = new();
    public ArchiveServer Server { get; }
    public QueryRetrieveSet Set { get; }
    public List<StoreFile> StoredCorpus { get; } = [];
    public string StorescpFolder => Dir.File("storescp");
    private readonly ServerProcess _storescp;

    public QueryRetrieveFixture() : this(ArchiveServer.Sqlite)
    {
    }

    protected QueryRetrieveFixture(string backend)
    {
        Set = QueryRetrieveSet.Write(Dir.File("set"));
        Server = new ArchiveServer(ArchiveServer.NewDataFolder(Dir, backend), $$"""
            akka-vna.retrieve.destinations {
              STORESCP { host = "127.0.0.1", port = {{StorescpPort}} }
              ORTHANC { host = "127.0.0.1", port = {{OrthancPort}} }
              JLSONLY { host = "127.0.0.1", port = {{JpegLsOnlyPort}} }
            }
            """, DicomPort, Network);
        Directory.CreateDirectory(StorescpFolder);
        _storescp = Network.Start(Tool.Dcmtk("storescp"), ["-aet", "STORESCP", "+xa", "-pm", "+B", "-od", StorescpFolder, StorescpPort.ToString(CultureInfo.InvariantCulture)], null);
        Network.WaitForPort(StorescpPort, TimeSpan.FromSeconds(20));

        var corpus = Storescu.Rounds(Storescu.SendableCorpus.Value).First();
        var generated = Set.AllFiles.Select(StoreFile.Read).ToList();
        string config = Storescu.WriteConfig(Dir, corpus.Concat(generated));
        var responses = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var r in Storescu.Send(network: Network, config: config, port: DicomPort, files: generated.Concat(corpus).ToList(), associations: 2, timeout: QueryRetrieveTools.Timeout))
            foreach (var kv in Storescu.Responses(r)) responses[kv.Key] = kv.Value;
        foreach (var f in generated)
            if (responses.GetValueOrDefault(f.Path) != "Success") throw new InvalidOperationException($"the archive did not store {f.Path}: {responses.GetValueOrDefault(f.Path)}");
        StoredCorpus.AddRange(corpus.Where(f => responses.GetValueOrDefault(f.Path) == "Success"));
    }

    public void Dispose()
    {
        _storescp.Dispose();
        Server.Dispose();
        Network.Dispose();
        Dir.Dispose();
        GC.SuppressFinalize(this);
    }
}

/// <summary>The same archive on the shared PostgreSQL index and journal.</summary>
public sealed class PostgreSqlQueryRetrieveFixture() : QueryRetrieveFixture(ArchiveServer.PostgreSql);

/// <summary>C-FIND, C-GET and C-MOVE on the embedded SQLite index.</summary>
public sealed class QueryRetrieveTests(QueryRetrieveFixture fx) : QueryRetrieveSuite(fx), IClassFixture<QueryRetrieveFixture>;

/// <summary>C-FIND, C-GET and C-MOVE on the PostgreSQL index (the same tests).</summary>
public sealed class PostgreSqlQueryRetrieveTests(PostgreSqlQueryRetrieveFixture fx) : QueryRetrieveSuite(fx), IClassFixture<PostgreSqlQueryRetrieveFixture>;

/// <summary>C-FIND, C-GET and C-MOVE against a running archive, driven by dcmtk's findscu, getscu and movescu.</summary>
public abstract class QueryRetrieveSuite(QueryRetrieveFixture fx)
{
    private QueryRetrieveSet Set => fx.Set;

    private QueryRetrieveTools.Outcome Find(bool patientRoot, params string[] keys) => QueryRetrieveTools.Find(fx.Network, QueryRetrieveFixture.DicomPort, patientRoot, keys);

    /// <summary>The names (A, B, A1, ...) of a key's values in the matches; values not from the set stay UIDs.</summary>
    private List<string> Names(QueryRetrieveTools.Outcome o, DicomTag key) =>
        o.DataSets.Select(d => Set.NameOf(d.GetString(key) ?? "")).Order(StringComparer.Ordinal).ToList();

    public static TheoryData<string, bool, string[], string[]> StudyCases => new()
    {
        // name, patient root, keys, expected studies
        { "single value", false, ["PatientID=AKKAQR1"], ["A", "B"] },
        { "single value, patient root", true, ["PatientID=AKKAQR2"], ["C"] },
        { "wildcard *, case-sensitive", false, ["PatientID=AKKAQR*", "PatientName=SMITH*"], ["C"] },
        { "wildcard ?", false, ["PatientID=AKKAQR*", "PatientName=Sm?th^J*"], ["A", "B"] },
        { "wildcard in accession", false, ["AccessionNumber=QRACC?"], ["A", "B", "C", "D"] },
        { "date range", false, ["PatientID=AKKAQR*", "StudyDate=20240101-20241231"], ["A", "B"] },
        { "date range open below", false, ["PatientID=AKKAQR*", "StudyDate=-20231231"], ["C"] },
        { "date range open above", false, ["PatientID=AKKAQR*", "StudyDate=20250101-"], ["D"] },
        { "single date", false, ["PatientID=AKKAQR*", "StudyDate=20240115"], ["A"] },
        { "time range", false, ["PatientID=AKKAQR*", "StudyTime=2000-2359"], ["B", "C"] },
        { "combined date-time range", false, ["StudyDate=20231231-20240115", "StudyTime=2300-0900"], ["A", "C"] },
        { "modality in study", false, ["PatientID=AKKAQR*", "ModalitiesInStudy=MR"], ["B"] },
        { "modality list", false, ["PatientID=AKKAQR*", "ModalitiesInStudy=CT\\CR"], ["A", "C", "D"] },
        { "description wildcard", false, ["PatientID=AKKAQR*", "StudyDescription=CT*"], ["A", "D"] },
        { "no match", false, ["PatientID=AKKAQR9"], [] },
    };

    [Theory]
    [MemberData(nameof(StudyCases))]
    public void Study_level_find_returns_exactly_the_matching_studies(string matching, bool patientRoot, string[] keys, string[] expected)
    {
        var o = Find(patientRoot, ["QueryRetrieveLevel=STUDY", "StudyInstanceUID", "PatientName", "NumberOfStudyRelatedInstances", .. keys]);
        Assert.True(o.FinalStatus == "Success", $"{matching}: {o.FinalStatus}\n{o.Output}");
        Assert.Equal(expected, Names(o, DicomTags.StudyInstanceUID));
    }

    [Fact]
    public void A_uid_list_selects_those_studies_and_the_response_holds_exactly_the_requested_keys_with_computed_values()
    {
        var o = Find(false, "QueryRetrieveLevel=STUDY", $"StudyInstanceUID={Set.Uid["A"]}\\{Set.Uid["B"]}", "PatientName", "ModalitiesInStudy",
            "NumberOfStudyRelatedSeries", "NumberOfStudyRelatedInstances", "StudyDate", "StudyTime", "AccessionNumber", "StudyID", "ReferringPhysicianName");
        Assert.Equal("Success", o.FinalStatus);
        Assert.Equal(["A", "B"], Names(o, DicomTags.StudyInstanceUID));
        var a = o.DataSets.Single(d => d.GetString(DicomTags.StudyInstanceUID) == Set.Uid["A"]);
        var b = o.DataSets.Single(d => d.GetString(DicomTags.StudyInstanceUID) == Set.Uid["B"]);
        DicomTag[] requested = [DicomTags.QueryRetrieveLevel, DicomTags.StudyInstanceUID, DicomTags.PatientName, DicomTags.ModalitiesInStudy, DicomTags.NumberOfStudyRelatedSeries,
            DicomTags.NumberOfStudyRelatedInstances, DicomTags.StudyDate, DicomTags.StudyTime, DicomTags.AccessionNumber, DicomTags.StudyID, DicomTags.ReferringPhysicianName];
        Assert.Equal(requested.Order(), a.Select(i => i.Tag).Where(t => t != DicomTags.SpecificCharacterSet).Order());
        Assert.Equal("Smith^John", a.GetString(DicomTags.PatientName));
        Assert.Equal("CT", a.GetString(DicomTags.ModalitiesInStudy));
        Assert.Equal("2", a.GetString(DicomTags.NumberOfStudyRelatedSeries));
        Assert.Equal("5", a.GetString(DicomTags.NumberOfStudyRelatedInstances));
        Assert.Equal(new string?[] { "20240115", "083000", "QRACC1", "A", "Who^Doctor" },
            new[] { a.GetString(DicomTags.StudyDate), a.GetString(DicomTags.StudyTime), a.GetString(DicomTags.AccessionNumber), a.GetString(DicomTags.StudyID), a.GetString(DicomTags.ReferringPhysicianName) });
        Assert.Equal(["MR", "OT"], b.GetStrings(DicomTags.ModalitiesInStudy).Order(StringComparer.Ordinal));
        Assert.Equal("3", b.GetString(DicomTags.NumberOfStudyRelatedInstances));
    }

    [Fact]
    public void Patient_level_find_groups_studies_by_patient_with_related_counts()
    {
        var o = Find(true, "QueryRetrieveLevel=PATIENT", "PatientID=AKKAQR*", "PatientName", "PatientSex", "PatientBirthDate",
            "NumberOfPatientRelatedStudies", "NumberOfPatientRelatedSeries", "NumberOfPatientRelatedInstances");
        Assert.Equal("Success", o.FinalStatus);
        var byId = o.DataSets.ToDictionary(d => d.GetString(DicomTags.PatientID)!);
        Assert.Equal(["AKKAQR1", "AKKAQR2", "AKKAQR3"], byId.Keys.Order(StringComparer.Ordinal));
        Assert.Equal(new string?[] { "2", "4", "8" }, new[] { byId["AKKAQR1"].GetString(DicomTags.NumberOfPatientRelatedStudies), byId["AKKAQR1"].GetString(DicomTags.NumberOfPatientRelatedSeries),
            byId["AKKAQR1"].GetString(DicomTags.NumberOfPatientRelatedInstances) });
        Assert.Equal(new string?[] { "SMITH^JANE", "F", "19801212" }, new[] { byId["AKKAQR2"].GetString(DicomTags.PatientName), byId["AKKAQR2"].GetString(DicomTags.PatientSex),
            byId["AKKAQR2"].GetString(DicomTags.PatientBirthDate) });
        // Study Root has no PATIENT level: A900.
        Assert.Contains("Error", Find(false, "QueryRetrieveLevel=PATIENT", "PatientID=AKKAQR1").FinalStatus, StringComparison.Ordinal);
    }

    [Fact]
    public void A_utf8_name_is_matched_and_returned_with_its_character_set()
    {
        var o = Find(false, "QueryRetrieveLevel=STUDY", "SpecificCharacterSet=ISO_IR 192", "PatientName=Müller*", "StudyInstanceUID");
        Assert.Equal("Success", o.FinalStatus);
        var d = Assert.Single(o.DataSets);
        Assert.Equal(Set.Uid["D"], d.GetString(DicomTags.StudyInstanceUID));
        Assert.Equal("ISO_IR 192", d.GetString(DicomTags.SpecificCharacterSet));
        Assert.Equal("Müller^Jürgen", d.GetString(DicomTags.PatientName));
    }

    [Fact]
    public void Series_level_find_matches_series_keys_within_a_study()
    {
        var all = Find(false, "QueryRetrieveLevel=SERIES", $"StudyInstanceUID={Set.Uid["A"]}", "SeriesInstanceUID", "Modality", "SeriesNumber", "NumberOfSeriesRelatedInstances", "SeriesDescription");
        Assert.Equal("Success", all.FinalStatus);
        Assert.Equal(["A1", "A2"], Names(all, DicomTags.SeriesInstanceUID));
        Assert.Equal("3", all.DataSets.Single(d => d.GetString(DicomTags.SeriesInstanceUID) == Set.Uid["A1"]).GetString(DicomTags.NumberOfSeriesRelatedInstances));
        Assert.Equal(["A2"], Names(Find(false, "QueryRetrieveLevel=SERIES", $"StudyInstanceUID={Set.Uid["A"]}", "SeriesInstanceUID", "Modality=CT", "SeriesNumber=2"), DicomTags.SeriesInstanceUID));
        Assert.Equal(["B2"], Names(Find(false, "QueryRetrieveLevel=SERIES", $"StudyInstanceUID={Set.Uid["B"]}", "SeriesInstanceUID", "SeriesDescription=KEY*"), DicomTags.SeriesInstanceUID));
        // Relational: no study UID, the study keys select the studies.
        Assert.Equal(["B1"], Names(Find(false, "QueryRetrieveLevel=SERIES", "PatientID=AKKAQR1", "SeriesInstanceUID", "Modality=MR"), DicomTags.SeriesInstanceUID));
    }

    [Fact]
    public void Image_level_find_matches_indexed_keys_and_keys_read_from_the_instance_header()
    {
        string[] series = ["QueryRetrieveLevel=IMAGE", $"StudyInstanceUID={Set.Uid["A"]}", $"SeriesInstanceUID={Set.Uid["A1"]}", "SOPInstanceUID", "InstanceNumber"];
        Assert.Equal(["A1-1", "A1-2", "A1-3"], Names(Find(false, series), DicomTags.SOPInstanceUID));
        Assert.Equal(["A1-2"], Names(Find(false, [.. series, "InstanceNumber=2"]), DicomTags.SOPInstanceUID));
        var manufacturer = Find(false, [.. series, "Manufacturer=AkkaQR"]);
        Assert.Equal(["A1-1", "A1-2", "A1-3"], Names(manufacturer, DicomTags.SOPInstanceUID));
        Assert.All(manufacturer.DataSets, d => Assert.Equal("AkkaQR", d.GetString(DicomTags.Manufacturer)));
        Assert.Empty(Find(false, [.. series, "Manufacturer=Other*"]).DataSets);
        // A list of SOP Instance UIDs alone is found through the instance-location table.
        var bySop = Find(false, "QueryRetrieveLevel=IMAGE", $"SOPInstanceUID={Set.Uid["C1-1"]}\\{Set.Uid["D1-2"]}", "StudyInstanceUID");
        Assert.Equal(["C1-1", "D1-2"], Names(bySop, DicomTags.SOPInstanceUID));
    }

    [Fact]
    public void A_universal_study_query_returns_every_stored_study_of_the_corpus_and_the_set()
    {
        var o = Find(false, "QueryRetrieveLevel=STUDY", "StudyInstanceUID");
        Assert.Equal("Success", o.FinalStatus);
        var expected = fx.StoredCorpus.Select(f => IngestTests.StudyOf(f.Path)).Concat(new[] { "A", "B", "C", "D" }.Select(n => Set.Uid[n])).ToHashSet();
        Assert.Equal(expected.Order(StringComparer.Ordinal), o.DataSets.Select(d => d.GetString(DicomTags.StudyInstanceUID)!).Order(StringComparer.Ordinal));
    }

    [Fact]
    public void Getscu_receives_a_study_a_series_and_an_instance_dataset_equal_to_what_was_stored()
    {
        using var dir = new TempDir();
        var study = QueryRetrieveTools.Get(fx.Network, QueryRetrieveFixture.DicomPort, dir.File("study"), ["QueryRetrieveLevel=STUDY", $"StudyInstanceUID={Set.Uid["A"]}"]);
        Assert.True(study.FinalStatus == "Success", study.Output);
        Assert.Equal(5, study.Count("Completed"));
        AssertReceived(dir.File("study"), Set.Files["A1"].Concat(Set.Files["A2"]));

        var series = QueryRetrieveTools.Get(fx.Network, QueryRetrieveFixture.DicomPort, dir.File("series"),
            ["QueryRetrieveLevel=SERIES", $"StudyInstanceUID={Set.Uid["B"]}", $"SeriesInstanceUID={Set.Uid["B1"]}"]);
        Assert.Equal("Success", series.FinalStatus);
        AssertReceived(dir.File("series"), Set.Files["B1"]);

        var image = QueryRetrieveTools.Get(fx.Network, QueryRetrieveFixture.DicomPort, dir.File("image"),
            ["QueryRetrieveLevel=IMAGE", $"StudyInstanceUID={Set.Uid["D"]}", $"SeriesInstanceUID={Set.Uid["D1"]}", $"SOPInstanceUID={Set.Uid["D1-2"]}"]);
        Assert.Equal("Success", image.FinalStatus);
        AssertReceived(dir.File("image"), [Set.Files["D1"][1]]);
    }

    [Fact]
    public void An_instance_stored_in_implicit_vr_is_converted_for_getscu_which_takes_explicit_vr_and_compressed_ones_lossless_or_12_bit_lossy_are_decoded_as_dcmtk_decodes_them()
    {
        using var dir = new TempDir();
        // getscu proposes explicit VR little endian alone for storage: an implicit VR instance is converted (native to native).
        var implicitVr = StoreFile.Read(Set.Files["C1"][0]);
        Assert.Equal(DicomTransferSyntax.ImplicitVRLittleEndian, implicitVr.TransferSyntax);
        var o = QueryRetrieveTools.Get(fx.Network, QueryRetrieveFixture.DicomPort, dir.File("ile"), ["QueryRetrieveLevel=IMAGE", $"SOPInstanceUID={implicitVr.SopInstanceUid}"]);
        Assert.True(o.FinalStatus == "Success", o.Output);
        var received = Assert.Single(AssertReceived(dir.File("ile"), [implicitVr.Path]));
        using (var f = DicomFile.Open(received)) Assert.Equal(DicomTransferSyntax.ExplicitVRLittleEndian, f.TransferSyntax);

        // getscu proposes a compressed syntax only when told to prefer it: the option for each.
        var prefer = new Dictionary<string, string>
        {
            ["1.2.840.10008.1.2.4.80"] = "+xt", ["1.2.840.10008.1.2.4.70"] = "+xs", ["1.2.840.10008.1.2.4.90"] = "+xv", ["1.2.840.10008.1.2.4.91"] = "+xw",
            ["1.2.840.10008.1.2.4.50"] = "+xy", ["1.2.840.10008.1.2.4.51"] = "+xx",
        };
        bool Getable(StoreFile f) => f.SopClassUid is DicomUids.CTImageStorage or DicomUids.MRImageStorage or DicomUids.SecondaryCaptureImageStorage
            or DicomUids.UltrasoundImageStorage or DicomUids.ComputedRadiographyImageStorage or DicomUids.UltrasoundMultiFrameImageStorage;

        // A JPEG-LS instance, asked for by a receiver that takes only explicit VR: decoded on the fly, pixels as dcmtk decodes them.
        // (JPEG-LS or RLE, whichever the stored corpus holds: dcmtk decodes both.)
        var decoders = new Dictionary<string, string> { ["1.2.840.10008.1.2.4.80"] = "dcmdjpls", ["1.2.840.10008.1.2.5"] = "dcmdrle", ["1.2.840.10008.1.2.4.70"] = "dcmdjpeg" };
        var jls = fx.StoredCorpus.First(f => decoders.ContainsKey(f.TransferSyntax.Uid) && Getable(f));
        AssertDecodedAsDcmtkDoes(jls, decoders[jls.TransferSyntax.Uid], "jls");
        // The 12-bit lossy JPEG (process 4) too: decoded here with IJG's integer IDCT, as dcmdjpeg decodes it.
        var sv1 = fx.StoredCorpus.First(f => f.TransferSyntax.Uid == "1.2.840.10008.1.2.4.51" && Getable(f));
        AssertDecodedAsDcmtkDoes(sv1, "dcmdjpeg", "jpeg12");

        void AssertDecodedAsDcmtkDoes(StoreFile stored, string decoder, string folder)
        {
            var decoded = QueryRetrieveTools.Get(fx.Network, QueryRetrieveFixture.DicomPort, dir.File(folder), ["QueryRetrieveLevel=IMAGE", $"SOPInstanceUID={stored.SopInstanceUid}"]);
            Assert.True(decoded.FinalStatus == "Success", decoded.Output + string.Join("\n", fx.Server.Output.Split('\n').Where(l => l.Contains(stored.SopInstanceUid, StringComparison.Ordinal))));
            string got = Assert.Single(Directory.GetFiles(dir.File(folder)));
            string reference = dir.File(folder + "-dcmtk.dcm");
            var r = Tool.Run(Tool.Dcmtk(decoder), [stored.Path, reference], TimeSpan.FromMinutes(1));
            Assert.True(r.ExitCode == 0, r.StdErr);
            using var gotFile = DicomFile.Open(got);
            using var referenceFile = DicomFile.Open(reference);
            Assert.Equal(DicomTransferSyntax.ExplicitVRLittleEndian, gotFile.TransferSyntax);
            Assert.Equal(referenceFile.Dataset.GetString(DicomTags.PhotometricInterpretation), gotFile.Dataset.GetString(DicomTags.PhotometricInterpretation));
            static byte[] Pixels(DicomFile f)
            {
                using var ms = new MemoryStream();
                ((DicomElement)f.Dataset[DicomTags.PixelData]!).Value.CopyTo(ms);
                return ms.ToArray();
            }
            Assert.Equal(Pixels(referenceFile), Pixels(gotFile));
        }

        // Proposed in its own syntax, it is sent as stored.
        var ok = QueryRetrieveTools.Get(fx.Network, QueryRetrieveFixture.DicomPort, dir.File("sv1-ok"), ["QueryRetrieveLevel=IMAGE", $"SOPInstanceUID={sv1.SopInstanceUid}"], prefer[sv1.TransferSyntax.Uid]);
        Assert.True(ok.FinalStatus == "Success", ok.Output);
        AssertReceived(dir.File("sv1-ok"), [sv1.Path]);
    }

    [Fact]
    public void Movescu_to_storescp_delivers_a_study_and_every_stored_corpus_instance_dataset_equal()
    {
        var study = QueryRetrieveTools.Move(fx.Network, QueryRetrieveFixture.DicomPort, "STORESCP", ["QueryRetrieveLevel=STUDY", $"StudyInstanceUID={Set.Uid["B"]}"]);
        Assert.True(study.Code == 0, study.Output);
        Assert.Equal(3, study.Count("Completed"));

        var corpus = QueryRetrieveTools.Move(fx.Network, QueryRetrieveFixture.DicomPort, "STORESCP",
            ["QueryRetrieveLevel=IMAGE", "SOPInstanceUID=" + string.Join('\\', fx.StoredCorpus.Select(f => f.SopInstanceUid))]);
        // storescp (dcmtk 3.6.7, +xa -pm) refuses a few (SOP class, syntax) pairs, e.g. Enhanced CT in JPEG lossless
        // process 14: those instances are decoded and sent in a native syntax (their pixels as dcmtk decodes them), and
        // only what no codec here decodes fails, named in the Failed SOP Instance UID List; every other one arrives intact.
        var failed = corpus.FailedUids;
        Assert.Equal(fx.StoredCorpus.Count, corpus.Count("Completed") + corpus.Count("Failed"));
        Assert.Equal(failed.Count, corpus.Count("Failed"));
        Assert.True(corpus.Code == (failed.Count == 0 ? 0 : 0xB000), corpus.Output[^2000..]);
        var stored = fx.StoredCorpus.ToDictionary(f => f.SopInstanceUid);
        Assert.All(failed, uid => Assert.True(stored[uid].TransferSyntax.IsEncapsulated || stored[uid].TransferSyntax.IsDeflated,
            $"{stored[uid].Path} ({stored[uid].TransferSyntax}) should have been sent or converted"));
        Assert.True(failed.Count <= 3, $"{failed.Count} sub-operations failed: {string.Join(", ", failed.Select(u => stored[u].Path))}");
        AssertReceived(fx.StorescpFolder, Set.Files["B1"].Concat(Set.Files["B2"]).Concat(fx.StoredCorpus.Where(f => !failed.Contains(f.SopInstanceUid)).Select(f => f.Path)), exact: false);
    }

    [Fact]
    public void A_move_destination_that_takes_only_JPEG_LS_gets_native_instances_compressed_on_the_fly_as_dcmtk_decodes_them()
    {
        using var dir = new TempDir();
        // storescp with an association profile that accepts CT and MR in JPEG-LS lossless only (dcmtk's asconfig format).
        string profile = dir.File("jls-only.cfg"), received = dir.File("in");
        Directory.CreateDirectory(received);
        File.WriteAllText(profile, """
            [[TransferSyntaxes]]
            [JpegLsLossless]
            TransferSyntax1 = 1.2.840.10008.1.2.4.80

            [[PresentationContexts]]
            [OnlyJpegLs]
            PresentationContext1 = CTImageStorage\JpegLsLossless
            PresentationContext2 = MRImageStorage\JpegLsLossless

            [[Profiles]]
            [OnlyJpegLs]
            PresentationContexts = OnlyJpegLs
            """);
        using var storescp = fx.Network.Start(Tool.Dcmtk("storescp"), ["-aet", "JLSONLY", "-xf", profile, "OnlyJpegLs", "-od", received,
            QueryRetrieveFixture.JpegLsOnlyPort.ToString(CultureInfo.InvariantCulture)], null);
        fx.Network.WaitForPort(QueryRetrieveFixture.JpegLsOnlyPort, TimeSpan.FromSeconds(20));
        var natives = fx.StoredCorpus.Where(f => f.SopClassUid is DicomUids.CTImageStorage or DicomUids.MRImageStorage
            && f.TransferSyntax.Uid is DicomUids.ExplicitVRLittleEndian or DicomUids.ImplicitVRLittleEndian).ToList();
        Assert.True(natives.Count >= 3, $"{natives.Count} native CT/MR instances in the stored corpus");

        var o = QueryRetrieveTools.Move(fx.Network, QueryRetrieveFixture.DicomPort, "JLSONLY",
            ["QueryRetrieveLevel=IMAGE", "SOPInstanceUID=" + string.Join('\\', natives.Select(f => f.SopInstanceUid))]);
        // What a lossless codec cannot keep exactly (bits set above Bits Stored) is refused by the verification before
        // sending, named in the Failed SOP Instance UID List; the same instances fail to compress here directly.
        var failed = o.FailedUids;
        Assert.Equal(natives.Count, o.Count("Completed") + o.Count("Failed"));
        foreach (var f in natives)
        {
            bool compresses;
            try
            {
                using var file = DicomFile.Open(f.Path);
                AkkaVna.Codecs.DicomTranscoder.WriteFile(file.Dataset, file.FileMetaInfo, file.TransferSyntax,
                    DicomTransferSyntax.Lookup("1.2.840.10008.1.2.4.80")!, Stream.Null, CancellationToken.None);
                compresses = true;
            }
            catch (AkkaVna.Codecs.CodecException)
            {
                compresses = false;
            }
            Assert.True(compresses != failed.Contains(f.SopInstanceUid), $"{f.Path}: compresses here {compresses}, failed in the move {failed.Contains(f.SopInstanceUid)}");
        }
        var files = Directory.GetFiles(received);
        Assert.Equal(natives.Count - failed.Count, files.Length);
        Assert.True(files.Length > 0, o.Output);
        var bySop = natives.ToDictionary(f => f.SopInstanceUid, StringComparer.Ordinal);
        foreach (var path in files)
        {
            // Arrived as JPEG-LS; dcmtk's own decoder gives the stored pixels back, and every other attribute is the stored one.
            string sop;
            using (var got = DicomFile.Open(path))
            {
                Assert.Equal("1.2.840.10008.1.2.4.80", got.TransferSyntax.Uid);
                sop = got.Dataset.GetString(DicomTags.SOPInstanceUID)!;
            }
            string decoded = path + ".native.dcm";
            var r = Tool.Run(Tool.Dcmtk("dcmdjpls"), [path, decoded], TimeSpan.FromMinutes(1));
            Assert.True(r.ExitCode == 0, r.StdErr);
            Storescu.AssertSameDataSet(bySop[sop].Path, decoded);
        }
    }

    [Fact]
    public void Orthanc_as_move_destination_receives_a_whole_study()
    {
        using var dir = new TempDir();
        string config = dir.File("orthanc.json");
        File.WriteAllText(config, JsonSerializer.Serialize(new Dictionary<string, object>
        {
            ["Name"] = "qr-test", ["StorageDirectory"] = dir.File("storage"), ["IndexDirectory"] = dir.File("index"), ["DicomAet"] = "ORTHANC",
            ["DicomPort"] = QueryRetrieveFixture.OrthancPort, ["HttpPort"] = QueryRetrieveFixture.OrthancHttp, ["RemoteAccessAllowed"] = false,
            ["AuthenticationEnabled"] = false, ["DicomCheckCalledAet"] = false, ["DicomAlwaysAllowStore"] = true, ["Plugins"] = Array.Empty<string>(),
        }));
        using var orthanc = fx.Network.Start("Orthanc", [config], null);
        fx.Network.WaitForPort(QueryRetrieveFixture.OrthancPort, TimeSpan.FromSeconds(60));
        fx.Network.WaitForPort(QueryRetrieveFixture.OrthancHttp, TimeSpan.FromSeconds(60));

        var o = QueryRetrieveTools.Move(fx.Network, QueryRetrieveFixture.DicomPort, "ORTHANC", ["QueryRetrieveLevel=STUDY", $"StudyInstanceUID={Set.Uid["A"]}"]);
        Assert.True(o.Code == 0, o.Output);
        Assert.Equal(5, o.Count("Completed"));

        var r = fx.Network.Run("curl", ["-s", "-X", "POST", "-d", JsonSerializer.Serialize(new { Level = "Study", Query = new { StudyInstanceUID = Set.Uid["A"] }, Expand = true }),
            $"http://127.0.0.1:{QueryRetrieveFixture.OrthancHttp}/tools/find"]);
        using var found = JsonDocument.Parse(r.StdOut);
        var study = Assert.Single(found.RootElement.EnumerateArray());
        var stats = fx.Network.Run("curl", ["-s", $"http://127.0.0.1:{QueryRetrieveFixture.OrthancHttp}/studies/{study.GetProperty("ID").GetString()}/statistics"]);
        using var s = JsonDocument.Parse(stats.StdOut);
        Assert.Equal("5", s.RootElement.GetProperty("CountInstances").ToString());
    }

    [Fact]
    public void Bad_requests_get_the_proper_status_and_change_nothing()
    {
        var before = Find(false, "QueryRetrieveLevel=IMAGE", "SOPInstanceUID").DataSets.Count;
        Assert.Contains("Error", Find(false, "StudyInstanceUID", "PatientID=AKKAQR1").FinalStatus, StringComparison.Ordinal);         // no level: A900
        Assert.Contains("Error", Find(false, "QueryRetrieveLevel=STUDY", "StudyDate=2024-13").FinalStatus, StringComparison.Ordinal); // not a date: A900
        Assert.Contains("Error", Find(false, "QueryRetrieveLevel=VOLUME").FinalStatus, StringComparison.Ordinal);
        Assert.Empty(Find(false, "QueryRetrieveLevel=STUDY", "StudyInstanceUID=1.2.3.999999").DataSets);

        var unknownDestination = QueryRetrieveTools.Move(fx.Network, QueryRetrieveFixture.DicomPort, "NOWHERE", ["QueryRetrieveLevel=STUDY", $"StudyInstanceUID={Set.Uid["A"]}"]);
        Assert.Equal(0xA801, unknownDestination.Code);
        var noKey = QueryRetrieveTools.Move(fx.Network, QueryRetrieveFixture.DicomPort, "STORESCP", ["QueryRetrieveLevel=STUDY", "PatientID=AKKAQR1"]);
        Assert.Equal(0xA900, noKey.Code);
        var unknownStudy = QueryRetrieveTools.Move(fx.Network, QueryRetrieveFixture.DicomPort, "STORESCP", ["QueryRetrieveLevel=STUDY", "StudyInstanceUID=1.2.3.999999"]);
        Assert.Equal(0, unknownStudy.Code);
        Assert.Equal(0, unknownStudy.Count("Completed"));
        using var dir = new TempDir();
        var unknownGet = QueryRetrieveTools.Get(fx.Network, QueryRetrieveFixture.DicomPort, dir.File("none"), ["QueryRetrieveLevel=IMAGE", "SOPInstanceUID=1.2.3.999999"]);
        Assert.Equal("Success", unknownGet.FinalStatus);
        Assert.Empty(Directory.GetFiles(dir.File("none")));
        Assert.Equal(before, Find(false, "QueryRetrieveLevel=IMAGE", "SOPInstanceUID").DataSets.Count);
    }

    /// <summary>The received files are dataset-equal to the sources (by SOP Instance UID); returns their paths.</summary>
    private static List<string> AssertReceived(string folder, IEnumerable<string> sources, bool exact = true)
    {
        var received = QueryRetrieveTools.Received(folder);
        var list = sources.ToList();
        if (exact) Assert.Equal(list.Count, received.Count);
        var paths = new List<string>();
        foreach (var source in list)
        {
            string sop = StoreFile.Read(source).SopInstanceUid;
            Assert.True(received.TryGetValue(sop, out var path), $"{source} was not received");
            CompareDataSets(source, path);
            paths.Add(path);
        }
        return paths;
    }

    /// <summary>dcmtk's decoder for a compressed syntax (the reference for what the archive decodes for a native-only receiver).</summary>
    private static readonly Dictionary<string, string> DcmtkDecoders = new()
    {
        ["1.2.840.10008.1.2.4.50"] = "dcmdjpeg", ["1.2.840.10008.1.2.4.51"] = "dcmdjpeg", ["1.2.840.10008.1.2.4.57"] = "dcmdjpeg", ["1.2.840.10008.1.2.4.70"] = "dcmdjpeg",
        ["1.2.840.10008.1.2.4.80"] = "dcmdjpls", ["1.2.840.10008.1.2.4.81"] = "dcmdjpls", ["1.2.840.10008.1.2.5"] = "dcmdrle",
    };

    private static void CompareDataSets(string source, string received)
    {
        using var sent = DicomFile.Open(source);
        using var got = DicomFile.Open(received);
        if (sent.TransferSyntax.IsEncapsulated && !got.TransferSyntax.IsEncapsulated)
        {
            // Decoded on the way (the receiver did not take the stored syntax): equal to dcmtk's own decoding of the source.
            Assert.True(DcmtkDecoders.TryGetValue(sent.TransferSyntax.Uid, out var decoder), $"{source} was decoded from {sent.TransferSyntax.Uid}, which has no dcmtk decoder to compare with");
            string reference = Path.Combine(Path.GetTempPath(), $"akkavna-reference-{Guid.NewGuid():N}.dcm");
            try
            {
                // (dcmdjpeg by pixel, as lossy colour is decoded here; dcmdjpls and dcmdrle in the source's own layout.)
                string[] args = decoder == "dcmdjpeg" ? ["+px", source, reference] : [source, reference];
                var d = Tool.Run(Tool.Dcmtk(decoder), args, TimeSpan.FromMinutes(1));
                Assert.True(d.ExitCode == 0, d.StdErr);
                CompareDataSets(reference, received);
            }
            finally
            {
                File.Delete(reference);
            }
            return;
        }
        using var s = DicomFile.Open(source);
        using var r = DicomFile.Open(received);
        s.Dataset.Remove(DicomTags.DataSetTrailingPadding);
        // A converted data set carries the VRs its new syntax gives it (implicit VR: the dictionary's).
        var diff = DatasetAssert.Differences(s.Dataset, r.Dataset, "", ignoreVR: r.TransferSyntax != s.TransferSyntax, trimStringPadding: true);
        if (s.Dataset[DicomTags.PixelData] is DicomFragmentSequence { VR: DicomVR.OW }) diff.Remove("(7FE0,0010): VR OW vs OB");
        Assert.True(diff.Count == 0, $"{source} differs after retrieval:\n{string.Join("\n", diff.Take(10))}");
    }
}
