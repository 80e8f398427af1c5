using AkkaVna.Dicom.IO;
using System.Globalization;
using AkkaVna.Dicom.Network.Scu;
using AkkaVna.Dicom.Network.Trace;
using AkkaVna.Testing;

namespace AkkaVna.Host.Tests.Serve;

/// <summary>With <c>ingest.trace</c> set, the node records each C-STORE it answers, in the format <c>replay</c> reads.</summary>
public sealed class TraceRecordingTests
{
    [Fact]
    public void Each_c_store_from_each_gateway_is_recorded_with_its_study_size_latency_and_status()
    {
        using var dir = new TempDir();
        string data = dir.File("data");
        var files = Instances.WriteStudy(dir.File("study"), 6, 4096, seed: 21).Select(StoreFile.Read).ToList();
        string study = IngestTests.StudyOf(files[0].Path);
        using (var server = new ArchiveServer(data, "akka-vna.ingest.trace = \"trace.jsonl\""))
        {
            string config = Storescu.WriteConfig(dir, files);
            foreach (var (gateway, part) in new[] { ("GW1", files[..3]), ("GW2", files[3..]) })
            {
                var r = Assert.Single(Storescu.Send(config, server.DicomPort, part, 1, TimeSpan.FromMinutes(2), "-aet", gateway));
                Assert.All(Storescu.Responses(r).Values, v => Assert.Equal("Success", v));
            }
            // A resend is recorded too (it is traffic), answered with success.
            Assert.Single(Storescu.Send(config, server.DicomPort, files[..1], 1, TimeSpan.FromMinutes(2), "-aet", "GW1"));
            Assert.Equal(0, server.Stop());
        }
        var trace = StoreTrace.Read(Path.Combine(data, "trace.jsonl"));
        Assert.Equal(7, trace.Count);
        Assert.Equal(["GW1", "GW1", "GW1", "GW2", "GW2", "GW2", "GW1"], trace.Select(e => e.CallingAE));
        Assert.All(trace, e =>
        {
            Assert.Equal("AKKAVNA", e.CalledAE);
            Assert.Equal(study, e.Study);
            Assert.Equal("0000", e.Status);
            Assert.True(e.LatencyMs > 0, e.LatencyMs?.ToString(CultureInfo.InvariantCulture));
            Assert.Contains(e.Size!.Value, files.Select(f => f.DataSetLength));
        });
    }
}
