using System.Globalization;
using Amazon.Runtime;
using Amazon.S3;
using Amazon.S3.Model;
using AkkaVna.Dicom.IO;
using AkkaVna.Host.Tests.Cluster;
using AkkaVna.Testing;
using Xunit.Abstractions;

namespace AkkaVna.Host.Tests.Serve;

/// <summary>
/// A node on S3 whose object store goes away in the middle of an ingest and comes back, in both acknowledge modes, and
/// a node killed between its local commits and their uploads. Alone (it stops the tests' radosgw, which other S3 tests
/// share).
/// </summary>
[Collection(ClusterCollection.Name)]
public sealed class S3FaultTests(ITestOutputHelper output)
{
    private static readonly TimeSpan ToolTimeout = TimeSpan.FromMinutes(4);

    /// <summary>An endpoint where nothing listens: S3 out of reach.</summary>
    private const string Nowhere = "http://127.0.0.1:1";

    private static async Task<double> MetricAsync(ArchiveServer server, string name)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(30) };
        string text = await http.GetStringAsync($"http://127.0.0.1:{server.HttpPort}/metrics");
        var line = text.Split('\n').Single(l => l.StartsWith(name + " ", StringComparison.Ordinal));
        return double.Parse(line[(name.Length + 1)..], CultureInfo.InvariantCulture);
    }

    private static Task WaitUntilAsync(Func<Task<bool>> condition, TimeSpan timeout, string what) => Waits.UntilAsync(condition, timeout, what);

    /// <summary>The keys S3 itself holds for a data folder's bucket (not the node's cache).</summary>
    private static async Task<HashSet<string>> KeysInS3Async(string data)
    {
        var url = ArchiveServer.S3Of(data)!.Split('\n').Select(l => l.Trim()).First(l => l.StartsWith("akka-vna.blobs.path", StringComparison.Ordinal));
        string bucketAndPrefix = url[(url.IndexOf("s3://", StringComparison.Ordinal) + 5)..].TrimEnd('"');
        string bucket = bucketAndPrefix[..bucketAndPrefix.IndexOf('/')], prefix = bucketAndPrefix[(bucket.Length + 1)..] + "/";
        using var s3 = new AmazonS3Client(new BasicAWSCredentials(RadosGateway.AccessKey, RadosGateway.SecretKey), new AmazonS3Config
        {
            ServiceURL = RadosGateway.Shared.Endpoint, ForcePathStyle = true, AuthenticationRegion = "us-east-1",
            RequestChecksumCalculation = RequestChecksumCalculation.WHEN_REQUIRED, ResponseChecksumValidation = ResponseChecksumValidation.WHEN_REQUIRED,
        });
        var keys = new HashSet<string>(StringComparer.Ordinal);
        string? token = null;
        do
        {
            ListObjectsV2Response page;
            try
            {
                page = await s3.ListObjectsV2Async(new ListObjectsV2Request { BucketName = bucket, Prefix = prefix, ContinuationToken = token });
            }
            catch (AmazonS3Exception e) when (e.ErrorCode == "NoSuchBucket")
            {
                return keys; // nothing was ever uploaded
            }
            foreach (var o in page.S3Objects ?? []) keys.Add(o.Key[prefix.Length..]);
            token = page.IsTruncated == true ? page.NextContinuationToken : null;
        }
        while (token is not null);
        return keys;
    }

    [Theory]
    [InlineData("after-upload")]
    [InlineData("after-local-commit")]
    public async Task With_S3_gone_mid_ingest_nothing_acknowledged_is_lost_nothing_is_indexed_without_its_object_and_the_node_catches_up(string mode)
    {
        using var dir = new TempDir();
        string data = ArchiveServer.NewDataFolder(dir, ArchiveServer.S3);
        bool local = mode == "after-local-commit";
        using var server = new ArchiveServer(data, $"""
            akka-vna.blobs.s3.acknowledge = {mode}
            akka-vna.blobs.s3.cache.max-size = {(local ? "400KiB" : "10GiB")}
            akka-vna.blobs.s3.request-timeout = 3s
            akka-vna.blobs.s3.max-retries = 1
            akka-vna.ingest.sweep-interval = 2s
            akka-vna.ingest.staged-grace = 3s
            """);
        var before = Instances.WriteStudy(dir.File("before"), 40, 16 * 1024, seed: 31).Select(StoreFile.Read).ToList();
        var during = Instances.WriteStudy(dir.File("during"), 40, 16 * 1024, seed: 32).Select(StoreFile.Read).ToList();
        string config = Storescu.WriteConfig(dir, before.Concat(during));

        Assert.All(Storescu.Responses(Storescu.Send(config, server.DicomPort, before, 1, ToolTimeout).Single()),
            kv => Assert.True(kv.Value == "Success", $"{kv.Key}: {kv.Value}\n" + string.Join('\n', server.Output.Split('\n').Where(l => l.Contains("upload", StringComparison.Ordinal)).Take(5))));
        if (local) await WaitUntilAsync(async () => await MetricAsync(server, "akkavna_blob_uploads_pending") == 0, TimeSpan.FromMinutes(1), "the first study uploaded");
        Dictionary<string, string> outage;
        RadosGateway.Shared.Stop();
        try
        {
            outage = Storescu.Responses(Storescu.Send(config, server.DicomPort, during, 1, ToolTimeout).Single());
            if (local) Assert.True(await MetricAsync(server, "akkavna_blob_uploads_pending") > 0);
        }
        finally
        {
            RadosGateway.Shared.Start();
        }
        output.WriteLine(string.Join("\n", outage.Values.GroupBy(v => v).Select(g => $"{g.Key}: {g.Count()}")));
        Assert.Equal(during.Count, outage.Count);
        var acknowledged = outage.Where(kv => kv.Value == "Success").Select(kv => kv.Key).ToHashSet(StringComparer.Ordinal);
        if (local)
        {
            // Into the cache up to its bound (400 KiB: about 20 of these), then A700H: send again later.
            Assert.InRange(acknowledged.Count, 5, during.Count - 5);
            Assert.True(server.Output.Contains("not yet in S3", StringComparison.Ordinal));
        }
        else
        {
            // The object must be in S3 before the success: with S3 away, every C-STORE is told to send again.
            Assert.Empty(acknowledged);
            Assert.True(server.Output.Contains("the blob store cannot take it", StringComparison.Ordinal));
        }

        // Nothing indexed without an acknowledgement (so nothing indexed without its object).
        await using (var index = await ArchiveServer.OpenIndexAsync(data))
        {
            var rows = await ArchiveServer.ListAsync(index);
            await IngestTests.AssertArchivedAsync(data, before.Concat(during.Where(f => acknowledged.Contains(f.Path))), rows);
        }
        // The node catches up by itself (no restart, nothing resent): the queue uploads what it acknowledged.
        if (local) await WaitUntilAsync(async () => await MetricAsync(server, "akkavna_blob_uploads_pending") == 0, TimeSpan.FromMinutes(2), "the queue drains");
        await using (var index = await ArchiveServer.OpenIndexAsync(data))
        {
            var inS3 = await KeysInS3Async(data);
            var rows = await ArchiveServer.ListAsync(index);
            Assert.Equal(before.Count + acknowledged.Count, rows.Count);
            Assert.All(rows, r => Assert.Contains(r.Blob.Key, inS3));
            Assert.Equal(rows.Count, inS3.Count);
        }
        var verify = ArchiveServer.Verify(data);
        Assert.True(verify.ExitCode == 0, verify.StdOut + verify.StdErr);

        // A resend of everything: every instance a success, each stored once, the archive whole.
        var resent = Storescu.Send(config, server.DicomPort, before.Concat(during).ToList(), 2, ToolTimeout).SelectMany(Storescu.Responses).ToList();
        Assert.Equal(before.Count + during.Count, resent.Count);
        Assert.All(resent, kv => Assert.True(kv.Value == "Success", $"{kv.Key}: {kv.Value}"));
        if (local) await WaitUntilAsync(async () => await MetricAsync(server, "akkavna_blob_uploads_pending") == 0, TimeSpan.FromMinutes(2), "the queue drains");
        await using (var index = await ArchiveServer.OpenIndexAsync(data))
        {
            var rows = await ArchiveServer.ListAsync(index);
            Assert.Equal(before.Count + during.Count, rows.Count);
            await IngestTests.AssertArchivedAsync(data, before.Concat(during), rows);
            Assert.Equal(rows.Count, (await KeysInS3Async(data)).Count);
        }
        Assert.Equal(0, ArchiveServer.Verify(data).ExitCode);
        Assert.Equal(0, server.Stop());
    }

    [Fact]
    public async Task After_local_commit_a_node_killed_before_its_uploads_uploads_every_acknowledged_instance_when_it_starts_again()
    {
        using var dir = new TempDir();
        string data = ArchiveServer.NewDataFolder(dir, ArchiveServer.S3);
        const string LocalCommit = "akka-vna.blobs.s3.acknowledge = after-local-commit\n";
        var files = Instances.WriteStudy(dir.File("study"), 60, 32 * 1024, seed: 41).Select(StoreFile.Read).ToList();
        string config = Storescu.WriteConfig(dir, files);
        // S3 out of reach for this run: every instance acknowledged from the cache, none uploaded, then SIGKILL.
        using (var server = new ArchiveServer(data, LocalCommit + $"akka-vna.blobs.s3.endpoint = \"{Nowhere}\"\nakka-vna.blobs.s3.request-timeout = 2s\n"))
        {
            var answers = Storescu.Send(config, server.DicomPort, files, 2, ToolTimeout).SelectMany(Storescu.Responses).ToList();
            Assert.Equal(files.Count, answers.Count);
            Assert.All(answers, kv => Assert.True(kv.Value == "Success", $"{kv.Key}: {kv.Value}"));
            Assert.Equal(files.Count, await MetricAsync(server, "akkavna_blob_uploads_pending"));
            server.Kill();
        }
        Assert.Empty(await KeysInS3Async(data));

        using (var server = new ArchiveServer(data, LocalCommit))
        {
            // At start the queue resumes: every acknowledged instance reaches S3, nothing resent.
            await WaitUntilAsync(async () => await MetricAsync(server, "akkavna_blob_uploads_pending") == 0, TimeSpan.FromMinutes(2), "the queue drains after the restart");
            await using (var index = await ArchiveServer.OpenIndexAsync(data))
            {
                var rows = await ArchiveServer.ListAsync(index);
                await IngestTests.AssertArchivedAsync(data, files, rows);
                var inS3 = await KeysInS3Async(data);
                Assert.Equal(rows.Select(r => r.Blob.Key).Order(), inS3.Order());
            }
            Assert.Equal(0, ArchiveServer.Verify(data).ExitCode);
            Assert.Equal(0, server.Stop());
        }
    }
}
