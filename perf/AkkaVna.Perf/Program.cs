using System.Buffers;
using System.Diagnostics;
using System.Globalization;
using AkkaVna.Dicom;
using AkkaVna.Dicom.Buffers;
using AkkaVna.Dicom.IO;

// Toolkit benchmark (issue 2): header-only and full parse throughput over the shared corpus, and a generated
// multi-frame file parsed with its pixel data streamed to a sink. Usage:
//   dotnet run -c Release --project perf/AkkaVna.Perf -- [corpus-dir] [--large-gb N] [--rounds N]
// Network benchmark (issue 3): see NetworkBenchmark.cs —
//   dotnet run -c Release --project perf/AkkaVna.Perf -- network [--instances N] [--repeats N]
//   dotnet run -c Release --project perf/AkkaVna.Perf -- archive [--studies N] [--instances N] [--repeats N] [--by-study] [--only TARGET]
//   dotnet run -c Release --project perf/AkkaVna.Perf -- query [--sizes 10000,1000000] [--queries 500] [--orthanc-instances 10000]
//   dotnet run -c Release --project perf/AkkaVna.Perf -- compare [--studies N] [--instances N] [--associations 1,4] [--rate PER_S]
//   dotnet run -c Release --project perf/AkkaVna.Perf -- lifecycle [--sizes 100000,1000000] [--destroy 300]
//   dotnet run -c Release --project perf/AkkaVna.Perf -- cluster [--studies N] [--instances N] [--repeats N] [--prefill N] [--only NAME-PREFIX]
// Prints a Markdown table. Not a test: no assertions on time.
namespace AkkaVna.Perf;

public static class Program
{
    public static int Main(string[] args)
    {
        if (args.Length > 0 && args[0] == "network") return NetworkBenchmark.Run(args[1..]);
        if (args.Length > 0 && args[0] == "archive") return ArchiveBenchmark.Run(args[1..]);
        if (args.Length > 0 && args[0] == "query") return QueryBenchmark.Run(args[1..]);
        if (args.Length > 0 && args[0] == "compare") return CompareBenchmark.Run(args[1..]);
        if (args.Length > 0 && args[0] == "cluster") return ClusterBenchmark.Run(args[1..]);
        if (args.Length > 0 && args[0] == "s3") return S3Benchmark.Run(args[1..]);
        if (args.Length > 0 && args[0] == "compression") return CompressionBenchmark.Run(args[1..]);
        if (args.Length > 0 && args[0] == "lifecycle") return LifecycleBenchmark.Run(args[1..]);
        if (args.Length > 0 && args[0] == "tls") return TlsBenchmark.Run(args[1..]);
        string corpus = args.Where((a, i) => !a.StartsWith("--", StringComparison.Ordinal) && (i == 0 || !args[i - 1].StartsWith("--", StringComparison.Ordinal))).FirstOrDefault()
            ?? Path.GetFullPath(Path.Combine(AppContext.BaseDirectory, "../../../../../../shared/corpus"));
        double largeGb = Option(args, "--large-gb", 2.0);
        int rounds = (int)Option(args, "--rounds", 20);
        var files = Directory.EnumerateFiles(corpus, "*", SearchOption.AllDirectories)
            .Where(f => !f.EndsWith(".csv", StringComparison.Ordinal) && !f.EndsWith(".md", StringComparison.Ordinal) && !f.EndsWith(".sh", StringComparison.Ordinal))
            .Where(Parses).ToList();
        long bytes = files.Sum(f => new FileInfo(f).Length);
        Console.WriteLine($"# AkkaVna toolkit parse benchmark ({DateTime.UtcNow:yyyy-MM-dd}, {Environment.ProcessorCount} cores, .NET {Environment.Version})");
        Console.WriteLine();
        Console.WriteLine($"Corpus: {files.Count} readable files, {bytes / 1e6:F1} MB, {rounds} rounds each (after one warm-up round).");
        Console.WriteLine();
        Console.WriteLine("| benchmark | files/s | MB/s | allocated per file |");
        Console.WriteLine("|---|---|---|---|");
        Run("header-only (stop before Pixel Data)", files, bytes, rounds, f => { using var d = DicomFile.Open(f, new DicomReadOptions { StopBefore = t => t == DicomTags.PixelData }); });
        Run("full parse (large values left in the file)", files, bytes, rounds, f => { using var d = DicomFile.Open(f); });
        Run("full parse, every value read into memory", files, bytes, rounds, f => { using var d = DicomFile.Open(f, new DicomReadOptions { LargeValueThreshold = int.MaxValue - 64 }); });
        Console.WriteLine();
        if (largeGb > 0) Large(largeGb);
        return 0;
    }

    private static double Option(string[] args, string name, double fallback)
    {
        int i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length ? double.Parse(args[i + 1], CultureInfo.InvariantCulture) : fallback;
    }

    private static bool Parses(string f)
    {
        try { using var d = DicomFile.Open(f); return true; }
        catch (DicomParseException) { return false; }
    }

    private static void Run(string name, List<string> files, long bytes, int rounds, Action<string> parse)
    {
        foreach (var f in files) parse(f); // warm-up
        long alloc0 = GC.GetTotalAllocatedBytes(true);
        var sw = Stopwatch.StartNew();
        for (int r = 0; r < rounds; r++)
            foreach (var f in files) parse(f);
        sw.Stop();
        long alloc = GC.GetTotalAllocatedBytes(true) - alloc0;
        double n = (double)files.Count * rounds;
        Console.WriteLine($"| {name} | {n / sw.Elapsed.TotalSeconds:F0} | {bytes * (double)rounds / 1e6 / sw.Elapsed.TotalSeconds:F0} | {alloc / n / 1024:F1} KiB |");
    }

    /// <summary>A generated multi-frame CT-like file of the given size, parsed with pixel data streamed through the parser to a sink.</summary>
    private static void Large(double gb)
    {
        string dir = Directory.CreateTempSubdirectory("akkavna-perf-").FullName;
        string path = Path.Combine(dir, "large.dcm");
        try
        {
            long frameBytes = 512 * 512 * 2;
            int frames = (int)(gb * 1e9 / frameBytes);
            long pixelBytes = frameBytes * frames;
            var ds = new DicomDataset();
            ds.AddString(DicomTags.SOPClassUID, DicomVR.UI, DicomUids.EnhancedCTImageStorage);
            ds.AddString(DicomTags.SOPInstanceUID, DicomVR.UI, "2.25.1234567890123456789");
            ds.AddString(DicomTags.StudyInstanceUID, DicomVR.UI, "2.25.1234567890123456790");
            ds.AddString(DicomTags.NumberOfFrames, DicomVR.IS, frames.ToString(CultureInfo.InvariantCulture));
            ds.AddUInt16(DicomTags.Rows, 512);
            ds.AddUInt16(DicomTags.Columns, 512);
            ds.AddUInt16(DicomTags.BitsAllocated, 16);
            ds.Add(new DicomElement(DicomTags.PixelData, DicomVR.OW, new NoiseBuffer(pixelBytes)));
            var sw = Stopwatch.StartNew();
            DicomWriter.WriteFile(path, ds, DicomTransferSyntax.ExplicitVRLittleEndian);
            double writeS = sw.Elapsed.TotalSeconds;

            GC.Collect();
            long alloc0 = GC.GetTotalAllocatedBytes(true);
            long rss0 = Process.GetCurrentProcess().WorkingSet64;
            sw.Restart();
            var sink = new CountingSink();
            using (var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1, FileOptions.SequentialScan))
            {
                var options = new DicomReadOptions();
                var layout = DicomFileReader.ReadLayout(fs, options);
                DicomFileReader.ParseDataset(fs, layout, sink, options);
            }
            sw.Stop();
            long alloc = GC.GetTotalAllocatedBytes(true) - alloc0;
            long peak = Process.GetCurrentProcess().PeakWorkingSet64;
            long fileLen = new FileInfo(path).Length;
            Console.WriteLine($"Generated {fileLen / 1e9:F2} GB multi-frame file ({frames} frames of 512x512x16), written in {writeS:F1} s.");
            Console.WriteLine();
            Console.WriteLine("| large file, pixel data streamed to a sink | value |");
            Console.WriteLine("|---|---|");
            Console.WriteLine($"| pixel bytes delivered | {sink.Bytes:N0} |");
            Console.WriteLine($"| throughput | {fileLen / 1e6 / sw.Elapsed.TotalSeconds:F0} MB/s |");
            Console.WriteLine($"| allocated while parsing | {alloc / 1e6:F2} MB |");
            Console.WriteLine($"| working set before / peak | {rss0 / 1e6:F0} MB / {peak / 1e6:F0} MB |");
            if (sink.Bytes != pixelBytes) throw new InvalidOperationException($"sink got {sink.Bytes} of {pixelBytes} pixel bytes");
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    /// <summary>Pixel data that does not compress to nothing, produced on the fly (never held in memory).</summary>
    private sealed class NoiseBuffer(long length) : IByteBuffer
    {
        public long Length => length;
        public bool IsMemory => false;
        public ReadOnlyMemory<byte> Memory => throw new NotSupportedException();
        public void CopyTo(Stream destination)
        {
            var rng = new Random(42);
            var chunk = new byte[1 << 20];
            for (long left = length; left > 0; left -= chunk.Length)
            {
                rng.NextBytes(chunk);
                destination.Write(chunk, 0, (int)Math.Min(chunk.Length, left));
            }
        }
    }

    /// <summary>Receives the parse; pixel data chunks are counted (a real sink would write them to storage).</summary>
    private sealed class CountingSink : IDicomParserObserver
    {
        public long Bytes { get; private set; }
        public void OnElement(in DicomElementHeader header, ReadOnlySequence<byte> value) { }
        public bool OnLargeValueStart(in DicomElementHeader header) => true;
        public void OnLargeValueChunk(ReadOnlySequence<byte> chunk) => Bytes += chunk.Length;
        public void OnLargeValueEnd() { }
        public void OnSequenceStart(in DicomElementHeader header) { }
        public void OnSequenceItemStart(long offset, uint length) { }
        public void OnSequenceItemEnd() { }
        public void OnSequenceEnd() { }
        public void OnFragmentsStart(in DicomElementHeader header) { }
        public void OnFragmentsEnd() { }
    }
}
