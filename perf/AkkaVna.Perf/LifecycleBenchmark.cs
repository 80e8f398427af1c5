using System.Diagnostics;
using System.Globalization;
using AkkaVna.Core.Lifecycle;
using AkkaVna.Core.Model;
using AkkaVna.Core.Ports;
using AkkaVna.Core.Studies;
using AkkaVna.Dicom;
using AkkaVna.Dicom.Network.Replay;
using AkkaVna.Host;
using AkkaVna.Testing;
using Microsoft.Extensions.Logging.Abstractions;

namespace AkkaVna.Perf;

/// <summary>
/// Issue 18's benchmark. (1) An index (SQLite) of N studies (4 a patient, MG/CT/MR, dates since 2003): the whole archive
/// planned (what <c>lifecycle plan</c> does), the re-plan's due-time writes, and the lifecycle watch's due-time query,
/// at two sizes to show time grows with the archive and memory does not. (2) The destruction rate of a real `serve`
/// (filesystem store, approval off): studies destroyed per second. (3) The tier-move rate of a real `serve` between two
/// filesystem stores, against copying the same files with an fsync each (the disk's own rate), in the same run.
/// </summary>
internal static class LifecycleBenchmark
{
    private static readonly LifecycleSettings Rules = new(true,
    [
        new LifecycleRule("mg-10y", new Dictionary<string, IReadOnlyList<string>> { ["Modality"] = ["MG"] }, RetentionPeriod.Parse("10y"), RetentionAnchor.StudyDate, null, []),
        new LifecycleRule("fr-20y-after-last-visit", new Dictionary<string, IReadOnlyList<string>>(), RetentionPeriod.Parse("20y"), RetentionAnchor.LastStudyOfPatient,
            RetentionPeriod.Parse("28y"), []),
    ], TimeSpan.FromSeconds(1), TimeSpan.FromHours(1), true, DestroyedResend.Refuse);

    public static int Run(string[] args)
    {
        int at = Array.IndexOf(args, "--sizes");
        var sizes = (at >= 0 && at + 1 < args.Length ? args[at + 1] : "100000,1000000").Split(',').Select(s => int.Parse(s, CultureInfo.InvariantCulture)).ToList();
        int destroyStudies = (int)Bench.Option(args, "--destroy", 300);
        int moveStudies = (int)Bench.Option(args, "--move-studies", 10);
        Console.WriteLine($"# Lifecycle: planning, due times, destruction ({DateTime.UtcNow:yyyy-MM-dd}, {Environment.ProcessorCount} cores, .NET {Environment.Version}, SQLite index)");
        Console.WriteLine();
        Console.WriteLine("Rules: MG kept 10 years from the study date; everything else 20 years after the patient's last study, and at least until the 28th birthday.");
        Console.WriteLine();
        Console.WriteLine("| studies | plan: studies/s | plan: whole archive | plan: due (destroy) | plan: managed memory after | re-plan: due times written/s | watch query (256 due), median | watch query (none due), median |");
        Console.WriteLine("|---|---|---|---|---|---|---|---|");
        using var dir = new TempDir();
        string data = Path.Combine(dir.Path, "data");
        Directory.CreateDirectory(data);
        var index = Adapters.CreateIndex(ArchiveOptions.Load(null, $"akka-vna.data = {ArchiveOptions.Quote(data)}"), NullLoggerFactory.Instance);
        index.InitializeAsync(CancellationToken.None).GetAwaiter().GetResult();
        int loaded = 0;
        foreach (int size in sizes.Order())
        {
            var sw = Stopwatch.StartNew();
            Load(index, loaded, size);
            Console.Error.WriteLine($"index: {size:N0} studies ({sw.Elapsed.TotalSeconds:F0} s to add {size - loaded:N0})");
            loaded = size;
            Console.WriteLine(Measure(index, size));
        }
        index.DisposeAsync().AsTask().GetAwaiter().GetResult();
        Console.WriteLine();
        Destruction(dir.Path, destroyStudies);
        Console.WriteLine();
        Moves(dir.Path, moveStudies);
        return 0;
    }

    /// <summary>Studies <paramref name="from"/> to <paramref name="to"/>, one series of one instance each, 4 a patient.</summary>
    private static void Load(IArchiveIndex index, int from, int to)
    {
        var now = DateTimeOffset.UtcNow;
        var pending = new List<Task>();
        string[] modalities = ["MG", "CT", "CT", "MR", "CT"];
        for (int s = from; s < to; s++)
        {
            string study = $"1.2.826.0.1.3680043.10.1.{s}", series = study + ".1", patient = "P" + (s / 4).ToString(CultureInfo.InvariantCulture);
            var header = new InstanceHeader
            {
                PatientId = patient, IssuerOfPatientId = "HOSP", PatientBirthDate = new DateTime(1930, 1, 1).AddDays(s % 30000).ToString("yyyyMMdd", CultureInfo.InvariantCulture),
                StudyInstanceUid = study, SeriesInstanceUid = series, StudyDate = new DateTime(2003, 1, 1).AddDays(s % 8700).ToString("yyyyMMdd", CultureInfo.InvariantCulture),
                Modality = modalities[s % modalities.Length], SopClassUid = DicomUids.CTImageStorage, SopInstanceUid = series + ".1",
                TransferSyntaxUid = DicomUids.ExplicitVRLittleEndian, AccessionNumber = "A" + s.ToString(CultureInfo.InvariantCulture),
            };
            var stored = new StoredInstance(header, new BlobRef(BlobRef.PrimaryStore, $"000/{study}/{series}/1.dcm"), 1000, new string('0', 64), now, "GW");
            var row = new StudyRow(study, header, header.Modality!, 1, 1, 1000, true, now, null, now);
            pending.Add(index.CommitAsync(new StudyIndexUpdate(row, [new SeriesRow(series, header, 1)], [stored], [], 1), CancellationToken.None));
            if (pending.Count == 512)
            {
                Task.WaitAll([.. pending]);
                pending.Clear();
            }
        }
        Task.WaitAll([.. pending]);
    }

    private static string Measure(IArchiveIndex index, int size)
    {
        var at = new DateTimeOffset(2026, 12, 3, 0, 0, 0, TimeSpan.Zero);
        GC.Collect();
        long before = GC.GetTotalMemory(true);
        var sw = Stopwatch.StartNew();
        long due = 0;
        Task.Run(async () =>
        {
            await foreach (var step in LifecyclePlanScan.RunAsync(index, Rules, at, CancellationToken.None))
                if (step.Action == "destroy") due++;
        }).GetAwaiter().GetResult();
        double plan = sw.Elapsed.TotalSeconds;
        long after = GC.GetTotalMemory(true);
        // The re-plan's writes: every study due now, a page of 1,000 a transaction.
        sw.Restart();
        long replanned = LifecycleReplan.RunAsync(index, Rules with { Rules = [.. Rules.Rules, new LifecycleRule("x" + size, new Dictionary<string, IReadOnlyList<string>>(), null, RetentionAnchor.StudyDate, null, [])] },
            DateTimeOffset.UtcNow, CancellationToken.None).GetAwaiter().GetResult();
        double replan = sw.Elapsed.TotalSeconds;
        double Query(DateTimeOffset now)
        {
            var times = new List<double>();
            for (int i = 0; i < 21; i++)
            {
                var q = Stopwatch.StartNew();
                _ = index.Lifecycle.DueForLifecycleAsync(now, 256, CancellationToken.None).GetAwaiter().GetResult();
                times.Add(q.Elapsed.TotalMilliseconds);
            }
            return times.Order().ElementAt(times.Count / 2);
        }
        double allDue = Query(DateTimeOffset.UtcNow.AddMinutes(1)), noneDue = Query(DateTimeOffset.UnixEpoch);
        return Bench.Invariant($"| {size:N0} | {size / plan:F0} | {plan:F0} s | {due:N0} | {after / 1e6:F1} MB (before {before / 1e6:F1} MB) | {replanned / replan:F0} | {allDue:F2} ms | {noneDue:F2} ms |");
    }

    private static void Destruction(string root, int studies)
    {
        var files = ReplaySources.Generate(new GeneratorOptions(studies, 2, "MG", 64, 64, Seed: 18), Path.Combine(root, "mg")).Select(f => f.Path).ToList();
        const string Config = """
            akka-vna.studies.quiet-period = 1s
            akka-vna.compression.enabled = off
            akka-vna.lifecycle.enabled = on
            akka-vna.lifecycle.poll = 500ms
            akka-vna.lifecycle.destruction.require-approval = off
            akka-vna.lifecycle.rules = [
              {
                name = "mg-1h"
                match { Modality = [MG] }
                keep = 1h
                from = received
              }
            ]
            """;
        // Ingested under a one-hour rule (nothing due), then the node starts again under a one-second rule: the re-plan
        // makes every study due at once, and the rate is what the node destroys per second.
        using (var target = Targets.StartEmpty(root, work => new AkkaVnaTarget(work, flushBlobs: true, extraConfig: Config)))
        {
            Bench.Storescu(files, target.Port, target.AETitle, 2);
            Thread.Sleep(3000);
        }
        var work = Path.Combine(root, "run");
        var data = AkkaVnaTarget.DataFolder(work);
        var options = ArchiveOptions.Load(null, $"akka-vna.data = {ArchiveOptions.Quote(data)}");
        using var again = new AkkaVnaTarget(work, flushBlobs: true, extraConfig: Config.Replace("keep = 1h", "keep = 1s", StringComparison.Ordinal));
        var sw = Stopwatch.StartNew();
        var index = Adapters.CreateIndex(options, NullLoggerFactory.Instance);
        index.InitializeAsync(CancellationToken.None).GetAwaiter().GetResult();
        var tombstones = new List<Tombstone>();
        while (tombstones.Count(t => t.State == TombstoneState.Destroyed) < studies && sw.Elapsed < TimeSpan.FromMinutes(10))
        {
            Thread.Sleep(200);
            tombstones = Task.Run(async () =>
            {
                var list = new List<Tombstone>();
                await foreach (var t in index.Lifecycle.ListTombstonesAsync(CancellationToken.None)) list.Add(t);
                return list;
            }).GetAwaiter().GetResult();
        }
        var done = tombstones.Where(t => t.State == TombstoneState.Destroyed).ToList();
        long destroyed = done.Count;
        // From the first destruction begun to the last one completed, as the tombstones record them.
        double seconds = done.Count == 0 ? double.NaN : (done.Max(t => t.DestroyedAt!.Value) - done.Min(t => t.StartedAt)).TotalSeconds;
        long blobs = Directory.Exists(options.BlobsFolder) ? Directory.EnumerateFiles(options.BlobsFolder, "*.dcm", SearchOption.AllDirectories).LongCount() : 0;
        index.DisposeAsync().AsTask().GetAwaiter().GetResult();
        Console.WriteLine("## Destruction rate (serve, filesystem store, SQLite, approval off)");
        Console.WriteLine();
        Console.WriteLine(Bench.Invariant($"{destroyed} of {studies} MG studies (2 instances each) destroyed in {seconds:F1} s (first begun to last done, by their tombstones) once a restart made them all due: {destroyed / seconds:F0} studies/s, {blobs} blob(s) left.")
            + " Each destruction writes the tombstone, looks at the holds, purges the journal, deletes the index rows and the blobs, completes the tombstone and "
            + "appends two audit records, every write synced; the watch wakes 256 studies a poll (500 ms).");
    }

    /// <summary>
    /// CT studies (60 instances of 512x512, 524 KB each) ingested under a tier step of an hour, then the node restarts under
    /// one that falls due 15 s after the restart: every study moves to the cold store at once. The rate runs from the first
    /// instance seen in the cold store to the last, with every old copy gone (the index read every 50 ms, the primary
    /// store's folder listed); the reference copies the same files to another folder of the same
    /// disk with an fsync each, as the move does (before it reads each copy back and deletes the original).
    /// </summary>
    private static void Moves(string root, int studies)
    {
        const int PerStudy = 60;
        var files = ReplaySources.Generate(new GeneratorOptions(studies, PerStudy, "CT", 512, 512, Seed: 19), Path.Combine(root, "ct")).Select(f => f.Path).ToList();
        string cold = Path.Combine(root, "cold");
        string config = $$"""
            akka-vna.studies.quiet-period = 1s
            akka-vna.compression.enabled = off
            akka-vna.blobs.stores.cold.path = {{ArchiveOptions.Quote(cold)}}
            akka-vna.lifecycle.enabled = on
            akka-vna.lifecycle.poll = 500ms
            akka-vna.lifecycle.rules = [
              {
                name = "ct-cold"
                match { Modality = [CT] }
                from = received
                tiers = [ { after = 1h, store = cold } ]
              }
            ]
            """;
        DateTimeOffset received;
        using (var target = Targets.StartEmpty(root, work => new AkkaVnaTarget(work, flushBlobs: true, extraConfig: config)))
        {
            Bench.Storescu(files, target.Port, target.AETitle, 2);
            received = DateTimeOffset.UtcNow; // every instance was received before this
            Thread.Sleep(3000);
        }
        var work = Path.Combine(root, "run");
        var data = AkkaVnaTarget.DataFolder(work);
        var options = ArchiveOptions.Load(null, $"akka-vna.data = {ArchiveOptions.Quote(data)}\nakka-vna.blobs.stores.cold.path = {ArchiveOptions.Quote(cold)}");
        var blobFiles = Directory.EnumerateFiles(options.BlobsFolder, "*.dcm", SearchOption.AllDirectories).ToList();
        long bytes = blobFiles.Sum(f => new FileInfo(f).Length);

        // The reference: the same files copied on the same disk, each fsynced.
        string copies = Path.Combine(root, "copies");
        Directory.CreateDirectory(copies);
        var reference = Stopwatch.StartNew();
        int n = 0;
        foreach (var f in blobFiles)
        {
            using var from = File.OpenRead(f);
            using var to = new FileStream(Path.Combine(copies, $"{n++}.dcm"), FileMode.Create, FileAccess.Write, FileShare.None, 256 * 1024);
            from.CopyTo(to, 256 * 1024);
            to.Flush(flushToDisk: true);
        }
        double referenceSeconds = reference.Elapsed.TotalSeconds;
        Directory.Delete(copies, recursive: true);
        // The same with the move's checks: SHA-256 of the bytes copied, and of the copy read back.
        Directory.CreateDirectory(copies);
        var checkedCopy = Stopwatch.StartNew();
        n = 0;
        foreach (var f in blobFiles)
        {
            string target = Path.Combine(copies, $"{n++}.dcm");
            using (var hash = System.Security.Cryptography.IncrementalHash.CreateHash(System.Security.Cryptography.HashAlgorithmName.SHA256))
            using (var from = File.OpenRead(f))
            using (var to = new FileStream(target, FileMode.Create, FileAccess.Write, FileShare.None, 256 * 1024))
            {
                var buffer = new byte[256 * 1024];
                int read;
                while ((read = from.Read(buffer)) > 0)
                {
                    hash.AppendData(buffer, 0, read);
                    to.Write(buffer, 0, read);
                }
                to.Flush(flushToDisk: true);
                _ = hash.GetHashAndReset();
            }
            using (var back = File.OpenRead(target)) _ = System.Security.Cryptography.SHA256.HashData(back);
        }
        double checkedSeconds = checkedCopy.Elapsed.TotalSeconds;
        Directory.Delete(copies, recursive: true);

        // The step falls due 15 s after this restart (the node is up and watching by then), so the move is timed alone.
        int after = (int)Math.Ceiling((DateTimeOffset.UtcNow - received).TotalSeconds) + 15;
        using var again = new AkkaVnaTarget(work, flushBlobs: true, extraConfig: config.Replace("after = 1h", $"after = {after}s", StringComparison.Ordinal));
        var index = Adapters.CreateIndex(options, NullLoggerFactory.Instance);
        index.InitializeAsync(CancellationToken.None).GetAwaiter().GetResult();
        var sw = Stopwatch.StartNew();
        double? first = null, last = null;
        while (sw.Elapsed < TimeSpan.FromMinutes(10))
        {
            int inCold = Task.Run(async () =>
            {
                int c = 0;
                await foreach (var i in index.ListInstancesAsync(null, CancellationToken.None)) if (i.Blob.Store == "cold") c++;
                return c;
            }).GetAwaiter().GetResult();
            if (inCold > 0) first ??= sw.Elapsed.TotalSeconds;
            // Done when every instance is in the cold store and every old copy is gone.
            if (inCold == files.Count && !Directory.EnumerateFiles(options.BlobsFolder, "*.dcm", SearchOption.AllDirectories).Any())
            {
                last = sw.Elapsed.TotalSeconds;
                break;
            }
            Thread.Sleep(50);
        }
        index.DisposeAsync().AsTask().GetAwaiter().GetResult();
        long left = Directory.EnumerateFiles(options.BlobsFolder, "*.dcm", SearchOption.AllDirectories).LongCount();
        double seconds = (last ?? double.NaN) - (first ?? double.NaN);
        double moveRate = bytes / 1e6 / seconds, referenceRate = bytes / 1e6 / referenceSeconds;
        Console.WriteLine("## Tier-move rate (serve, filesystem store to filesystem store on the same disk, SQLite, move-rate unlimited)");
        Console.WriteLine();
        Console.WriteLine("| what | instances | MB | seconds | MB/s | instances/s | ratio to the reference |");
        Console.WriteLine("|---|---|---|---|---|---|---|");
        Console.WriteLine(Bench.Invariant($"| reference: copy + fsync each file | {files.Count} | {bytes / 1e6:F0} | {referenceSeconds:F1} | {referenceRate:F0} | {files.Count / referenceSeconds:F0} | 1.00 |"));
        Console.WriteLine(Bench.Invariant($"| reference: copy with SHA-256 + fsync, read back with SHA-256 | {files.Count} | {bytes / 1e6:F0} | {checkedSeconds:F1} | {bytes / 1e6 / checkedSeconds:F0} | {files.Count / checkedSeconds:F0} | {referenceSeconds / checkedSeconds:F2} |"));
        Console.WriteLine(Bench.Invariant($"| akka-vna tier move ({studies} studies at once) | {files.Count} | {bytes / 1e6:F0} | {seconds:F1} | {moveRate:F0} | {files.Count / seconds:F0} | {moveRate / referenceRate:F2} |"));
        Console.WriteLine();
        Console.WriteLine(Bench.Invariant($"{left} blob(s) left in the primary store. A move copies each blob into the cold store's staging area (SHA-256 on the way), fsyncs it, ")
            + "journals and indexes the batch (32 instances), renames the copies into place, reads each back to check its SHA-256 again, and deletes the old copies; "
            + "every study's child works at once (no move-rate limit here). The second reference is the integrity work alone, one file at a time: "
            + "what the move adds to it is the per-batch journal and index commits, the header read of each blob, and the renames and deletes.");
    }
}
