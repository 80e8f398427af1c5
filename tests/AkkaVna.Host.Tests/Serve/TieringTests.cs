using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using AkkaVna.Core.Ports;
using AkkaVna.Dicom;
using AkkaVna.Dicom.IO;
using AkkaVna.Dicom.Network.Replay;
using AkkaVna.Testing;
using Xunit.Abstractions;

namespace AkkaVna.Host.Tests.Serve;

/// <summary>
/// Issue 18's tier moves in a real <c>serve</c> process with two filesystem stores: a CT study moves to the <c>cold</c>
/// store by rule, C-GET and WADO-RS read it while it moves and return it dataset-equal after; the plan listed the move
/// beforehand; a SIGKILL in the middle of a move leaves every instance readable, and the move finishes after the restart.
/// </summary>
public sealed class TieringTests(ITestOutputHelper output)
{
    private static readonly TimeSpan ToolTimeout = TimeSpan.FromMinutes(3);

    private static string Config(string cold) => $$"""
        akka-vna.studies.quiet-period = 1s
        akka-vna.studies.stability-poll = 300ms
        akka-vna.compression.enabled = off
        akka-vna.blobs.stores.cold.path = {{AkkaVna.Host.ArchiveOptions.Quote(cold)}}
        akka-vna.lifecycle.enabled = on
        akka-vna.lifecycle.poll = 300ms
        akka-vna.lifecycle.hold-recheck = 2s
        akka-vna.lifecycle.move-rate = 8MiB
        akka-vna.lifecycle.rules = [
          {
            name = "ct-cold-after-2s"
            match { Modality = [CT] }
            from = received
            tiers = [ { after = 2s, store = cold } ]
          }
        ]
        """;

    private static Dictionary<string, StoreFile> Generate(TempDir dir, string name, string modality, int instances, int size, int seed) =>
        ReplaySources.Generate(new GeneratorOptions(1, instances, modality, size, size, Seed: seed), dir.File(name)).Select(f => StoreFile.Read(f.Path))
            .ToDictionary(f => f.SopInstanceUid, StringComparer.Ordinal);

    private static string StudyOf(StoreFile f)
    {
        using var file = DicomFile.Open(f.Path, new DicomReadOptions { StopBefore = t => t.Group > 0x0020 });
        return file.Dataset.GetString(DicomTags.StudyInstanceUID)!;
    }

    private static async Task<List<IndexedInstance>> RowsAsync(string data, string study)
    {
        await using var index = await ArchiveServer.OpenIndexAsync(data);
        var rows = new List<IndexedInstance>();
        await foreach (var i in index.ListInstancesAsync(study, CancellationToken.None)) rows.Add(i);
        return rows;
    }

    /// <summary>The .dcm files under a store's folder for one study (staging excluded).</summary>
    private static int FilesOf(string root, string study) =>
        !Directory.Exists(root) ? 0 : Directory.EnumerateFiles(root, "*.dcm", SearchOption.AllDirectories)
            .Count(f => !f.Contains(Path.DirectorySeparatorChar + ".staging" + Path.DirectorySeparatorChar, StringComparison.Ordinal)
                && f.Contains(Path.DirectorySeparatorChar + study + Path.DirectorySeparatorChar, StringComparison.Ordinal));

    /// <summary>C-GET of the study: every instance back, dataset-equal to what was sent.</summary>
    private static void AssertGetReturnsAll(int port, string study, IReadOnlyDictionary<string, StoreFile> files, string folder)
    {
        var get = QueryRetrieveTools.Get(null, port, folder, ["QueryRetrieveLevel=STUDY", $"StudyInstanceUID={study}"]);
        Assert.True(get.FinalStatus == "Success", get.Output);
        var received = QueryRetrieveTools.Received(folder);
        Assert.Equal(files.Count, received.Count);
        foreach (var (sop, path) in received) Storescu.AssertSameDataSet(files[sop].Path, path);
    }

    private static Task<int> WadoAsync(HttpClient http, string study, IReadOnlyDictionary<string, StoreFile> files, string folder) =>
        QueryRetrieveTools.WadoStudyAsync(http, study, sop => files[sop].Path, folder);

    [Fact]
    public async Task A_study_moves_to_the_cold_store_by_rule_readable_throughout_and_a_kill_mid_move_leaves_it_readable()
    {
        using var dir = new TempDir();
        string data = ArchiveServer.NewDataFolder(dir, ArchiveServer.Sqlite);
        string cold = dir.File("cold");
        string config = Config(cold);
        string primary = ArchiveServer.OptionsFor(data).BlobsFolder;
        string verifyConfig = dir.File("verify.conf");
        File.WriteAllText(verifyConfig, $"akka-vna.blobs.stores.cold.path = {AkkaVna.Host.ArchiveOptions.Quote(cold)}\n");

        var ct = Generate(dir, "ct", "CT", 160, 256, 11);
        var mr = Generate(dir, "mr", "MR", 4, 64, 12);
        var big = Generate(dir, "big", "CT", 400, 192, 13);
        string ctUid = StudyOf(ct.Values.First()), mrUid = StudyOf(mr.Values.First()), bigUid = StudyOf(big.Values.First());

        using (var server = new ArchiveServer(data, config))
        {
            using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{server.HttpPort}/"), Timeout = TimeSpan.FromSeconds(60) };
            var first = ct.Values.Concat(mr.Values).ToList();
            foreach (var r in Storescu.Send(Storescu.WriteConfig(dir, first), server.DicomPort, first, 1, ToolTimeout))
                Assert.True(r.ExitCode == 0, r.StdErr + r.StdOut);

            // The plan, an hour ahead, lists the CT study's move to the cold store (the MR one matches no rule).
            using (var planned = await http.GetAsync($"admin/lifecycle/plan?at={Uri.EscapeDataString(DateTimeOffset.UtcNow.AddHours(1).ToString("O"))}"))
            {
                var steps = JsonDocument.Parse(await planned.Content.ReadAsStringAsync()).RootElement.GetProperty("studies").EnumerateArray()
                    .ToDictionary(s => s.GetProperty("studyInstanceUid").GetString()!, s => s);
                Assert.Equal(("move", "cold", "ct-cold-after-2s"), (steps[ctUid].GetProperty("action").GetString(), steps[ctUid].GetProperty("store").GetString(),
                    steps[ctUid].GetProperty("rule").GetString()));
                Assert.False(steps.ContainsKey(mrUid));
            }

            // Read while it moves: C-GET and WADO-RS again and again, each whole and dataset-equal, until the move is done;
            // meanwhile the index is watched to see the study half moved (so the reads did overlap the move).
            int reads = 0, polls = 0, mixedSeen = 0;
            bool moved = false;
            var deadline = DateTime.UtcNow + TimeSpan.FromMinutes(1);
            var reading = Task.Run(async () =>
            {
                while (!Volatile.Read(ref moved) && DateTime.UtcNow < deadline)
                {
                    AssertGetReturnsAll(server.DicomPort, ctUid, ct, dir.File($"get-during-{reads}"));
                    Assert.Equal(ct.Count, await WadoAsync(http, ctUid, ct, dir.File($"wado-during-{reads}")));
                    reads++;
                }
            });
            while (!reading.IsCompleted && DateTime.UtcNow < deadline)
            {
                var rows = await RowsAsync(data, ctUid);
                int inColdNow = rows.Count(r => r.Blob.Store == "cold");
                if (inColdNow > 0 && inColdNow < rows.Count) mixedSeen++;
                polls++;
                if (inColdNow == rows.Count && FilesOf(primary, ctUid) == 0) Volatile.Write(ref moved, true);
                else await Task.Delay(10);
            }
            await reading;
            output.WriteLine($"{reads} C-GET and WADO-RS rounds while the study moved; {mixedSeen} of {polls} looks at the index saw it half moved");
            Assert.True(moved, "the CT study moved to the cold store within a minute\n" + server.Output[^Math.Min(4000, server.Output.Length)..]);
            Assert.True(mixedSeen > 0, $"the study was never seen half moved in {polls} looks: the reads did not overlap the move");

            // Moved whole: every row names the cold store, its files are there and not in the primary; read back dataset-equal.
            Assert.Equal(ct.Count, FilesOf(cold, ctUid));
            AssertGetReturnsAll(server.DicomPort, ctUid, ct, dir.File("get-after"));
            Assert.Equal(ct.Count, await WadoAsync(http, ctUid, ct, dir.File("wado-after")));
            Assert.All(await RowsAsync(data, mrUid), r => Assert.Equal("primary", r.Blob.Store));
            // The study's admin view says where it is.
            var view = await http.GetFromJsonAsync<JsonElement>($"admin/studies/{ctUid}");
            var where = Assert.Single(view.GetProperty("stores").EnumerateArray());
            Assert.Equal(("cold", ct.Count), (where.GetProperty("store").GetString(), where.GetProperty("blobs").GetInt32()));
            Assert.All(view.GetProperty("stored").EnumerateArray(), i => Assert.Equal("cold", i.GetProperty("store").GetString()));
            Assert.Equal(mr.Count, FilesOf(primary, mrUid));
            var audit = await http.GetFromJsonAsync<JsonElement>("admin/audit");
            Assert.Contains(audit.EnumerateArray(), a => a.GetProperty("action").GetString() == "study-moved" && a.GetProperty("studyInstanceUid").GetString() == ctUid
                && a.GetProperty("outcome").GetString() == "success");
            using (var metrics = await http.GetAsync("metrics"))
                Assert.Contains("akkavna_lifecycle_studies_total{outcome=\"moved\"} 1", await metrics.Content.ReadAsStringAsync(), StringComparison.Ordinal);
            var verify = ArchiveServer.Verify(data, "--config", verifyConfig);
            Assert.True(verify.ExitCode == 0, verify.StdOut + verify.StdErr);

            // A bigger study; the node is killed once part of it has moved.
            var bigList = big.Values.ToList();
            foreach (var r in Storescu.Send(Storescu.WriteConfig(dir, bigList), server.DicomPort, bigList, 2, ToolTimeout))
                Assert.True(r.ExitCode == 0, r.StdErr + r.StdOut);
            int inCold = 0;
            deadline = DateTime.UtcNow + TimeSpan.FromMinutes(1);
            while (DateTime.UtcNow < deadline && (inCold = (await RowsAsync(data, bigUid)).Count(r => r.Blob.Store == "cold")) == 0) await Task.Delay(20);
            server.Kill();
            output.WriteLine($"killed with {inCold} of {big.Count} instances of the big study moved");
            Assert.InRange(inCold, 1, big.Count - 1);
        }

        using (var server = new ArchiveServer(data, config))
        {
            using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{server.HttpPort}/"), Timeout = TimeSpan.FromSeconds(60) };
            // Readable at once, every instance, whichever store it is in.
            AssertGetReturnsAll(server.DicomPort, bigUid, big, dir.File("get-big-restart"));
            // The move finishes; nothing of it is left in the primary store, nothing staged; verify is clean.
            await Waits.UntilAsync(async () => (await RowsAsync(data, bigUid)).All(r => r.Blob.Store == "cold") && FilesOf(primary, bigUid) == 0,
                TimeSpan.FromMinutes(1), "the big study's move finishes after the restart", () => server.Output[^Math.Min(4000, server.Output.Length)..]);
            Assert.Equal(big.Count, FilesOf(cold, bigUid));
            Assert.Equal(big.Count, await WadoAsync(http, bigUid, big, dir.File("wado-big-after")));
            await Waits.UntilAsync(async () => await ArchiveServer.OpenBlobs(data).CountStagedAsync(CancellationToken.None) == 0
                && Directory.EnumerateFiles(Path.Combine(cold, ".staging"), "*.part", SearchOption.AllDirectories).Count() == 0,
                TimeSpan.FromMinutes(1), "no blob left staged in either store");
            var verify = ArchiveServer.Verify(data, "--config", verifyConfig);
            Assert.True(verify.ExitCode == 0, verify.StdOut + verify.StdErr);
            Assert.Equal(0, server.Stop());
        }
    }

    [Fact]
    public async Task A_compressed_study_moves_with_its_kept_originals_and_comes_back_dataset_equal()
    {
        using var dir = new TempDir();
        string data = ArchiveServer.NewDataFolder(dir, ArchiveServer.Sqlite);
        string cold = dir.File("cold");
        string primary = ArchiveServer.OptionsFor(data).BlobsFolder;
        string verifyConfig = dir.File("verify.conf");
        File.WriteAllText(verifyConfig, $"akka-vna.blobs.stores.cold.path = {AkkaVna.Host.ArchiveOptions.Quote(cold)}\n");
        // MR studies: compressed to JPEG-LS at once, their originals kept; moved to the cold store 3 s after receipt.
        string config = Config(cold).Replace("Modality = [CT]", "Modality = [MR]", StringComparison.Ordinal).Replace("after = 2s", "after = 3s", StringComparison.Ordinal) + """

            akka-vna.compression.enabled = on
            akka-vna.compression.keep-original = on
            akka-vna.compression.delay = 0s
            akka-vna.compression.poll = 500ms
            akka-vna.compression.rules = [
              {
                match { Modality = [MR] }
                transfer-syntax = "1.2.840.10008.1.2.4.80"
              }
            ]
            """;
        var mr = Generate(dir, "mr", "MR", 20, 128, 21);
        string uid = StudyOf(mr.Values.First());
        using var server = new ArchiveServer(data, config);
        var list = mr.Values.ToList();
        foreach (var r in Storescu.Send(Storescu.WriteConfig(dir, list), server.DicomPort, list, 1, ToolTimeout))
            Assert.True(r.ExitCode == 0, r.StdErr + r.StdOut);

        async Task<(List<IndexedInstance> Rows, List<KeptBlob> Kept)> StateAsync()
        {
            await using var index = await ArchiveServer.OpenIndexAsync(data);
            var rows = new List<IndexedInstance>();
            await foreach (var i in index.ListInstancesAsync(uid, CancellationToken.None)) rows.Add(i);
            var kept = new List<KeptBlob>();
            await foreach (var k in index.ListKeptBlobsAsync(uid, CancellationToken.None)) kept.Add(k);
            return (rows, kept);
        }
        // Whichever comes first (a compression of an instance already moved, or a move of one not yet compressed), the end
        // is the same: every instance compressed, it and its kept original in the cold store, nothing in the primary.
        await Waits.UntilAsync(async () =>
        {
            var (rows, kept) = await StateAsync();
            return rows.Count == mr.Count && rows.All(r => r.TransferSyntaxUid == "1.2.840.10008.1.2.4.80" && r.Blob.Store == "cold")
                && kept.Count == mr.Count && kept.All(k => k.Blob.Store == "cold") && FilesOf(primary, uid) == 0;
        }, TimeSpan.FromMinutes(3), "the MR study compressed, and moved with its kept originals", () => server.Output[^Math.Min(4000, server.Output.Length)..]);
        Assert.Equal(2 * mr.Count, FilesOf(cold, uid));
        AssertGetReturnsAll(server.DicomPort, uid, mr, dir.File("get"));
        var verify = ArchiveServer.Verify(data, "--config", verifyConfig);
        Assert.True(verify.ExitCode == 0, verify.StdOut + verify.StdErr);
        Assert.Contains($"{mr.Count} kept original(s)", verify.StdOut, StringComparison.Ordinal);
        Assert.Equal(0, server.Stop());
    }
}
