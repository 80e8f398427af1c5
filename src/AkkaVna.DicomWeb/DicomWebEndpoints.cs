using AkkaVna.Core.Blobs;
using System.Buffers;
using System.Globalization;
using AkkaVna.Dicom;
using AkkaVna.Dicom.Dictionary;
using AkkaVna.Dicom.Imaging;
using AkkaVna.Dicom.Buffers;
using AkkaVna.Dicom.IO;
using AkkaVna.Dicom.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.Logging;
using AkkaVna.Core.Ingest;
using AkkaVna.Core.Model;
using AkkaVna.Core.Ports;
using AkkaVna.Core.Query;

namespace AkkaVna.DicomWeb;

/// <summary>
/// DICOMweb (PS3.18) on the node's HTTP port under <c>/dicom-web</c>: QIDO-RS on the same query engine as C-FIND,
/// WADO-RS (instances as multipart/related application/dicom streamed from the blobs, metadata as DICOM JSON with bulk
/// data URIs, frames, bulk data), STOW-RS into the same ingest path as C-STORE (the study actors commit, a success is
/// durable), and WADO-URI at <c>/wado</c>. Errors are HTTP 4xx with the reason as the body.
/// </summary>
public sealed class DicomWebEndpoints(QueryEngine engine, IArchiveIndex index, IBlobStore blobs, IngestService ingest, string spoolFolder, MultipartLimits limits, ILogger log,
    IPixelTranscoder? transcoder = null)
{
    public const string Prefix = "/dicom-web";

    /// <summary>Where the HTTP access check leaves a request's authenticated user (the token's subject), for the audit trail.</summary>
    public const string UserItem = "akka-vna.user";

    /// <summary>The audit trail reads, queries and stores are reported to, and this archive as its participant (none: not audited).</summary>
    public AkkaVna.Core.Audit.IAuditTrail Audit { get; init; } = AkkaVna.Core.Audit.IAuditTrail.None;
    public AkkaVna.Core.Audit.AuditParticipant? Archive { get; init; }

    /// <summary>How STOW-RS parts and converted copies are spooled: plain, or encrypted (encryption at rest).</summary>
    public Spool Spool { get; init; } = Spool.Plain;

    /// <summary>The client of a request as an audit participant: its user when it showed a token, and the address it came from.</summary>
    private static AkkaVna.Core.Audit.AuditParticipant Client(HttpContext c, AkkaVna.Core.Audit.AuditRole role)
    {
        var address = c.Connection.RemoteIpAddress;
        string? host = address is null ? null : (address.IsIPv4MappedToIPv6 ? address.MapToIPv4() : address).ToString();
        return new(c.Items[UserItem] as string ?? host ?? "unknown", null, host, IsRequestor: true, role);
    }

    /// <summary>DICOM Instances Transferred (read) for instances an HTTP client is served, per study.</summary>
    private void AuditServed(HttpContext c, IReadOnlyCollection<IndexedInstance> instances)
    {
        if (Archive is not { } archive || instances.Count == 0) return;
        var studies = instances.GroupBy(i => i.StudyInstanceUid, StringComparer.Ordinal).Select(g => new AkkaVna.Core.Audit.AuditStudy(g.Key,
            g.GroupBy(i => i.SopClassUid, StringComparer.Ordinal).ToDictionary(k => k.Key, k => k.Count(), StringComparer.Ordinal))).ToList();
        Audit.Record(new AkkaVna.Core.Audit.InstancesTransferred(DateTimeOffset.UtcNow, AkkaVna.Core.Audit.AuditOutcome.Success, null, Created: false,
            archive with { Role = AkkaVna.Core.Audit.AuditRole.Source }, Client(c, AkkaVna.Core.Audit.AuditRole.Destination), null, studies));
    }

    private static readonly DicomTag[] StudyDefaults =
    [
        DicomTags.StudyDate, DicomTags.StudyTime, DicomTags.AccessionNumber, DicomTags.ModalitiesInStudy, DicomTags.ReferringPhysicianName, DicomTags.PatientName,
        DicomTags.PatientID, DicomTags.PatientBirthDate, DicomTags.PatientSex, DicomTags.StudyInstanceUID, DicomTags.StudyID, DicomTags.NumberOfStudyRelatedSeries,
        DicomTags.NumberOfStudyRelatedInstances,
    ];

    private static readonly DicomTag[] SeriesDefaults =
    [
        DicomTags.Modality, DicomTags.SeriesDescription, DicomTags.SeriesNumber, DicomTags.SeriesInstanceUID, DicomTags.NumberOfSeriesRelatedInstances, DicomTags.BodyPartExamined,
    ];

    private static readonly DicomTag[] InstanceDefaults =
    [
        DicomTags.SOPClassUID, DicomTags.SOPInstanceUID, DicomTags.InstanceNumber, DicomTags.Rows, DicomTags.Columns, DicomTags.NumberOfFrames,
    ];

    public void Map(IEndpointRouteBuilder app)
    {
        var g = app.MapGroup(Prefix);
        g.MapGet("/studies", c => QidoAsync(c, QueryLevel.Study, null, null));
        g.MapGet("/series", c => QidoAsync(c, QueryLevel.Series, null, null));
        g.MapGet("/instances", c => QidoAsync(c, QueryLevel.Image, null, null));
        g.MapGet("/studies/{study}/series", c => QidoAsync(c, QueryLevel.Series, Route(c, "study"), null));
        g.MapGet("/studies/{study}/instances", c => QidoAsync(c, QueryLevel.Image, Route(c, "study"), null));
        g.MapGet("/studies/{study}/series/{series}/instances", c => QidoAsync(c, QueryLevel.Image, Route(c, "study"), Route(c, "series")));

        g.MapGet("/studies/{study}", c => WadoAsync(c, Route(c, "study"), null, null));
        g.MapGet("/studies/{study}/series/{series}", c => WadoAsync(c, Route(c, "study"), Route(c, "series"), null));
        g.MapGet("/studies/{study}/series/{series}/instances/{instance}", c => WadoAsync(c, Route(c, "study"), Route(c, "series"), Route(c, "instance")));
        g.MapGet("/studies/{study}/metadata", c => MetadataAsync(c, Route(c, "study"), null, null));
        g.MapGet("/studies/{study}/series/{series}/metadata", c => MetadataAsync(c, Route(c, "study"), Route(c, "series"), null));
        g.MapGet("/studies/{study}/series/{series}/instances/{instance}/metadata", c => MetadataAsync(c, Route(c, "study"), Route(c, "series"), Route(c, "instance")));
        g.MapGet("/studies/{study}/series/{series}/instances/{instance}/frames/{frames}", FramesAsync);
        g.MapGet("/studies/{study}/series/{series}/instances/{instance}/bulkdata/{tag}", BulkDataAsync);
        g.MapGet("/studies/{study}/series/{series}/instances/{instance}/rendered", c => RenderedAsync(c, 1, thumbnail: false));
        g.MapGet("/studies/{study}/series/{series}/instances/{instance}/thumbnail", c => RenderedAsync(c, 1, thumbnail: true));
        g.MapGet("/studies/{study}/series/{series}/instances/{instance}/frames/{frame:int}/rendered", c => RenderedAsync(c, int.Parse(Route(c, "frame"), CultureInfo.InvariantCulture), thumbnail: false));
        g.MapGet("/studies/{study}/series/{series}/instances/{instance}/frames/{frame:int}/thumbnail", c => RenderedAsync(c, int.Parse(Route(c, "frame"), CultureInfo.InvariantCulture), thumbnail: true));

        g.MapPost("/studies", c => StowAsync(c, null));
        g.MapPost("/studies/{study}", c => StowAsync(c, Route(c, "study")));
        app.MapGet("/wado", WadoUriAsync);
    }

    private static string Route(HttpContext c, string name) => (string)c.Request.RouteValues[name]!;

    /// <summary>A request that cannot be served: the status and the reason (the response body).</summary>
    private sealed class WebException(int status, string reason) : Exception(reason)
    {
        public int Status { get; } = status;
    }

    private static async Task Guard(HttpContext c, Func<Task> handle)
    {
        try
        {
            await handle();
        }
        catch (WebException e) when (!c.Response.HasStarted)
        {
            c.Response.StatusCode = e.Status;
            c.Response.ContentType = "text/plain; charset=utf-8";
            await c.Response.WriteAsync(e.Message + "\n");
        }
        catch (NotAcceptableException e) when (!c.Response.HasStarted)
        {
            c.Response.StatusCode = StatusCodes.Status406NotAcceptable;
            c.Response.ContentType = "text/plain; charset=utf-8";
            await c.Response.WriteAsync(e.Message + "\n");
        }
    }

    /// <summary>DICOM JSON (PS3.18 F), the only form of QIDO-RS results and metadata served here (XML, PS3.19, is not).</summary>
    private static readonly MediaOffer[] JsonOffers = [new("application/dicom+json"), new("application/json")];

    private static readonly MediaOffer DicomParts = MediaOffer.Multipart("application/dicom");
    private static readonly MediaOffer OctetParts = MediaOffer.Multipart("application/octet-stream");
    private static readonly MediaOffer Octets = new("application/octet-stream");

    private static MediaChoice Negotiate(HttpContext c, params MediaOffer[] offers) => ContentNegotiation.Negotiate(c.Request.Headers.Accept.ToString(), offers);

    private static string CheckUid(string uid, string what) =>
        DicomUidRegistry.IsWellFormed(uid) ? uid : throw new WebException(StatusCodes.Status400BadRequest, $"'{uid}' is not a {what} UID (digits and dots, at most 64 characters)");

    private static string BaseUrl(HttpContext c) => $"{c.Request.Scheme}://{c.Request.Host}{Prefix}";

    // ------------------------------------------------------------------ QIDO-RS

    private Task QidoAsync(HttpContext c, QueryLevel level, string? study, string? series) => Guard(c, async () =>
    {
        var media = Negotiate(c, JsonOffers).Offer.Type;
        var id = new DicomDataset();
        id.AddString(DicomTags.SpecificCharacterSet, DicomVR.CS, "ISO_IR 192");
        id.AddString(DicomTags.QueryRetrieveLevel, DicomVR.CS, level switch { QueryLevel.Study => "STUDY", QueryLevel.Series => "SERIES", _ => "IMAGE" });
        if (study is not null) id.AddString(DicomTags.StudyInstanceUID, DicomVR.UI, CheckUid(study, "Study Instance"));
        if (series is not null) id.AddString(DicomTags.SeriesInstanceUID, DicomVR.UI, CheckUid(series, "Series Instance"));
        int offset = 0, limit = int.MaxValue;
        bool fuzzy = false, all = false;
        var include = new List<DicomTag>();
        foreach (var (key, values) in c.Request.Query)
        {
            foreach (var value in values.Select(v => v ?? ""))
            {
                switch (key)
                {
                    case "limit":
                        limit = int.TryParse(value, CultureInfo.InvariantCulture, out var l) && l >= 0 ? l : throw new WebException(400, $"limit '{value}' is not a count");
                        break;
                    case "offset":
                        offset = int.TryParse(value, CultureInfo.InvariantCulture, out var o) && o >= 0 ? o : throw new WebException(400, $"offset '{value}' is not a count");
                        break;
                    case "fuzzymatching":
                        fuzzy = value.Equals("true", StringComparison.OrdinalIgnoreCase) ? true
                            : value.Equals("false", StringComparison.OrdinalIgnoreCase) ? false : throw new WebException(400, $"fuzzymatching must be true or false, not '{value}'");
                        break;
                    case "includefield":
                        foreach (var field in value.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
                        {
                            if (field == "all") all = true;
                            else include.Add(Attribute(field));
                        }
                        break;
                    default:
                        var tag = Attribute(key);
                        if (tag == DicomTags.QueryRetrieveLevel || tag == DicomTags.SpecificCharacterSet) throw new WebException(400, $"{key} is not a query key");
                        AddKey(id, tag, value);
                        break;
                }
            }
        }
        var defaults = level switch
        {
            QueryLevel.Study => StudyDefaults,
            QueryLevel.Series => [.. SeriesDefaults, DicomTags.StudyInstanceUID],
            _ => [.. InstanceDefaults, DicomTags.StudyInstanceUID, DicomTags.SeriesInstanceUID],
        };
        if (all) defaults = [.. defaults, .. StudyDefaults, .. (level == QueryLevel.Study ? [] : SeriesDefaults)];
        foreach (var tag in defaults.Concat(include).Where(t => !id.Contains(t))) AddKey(id, tag, "");

        var matches = new List<DicomDataset>();
        bool truncated = false;
        int seen = 0;
        try
        {
            await foreach (var m in engine.FindAsync(InformationModel.StudyRoot, id, c.RequestAborted, fuzzy ? true : null))
            {
                if (seen++ < offset) continue;
                if (matches.Count == limit) break;
                matches.Add(m.Identifier);
            }
        }
        catch (QueryException e)
        {
            throw new WebException(400, e.Message);
        }
        catch (TooManyMatchesException)
        {
            truncated = true; // the results so far are sent, with a warning (PS3.18 8.3.4.3)
        }
        // Query (A.5.3.12): the request's path and query string as asked, by whom.
        if (Archive is { } archive)
            Audit.Record(new AkkaVna.Core.Audit.QueryAudit(DateTimeOffset.UtcNow, AkkaVna.Core.Audit.AuditOutcome.Success, null,
                Client(c, AkkaVna.Core.Audit.AuditRole.None), archive, DicomUids.StudyRootQueryRetrieveInformationModelFind,
                System.Text.Encoding.UTF8.GetBytes(c.Request.Path + c.Request.QueryString)));
        if (matches.Count == 0)
        {
            c.Response.StatusCode = StatusCodes.Status204NoContent;
            return;
        }
        if (truncated) c.Response.Headers["Warning"] = $"299 akka-vna: more than {engine.Settings.MaxMatches} matches; the first ones are returned: narrow the query";
        c.Response.ContentType = media;
        string baseUrl = BaseUrl(c);
        await using var body = new MemoryStream();
        body.Write("["u8);
        for (int i = 0; i < matches.Count; i++)
        {
            var ds = matches[i];
            ds.Remove(DicomTags.QueryRetrieveLevel);
            ds.Remove(DicomTags.SpecificCharacterSet);
            ds.AddString(DicomTags.RetrieveURL, DicomVR.UR, RetrieveUrl(baseUrl, ds, level));
            if (i > 0) body.Write(","u8);
            DicomJsonWriter.Write(body, ds);
        }
        body.Write("]"u8);
        body.Position = 0;
        await body.CopyToAsync(c.Response.Body, c.RequestAborted);
    });

    private static string RetrieveUrl(string baseUrl, DicomDataset ds, QueryLevel level)
    {
        string url = $"{baseUrl}/studies/{ds.GetString(DicomTags.StudyInstanceUID)}";
        if (level >= QueryLevel.Series) url += $"/series/{ds.GetString(DicomTags.SeriesInstanceUID)}";
        if (level == QueryLevel.Image) url += $"/instances/{ds.GetString(DicomTags.SOPInstanceUID)}";
        return url;
    }

    /// <summary>A query parameter's attribute: a keyword (PatientName) or a tag (00100010).</summary>
    private static DicomTag Attribute(string name)
    {
        if (name.Length == 8 && uint.TryParse(name, NumberStyles.HexNumber, CultureInfo.InvariantCulture, out uint value)) return new DicomTag(value);
        if (name.Contains('.', StringComparison.Ordinal)) throw new WebException(400, $"'{name}': nested attributes (sequence matching) are not supported");
        return DicomDictionary.Lookup(name) is { } entry ? new DicomTag(entry.Tag) : throw new WebException(400, $"'{name}' is neither a DICOM keyword nor a tag (8 hex digits)");
    }

    private static void AddKey(DicomDataset id, DicomTag tag, string value)
    {
        var vr = DicomDictionary.ImplicitVR(tag);
        if (vr == DicomVR.SQ)
        {
            if (value.Length > 0) throw new WebException(400, $"{tag}: sequence matching is not supported");
            id.Add(new DicomSequence(tag));
        }
        else if (value.Length == 0) id.AddBytes(tag, vr, Dicom.Buffers.MemoryByteBuffer.Empty);
        else if (vr is DicomVR.US)
            id.AddUInt16(tag, ushort.TryParse(value, CultureInfo.InvariantCulture, out var us) ? us : throw new WebException(400, $"{tag}: '{value}' is not an unsigned short"));
        else if (vr.IsString()) id.AddString(tag, vr, value);
        else throw new WebException(400, $"{tag} ({vr}) cannot be a query key");
    }

    // ------------------------------------------------------------------ WADO-RS

    private async Task<List<IndexedInstance>> InstancesAsync(HttpContext c, string study, string? series, string? instance, CancellationToken ct)
    {
        CheckUid(study, "Study Instance");
        if (series is not null) CheckUid(series, "Series Instance");
        if (instance is not null) CheckUid(instance, "SOP Instance");
        var list = new List<IndexedInstance>();
        await foreach (var i in index.ListInstancesAsync(study, ct))
            if ((series is null || i.SeriesInstanceUid == series) && (instance is null || i.SopInstanceUid == instance)) list.Add(i);
        if (list.Count == 0)
            throw new WebException(404, instance is not null ? $"instance {instance} of series {series} of study {study} is not in the archive"
                : series is not null ? $"series {series} of study {study} is not in the archive" : $"study {study} is not in the archive");
        AuditServed(c, list);
        return list;
    }

    private static bool IsNative(DicomTransferSyntax ts) => ts is { IsEncapsulated: false, IsFileEncoding: true, IsDeflated: false };

    /// <summary>
    /// The syntax an instance is sent in (PS3.18 8.7.3): as stored for <c>transfer-syntax=*</c>; the one asked for when it
    /// is stored so or can be written so (a native syntax, decoding or compressing as needed); without a parameter,
    /// Explicit VR Little Endian (the standard's default) when the pixels can be decoded, else as stored.
    /// </summary>
    private DicomTransferSyntax SyntaxFor(IndexedInstance i, string? asked)
    {
        var stored = DicomTransferSyntax.Lookup(i.TransferSyntaxUid) ?? throw new WebException(500, $"instance {i.SopInstanceUid} is stored in an unknown syntax {i.TransferSyntaxUid}");
        if (asked == "*" || asked == stored.Uid) return stored;
        var explicitLe = DicomTransferSyntax.ExplicitVRLittleEndian;
        if (asked is null) return IsNative(stored) || transcoder?.CanTranscode(stored, explicitLe) != true ? stored : explicitLe;
        var to = DicomTransferSyntax.Lookup(asked) ?? throw new WebException(406, $"transfer-syntax {asked} is not a transfer syntax this archive knows");
        if ((IsNative(stored) && IsNative(to)) || transcoder?.CanTranscode(stored, to) == true) return to;
        throw new WebException(406, $"instance {i.SopInstanceUid} is stored in {stored.Uid} and cannot be served in {to.Uid} (transfer-syntax=* serves it as stored)");
    }

    private Task WadoAsync(HttpContext c, string study, string? series, string? instance) => Guard(c, async () =>
    {
        string? asked = Negotiate(c, DicomParts).TransferSyntax;
        var instances = await InstancesAsync(c, study, series, instance, c.RequestAborted);
        var syntaxes = instances.Select(i => SyntaxFor(i, asked)).ToList(); // every 406 before the first byte
        var writer = new MultipartRelatedWriter(c.Response.Body, "application/dicom");
        c.Response.ContentType = writer.ContentType;
        for (int n = 0; n < instances.Count; n++)
        {
            var (i, to) = (instances[n], syntaxes[n]);
            await using var content = await InstanceBlobs.OpenAsync(blobs, index, i.SopInstanceUid, i.Blob, c.RequestAborted);
            if (to.Uid == i.TransferSyntaxUid)
            {
                await using var blob = content.OpenRead();
                await writer.WritePartAsync($"application/dicom; transfer-syntax={i.TransferSyntaxUid}", blob, null, c.RequestAborted);
                continue;
            }
            // Written in the syntax asked for, a frame at a time, straight into the response.
            if (c.Features.Get<Microsoft.AspNetCore.Http.Features.IHttpBodyControlFeature>() is { } control) control.AllowSynchronousIO = true;
            using var file = DicomFile.Open(content, new DicomReadOptions { TempDirectory = spoolFolder, Spool = Spool });
            var from = file.TransferSyntax;
            await writer.WritePartAsync($"application/dicom; transfer-syntax={to.Uid}", (s, ct) =>
            {
                using var buffered = new BufferedStream(s, 256 * 1024);
                buffered.Write(new byte[128]);
                buffered.Write("DICM"u8);
                DicomWriter.WriteFileMeta(buffered, DicomWriter.BuildFileMeta(file.Dataset, to, file.FileMetaInfo));
                if (IsNative(from) && IsNative(to)) DicomWriter.WriteDataset(buffered, file.Dataset, to);
                else transcoder!.WriteDataset(file.Dataset, from, to, buffered, ct);
                buffered.Flush();
                return Task.CompletedTask;
            }, null, c.RequestAborted);
        }
        await writer.CompleteAsync(c.RequestAborted);
    });

    private Task MetadataAsync(HttpContext c, string study, string? series, string? instance) => Guard(c, async () =>
    {
        var media = Negotiate(c, JsonOffers).Offer.Type;
        var instances = await InstancesAsync(c, study, series, instance, c.RequestAborted);
        string baseUrl = BaseUrl(c);
        c.Response.ContentType = media;
        await using var body = new MemoryStream();
        body.Write("["u8);
        bool first = true;
        foreach (var i in instances)
        {
            // Large values stay in the blob: the JSON names them by bulk data URI.
            await using var content = await InstanceBlobs.OpenAsync(blobs, index, i.SopInstanceUid, i.Blob, c.RequestAborted);
            using var file = DicomFile.Open(content, new DicomReadOptions { TempDirectory = spoolFolder, Spool = Spool });
            string instanceUrl = $"{baseUrl}/studies/{i.StudyInstanceUid}/series/{i.SeriesInstanceUid}/instances/{i.SopInstanceUid}";
            var options = new DicomJsonOptions
            {
                BinaryMode = DicomJsonBinaryMode.BulkDataUri,
                InlineThreshold = 0,
                BulkDataUri = (path, _) => $"{instanceUrl}/bulkdata/{path}",
            };
            if (!first) body.Write(","u8);
            first = false;
            DicomJsonWriter.Write(body, file.Dataset, options);
            if (body.Length > 64 * 1024)
            {
                body.Position = 0;
                await body.CopyToAsync(c.Response.Body, c.RequestAborted);
                body.SetLength(0);
            }
        }
        body.Write("]"u8);
        body.Position = 0;
        await body.CopyToAsync(c.Response.Body, c.RequestAborted);
    });

    private Task FramesAsync(HttpContext c) => Guard(c, async () =>
    {
        var instance = (await InstancesAsync(c, Route(c, "study"), Route(c, "series"), Route(c, "instance"), c.RequestAborted))[0];
        var numbers = Route(c, "frames").Split(',', StringSplitOptions.TrimEntries).Select(f => int.TryParse(f, CultureInfo.InvariantCulture, out int n) && n >= 1 ? n
            : throw new WebException(400, $"'{f}' is not a frame number (1, 2, ...)")).ToList();
        // One frame may come as a single part; several only as multipart/related.
        var choice = numbers.Count == 1 ? Negotiate(c, OctetParts, Octets) : Negotiate(c, OctetParts);
        string? syntax = choice.TransferSyntax;
        var stored = DicomTransferSyntax.Lookup(instance.TransferSyntaxUid);
        // Frames as stored (transfer-syntax=* or the stored one), or native: decoded when stored compressed (the default, PS3.18 8.7.3).
        bool nativeAsked = syntax is null || syntax == DicomUids.ExplicitVRLittleEndian;
        bool asStored = syntax == "*" || syntax == instance.TransferSyntaxUid || (stored is not null && IsNative(stored) && nativeAsked);
        bool decode = !asStored && nativeAsked && stored is not null && transcoder?.CanDecode(stored) == true;
        if (!asStored && !decode)
            throw new WebException(406, $"the frames are stored in {instance.TransferSyntaxUid} and cannot be served in {syntax ?? DicomUids.ExplicitVRLittleEndian} (transfer-syntax=* serves them as stored)");
        string servedSyntax = asStored ? instance.TransferSyntaxUid : DicomUids.ExplicitVRLittleEndian;
        await using var content = await InstanceBlobs.OpenAsync(blobs, index, instance.SopInstanceUid, instance.Blob, c.RequestAborted);
        using var file = DicomFile.Open(content, new DicomReadOptions { TempDirectory = spoolFolder, Spool = Spool });
        PixelDataFrames frames;
        try
        {
            frames = PixelDataFrames.Of(file.Dataset);
        }
        catch (PixelDataException e)
        {
            throw new WebException(404, $"instance {instance.SopInstanceUid} has no frames to serve: {e.Reason}");
        }
        foreach (int n in numbers.Where(n => n > frames.Count))
            throw new WebException(404, $"instance {instance.SopInstanceUid} has {frames.Count} frame(s), not {n}");
        async Task CopyFrameAsync(int n, Stream s, CancellationToken ct)
        {
            var frame = frames.GetFrame(n);
            if (asStored)
            {
                await frame.CopyToAsync(s, ct);
                return;
            }
            var encoded = new byte[frame.Length];
            await using (var f = frame.Open()) await f.ReadExactlyAsync(encoded, ct);
            await s.WriteAsync(transcoder!.DecodeFrame(file.Dataset, stored!, encoded), ct);
        }
        if (!choice.Offer.IsMultipart)
        {
            c.Response.ContentType = $"application/octet-stream; transfer-syntax={servedSyntax}";
            await CopyFrameAsync(numbers[0], c.Response.Body, c.RequestAborted);
            return;
        }
        var writer = new MultipartRelatedWriter(c.Response.Body, "application/octet-stream");
        c.Response.ContentType = writer.ContentType + $"; transfer-syntax={servedSyntax}";
        foreach (int n in numbers)
            await writer.WritePartAsync($"application/octet-stream; transfer-syntax={servedSyntax}", (s, ct) => CopyFrameAsync(n, s, ct), null, c.RequestAborted);
        await writer.CompleteAsync(c.RequestAborted);
    });

    private static readonly MediaOffer[] PictureOffers = [new("image/png")], PictureOffersWithJpeg = [new("image/png"), new("image/jpeg")];

    /// <summary>
    /// A frame as a picture (PS3.18 8.3.5, 9.5): PNG (the default) or JPEG (when the Accept header asks for it, with
    /// <c>quality=1..100</c>, 90 unless told), windowed from the header (<see cref="FrameRenderer"/>), decoded first when
    /// stored compressed; <c>viewport=W,H</c> fits it into W x H; a thumbnail fits 128 x 128 unless told otherwise.
    /// </summary>
    private Task RenderedAsync(HttpContext c, int number, bool thumbnail) => Guard(c, async () =>
    {
        bool jpeg = Negotiate(c, transcoder is null ? PictureOffers : PictureOffersWithJpeg).Offer.Type == "image/jpeg";
        int quality = 90;
        if (c.Request.Query["quality"].ToString() is { Length: > 0 } q && (!int.TryParse(q, CultureInfo.InvariantCulture, out quality) || quality is < 1 or > 100))
            throw new WebException(400, $"quality '{q}' is not a number from 1 to 100");
        var instance = (await InstancesAsync(c, Route(c, "study"), Route(c, "series"), Route(c, "instance"), c.RequestAborted))[0];
        int maxWidth = thumbnail ? 128 : int.MaxValue, maxHeight = thumbnail ? 128 : int.MaxValue;
        if (c.Request.Query["viewport"].ToString() is { Length: > 0 } viewport)
        {
            var parts = viewport.Split(',');
            if (parts.Length != 2 || !int.TryParse(parts[0], CultureInfo.InvariantCulture, out maxWidth) || !int.TryParse(parts[1], CultureInfo.InvariantCulture, out maxHeight)
                || maxWidth is < 1 or > 65535 || maxHeight is < 1 or > 65535)
                throw new WebException(400, $"viewport '{viewport}' is not WIDTH,HEIGHT in pixels");
        }
        var stored = DicomTransferSyntax.Lookup(instance.TransferSyntaxUid);
        await using var content = await InstanceBlobs.OpenAsync(blobs, index, instance.SopInstanceUid, instance.Blob, c.RequestAborted);
        using var file = DicomFile.Open(content, new DicomReadOptions { TempDirectory = spoolFolder, Spool = Spool });
        FrameRenderer.Picture picture;
        try
        {
            var frames = PixelDataFrames.Of(file.Dataset);
            if (number > frames.Count) throw new WebException(404, $"instance {instance.SopInstanceUid} has {frames.Count} frame(s), not {number}");
            var frame = frames.GetFrame(number);
            if (frame.Length > 512L * 1024 * 1024) throw new WebException(413, $"frame {number} has {frame.Length} bytes, more than is rendered");
            var bytes = new byte[frame.Length];
            await using (var f = frame.Open()) await f.ReadExactlyAsync(bytes, c.RequestAborted);
            if (frames.IsEncapsulated)
            {
                if (stored is null || transcoder?.CanDecode(stored) != true)
                    throw new WebException(406, $"instance {instance.SopInstanceUid} is stored in {instance.TransferSyntaxUid}, which this archive cannot decode to render");
                bytes = transcoder.DecodeFrame(file.Dataset, stored, bytes);
            }
            bool rgb = frames.IsEncapsulated && instance.TransferSyntaxUid is "1.2.840.10008.1.2.4.50" or "1.2.840.10008.1.2.4.51";
            picture = FrameRenderer.Fit(FrameRenderer.Render(file.Dataset, bytes, decodedAsRgb: rgb), maxWidth, maxHeight);
        }
        catch (PixelDataException e)
        {
            throw new WebException(406, $"instance {instance.SopInstanceUid} cannot be rendered: {e.Reason}");
        }
        using var image = new MemoryStream();
        if (jpeg)
        {
            try
            {
                image.Write(transcoder!.EncodeJpeg(picture, quality));
            }
            catch (PixelDataException e)
            {
                throw new WebException(406, $"instance {instance.SopInstanceUid} cannot be rendered as JPEG: {e.Reason} (ask for image/png)");
            }
        }
        else FrameRenderer.WritePng(picture, image);
        c.Response.ContentType = jpeg ? "image/jpeg" : "image/png";
        c.Response.ContentLength = image.Length;
        image.Position = 0;
        await image.CopyToAsync(c.Response.Body, c.RequestAborted);
    });

    private Task BulkDataAsync(HttpContext c) => Guard(c, async () =>
    {
        var choice = Negotiate(c, OctetParts, Octets);
        var instance = (await InstancesAsync(c, Route(c, "study"), Route(c, "series"), Route(c, "instance"), c.RequestAborted))[0];
        string path = Route(c, "tag");
        if (path.Length != 8 || !uint.TryParse(path, NumberStyles.HexNumber, CultureInfo.InvariantCulture, out uint tagValue))
            throw new WebException(404, $"'{path}': bulk data is served for top-level attributes (8 hex digits)");
        await using var content = await InstanceBlobs.OpenAsync(blobs, index, instance.SopInstanceUid, instance.Blob, c.RequestAborted);
        using var file = DicomFile.Open(content, new DicomReadOptions { TempDirectory = spoolFolder, Spool = Spool });
        var element = file.Dataset[new DicomTag(tagValue)] as DicomElement
            ?? throw new WebException(404, $"instance {instance.SopInstanceUid} has no value for {path} (encapsulated pixel data: ask for its frames)");
        // A value copies itself in chunks, synchronously (from its file, byte-swapped or not): allowed for this response.
        if (c.Features.Get<Microsoft.AspNetCore.Http.Features.IHttpBodyControlFeature>() is { } control) control.AllowSynchronousIO = true;
        if (!choice.Offer.IsMultipart)
        {
            c.Response.ContentType = "application/octet-stream";
            c.Response.ContentLength = element.Value.Length;
            element.Value.CopyTo(c.Response.Body);
            return;
        }
        var writer = new MultipartRelatedWriter(c.Response.Body, "application/octet-stream");
        c.Response.ContentType = writer.ContentType;
        await writer.WritePartAsync("application/octet-stream", (s, _) =>
        {
            element.Value.CopyTo(s);
            return Task.CompletedTask;
        }, null, c.RequestAborted);
        await writer.CompleteAsync(c.RequestAborted);
    });

    // ------------------------------------------------------------------ WADO-URI

    private Task WadoUriAsync(HttpContext c) => Guard(c, async () =>
    {
        var q = c.Request.Query;
        if (q["requestType"] != "WADO") throw new WebException(400, "requestType must be WADO");
        string study = CheckUid(q["studyUID"].ToString(), "Study Instance"), series = CheckUid(q["seriesUID"].ToString(), "Series Instance");
        string sop = CheckUid(q["objectUID"].ToString(), "SOP Instance");
        string contentType = q["contentType"].ToString();
        if (contentType is not ("application/dicom" or ""))
            throw new WebException(406, $"contentType {contentType} is not served: this archive keeps instances as they are (ask for contentType=application/dicom)");
        if (contentType.Length == 0)
            throw new WebException(406, "WADO-URI's default content type is image/jpeg, which this archive does not render: ask for contentType=application/dicom");
        var instance = await index.FindInstanceAsync(sop, c.RequestAborted);
        if (instance is null || instance.StudyInstanceUid != study || instance.SeriesInstanceUid != series)
            throw new WebException(404, $"instance {sop} of series {series} of study {study} is not in the archive");
        AuditServed(c, [instance]);
        c.Response.ContentType = "application/dicom";
        await using var content = await InstanceBlobs.OpenAsync(blobs, index, instance.SopInstanceUid, instance.Blob, c.RequestAborted);
        await using var blob = content.OpenRead();
        c.Response.ContentLength = content.Length;
        await blob.CopyToAsync(c.Response.Body, c.RequestAborted);
    });

    // ------------------------------------------------------------------ STOW-RS

    /// <summary>
    /// STOW-RS: the whole body is read and spooled part by part first (a malformed or oversize body is refused before
    /// anything is stored), then each instance goes through the C-STORE ingest path; the response is the PS3.18 store
    /// instances response module.
    /// </summary>
    private Task StowAsync(HttpContext c, string? study) => Guard(c, async () =>
    {
        if (study is not null) CheckUid(study, "Study Instance");
        if (c.Request.ContentLength > limits.MaxBodyBytes)
            throw new WebException(413, $"the body is {c.Request.ContentLength} bytes, more than the {limits.MaxBodyBytes} bytes a STOW-RS request may have (http.max-stow-bytes)");
        // The multipart reader enforces the limit (chunked bodies too), with a reason; Kestrel's own cut-off would give none.
        if (c.Features.Get<Microsoft.AspNetCore.Http.Features.IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } size) size.MaxRequestBodySize = null;
        MultipartContentType contentType;
        try
        {
            contentType = MultipartContentType.Parse(c.Request.ContentType);
        }
        catch (MultipartException e)
        {
            throw new WebException(e.Failure == MultipartFailure.UnsupportedMediaType ? 415 : 400, e.Reason);
        }
        if (contentType.Type is { } t && !t.Equals("application/dicom", StringComparison.OrdinalIgnoreCase))
            throw new WebException(415, $"parts of type {t} are not accepted: send multipart/related; type=\"application/dicom\"");

        var spooled = new List<string>();
        try
        {
            var reader = new MultipartRelatedReader(c.Request.Body, contentType, limits);
            try
            {
                while (await reader.ReadNextPartAsync(c.RequestAborted) is { } part)
                {
                    if (part.ContentType is { } pt && !pt.Split(';')[0].Trim().Equals("application/dicom", StringComparison.OrdinalIgnoreCase))
                        throw new WebException(415, $"part {part.Number} is {pt}, not application/dicom");
                    string path = Path.Combine(spoolFolder, $"stow-{Guid.NewGuid():N}.dcm");
                    spooled.Add(path);
                    await using var file = Spool.Create(path);
                    await part.Body.CopyToAsync(file, c.RequestAborted);
                }
            }
            catch (MultipartException e)
            {
                throw new WebException(e.Failure switch { MultipartFailure.TooLarge => 413, MultipartFailure.UnsupportedMediaType => 415, _ => 400 }, e.Reason);
            }
            if (spooled.Count == 0) throw new WebException(400, "the body holds no part");

            var referenced = new DicomSequence(DicomTags.ReferencedSOPSequence);
            var failed = new DicomSequence(DicomTags.FailedSOPSequence);
            string baseUrl = BaseUrl(c);
            string client = $"{c.Connection.RemoteIpAddress}:{c.Connection.RemotePort} ({c.Request.Headers.UserAgent})";
            foreach (var path in spooled)
            {
                var (item, storedIn) = await StoreOneAsync(path, study, "DICOMWEB", client, baseUrl, c.RequestAborted);
                (storedIn is not null ? referenced : failed).Items.Add(item);
                if (storedIn is not null && Archive is { } archive)
                    Audit.InstanceStored("http:" + c.TraceIdentifier, Client(c, AkkaVna.Core.Audit.AuditRole.Source), archive with { Role = AkkaVna.Core.Audit.AuditRole.Destination },
                        storedIn, item.GetString(DicomTags.ReferencedSOPClassUID)!);
            }
            var response = new DicomDataset();
            if (study is not null) response.AddString(DicomTags.RetrieveURL, DicomVR.UR, $"{baseUrl}/studies/{study}");
            if (failed.Items.Count > 0) response.Add(failed);
            if (referenced.Items.Count > 0) response.Add(referenced);
            c.Response.StatusCode = failed.Items.Count == 0 ? 200 : referenced.Items.Count == 0 ? 409 : 202;
            c.Response.ContentType = "application/dicom+json";
            await using var body = new MemoryStream();
            DicomJsonWriter.Write(body, response);
            body.Position = 0;
            await body.CopyToAsync(c.Response.Body, c.RequestAborted);
        }
        finally
        {
            foreach (var path in spooled) File.Delete(path);
            Audit.EndOfTransfer("http:" + c.TraceIdentifier);
        }
    });

    /// <summary>
    /// One spooled instance through the ingest use case (the same as C-STORE's): a Referenced SOP item, or a Failed SOP
    /// item with the reason code (PS3.18 10.5.3: the DIMSE status codes of the same refusals).
    /// </summary>
    private async Task<(DicomDataset Item, string? StoredInStudy)> StoreOneAsync(string path, string? study, string source, string client, string baseUrl, CancellationToken ct)
    {
        var item = new DicomDataset();
        (DicomDataset, string?) Failed(ushort code, string reason)
        {
            item.AddUInt16(DicomTags.FailureReason, code);
            log.LogInformation("STOW-RS from {Client}: {Path} refused with {Code:X4}H: {Reason}", client, Path.GetFileName(path), code, reason);
            return (item, null);
        }
        StoreFile file;
        string? fileStudy;
        try
        {
            file = StoreFile.Read(Spool.Open(path));
            using var header = DicomFile.Open(Spool.Open(path), new DicomReadOptions { StopBefore = t => t.Group > 0x0020, Spool = Spool });
            fileStudy = header.Dataset.GetString(DicomTags.StudyInstanceUID);
        }
        catch (DicomParseException e)
        {
            return Failed(StowFailure.CannotUnderstand, "not a DICOM Part 10 instance: " + e.Reason);
        }
        item.AddString(DicomTags.ReferencedSOPClassUID, DicomVR.UI, file.SopClassUid);
        item.AddString(DicomTags.ReferencedSOPInstanceUID, DicomVR.UI, file.SopInstanceUid);
        if (study is not null && fileStudy != study) return Failed(StowFailure.DataSetDoesNotMatch, $"the instance belongs to study {fileStudy}, not {study}");
        IngestResult result;
        try
        {
            await using var sink = await ingest.BeginAsync(new IngestRequest(file.SopClassUid, file.SopInstanceUid, file.TransferSyntax, source, $"STOW-RS from {client}"), ct);
            var (data, _) = file.OpenDataSet();
            await using (data)
            {
                var buffer = ArrayPool<byte>.Shared.Rent(256 * 1024);
                try
                {
                    int n;
                    while ((n = await data.ReadAsync(buffer, ct)) > 0) await sink.WriteAsync(new ReadOnlySequence<byte>(buffer, 0, n), ct);
                }
                finally
                {
                    ArrayPool<byte>.Shared.Return(buffer);
                }
            }
            result = await sink.CompleteAsync(ct);
        }
        catch (IngestRefusedException e)
        {
            return Failed(StowFailure.Of(e.Refusal), e.Message);
        }
        if (!result.IsArchived) return Failed(StowFailure.Of(result.Refusal!.Value), result.Reason ?? result.Refusal.ToString()!);
        item.AddString(DicomTags.RetrieveURL, DicomVR.UR, $"{baseUrl}/studies/{result.StudyInstanceUid}/series/{result.SeriesInstanceUid}/instances/{file.SopInstanceUid}");
        return (item, result.StudyInstanceUid ?? fileStudy ?? "");
    }
}

/// <summary>STOW-RS Failure Reason values (PS3.18 10.5.3), the DIMSE status codes of the same refusals.</summary>
public static class StowFailure
{
    public const ushort OutOfResources = 0xA700, DataSetDoesNotMatch = 0xA900, CannotUnderstand = 0xC000, Duplicate = 0x0111;

    public static ushort Of(IngestRefusal refusal) => refusal switch
    {
        IngestRefusal.CannotUnderstand => CannotUnderstand,
        IngestRefusal.SopClassMismatch => DataSetDoesNotMatch,
        IngestRefusal.Conflict => Duplicate,
        _ => OutOfResources,
    };
}
