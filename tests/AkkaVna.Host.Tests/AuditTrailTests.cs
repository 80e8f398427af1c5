using AkkaVna.Core.Audit;
using AkkaVna.Index.Sqlite;
using AkkaVna.Testing;
using AkkaVna.Testing.Audit;
using Microsoft.Extensions.Logging.Abstractions;

namespace AkkaVna.Host.Tests;

/// <summary>
/// The audit trail's writer in process: syslog over UDP (RFC 5426) to a receiver started here, stored instances gathered
/// per transfer and study, and a full queue that drops and counts rather than making the caller wait.
/// </summary>
public sealed class AuditTrailTests : IAsyncLifetime
{
    private readonly TempDir _dir = new();
    private SqliteArchiveIndex _index = null!;

    public async Task InitializeAsync()
    {
        _index = new SqliteArchiveIndex(_dir.File("index.db"), NullLogger.Instance);
        await _index.InitializeAsync(CancellationToken.None);
    }

    public async Task DisposeAsync()
    {
        await _index.DisposeAsync();
        _dir.Dispose();
    }

    private static readonly AuditParticipant Archive = new("AKKAVNA", "AKKAVNA", "archive.test", false, AuditRole.Application);
    private static readonly AuditParticipant Modality = new("CT1", "CT1", "10.1.2.3", true, AuditRole.Source);

    [Fact]
    public async Task Messages_go_to_a_udp_collector_and_stored_instances_are_reported_per_transfer_and_study()
    {
        using var collector = SyslogCollector.Udp();
        var options = new AuditOptions(null, AuditSyslogTransport.Udp, "127.0.0.1", collector.Port, null, null, null, 1000, "SITE", null);
        var metrics = new ArchiveMetrics();
        var trail = new AuditTrail(options, "node-1", _index, metrics, NullLogger.Instance);
        trail.InstanceStored("dicom:1", Modality, Archive with { Role = AuditRole.Destination }, "1.2.3.1", "1.2.840.10008.5.1.4.1.1.2");
        trail.InstanceStored("dicom:1", Modality, Archive with { Role = AuditRole.Destination }, "1.2.3.1", "1.2.840.10008.5.1.4.1.1.2");
        trail.InstanceStored("dicom:1", Modality, Archive with { Role = AuditRole.Destination }, "1.2.3.2", "1.2.840.10008.5.1.4.1.1.4");
        trail.InstanceStored("dicom:2", Modality, Archive with { Role = AuditRole.Destination }, "1.2.3.1", "1.2.840.10008.5.1.4.1.1.2");
        trail.EndOfTransfer("dicom:1");
        trail.Record(new SecurityAlert(DateTimeOffset.UtcNow, SecurityAlertType.NodeAuthentication, "no client certificate", Archive,
            new AuditParticipant("10.9.9.9", null, "10.9.9.9", true)));
        await trail.StopAsync(TimeSpan.FromSeconds(10)); // reports dicom:2 too (its end never came)
        await Waits.UntilAsync(() => Task.FromResult(collector.Messages.Count == 4), TimeSpan.FromSeconds(10), "four messages",
            () => string.Join('\n', collector.Messages.Select(m => m.Xml)));
        var m = collector.Messages;
        Assert.Empty(collector.Errors);
        Assert.Equal("", SyslogCollector.ValidateAgainstSchema(m.Select(x => x.Xml), _dir.File("xml")));
        // Transfer 1: one message per study (a message names one patient), the first with 2 CT instances, the second 1 MR.
        Assert.Equal("1.2.3.1", m[0].Objects.First().Attribute("ParticipantObjectID")!.Value);
        Assert.Equal("2", m[0].Objects.First().Element("SOPClass")!.Attribute("NumberOfInstances")!.Value);
        Assert.Equal("1.2.3.2", m[1].Objects.First().Attribute("ParticipantObjectID")!.Value);
        Assert.Equal("110113", m[2].EventId);
        Assert.Equal(84, m[2].Priority); // authpriv.warning for a failure
        Assert.Equal("1.2.3.1", m[3].Objects.First().Attribute("ParticipantObjectID")!.Value);
        Assert.All(m, x => Assert.Equal("SITE", x.Root.Element("AuditSourceIdentification")!.Attribute("AuditEnterpriseSiteID")!.Value));
        Assert.All(m, x => Assert.Equal("node-1", x.Root.Element("AuditSourceIdentification")!.Attribute("AuditSourceID")!.Value));
    }

    [Fact]
    public async Task A_full_queue_drops_and_counts_instead_of_making_the_caller_wait()
    {
        string file = Path.Combine(_dir.File("audit"), "audit.log");
        var options = new AuditOptions(file, AuditSyslogTransport.None, "127.0.0.1", 514, null, null, null, 10, null, null);
        var metrics = new ArchiveMetrics();
        var trail = new AuditTrail(options, "node-1", _index, metrics, NullLogger.Instance);
        const int events = 2000;
        var started = System.Diagnostics.Stopwatch.StartNew();
        for (int i = 0; i < events; i++)
            trail.Record(new ApplicationActivity(DateTimeOffset.UtcNow, Started: true, Archive));
        var enqueueing = started.Elapsed;
        await trail.StopAsync(TimeSpan.FromSeconds(30));
        string scrape = await Scrape(metrics);
        double Count(string outcome) =>
            double.Parse(scrape.Split('\n').Single(l => l.StartsWith($"akkavna_audit_messages_total{{outcome=\"{outcome}\"}}", StringComparison.Ordinal)).Split(' ')[1],
                System.Globalization.CultureInfo.InvariantCulture);
        double sent = Count("sent"), dropped = Count("dropped");
        Assert.True(dropped > 0, $"nothing dropped ({sent} sent) while {events} events were recorded in {enqueueing.TotalMilliseconds} ms");
        Assert.Equal(events, sent + dropped);
        Assert.Equal(sent, File.ReadAllLines(file).Length);
    }

    private static async Task<string> Scrape(ArchiveMetrics metrics)
    {
        using var ms = new MemoryStream();
        await metrics.Registry.CollectAndExportAsTextAsync(ms);
        return System.Text.Encoding.UTF8.GetString(ms.ToArray());
    }
}
