using System.Diagnostics;
using System.Globalization;
using AkkaVna.Codecs;
using AkkaVna.Dicom;
using AkkaVna.Dicom.Imaging;
using AkkaVna.Dicom.IO;
using AkkaVna.Dicom.Network.Replay;
using AkkaVna.Testing;

namespace AkkaVna.Perf;

/// <summary>
/// Issue 17's benchmark, in one run. (1) Codecs: per codec, the compression ratio and encode/decode MB/s (of native pixel
/// bytes) on a generated CT set and on the corpus's native images, beside the field's own tools on the same images —
/// dcmtk's dcmcjpls/dcmdjpls, dcmcrle/dcmdrle, dcmcjpeg/dcmdjpeg (+e1), OpenJPEG's opj_compress/opj_decompress, OpenJPH's ojph_compress/ojph_expand. The tools
/// run once per file (process start included, as an operator would run them); ours run in-process, single-threaded.
/// (2) Storage: a 1,200-instance ingest into `serve` with compression on, bytes before and after. (3) Ingest while
/// compressing: the same 1,200-instance ingest into a node that is busy compressing a 1,200-instance backlog, against an
/// idle node (goal: at least 90 %).
/// </summary>
internal static class CompressionBenchmark
{
    private sealed record Codec(string Name, string Syntax, Func<byte[], FrameGeometry, byte[]> Encode, Action<byte[], FrameGeometry, byte[]> Decode,
        string? ToolEncode, string[] ToolEncodeArgs, string? ToolDecode);

    private static readonly Codec[] Codecs =
    [
        new("JPEG-LS lossless (CharLS)", JpegLs.LosslessTransferSyntaxUid, (f, g) => JpegLs.Encode(f, g), (e, g, f) => JpegLs.Decode(e, g, f), "dcmcjpls", [], "dcmdjpls"),
        new("JPEG 2000 lossless (OpenJPEG)", Jpeg2000.LosslessTransferSyntaxUid, (f, g) => Jpeg2000.Encode(f, g), (e, g, f) => Jpeg2000.Decode(e, g, f), null, [], null),
        new("HTJ2K lossless (OpenJPH; decoded by OpenJPEG)", HtJ2k.LosslessTransferSyntaxUid, (f, g) => HtJ2k.Encode(f, g), (e, g, f) => Jpeg2000.Decode(e, g, f), null, [], null),
        new("JPEG Lossless SV1 (C#)", JpegLossless.Sv1TransferSyntaxUid, (f, g) => JpegLossless.Encode(f, g), (e, g, f) => JpegLossless.Decode(e, g, f), "dcmcjpeg", ["+e1"], "dcmdjpeg"),
        new("RLE Lossless (C#)", RleLossless.TransferSyntaxUid, (f, g) => RleLossless.Encode(f, g), (e, g, f) => RleLossless.Decode(e, g, f), "dcmcrle", [], "dcmdrle"),
    ];

    public static int Run(string[] args)
    {
        Targets.EnsureDcmtk();
        int count = (int)Bench.Option(args, "--instances", 1200);
        using var dir = new TempDir();
        var ct = ReplaySources.Generate(new GeneratorOptions(2, 50, "CT", 512, 512, Seed: 17), Path.Combine(dir.Path, "ct")).Select(f => f.Path).ToList();
        var corpus = Corpus.Entries.Where(e => e.TransferSyntax is DicomUids.ImplicitVRLittleEndian or DicomUids.ExplicitVRLittleEndian)
            .Select(e => e.Path).Where(p => Frames(p) is { Geometry: { BitsAllocated: <= 16, SamplesPerPixel: 1 or 3 } }).ToList();
        Console.WriteLine($"# Lossless compression: codecs, storage, ingest while compressing ({DateTime.UtcNow:yyyy-MM-dd}, {Environment.ProcessorCount} cores, "
            + $".NET {Environment.Version}, {Bench.DcmtkVersion()}, OpenJPEG {Tool.Run("/usr/bin/opj_compress", ["-h"], TimeSpan.FromSeconds(30)).StdOut.Split('\n').FirstOrDefault(l => l.Contains("v2.", StringComparison.Ordinal))?.Trim()}, OpenJPH {HtJ2k.LibraryVersion()})");
        Console.WriteLine();
        foreach (var (setName, files) in new[] { ($"generated CT set ({ct.Count} x 512x512, 12 bits stored)", ct), ($"the corpus's native images ({corpus.Count} files)", corpus) })
        {
            long pixelBytes = files.Sum(f => Frames(f)!.Frames.Sum(x => (long)x.Length));
            Console.WriteLine($"## {setName}: {pixelBytes / 1e6:F1} MB of native pixels");
            Console.WriteLine();
            Console.WriteLine("| codec | ratio | encode MB/s | decode MB/s | field tool | its ratio | its encode MB/s | its decode MB/s | our encode vs tool | our decode vs tool |");
            Console.WriteLine("|---|---|---|---|---|---|---|---|---|---|");
            foreach (var codec in Codecs) Console.WriteLine(Row(codec, files, pixelBytes, dir.Path));
            Console.WriteLine();
        }
        StorageAndIngest(dir.Path, count);
        return 0;
    }

    private sealed record Image(FrameGeometry Geometry, List<byte[]> Frames);

    private static Image? Frames(string path)
    {
        try
        {
            using var file = DicomFile.Open(path);
            var g = DicomTranscoder.Geometry(file.Dataset);
            var frames = PixelDataFrames.Of(file.Dataset).Frames().Select(f =>
            {
                using var s = f.Open();
                var b = new byte[f.Length];
                s.ReadExactly(b);
                return b;
            }).ToList();
            return frames.All(f => f.Length == g.FrameBytes) ? new Image(g, frames) : null;
        }
        catch (Exception e) when (e is CodecException or PixelDataException or DicomParseException)
        {
            return null;
        }
    }

    private static string Row(Codec codec, List<string> files, long pixelBytes, string scratch)
    {
        long encodedBytes = 0;
        double encodeSeconds = 0, decodeSeconds = 0;
        int refused = 0;
        foreach (var path in files)
        {
            var image = Frames(path)!;
            foreach (var frame in image.Frames)
            {
                byte[] encoded;
                var sw = Stopwatch.StartNew();
                try
                {
                    encoded = codec.Encode(frame, image.Geometry);
                }
                catch (CodecException)
                {
                    refused++;
                    encodedBytes += frame.Length;
                    continue;
                }
                encodeSeconds += sw.Elapsed.TotalSeconds;
                encodedBytes += encoded.Length;
                var back = new byte[image.Geometry.FrameBytes];
                sw.Restart();
                codec.Decode(encoded, image.Geometry, back);
                decodeSeconds += sw.Elapsed.TotalSeconds;
            }
        }
        string ours = Bench.Invariant($"| {codec.Name}{(refused > 0 ? $" ({refused} frames refused)" : "")} | {(double)pixelBytes / encodedBytes:F2} | {pixelBytes / 1e6 / encodeSeconds:F0} | {pixelBytes / 1e6 / decodeSeconds:F0}");
        var tool = ToolRun(codec, files, scratch);
        if (tool is null) return ours + " | - | - | - | - | - | - |";
        var (name, ratio, encode, decode) = tool.Value;
        return ours + Bench.Invariant($" | {name} | {ratio:F2} | {pixelBytes / 1e6 / encode:F0} | {pixelBytes / 1e6 / decode:F0} | {encode / encodeSeconds:F1}x | {decode / decodeSeconds:F1}x |");
    }

    /// <summary>The field's tool for the codec over the same files, once per file: (name, ratio of pixel bytes, encode seconds, decode seconds).</summary>
    private static (string Name, double Ratio, double Encode, double Decode)? ToolRun(Codec codec, List<string> files, string scratch)
    {
        string folder = Path.Combine(scratch, "tool-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(folder);
        double encode = 0, decode = 0;
        long pixels = 0, encoded = 0;
        if (codec.Syntax == Jpeg2000.LosslessTransferSyntaxUid)
        {
            // OpenJPEG's tools read and write raw planes: each frame written once as .rawl, then opj_compress and opj_decompress.
            foreach (var path in files)
            {
                var image = Frames(path)!;
                var g = image.Geometry;
                foreach (var frame in image.Frames)
                {
                    string raw = Path.Combine(folder, "f.rawl"), j2k = Path.Combine(folder, "f.j2k"), back = Path.Combine(folder, "b.rawl");
                    File.WriteAllBytes(raw, Planes(frame, g));
                    var sw = Stopwatch.StartNew();
                    var r = Tool.Run("/usr/bin/opj_compress", ["-i", raw, "-o", j2k, "-n", Jpeg2000.Resolutions(g).ToString(CultureInfo.InvariantCulture),
                        "-F", string.Join(",", g.Columns, g.Rows, g.SamplesPerPixel, g.BitsStored, g.Signed ? "s" : "u")], TimeSpan.FromMinutes(2));
                    encode += sw.Elapsed.TotalSeconds;
                    if (r.ExitCode != 0) continue;
                    sw.Restart();
                    Tool.Run("/usr/bin/opj_decompress", ["-quiet", "-i", j2k, "-o", back], TimeSpan.FromMinutes(2));
                    decode += sw.Elapsed.TotalSeconds;
                    pixels += frame.Length;
                    encoded += new FileInfo(j2k).Length;
                }
            }
            return ("opj_compress / opj_decompress", (double)pixels / encoded, encode, decode);
        }
        if (codec.Syntax == HtJ2k.LosslessTransferSyntaxUid)
        {
            // OpenJPH's tools read and write PGM/PPM (0.9's raw path clips negative samples): a signed frame is shifted by
            // half its range to unsigned first, which the reversible wavelet codes as well.
            foreach (var path in files)
            {
                var image = Frames(path)!;
                var g = image.Geometry;
                foreach (var frame in image.Frames)
                {
                    string netpbm = Path.Combine(folder, g.SamplesPerPixel == 1 ? "f.pgm" : "f.ppm"), j2c = Path.Combine(folder, "f.j2c");
                    File.WriteAllBytes(netpbm, Netpbm(frame, g));
                    var sw = Stopwatch.StartNew();
                    var r = Tool.Run("/usr/bin/ojph_compress", ["-i", netpbm, "-o", j2c, "-reversible", "true",
                        "-num_decomps", (Jpeg2000.Resolutions(g) - 1).ToString(CultureInfo.InvariantCulture)], TimeSpan.FromMinutes(2));
                    encode += sw.Elapsed.TotalSeconds;
                    if (r.ExitCode != 0) continue;
                    sw.Restart();
                    Tool.Run("/usr/bin/ojph_expand", ["-i", j2c, "-o", Path.Combine(folder, "b" + Path.GetExtension(netpbm))], TimeSpan.FromMinutes(2));
                    decode += sw.Elapsed.TotalSeconds;
                    pixels += frame.Length;
                    encoded += new FileInfo(j2c).Length;
                }
            }
            return ("ojph_compress / ojph_expand", (double)pixels / encoded, encode, decode);
        }
        if (codec.ToolEncode is null) return null;
        foreach (var path in files)
        {
            string compressed = Path.Combine(folder, "c.dcm"), back = Path.Combine(folder, "b.dcm");
            var sw = Stopwatch.StartNew();
            var r = Tool.Run(Tool.Dcmtk(codec.ToolEncode), [.. codec.ToolEncodeArgs, path, compressed], TimeSpan.FromMinutes(2));
            encode += sw.Elapsed.TotalSeconds;
            if (r.ExitCode != 0) continue;
            sw.Restart();
            Tool.Run(Tool.Dcmtk(codec.ToolDecode!), [compressed, back], TimeSpan.FromMinutes(2));
            decode += sw.Elapsed.TotalSeconds;
            pixels += Frames(path)!.Frames.Sum(f => (long)f.Length);
            using var c = DicomFile.Open(compressed);
            encoded += PixelDataFrames.Of(c.Dataset).Frames().Sum(f => f.Length);
        }
        return ($"{codec.ToolEncode} / {codec.ToolDecode}", (double)pixels / Math.Max(1, encoded), encode, decode);
    }

    /// <summary>A frame as a binary PGM (one sample) or PPM (three, by pixel) of its Bits Stored, signed samples shifted by half their range.</summary>
    private static byte[] Netpbm(byte[] frame, FrameGeometry g)
    {
        int spp = g.SamplesPerPixel, ob = g.BitsStored <= 8 ? 1 : 2, nb = g.BytesPerSample, shift = 32 - g.BitsStored;
        long pixels = g.Pixels;
        var header = System.Text.Encoding.ASCII.GetBytes(Bench.Invariant($"{(spp == 1 ? "P5" : "P6")}\n{g.Columns} {g.Rows}\n{(1 << g.BitsStored) - 1}\n"));
        var body = new byte[pixels * spp * ob];
        for (long p = 0; p < pixels; p++)
            for (int c = 0; c < spp; c++)
            {
                long from = spp == 1 || g.PlanarConfiguration == 0 ? p * spp + c : c * pixels + p;
                uint raw = nb == 1 ? frame[from] : BitConverter.ToUInt16(frame, (int)(from * 2));
                int v = g.Signed ? ((int)(raw << shift) >> shift) + (1 << (g.BitsStored - 1)) : (int)(raw << shift >>> shift);
                long to = (p * spp + c) * ob;
                if (ob == 1) body[to] = (byte)v;
                else { body[to] = (byte)(v >> 8); body[to + 1] = (byte)v; }
            }
        return [.. header, .. body];
    }

    /// <summary>A frame as OpenJPEG's raw little-endian planes (its Bits Stored, one or two bytes a sample).</summary>
    private static byte[] Planes(byte[] frame, FrameGeometry g)
    {
        int spp = g.SamplesPerPixel, rb = g.BitsStored <= 8 ? 1 : 2, nb = g.BytesPerSample;
        long pixels = g.Pixels;
        var raw = new byte[pixels * spp * rb];
        uint mask = (1u << g.BitsStored) - 1;
        for (int c = 0; c < spp; c++)
            for (long p = 0; p < pixels; p++)
            {
                long from = spp == 1 || g.PlanarConfiguration == 0 ? p * spp + c : c * pixels + p;
                uint v = (nb == 1 ? frame[from] : BitConverter.ToUInt16(frame, (int)(from * 2))) & mask;
                long to = c * pixels + p;
                if (rb == 1) raw[to] = (byte)v;
                else BitConverter.TryWriteBytes(raw.AsSpan((int)(to * 2)), (ushort)v);
            }
        return raw;
    }

    private const string Compressing = """
        akka-vna.compression.enabled = on
        akka-vna.compression.delay = 0s
        akka-vna.compression.poll = 1s
        akka-vna.studies.quiet-period = 2s
        akka-vna.studies.stability-poll = 500ms
        """;

    private static void StorageAndIngest(string root, int count)
    {
        var measured = ReplaySources.Generate(new GeneratorOptions(8, count / 8, "CT", 256, 256, Seed: 5), Path.Combine(root, "measured")).Select(f => f.Path).ToList();
        var backlog = ReplaySources.Generate(new GeneratorOptions(8, count / 8, "CT", 256, 256, Seed: 6), Path.Combine(root, "backlog")).Select(f => f.Path).ToList();
        long sent = measured.Sum(f => new FileInfo(f).Length);

        // Storage: the measured set into a node that compresses, until every instance is compressed.
        using (var target = Targets.StartEmpty(root, work => new AkkaVnaTarget(work, flushBlobs: true, extraConfig: Compressing)))
        {
            var akka = (AkkaVnaTarget)target;
            Bench.Storescu(measured, target.Port, target.AETitle, 4);
            var sw = Stopwatch.StartNew();
            while (akka.Metric("akkavna_compression_instances_total{outcome=\"compressed\"}") + akka.Metric("akkavna_compression_instances_total{outcome=\"refused\"}") < measured.Count)
            {
                if (sw.Elapsed > TimeSpan.FromMinutes(10)) throw new TimeoutException("compression did not finish within 10 minutes");
                Thread.Sleep(250);
            }
            double before = akka.Metric("akkavna_compression_bytes_total{stage=\"before\"}"), after = akka.Metric("akkavna_compression_bytes_total{stage=\"after\"}");
            Console.WriteLine(Bench.Invariant($"## Storage: {measured.Count} generated CT instances (256x256, 12 bits stored, {sent / 1e6:F1} MB sent) into `serve` with the default rule (JPEG-LS lossless)"));
            Console.WriteLine();
            double compressed = akka.Metric("akkavna_compression_instances_total{outcome=\"compressed\"}"), refused = akka.Metric("akkavna_compression_instances_total{outcome=\"refused\"}");
            double pass = sw.Elapsed.TotalSeconds;
            Console.WriteLine(Bench.Invariant($"{compressed:F0} compressed, {refused:F0} left as they were; {before / 1e6:F1} MB stored before, {after / 1e6:F1} MB after: {100 * (1 - after / before):F0} % saved (ratio {before / after:F2}); the pass took {pass:F1} s after the last instance was acknowledged ({measured.Count / pass:F0} instances/s on 1 worker, every frame decoded again and compared)."));
            Console.WriteLine();
        }

        // Ingest while compressing: the measured set, into an idle node and into a node busy compressing the backlog.
        Console.WriteLine($"## Ingest while compressing: storescu sends the {measured.Count} instances over 4 associations (median of 3)");
        Console.WriteLine();
        Console.WriteLine("| node | instances/s | MB/s | vs idle node | compressions during the ingest |");
        Console.WriteLine("|---|---|---|---|---|");
        double idle = 0;
        foreach (bool busy in new[] { false, true })
        {
            var runs = new List<double>();
            double compressedDuring = 0;
            for (int run = 0; run < 3; run++)
            {
                using var target = Targets.StartEmpty(root, work => new AkkaVnaTarget(work, flushBlobs: true, extraConfig: busy ? Compressing : "akka-vna.compression.enabled = off"));
                var akka = (AkkaVnaTarget)target;
                if (busy)
                {
                    Bench.Storescu(backlog, target.Port, target.AETitle, 4);
                    var until = DateTime.UtcNow + TimeSpan.FromMinutes(2);
                    while (akka.Metric("akkavna_compression_instances_total{outcome=\"compressed\"}") < 20 && DateTime.UtcNow < until) Thread.Sleep(100);
                }
                double at = akka.Metric("akkavna_compression_instances_total{outcome=\"compressed\"}");
                runs.Add(Bench.Storescu(measured, target.Port, target.AETitle, 4));
                compressedDuring += akka.Metric("akkavna_compression_instances_total{outcome=\"compressed\"}") - at;
            }
            double seconds = Bench.Median(runs);
            if (!busy) idle = seconds;
            Console.WriteLine(Bench.Invariant($"| {(busy ? "busy compressing a backlog (1 worker, nice 10)" : "idle (compression off)")} | {measured.Count / seconds:F0} | {sent / 1e6 / seconds:F1} | {idle / seconds:F2}x | {(busy ? (compressedDuring / 3).ToString("F0", CultureInfo.InvariantCulture) : "-")} |"));
        }
    }
}
