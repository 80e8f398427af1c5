using AkkaVna.Dicom.IO;
using System.Net.Http.Json;
using System.Text.Json;
using AkkaVna.Dicom.Network.Scu;
using AkkaVna.Testing;
using Xunit.Abstractions;

namespace AkkaVna.Host.Tests.Serve;

/// <summary>A node killed with SIGKILL mid-ingest: what it acknowledged survives, and the rest of it recovers.</summary>
public sealed class DurabilityTests(ITestOutputHelper output)
{
    private static readonly TimeSpan ToolTimeout = TimeSpan.FromMinutes(4);
    private const string FastStability = "akka-vna.studies.quiet-period = 3s\nakka-vna.studies.stability-poll = 300ms\n";

    private static async Task<JsonElement> StudyStateAsync(ArchiveServer server, string study)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(60) };
        return await http.GetFromJsonAsync<JsonElement>($"http://127.0.0.1:{server.HttpPort}/admin/studies/{study}");
    }

    private static Task WaitUntilAsync(Func<Task<bool>> condition, TimeSpan timeout, string what, Func<string>? detail = null) =>
        Waits.UntilAsync(condition, timeout, what, detail);

    private static async Task<bool> StableInIndexAsync(string data, string study)
    {
        await using var index = await ArchiveServer.OpenIndexAsync(data);
        return (await index.GetStudyAsync(study, CancellationToken.None))?.Stable == true;
    }

    [Theory]
    [InlineData(ArchiveServer.Sqlite)]
    [InlineData(ArchiveServer.PostgreSql)]
    public async Task A_node_killed_during_ingest_loses_nothing_it_acknowledged_and_its_stable_timers_survive(string backend)
    {
        using var dir = new TempDir();
        string data = ArchiveServer.NewDataFolder(dir, backend);
        var early = Instances.WriteStudy(Path.Combine(dir.Path, "early"), 5, 4096, seed: 100).Select(StoreFile.Read).ToList();
        string earlyStudy = IngestTests.StudyOf(early[0].Path);
        var main = Enumerable.Range(1, 6).Select(s => Instances.WriteStudy(Path.Combine(dir.Path, "main" + s), 300, 64 * 1024, seed: s).Select(StoreFile.Read).ToList()).ToList();
        var all = main.SelectMany(l => l).Concat(early).ToList();
        string config = Storescu.WriteConfig(dir, all);

        List<Tool.Result> interrupted;
        using (var server = new ArchiveServer(data, FastStability))
        {
            // A study that is stable before the crash.
            Assert.All(Storescu.Responses(Storescu.Send(config, server.DicomPort, early, 1, ToolTimeout).Single()).Values, s => Assert.Equal("Success", s));
            await WaitUntilAsync(() => StableInIndexAsync(data, earlyStudy), TimeSpan.FromSeconds(30), "the early study becomes stable");

            // Six studies on six associations; the node is killed once 200 of their instances are in, every study among them
            // (a storescu that starts late on a loaded machine would otherwise leave a study with nothing to recover).
            var sending = main.Select(list => Task.Run(() => Storescu.Send(config, server.DicomPort, list, 1, ToolTimeout).Single())).ToList();
            await using (var index = await ArchiveServer.OpenIndexAsync(data))
            {
                var until = DateTime.UtcNow + TimeSpan.FromMinutes(2);
                while (DateTime.UtcNow < until)
                {
                    if ((await index.CountAsync(CancellationToken.None)).Instances >= 200 + early.Count)
                    {
                        int started = 0;
                        foreach (var list in main)
                            if (await index.GetStudyAsync(IngestTests.StudyOf(list[0].Path), CancellationToken.None) is { InstanceCount: > 0 }) started++;
                        if (started == main.Count) break;
                    }
                    await Task.Delay(10);
                }
            }
            server.Kill();
            interrupted = [.. await Task.WhenAll(sending)];
        }
        var acknowledged = interrupted.SelectMany(r => Storescu.Responses(r).Where(kv => kv.Value == "Success").Select(kv => kv.Key)).ToHashSet(StringComparer.Ordinal);
        output.WriteLine($"{acknowledged.Count} of {main.Sum(l => l.Count)} acknowledged before the kill");
        Assert.InRange(acknowledged.Count, 150, main.Sum(l => l.Count) - 1);

        using (var server = new ArchiveServer(data, FastStability))
        {
            // Everything acknowledged is there, intact; nothing is half-indexed; verify is clean.
            await using (var index = await ArchiveServer.OpenIndexAsync(data))
            {
                var rows = await ArchiveServer.ListAsync(index);
                await IngestTests.AssertArchivedAsync(data, all.Where(f => acknowledged.Contains(f.Path)).Concat(early), rows);
                output.WriteLine($"{rows.Count} indexed after the restart (some committed but not yet acknowledged when the node died)");
            }
            var verify = ArchiveServer.Verify(data);
            Assert.True(verify.ExitCode == 0, verify.StdOut);

            // The early study recovered as stable from its journal: 5 instances and one StudyStabilized event.
            var state = await StudyStateAsync(server, earlyStudy);
            Assert.True(state.GetProperty("stable").GetBoolean(), state.ToString());
            Assert.Equal(6, state.GetProperty("journalSequenceNr").GetInt64());

            // The interrupted studies' stable timers fire after the restart, with nothing new sent.
            foreach (var list in main)
            {
                string study = IngestTests.StudyOf(list[0].Path);
                await WaitUntilAsync(() => StableInIndexAsync(data, study), TimeSpan.FromSeconds(120), $"study {study} becomes stable after the restart",
                    () => server.Output);
                Assert.True((await StudyStateAsync(server, study)).GetProperty("stable").GetBoolean());
            }

            // Sending everything again creates no duplicate.
            foreach (var r in Storescu.Send(config, server.DicomPort, all, 4, ToolTimeout))
                Assert.All(Storescu.Responses(r), kv => Assert.True(kv.Value == "Success", $"{kv.Key}: {kv.Value}"));
            await using (var index = await ArchiveServer.OpenIndexAsync(data))
            {
                var rows = await ArchiveServer.ListAsync(index);
                Assert.Equal(all.Count, rows.Count);
                await IngestTests.AssertArchivedAsync(data, all, rows);
            }
            Assert.Equal(0, ArchiveServer.Verify(data).ExitCode);

            // A late instance reopens the stable early study, which becomes stable again after its quiet period.
            var late = Instances.WriteStudy(Path.Combine(dir.Path, "late"), 1, 4096, seed: 100).Select(StoreFile.Read).ToList();
            var sameStudy = RewriteStudy(dir, late[0].Path, earlyStudy);
            Assert.Equal("Success", Storescu.Responses(Storescu.Send(config, server.DicomPort, [sameStudy], 1, ToolTimeout).Single()).Single().Value);
            Assert.False((await StudyStateAsync(server, earlyStudy)).GetProperty("stable").GetBoolean());
            await WaitUntilAsync(async () => (await StudyStateAsync(server, earlyStudy)).GetProperty("stable").GetBoolean(), TimeSpan.FromSeconds(30),
                "the reopened study becomes stable again");
            Assert.Equal(0, server.Stop());
        }
    }

    [Fact]
    public async Task A_node_brings_its_index_up_to_the_journal_before_it_takes_associations()
    {
        using var dir = new TempDir();
        string data = Path.Combine(dir.Path, "data");
        var first = Instances.WriteStudy(Path.Combine(dir.Path, "first"), 20, 4096, seed: 31).Select(StoreFile.Read).ToList();
        var second = Instances.WriteStudy(Path.Combine(dir.Path, "second"), 12, 4096, seed: 32).Select(StoreFile.Read).ToList();
        var all = first.Concat(second).ToList();
        string secondStudy = IngestTests.StudyOf(second[0].Path);
        string config = Storescu.WriteConfig(dir, all);
        DateTimeOffset beforeSecond;
        using (var server = new ArchiveServer(data))
        {
            Assert.All(Storescu.Responses(Storescu.Send(config, server.DicomPort, first, 1, ToolTimeout).Single()).Values, s => Assert.Equal("Success", s));
            beforeSecond = DateTimeOffset.UtcNow;
            Assert.All(Storescu.Responses(Storescu.Send(config, server.DicomPort, second, 1, ToolTimeout).Single()).Values, s => Assert.Equal("Success", s));
            Assert.Equal(0, server.Stop());
        }

        // What a power loss can do to the index (it commits without waiting for the disk): lose the commits since its last
        // durable checkpoint. Here: every row of the second study, with the checkpoint from before it was sent.
        using (var c = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={ArchiveServer.IndexFile(data)};Pooling=False"))
        {
            c.Open();
            using var cmd = c.CreateCommand();
            cmd.CommandText = """
                DELETE FROM patient_studies WHERE study_uid = $s; DELETE FROM date_studies WHERE study_uid = $s; DELETE FROM series WHERE study_uid = $s;
                DELETE FROM instances WHERE study_uid = $s; DELETE FROM instance_locations WHERE study_uid = $s; DELETE FROM stability_timers WHERE study_uid = $s;
                DELETE FROM studies WHERE study_uid = $s;
                UPDATE node_state SET value = $t WHERE key LIKE 'checkpoint:%';
                """;
            cmd.Parameters.AddWithValue("$s", secondStudy);
            cmd.Parameters.AddWithValue("$t", beforeSecond.UtcTicks);
            cmd.ExecuteNonQuery();
        }
        await using (var index = await ArchiveServer.OpenIndexAsync(data)) Assert.Equal(first.Count, (await ArchiveServer.ListAsync(index)).Count);

        // Restarted, the node re-projects the study from the journal before it is ready: nothing is sent again.
        using (var server = new ArchiveServer(data))
        {
            await using (var index = await ArchiveServer.OpenIndexAsync(data))
            {
                var rows = await ArchiveServer.ListAsync(index);
                Assert.Equal(all.Count, rows.Count);
                await IngestTests.AssertArchivedAsync(data, all, rows);
                Assert.Equal(second.Count, (await index.GetStudyAsync(secondStudy, CancellationToken.None))!.InstanceCount);
            }
            Assert.Contains("index catch-up: 1 studies", server.Output, StringComparison.Ordinal);
            Assert.Equal(0, server.Stop());
        }
        Assert.Equal(0, ArchiveServer.Verify(data).ExitCode);

        // With no index at all (deleted by an operator), the node rebuilds it from the whole journal.
        foreach (var file in Directory.EnumerateFiles(data, "index.db*")) File.Delete(file);
        using (var server = new ArchiveServer(data))
        {
            await using (var index = await ArchiveServer.OpenIndexAsync(data))
            {
                var rows = await ArchiveServer.ListAsync(index);
                Assert.Equal(all.Count, rows.Count);
                await IngestTests.AssertArchivedAsync(data, all, rows);
            }
            Assert.Contains("index catch-up: 2 studies", server.Output, StringComparison.Ordinal);
            Assert.Equal(0, server.Stop());
        }
        Assert.Equal(0, ArchiveServer.Verify(data).ExitCode);

        // An index from before checkpoints (every commit synchronous) is taken as whole: no re-projection of the archive.
        using (var c = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={ArchiveServer.IndexFile(data)};Pooling=False"))
        {
            c.Open();
            using var cmd = c.CreateCommand();
            cmd.CommandText = "DELETE FROM node_state";
            cmd.ExecuteNonQuery();
        }
        using (var server = new ArchiveServer(data))
        {
            Assert.Contains("taken as up to date", server.Output, StringComparison.Ordinal);
            Assert.DoesNotContain("index catch-up", server.Output, StringComparison.Ordinal);
            Assert.Equal(0, server.Stop());
        }
        await using (var index = await ArchiveServer.OpenIndexAsync(data)) Assert.NotNull(await index.GetProjectionCheckpointAsync(CancellationToken.None));
    }

    private static StoreFile RewriteStudy(TempDir dir, string path, string study)
    {
        string copy = dir.File("late-" + Path.GetFileName(path));
        File.Copy(path, copy);
        var r = Tool.Run(Tool.Dcmtk("dcmodify"), ["-nb", "-m", $"(0020,000d)={study}", copy]);
        Assert.True(r.ExitCode == 0, r.StdErr);
        return StoreFile.Read(copy);
    }
}
