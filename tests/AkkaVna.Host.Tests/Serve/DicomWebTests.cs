using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using AkkaVna.Dicom;
using AkkaVna.Dicom.IO;
using AkkaVna.Dicom.Network.Scu;
using AkkaVna.Testing;
using Microsoft.AspNetCore.WebUtilities;

namespace AkkaVna.Host.Tests.Serve;

/// <summary>
/// DICOMweb against a running archive with .NET's HttpClient as the client: STOW a study (the request body built by
/// System.Net.Http's MultipartContent, parsed back with ASP.NET's MultipartReader, neither of them AkkaVna code), QIDO
/// it back, WADO its instances, metadata, a frame and bulk data, WADO-URI, and the bad requests.
/// </summary>
public sealed class DicomWebTests() : DicomWebSuite(ArchiveServer.Sqlite);

/// <summary>The same DICOMweb tests on the PostgreSQL index and journal.</summary>
public sealed class PostgreSqlDicomWebTests() : DicomWebSuite(ArchiveServer.PostgreSql);

/// <summary>The same DICOMweb tests with the blobs on S3 (radosgw): WADO-RS instances, frames and bulk data read with ranged GETs.</summary>
public sealed class S3DicomWebTests() : DicomWebSuite(ArchiveServer.S3);

public abstract class DicomWebSuite(string backend) : IAsyncLifetime
{
    private readonly TempDir _dir = new();
    private ArchiveServer _server = null!;
    private HttpClient _http = null!;
    private List<StoreFile> _files = null!;
    private string _study = "", _series = "";

    public Task InitializeAsync()
    {
        _server = new ArchiveServer(ArchiveServer.NewDataFolder(_dir, backend), "akka-vna.http.max-stow-bytes = 1MiB");
        _http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{_server.HttpPort}/"), Timeout = TimeSpan.FromMinutes(2) };
        _files = Instances.WriteStudy(_dir.File("study"), 3, 64 * 64 * 2, seed: 11).Select(StoreFile.Read).ToList();
        using var first = DicomFile.Open(_files[0].Path, new DicomReadOptions { StopBefore = t => t.Group > 0x0020 });
        _study = first.Dataset.GetString(DicomTags.StudyInstanceUID)!;
        _series = first.Dataset.GetString(DicomTags.SeriesInstanceUID)!;
        return Task.CompletedTask;
    }

    public Task DisposeAsync()
    {
        _http.Dispose();
        _server.Dispose();
        _dir.Dispose();
        return Task.CompletedTask;
    }

    private static MultipartContent Multipart(IEnumerable<string> paths, string type = "application/dicom") => Serve.Multipart.Related(paths, type);

    private async Task<JsonElement> StowAsync(string url, IEnumerable<string> paths, HttpStatusCode expected)
    {
        using var rsp = await _http.PostAsync(url, Multipart(paths));
        string body = await rsp.Content.ReadAsStringAsync();
        Assert.True(rsp.StatusCode == expected, $"{rsp.StatusCode}: {body}");
        Assert.Equal("application/dicom+json", rsp.Content.Headers.ContentType?.MediaType);
        return JsonDocument.Parse(body).RootElement.Clone();
    }

    private async Task<JsonElement[]> QidoAsync(string url)
    {
        using var rsp = await _http.GetAsync(url);
        if (rsp.StatusCode == HttpStatusCode.NoContent) return [];
        string body = await rsp.Content.ReadAsStringAsync();
        Assert.True(rsp.StatusCode == HttpStatusCode.OK, $"{url}: {rsp.StatusCode} {body}");
        return JsonDocument.Parse(body).RootElement.EnumerateArray().Select(e => e.Clone()).ToArray();
    }

    private static string? Value(JsonElement ds, string tag) =>
        ds.TryGetProperty(tag, out var a) && a.TryGetProperty("Value", out var v) ? v[0].ValueKind == JsonValueKind.Object ? v[0].GetProperty("Alphabetic").GetString() : v[0].ToString() : null;

    private Task<List<(string ContentType, byte[] Body)>> PartsAsync(string url, string? accept = null) => Serve.Multipart.PartsAsync(_http, url, accept);

    private static byte[] PixelData(string path)
    {
        using var file = DicomFile.Open(path);
        var ms = new MemoryStream();
        ((DicomElement)file.Dataset[DicomTags.PixelData]!).Value.CopyTo(ms);
        return ms.ToArray();
    }

    [Fact]
    public async Task A_study_stowed_is_found_by_qido_and_retrieved_by_wado_as_it_was_sent()
    {
        // STOW-RS: all three stored, each referenced with its retrieve URL.
        var stow = await StowAsync("dicom-web/studies", _files.Select(f => f.Path), HttpStatusCode.OK);
        var referenced = stow.GetProperty("00081199").GetProperty("Value").EnumerateArray().ToList();
        Assert.Equal(_files.Select(f => f.SopInstanceUid).Order(), referenced.Select(r => Value(r, "00081155")!).Order());
        Assert.All(referenced, r => Assert.EndsWith($"/studies/{_study}/series/{_series}/instances/{Value(r, "00081155")}", Value(r, "00081190"), StringComparison.Ordinal));
        Assert.False(stow.TryGetProperty("00081198", out _));
        // Sending it again is idempotent: success, stored once.
        await StowAsync($"dicom-web/studies/{_study}", _files.Select(f => f.Path), HttpStatusCode.OK);
        await using (var index = await ArchiveServer.OpenIndexAsync(_server.DataFolder))
            Assert.Equal(3, (await index.CountAsync(CancellationToken.None)).Instances);

        // QIDO-RS at each level, with includefield, limit/offset and fuzzy matching.
        var studies = await QidoAsync($"dicom-web/studies?StudyInstanceUID={_study}&includefield=00081030");
        var s = Assert.Single(studies);
        Assert.Equal("3", Value(s, "00201208"));
        Assert.Equal("Test^Patient", Value(s, "00100010"));
        Assert.True(s.TryGetProperty("00081030", out _)); // the included field, empty
        Assert.Single(await QidoAsync($"dicom-web/studies?PatientID=P11&StudyDate=20260101-20261231"));
        Assert.Single(await QidoAsync($"dicom-web/studies/{_study}/series"));
        var instances = await QidoAsync($"dicom-web/studies/{_study}/series/{_series}/instances");
        Assert.Equal(3, instances.Length);
        Assert.Equal(2, (await QidoAsync($"dicom-web/studies/{_study}/series/{_series}/instances?limit=2")).Length);
        Assert.Single(await QidoAsync($"dicom-web/studies/{_study}/series/{_series}/instances?offset=2"));
        Assert.Empty(await QidoAsync($"dicom-web/studies?PatientName=test^patient"));
        Assert.Single(await QidoAsync($"dicom-web/studies?PatientName=test^patient&fuzzymatching=true"));
        Assert.Single(await QidoAsync($"dicom-web/instances?SOPInstanceUID={_files[1].SopInstanceUid}"));

        // WADO-RS: the study as multipart/related application/dicom, each part the instance as archived.
        var parts = await PartsAsync($"dicom-web/studies/{_study}", "multipart/related; type=\"application/dicom\"; transfer-syntax=*");
        Assert.Equal(3, parts.Count);
        await using (var index = await ArchiveServer.OpenIndexAsync(_server.DataFolder))
        {
            foreach (var (contentType, body) in parts)
            {
                Assert.StartsWith("application/dicom", contentType, StringComparison.Ordinal);
                string received = _dir.File("wado-" + Guid.NewGuid().ToString("N") + ".dcm");
                await File.WriteAllBytesAsync(received, body);
                var sop = StoreFile.Read(received).SopInstanceUid;
                var row = await index.FindInstanceAsync(sop, CancellationToken.None);
                Assert.Equal(await File.ReadAllBytesAsync(await ArchiveServer.BlobFileAsync(_server.DataFolder, row!.Blob, _dir.File("blobs-read"))), body);
                Storescu.AssertSameDataSet(_files.Single(f => f.SopInstanceUid == sop).Path, received);
            }
        }
        Assert.Single(await PartsAsync($"dicom-web/studies/{_study}/series/{_series}/instances/{_files[0].SopInstanceUid}"));

        // Metadata: DICOM JSON without pixel data, which is a bulk data URI that serves the value.
        using var metadata = JsonDocument.Parse(await _http.GetStringAsync($"dicom-web/studies/{_study}/series/{_series}/instances/{_files[0].SopInstanceUid}/metadata"));
        var m = Assert.Single(metadata.RootElement.EnumerateArray().ToList());
        Assert.Equal(_files[0].SopInstanceUid, Value(m, "00080018"));
        Assert.Equal("P11", Value(m, "00100020"));
        string bulk = m.GetProperty("7FE00010").GetProperty("BulkDataURI").GetString()!;
        var bulkParts = await PartsAsync(bulk);
        Assert.Equal(PixelData(_files[0].Path), Assert.Single(bulkParts).Body);
        Assert.Equal(3, JsonDocument.Parse(await _http.GetStringAsync($"dicom-web/studies/{_study}/metadata")).RootElement.GetArrayLength());

        // A frame: the pixel data of this single-frame instance.
        var frame = Assert.Single(await PartsAsync($"dicom-web/studies/{_study}/series/{_series}/instances/{_files[0].SopInstanceUid}/frames/1"));
        Assert.Equal(PixelData(_files[0].Path), frame.Body);

        // WADO-URI.
        var uri = await _http.GetByteArrayAsync($"wado?requestType=WADO&studyUID={_study}&seriesUID={_series}&objectUID={_files[2].SopInstanceUid}&contentType=application/dicom");
        string uriFile = _dir.File("uri.dcm");
        await File.WriteAllBytesAsync(uriFile, uri);
        Storescu.AssertSameDataSet(_files[2].Path, uriFile);
    }

    [Fact]
    public async Task Bad_requests_get_a_4xx_with_the_reason_and_store_nothing()
    {
        async Task Expect(HttpResponseMessage rsp, HttpStatusCode status, string reason)
        {
            string body = await rsp.Content.ReadAsStringAsync();
            Assert.True(rsp.StatusCode == status, $"{rsp.RequestMessage?.RequestUri}: {rsp.StatusCode} {body}");
            Assert.Contains(reason, body, StringComparison.OrdinalIgnoreCase);
        }
        // Not multipart, wrong part type, truncated body, another study's URL.
        await Expect(await _http.PostAsync("dicom-web/studies", new StringContent("{}", null, "application/json")), HttpStatusCode.UnsupportedMediaType, "multipart");
        await Expect(await _http.PostAsync("dicom-web/studies", Multipart([_files[0].Path], "application/octet-stream")), HttpStatusCode.UnsupportedMediaType, "application/dicom");
        var truncated = new ByteArrayContent("--b1\r\nContent-Type: application/dicom\r\n\r\n"u8.ToArray().Concat(await File.ReadAllBytesAsync(_files[0].Path)).ToArray());
        truncated.Headers.TryAddWithoutValidation("Content-Type", "multipart/related; type=\"application/dicom\"; boundary=b1");
        await Expect(await _http.PostAsync("dicom-web/studies", truncated), HttpStatusCode.BadRequest, "delimiter");
        // Over the configured 1 MiB: 413 with the reason, nothing stored.
        var bigFiles = Instances.WriteStudy(_dir.File("big"), 1, 2 * 1024 * 1024, seed: 12);
        await Expect(await _http.PostAsync("dicom-web/studies", Multipart(bigFiles)), HttpStatusCode.RequestEntityTooLarge, "bytes");
        var notDicom = new ByteArrayContent("--b2\r\nContent-Type: application/dicom\r\n\r\nthis is not DICOM\r\n--b2--\r\n"u8.ToArray());
        notDicom.Headers.TryAddWithoutValidation("Content-Type", "multipart/related; type=\"application/dicom\"; boundary=b2");
        var rejected = await _http.PostAsync("dicom-web/studies", notDicom);
        await Expect(rejected, HttpStatusCode.Conflict, "00081198");
        var wrongStudy = await _http.PostAsync($"dicom-web/studies/1.2.3.4.5", Multipart([_files[0].Path]));
        await Expect(wrongStudy, HttpStatusCode.Conflict, "43264"); // FailureReason A900H
        await using (var index = await ArchiveServer.OpenIndexAsync(_server.DataFolder))
            Assert.Equal(0, (await index.CountAsync(CancellationToken.None)).Instances);

        await Expect(await _http.GetAsync("dicom-web/studies/1.2.3.999"), HttpStatusCode.NotFound, "not in the archive");
        await Expect(await _http.GetAsync("dicom-web/studies/not-a-uid/metadata"), HttpStatusCode.BadRequest, "UID");
        await Expect(await _http.GetAsync("dicom-web/studies?NoSuchKeyword=1"), HttpStatusCode.BadRequest, "keyword");
        await Expect(await _http.GetAsync("dicom-web/studies?limit=many"), HttpStatusCode.BadRequest, "limit");
        await Expect(await _http.GetAsync("dicom-web/studies?StudyDate=2026-13"), HttpStatusCode.BadRequest, "DA");

        await StowAsync("dicom-web/studies", [_files[0].Path], HttpStatusCode.OK);
        string instance = $"dicom-web/studies/{_study}/series/{_series}/instances/{_files[0].SopInstanceUid}";
        await Expect(await _http.GetAsync(instance + "/frames/0"), HttpStatusCode.BadRequest, "frame number");
        await Expect(await _http.GetAsync(instance + "/frames/2"), HttpStatusCode.NotFound, "1 frame");
        using (var req = new HttpRequestMessage(HttpMethod.Get, instance))
        {
            req.Headers.TryAddWithoutValidation("Accept", "multipart/related; type=\"application/dicom\"; transfer-syntax=1.2.840.10008.1.2.4.50");
            await Expect(await _http.SendAsync(req), HttpStatusCode.NotAcceptable, "as stored");
        }
        await Expect(await _http.GetAsync($"wado?requestType=WADO&studyUID={_study}&seriesUID={_series}&objectUID={_files[0].SopInstanceUid}"), HttpStatusCode.NotAcceptable, "image/jpeg");
        await using (var index = await ArchiveServer.OpenIndexAsync(_server.DataFolder))
            Assert.Equal(1, (await index.CountAsync(CancellationToken.None)).Instances);
    }

    private async Task<HttpResponseMessage> GetAsync(string url, string accept)
    {
        var req = new HttpRequestMessage(HttpMethod.Get, url);
        req.Headers.TryAddWithoutValidation("Accept", accept);
        return await _http.SendAsync(req);
    }

    private static async Task ExpectStatusAsync(HttpResponseMessage rsp, HttpStatusCode status, string reason)
    {
        string body = await rsp.Content.ReadAsStringAsync();
        Assert.True(rsp.StatusCode == status, $"{rsp.RequestMessage?.RequestUri}: {rsp.StatusCode} {body}");
        Assert.Contains(reason, body, StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public async Task What_the_Accept_header_does_not_take_is_answered_406_naming_the_media_types_on_offer()
    {
        await StowAsync("dicom-web/studies", [_files[0].Path], HttpStatusCode.OK);
        string instance = $"dicom-web/studies/{_study}/series/{_series}/instances/{_files[0].SopInstanceUid}";
        // Regressions: these came back as JSON, JSON and application/octet-stream.
        await ExpectStatusAsync(await GetAsync(instance + "/metadata", "multipart/related; type=\"application/dicom+xml\""), HttpStatusCode.NotAcceptable, "application/dicom+json");
        await ExpectStatusAsync(await GetAsync($"dicom-web/studies?StudyInstanceUID={_study}", "text/html"), HttpStatusCode.NotAcceptable, "application/dicom+json");
        await ExpectStatusAsync(await GetAsync(instance + "/bulkdata/7FE00010", "image/png"), HttpStatusCode.NotAcceptable, "multipart/related; type=\"application/octet-stream\"");
        await ExpectStatusAsync(await GetAsync(instance + "/frames/1", "image/jpeg"), HttpStatusCode.NotAcceptable, "application/octet-stream");
        await ExpectStatusAsync(await GetAsync(instance, "application/dicom+json"), HttpStatusCode.NotAcceptable, "multipart/related; type=\"application/dicom\"");

        // What is asked for is served: q-values weigh, wildcards and a single part where one is on offer.
        using (var json = await GetAsync(instance + "/metadata", "text/html;q=0.9, application/json"))
        {
            Assert.Equal(HttpStatusCode.OK, json.StatusCode);
            Assert.Equal("application/json", json.Content.Headers.ContentType?.MediaType);
        }
        using (var any = await GetAsync($"dicom-web/studies?StudyInstanceUID={_study}", "*/*"))
            Assert.Equal("application/dicom+json", any.Content.Headers.ContentType?.MediaType);
        using (var single = await GetAsync(instance + "/bulkdata/7FE00010", "application/octet-stream"))
        {
            Assert.Equal(HttpStatusCode.OK, single.StatusCode);
            Assert.Equal("application/octet-stream", single.Content.Headers.ContentType?.MediaType);
            Assert.Equal(PixelData(_files[0].Path), await single.Content.ReadAsByteArrayAsync());
        }
        using (var frame = await GetAsync(instance + "/frames/1", "application/octet-stream"))
        {
            Assert.Equal(HttpStatusCode.OK, frame.StatusCode);
            Assert.Equal(PixelData(_files[0].Path), await frame.Content.ReadAsByteArrayAsync());
        }
        Assert.Single(await PartsAsync(instance + "/bulkdata/7FE00010", "multipart/related; type=\"application/octet-stream\""));
        await ExpectStatusAsync(await GetAsync(instance + "/metadata", "application/dicom+json;q=0"), HttpStatusCode.NotAcceptable, "application/dicom+json");
    }

    [Fact]
    public async Task Dates_and_times_that_do_not_exist_are_400_and_every_error_response_says_why()
    {
        // Regressions: these answered 204 (the format was checked, not whether the day exists).
        await ExpectStatusAsync(await _http.GetAsync("dicom-web/studies?StudyDate=20241345"), HttpStatusCode.BadRequest, "no such day");
        await ExpectStatusAsync(await _http.GetAsync("dicom-web/studies?StudyTime=256199"), HttpStatusCode.BadRequest, "hours run from 00 to 23");
        await ExpectStatusAsync(await _http.GetAsync("dicom-web/studies?StudyTime=126199"), HttpStatusCode.BadRequest, "minutes");
        await ExpectStatusAsync(await _http.GetAsync("dicom-web/studies?StudyDate=20240230-20240301"), HttpStatusCode.BadRequest, "no such day");
        await ExpectStatusAsync(await _http.GetAsync("dicom-web/studies?StudyDate=20241345-"), HttpStatusCode.BadRequest, "no such day");
        Assert.Empty(await QidoAsync("dicom-web/studies?StudyDate=20240229"));      // a leap day exists
        Assert.Empty(await QidoAsync("dicom-web/studies?StudyTime=235960.123456")); // a leap second too

        // Routes that match nothing and methods a resource does not take: the body says why.
        await ExpectStatusAsync(await _http.GetAsync($"dicom-web/studies/{_study}/thumbnail"), HttpStatusCode.NotFound, "no resource at /dicom-web/studies");
        await ExpectStatusAsync(await _http.DeleteAsync($"dicom-web/studies/{_study}"), HttpStatusCode.MethodNotAllowed, "DELETE is not allowed");
        await ExpectStatusAsync(await _http.GetAsync("nothing-here"), HttpStatusCode.NotFound, "DICOMweb is served under /dicom-web");
    }
}
