using AkkaVna.Dicom.IO;
using AkkaVna.Host.Tests.Cluster;
using AkkaVna.Testing;
using Xunit.Abstractions;

namespace AkkaVna.Host.Tests.Serve;

/// <summary>
/// A node on S3 whose object store goes away in the middle of an ingest and comes back. Alone (it stops the tests'
/// radosgw, which other S3 tests share).
/// </summary>
[Collection(ClusterCollection.Name)]
public sealed class S3FaultTests(ITestOutputHelper output)
{
    private static readonly TimeSpan ToolTimeout = TimeSpan.FromMinutes(4);

    [Fact]
    public async Task With_S3_gone_mid_ingest_nothing_acknowledged_is_lost_and_the_node_uploads_what_it_committed_once_S3_is_back()
    {
        using var dir = new TempDir();
        string data = ArchiveServer.NewDataFolder(dir, ArchiveServer.S3);
        using var server = new ArchiveServer(data, """
            akka-vna.blobs.s3.request-timeout = 3s
            akka-vna.blobs.s3.max-retries = 1
            akka-vna.ingest.sweep-interval = 2s
            akka-vna.ingest.staged-grace = 3s
            """);
        var before = Instances.WriteStudy(dir.File("before"), 40, 16 * 1024, seed: 31).Select(StoreFile.Read).ToList();
        var during = Instances.WriteStudy(dir.File("during"), 40, 16 * 1024, seed: 32).Select(StoreFile.Read).ToList();
        string config = Storescu.WriteConfig(dir, before.Concat(during));

        Assert.All(Storescu.Responses(Storescu.Send(config, server.DicomPort, before, 1, ToolTimeout).Single()).Values, s => Assert.Equal("Success", s));
        Dictionary<string, string> outage;
        RadosGateway.Shared.Stop();
        try
        {
            outage = Storescu.Responses(Storescu.Send(config, server.DicomPort, during, 1, ToolTimeout).Single());
        }
        finally
        {
            RadosGateway.Shared.Start();
        }
        // With the object store out of reach nothing is acknowledged: each C-STORE gets a failure that says to send again.
        output.WriteLine(string.Join("\n", outage.Values.GroupBy(v => v).Select(g => $"{g.Key}: {g.Count()}")));
        Assert.Equal(during.Count, outage.Count);
        Assert.All(outage.Values, s => Assert.NotEqual("Success", s));
        Assert.True(server.Output.Contains("committed but not yet in the blob store", StringComparison.Ordinal),
            string.Join('\n', server.Output.Split('\n').Where(l => l.Contains("fail", StringComparison.Ordinal) || l.Contains("refused", StringComparison.Ordinal)).Take(10)));

        // The node catches up by itself (no restart, nothing resent): the sweep uploads every committed instance it kept staged.
        var until = DateTime.UtcNow + TimeSpan.FromMinutes(2);
        await using (var blobs = ArchiveServer.OpenBlobs(data))
            while (await blobs.CountStagedAsync(CancellationToken.None) > 0 && DateTime.UtcNow < until) await Task.Delay(500);
        var verify = ArchiveServer.Verify(data);
        Assert.True(verify.ExitCode == 0, verify.StdOut + verify.StdErr);
        await using (var index = await ArchiveServer.OpenIndexAsync(data))
        {
            var rows = await ArchiveServer.ListAsync(index);
            await IngestTests.AssertArchivedAsync(data, before, rows);
        }

        // A resend of everything: every instance a success, each stored once, the archive whole.
        var resent = Storescu.Send(config, server.DicomPort, before.Concat(during).ToList(), 2, ToolTimeout).SelectMany(Storescu.Responses).ToList();
        Assert.Equal(before.Count + during.Count, resent.Count);
        Assert.All(resent, kv => Assert.True(kv.Value == "Success", $"{kv.Key}: {kv.Value}"));
        await using (var index = await ArchiveServer.OpenIndexAsync(data))
        {
            var rows = await ArchiveServer.ListAsync(index);
            Assert.Equal(before.Count + during.Count, rows.Count);
            await IngestTests.AssertArchivedAsync(data, before.Concat(during), rows);
        }
        Assert.Equal(0, ArchiveServer.Verify(data).ExitCode);
        Assert.Equal(0, server.Stop());
    }
}
