using System.Buffers.Binary;
using System.Globalization;
using System.Security.Cryptography;
using AkkaVna.Dicom;
using AkkaVna.Dicom.IO;
using AkkaVna.Dicom.Network.Scu;
using AkkaVna.Testing;
using Xunit.Abstractions;

namespace AkkaVna.Host.Tests.Serve;

/// <summary>The archive streams: a 1 GiB instance passes through the node without the node holding it.</summary>
public sealed class MemoryTests(ITestOutputHelper output)
{
    private const int Frames = 512, Side = 1024;
    private const long PixelBytes = (long)Frames * Side * Side * 2;

    /// <summary>A 1 GiB multi-frame instance, written frame by frame (never whole in memory, here either).</summary>
    private static string WriteHugeMultiFrame(string path)
    {
        var ds = new DicomDataset();
        ds.AddString(DicomTags.SOPClassUID, DicomVR.UI, DicomUids.EnhancedCTImageStorage);
        ds.AddString(DicomTags.SOPInstanceUID, DicomVR.UI, Instances.NewUid());
        ds.AddString(DicomTags.StudyInstanceUID, DicomVR.UI, Instances.NewUid());
        ds.AddString(DicomTags.SeriesInstanceUID, DicomVR.UI, Instances.NewUid());
        ds.AddString(DicomTags.Modality, DicomVR.CS, "CT");
        ds.AddString(DicomTags.PatientID, DicomVR.LO, "HUGE");
        ds.AddString(DicomTags.NumberOfFrames, DicomVR.IS, Frames.ToString(CultureInfo.InvariantCulture));
        ds.AddUInt16(DicomTags.SamplesPerPixel, 1);
        ds.AddString(DicomTags.PhotometricInterpretation, DicomVR.CS, "MONOCHROME2");
        ds.AddUInt16(DicomTags.Rows, Side);
        ds.AddUInt16(DicomTags.Columns, Side);
        ds.AddUInt16(DicomTags.BitsAllocated, 16);
        ds.AddUInt16(DicomTags.BitsStored, 16);
        ds.AddUInt16(DicomTags.HighBit, 15);
        ds.AddUInt16(DicomTags.PixelRepresentation, 0);
        DicomWriter.WriteFile(path, ds, DicomTransferSyntax.ExplicitVRLittleEndian);
        using var fs = new FileStream(path, FileMode.Append, FileAccess.Write, FileShare.None, 1 << 20);
        Span<byte> header = stackalloc byte[12];
        BinaryPrimitives.WriteUInt16LittleEndian(header, 0x7FE0);
        BinaryPrimitives.WriteUInt16LittleEndian(header[2..], 0x0010);
        header[4] = (byte)'O';
        header[5] = (byte)'W';
        BinaryPrimitives.WriteUInt32LittleEndian(header[8..], (uint)PixelBytes);
        fs.Write(header);
        var frame = new byte[Side * Side * 2];
        new Random(7).NextBytes(frame);
        for (int i = 0; i < Frames; i++)
        {
            BinaryPrimitives.WriteInt32LittleEndian(frame, i); // every frame differs
            fs.Write(frame);
        }
        return path;
    }

    private static long RssBytes(int pid)
    {
        foreach (var line in File.ReadLines($"/proc/{pid}/status"))
            if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
                return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) * 1024;
        throw new InvalidOperationException("no VmRSS");
    }

    private static async Task<string> DataSetSha256Async(string path, long offset)
    {
        await using var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20);
        fs.Position = offset;
        return Convert.ToHexStringLower(await SHA256.HashDataAsync(fs));
    }

    private static async Task<double> S3ReadBytesAsync(ArchiveServer server)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(30) };
        const string Name = "akkavna_blob_s3_read_bytes_total ";
        var line = (await http.GetStringAsync($"http://127.0.0.1:{server.HttpPort}/metrics")).Split('\n').Single(l => l.StartsWith(Name, StringComparison.Ordinal));
        return double.Parse(line[Name.Length..], CultureInfo.InvariantCulture);
    }

    /// <summary>Samples the node's RSS until <paramref name="work"/> ends; the peak.</summary>
    private static async Task<(T Result, long Peak)> PeakWhileAsync<T>(int pid, Func<T> work)
    {
        long peak = RssBytes(pid);
        var running = Task.Run(work);
        while (!running.IsCompleted)
        {
            peak = Math.Max(peak, RssBytes(pid));
            await Task.Delay(20);
        }
        return (await running, peak);
    }

    [Theory]
    [InlineData(ArchiveServer.Sqlite)]
    [InlineData(ArchiveServer.S3)]
    public async Task A_1_GiB_multi_frame_instance_is_archived_and_retrieved_with_the_node_growing_by_less_than_150_MB(string backend)
    {
        using var dir = new TempDir();
        string data = ArchiveServer.NewDataFolder(dir, backend);
        var huge = StoreFile.Read(WriteHugeMultiFrame(dir.File("huge.dcm")));
        Assert.True(huge.DataSetLength > PixelBytes);
        var warmup = Instances.WriteStudy(Path.Combine(dir.Path, "warmup"), 20, 256 * 1024).Select(StoreFile.Read).ToList();
        string config = Storescu.WriteConfig(dir, warmup.Append(huge));
        // On S3 without the receive cache: the upload goes in parts from the staged file, and retrieval reads S3 (ranged GETs).
        using var server = new ArchiveServer(data, backend == ArchiveServer.S3 ? "akka-vna.blobs.s3.cache.max-size = 0" : null);

        // Warm up the ingest and retrieve paths first (JIT, pools), then measure the node while the huge instance goes through it.
        Assert.All(Storescu.Responses(Storescu.Send(config, server.DicomPort, warmup, 1, TimeSpan.FromMinutes(2)).Single()).Values, s => Assert.Equal("Success", s));
        string warmStudy = IngestTests.StudyOf(warmup[0].Path);
        Assert.Equal("Success", QueryRetrieveTools.Get(null, server.DicomPort, dir.File("warm-get"), ["QueryRetrieveLevel=STUDY", $"StudyInstanceUID={warmStudy}"]).FinalStatus);
        await Task.Delay(500);
        long baseline = RssBytes(server.ProcessId);
        var (result, ingestPeak) = await PeakWhileAsync(server.ProcessId, () => Storescu.Send(config, server.DicomPort, [huge], 1, TimeSpan.FromMinutes(5)).Single());
        Assert.Equal("Success", Storescu.Responses(result).Single().Value);

        await using var index = await ArchiveServer.OpenIndexAsync(data);
        var row = (await index.FindInstanceAsync(huge.SopInstanceUid, CancellationToken.None))!;
        Assert.NotNull(row);
        string expected = await DataSetSha256Async(huge.Path, huge.DataSetOffset);

        // C-GET of the study (getscu writes it to disk) and one frame by WADO-RS (a ranged read of its bytes only).
        string got = dir.File("get");
        var (get, getPeak) = await PeakWhileAsync(server.ProcessId,
            () => QueryRetrieveTools.Get(null, server.DicomPort, got, ["QueryRetrieveLevel=STUDY", $"StudyInstanceUID={row.StudyInstanceUid}"]));
        Assert.Equal("Success", get.FinalStatus);
        string retrieved = Assert.Single(QueryRetrieveTools.Received(got).Values);
        Assert.Equal(expected, await DataSetSha256Async(retrieved, StoreFile.Read(retrieved).DataSetOffset));
        File.Delete(retrieved);
        using var http = new HttpClient { Timeout = TimeSpan.FromMinutes(2) };
        var request = new HttpRequestMessage(HttpMethod.Get,
            $"http://127.0.0.1:{server.HttpPort}/dicom-web/studies/{row.StudyInstanceUid}/series/{row.SeriesInstanceUid}/instances/{row.SopInstanceUid}/frames/300");
        request.Headers.TryAddWithoutValidation("Accept", "multipart/related; type=\"application/octet-stream\"");
        double readBefore = backend == ArchiveServer.S3 ? await S3ReadBytesAsync(server) : 0;
        var (frame, framePeak) = await PeakWhileAsync(server.ProcessId, () => http.Send(request));
        Assert.Equal(System.Net.HttpStatusCode.OK, frame.StatusCode);
        byte[] body = await frame.Content.ReadAsByteArrayAsync();
        Assert.InRange(body.Length, Side * Side * 2, Side * Side * 2 + 1024);
        if (backend == ArchiveServer.S3)
        {
            // A frame is read by ranged GETs of its bytes (and the object's first 64 KiB), not the whole object.
            double read = await S3ReadBytesAsync(server) - readBefore;
            output.WriteLine($"one 2 MiB frame of the 1 GiB object: {read / 1e6:0.0} MB read from S3");
            Assert.InRange(read, Side * Side * 2, 8_000_000);
        }

        long peak = Math.Max(ingestPeak, Math.Max(getPeak, framePeak)), growth = peak - baseline;
        output.WriteLine($"{backend}: node RSS {baseline / 1e6:0} MB before; peak {ingestPeak / 1e6:0} MB ingesting {huge.DataSetLength / 1e9:0.00} GB, "
            + $"{getPeak / 1e6:0} MB by C-GET, {framePeak / 1e6:0} MB for one WADO-RS frame: +{growth / 1e6:0} MB");
        Assert.True(growth < 150_000_000, $"the node grew by {growth / 1e6:0} MB");
        if (backend == ArchiveServer.Sqlite)
        {
            string blob = ArchiveServer.BlobPath(data, row.Blob);
            Assert.Equal(expected, await DataSetSha256Async(blob, StoreFile.Read(blob).DataSetOffset));
        }
        Assert.Equal(0, ArchiveServer.Verify(data, "--no-checksums").ExitCode);
    }
}
