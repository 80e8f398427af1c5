using System.CommandLine;
using System.Globalization;
using AkkaVna.Dicom.IO;
using AkkaVna.Dicom.Network.Pdus;
using AkkaVna.Dicom.Network.Replay;
using AkkaVna.Dicom.Network.Scu;
using AkkaVna.Dicom.Network.Trace;

namespace AkkaVna.Cli.Commands;

/// <summary><c>replay</c>: production-like C-STORE load against any storage SCP, with a latency report.</summary>
public static class ReplayCommand
{
    public static Command Create()
    {
        var targetAndSource = new Argument<string[]>("TARGET SOURCE")
        {
            Description = "TARGET: the storage SCP, HOST:PORT, or several nodes of one archive HOST:PORT,HOST:PORT,... over which the gateways "
                + "are dealt (a gateway whose node stops answering moves on to the next); HOST PORT also works. SOURCE: what to send: a folder of "
                + "DICOM files; generate:STUDIES,INSTANCES[,MODALITY[,ROWSxCOLUMNS]] for fresh realistic studies (e.g. generate:10,150,CT,512x512); "
                + "or - with --trace.",
            Arity = new ArgumentArity(2, 3),
        };
        var associations = new Option<int>("--associations", "-n") { Description = "Concurrent associations (gateways), each with its own calling AE title.", DefaultValueFactory = _ => 1 };
        var calling = new Option<string>("--calling-ae", "-aet") { Description = "Calling AE title; numbered per association (GW1, GW2, ...).", DefaultValueFactory = _ => "GW" };
        var called = new Option<string>("--called-ae", "-aec") { Description = "Called AE title (a trace's own titles are kept unless this is given).", DefaultValueFactory = _ => "ANY-SCP" };
        var trace = new Option<FileInfo?>("--trace") { Description = "Replay a recorded trace (JSON Lines or CSV, as `serve` records with ingest.trace): its times, AE titles, studies and sizes." };
        var rate = new Option<double?>("--rate") { Description = "C-STOREs per second over all associations, open loop (a slow server shows as latency)." };
        var speed = new Option<double?>("--speed") { Description = "With --trace: play at X times the recorded speed (1 = real time, the default; 0 = as fast as possible)." };
        var report = new Option<DirectoryInfo?>("--report") { Description = "Write replay.json, replay.md and replay.svg (throughput and latency over time) here." };
        var timeout = new Option<double>("--timeout") { Description = "Seconds to wait for an association or a C-STORE-RSP before counting a failure.", DefaultValueFactory = _ => 30 };
        var byStudy = new Option<bool>("--by-study")
        {
            Description = "Deal whole studies to the gateways (each sends its studies one after the other, several studies in flight at once) "
                + "instead of instance by instance in turn.",
        };
        var outcomesFile = new Option<FileInfo?>("--outcomes")
        {
            Description = "Write every C-STORE's outcome here (CSV: file, SOP Instance UID, calling AE, node, status, stored, error): what was "
                + "acknowledged, and what to send again.",
        };
        var work = new Option<DirectoryInfo?>("--work") { Description = "Where generated instances are written (a temporary folder by default, deleted after the run)." };
        var cmd = new Command("replay", "Replay C-STORE traffic against a storage SCP as many gateways at once (a folder, a generator or a recorded trace; "
            + "at a rate, a speed or as fast as possible) and report throughput, latency percentiles and failures by status.")
        {
            targetAndSource, outcomesFile, byStudy, associations, calling, called, trace, rate, speed, report, timeout, work,
        };
        var tls = new TlsCliOptions();
        tls.AddTo(cmd);
        cmd.SetAction((r, ct) =>
        {
            var (connector, tlsError) = tls.Connector(r);
            if (tlsError is not null) return Task.FromResult(Fail(tlsError));
            var args = r.GetValue(targetAndSource)!;
            string target = args.Length == 3 ? $"{args[0]}:{args[1]}" : args[0];
            if (ParseTargets(target) is not { } endpoints)
                return Task.FromResult(Fail($"'{target}' is not HOST:PORT[,HOST:PORT...] (ports 1-65535)"));
            return RunAsync(endpoints, args[^1], r.GetValue(outcomesFile), r.GetValue(byStudy), r.GetValue(associations), r.GetValue(calling)!, r.GetValue(called)!,
            r.GetValue(trace), r.GetValue(rate), r.GetValue(speed), r.GetValue(report), r.GetValue(timeout), r.GetValue(work), r.GetResult(called) is { Implicit: false }, connector, ct);
        });
        return cmd;
    }

    private static void WriteOutcomes(string path, IEnumerable<ReplayOutcome> outcomes)
    {
        static string Csv(string? s) => s is null ? "" : s.IndexOfAny([',', '"', '\n', '\r']) < 0 ? s : "\"" + s.Replace("\"", "\"\"", StringComparison.Ordinal) + "\"";
        using var w = new StreamWriter(path);
        w.WriteLine("file,sop_instance_uid,calling_ae,node,status,stored,error");
        foreach (var o in outcomes)
            w.WriteLine(string.Join(',', Csv(o.Item.File.Path), Csv(o.Item.File.SopInstanceUid), Csv(o.Item.CallingAE), Csv(o.Endpoint),
                o.Status is { } st ? st.Code.ToString("X4", CultureInfo.InvariantCulture) : Csv(o.FailureKind), o.Stored ? "yes" : "no", Csv(o.Error)));
    }

    /// <summary>HOST:PORT[,HOST:PORT...] (an IPv6 address in brackets: [::1]:104).</summary>
    internal static List<ReplayEndpoint>? ParseTargets(string text)
    {
        var list = new List<ReplayEndpoint>();
        foreach (var part in text.Split(',', StringSplitOptions.TrimEntries))
        {
            int colon = part.LastIndexOf(':');
            if (colon <= 0 || !int.TryParse(part.AsSpan(colon + 1), NumberStyles.None, CultureInfo.InvariantCulture, out int port) || port is < 1 or > 65535) return null;
            string host = part[..colon];
            if (host.StartsWith('[') && host.EndsWith(']')) host = host[1..^1];
            if (host.Length == 0) return null;
            list.Add(new ReplayEndpoint(host, port));
        }
        return list.Count > 0 ? list : null;
    }

    private static int Fail(string message)
    {
        Console.Error.WriteLine("akka-vna replay: " + message);
        return 2;
    }

    private static async Task<int> RunAsync(List<ReplayEndpoint> endpoints, string source, FileInfo? outcomesFile, bool byStudy, int associations, string calling, string called, FileInfo? traceFile, double? rate,
        double? speed, DirectoryInfo? reportFolder, double timeoutSeconds, DirectoryInfo? workFolder, bool calledGiven,
        AkkaVna.Dicom.Network.Transport.IDicomConnector? connector, CancellationToken ct)
    {
        if (associations is < 1 or > 1000) return Fail("--associations must be between 1 and 1000");
        if (!PduCodec.IsValidAETitle(calling) || !PduCodec.IsValidAETitle(called)) return Fail("AE titles are 1-16 characters without backslash");
        if (rate is <= 0) return Fail("--rate must be positive");
        if (speed is < 0) return Fail("--speed must be positive, or 0 for as fast as possible");
        if (rate is not null && speed is not null) return Fail("give --rate or --speed, not both");
        if (speed is not null && traceFile is null) return Fail("--speed applies to --trace");
        if (timeoutSeconds <= 0) return Fail("--timeout must be positive");
        string work = workFolder?.FullName ?? Path.Combine(Path.GetTempPath(), "akkavna-replay-" + Guid.NewGuid().ToString("N")[..8]);
        bool ownWork = workFolder is null;
        try
        {
            List<ReplayItem> items;
            bool openLoop;
            if (traceFile is not null)
            {
                List<TraceEntry> entries;
                try
                {
                    entries = StoreTrace.Read(traceFile.FullName);
                }
                catch (TraceFormatException e)
                {
                    return Fail(e.Message);
                }
                catch (IOException e)
                {
                    return Fail($"cannot read the trace: {e.Message}");
                }
                double s = speed ?? (rate is null ? 1 : 0);
                items = ReplaySources.FromTrace(entries, work, s, calledGiven ? called : null);
                if (rate is { } r) items = [.. items.Select((item, i) => item with { Offset = i / r })];
                openLoop = s > 0 || rate is not null;
            }
            else
            {
                List<StoreFile> files;
                if (source.StartsWith("generate:", StringComparison.Ordinal))
                {
                    if (ParseGenerator(source["generate:".Length..]) is not { } g) return Fail($"'{source}': expected generate:STUDIES,INSTANCES[,MODALITY[,ROWSxCOLUMNS]]");
                    Console.Error.WriteLine($"generating {g.Studies} x {g.InstancesPerStudy} {g.Modality} instances of {g.Rows}x{g.Columns} in {work}...");
                    files = ReplaySources.Generate(g, work);
                }
                else
                {
                    var skipped = new List<string>();
                    try
                    {
                        files = ReplaySources.Folder(source, skipped);
                    }
                    catch (DirectoryNotFoundException e)
                    {
                        return Fail(e.Message);
                    }
                    foreach (var s in skipped) Console.Error.WriteLine("skipped (not DICOM): " + s);
                    if (files.Count == 0) return Fail($"{source} holds no DICOM file");
                }
                items = ReplaySources.Schedule(files, new ScheduleOptions(associations, calling, called, rate, byStudy));
                openLoop = rate is not null;
            }

            var started = DateTimeOffset.UtcNow;
            int done = 0;
            List<ReplayOutcome> outcomes;
            using (var progress = Progress.Start(items.Count))
            {
                outcomes = await ReplayRunner.RunAsync(endpoints, items, new ReplayOptions { OpenLoop = openLoop, Timeout = TimeSpan.FromSeconds(timeoutSeconds),
                    Connector = connector ?? AkkaVna.Dicom.Network.Transport.TcpTransport.Tcp },
                    _ => progress.Report(Interlocked.Increment(ref done)), cancellationToken: ct);
            }
            if (outcomesFile is not null) WriteOutcomes(outcomesFile.FullName, outcomes);
            var report = ReplayReport.From(string.Join(",", endpoints), started, outcomes, openLoop);
            Console.Write(report.ToText());
            if (reportFolder is not null)
            {
                report.WriteTo(reportFolder.FullName);
                Console.WriteLine($"report: {Path.Combine(reportFolder.FullName, "replay.md")} (and replay.json, replay.svg)");
            }
            return report.Stored == report.Sent ? 0 : 1;
        }
        catch (ArgumentException e)
        {
            return Fail(e.Message);
        }
        catch (DicomParseException e)
        {
            return Fail(e.Message);
        }
        finally
        {
            if (ownWork && Directory.Exists(work)) Directory.Delete(work, recursive: true);
        }
    }

    private static GeneratorOptions? ParseGenerator(string spec)
    {
        var p = spec.Split(',');
        if (p.Length is < 2 or > 4) return null;
        if (!int.TryParse(p[0], CultureInfo.InvariantCulture, out int studies) || studies < 1) return null;
        if (!int.TryParse(p[1], CultureInfo.InvariantCulture, out int instances) || instances < 1) return null;
        string modality = p.Length > 2 ? p[2] : "CT";
        int rows = 512, columns = 512;
        if (p.Length > 3)
        {
            var size = p[3].Split('x');
            if (size.Length != 2 || !int.TryParse(size[0], CultureInfo.InvariantCulture, out rows) || !int.TryParse(size[1], CultureInfo.InvariantCulture, out columns)
                || rows is < 1 or > 65535 || columns is < 1 or > 65535) return null;
        }
        return new GeneratorOptions(studies, instances, modality, rows, columns);
    }
}
