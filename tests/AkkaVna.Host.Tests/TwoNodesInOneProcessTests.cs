using AkkaVna.Dicom.IO;
using AkkaVna.Dicom.Network.Scu;
using AkkaVna.Testing;
using Microsoft.Extensions.Logging;

namespace AkkaVna.Host.Tests;

/// <summary>
/// Two archive nodes built by the composition root inside one test process, each on its own data: nothing is static —
/// each has its own actor system, stores, metrics registry and logging — so they keep apart what each receives.
/// </summary>
public sealed class TwoNodesInOneProcessTests
{
    private static ArchiveOptions Options(string data) => ArchiveOptions.Load(null, $"""
        akka-vna.data = {ArchiveOptions.Quote(data)}
        akka-vna.dicom.port = 0
        akka-vna.http.port = 0
        akka-vna.node-name = {ArchiveOptions.Quote(Path.GetFileName(data))}
        """);

    [Fact]
    public async Task Two_nodes_side_by_side_each_archive_and_count_only_what_they_receive()
    {
        using var dir = new TempDir();
        void Logging(ILoggingBuilder b) => b.SetMinimumLevel(LogLevel.Warning);
        await using var a = await ArchiveNode.StartAsync(Options(dir.File("node-a")), Logging, CancellationToken.None);
        await using var b = await ArchiveNode.StartAsync(Options(dir.File("node-b")), Logging, CancellationToken.None);
        Assert.NotEqual(a.DicomEndPoint.Port, b.DicomEndPoint.Port);
        Assert.NotSame(a.Metrics.Registry, b.Metrics.Registry);

        var toA = Instances.WriteStudy(dir.File("a"), 2, 4096, seed: 41).Select(StoreFile.Read).ToList();
        var toB = Instances.WriteStudy(dir.File("b"), 3, 4096, seed: 42).Select(StoreFile.Read).ToList();
        var scu = new StoreScuOptions { CalledAE = "AKKAVNA" };
        Assert.All(await StoreScu.SendAsync("127.0.0.1", a.DicomEndPoint.Port, toA, scu), o => Assert.True(o.Stored, o.Error));
        Assert.All(await StoreScu.SendAsync("127.0.0.1", b.DicomEndPoint.Port, toB, scu), o => Assert.True(o.Stored, o.Error));

        Assert.Equal(2, (await a.Index.CountAsync(CancellationToken.None)).Instances);
        Assert.Equal(3, (await b.Index.CountAsync(CancellationToken.None)).Instances);
        using var http = new HttpClient();
        string metricsA = await http.GetStringAsync($"http://127.0.0.1:{a.HttpPort}/metrics");
        string metricsB = await http.GetStringAsync($"http://127.0.0.1:{b.HttpPort}/metrics");
        Assert.Contains("akkavna_ingest_instances_total{outcome=\"stored\"} 2", metricsA, StringComparison.Ordinal);
        Assert.Contains("akkavna_ingest_instances_total{outcome=\"stored\"} 3", metricsB, StringComparison.Ordinal);
        Assert.Contains("process_cpu_seconds_total", metricsA, StringComparison.Ordinal);

        await a.StopAsync(TimeSpan.FromSeconds(10));
        // The other node goes on alone.
        var more = Instances.WriteStudy(dir.File("b2"), 1, 4096, seed: 43).Select(StoreFile.Read).ToList();
        Assert.All(await StoreScu.SendAsync("127.0.0.1", b.DicomEndPoint.Port, more, scu), o => Assert.True(o.Stored, o.Error));
        Assert.Equal(4, (await b.Index.CountAsync(CancellationToken.None)).Instances);
    }

    [Fact]
    public void A_provider_this_build_does_not_have_stops_serve_at_start_naming_the_setting()
    {
        using var dir = new TempDir();
        var r = Tool.Run("env", ["AKKAVNA_INDEX_PROVIDER=cassandra", "dotnet", AkkaVnaCli.Dll, "serve", "--data", dir.File("data"), "--dicom-port", "0", "--http-port", "0"],
            TimeSpan.FromMinutes(1));
        Assert.NotEqual(0, r.ExitCode);
        Assert.Contains("akka-vna.index.provider is 'cassandra', which this build does not have; it has: sqlite", r.StdErr + r.StdOut, StringComparison.Ordinal);
    }
}
