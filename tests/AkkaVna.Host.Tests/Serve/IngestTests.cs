using AkkaVna.Dicom.IO;
using System.Security.Cryptography;
using AkkaVna.Dicom.Network;
using AkkaVna.Dicom.Network.Dimse;
using AkkaVna.Dicom.Network.Scu;
using AkkaVna.Testing;
using Xunit.Abstractions;
using AkkaVna.Core.Ports;
using AkkaVna.Index.Sqlite;

namespace AkkaVna.Host.Tests.Serve;

/// <summary><c>akka-vna serve</c> as a process, fed by dcmtk's storescu over real associations.</summary>
public sealed class IngestTests(ITestOutputHelper output)
{
    private static readonly TimeSpan ToolTimeout = TimeSpan.FromMinutes(4);

    private static List<StoreFile> Generate(TempDir dir, int studies, int perStudy, int pixelBytes, int seed0 = 1) =>
        Enumerable.Range(seed0, studies).SelectMany(s => Instances.WriteStudy(Path.Combine(dir.Path, "gen" + s), perStudy, pixelBytes, seed: s))
            .Select(StoreFile.Read).ToList();

    private static string RefusalLines(ArchiveServer server) =>
        string.Join('\n', server.Output.Split('\n').Where(l => l.Contains(" refused (", StringComparison.Ordinal)));

    /// <summary>dcmdump's reading: the file has a Study and a Series Instance UID, both well formed.</summary>
    private static bool HasArchivableUids(string path)
    {
        var r = Tool.Run(Tool.Dcmtk("dcmdump"), ["-q", "-M", path]);
        // Top-level elements only: dcmdump indents those inside sequences.
        var values = r.StdOut.Split('\n').Where(l => (l.StartsWith("(0020,000d) UI [", StringComparison.Ordinal) || l.StartsWith("(0020,000e) UI [", StringComparison.Ordinal)))
            .Select(l => l[(l.IndexOf('[', StringComparison.Ordinal) + 1)..l.IndexOf(']', StringComparison.Ordinal)]).ToList();
        return values.Count == 2 && values.All(Dicom.Dictionary.DicomUidRegistry.IsWellFormed);
    }

    internal static string StudyOf(string path)
    {
        using var file = Dicom.IO.DicomFile.Open(path, new Dicom.IO.DicomReadOptions { StopBefore = t => t.Group > 0x0020 });
        return file.Dataset.GetString(Dicom.DicomTags.StudyInstanceUID)!;
    }

    /// <summary>Each blob holds the source's data set, and its study row counts exactly the instance rows.</summary>
    internal static async Task AssertArchivedAsync(string data, IEnumerable<StoreFile> sent, List<IndexedInstance> rows)
    {
        await using var blobs = ArchiveServer.OpenBlobs(data);
        var bySop = rows.ToDictionary(r => r.SopInstanceUid);
        using var scratch = new TempDir();
        foreach (var f in sent)
        {
            Assert.True(bySop.TryGetValue(f.SopInstanceUid, out var row), $"{f.Path} is not indexed");
            Storescu.AssertSameDataSet(f.Path, await ArchiveServer.BlobFileAsync(data, row.Blob, scratch.Path));
            await using var content = await blobs.OpenAsync(row.Blob, CancellationToken.None);
            await using var stream = content.OpenRead();
            Assert.Equal(row.Sha256, Convert.ToHexStringLower(await SHA256.HashDataAsync(stream)));
        }
        await using var index = await ArchiveServer.OpenIndexAsync(data);
        foreach (var study in rows.GroupBy(r => r.StudyInstanceUid))
        {
            var record = await index.GetStudyAsync(study.Key, CancellationToken.None);
            Assert.NotNull(record);
            Assert.Equal(study.Count(), record.InstanceCount);
            Assert.Equal(study.Select(r => r.SeriesInstanceUid).Distinct().Count(), record.SeriesCount);
            var series = await index.GetSeriesAsync(study.Key, CancellationToken.None);
            Assert.Equal(study.GroupBy(r => r.SeriesInstanceUid).Select(g => (g.Key, g.Count())).Order(), series.Select(s => (s.SeriesInstanceUid, s.InstanceCount)).Order());
        }
    }

    [Theory]
    [InlineData(ArchiveServer.Sqlite)]
    [InlineData(ArchiveServer.PostgreSql)]
    [InlineData(ArchiveServer.S3)]
    public async Task Storescu_sends_the_corpus_and_four_generated_studies_over_four_associations_and_the_archive_holds_exactly_them(string backend)
    {
        using var dir = new TempDir();
        string data = ArchiveServer.NewDataFolder(dir, backend);
        using var server = new ArchiveServer(data);
        var corpus = Storescu.SendableCorpus.Value;
        var generated = Generate(dir, 4, 100, 64 * 1024);
        string config = Storescu.WriteConfig(dir, corpus.Concat(generated));
        var rounds = Storescu.Rounds(corpus).ToList();

        // Every distinct instance of the corpus and the 400 generated ones, dealt over 4 concurrent associations.
        var first = rounds[0].Concat(generated).ToList();
        var refused = new List<string>();
        var responses = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var r in Storescu.Send(config, server.DicomPort, first, 4, ToolTimeout))
        {
            refused.AddRange(Storescu.RefusedByDcmtk(r, first));
            foreach (var (file, status) in Storescu.Responses(r)) responses[file] = status;
        }
        var delivered = first.Where(f => !Storescu.WasRefused(f, refused)).ToList();
        output.WriteLine($"{delivered.Count} delivered, {first.Count - delivered.Count} refused by dcmtk itself: {string.Join("; ", refused)}");
        // The archive keeps instances by Study, Series and SOP Instance UID: a data set without them (dcmdump is the
        // oracle) is refused with C000H and a reason; every other one is stored.
        var sent = new List<StoreFile>();
        foreach (var f in delivered)
        {
            Assert.True(responses.TryGetValue(f.Path, out var status), $"no response for {f.Path}");
            if (HasArchivableUids(f.Path))
            {
                Assert.True(status == "Success", $"{f.Path}: {status}\n{RefusalLines(server)}");
                sent.Add(f);
            }
            else
            {
                Assert.True(status == "Error: CannotUnderstand", $"{f.Path}: {status}");
                output.WriteLine($"refused as expected: {f.Path}");
            }
        }
        Assert.True(sent.Count >= 470, $"only {sent.Count} stored");

        await using (var index = await ArchiveServer.OpenIndexAsync(data))
        {
            var rows = await ArchiveServer.ListAsync(index);
            Assert.Equal(sent.Select(f => f.SopInstanceUid).Order(StringComparer.Ordinal), rows.Select(r => r.SopInstanceUid).Order(StringComparer.Ordinal));
            await AssertArchivedAsync(data, sent, rows);
            foreach (var study in generated.GroupBy(f => StudyOf(f.Path)))
                Assert.Equal(100, (await index.GetStudyAsync(study.Key, CancellationToken.None))!.InstanceCount);
        }

        // The rest of the corpus: the same instances in other encodings. Same bytes would be a duplicate (success, stored
        // once); different bytes under an archived SOP Instance UID are refused by the default policy with 0111H.
        int rejected = 0;
        foreach (var round in rounds.Skip(1))
        {
            foreach (var r in Storescu.Send(config, server.DicomPort, round, 4, ToolTimeout))
            {
                Storescu.RefusedByDcmtk(r, round);
                foreach (var (file, status) in Storescu.Responses(r))
                {
                    if (!HasArchivableUids(file)) Assert.Equal("Error: CannotUnderstand", status);
                    else
                    {
                        Assert.True(status is "Success" or "Unknown Status: 0x111", $"{file}: {status}");
                        if (status != "Success") rejected++;
                    }
                }
            }
        }
        Assert.True(rejected > 0, "no later encoding was refused");
        Assert.Contains("is already archived with different content", server.Output);
        await using (var index = await ArchiveServer.OpenIndexAsync(data))
        {
            var rows = await ArchiveServer.ListAsync(index);
            Assert.Equal(sent.Count, rows.Count);
            await AssertArchivedAsync(data, sent, rows); // still the first encoding of each
        }

        var verify = ArchiveServer.Verify(data);
        output.WriteLine(verify.StdOut);
        Assert.True(verify.ExitCode == 0, verify.StdOut + verify.StdErr);
        Assert.Contains($"instances: {sent.Count} indexed, {sent.Count} blob(s), {sent.Count} checksum(s) verified, 0 staged", verify.StdOut);
        Assert.Equal(0, server.Stop());
    }

    [Theory]
    [InlineData(ArchiveServer.Sqlite)]
    [InlineData(ArchiveServer.PostgreSql)]
    public async Task One_study_arriving_on_four_associations_at_once_ends_as_one_consistent_study_and_a_resend_changes_nothing(string backend)
    {
        using var dir = new TempDir();
        string data = ArchiveServer.NewDataFolder(dir, backend);
        using var server = new ArchiveServer(data);
        var files = Generate(dir, 1, 240, 32 * 1024);
        string config = Storescu.WriteConfig(dir, files);
        // Each association also sends the same 10 instances, so the same SOP Instance arrives four times at once.
        var shared = files.Take(10).ToList();
        var lists = Enumerable.Range(0, 4).Select(i => shared.Concat(files.Skip(10).Where((_, k) => k % 4 == i)).ToList()).ToList();
        var results = lists.AsParallel().WithDegreeOfParallelism(4)
            .Select(list => Storescu.Send(config, server.DicomPort, list, 1, ToolTimeout).Single()).ToList();
        foreach (var r in results)
        {
            Assert.Empty(Storescu.RefusedByDcmtk(r, files));
            Assert.All(Storescu.Responses(r).Values, s => Assert.Equal("Success", s));
        }
        async Task CheckAsync()
        {
            await using var index = await ArchiveServer.OpenIndexAsync(data);
            var rows = await ArchiveServer.ListAsync(index);
            Assert.Equal(240, rows.Count);
            Assert.Single(rows.Select(r => r.StudyInstanceUid).Distinct());
            await AssertArchivedAsync(data, files, rows);
        }
        await CheckAsync();
        foreach (var r in Storescu.Send(config, server.DicomPort, files, 4, ToolTimeout))
            Assert.All(Storescu.Responses(r).Values, s => Assert.Equal("Success", s));
        await CheckAsync();
        Assert.Equal(0, ArchiveServer.Verify(data).ExitCode);
    }

    [Theory]
    [InlineData("reject", ArchiveServer.Sqlite)]
    [InlineData("overwrite", ArchiveServer.Sqlite)]
    [InlineData("reject", ArchiveServer.PostgreSql)]
    [InlineData("overwrite", ArchiveServer.PostgreSql)]
    public async Task Different_content_under_an_archived_SOP_Instance_UID_follows_the_conflict_policy(string policy, string backend)
    {
        using var dir = new TempDir();
        string data = ArchiveServer.NewDataFolder(dir, backend);
        using var server = new ArchiveServer(data, $"akka-vna.ingest.conflict-policy = {policy}");
        var original = Generate(dir, 1, 1, 16 * 1024).Single();
        string changed = dir.File("changed.dcm");
        File.Copy(original.Path, changed);
        var edit = Tool.Run(Tool.Dcmtk("dcmodify"), ["-nb", "-m", "(0010,0010)=Changed^Name", changed]);
        Assert.True(edit.ExitCode == 0, edit.StdErr);
        string config = Storescu.WriteConfig(dir, [original]);

        var first = Storescu.Send(config, server.DicomPort, [original], 1, ToolTimeout).Single();
        Assert.Equal("Success", Storescu.Responses(first).Single().Value);
        var second = Storescu.Send(config, server.DicomPort, [StoreFile.Read(changed)], 1, ToolTimeout).Single();
        Assert.Equal(policy == "reject" ? "Unknown Status: 0x111" : "Success", Storescu.Responses(second).Single().Value);

        await using var index = await ArchiveServer.OpenIndexAsync(data);
        var rows = await ArchiveServer.ListAsync(index);
        var row = Assert.Single(rows);
        Storescu.AssertSameDataSet(policy == "reject" ? original.Path : changed, ArchiveServer.BlobPath(data, row.Blob));
        Assert.Equal(0, ArchiveServer.Verify(data).ExitCode);
    }

    [Theory]
    [InlineData(ArchiveServer.Sqlite)]
    [InlineData(ArchiveServer.PostgreSql)]
    public async Task Instances_the_archive_cannot_take_get_a_failure_status_with_a_reason_and_leave_nothing_behind(string backend)
    {
        using var dir = new TempDir();
        string data = ArchiveServer.NewDataFolder(dir, backend);
        using var server = new ArchiveServer(data);
        var good = Generate(dir, 1, 1, 4096).Single();
        string Variant(string name, params string[] edits)
        {
            string path = dir.File(name + ".dcm");
            File.Copy(good.Path, path);
            foreach (var e in edits)
            {
                var r = Tool.Run(Tool.Dcmtk("dcmodify"), ["-nb", "-ie", .. e.Split(' '), path]);
                Assert.True(r.ExitCode == 0, r.StdErr);
            }
            return path;
        }
        var cases = new (string Path, string Reason)[]
        {
            (Variant("bad-study", "-m (0020,000D)=1.2.3.abc"), "Study Instance UID '1.2.3.abc' is not a valid UID"),
            (Variant("no-study", "-e (0020,000D)"), "has no Study Instance UID"),
            (Variant("bad-series", "-m (0020,000E)=../../etc"), "Series Instance UID '../../etc' is not a valid UID"),
            (Variant("other-sop", "-m (0008,0018)=1.2.3.4.5"), "is not the command's"),
        };
        var options = new StoreScuOptions { CalledAE = "AKKAVNA" };
        foreach (var (path, reason) in cases)
        {
            // Sent as the file says, except that the command names the original SOP Instance UID for the last case.
            var file = StoreFile.Read(path);
            if (path.EndsWith("other-sop.dcm", StringComparison.Ordinal)) file = file with { SopInstanceUid = good.SopInstanceUid };
            var outcome = (await StoreScu.SendAsync("127.0.0.1", server.DicomPort, [file], options)).Single();
            Assert.False(outcome.Stored, path);
            Assert.Equal(DimseStatusCategory.Failure, outcome.Status!.Value.Category);
            Assert.Contains(reason, outcome.Error ?? "", StringComparison.Ordinal);
        }
        var ok = (await StoreScu.SendAsync("127.0.0.1", server.DicomPort, [good], options)).Single();
        Assert.True(ok.Stored);
        await using var index = await ArchiveServer.OpenIndexAsync(data);
        Assert.Single(await ArchiveServer.ListAsync(index));
        Assert.Equal(0, await ArchiveServer.OpenBlobs(data).CountStagedAsync(CancellationToken.None));
        Assert.Equal(0, ArchiveServer.Verify(data).ExitCode);
    }
}
