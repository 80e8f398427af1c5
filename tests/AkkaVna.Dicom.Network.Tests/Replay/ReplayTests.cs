using System.Buffers;
using System.Globalization;
using System.Text.Json;
using AkkaVna.Dicom.IO;
using AkkaVna.Dicom.Network.Dimse;
using AkkaVna.Dicom.Network.Replay;
using AkkaVna.Dicom.Network.Scp;
using AkkaVna.Dicom.Network.Scu;
using AkkaVna.Dicom.Network.Trace;
using AkkaVna.Testing;

namespace AkkaVna.Dicom.Network.Tests.Replay;

public sealed class ReplayTests
{
    private static DicomServer Start(ICStoreHandler store)
    {
        var server = new DicomServer(new DicomServerOptions { Port = 0, BindAddress = System.Net.IPAddress.Loopback, Association = new DicomAssociationOptions() },
            new DicomServices { Store = store, Policy = new AssociationPolicy { CalledAETitles = new HashSet<string>() } });
        server.Start();
        return server;
    }

    [Fact]
    public void Histogram_percentiles_are_within_one_percent_of_the_exact_ones()
    {
        var random = new Random(5);
        var values = Enumerable.Range(0, 100_000).Select(_ => Math.Exp(random.NextDouble() * 12) / 100).ToList(); // 0.01 ms .. 1.6 s
        var h = new LatencyHistogram();
        foreach (var v in values) h.Record(v);
        var sorted = values.Order().ToList();
        foreach (double p in new[] { 50, 90, 99, 99.9 })
        {
            double exact = sorted[(int)Math.Ceiling(p / 100 * sorted.Count) - 1];
            Assert.InRange(h.Percentile(p), exact * 0.99, exact * 1.01 + 0.001);
        }
        Assert.Equal(sorted[^1], h.MaxMs);
        Assert.Equal(100_000, h.Count);
    }

    [Fact]
    public void Generated_instances_are_accepted_by_dcmdump_and_every_run_has_fresh_uids()
    {
        using var dir = new TempDir();
        var first = ReplaySources.Generate(new GeneratorOptions(2, 3, "CT", 64, 64), dir.File("a"));
        var second = ReplaySources.Generate(new GeneratorOptions(2, 3, "MR", 64, 64), dir.File("b"));
        Assert.Equal(6, first.Count);
        foreach (var f in first.Concat(second))
        {
            var r = Tool.Run(Tool.Dcmtk("dcmdump"), ["-q", f.Path]);
            Assert.True(r.ExitCode == 0 && r.StdErr.Length == 0, $"dcmdump: {r.StdErr}");
        }
        Assert.Equal(12, first.Concat(second).Select(f => f.SopInstanceUid).Distinct().Count());
        // Pixel data with structure and noise: neither constant nor the same from one instance to the next.
        var a = File.ReadAllBytes(first[0].Path)[^4096..];
        var b = File.ReadAllBytes(first[1].Path)[^4096..];
        Assert.True(a.Distinct().Count() > 16);
        Assert.NotEqual(a, b);
    }

    [Fact]
    public void A_trace_with_sizes_becomes_instances_of_about_those_sizes_at_the_trace_times_divided_by_the_speed()
    {
        using var dir = new TempDir();
        var trace = new List<TraceEntry>
        {
            new(0, "GW1", "AKKAVNA", "1.2.3", 200_000, null),
            new(2, "GW2", "AKKAVNA", "1.2.3", 50_000, null),
            new(4, "GW1", "AKKAVNA", "1.2.4", 1_000_000, null),
        };
        var items = ReplaySources.FromTrace(trace, dir.Path, speed: 2);
        Assert.Equal([0.0, 1.0, 2.0], items.Select(i => i.Offset));
        Assert.Equal(["GW1", "GW2", "GW1"], items.Select(i => i.CallingAE));
        foreach (var (item, entry) in items.Zip(trace)) Assert.InRange((double)new FileInfo(item.File.Path).Length, entry.Size!.Value * 0.97, entry.Size.Value * 1.03);
        // The trace's studies map to fresh studies: same trace study, same new study.
        string StudyOf(ReplayItem i)
        {
            using var f = DicomFile.Open(i.File.Path, new DicomReadOptions { StopBefore = t => t.Group > 0x0020 });
            return f.Dataset.GetString(DicomTags.StudyInstanceUID)!;
        }
        Assert.Equal(StudyOf(items[0]), StudyOf(items[1]));
        Assert.NotEqual(StudyOf(items[0]), StudyOf(items[2]));
        Assert.NotEqual("1.2.3", StudyOf(items[0]));
    }

    [Fact]
    public async Task A_slow_server_shows_as_latency_from_the_scheduled_time_not_as_a_slower_schedule()
    {
        using var dir = new TempDir();
        var handler = new DelayingHandler(TimeSpan.FromMilliseconds(200));
        await using var server = Start(handler);
        var files = Instances.WriteStudy(dir.File("src"), 20, 2048).Select(StoreFile.Read).ToList();
        // 20 per second on one association to a server that takes 200 ms each: it falls behind by 150 ms per instance.
        var items = ReplaySources.Schedule(files, new ScheduleOptions(1, "GW", "AKKAVNA", 20));
        var outcomes = await ReplayRunner.RunAsync("127.0.0.1", server.LocalEndPoint.Port, items, new ReplayOptions { OpenLoop = true });
        var report = ReplayReport.From("slow", DateTimeOffset.UtcNow, outcomes, openLoop: true);
        Assert.Equal(20, report.Stored);
        // The last was scheduled at 0.95 s and answered after about 20 x 0.2 = 4 s: its latency is about 3 s, not 0.2 s.
        Assert.True(report.Latency.MaxMs > 2500, report.ToText());
        Assert.True(outcomes.Zip(outcomes.Skip(1)).All(p => p.Item2.Scheduled - p.Item1.Scheduled is > 0.049 and < 0.051), "the schedule kept its pace");
        // Closed loop on the same outcomes would report only the service time.
        var closed = ReplayReport.From("slow", DateTimeOffset.UtcNow, outcomes, openLoop: false);
        Assert.True(closed.Latency.Percentile(50) < 1000, closed.ToText() + string.Join("\n", outcomes.Select(o => $"{o.Scheduled:F3} {o.Sent:F3} {o.Completed:F3}")));
    }

    [Fact]
    public async Task A_stalled_server_gives_timeouts_and_failures_and_the_replay_ends()
    {
        using var dir = new TempDir();
        using var stall = new CancellationTokenSource();
        var handler = new DelayingHandler(Timeout.InfiniteTimeSpan, stall.Token);
        await using var server = Start(handler);
        var files = Instances.WriteStudy(dir.File("src"), 3, 2048).Select(StoreFile.Read).ToList();
        var items = ReplaySources.Schedule(files, new ScheduleOptions(1, "GW", "AKKAVNA", null));
        var run = ReplayRunner.RunAsync("127.0.0.1", server.LocalEndPoint.Port, items, new ReplayOptions { OpenLoop = false, Timeout = TimeSpan.FromSeconds(1) });
        var outcomes = await run.WaitAsync(TimeSpan.FromSeconds(60));
        var report = ReplayReport.From("stalled", DateTimeOffset.UtcNow, outcomes, openLoop: false);
        Assert.Equal(0, report.Stored);
        Assert.Equal(3, report.Failures["timeout"]);
        Assert.Equal(files.Sum(f => f.DataSetLength), report.BytesSent); // sent, never answered
        Assert.All(outcomes, o => Assert.InRange(o.Completed - o.Sent, 0.9, 10));
        stall.Cancel(); // let the server's stalled stores end before it is disposed
    }

    [Fact]
    public void The_cli_holds_a_modest_rate_within_five_percent_over_thirty_seconds_and_writes_its_reports()
    {
        using var dir = new TempDir();
        using var receiver = new ServerProcess("dotnet", [AkkaVnaCli.Dll, "receive", "-p", "0", "-o", dir.File("out"), "--bind", "127.0.0.1"], "listening on",
            TimeSpan.FromSeconds(60));
        int port = receiver.ReadyPort("127.0.0.1:");
        Directory.CreateDirectory(dir.File("out"));
        var r = AkkaVnaCli.Run(TimeSpan.FromMinutes(3), "replay", "127.0.0.1", port.ToString(CultureInfo.InvariantCulture), "generate:6,100,CT,64x64",
            "-n", "3", "-aec", "AKKAVNA", "--rate", "20", "--report", dir.File("report"));
        Assert.True(r.ExitCode == 0, r.StdErr + r.StdOut);
        using var json = JsonDocument.Parse(File.ReadAllText(dir.File("report/replay.json")));
        var root = json.RootElement;
        Assert.Equal(600, root.GetProperty("stored").GetInt32());
        Assert.Equal(3, root.GetProperty("associations").GetInt32());
        double rate = root.GetProperty("instancesPerSecond").GetDouble();
        Assert.InRange(rate, 19, 21);
        Assert.InRange(root.GetProperty("seconds").GetDouble(), 29.5, 31.5);
        // The timeline spans the run (a second in which nothing completed, e.g. while a loaded machine stalled the
        // process, has no bucket: the count alone is not the span).
        var timeline = root.GetProperty("timeline");
        Assert.True(timeline[timeline.GetArrayLength() - 1].GetProperty("Second").GetInt32() >= 28, timeline.ToString());
        Assert.True(timeline.GetArrayLength() >= 20, timeline.ToString());
        Assert.Contains("| 600 | 600 | 0 | ", File.ReadAllText(dir.File("report/replay.md")), StringComparison.Ordinal);
        Assert.Equal(root.GetProperty("bytes").GetInt64(), root.GetProperty("bytesSent").GetInt64());
        Assert.StartsWith("<svg", File.ReadAllText(dir.File("report/replay.svg")), StringComparison.Ordinal);
        Assert.Equal(600, Directory.GetFiles(dir.File("out")).Length);
        Assert.Contains("p99.9", r.StdOut, StringComparison.Ordinal);
    }

    [Fact]
    public void The_cli_names_the_bad_line_of_a_trace_and_exits_with_2()
    {
        using var dir = new TempDir();
        string trace = dir.File("bad.jsonl");
        File.WriteAllLines(trace, ["{\"t\": 0, \"calling\": \"GW1\", \"called\": \"AKKAVNA\", \"size\": 1000}", "{\"t\": 1, \"calling\": \"GW1\", \"called\": \"AKKAVNA\", \"file\": \"gone.dcm\"}"]);
        var r = AkkaVnaCli.Run(TimeSpan.FromMinutes(1), "replay", "127.0.0.1", "104", "-", "--trace", trace);
        Assert.Equal(2, r.ExitCode);
        Assert.Contains($"{trace}:2: file", r.StdErr, StringComparison.Ordinal);
    }

    /// <summary>A storage SCP that takes its time before answering each C-STORE (forever with an infinite delay).</summary>
    private sealed class DelayingHandler(TimeSpan delay, CancellationToken release = default) : ICStoreHandler
    {
        public ValueTask<IStoreSink> BeginAsync(StoreRequest request, CancellationToken cancellationToken) => ValueTask.FromResult<IStoreSink>(new Sink(delay, release));

        private sealed class Sink(TimeSpan delay, CancellationToken release) : IStoreSink
        {
            public ValueTask WriteAsync(ReadOnlySequence<byte> data, CancellationToken cancellationToken) => ValueTask.CompletedTask;

            public async ValueTask<DimseResult> CompleteAsync(CancellationToken cancellationToken)
            {
                try
                {
                    await Task.Delay(delay, release);
                }
                catch (OperationCanceledException)
                {
                    return new DimseResult(DimseStatus.StoreOutOfResources, "released by the test");
                }
                return DimseResult.Success;
            }

            public ValueTask DisposeAsync() => ValueTask.CompletedTask;
        }
    }
}
