using System.Globalization;
using System.Net.Http.Json;
using System.Text.Json;
using AkkaVna.Dicom;
using AkkaVna.Dicom.Imaging;
using AkkaVna.Dicom.IO;
using AkkaVna.Testing;
using Xunit.Abstractions;

namespace AkkaVna.Host.Tests.Serve;

/// <summary>
/// The compression child end to end, with real processes: `serve` with compression on and a short quiet period takes a
/// generated CT set (replay) and the corpus's native images (storescu); the studies become stable and their images are
/// compressed to JPEG-LS lossless — each decodes with dcmtk's dcmdjpls to exactly the pixels sent — or, where a lossless
/// copy would not be exact or smaller, left as they were, byte for byte; the originals are deleted, verify is clean, and
/// the study's admin view lists each instance's stored syntax and size.
/// </summary>
public sealed class CompressionTests(ITestOutputHelper output)
{
    private static readonly TimeSpan ToolTimeout = TimeSpan.FromMinutes(3);
    private const string JpegLsLossless = "1.2.840.10008.1.2.4.80", HtJ2kLossless = "1.2.840.10008.1.2.4.201";

    private const string Config = """
        akka-vna.compression.enabled = on
        akka-vna.compression.rules = [
          {
            match { Modality = [MR] }
            transfer-syntax = "1.2.840.10008.1.2.4.201"
          }
          {
            transfer-syntax = "1.2.840.10008.1.2.4.80"
          }
        ]
        akka-vna.compression.delay = 0s
        akka-vna.compression.poll = 1s
        akka-vna.studies.quiet-period = 2s
        akka-vna.studies.stability-poll = 500ms
        """;

    private static async Task<double> MetricAsync(ArchiveServer server, string name, string? label = null)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(30) };
        string text = await http.GetStringAsync($"http://127.0.0.1:{server.HttpPort}/metrics");
        string prefix = label is null ? name + " " : $"{name}{{{label}}} ";
        var line = text.Split('\n').SingleOrDefault(l => l.StartsWith(prefix, StringComparison.Ordinal));
        return line is null ? 0 : double.Parse(line[prefix.Length..], CultureInfo.InvariantCulture);
    }

    private static List<byte[]> Frames(string path)
    {
        using var file = DicomFile.Open(path);
        return [.. PixelDataFrames.Of(file.Dataset).Frames().Select(f =>
        {
            using var s = f.Open();
            using var ms = new MemoryStream();
            s.CopyTo(ms);
            return ms.ToArray();
        })];
    }

    private static bool IsNativeImage(StoreFile f)
    {
        if (f.TransferSyntax.Uid is not (DicomUids.ImplicitVRLittleEndian or DicomUids.ExplicitVRLittleEndian)) return false;
        using var file = DicomFile.Open(f.Path);
        return file.Dataset.GetUInt16(DicomTags.Rows) is > 0 && file.Dataset.Contains(DicomTags.PixelData)
            && file.Dataset.GetUInt16(DicomTags.BitsAllocated) is 8 or 16;
    }

    [Theory]
    [InlineData(ArchiveServer.Sqlite)]
    [InlineData(ArchiveServer.PostgreSql)]
    public async Task Stable_studies_are_compressed_losslessly_verified_against_dcmtk_and_their_originals_deleted(string backend)
    {
        using var dir = new TempDir();
        string data = ArchiveServer.NewDataFolder(dir, backend);
        using var server = new ArchiveServer(data, Config);
        string work = dir.File("work");
        var sent = AkkaVnaCli.Run(ToolTimeout, "replay", $"127.0.0.1:{server.DicomPort}", "generate:2,30,CT,256x256", "-n", "2", "-aec", "AKKAVNA", "--work", work);
        Assert.True(sent.ExitCode == 0, sent.StdOut + sent.StdErr);
        var corpus = Storescu.Rounds(Storescu.SendableCorpus.Value).First().Where(IsNativeImage).ToList();
        var results = Storescu.Send(Storescu.WriteConfig(dir, corpus), server.DicomPort, corpus, 1, ToolTimeout);
        var refusedByDcmtk = results.SelectMany(r => Storescu.RefusedByDcmtk(r, corpus)).ToHashSet(StringComparer.Ordinal);
        var originals = Directory.GetFiles(work, "*", SearchOption.AllDirectories).Select(StoreFile.Read)
            .Concat(corpus.Where(f => !Storescu.WasRefused(f, refusedByDcmtk))).ToDictionary(f => f.SopInstanceUid, StringComparer.Ordinal);
        output.WriteLine($"{originals.Count} native images sent ({corpus.Count} from the corpus)");

        // Every image is handled: compressed, or left as it is (refused) — and then every replaced original is gone.
        await Waits.UntilAsync(async () => await MetricAsync(server, "akkavna_compression_instances_total", "outcome=\"compressed\"")
            + await MetricAsync(server, "akkavna_compression_instances_total", "outcome=\"refused\"") >= originals.Count, TimeSpan.FromMinutes(3), "every image compressed or refused",
            () => server.Output[^Math.Min(3000, server.Output.Length)..]);
        List<AkkaVna.Core.Ports.IndexedInstance> rows;
        await using (var index = await ArchiveServer.OpenIndexAsync(data)) rows = await ArchiveServer.ListAsync(index);
        Assert.Equal(originals.Count, rows.Count);
        await Waits.UntilAsync(async () => await ArchiveServer.CountBlobsAsync(data) == rows.Count, TimeSpan.FromMinutes(1), "the replaced originals deleted");

        int compressed = 0, htj2k = 0;
        long before = 0, after = 0;
        foreach (var row in rows)
        {
            var original = originals[row.SopInstanceUid];
            string blob = await ArchiveServer.BlobFileAsync(data, row.Blob, dir.File("scratch"));
            if (row.TransferSyntaxUid == JpegLsLossless)
            {
                // dcmtk's own JPEG-LS decoder gives back exactly the pixels sent.
                string decoded = dir.File($"decoded-{row.SopInstanceUid}.dcm");
                var r = Tool.Run(Tool.Dcmtk("dcmdjpls"), [blob, decoded], TimeSpan.FromMinutes(1));
                Assert.True(r.ExitCode == 0, r.StdErr);
                Assert.Equal(Frames(original.Path), Frames(decoded));
                Storescu.AssertSameDataSet(original.Path, decoded, ignorePixelData: true);
                compressed++;
                before += new FileInfo(original.Path).Length;
                after += row.Size;
            }
            else if (row.TransferSyntaxUid == HtJ2kLossless)
            {
                // The MR rule's HTJ2K (OpenJPH): dcmtk reads the file; decoded (the codec tests show OpenJPH's and
                // OpenJPEG's tools agree with this decoder) it gives back exactly the pixels sent.
                var r = Tool.Run(Tool.Dcmtk("dcmdump"), ["-q", "+E", blob], TimeSpan.FromMinutes(1));
                Assert.True(r.ExitCode == 0, r.StdErr);
                using (var file = DicomFile.Open(blob))
                using (var native = new MemoryStream())
                {
                    AkkaVna.Codecs.DicomTranscoder.WriteFile(file.Dataset, file.FileMetaInfo, file.TransferSyntax, DicomTransferSyntax.ExplicitVRLittleEndian, native, CancellationToken.None);
                    string decoded = dir.File($"decoded-{row.SopInstanceUid}.dcm");
                    File.WriteAllBytes(decoded, native.ToArray());
                    Assert.Equal(Frames(original.Path), Frames(decoded));
                    Storescu.AssertSameDataSet(original.Path, decoded, ignorePixelData: true);
                }
                htj2k++;
                before += new FileInfo(original.Path).Length;
                after += row.Size;
            }
            else
            {
                // Left as it is: the very data set that was sent.
                Assert.Equal(original.TransferSyntax.Uid, row.TransferSyntaxUid);
                Storescu.AssertSameDataSet(original.Path, blob);
            }
        }
        output.WriteLine($"{compressed} of {rows.Count} images in JPEG-LS, {htj2k} in HTJ2K: {before:N0} bytes sent, {after:N0} stored ({100.0 * after / Math.Max(1, before):F0} %)");
        Assert.True(compressed >= 60, $"only {compressed} images compressed"); // the generated CT set compresses
        Assert.True(htj2k > 0, "no MR image of the corpus compressed into HTJ2K");
        Assert.True(after < before);

        // The admin view lists each instance as stored now.
        using (var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{server.HttpPort}/") })
        {
            var study = rows.First(r => r.TransferSyntaxUid == JpegLsLossless).StudyInstanceUid;
            var view = await http.GetFromJsonAsync<JsonElement>($"admin/studies/{study}");
            var stored = view.GetProperty("stored").EnumerateArray().ToList();
            Assert.Equal(rows.Count(r => r.StudyInstanceUid == study), stored.Count);
            Assert.All(stored, s => Assert.Equal(JpegLsLossless, s.GetProperty("transferSyntaxUid").GetString()));
        }
        var verify = ArchiveServer.Verify(data);
        Assert.True(verify.ExitCode == 0, verify.StdOut + verify.StdErr);
        // Every study's pass is recorded as finished: no compression left due (the watch stops waking them).
        await Waits.UntilAsync(async () =>
        {
            await using var index = await ArchiveServer.OpenIndexAsync(data);
            return (await index.DueForCompressionAsync(DateTimeOffset.UtcNow.AddYears(1), 100, CancellationToken.None)).Count == 0;
        }, TimeSpan.FromMinutes(1), "every study's compression pass recorded as finished");

        // Retrieval in the syntax the receiver takes. A generated study, all JPEG-LS now:
        var generated = rows.Where(r => r.TransferSyntaxUid == JpegLsLossless && originals[r.SopInstanceUid].Path.StartsWith(work, StringComparison.Ordinal)).ToList();
        var one = generated[0];
        string instanceUrl = $"dicom-web/studies/{one.StudyInstanceUid}/series/{one.SeriesInstanceUid}/instances/{one.SopInstanceUid}";
        using (var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{server.HttpPort}/") })
        {
            // transfer-syntax=* : as stored (JPEG-LS), byte for byte.
            var stored = Assert.Single(await Multipart.PartsAsync(http, instanceUrl, "multipart/related; type=\"application/dicom\"; transfer-syntax=*"));
            Assert.Contains($"transfer-syntax={JpegLsLossless}", stored.ContentType, StringComparison.Ordinal);
            Assert.Equal(await File.ReadAllBytesAsync(await ArchiveServer.BlobFileAsync(data, one.Blob, dir.File("scratch"))), stored.Body);
            // No transfer-syntax: Explicit VR Little Endian (PS3.18 8.7.3), decoded to the pixels sent.
            var native = Assert.Single(await Multipart.PartsAsync(http, instanceUrl, "multipart/related; type=\"application/dicom\""));
            Assert.Contains("transfer-syntax=1.2.840.10008.1.2.1", native.ContentType, StringComparison.Ordinal);
            string nativePath = dir.File("wado-native.dcm");
            await File.WriteAllBytesAsync(nativePath, native.Body);
            Assert.Equal(Frames(originals[one.SopInstanceUid].Path), Frames(nativePath));
            Storescu.AssertSameDataSet(originals[one.SopInstanceUid].Path, nativePath);
            // A frame, by default native: the original frame's bytes.
            var frame = Assert.Single(await Multipart.PartsAsync(http, instanceUrl + "/frames/1"));
            Assert.Equal(Frames(originals[one.SopInstanceUid].Path)[0], frame.Body);
            // Rendered: a PNG of the image's size, grey levels as dcmtk's dcm2pnm renders the original (min-max window).
            using var rendered = await http.GetAsync(instanceUrl + "/rendered");
            Assert.Equal("image/png", rendered.Content.Headers.ContentType?.MediaType);
            var png = Png.Read(await rendered.Content.ReadAsByteArrayAsync());
            Assert.Equal((256, 256, 1), (png.Width, png.Height, png.Channels));
            string dcmtkPng = dir.File("dcm2pnm.png");
            var r = Tool.Run(Tool.Dcmtk("dcm2pnm"), ["+on", "-il", "+Wm", originals[one.SopInstanceUid].Path, dcmtkPng], TimeSpan.FromMinutes(1));
            Assert.True(r.ExitCode == 0, r.StdErr);
            var reference = Png.Read(await File.ReadAllBytesAsync(dcmtkPng));
            int worst = png.Pixels.Zip(reference.Pixels, (a, b) => Math.Abs(a - b)).Max();
            Assert.True(worst <= 2, $"grey levels differ from dcm2pnm's by up to {worst}");
            Assert.True(png.Pixels.Distinct().Count() > 100); // an image, not a flat field
            // As JPEG when asked for it: dcmtk wraps the file (img2dcm) and decodes it (dcmdjpeg) to the same picture, within
            // what a quality-95 lossy coding changes.
            using (var request = new HttpRequestMessage(HttpMethod.Get, instanceUrl + "/rendered?quality=95"))
            {
                request.Headers.Accept.ParseAdd("image/jpeg");
                using var jpeg = await http.SendAsync(request);
                Assert.Equal("image/jpeg", jpeg.Content.Headers.ContentType?.MediaType);
                string jpegPath = dir.File("rendered.jpg"), wrapped = dir.File("rendered-jpeg.dcm"), decodedJpeg = dir.File("rendered-native.dcm");
                await File.WriteAllBytesAsync(jpegPath, await jpeg.Content.ReadAsByteArrayAsync());
                var wrap = Tool.Run(Tool.Dcmtk("img2dcm"), ["-i", "JPEG", jpegPath, wrapped], TimeSpan.FromMinutes(1));
                Assert.True(wrap.ExitCode == 0, wrap.StdErr + wrap.StdOut);
                var unwrap = Tool.Run(Tool.Dcmtk("dcmdjpeg"), [wrapped, decodedJpeg], TimeSpan.FromMinutes(1));
                Assert.True(unwrap.ExitCode == 0, unwrap.StdErr);
                var jpegPixels = Frames(decodedJpeg)[0];
                Assert.Equal(png.Pixels.Length, jpegPixels.Length);
                double mean = png.Pixels.Zip(jpegPixels, (a, b) => Math.Abs(a - b)).Average();
                Assert.True(mean < 3, $"the JPEG differs from the PNG by {mean:F2} grey levels on average");
            }
            using (var badQuality = await http.GetAsync(instanceUrl + "/rendered?quality=0"))
                Assert.Equal(System.Net.HttpStatusCode.BadRequest, badQuality.StatusCode);
            using var thumbnail = await http.GetAsync(instanceUrl + "/thumbnail?viewport=64,64");
            var small = Png.Read(await thumbnail.Content.ReadAsByteArrayAsync());
            Assert.Equal((64, 64), (small.Width, small.Height));
        }
        // getscu proposes Explicit VR Little Endian alone: every instance of the study arrives decoded, as it was sent.
        var get = QueryRetrieveTools.Get(null, server.DicomPort, dir.File("get"), ["QueryRetrieveLevel=STUDY", $"StudyInstanceUID={one.StudyInstanceUid}"]);
        Assert.True(get.FinalStatus == "Success", get.Output);
        var received = Directory.GetFiles(dir.File("get"));
        Assert.Equal(generated.Count(r => r.StudyInstanceUid == one.StudyInstanceUid), received.Length);
        foreach (var path in received)
        {
            var file = StoreFile.Read(path);
            Assert.Equal(DicomTransferSyntax.ExplicitVRLittleEndian, file.TransferSyntax);
            Storescu.AssertSameDataSet(originals[file.SopInstanceUid].Path, path);
        }
        Assert.Equal(0, server.Stop());
    }

    [Fact]
    public async Task With_keep_original_each_original_stays_beside_its_compressed_copy_indexed_verified_and_listed()
    {
        using var dir = new TempDir();
        string data = ArchiveServer.NewDataFolder(dir, ArchiveServer.PostgreSql);
        string work = dir.File("work");
        const int Count = 20;
        using var server = new ArchiveServer(data, Config + "\nakka-vna.compression.keep-original = on\n");
        var sent = AkkaVnaCli.Run(ToolTimeout, "replay", $"127.0.0.1:{server.DicomPort}", $"generate:1,{Count},CT,128x128", "-n", "1", "-aec", "AKKAVNA", "--work", work);
        Assert.True(sent.ExitCode == 0, sent.StdOut + sent.StdErr);
        await Waits.UntilAsync(async () => await MetricAsync(server, "akkavna_compression_instances_total", "outcome=\"compressed\"") >= Count, TimeSpan.FromMinutes(2),
            "every instance compressed", () => server.Output[^Math.Min(3000, server.Output.Length)..]);
        var originals = Directory.GetFiles(work, "*", SearchOption.AllDirectories).Select(StoreFile.Read).ToDictionary(f => f.SopInstanceUid, StringComparer.Ordinal);
        List<AkkaVna.Core.Ports.IndexedInstance> rows;
        List<AkkaVna.Core.Ports.KeptBlob> kept;
        await using (var index = await ArchiveServer.OpenIndexAsync(data))
        {
            async Task<List<AkkaVna.Core.Ports.KeptBlob>> KeptAsync()
            {
                var list = new List<AkkaVna.Core.Ports.KeptBlob>();
                await foreach (var k in index.ListKeptBlobsAsync(null, CancellationToken.None)) list.Add(k);
                return list;
            }
            await Waits.UntilAsync(async () => (await KeptAsync()).Count == Count, TimeSpan.FromMinutes(1), "every original listed as kept");
            rows = await ArchiveServer.ListAsync(index);
            kept = await KeptAsync();
        }
        // Each instance serves its compressed copy; its original is still in the store, byte for byte what was received.
        Assert.All(rows, r => Assert.Equal(JpegLsLossless, r.TransferSyntaxUid));
        Assert.Equal(rows.Select(r => r.SopInstanceUid).Order(), kept.Select(k => k.SopInstanceUid).Order());
        Assert.Equal(2 * Count, await ArchiveServer.CountBlobsAsync(data));
        foreach (var k in kept)
        {
            Assert.Equal(originals[k.SopInstanceUid].TransferSyntax.Uid, k.TransferSyntaxUid);
            string blob = await ArchiveServer.BlobFileAsync(data, k.Blob, dir.File("scratch"));
            Assert.Equal(k.Sha256, Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(File.ReadAllBytes(blob))));
            Storescu.AssertSameDataSet(originals[k.SopInstanceUid].Path, blob);
        }
        // verify counts both (and reports neither as an orphan); the admin view lists the kept ones.
        var verify = ArchiveServer.Verify(data);
        Assert.True(verify.ExitCode == 0, verify.StdOut + verify.StdErr);
        Assert.Contains($"instances: {Count} indexed, {Count} kept original(s), {2 * Count} blob(s)", verify.StdOut, StringComparison.Ordinal);
        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{server.HttpPort}/") };
        var view = await http.GetFromJsonAsync<JsonElement>($"admin/studies/{rows[0].StudyInstanceUid}");
        Assert.Equal(Count, view.GetProperty("kept").GetArrayLength());
        Assert.All(view.GetProperty("kept").EnumerateArray(), k => Assert.Equal("original", k.GetProperty("representation").GetString()));
        Assert.Equal(0, server.Stop());
    }

    [Fact]
    public async Task A_node_killed_while_compressing_resumes_after_a_restart_and_every_instance_is_its_original_or_a_verified_copy()
    {
        using var dir = new TempDir();
        string data = ArchiveServer.NewDataFolder(dir, ArchiveServer.Sqlite);
        string work = dir.File("work");
        const int Count = 150;
        double before;
        using (var server = new ArchiveServer(data, Config))
        {
            var sent = AkkaVnaCli.Run(ToolTimeout, "replay", $"127.0.0.1:{server.DicomPort}", $"generate:1,{Count},CT,512x512", "-n", "2", "-aec", "AKKAVNA", "--work", work);
            Assert.True(sent.ExitCode == 0, sent.StdOut + sent.StdErr);
            // SIGKILL in the middle of the pass.
            await Waits.UntilAsync(async () => await MetricAsync(server, "akkavna_compression_instances_total", "outcome=\"compressed\"") >= 15, TimeSpan.FromMinutes(2),
                "compression under way", () => server.Output[^Math.Min(3000, server.Output.Length)..]);
            server.Kill();
            before = await MetricAsync(server, "akkavna_compression_instances_total", "outcome=\"compressed\"").ContinueWith(t => t.IsCompletedSuccessfully ? t.Result : -1);
        }
        int native;
        await using (var index = await ArchiveServer.OpenIndexAsync(data))
        {
            var rows = await ArchiveServer.ListAsync(index);
            Assert.Equal(Count, rows.Count);
            native = rows.Count(r => r.TransferSyntaxUid != JpegLsLossless);
            output.WriteLine($"killed with {Count - native} of {Count} compressed");
            Assert.InRange(native, 1, Count - 1);
        }

        // After the restart the pass resumes where it stopped (the compression watch wakes the study) and finishes.
        using (var server = new ArchiveServer(data, Config))
        {
            await Waits.UntilAsync(async () =>
            {
                await using var index = await ArchiveServer.OpenIndexAsync(data);
                return (await ArchiveServer.ListAsync(index)).All(r => r.TransferSyntaxUid == JpegLsLossless) && await ArchiveServer.CountBlobsAsync(data) == Count
                    && await ArchiveServer.OpenBlobs(data).CountStagedAsync(CancellationToken.None) == 0;
            }, TimeSpan.FromMinutes(3), "every instance compressed and every original deleted after the restart", () => server.Output[^Math.Min(3000, server.Output.Length)..]);
            var verify = ArchiveServer.Verify(data);
            Assert.True(verify.ExitCode == 0, verify.StdOut + verify.StdErr + "\n" + string.Join('\n', server.Output.Split('\n').Where(l => l.Contains("recovery", StringComparison.Ordinal) || l.Contains("compress", StringComparison.OrdinalIgnoreCase)).Take(40)));
            var originals = Directory.GetFiles(work, "*", SearchOption.AllDirectories).Select(StoreFile.Read).ToDictionary(f => f.SopInstanceUid, StringComparer.Ordinal);
            await using var index = await ArchiveServer.OpenIndexAsync(data);
            foreach (var row in await ArchiveServer.ListAsync(index))
            {
                string blob = await ArchiveServer.BlobFileAsync(data, row.Blob, dir.File("scratch"));
                string decoded = dir.File($"decoded-{row.SopInstanceUid}.dcm");
                var r = Tool.Run(Tool.Dcmtk("dcmdjpls"), [blob, decoded], TimeSpan.FromMinutes(1));
                Assert.True(r.ExitCode == 0, r.StdErr);
                Assert.Equal(Frames(originals[row.SopInstanceUid].Path), Frames(decoded));
            }
            Assert.Equal(0, server.Stop());
        }
    }
}
