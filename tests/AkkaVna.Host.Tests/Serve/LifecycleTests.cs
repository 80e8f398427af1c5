using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using AkkaVna.Core.Studies;
using AkkaVna.Dicom.IO;
using AkkaVna.Dicom.Network.Replay;
using AkkaVna.Testing;
using Xunit.Abstractions;

namespace AkkaVna.Host.Tests.Serve;

/// <summary>
/// Issue 18 in a real <c>serve</c> process, with rules of seconds: an MG study past its rule is destroyed (C-FIND and
/// WADO-RS no longer find it, no blob, no journal row, verify clean, a tombstone and audit records); a study under a
/// legal hold survives past its date and is destroyed once the hold is released; a study no rule matches stays; the
/// plan said so beforehand; a resend of the destroyed study is refused with the reason.
/// </summary>
public sealed class LifecycleTests(ITestOutputHelper output)
{
    private static readonly TimeSpan ToolTimeout = TimeSpan.FromMinutes(3);

    private const string Config = """
        akka-vna.studies.quiet-period = 1s
        akka-vna.studies.stability-poll = 500ms
        akka-vna.compression.enabled = off
        akka-vna.lifecycle.enabled = on
        akka-vna.lifecycle.poll = 500ms
        akka-vna.lifecycle.hold-recheck = 2s
        akka-vna.lifecycle.destruction.require-approval = off
        akka-vna.lifecycle.rules = [
          {
            name = "mg-3s"
            match { Modality = [MG] }
            keep = 3s
            from = received
          }
        ]
        """;

    private static List<StoreFile> Generate(TempDir dir, string name, string modality, int instances, int seed) =>
        [.. ReplaySources.Generate(new GeneratorOptions(1, instances, modality, 64, 64, Seed: seed), dir.File(name)).Select(f => StoreFile.Read(f.Path))];

    private static string StudyUid(StoreFile f)
    {
        using var file = DicomFile.Open(f.Path);
        return file.Dataset.GetString(AkkaVna.Dicom.DicomTags.StudyInstanceUID)!;
    }

    /// <summary>Whether the study's tombstone says it is destroyed (read from the index's lifecycle records).</summary>
    private static async Task<bool> DestroyedAsync(string data, string uid)
    {
        await using var index = await ArchiveServer.OpenIndexAsync(data);
        return (await index.Lifecycle.GetTombstoneAsync(uid, CancellationToken.None))?.State == AkkaVna.Core.Lifecycle.TombstoneState.Destroyed;
    }

    private static JsonElement Json(HttpResponseMessage r) => JsonDocument.Parse(r.Content.ReadAsStringAsync().Result).RootElement;

    [Theory]
    [InlineData(ArchiveServer.Sqlite)]
    [InlineData(ArchiveServer.PostgreSql)]
    public async Task A_study_past_its_rule_is_destroyed_whole_a_held_one_only_after_release_and_one_no_rule_matches_stays(string backend)
    {
        using var dir = new TempDir();
        string data = ArchiveServer.NewDataFolder(dir, backend);
        using var server = new ArchiveServer(data, Config);
        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{server.HttpPort}/"), Timeout = TimeSpan.FromSeconds(60) };
        var doomed = Generate(dir, "mg", "MG", 4, 1);
        var held = Generate(dir, "mg-held", "MG", 3, 2);
        var kept = Generate(dir, "ct", "CT", 3, 3);
        string doomedUid = StudyUid(doomed[0]), heldUid = StudyUid(held[0]), keptUid = StudyUid(kept[0]);

        // A legal hold on the second MG study, placed before it arrives.
        using (var bad = await http.PostAsJsonAsync("admin/holds", new { scope = "study", value = "not a uid", reason = "x", placedBy = "y" }))
            Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);
        using var placed = await http.PostAsJsonAsync("admin/holds", new { scope = "study", value = heldUid, reason = "litigation 2026-114", placedBy = "dpo@hospital" });
        Assert.Equal(HttpStatusCode.Created, placed.StatusCode);
        string holdId = Json(placed).GetProperty("id").GetString()!;

        var all = doomed.Concat(held).Concat(kept).ToList();
        foreach (var r in Storescu.Send(Storescu.WriteConfig(dir, all), server.DicomPort, all, 1, ToolTimeout))
            Assert.True(r.ExitCode == 0, r.StdErr + r.StdOut);

        // The plan, an hour ahead: the doomed study destroyed, the held one stopped by its hold, the CT one absent.
        using (var planned = await http.GetAsync($"admin/lifecycle/plan?at={Uri.EscapeDataString(DateTimeOffset.UtcNow.AddHours(1).ToString("O"))}"))
        {
            Assert.Equal(HttpStatusCode.OK, planned.StatusCode);
            var steps = Json(planned).GetProperty("studies").EnumerateArray().ToDictionary(s => s.GetProperty("studyInstanceUid").GetString()!, s => s);
            Assert.Equal("destroy", steps[doomedUid].GetProperty("action").GetString());
            Assert.Equal("mg-3s", steps[doomedUid].GetProperty("rule").GetString());
            Assert.Equal("held", steps[heldUid].GetProperty("action").GetString());
            Assert.Equal(holdId, Assert.Single(steps[heldUid].GetProperty("holds").EnumerateArray()).GetString());
            Assert.False(steps.ContainsKey(keptUid));
        }
        using (var badPlan = await http.GetAsync("admin/lifecycle/plan?at=yesterday"))
            Assert.Equal(HttpStatusCode.BadRequest, badPlan.StatusCode);

        async Task<JsonElement?> TombstoneAsync(string uid)
        {
            using var r = await http.GetAsync("admin/lifecycle/tombstones");
            return Json(r).EnumerateArray().Where(t => t.GetProperty("studyInstanceUid").GetString() == uid).Select(t => (JsonElement?)t).FirstOrDefault();
        }
        await Waits.UntilAsync(async () => await TombstoneAsync(doomedUid) is { } t && t.GetProperty("state").GetString() == "destroyed", TimeSpan.FromMinutes(1),
            "the MG study destroyed", () => server.Output[^Math.Min(4000, server.Output.Length)..]);

        // Gone from everywhere: the index (C-FIND, WADO-RS), the blob store, the journal.
        Assert.Empty(QueryRetrieveTools.Find(null, server.DicomPort, false, ["QueryRetrieveLevel=STUDY", $"StudyInstanceUID={doomedUid}"]).DataSets);
        using (var wado = await http.GetAsync($"dicomweb/studies/{doomedUid}/metadata"))
            Assert.Equal(HttpStatusCode.NotFound, wado.StatusCode);
        Assert.Equal(0, await ArchiveServer.OpenJournal(data).CountRowsAsync(StudyJournal.PersistenceIdFor(doomedUid), CancellationToken.None));
        Assert.True(await ArchiveServer.OpenJournal(data).CountRowsAsync(StudyJournal.PersistenceIdFor(keptUid), CancellationToken.None) > 0);
        Assert.Equal(held.Count + kept.Count, await ArchiveServer.CountBlobsAsync(data));
        var tombstone = (await TombstoneAsync(doomedUid))!.Value;
        Assert.Equal(("mg-3s", doomed.Count), (tombstone.GetProperty("rule").GetString(), tombstone.GetProperty("instances").GetInt32()));
        Assert.Equal(doomed.Count, tombstone.GetProperty("checksums").GetArrayLength());
        using (var view = await http.GetAsync($"admin/studies/{doomedUid}"))
            Assert.Equal(HttpStatusCode.Gone, view.StatusCode);
        var verify = ArchiveServer.Verify(data);
        Assert.True(verify.ExitCode == 0, verify.StdOut + verify.StdErr);

        // A resend of the destroyed study is refused with the reason (resend = refuse), and stores nothing.
        var resent = Storescu.Send(Storescu.WriteConfig(dir, doomed.Take(1)), server.DicomPort, doomed.Take(1).ToList(), 1, ToolTimeout);
        Assert.NotEqual("Success", Storescu.Responses(resent[0]).GetValueOrDefault(doomed[0].Path));
        Assert.Contains("was destroyed", server.Output, StringComparison.Ordinal);
        Assert.Equal(held.Count + kept.Count, await ArchiveServer.CountBlobsAsync(data));

        // The held study is past its date and still here; the CT one too. The admin view names the hold.
        await Task.Delay(TimeSpan.FromSeconds(4));
        Assert.Null(await TombstoneAsync(heldUid));
        var heldView = await http.GetFromJsonAsync<JsonElement>($"admin/studies/{heldUid}");
        Assert.Equal(holdId, heldView.GetProperty("lifecycle").GetProperty("holds")[0].GetProperty("id").GetString());
        Assert.Equal("mg-3s", heldView.GetProperty("lifecycle").GetProperty("rule").GetString());
        var keptView = await http.GetFromJsonAsync<JsonElement>($"admin/studies/{keptUid}");
        Assert.Equal(JsonValueKind.Null, keptView.GetProperty("lifecycle").GetProperty("rule").ValueKind);

        // Released: destroyed in turn.
        using (var noBy = await http.DeleteAsync($"admin/holds/{holdId}"))
            Assert.Equal(HttpStatusCode.BadRequest, noBy.StatusCode);
        using (var unknown = await http.DeleteAsync("admin/holds/hold-unknown?by=judge"))
            Assert.Equal(HttpStatusCode.NotFound, unknown.StatusCode);
        using (var released = await http.DeleteAsync($"admin/holds/{holdId}?by=judge"))
            Assert.Equal(HttpStatusCode.OK, released.StatusCode);
        await Waits.UntilAsync(async () => await TombstoneAsync(heldUid) is { } t && t.GetProperty("state").GetString() == "destroyed", TimeSpan.FromMinutes(1),
            "the released study destroyed", () => server.Output[^Math.Min(4000, server.Output.Length)..]);
        Assert.Equal(kept.Count, await ArchiveServer.CountBlobsAsync(data));
        Assert.Single(QueryRetrieveTools.Find(null, server.DicomPort, false, ["QueryRetrieveLevel=STUDY", "StudyInstanceUID"]).DataSets);
        // Counted once each child has finished (its last writes come after the tombstone's).
        await Waits.UntilAsync(async () => (await http.GetStringAsync("metrics")).Contains("akkavna_lifecycle_studies_total{outcome=\"destroyed\"} 2", StringComparison.Ordinal),
            TimeSpan.FromSeconds(30), "both destructions counted");
        Assert.DoesNotContain("akkavna_lifecycle_destroyed_bytes_total 0", await http.GetStringAsync("metrics"), StringComparison.Ordinal);

        // The audit trail: the hold placed and released, each destruction begun and done.
        var audit = await http.GetFromJsonAsync<JsonElement>("admin/audit");
        var actions = audit.EnumerateArray().Select(a => (a.GetProperty("action").GetString(), a.GetProperty("studyInstanceUid").GetString())).ToList();
        Assert.Contains(("hold-placed", heldUid), actions);
        Assert.Contains(("hold-released", heldUid), actions);
        Assert.Contains(("study-destroyed", doomedUid), actions);
        Assert.Contains(("study-destroyed", heldUid), actions);
        output.WriteLine(string.Join('\n', actions));
        verify = ArchiveServer.Verify(data);
        Assert.True(verify.ExitCode == 0, verify.StdOut + verify.StdErr);
        Assert.Equal(0, server.Stop());
        // And the ATNA audit trail (the node's audit file): a DICOM Study Deleted message (110105, action D) per destroyed study.
        var deleted = File.ReadAllLines(Path.Combine(data, "audit.log")).Where(l => l.Contains("csd-code=\"110105\"", StringComparison.Ordinal)).ToList();
        Assert.Contains(deleted, l => l.Contains($"ParticipantObjectID=\"{doomedUid}\"", StringComparison.Ordinal) && l.Contains("EventActionCode=\"D\"", StringComparison.Ordinal));
        Assert.Contains(deleted, l => l.Contains($"ParticipantObjectID=\"{heldUid}\"", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_node_killed_in_the_middle_of_a_destruction_finishes_it_after_a_restart_and_touches_nothing_else()
    {
        using var dir = new TempDir();
        string data = ArchiveServer.NewDataFolder(dir, ArchiveServer.Sqlite);
        var doomed = Generate(dir, "mg", "MG", 5, 11);
        var kept = Generate(dir, "ct", "CT", 4, 12);
        string doomedUid = StudyUid(doomed[0]), keptUid = StudyUid(kept[0]);
        // Approval on: the study waits in the queue, and its blobs are known before anything is destroyed.
        string config = Config.Replace("require-approval = off", "require-approval = on", StringComparison.Ordinal);
        string stuck;
        string blobPath;
        using (var server = new ArchiveServer(data, config))
        {
            using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{server.HttpPort}/"), Timeout = TimeSpan.FromSeconds(60) };
            var all = doomed.Concat(kept).ToList();
            foreach (var r in Storescu.Send(Storescu.WriteConfig(dir, all), server.DicomPort, all, 1, ToolTimeout))
                Assert.True(r.ExitCode == 0, r.StdErr + r.StdOut);
            await Waits.UntilAsync(async () => (await http.GetFromJsonAsync<JsonElement>("admin/lifecycle/queue")).GetArrayLength() == 1, TimeSpan.FromMinutes(1),
                "the MG study queued for approval", () => server.Output[^Math.Min(4000, server.Output.Length)..]);
            Assert.Equal(doomed.Count + kept.Count, await ArchiveServer.CountBlobsAsync(data)); // nothing destroyed without approval
            // One of its blobs cannot be removed (a folder where the file was: even root cannot delete it as a file), so
            // the destruction stops half done — journal purged, rows gone, blobs partly there — and retries; then a SIGKILL.
            await using (var index = await ArchiveServer.OpenIndexAsync(data))
                blobPath = ArchiveServer.BlobPath(data, (await ArchiveServer.ListAsync(index)).First(i => i.StudyInstanceUid == doomedUid).Blob);
            stuck = dir.File("stuck-blob");
            File.Move(blobPath, stuck);
            Directory.CreateDirectory(blobPath);
            File.WriteAllText(Path.Combine(blobPath, "keep"), "x");
            using var approved = await http.PostAsJsonAsync("admin/lifecycle/approve", new { studyInstanceUids = new[] { doomedUid }, approvedBy = "dpo@hospital" });
            Assert.Equal(HttpStatusCode.OK, approved.StatusCode);
            await Waits.UntilAsync(() => Task.FromResult(server.Output.Contains("destruction not finished", StringComparison.Ordinal)), TimeSpan.FromMinutes(1),
                "the destruction stopped half done", () => server.Output[^Math.Min(4000, server.Output.Length)..]);
            server.Kill();
        }
        await using (var index = await ArchiveServer.OpenIndexAsync(data))
        {
            var store = index.Lifecycle;
            Assert.Equal(AkkaVna.Core.Lifecycle.TombstoneState.Destroying, (await store.GetTombstoneAsync(doomedUid, CancellationToken.None))!.State);
            Assert.Null(await index.GetStudyAsync(doomedUid, CancellationToken.None)); // half done: its rows are gone already
        }
        Assert.Equal(0, await ArchiveServer.OpenJournal(data).CountRowsAsync(StudyJournal.PersistenceIdFor(doomedUid), CancellationToken.None));
        // The folder goes and the blob is back where it was: after the restart the destruction completes by itself.
        Directory.Delete(blobPath, recursive: true);
        File.Move(stuck, blobPath);
        using (var server = new ArchiveServer(data, config))
        {
            using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{server.HttpPort}/"), Timeout = TimeSpan.FromSeconds(60) };
            await Waits.UntilAsync(() => DestroyedAsync(data, doomedUid), TimeSpan.FromMinutes(1), "the destruction finished after the restart", () => server.Output[^Math.Min(4000, server.Output.Length)..]);
            Assert.False(File.Exists(blobPath));
            // Nothing else was touched: the CT study whole, dataset-equal to what was sent, and the archive clean.
            Assert.Equal(kept.Count, await ArchiveServer.CountBlobsAsync(data));
            await using (var index = await ArchiveServer.OpenIndexAsync(data))
            {
                var rows = await ArchiveServer.ListAsync(index);
                Assert.Equal(kept.Select(k => k.SopInstanceUid).Order(), rows.Select(r => r.SopInstanceUid).Order());
                foreach (var row in rows)
                    Storescu.AssertSameDataSet(kept.First(k => k.SopInstanceUid == row.SopInstanceUid).Path, await ArchiveServer.BlobFileAsync(data, row.Blob, dir.File("scratch")));
                Assert.Empty(await index.Lifecycle.ListPendingAsync(CancellationToken.None));
            }
            Assert.Single(QueryRetrieveTools.Find(null, server.DicomPort, false, ["QueryRetrieveLevel=STUDY", "StudyInstanceUID"]).DataSets);
            var verify = ArchiveServer.Verify(data);
            Assert.True(verify.ExitCode == 0, verify.StdOut + verify.StdErr);
            var audit = await http.GetFromJsonAsync<JsonElement>("admin/audit");
            Assert.Contains(audit.EnumerateArray(), a => a.GetProperty("action").GetString() == "study-destroyed" && a.GetProperty("actor").GetString() == "dpo@hospital");
            output.WriteLine($"kept study {keptUid} whole; {doomedUid} destroyed after the restart");
            Assert.Equal(0, server.Stop());
        }
    }

    [Fact]
    public async Task The_command_line_places_and_releases_holds_approves_and_the_plan_agrees_with_what_then_happens()
    {
        using var dir = new TempDir();
        string data = ArchiveServer.NewDataFolder(dir, ArchiveServer.Sqlite);
        // Approval required, and a destroyed study sent again is archived as new.
        string config = Config.Replace("require-approval = off", "require-approval = on", StringComparison.Ordinal)
            + "\nakka-vna.lifecycle.destruction.resend = accept-as-new\n";
        using var server = new ArchiveServer(data, config);
        string url = $"http://127.0.0.1:{server.HttpPort}";
        var first = Generate(dir, "mg1", "MG", 2, 21);
        var second = Generate(dir, "mg2", "MG", 2, 22);
        var ct = Generate(dir, "ct", "CT", 2, 23);
        string Patient(StoreFile f)
        {
            using var file = DicomFile.Open(f.Path);
            return file.Dataset.GetString(AkkaVna.Dicom.DicomTags.PatientID)!;
        }
        Tool.Result Cli(params string[] args)
        {
            var r = AkkaVnaCli.Run(ToolTimeout, args);
            output.WriteLine($"akka-vna {string.Join(' ', args)} -> {r.ExitCode}\n{r.StdOut}{r.StdErr}");
            return r;
        }
        // A patient hold, from the command line, on the second study's patient.
        var add = Cli("hold", "add", "--http", url, "--scope", "patient", "--value", Patient(second[0]), "--reason", "case 42", "--by", "dpo", "--json");
        Assert.Equal(0, add.ExitCode);
        string holdId = JsonDocument.Parse(add.StdOut).RootElement.GetProperty("id").GetString()!;
        var badScope = Cli("hold", "add", "--http", url, "--scope", "galaxy", "--value", "x", "--reason", "r", "--by", "b");
        Assert.NotEqual(0, badScope.ExitCode); // refused, with what is accepted
        Assert.Contains("galaxy", badScope.StdErr + badScope.StdOut, StringComparison.Ordinal);
        var all = first.Concat(second).Concat(ct).ToList();
        foreach (var r in Storescu.Send(Storescu.WriteConfig(dir, all), server.DicomPort, all, 1, ToolTimeout)) Assert.True(r.ExitCode == 0, r.StdErr);

        // The plan an hour ahead, from the command line.
        var plan = Cli("lifecycle", "plan", "--http", url, "--at", DateTimeOffset.UtcNow.AddHours(1).ToString("O"), "--json");
        Assert.Equal(0, plan.ExitCode);
        var planned = JsonDocument.Parse(plan.StdOut).RootElement.GetProperty("studies").EnumerateArray()
            .ToDictionary(e => e.GetProperty("studyInstanceUid").GetString()!, e => e.GetProperty("action").GetString());
        Assert.Equal(new Dictionary<string, string?> { [StudyUid(first[0])] = "destroy", [StudyUid(second[0])] = "held" }, planned);
        Assert.Contains(StudyUid(first[0]), Cli("lifecycle", "plan", "--http", url, "--at", DateTimeOffset.UtcNow.AddHours(1).ToString("O")).StdOut, StringComparison.Ordinal);

        // Due, it waits for approval; the held one is not even queued.
        await Waits.UntilAsync(() => Task.FromResult(Cli("lifecycle", "queue", "--http", url).StdOut.Contains(StudyUid(first[0]), StringComparison.Ordinal)),
            TimeSpan.FromMinutes(1), "the first MG study queued", () => server.Output[^Math.Min(4000, server.Output.Length)..]);
        Assert.DoesNotContain(StudyUid(second[0]), Cli("lifecycle", "queue", "--http", url).StdOut, StringComparison.Ordinal);
        Assert.Equal(1, Cli("lifecycle", "approve", "--http", url, "--by", "dpo", StudyUid(first[0]), "1.2.3.4.404").ExitCode); // one not queued: exit 1, the other approved
        string TombstonesJson() => Cli("lifecycle", "tombstones", "--http", url, "--json").StdOut;
        await Waits.UntilAsync(() => Task.FromResult(TombstonesJson().Contains(StudyUid(first[0]), StringComparison.Ordinal)), TimeSpan.FromMinutes(1), "the first destroyed");

        // The hold, listed and released from the command line; the second is then queued, approved and destroyed.
        Assert.Contains(holdId, Cli("hold", "list", "--http", url).StdOut, StringComparison.Ordinal);
        Assert.Equal(0, Cli("hold", "release", "--http", url, holdId, "--by", "judge").ExitCode);
        Assert.DoesNotContain(holdId, Cli("hold", "list", "--http", url).StdOut, StringComparison.Ordinal);
        Assert.Contains(holdId, Cli("hold", "list", "--http", url, "--all").StdOut, StringComparison.Ordinal);
        await Waits.UntilAsync(() => Task.FromResult(Cli("lifecycle", "queue", "--http", url).StdOut.Contains(StudyUid(second[0]), StringComparison.Ordinal)),
            TimeSpan.FromMinutes(1), "the second queued after the release", () => server.Output[^Math.Min(4000, server.Output.Length)..]);
        Assert.Equal(0, Cli("lifecycle", "approve", "--http", url, "--by", "dpo", StudyUid(second[0])).ExitCode);
        await Waits.UntilAsync(() => Task.FromResult(TombstonesJson().Contains(StudyUid(second[0]), StringComparison.Ordinal)), TimeSpan.FromMinutes(1), "the second destroyed");

        // What happened is what the plan said, study by study: the planned ones destroyed, the CT study here.
        var destroyed = JsonDocument.Parse(TombstonesJson()).RootElement.EnumerateArray().Select(t => t.GetProperty("studyInstanceUid").GetString()!).Order().ToList();
        Assert.Equal(planned.Keys.Order().ToList(), destroyed);
        Assert.Equal(ct.Count, await ArchiveServer.CountBlobsAsync(data));
        var audit = Cli("lifecycle", "audit", "--http", url);
        foreach (var action in new[] { "hold-placed", "hold-released", "destruction-approved", "study-destroyed" })
            Assert.Contains(action, audit.StdOut, StringComparison.Ordinal);

        // resend = accept-as-new: the first study sent again is archived as a new study; its tombstone goes.
        var again = Storescu.Send(Storescu.WriteConfig(dir, first.Take(1)), server.DicomPort, first.Take(1).ToList(), 1, ToolTimeout);
        Assert.Equal("Success", Storescu.Responses(again[0]).GetValueOrDefault(first[0].Path));
        Assert.DoesNotContain(StudyUid(first[0]), TombstonesJson(), StringComparison.Ordinal);
        Assert.Single(QueryRetrieveTools.Find(null, server.DicomPort, false, ["QueryRetrieveLevel=STUDY", $"StudyInstanceUID={StudyUid(first[0])}"]).DataSets);
        Assert.Contains("destroyed-study-received-again", Cli("lifecycle", "audit", "--http", url).StdOut, StringComparison.Ordinal);
        Assert.Equal(0, server.Stop());
    }

    [Fact]
    public async Task A_rule_change_replans_the_studies_already_archived_at_the_next_start()
    {
        using var dir = new TempDir();
        string data = ArchiveServer.NewDataFolder(dir, ArchiveServer.Sqlite);
        var mg = Generate(dir, "mg", "MG", 2, 31);
        string uid = StudyUid(mg[0]);
        // Kept ten years: planned, nothing due.
        using (var server = new ArchiveServer(data, Config.Replace("keep = 3s", "keep = 10y", StringComparison.Ordinal)))
        {
            foreach (var r in Storescu.Send(Storescu.WriteConfig(dir, mg), server.DicomPort, mg, 1, ToolTimeout)) Assert.True(r.ExitCode == 0, r.StdErr);
            using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{server.HttpPort}/") };
            await Waits.UntilAsync(async () => (await http.GetFromJsonAsync<JsonElement>($"admin/studies/{uid}")).GetProperty("lifecycle").GetProperty("destroyAt").ValueKind
                == JsonValueKind.String, TimeSpan.FromMinutes(1), "the study planned");
            Assert.Equal(0, server.Stop());
        }
        // The rule becomes three seconds: the next start re-plans every study, and this one is destroyed.
        using (var server = new ArchiveServer(data, Config))
        {
            await Waits.UntilAsync(() => Task.FromResult(server.Output.Contains("re-planned", StringComparison.Ordinal)), TimeSpan.FromMinutes(1), "the re-plan at start");
            await Waits.UntilAsync(() => DestroyedAsync(data, uid), TimeSpan.FromMinutes(1), "the study destroyed under the new rule", () => server.Output[^Math.Min(4000, server.Output.Length)..]);
            Assert.Equal(0, await ArchiveServer.CountBlobsAsync(data));
            Assert.Equal(0, server.Stop());
        }
        // Started again with the same rules: nothing to re-plan.
        using (var server = new ArchiveServer(data, Config))
        {
            Assert.DoesNotContain("re-planned", server.Output, StringComparison.Ordinal);
            Assert.Equal(0, server.Stop());
        }
    }
}
