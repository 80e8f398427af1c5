using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using AkkaVna.Dicom;
using AkkaVna.Dicom.Buffers;
using AkkaVna.Dicom.IO;
using AkkaVna.Dicom.Network;
using AkkaVna.Dicom.Network.Dimse;
using AkkaVna.Dicom.Network.Pdus;
using AkkaVna.Dicom.Network.Scu;
using AkkaVna.Testing;
using Xunit.Abstractions;

namespace AkkaVna.Host.Tests.Serve;

/// <summary>
/// A success means the image is there, whole, for good: the faults found from outside (issue 13), each pinned by a test
/// with real processes and peers — concurrent claims of one SOP Instance UID by two studies, data sets cut short at every
/// layer (C-STORE, STOW-RS, <c>receive</c>), SIGTERM during a half-sent C-STORE, resends from other senders and in other
/// syntaxes, and <c>verify</c> finding a blob that does not parse.
/// </summary>
public sealed class IntegrityTests(ITestOutputHelper output)
{
    private static readonly TimeSpan ToolTimeout = TimeSpan.FromMinutes(2);
    private static readonly StoreScuOptions Scu = new() { CalledAE = "AKKAVNA" };

    private static string Uid() => Instances.NewUid();

    [Theory]
    [InlineData(ArchiveServer.Sqlite)]
    [InlineData(ArchiveServer.PostgreSql)]
    public async Task One_SOP_Instance_UID_sent_in_two_studies_at_once_is_archived_once_and_only_its_sender_gets_success(string backend)
    {
        using var dir = new TempDir();
        string data = ArchiveServer.NewDataFolder(dir, backend);
        using var server = new ArchiveServer(data);
        const int Tries = 20;
        var archived = new List<(string Sop, string Study, string Path)>();
        for (int t = 0; t < Tries; t++)
        {
            // Two different data sets (two studies, other pixels) under one SOP Instance UID, on two associations at once.
            string sop = Uid();
            string a = Instances.WriteInstance(dir.File($"t{t}/a.dcm"), Uid(), Uid(), sop, 32 * 1024, seed: 2 * t);
            string b = Instances.WriteInstance(dir.File($"t{t}/b.dcm"), Uid(), Uid(), sop, 32 * 1024, seed: 2 * t + 1);
            string config = Storescu.WriteConfig(dir, [StoreFile.Read(a)]);
            var results = new[] { a, b }.AsParallel().WithDegreeOfParallelism(2)
                .Select(path => (Path: path, Result: Storescu.Send(config, server.DicomPort, [StoreFile.Read(path)], 1, ToolTimeout).Single())).ToList();
            var statuses = results.Select(r => (r.Path, Status: Storescu.Responses(r.Result).Single().Value)).ToList();
            output.WriteLine($"try {t}: {string.Join(", ", statuses.Select(s => System.IO.Path.GetFileName(s.Path) + " " + s.Status))}");
            var winner = Assert.Single(statuses, s => s.Status == "Success");
            Assert.Single(statuses, s => s.Status == "Unknown Status: 0x111");
            archived.Add((sop, IngestTests.StudyOf(winner.Path), winner.Path));
        }
        Assert.Contains("is already archived in study", server.Output);

        await using (var index = await ArchiveServer.OpenIndexAsync(data))
        {
            var rows = await ArchiveServer.ListAsync(index);
            Assert.Equal(Tries, rows.Count);
            var blobs = ArchiveServer.OpenBlobs(data);
            foreach (var (sop, study, path) in archived)
            {
                var row = Assert.Single(rows, r => r.SopInstanceUid == sop);
                Assert.Equal(study, row.StudyInstanceUid); // the acknowledged one is the archived one
                Storescu.AssertSameDataSet(path, ArchiveServer.BlobPath(data, row.Blob));
                Assert.Equal(study, (await index.FindInstanceAsync(sop, CancellationToken.None))!.StudyInstanceUid);
            }
            // The losers' studies hold nothing: no study row, no blob left.
            Assert.Equal(Tries, (await index.CountAsync(CancellationToken.None)).Studies);
            Assert.Equal(Tries, await ArchiveServer.CountBlobsAsync(data));
        }
        var verify = ArchiveServer.Verify(data);
        Assert.True(verify.ExitCode == 0, verify.StdOut);
        Assert.Equal(0, server.Stop());
    }

    /// <summary>Data sets that end inside something: a file holding the cut data set, with the sent SOP UIDs.</summary>
    private static List<(string Name, string Path, string Reason)> CutDataSets(TempDir dir)
    {
        var cases = new List<(string, string, string)>();
        // Pixel Data declares 8,192 bytes and about 4,300 arrive.
        string whole = Instances.WriteInstance(dir.File("cut/pixels-whole.dcm"), Uid(), Uid(), Uid(), 8192, seed: 7);
        var bytes = File.ReadAllBytes(whole);
        string pixels = dir.File("cut/pixels.dcm");
        File.WriteAllBytes(pixels, bytes[..^3892]);
        cases.Add(("inside Pixel Data", pixels, "(7FE0,0010) OW: 4300 of 8192 bytes"));

        // A sequence of undefined length after the indexed attributes, its delimiters cut off.
        var ds = new DicomDataset();
        ds.AddString(DicomTags.SOPClassUID, DicomVR.UI, DicomUids.SecondaryCaptureImageStorage);
        ds.AddString(DicomTags.SOPInstanceUID, DicomVR.UI, Uid());
        ds.AddString(DicomTags.PatientID, DicomVR.LO, "CUT");
        ds.AddString(DicomTags.StudyInstanceUID, DicomVR.UI, Uid());
        ds.AddString(DicomTags.SeriesInstanceUID, DicomVR.UI, Uid());
        var item = new DicomDataset();
        item.AddString(DicomTags.RequestedProcedureID, DicomVR.SH, "RP1");
        var sq = new DicomSequence(DicomTags.RequestAttributesSequence);
        sq.Items.Add(item);
        ds.Add(sq);
        string seqWhole = dir.File("cut/seq-whole.dcm");
        DicomWriter.WriteFile(seqWhole, ds, DicomTransferSyntax.ExplicitVRLittleEndian);
        var seqBytes = File.ReadAllBytes(seqWhole);
        Assert.Equal([0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0], seqBytes[^8..]); // ends with the sequence delimiter
        string noSequenceEnd = dir.File("cut/sequence.dcm"), noItemEnd = dir.File("cut/item.dcm");
        File.WriteAllBytes(noSequenceEnd, seqBytes[..^8]);
        File.WriteAllBytes(noItemEnd, seqBytes[..^16]);
        cases.Add(("an unclosed sequence", noSequenceEnd, "data ends before the delimiter of sequence (0040,0275)"));
        cases.Add(("an unclosed item", noItemEnd, "data ends before the delimiter of an item of (0040,0275)"));
        return cases;
    }

    [Theory]
    [InlineData(ArchiveServer.Sqlite)]
    [InlineData(ArchiveServer.PostgreSql)]
    public async Task A_data_set_cut_inside_pixel_data_a_sequence_or_an_item_is_refused_over_C_STORE_and_STOW_RS_and_leaves_nothing(string backend)
    {
        using var dir = new TempDir();
        string data = ArchiveServer.NewDataFolder(dir, backend);
        using var server = new ArchiveServer(data);
        var cases = CutDataSets(dir);
        foreach (var (name, path, reason) in cases)
        {
            var outcome = (await StoreScu.SendAsync("127.0.0.1", server.DicomPort, [StoreFile.Read(path)], Scu)).Single();
            Assert.True(outcome.Status == DimseStatus.StoreCannotUnderstand, $"{name}: {outcome.Status} {outcome.Error}");
            Assert.StartsWith("data ends", outcome.Error, StringComparison.Ordinal);
            Assert.Contains(reason, outcome.Error, StringComparison.Ordinal);
        }

        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{server.HttpPort}/"), Timeout = ToolTimeout };
        foreach (var (name, path, reason) in cases)
        {
            var content = new MultipartContent("related");
            content.Headers.ContentType!.Parameters.Add(new NameValueHeaderValue("type", "\"application/dicom\""));
            content.Add(new ByteArrayContent(File.ReadAllBytes(path)) { Headers = { ContentType = new MediaTypeHeaderValue("application/dicom") } });
            using var rsp = await http.PostAsync("dicom-web/studies", content);
            string body = await rsp.Content.ReadAsStringAsync();
            Assert.True(rsp.StatusCode == HttpStatusCode.Conflict, $"{name}: {rsp.StatusCode} {body}");
            using var json = JsonDocument.Parse(body);
            var failed = json.RootElement.GetProperty("00081198").GetProperty("Value")[0];
            Assert.Equal(0xC000, failed.GetProperty("00081197").GetProperty("Value")[0].GetInt32());
            Assert.False(json.RootElement.TryGetProperty("00081199", out _), $"{name}: a Referenced SOP item for a cut data set");
        }
        Assert.Contains("refused (CannotUnderstand): data ends", server.Output);

        await using var index = await ArchiveServer.OpenIndexAsync(data);
        Assert.Empty(await ArchiveServer.ListAsync(index));
        Assert.Equal(0, (await index.CountAsync(CancellationToken.None)).Studies);
        var blobs = ArchiveServer.OpenBlobs(data);
        Assert.Equal(0, await ArchiveServer.CountBlobsAsync(data));
        Assert.Equal(0, await blobs.CountStagedAsync(CancellationToken.None));
        Assert.Equal(0, ArchiveServer.Verify(data).ExitCode);
    }

    [Fact]
    public async Task Receive_refuses_a_data_set_that_ends_inside_a_value_and_writes_no_file()
    {
        using var dir = new TempDir();
        string folder = dir.File("received");
        using var receive = new ServerProcess("dotnet", [AkkaVnaCli.Dll, "receive", "--port", "0", "--out", folder, "--bind", "127.0.0.1"], "listening on");
        int port = receive.ReadyPort("127.0.0.1:");
        // (0008,0016) declares 26 bytes and 21 arrive: the data set ends inside its value.
        var ds = new DicomDataset();
        ds.AddString(DicomTags.SOPClassUID, DicomVR.UI, DicomUids.CTImageStorage);
        ds.AddString(DicomTags.SOPInstanceUID, DicomVR.UI, "1.2.3.4.5.6.7.8");
        string whole = dir.File("whole.dcm");
        DicomWriter.WriteFile(whole, ds, DicomTransferSyntax.ExplicitVRLittleEndian);
        var file = StoreFile.Read(whole);
        // Sent as the whole file says, but only up to 21 bytes into the value of (0008,0016).
        var all = File.ReadAllBytes(whole);
        int valueStart = (int)file.DataSetOffset + 8;
        Assert.Equal(26, all[(int)file.DataSetOffset + 6]);
        string cut = dir.File("cut.dcm");
        File.WriteAllBytes(cut, all[..(valueStart + 21)]);
        var outcome = (await StoreScu.SendAsync("127.0.0.1", port, [file with { Path = cut, DataSetLength = 8 + 21 }], new StoreScuOptions { CalledAE = "AKKAVNA" })).Single();
        Assert.Equal(DimseStatus.StoreCannotUnderstand, outcome.Status);
        Assert.Contains("data ends inside (0008,0016) UI: 21 of 26 bytes", outcome.Error, StringComparison.Ordinal);
        Assert.Empty(Directory.EnumerateFiles(folder));

        // The whole data set is written.
        var ok = (await StoreScu.SendAsync("127.0.0.1", port, [file], new StoreScuOptions { CalledAE = "AKKAVNA" })).Single();
        Assert.True(ok.Stored, ok.Error);
        Assert.Single(Directory.EnumerateFiles(folder, "*.dcm"));
    }

    [Theory]
    [InlineData(ArchiveServer.Sqlite)]
    [InlineData(ArchiveServer.PostgreSql)]
    public async Task The_same_instance_from_three_senders_and_in_two_uncompressed_syntaxes_is_one_archived_copy(string backend)
    {
        using var dir = new TempDir();
        string data = ArchiveServer.NewDataFolder(dir, backend);
        using var server = new ArchiveServer(data);
        string study = Uid(), series = Uid(), sop = Uid();
        string explicitLe = Instances.WriteInstance(dir.File("explicit.dcm"), study, series, sop, 16 * 1024, seed: 3);
        string implicitLe = Instances.WriteInstance(dir.File("implicit.dcm"), study, series, sop, 16 * 1024, seed: 3, syntax: DicomTransferSyntax.ImplicitVRLittleEndian);
        var files = new[] { StoreFile.Read(explicitLe), StoreFile.Read(implicitLe) };
        Assert.NotEqual(files[0].TransferSyntax, files[1].TransferSyntax);
        string config = Storescu.WriteConfig(dir, files);
        foreach (var aet in new[] { "XXX", "YYY", "ZZZ" })
            foreach (var f in files)
            {
                var r = Storescu.Send(config, server.DicomPort, [f], 1, ToolTimeout, "-aet", aet).Single();
                Assert.True(Storescu.Responses(r).Single().Value == "Success", $"{aet} {f.TransferSyntax}: {r.StdErr}\n{server.Output}");
            }
        await using var index = await ArchiveServer.OpenIndexAsync(data);
        var row = Assert.Single(await ArchiveServer.ListAsync(index));
        Assert.Equal(files[0].TransferSyntax.Uid, row.TransferSyntaxUid); // the first copy is the one kept
        Storescu.AssertSameDataSet(explicitLe, ArchiveServer.BlobPath(data, row.Blob));
        Assert.Equal(1, await ArchiveServer.CountBlobsAsync(data));
        // Different content under that SOP Instance UID is still refused.
        string other = Instances.WriteInstance(dir.File("other.dcm"), study, series, sop, 16 * 1024, seed: 4);
        var refused = Storescu.Send(config, server.DicomPort, [StoreFile.Read(other)], 1, ToolTimeout, "-aet", "XXX").Single();
        Assert.Equal("Unknown Status: 0x111", Storescu.Responses(refused).Single().Value);
        Assert.Equal(0, ArchiveServer.Verify(data).ExitCode);
    }

    [Theory]
    [InlineData(ArchiveServer.Sqlite)]
    [InlineData(ArchiveServer.PostgreSql)]
    public async Task Verify_names_an_archived_instance_whose_blob_no_longer_parses(string backend)
    {
        using var dir = new TempDir();
        string data = ArchiveServer.NewDataFolder(dir, backend);
        var files = Instances.WriteStudy(dir.File("study"), 3, 8192, seed: 5).Select(StoreFile.Read).ToList();
        using (var server = new ArchiveServer(data))
        {
            foreach (var o in await StoreScu.SendAsync("127.0.0.1", server.DicomPort, files, Scu)) Assert.True(o.Stored, o.Error);
            Assert.Equal(0, server.Stop());
        }
        Assert.Equal(0, ArchiveServer.Verify(data).ExitCode);
        await using (var index = await ArchiveServer.OpenIndexAsync(data))
        {
            var victim = (await ArchiveServer.ListAsync(index)).First();
            string path = ArchiveServer.BlobPath(data, victim.Blob);
            var bytes = File.ReadAllBytes(path);
            File.WriteAllBytes(path, bytes[..^1000]);
            var verify = ArchiveServer.Verify(data);
            output.WriteLine(verify.StdOut);
            Assert.Equal(1, verify.ExitCode);
            Assert.Contains("not whole data sets: 1", verify.StdOut, StringComparison.Ordinal);
            Assert.Contains($"{victim.SopInstanceUid} (study {victim.StudyInstanceUid}): blob {victim.Blob} is not a whole data set", verify.StdOut, StringComparison.Ordinal);
            Assert.Contains("data ends inside (7FE0,0010) OW: 7192 of 8192 bytes", verify.StdOut, StringComparison.Ordinal);
        }
    }

    /// <summary>A data set source that gives its first part, then waits until it is released (a C-STORE half sent).</summary>
    private sealed class GatedStream(byte[] data, int gateAt) : Stream
    {
        private int _position;
        public TaskCompletionSource FirstPartSent { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public TaskCompletionSource Release { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            if (_position == gateAt)
            {
                FirstPartSent.TrySetResult();
                await Release.Task.WaitAsync(cancellationToken);
            }
            int end = _position < gateAt ? gateAt : data.Length;
            int n = Math.Min(buffer.Length, end - _position);
            data.AsMemory(_position, n).CopyTo(buffer);
            _position += n;
            return n;
        }

        public override int Read(byte[] buffer, int offset, int count) => ReadAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();
        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => data.Length;
        public override long Position { get => _position; set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }

    [Fact]
    public async Task SIGTERM_during_a_half_sent_C_STORE_answers_it_archives_it_refuses_new_associations_and_then_exits_cleanly()
    {
        using var dir = new TempDir();
        string data = dir.File("data");
        string path = Instances.WriteInstance(dir.File("half.dcm"), Uid(), Uid(), Uid(), 512 * 1024, seed: 9);
        var file = StoreFile.Read(path);
        var dataSet = File.ReadAllBytes(path)[(int)file.DataSetOffset..];
        using var server = new ArchiveServer(data, "akka-vna.dicom.shutdown-grace = 60s");
        var rq = new AssociateRequest
        {
            CalledAE = "AKKAVNA",
            CallingAE = "HALFWAY",
            PresentationContexts = [new PresentationContextProposal(1, file.SopClassUid, [file.TransferSyntax.Uid])],
            UserInformation = new UserInformation { ImplementationClassUid = DicomImplementation.ClassUid },
        };
        await using var association = await DicomAssociation.ConnectAsync("127.0.0.1", server.DicomPort, rq);
        var source = new GatedStream(dataSet, dataSet.Length / 2);
        var store = association.SendRequestAsync(1, DimseCommand.StoreRequest(association.NextMessageId(), file.SopClassUid, file.SopInstanceUid), source, dataSet.Length);
        await source.FirstPartSent.Task.WaitAsync(TimeSpan.FromSeconds(30));
        await Task.Delay(500); // the first half is on the wire
        server.Terminate();
        // The old failure: System.CommandLine ended the process 2 s after the signal, with 143, mid-C-STORE.
        Assert.Null(server.WaitForExit(TimeSpan.FromSeconds(5)));
        await Assert.ThrowsAnyAsync<Exception>(async () =>
        {
            await using var late = await DicomAssociation.ConnectAsync("127.0.0.1", server.DicomPort, rq with { CallingAE = "LATE" });
        });
        source.Release.SetResult();
        var response = await store.WaitAsync(TimeSpan.FromSeconds(60));
        Assert.True(response.Status == DimseStatus.Success, $"{response.Status} {response.Command.ErrorComment}\n{server.Output}");
        await association.ReleaseAsync();
        Assert.Equal(0, server.WaitForExit(TimeSpan.FromSeconds(60)));
        output.WriteLine(server.Output);

        // What was answered with success is archived, whole.
        using (var again = new ArchiveServer(data))
        {
            await using var index = await ArchiveServer.OpenIndexAsync(data);
            var row = Assert.Single(await ArchiveServer.ListAsync(index));
            Assert.Equal(file.SopInstanceUid, row.SopInstanceUid);
            Storescu.AssertSameDataSet(path, ArchiveServer.BlobPath(data, row.Blob));
            Assert.Equal(0, again.Stop());
        }
        Assert.Equal(0, ArchiveServer.Verify(data).ExitCode);
    }
}
