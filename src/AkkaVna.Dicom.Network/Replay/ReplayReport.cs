using System.Globalization;
using System.Text;
using System.Text.Json;

namespace AkkaVna.Dicom.Network.Replay;

/// <summary>One second of a run: C-STORE responses received in it, failures among them, and their latency.</summary>
public sealed record ReplaySecond(int Second, int Completed, int Failed, long Bytes, double P50Ms, double P99Ms);

/// <summary>
/// The result of a replay: throughput, latency percentiles from a histogram, failures by DIMSE status or transport
/// error, bytes sent, and the same per second. Written as a console table, JSON, Markdown, and an SVG plot of
/// throughput and latency over time.
/// </summary>
public sealed class ReplayReport
{
    public required string Target { get; init; }
    public required DateTimeOffset Started { get; init; }
    public required int Associations { get; init; }
    public required bool OpenLoop { get; init; }
    public required double Seconds { get; init; }
    public required int Sent { get; init; }
    public required int Stored { get; init; }
    /// <summary>Data set bytes of the instances stored.</summary>
    public required long Bytes { get; init; }
    /// <summary>Data set bytes of every C-STORE sent (stored or not; those that never got an association are not sent).</summary>
    public required long BytesSent { get; init; }
    public required IReadOnlyDictionary<string, int> Failures { get; init; }
    public required LatencyHistogram Latency { get; init; }
    public required IReadOnlyList<ReplaySecond> Timeline { get; init; }

    public double InstancesPerSecond => Stored / Math.Max(Seconds, 1e-9);
    public double MegabytesPerSecond => Bytes / 1e6 / Math.Max(Seconds, 1e-9);

    public static readonly double[] Percentiles = [50, 90, 99, 99.9];

    public static ReplayReport From(string target, DateTimeOffset started, IReadOnlyList<ReplayOutcome> outcomes, bool openLoop)
    {
        var latency = new LatencyHistogram();
        double Latency(ReplayOutcome o) => (o.Completed - (openLoop ? o.Scheduled : o.Sent)) * 1000;
        foreach (var o in outcomes) latency.Record(Latency(o));
        var timeline = outcomes.GroupBy(o => (int)Math.Floor(o.Completed)).OrderBy(g => g.Key).Select(g =>
        {
            var h = new LatencyHistogram();
            foreach (var o in g) h.Record(Latency(o));
            return new ReplaySecond(g.Key, g.Count(), g.Count(o => !o.Stored), g.Where(o => o.Stored).Sum(o => o.Item.File.DataSetLength), h.Percentile(50), h.Percentile(99));
        }).ToList();
        return new ReplayReport
        {
            Target = target,
            Started = started,
            Associations = outcomes.Select(o => (o.Item.CallingAE, o.Item.CalledAE)).Distinct().Count(),
            OpenLoop = openLoop,
            Seconds = outcomes.Count == 0 ? 0 : outcomes.Max(o => o.Completed),
            Sent = outcomes.Count,
            Stored = outcomes.Count(o => o.Stored),
            Bytes = outcomes.Where(o => o.Stored).Sum(o => o.Item.File.DataSetLength),
            BytesSent = outcomes.Where(o => o.WasSent).Sum(o => o.Item.File.DataSetLength),
            Failures = outcomes.Where(o => !o.Stored).GroupBy(o => o.FailureKind!).ToDictionary(g => g.Key, g => g.Count()),
            Latency = latency,
            Timeline = timeline,
        };
    }

    private static string F(double v, string format = "F1") => v.ToString(format, CultureInfo.InvariantCulture);

    /// <summary>A plain table for the console.</summary>
    public string ToText()
    {
        var sb = new StringBuilder();
        sb.AppendLine(CultureInfo.InvariantCulture, $"replay to {Target}: {Sent} C-STORE(s) over {Associations} association(s) in {F(Seconds, "F2")} s ({(OpenLoop ? "open loop: latency from the scheduled time" : "as fast as possible: latency from the send")})");
        sb.AppendLine(CultureInfo.InvariantCulture, $"  stored      {Stored} ({F(InstancesPerSecond)} instances/s, {F(MegabytesPerSecond)} MB/s, {Bytes:N0} bytes; {BytesSent:N0} bytes sent)");
        sb.AppendLine(CultureInfo.InvariantCulture, $"  failed      {Sent - Stored}{(Failures.Count == 0 ? "" : " — " + string.Join(", ", Failures.Select(kv => $"{kv.Key}: {kv.Value}")))}");
        sb.AppendLine(CultureInfo.InvariantCulture, $"  latency ms  p50 {F(Latency.Percentile(50), "F2")}  p90 {F(Latency.Percentile(90), "F2")}  p99 {F(Latency.Percentile(99), "F2")}  p99.9 {F(Latency.Percentile(99.9), "F2")}  max {F(Latency.MaxMs, "F2")}");
        return sb.ToString();
    }

    public string ToJson() => JsonSerializer.Serialize(new
    {
        target = Target,
        started = Started,
        associations = Associations,
        openLoop = OpenLoop,
        seconds = Seconds,
        sent = Sent,
        stored = Stored,
        bytes = Bytes,
        bytesSent = BytesSent,
        instancesPerSecond = InstancesPerSecond,
        megabytesPerSecond = MegabytesPerSecond,
        failures = Failures,
        latencyMs = new { p50 = Latency.Percentile(50), p90 = Latency.Percentile(90), p99 = Latency.Percentile(99), p999 = Latency.Percentile(99.9), max = Latency.MaxMs, mean = Latency.MeanMs },
        timeline = Timeline,
    }, new JsonSerializerOptions { WriteIndented = true });

    public string ToMarkdown()
    {
        var sb = new StringBuilder();
        sb.AppendLine(CultureInfo.InvariantCulture, $"# Replay to {Target}");
        sb.AppendLine();
        sb.AppendLine(CultureInfo.InvariantCulture, $"Started {Started:u}; {Associations} association(s); {(OpenLoop ? "open loop (latency from the scheduled time)" : "as fast as possible (latency from the send)")}.");
        sb.AppendLine();
        sb.AppendLine("| sent | stored | failed | bytes sent | seconds | instances/s | MB/s | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms |");
        sb.AppendLine("|---|---|---|---|---|---|---|---|---|---|---|---|");
        sb.AppendLine(CultureInfo.InvariantCulture, $"| {Sent} | {Stored} | {Sent - Stored} | {BytesSent} | {F(Seconds, "F2")} | {F(InstancesPerSecond)} | {F(MegabytesPerSecond)} | {F(Latency.Percentile(50), "F2")} | {F(Latency.Percentile(90), "F2")} | {F(Latency.Percentile(99), "F2")} | {F(Latency.Percentile(99.9), "F2")} | {F(Latency.MaxMs, "F2")} |");
        if (Failures.Count > 0)
        {
            sb.AppendLine();
            sb.AppendLine("| failure | count |");
            sb.AppendLine("|---|---|");
            foreach (var (kind, count) in Failures) sb.AppendLine(CultureInfo.InvariantCulture, $"| {kind} | {count} |");
        }
        sb.AppendLine();
        sb.AppendLine("![throughput and latency over time](replay.svg)");
        return sb.ToString();
    }

    /// <summary>Two panels over the run's seconds: stored instances per second, and p50/p99 latency.</summary>
    public string ToSvg()
    {
        const int Width = 800, PanelHeight = 200, Left = 60, Top = 30, Gap = 60;
        int seconds = Math.Max(1, Timeline.Count == 0 ? 1 : Timeline[^1].Second + 1);
        double maxRate = Math.Max(1, Timeline.Select(t => (double)(t.Completed - t.Failed)).DefaultIfEmpty(1).Max());
        double maxLatency = Math.Max(0.001, Timeline.Select(t => t.P99Ms).DefaultIfEmpty(1).Max());
        double X(double second) => Left + (Width - Left - 20) * second / seconds;
        double Y(double value, double max, int panel) => Top + panel * (PanelHeight + Gap) + PanelHeight * (1 - value / max);
        string Line(Func<ReplaySecond, double> value, double max, int panel, string color) =>
            $"<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"1.5\" points=\"{string.Join(' ', Timeline.Select(t => $"{F(X(t.Second + 0.5))},{F(Y(value(t), max, panel))}"))}\"/>";
        var sb = new StringBuilder();
        sb.AppendLine(CultureInfo.InvariantCulture, $"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{Width}\" height=\"{Top + 2 * PanelHeight + Gap + 40}\" font-family=\"sans-serif\" font-size=\"12\">");
        for (int panel = 0; panel < 2; panel++)
        {
            double y0 = Top + panel * (PanelHeight + Gap);
            sb.AppendLine(CultureInfo.InvariantCulture, $"<rect x=\"{Left}\" y=\"{F(y0)}\" width=\"{Width - Left - 20}\" height=\"{PanelHeight}\" fill=\"none\" stroke=\"#999\"/>");
            string title = panel == 0 ? $"stored instances/s (max {F(maxRate, "F0")})" : $"latency ms: p50 (blue), p99 (red) (max {F(maxLatency, "F1")})";
            sb.AppendLine(CultureInfo.InvariantCulture, $"<text x=\"{Left}\" y=\"{F(y0 - 8)}\">{title}</text>");
            sb.AppendLine(CultureInfo.InvariantCulture, $"<text x=\"{Left}\" y=\"{F(y0 + PanelHeight + 16)}\">0 s</text><text x=\"{Width - 60}\" y=\"{F(y0 + PanelHeight + 16)}\">{seconds} s</text>");
        }
        sb.AppendLine(Line(t => t.Completed - t.Failed, maxRate, 0, "#2a7"));
        sb.AppendLine(Line(t => t.P50Ms, maxLatency, 1, "#27c"));
        sb.AppendLine(Line(t => t.P99Ms, maxLatency, 1, "#c33"));
        sb.AppendLine("</svg>");
        return sb.ToString();
    }

    /// <summary>Writes replay.json, replay.md and replay.svg into <paramref name="folder"/>.</summary>
    public void WriteTo(string folder)
    {
        Directory.CreateDirectory(folder);
        File.WriteAllText(Path.Combine(folder, "replay.json"), ToJson());
        File.WriteAllText(Path.Combine(folder, "replay.md"), ToMarkdown());
        File.WriteAllText(Path.Combine(folder, "replay.svg"), ToSvg());
    }
}
