using System.Diagnostics;
using System.Globalization;
using AkkaVna.Dicom;
using AkkaVna.Dicom.IO;
using AkkaVna.Dicom.Network;
using AkkaVna.Dicom.Network.Dimse;
using AkkaVna.Dicom.Network.Pdus;
using AkkaVna.Testing;
using Microsoft.Extensions.Logging.Abstractions;
using AkkaVna.Actors.Logging;
using AkkaVna.Actors.Studies;
using AkkaVna.Core.Ingest;
using AkkaVna.Core.Model;
using AkkaVna.Core.Ports;
using AkkaVna.Core.Studies;
using AkkaVna.Dimse.Store;
using AkkaVna.Host;
using AkkaVna.Index.Sqlite;

namespace AkkaVna.Perf;

/// <summary>
/// Query/retrieve: study-level C-FIND latency inside one open association (AkkaVna's SCU sends them one after another)
/// with the index holding 10 k and 1 M instances (rows generated through the index port, 100 instances per study), and
/// C-GET of a 150-instance study by dcmtk's getscu, each side by side with Orthanc holding the same data (Orthanc gets
/// its instances by C-STORE, so its side is run at the smaller size only; the 1 M size is akka-vna alone).
/// </summary>
internal static class QueryBenchmark
{
    public static int Run(string[] args)
    {
        // Installed first: inside the network namespace there is no network to install from.
        Targets.EnsureDcmtk();
        Targets.EnsureOrthanc();
        if (Bench.ReexecInNetworkNamespace("query", args) is { } exitCode) return exitCode;
        int queries = (int)Bench.Option(args, "--queries", 500);
        var sizes = (args.SkipWhile(a => a != "--sizes").Skip(1).FirstOrDefault() ?? "10000,1000000").Split(',').Select(int.Parse).ToList();
        int orthancSize = (int)Bench.Option(args, "--orthanc-instances", 10_000);
        using var dir = new TempDir();
        var getStudy = Instances.WriteStudy(Path.Combine(dir.Path, "get"), 150, 512 * 512 * 2, seed: 4242);
        Console.WriteLine($"# AkkaVna query/retrieve benchmark ({DateTime.UtcNow:yyyy-MM-dd}, {Environment.ProcessorCount} cores, .NET {Environment.Version}, {Bench.DcmtkVersion()})");
        Console.WriteLine();
        Console.WriteLine($"C-FIND: {queries} study-level queries (by Patient ID, returning 8 keys) one after another in one association; median and p90 round trip. "
            + "C-GET: dcmtk getscu (TCP_NODELAY=1) retrieves a 150-instance study of 512x512x16 CT (79 MB), wall time of the getscu run (median of 3). "
            + "Orthanc runs with TCP_NODELAY=1 and its defaults otherwise (SQLite index).");
        Console.WriteLine();
        Console.WriteLine("| target | indexed instances | C-FIND median ms | C-FIND p90 ms | C-GET instances/s | C-GET MB/s |");
        Console.WriteLine("|---|---|---|---|---|---|");
        long getBytes = getStudy.Sum(f => new FileInfo(f).Length);
        foreach (int size in sizes)
        {
            string work = Path.Combine(dir.Path, $"akka-{size}");
            var patients = GenerateIndex(AkkaVnaTarget.DataFolder(work), size);
            using var server = new AkkaVnaTarget(work, flushBlobs: true);
            Bench.Storescu(getStudy, server.Port, server.AETitle, 1);
            var (median, p90) = FindLatency(server.Port, server.AETitle, patients, queries);
            double get = GetSeconds(server.Port, server.AETitle, getStudy[0], dir.Path);
            Console.WriteLine(Bench.Invariant($"| akka-vna serve | {size + 150:N0} | {median:F2} | {p90:F2} | {150 / get:F0} | {getBytes / 1e6 / get:F0} |"));
        }
        if (orthancSize > 0)
        {
            string work = Path.Combine(dir.Path, "orthanc");
            Directory.CreateDirectory(work);
            using var orthanc = new OrthancTarget(work);
            var files = new List<string>();
            var patients = new List<string>();
            for (int s = 0; s < orthancSize / 100; s++)
            {
                files.AddRange(Instances.WriteStudy(Path.Combine(dir.Path, "orthanc-src", s.ToString(CultureInfo.InvariantCulture)), 100, 512, seed: 10_000 + s));
                patients.Add("P" + (10_000 + s).ToString(CultureInfo.InvariantCulture));
            }
            Bench.Storescu(files, orthanc.Port, orthanc.AETitle, 2);
            Bench.Storescu(getStudy, orthanc.Port, orthanc.AETitle, 1);
            long held = orthanc.CountInstances();
            if (held != files.Count + getStudy.Count) throw new InvalidOperationException($"Orthanc holds {held} of {files.Count + getStudy.Count} instances");
            var (median, p90) = FindLatency(orthanc.Port, orthanc.AETitle, patients, queries);
            double get = GetSeconds(orthanc.Port, orthanc.AETitle, getStudy[0], dir.Path);
            Console.WriteLine(Bench.Invariant($"| Orthanc {Targets.OrthancVersion()} | {held:N0} | {median:F2} | {p90:F2} | {150 / get:F0} | {getBytes / 1e6 / get:F0} |"));
        }
        return 0;
    }

    /// <summary>Index rows for <paramref name="instances"/> instances, 100 per study, through the index port; returns the patient IDs.</summary>
    private static List<string> GenerateIndex(string data, int instances)
    {
        Directory.CreateDirectory(data);
        var index = Adapters.CreateIndex(ArchiveOptions.Load(null, $"akka-vna.data = {ArchiveOptions.Quote(data)}"), NullLoggerFactory.Instance);
        index.InitializeAsync(CancellationToken.None).GetAwaiter().GetResult();
        var patients = new List<string>();
        var sw = Stopwatch.StartNew();
        var pending = new List<Task>();
        var now = DateTimeOffset.UtcNow;
        for (int s = 0; s < instances / 100; s++)
        {
            string patient = "GEN" + s.ToString(CultureInfo.InvariantCulture);
            patients.Add(patient);
            string study = Instances.NewUid(), series = Instances.NewUid();
            var date = new DateTime(2003, 1, 1).AddDays(s % 8000).ToString("yyyyMMdd", CultureInfo.InvariantCulture);
            InstanceHeader Header(int i) => new()
            {
                PatientId = patient, PatientName = $"Generated^{s}", StudyInstanceUid = study, SeriesInstanceUid = series, StudyDate = date, StudyTime = "120000",
                AccessionNumber = "A" + s.ToString(CultureInfo.InvariantCulture), Modality = "CT", SeriesNumber = 1, SopClassUid = DicomUids.CTImageStorage,
                SopInstanceUid = Instances.NewUid(), TransferSyntaxUid = DicomUids.ExplicitVRLittleEndian, InstanceNumber = i + 1, Rows = 512, Columns = 512,
            };
            var stored = Enumerable.Range(0, 100).Select(i => new StoredInstance(Header(i), new BlobRef(BlobRef.PrimaryStore, $"000/{study}/{series}/{i}.dcm"), 524_288, new string('0', 64), now, "GEN")).ToList();
            var row = new StudyRow(study, stored[^1].Header, "CT", 1, 100, 100L * 524_288, true, now, null, now);
            pending.Add(index.CommitAsync(new StudyIndexUpdate(row, [new SeriesRow(series, stored[^1].Header, 100)], stored, [], 1), CancellationToken.None));
            if (pending.Count == 256)
            {
                Task.WaitAll([.. pending]);
                pending.Clear();
            }
        }
        Task.WaitAll([.. pending]);
        index.DisposeAsync().AsTask().GetAwaiter().GetResult();
        Console.Error.WriteLine($"generated {instances:N0} index rows in {sw.Elapsed.TotalSeconds:F0} s");
        return patients;
    }

    private static (double Median, double P90) FindLatency(int port, string aet, List<string> patients, int queries)
    {
        return Task.Run(async () =>
        {
            var rq = new AssociateRequest
            {
                CalledAE = aet, CallingAE = "BENCH",
                PresentationContexts = [new PresentationContextProposal(1, DicomUids.StudyRootQueryRetrieveInformationModelFind, [DicomUids.ExplicitVRLittleEndian])],
                UserInformation = new UserInformation { ImplementationClassUid = DicomImplementation.ClassUid },
            };
            await using var a = await DicomAssociation.ConnectAsync("127.0.0.1", port, rq);
            var random = new Random(1);
            var times = new List<double>(queries);
            for (int q = 0; q < queries + 20; q++)
            {
                var id = new DicomDataset();
                id.AddString(DicomTags.QueryRetrieveLevel, DicomVR.CS, "STUDY");
                id.AddString(DicomTags.PatientID, DicomVR.LO, patients[random.Next(patients.Count)]);
                foreach (var tag in new[] { DicomTags.StudyInstanceUID, DicomTags.PatientName, DicomTags.StudyDate, DicomTags.AccessionNumber, DicomTags.ModalitiesInStudy,
                    DicomTags.NumberOfStudyRelatedInstances, DicomTags.StudyDescription })
                    id.AddBytes(tag, DicomDictionaryVR(tag), Dicom.Buffers.MemoryByteBuffer.Empty);
                using var ms = new MemoryStream();
                DicomWriter.WriteDataset(ms, id, DicomTransferSyntax.ExplicitVRLittleEndian);
                ms.Position = 0;
                int matches = 0;
                var sw = Stopwatch.StartNew();
                var rsp = await a.SendRequestAsync(1, DimseCommand.FindRequest(a.NextMessageId(), DicomUids.StudyRootQueryRetrieveInformationModelFind), ms, ms.Length,
                    _ => matches++);
                double ms1 = sw.Elapsed.TotalMilliseconds;
                if (!rsp.Status.IsSuccess || matches != 1) throw new InvalidOperationException($"{aet}: C-FIND gave {rsp.Status} with {matches} matches");
                if (q >= 20) times.Add(ms1); // the first 20 warm up
            }
            await a.ReleaseAsync();
            times.Sort();
            return (times[times.Count / 2], times[(int)(times.Count * 0.9)]);
        }).GetAwaiter().GetResult();
    }

    private static DicomVR DicomDictionaryVR(DicomTag tag) => Dicom.Dictionary.DicomDictionary.ImplicitVR(tag);

    internal static double GetSeconds(int port, string aet, string anyFileOfStudy, string temp)
    {
        string study;
        using (var f = DicomFile.Open(anyFileOfStudy, new DicomReadOptions { StopBefore = t => t.Group > 0x0020 })) study = f.Dataset.GetString(DicomTags.StudyInstanceUID)!;
        var runs = new List<double>();
        for (int r = 0; r < 3; r++)
        {
            string output = Path.Combine(temp, $"get-{aet}-{r}");
            Directory.CreateDirectory(output);
            var sw = Stopwatch.StartNew();
            // TCP_NODELAY=1: dcmtk's small C-STORE-RSPs would otherwise wait for Nagle and the peer's delayed ACK (~40 ms each).
            var result = Tool.Run("env", ["TCP_NODELAY=1", Tool.Dcmtk("getscu"), "-S", "-aec", aet, "-od", output, "-k", "QueryRetrieveLevel=STUDY", "-k", $"StudyInstanceUID={study}",
                "127.0.0.1", port.ToString(CultureInfo.InvariantCulture)], TimeSpan.FromMinutes(5));
            runs.Add(sw.Elapsed.TotalSeconds);
            int received = Directory.GetFiles(output).Length;
            if (result.ExitCode != 0 || received != 150) throw new InvalidOperationException($"getscu from {aet}: {received} of 150 files; {result.StdErr}");
            Directory.Delete(output, true);
        }
        return Bench.Median(runs);
    }
}
