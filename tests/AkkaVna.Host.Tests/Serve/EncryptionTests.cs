using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.RegularExpressions;
using AkkaVna.Dicom;
using AkkaVna.Dicom.IO;
using AkkaVna.Dicom.Network.Replay;
using AkkaVna.Testing;
using Xunit.Abstractions;

namespace AkkaVna.Host.Tests.Serve;

/// <summary>
/// Issue 20's encryption at rest against a running node, on the file store and on S3 (radosgw, with its receive cache):
/// after storescu sends a study, no file under the data folder but the index, the journal and the audit log — and no
/// object in the bucket — holds the DICM marker or the patient's name; getscu gets every instance back dataset-equal,
/// WADO-RS gives a frame's bytes, verify (with the key) is clean, and without the key the node does not start.
/// </summary>
public sealed class EncryptionTests(ITestOutputHelper output)
{
    private static readonly TimeSpan ToolTimeout = TimeSpan.FromMinutes(2);

    [Theory]
    [InlineData(ArchiveServer.Sqlite)]
    [InlineData(ArchiveServer.S3)]
    public async Task With_encryption_on_nothing_stored_reads_without_the_key_and_every_instance_comes_back(string backend)
    {
        using var dir = new TempDir();
        string data = ArchiveServer.NewDataFolder(dir, backend);
        string keyFile = dir.File("master.key");
        File.WriteAllText(keyFile, Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(32)) + "\n");
        string encryption = $$"""
            akka-vna.encryption {
              enabled = on
              master-key-file = {{AkkaVna.Host.ArchiveOptions.Quote(keyFile)}}
            }
            """;
        // Compression (JPEG-LS, the default rule) soon after the study is stable: its child reads the encrypted originals
        // and writes encrypted copies, and retrieval decodes them again.
        string compression = """
            akka-vna.compression.delay = 0s
            akka-vna.compression.poll = 1s
            akka-vna.studies.quiet-period = 2s
            akka-vna.studies.stability-poll = 500ms
            """;
        var files = ReplaySources.Generate(new GeneratorOptions(1, 5, "CT", 128, 128, Seed: 61), dir.File("ct")).Select(f => StoreFile.Read(f.Path)).ToList();
        string study, series, patientName;
        using (var first = DicomFile.Open(files[0].Path))
        {
            study = first.Dataset.GetString(DicomTags.StudyInstanceUID)!;
            series = first.Dataset.GetString(DicomTags.SeriesInstanceUID)!;
            patientName = first.Dataset.GetString(DicomTags.PatientName)!;
        }
        Assert.True(patientName.Length >= 4, patientName);
        using (var server = new ArchiveServer(data, encryption + compression))
        {
            Assert.Contains("encryption at rest: ON", server.Output, StringComparison.Ordinal);
            var stored = Tool.Run(Tool.Dcmtk("storescu"), ["-v", "-aec", "AKKAVNA", "127.0.0.1", server.DicomPort.ToString(CultureInfo.InvariantCulture),
                .. files.Select(f => f.Path)], ToolTimeout);
            Assert.True(stored.ExitCode == 0, stored.StdOut + stored.StdErr + server.Output);
            Assert.Equal(files.Count, Storescu.Responses(stored).Values.Count(s => s == "Success"));

            await Waits.UntilAsync(async () =>
            {
                await using var index = await ArchiveServer.OpenIndexAsync(data);
                var rows = await ArchiveServer.ListAsync(index);
                return rows.Count == files.Count && rows.All(r => r.TransferSyntaxUid == "1.2.840.10008.1.2.4.80");
            }, TimeSpan.FromMinutes(2), "the study compressed (JPEG-LS) through the encrypted store", () => server.Output[^Math.Min(3000, server.Output.Length)..]);

            // Every file the node wrote, but its index, journal and audit log (README: what they hold), is unreadable.
            byte[][] secrets = ["DICM"u8.ToArray(), Encoding.ASCII.GetBytes(patientName)];
            var written = Directory.GetFiles(data, "*", SearchOption.AllDirectories)
                .Where(f => !Path.GetFileName(f).StartsWith("index.db", StringComparison.Ordinal) && !Path.GetFileName(f).StartsWith("journal", StringComparison.Ordinal)
                    && Path.GetFileName(f) != "audit.log" && !f.EndsWith(".lock", StringComparison.Ordinal))
                .ToList();
            output.WriteLine(string.Join('\n', written.Select(f => Path.GetRelativePath(data, f))));
            Assert.True(written.Count >= (backend == ArchiveServer.S3 ? 5 : 5), "the blobs (and for S3 the receive cache) are on disk");
            foreach (var f in written)
            {
                byte[] bytes = await File.ReadAllBytesAsync(f);
                foreach (var secret in secrets) Assert.True(bytes.AsSpan().IndexOf(secret) < 0, $"{f} holds '{Encoding.ASCII.GetString(secret)}'");
            }
            if (ArchiveServer.S3Of(data) is { } s3) await AssertObjectsUnreadableAsync(s3, secrets, files.Count);

            // Everything comes back: C-GET dataset-equal, a frame by WADO-RS as sent.
            var got = QueryRetrieveTools.Get(null, server.DicomPort, dir.File("get"), ["QueryRetrieveLevel=STUDY", $"StudyInstanceUID={study}"]);
            Assert.True(got.FinalStatus == "Success", got.Output);
            var received = QueryRetrieveTools.Received(dir.File("get"));
            Assert.Equal(files.Count, received.Count);
            foreach (var f in files) Storescu.AssertSameDataSet(f.Path, received[f.SopInstanceUid]);
            using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{server.HttpPort}/") };
            var frame = Assert.Single(await Multipart.PartsAsync(http, $"dicom-web/studies/{study}/series/{series}/instances/{files[2].SopInstanceUid}/frames/1"));
            Assert.Equal(PixelData(files[2].Path), frame.Body);
            // STOW-RS: its parts are spooled encrypted (a key only the node's process holds) before they are stored.
            var stow = Instances.WriteStudy(dir.File("stow"), 2, 64 * 64 * 2, seed: 62).Select(StoreFile.Read).ToList();
            using (var rsp = await http.PostAsync("dicom-web/studies", Multipart.Related(stow.Select(f => f.Path))))
                Assert.True(rsp.IsSuccessStatusCode, await rsp.Content.ReadAsStringAsync());
            Assert.Empty(Directory.GetFiles(Path.Combine(data, "tmp"))); // the spool (retrieve.spool) is emptied after each request
            string stowStudy;
            using (var f = DicomFile.Open(stow[0].Path)) stowStudy = f.Dataset.GetString(DicomTags.StudyInstanceUID)!;
            var back = await Multipart.PartsAsync(http, $"dicom-web/studies/{stowStudy}", "multipart/related; type=\"application/dicom\"; transfer-syntax=*");
            Assert.Equal(stow.Count, back.Count);
            Assert.Equal(0, server.Stop());
        }

        // verify reads every blob through the keyring: clean.
        string conf = dir.File("verify.conf");
        File.WriteAllText(conf, (ArchiveServer.S3Of(data) ?? "") + "\n" + encryption);
        var verify = AkkaVnaCli.Run(TimeSpan.FromMinutes(3), "verify", "--data", data, "--config", conf);
        Assert.True(verify.ExitCode == 0, verify.StdOut + verify.StdErr);

        // Without the key (encryption on, no key given), the node refuses to start rather than store in the clear.
        File.WriteAllText(conf, (ArchiveServer.S3Of(data) ?? "") + "\nakka-vna.encryption.enabled = on\nakka-vna.encryption.master-key-env = AKKAVNA_TEST_NO_SUCH_KEY");
        var refused = AkkaVnaCli.Run(TimeSpan.FromMinutes(1), "serve", "--data", data, "--config", conf, "--dicom-port", "0", "--http-port", "0");
        Assert.NotEqual(0, refused.ExitCode);
        Assert.Contains("needs a master key", refused.StdOut + refused.StdErr, StringComparison.Ordinal);
    }

    private static byte[] PixelData(string path)
    {
        using var file = DicomFile.Open(path);
        var ms = new MemoryStream();
        ((DicomElement)file.Dataset[DicomTags.PixelData]!).Value.CopyTo(ms);
        return ms.ToArray();
    }

    /// <summary>Reads every object of the node's bucket straight from radosgw (not through the node): none holds a secret.</summary>
    private static async Task AssertObjectsUnreadableAsync(string s3Hocon, byte[][] secrets, int atLeast)
    {
        string bucket = Regex.Match(s3Hocon, @"s3://([^/""]+)").Groups[1].Value;
        using var client = new Amazon.S3.AmazonS3Client(new Amazon.Runtime.BasicAWSCredentials(RadosGateway.AccessKey, RadosGateway.SecretKey),
            new Amazon.S3.AmazonS3Config { ServiceURL = RadosGateway.Shared.Endpoint, ForcePathStyle = true });
        int objects = 0;
        var list = await client.ListObjectsV2Async(new Amazon.S3.Model.ListObjectsV2Request { BucketName = bucket });
        foreach (var o in list.S3Objects ?? [])
        {
            using var get = await client.GetObjectAsync(bucket, o.Key);
            using var body = new MemoryStream();
            await get.ResponseStream.CopyToAsync(body);
            foreach (var secret in secrets) Assert.True(body.ToArray().AsSpan().IndexOf(secret) < 0, $"s3://{bucket}/{o.Key} holds '{Encoding.ASCII.GetString(secret)}'");
            objects++;
        }
        Assert.True(objects >= atLeast, $"only {objects} object(s) in the bucket");
    }
}
