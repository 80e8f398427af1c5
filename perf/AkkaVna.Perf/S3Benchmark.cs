using System.Diagnostics;
using System.Globalization;
using AkkaVna.Dicom.IO;
using AkkaVna.Testing;

namespace AkkaVna.Perf;

/// <summary>
/// Issue 16's benchmark: ingest and retrieve with the blobs on S3 (a throwaway Ceph radosgw on this machine), in both
/// acknowledge modes, beside the filesystem store, dcmtk storescp (the limit) and Orthanc (the peer), in one run.
/// Ingest: dcmtk storescu (TCP_NODELAY=1) sends generated CT studies over 1 and 4 associations to each target, which
/// starts empty and gets a warm-up study first; for after-local-commit the time until the upload queue is empty is
/// reported too (when the last instance is in S3). Retrieve: getscu C-GET of a 150-instance study and a WADO-RS study
/// retrieve, from the filesystem store, from S3 with the receive cache holding the study, and from S3 alone (no cache).
/// Where the time goes: each ingest phase from the node's metrics (prepare is the upload before the commit).
/// </summary>
internal static class S3Benchmark
{
    public static int Run(string[] args)
    {
        Targets.EnsureDcmtk();
        Targets.EnsureOrthanc();
        if (Bench.ReexecInNetworkNamespace("s3", args) is { } exitCode) return exitCode;
        int studies = (int)Bench.Option(args, "--studies", 4), perStudy = (int)Bench.Option(args, "--instances", 150);
        int warmupCount = (int)Bench.Option(args, "--warmup", 1000);
        using var dir = new TempDir();
        using var rgw = new RadosGateway();
        var files = Enumerable.Range(1, studies)
            .SelectMany(s => Instances.WriteStudy(Path.Combine(dir.Path, "src", s.ToString(CultureInfo.InvariantCulture)), perStudy, 512 * 512 * 2, seed: s)).ToList();
        var warmup = Instances.WriteStudy(Path.Combine(dir.Path, "warmup"), warmupCount, 512 * 512 * 2, seed: 999);
        var getStudy = Instances.WriteStudy(Path.Combine(dir.Path, "get"), 150, 512 * 512 * 2, seed: 4242);
        long bytes = files.Sum(f => new FileInfo(f).Length), getBytes = getStudy.Sum(f => new FileInfo(f).Length);
        string S3(string mode, string cache = "10GiB") => $"""
            akka-vna.blobs.path = "s3://{rgw.NewBucket()}/archive"
            akka-vna.blobs.s3.endpoint = "{rgw.Endpoint}"
            akka-vna.blobs.s3.access-key = "{RadosGateway.AccessKey}"
            akka-vna.blobs.s3.secret-key = "{RadosGateway.SecretKey}"
            akka-vna.blobs.s3.acknowledge = {mode}
            akka-vna.blobs.s3.cache.max-size = {cache}
            """;
        var targets = new (string Name, Func<string, ITarget> Start)[]
        {
            ("akka-vna, filesystem store", work => new AkkaVnaTarget(work, flushBlobs: true)),
            ("akka-vna, S3 after-upload", work => new AkkaVnaTarget(work, flushBlobs: true, extraConfig: S3("after-upload"))),
            ("akka-vna, S3 after-local-commit", work => new AkkaVnaTarget(work, flushBlobs: true, extraConfig: S3("after-local-commit"))),
            ("dcmtk storescp", work => new StorescpTarget(work)),
            ("Orthanc " + Targets.OrthancVersion(), work => new OrthancTarget(work)),
        };
        Console.WriteLine($"# AkkaVna on S3: ingest and retrieve ({DateTime.UtcNow:yyyy-MM-dd}, {Environment.ProcessorCount} cores, .NET {Environment.Version}, {Bench.DcmtkVersion()}, "
            + $"Ceph radosgw {Tool.Run("radosgw", ["--version"], TimeSpan.FromSeconds(30)).StdOut.Split(' ').Skip(2).FirstOrDefault()})");
        Console.WriteLine();
        Console.WriteLine($"Ingest: dcmtk storescu (TCP_NODELAY=1) sends {files.Count} generated CT instances ({studies} studies x {perStudy}, 512x512x16, {bytes / 1e6:F0} MB) "
            + $"to each target, which starts empty and gets a {warmup.Count}-instance warm-up study first. S3 is a one-OSD Ceph radosgw on the same machine and disk "
            + "(so S3's own CPU and writes share the 2 cores and the disk with the node); the node's receive cache is on by default (10 GiB). "
            + "\"in S3\" is the time until the last instance is in S3 (after-local-commit: the upload queue empty).");
        Console.WriteLine();
        Console.WriteLine("| target | associations | instances/s acknowledged | MB/s | in S3 after | vs filesystem store | vs storescp | vs Orthanc |");
        Console.WriteLine("|---|---|---|---|---|---|---|---|");
        var breakdowns = new List<string>();
        foreach (int associations in new[] { 1, 4 })
        {
            var seconds = new Dictionary<string, double>();
            var drained = new Dictionary<string, double>();
            foreach (var (name, start) in targets)
            {
                using var target = Targets.StartEmpty(dir.Path, start);
                Bench.Storescu(warmup, target.Port, target.AETitle, associations);
                if (target is AkkaVnaTarget warm) WaitForUploads(warm);
                (target as AkkaVnaTarget)?.Mark();
                double cephCpu = CephCpuSeconds();
                var sw = Stopwatch.StartNew();
                seconds[name] = Bench.Storescu(files, target.Port, target.AETitle, associations);
                if (target is AkkaVnaTarget akka)
                {
                    WaitForUploads(akka);
                    drained[name] = sw.Elapsed.TotalSeconds;
                    string s3Cpu = name.Contains("S3", StringComparison.Ordinal)
                        ? Bench.Invariant($", S3 (radosgw, OSD, monitor) CPU {(CephCpuSeconds() - cephCpu) / files.Count * 1000:F2} ms per instance") : "";
                    breakdowns.Add($"{name}, {associations} association(s): {akka.PhaseBreakdown()}{s3Cpu}");
                }
                long held = target.CountInstances();
                if (held != files.Count + warmup.Count) throw new InvalidOperationException($"{name} holds {held} of {files.Count + warmup.Count} instances");
            }
            double fs = seconds[targets[0].Name];
            double scp = seconds.Where(kv => kv.Key.StartsWith("dcmtk", StringComparison.Ordinal)).Select(kv => kv.Value).First();
            double orthanc = seconds.Where(kv => kv.Key.StartsWith("Orthanc", StringComparison.Ordinal)).Select(kv => kv.Value).First();
            foreach (var (name, _) in targets)
            {
                double s = seconds[name];
                string inS3 = name.Contains("S3", StringComparison.Ordinal) ? Bench.Invariant($"{drained[name]:F1} s") : "";
                Console.WriteLine(Bench.Invariant($"| {name} | {associations} | {files.Count / s:F0} | {bytes / 1e6 / s:F0} | {inS3} | {fs / s:F2}x | {scp / s:F2}x | {orthanc / s:F2}x |"));
            }
        }
        Console.WriteLine();
        Console.WriteLine("Where akka-vna's time goes after each data set has arrived (mean per instance, from its akkavna_ingest_phase_seconds metric; "
            + "prepare is the upload to S3 before the commit):");
        Console.WriteLine();
        foreach (var b in breakdowns) Console.WriteLine("- " + b);
        Console.WriteLine();

        // Retrieve: the same 150-instance study from each store.
        Console.WriteLine($"Retrieve: a 150-instance study ({getBytes / 1e6:F0} MB) by getscu C-GET (TCP_NODELAY=1, wall time, median of 3) and by one WADO-RS "
            + "study request (multipart/related, application/dicom; median of 3).");
        Console.WriteLine();
        Console.WriteLine("| store | C-GET instances/s | C-GET MB/s | WADO-RS MB/s | C-GET vs filesystem | WADO-RS vs filesystem |");
        Console.WriteLine("|---|---|---|---|---|---|");
        var retrieves = new (string Name, Func<string, ITarget> Start)[]
        {
            ("filesystem", work => new AkkaVnaTarget(work, flushBlobs: true)),
            ("S3, the study in the receive cache", work => new AkkaVnaTarget(work, flushBlobs: true, extraConfig: S3("after-upload"))),
            ("S3 alone (no receive cache)", work => new AkkaVnaTarget(work, flushBlobs: true, extraConfig: S3("after-upload", cache: "0"))),
            ("Orthanc " + Targets.OrthancVersion() + " (its files)", work => new OrthancTarget(work)),
        };
        double fsGet = 0, fsWado = 0;
        foreach (var (name, start) in retrieves)
        {
            using var target = Targets.StartEmpty(dir.Path, start);
            Bench.Storescu(getStudy, target.Port, target.AETitle, 1);
            double get = QueryBenchmark.GetSeconds(target.Port, target.AETitle, getStudy[0], dir.Path);
            double? wado = target is AkkaVnaTarget ? WadoSeconds(getStudy[0], getBytes) : null;
            if (fsGet == 0)
            {
                fsGet = get;
                fsWado = wado ?? 0;
            }
            string wadoRate = wado is { } w ? (getBytes / 1e6 / w).ToString("F0", CultureInfo.InvariantCulture) : "-";
            string wadoRatio = wado is { } w2 ? (fsWado / w2).ToString("F2", CultureInfo.InvariantCulture) + "x" : "-";
            Console.WriteLine(Bench.Invariant($"| {name} | {150 / get:F0} | {getBytes / 1e6 / get:F0} | {wadoRate} | {fsGet / get:F2}x | {wadoRatio} |"));
        }
        return 0;
    }

    /// <summary>CPU seconds used so far by this machine's Ceph processes (radosgw, ceph-osd, ceph-mon), from /proc.</summary>
    private static double CephCpuSeconds()
    {
        double ticks = 0;
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), out _)) continue;
            try
            {
                string stat = File.ReadAllText(Path.Combine(dir, "stat"));
                int open = stat.IndexOf('('), close = stat.LastIndexOf(')');
                if (stat[(open + 1)..close] is not ("radosgw" or "ceph-osd" or "ceph-mon")) continue;
                var fields = stat[(close + 2)..].Split(' ');
                ticks += double.Parse(fields[11], CultureInfo.InvariantCulture) + double.Parse(fields[12], CultureInfo.InvariantCulture); // utime, stime
            }
            catch (IOException)
            {
                // gone meanwhile
            }
        }
        return ticks / 100; // USER_HZ
    }

    /// <summary>Waits until the node's upload queue is empty (after-local-commit; at once otherwise).</summary>
    private static void WaitForUploads(AkkaVnaTarget target)
    {
        var until = DateTime.UtcNow.AddMinutes(10);
        while (target.Metric("akkavna_blob_uploads_pending") > 0)
        {
            if (DateTime.UtcNow > until) throw new TimeoutException("the upload queue did not drain in 10 minutes");
            Thread.Sleep(50);
        }
    }

    /// <summary>WADO-RS retrieve of the study (all of its instances, multipart), read to the end; the median of 3, in seconds.</summary>
    private static double WadoSeconds(string anyFileOfStudy, long expectedBytes)
    {
        string study;
        using (var f = DicomFile.Open(anyFileOfStudy, new DicomReadOptions { StopBefore = t => t.Group > 0x0020 })) study = f.Dataset.GetString(Dicom.DicomTags.StudyInstanceUID)!;
        using var http = new HttpClient { Timeout = TimeSpan.FromMinutes(5) };
        var runs = new List<double>();
        var buffer = new byte[1 << 16];
        for (int r = 0; r < 3; r++)
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, $"http://127.0.0.1:{Targets.HttpPort}/dicom-web/studies/{study}");
            request.Headers.TryAddWithoutValidation("Accept", "multipart/related; type=\"application/dicom\"");
            var sw = Stopwatch.StartNew();
            using var response = http.Send(request, HttpCompletionOption.ResponseHeadersRead);
            response.EnsureSuccessStatusCode();
            using var body = response.Content.ReadAsStream();
            long read = 0;
            for (int n; (n = body.Read(buffer)) > 0;) read += n;
            runs.Add(sw.Elapsed.TotalSeconds);
            if (read < expectedBytes) throw new InvalidOperationException($"WADO-RS returned {read} bytes, less than the study's {expectedBytes}");
        }
        return Bench.Median(runs);
    }
}
