using Amazon.Runtime;
using Amazon.S3;
using Amazon.S3.Model;
using AkkaVna.Dicom.IO;
using AkkaVna.Testing;
using Xunit.Abstractions;

namespace AkkaVna.Host.Tests.Serve;

/// <summary><c>verify</c> on S3: the index against the bucket (what S3 holds, not the node's cache), paged and spilled, and <c>--repair</c> from the cache.</summary>
public sealed class S3VerifyTests(ITestOutputHelper output)
{
    private static AmazonS3Client Client() => new(new BasicAWSCredentials(RadosGateway.AccessKey, RadosGateway.SecretKey), new AmazonS3Config
    {
        ServiceURL = RadosGateway.Shared.Endpoint, ForcePathStyle = true, AuthenticationRegion = "us-east-1",
        RequestChecksumCalculation = RequestChecksumCalculation.WHEN_REQUIRED, ResponseChecksumValidation = ResponseChecksumValidation.WHEN_REQUIRED,
    });

    private static string BucketOf(string data)
    {
        var line = ArchiveServer.S3Of(data)!.Split('\n').Select(l => l.Trim()).First(l => l.StartsWith("akka-vna.blobs.path", StringComparison.Ordinal));
        string url = line[(line.IndexOf("s3://", StringComparison.Ordinal) + 5)..].TrimEnd('"');
        return url[..url.IndexOf('/')];
    }

    private Tool.Result Verify(string data, params string[] options)
    {
        var r = ArchiveServer.Verify(data, options);
        output.WriteLine($"verify {string.Join(' ', options)} -> {r.ExitCode}\n{r.StdOut}{r.StdErr}");
        return r;
    }

    [Fact]
    public async Task A_resend_writes_nothing_and_verify_finds_a_missing_object_a_damaged_one_and_an_orphan_and_repair_mends_the_first_two_from_the_cache()
    {
        using var dir = new TempDir();
        string data = ArchiveServer.NewDataFolder(dir, ArchiveServer.S3);
        using var server = new ArchiveServer(data);
        var files = Instances.WriteStudy(dir.File("study"), 30, 8 * 1024, seed: 61).Select(StoreFile.Read).ToList();
        var answers = Storescu.Send(Storescu.WriteConfig(dir, files), server.DicomPort, files, 2, TimeSpan.FromMinutes(3)).SelectMany(Storescu.Responses).ToList();
        Assert.Equal(files.Count, answers.Count);
        Assert.All(answers, kv => Assert.Equal("Success", kv.Value));
        List<Core.Ports.IndexedInstance> rows;
        await using (var index = await ArchiveServer.OpenIndexAsync(data)) rows = await ArchiveServer.ListAsync(index);
        Assert.Equal(0, Verify(data, "--in-memory-blobs", "7").ExitCode); // clean, compared on disk

        string bucket = BucketOf(data);
        using var s3 = Client();
        // A resend of what is archived writes nothing to S3: every object as it was (same keys, same write times).
        async Task<Dictionary<string, DateTime?>> ObjectsAsync() =>
            ((await s3.ListObjectsV2Async(new ListObjectsV2Request { BucketName = bucket })).S3Objects ?? []).ToDictionary(o => o.Key, o => o.LastModified);
        var before = await ObjectsAsync();
        Assert.Equal(files.Count, before.Count);
        await Task.Delay(1100); // S3's write times have a resolution of a second
        var resent = Storescu.Send(Storescu.WriteConfig(dir, files), server.DicomPort, files, 2, TimeSpan.FromMinutes(3)).SelectMany(Storescu.Responses).ToList();
        Assert.All(resent, kv => Assert.Equal("Success", kv.Value));
        Assert.Equal(before, await ObjectsAsync());
        // Lost in S3, damaged in S3 (the same size, other bytes), and an object no row names.
        await s3.DeleteObjectAsync(bucket, "archive/" + rows[0].Blob.Key);
        var damaged = new byte[rows[1].Size];
        new Random(3).NextBytes(damaged);
        await s3.PutObjectAsync(new PutObjectRequest { BucketName = bucket, Key = "archive/" + rows[1].Blob.Key, InputStream = new MemoryStream(damaged), UseChunkEncoding = false });
        string orphan = $"archive/{rows[2].Blob.Key.Split('/')[0]}/{rows[2].StudyInstanceUid}/{rows[2].SeriesInstanceUid}/2.25.12345_0123456789abcdef.dcm";
        await s3.PutObjectAsync(new PutObjectRequest { BucketName = bucket, Key = orphan, ContentBody = "not an instance", UseChunkEncoding = false });

        foreach (var memory in new[] { "7", "1000" })
        {
            var found = Verify(data, "--in-memory-blobs", memory);
            Assert.Equal(1, found.ExitCode);
            Assert.Contains("missing blobs: 1", found.StdOut, StringComparison.Ordinal);
            Assert.Contains(rows[0].SopInstanceUid, found.StdOut, StringComparison.Ordinal);
            Assert.Contains("checksum mismatches: 1", found.StdOut, StringComparison.Ordinal);
            Assert.Contains(rows[1].SopInstanceUid, found.StdOut, StringComparison.Ordinal);
            Assert.Contains("orphan blobs: 1", found.StdOut, StringComparison.Ordinal);
            Assert.Contains("2.25.12345_0123456789abcdef.dcm", found.StdOut, StringComparison.Ordinal);
            Assert.Equal(memory == "7", found.StdOut.Contains("compared on disk", StringComparison.Ordinal));
        }

        // Repair: the node's receive cache still holds both instances' bytes; the orphan is listed, not touched.
        var repaired = Verify(data, "--repair");
        Assert.Equal(1, repaired.ExitCode);
        Assert.Contains("repaired: 2", repaired.StdOut, StringComparison.Ordinal);
        Assert.Contains("cannot be repaired here: 0", repaired.StdOut, StringComparison.Ordinal);
        Assert.Contains("orphan blobs: 1", repaired.StdOut, StringComparison.Ordinal);
        await s3.DeleteObjectAsync(bucket, orphan);
        Assert.Equal(0, Verify(data).ExitCode);
        Assert.Equal(0, Verify(data, "--in-memory-blobs", "7").ExitCode);

        // What no copy here can mend is listed as such: the cache lost it too.
        await s3.DeleteObjectAsync(bucket, "archive/" + rows[3].Blob.Key);
        Assert.Equal(0, server.Stop());
        foreach (var cached in Directory.EnumerateFiles(Path.Combine(data, "s3-cache", "files"), "*", SearchOption.AllDirectories)) File.Delete(cached);
        var lost = Verify(data, "--repair");
        Assert.Equal(1, lost.ExitCode);
        Assert.Contains("cannot be repaired here: 1", lost.StdOut, StringComparison.Ordinal);
        Assert.Contains(rows[3].SopInstanceUid, lost.StdOut, StringComparison.Ordinal);
    }
}
