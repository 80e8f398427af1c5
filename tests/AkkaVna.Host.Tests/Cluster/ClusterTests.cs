using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Net.Sockets;
using System.Text.Json;
using AkkaVna.Core.Ports;
using AkkaVna.Dicom;
using AkkaVna.Dicom.IO;
using AkkaVna.Host.Tests.Serve;
using AkkaVna.Testing;
using Microsoft.AspNetCore.WebUtilities;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;
using Xunit.Abstractions;

namespace AkkaVna.Host.Tests.Cluster;

/// <summary>
/// Several <c>akka-vna serve</c> processes as one cluster on one PostgreSQL (index and journal) and one blob folder:
/// nodes that die, join and leave while <c>akka-vna replay</c> sends, and nothing acknowledged is lost or duplicated.
/// </summary>
[Collection(ClusterCollection.Name)]
public sealed class ClusterTests(ITestOutputHelper output)
{
    private static readonly TimeSpan ToolTimeout = TimeSpan.FromMinutes(5);

    /// <summary>A cluster's shared stores and its nodes (each a process with a node-local data folder).</summary>
    private sealed class TestCluster(TempDir dir, string config) : IDisposable
    {
        public string Postgres { get; } = PostgresServer.Shared.CreateDatabase();
        public string Blobs { get; } = Directory.CreateDirectory(dir.File("shared-blobs")).FullName;
        public Dictionary<string, (ArchiveServer Server, int ClusterPort)> Nodes { get; } = [];

        public ArchiveServer Start(string name, params string[] seeds)
        {
            int clusterPort = Ports.Free();
            var args = new List<string> { "--index", "postgresql", "--postgres", Postgres, "--blobs", Blobs, "--node-name", name,
                "--cluster-port", clusterPort.ToString(CultureInfo.InvariantCulture) };
            foreach (var seed in seeds) args.AddRange(["--seed-node", $"127.0.0.1:{Nodes[seed].ClusterPort}"]);
            if (seeds.Length == 0) args.AddRange(["--seed-node", $"127.0.0.1:{clusterPort}"]); // the first node forms the cluster
            var server = new ArchiveServer(dir.File("node-" + name), config, extraArgs: args);
            Nodes[name] = (server, clusterPort);
            return server;
        }

        public string AddressOf(string name) => $"akka.tcp://akka-vna@127.0.0.1:{Nodes[name].ClusterPort}";

        /// <summary>The shared stores as a node opens them.</summary>
        public ArchiveOptions Options => ArchiveOptions.Load(null, $"""
            akka-vna.data = {ArchiveOptions.Quote(dir.File("reader"))}
            akka-vna.index.provider = postgresql
            akka-vna.postgresql.connection-string = {ArchiveOptions.Quote(Postgres)}
            akka-vna.blobs.path = {ArchiveOptions.Quote(Blobs)}
            akka-vna.node-name = test-reader
            """);

        public async Task<IArchiveIndex> OpenIndexAsync()
        {
            var index = Adapters.CreateIndex(Options, NullLoggerFactory.Instance);
            await index.InitializeAsync(CancellationToken.None);
            return index;
        }

        public Tool.Result Verify() => AkkaVnaCli.Run(TimeSpan.FromMinutes(3), "verify", "--data", dir.File("reader"), "--index", "postgresql", "--postgres", Postgres, "--blobs", Blobs);

        public void Dispose()
        {
            foreach (var (server, _) in Nodes.Values) server.Dispose();
        }
    }

    private static HttpClient Http(ArchiveServer node) => new() { BaseAddress = new Uri($"http://127.0.0.1:{node.HttpPort}/"), Timeout = TimeSpan.FromSeconds(60) };

    private static async Task<JsonElement> ClusterAsync(ArchiveServer node)
    {
        using var http = Http(node);
        return await http.GetFromJsonAsync<JsonElement>("admin/cluster");
    }

    private static async Task WaitUntilAsync(Func<Task<bool>> condition, TimeSpan timeout, string what)
    {
        var until = DateTime.UtcNow + timeout;
        while (true)
        {
            try
            {
                if (await condition()) return;
            }
            catch (HttpRequestException)
            {
                // a node between states: ask again
            }
            Assert.True(DateTime.UtcNow < until, $"not within {timeout}: {what}");
            await Task.Delay(500);
        }
    }

    private static async Task<int> UpMembersAsync(ArchiveServer node) =>
        (await ClusterAsync(node)).GetProperty("members").EnumerateArray().Count(m => m.GetProperty("status").GetString() == "Up" && m.GetProperty("reachable").GetBoolean());

    private static async Task<JsonElement> StudyAsync(ArchiveServer node, string study)
    {
        using var http = Http(node);
        return await http.GetFromJsonAsync<JsonElement>($"admin/studies/{study}");
    }

    /// <summary>
    /// For a failed verification: what every node logged, and what each replay answered, about the instances it names
    /// (so that a rare failure under chaos says what happened to them).
    /// </summary>
    private static string Trail(string verifyOutput, TestCluster cluster, params string[] outcomeFiles)
    {
        var uids = System.Text.RegularExpressions.Regex.Matches(verifyOutput, @"^\s+([0-9.]+) \(study", System.Text.RegularExpressions.RegexOptions.Multiline)
            .Select(m => m.Groups[1].Value).Distinct().Take(5).ToList();
        var b = new System.Text.StringBuilder();
        foreach (var uid in uids)
        {
            b.AppendLine().AppendLine($"--- {uid}");
            foreach (var file in outcomeFiles.Where(File.Exists))
                foreach (var line in File.ReadLines(file).Where(l => l.Contains(uid, StringComparison.Ordinal)))
                    b.AppendLine($"{Path.GetFileName(file)}: {line}");
            foreach (var (name, node) in cluster.Nodes)
                foreach (var line in node.Server.Output.Split('\n').Where(l => l.Contains(uid, StringComparison.Ordinal)))
                    b.AppendLine($"{name}: {line}");
        }
        return b.ToString();
    }

    /// <summary>SOP Instance UID → whether it was acknowledged (Success), from replay's outcome file.</summary>
    private static Dictionary<string, bool> Outcomes(string csv) =>
        File.ReadLines(csv).Skip(1).Select(l => l.Split(',')).GroupBy(f => f[1]).ToDictionary(g => g.Key, g => g.Any(f => f[5] == "yes"), StringComparer.Ordinal);

    [Fact]
    public async Task Nodes_killed_started_and_stopped_during_replay_lose_nothing_acknowledged_duplicate_nothing_and_every_study_stabilizes_once()
    {
        using var dir = new TempDir();
        // A quiet period longer than any pause a node's death causes (failure detection, downing, hand-over, commit timeouts),
        // so that a study becomes stable once; sweeps often, so that a dead node's staged blobs are settled during the test.
        const string Config = """
            akka-vna.studies.quiet-period = 45s
            akka-vna.studies.stability-poll = 1s
            akka-vna.ingest.sweep-interval = 5s
            akka-vna.ingest.staged-grace = 20s
            akka-vna.cluster.split-brain-resolver.stable-after = 7s
            akka-vna.dicom.shutdown-grace = 20s
            """;
        using var cluster = new TestCluster(dir, Config);
        var n1 = cluster.Start("n1");
        var n2 = cluster.Start("n2", "n1");
        var n3 = cluster.Start("n3", "n1");
        await WaitUntilAsync(async () => await UpMembersAsync(n1) == 3, TimeSpan.FromSeconds(60), "three members up");

        // 8 studies x 150 instances over 4 gateways dealt over the three nodes, at a rate that lets the cluster change under it.
        string work = dir.File("work"), outcomesCsv = dir.File("outcomes.csv");
        string targets = string.Join(",", new[] { n1, n2, n3 }.Select(n => $"127.0.0.1:{n.DicomPort}"));
        var replay = Task.Run(() => AkkaVnaCli.Run(ToolTimeout, "replay", targets, "generate:8,150,CT,64x64", "-n", "4", "--by-study", "-aec", "AKKAVNA", "--rate", "25",
            "--timeout", "60", "--work", work, "--outcomes", outcomesCsv));

        // Once every study has begun (each gateway sends its two studies one after the other), find where each study's actor
        // lives; kill (SIGKILL) the node holding the most studies still being received.
        await using (var index = await cluster.OpenIndexAsync())
            await WaitUntilAsync(async () => (await index.CountAsync(CancellationToken.None)).Studies == 8, TimeSpan.FromMinutes(2), "every study has begun");
        var received = new Dictionary<string, int>(StringComparer.Ordinal);
        await using (var index = await cluster.OpenIndexAsync())
            await foreach (var s in index.ScanStudiesAsync(CancellationToken.None)) received[s.StudyInstanceUid] = s.InstanceCount;
        var studies = received.Keys.ToList();
        var hostOf = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var study in studies) hostOf[study] = (await StudyAsync(n1, study)).GetProperty("node").GetString()!;
        var victim = new[] { "n1", "n2", "n3" }.MaxBy(n => hostOf.Count(kv => kv.Value == cluster.AddressOf(n) && received[kv.Key] < 150))!;
        var orphaned = hostOf.Where(kv => kv.Value == cluster.AddressOf(victim)).Select(kv => kv.Key).ToList();
        output.WriteLine($"killing {victim}, which hosts {orphaned.Count} of the 8 studies: "
            + string.Join(", ", orphaned.Select(o => $"{o} ({received[o]} instances in)")));
        Assert.Contains(orphaned, o => received[o] < 150);
        cluster.Nodes[victim].Server.Kill();
        var alive = new[] { "n1", "n2", "n3" }.Where(n => n != victim).ToList();

        // A fourth node joins through the survivors; then the oldest node left leaves gracefully (SIGTERM): it hosts the
        // cluster singletons (the stability watch, the shard coordinator), which must move to a survivor.
        var n4 = cluster.Start("n4", [.. alive]);
        await WaitUntilAsync(async () => await UpMembersAsync(n4) == 3, TimeSpan.FromSeconds(90), "the dead node downed and the new one up");
        string leaver = alive[0];
        cluster.Nodes[leaver].Server.Terminate();
        Assert.Equal(0, cluster.Nodes[leaver].Server.WaitForExit(TimeSpan.FromMinutes(2)));
        var survivors = new[] { cluster.Nodes[alive[1]].Server, n4 };
        var sent = await replay;
        output.WriteLine(sent.StdOut[^Math.Min(sent.StdOut.Length, 1500)..]);

        // Every acknowledged instance is indexed, each SOP Instance UID exactly once.
        var outcomes = Outcomes(outcomesCsv);
        var acknowledged = outcomes.Where(kv => kv.Value).Select(kv => kv.Key).ToHashSet(StringComparer.Ordinal);
        output.WriteLine($"{acknowledged.Count} of {outcomes.Count} acknowledged during the chaos");
        Assert.Equal(1200, outcomes.Count);
        Assert.InRange(acknowledged.Count, 300, 1200);
        await using (var index = await cluster.OpenIndexAsync())
        {
            var rows = await ArchiveServer.ListAsync(index);
            Assert.Equal(rows.Count, rows.Select(r => r.SopInstanceUid).Distinct().Count());
            var indexed = rows.Select(r => r.SopInstanceUid).ToHashSet(StringComparer.Ordinal);
            var lost = acknowledged.Where(a => !indexed.Contains(a)).ToList();
            Assert.True(lost.Count == 0, $"{lost.Count} acknowledged instance(s) not indexed, e.g. {lost.FirstOrDefault()}");
        }

        // A full resend through the survivors: every instance is a success, and nothing is duplicated.
        var resend = AkkaVnaCli.Run(ToolTimeout, "replay", string.Join(",", survivors.Select(n => $"127.0.0.1:{n.DicomPort}")), work, "-n", "4", "-aec", "AKKAVNA",
            "--timeout", "60", "--outcomes", dir.File("resend.csv"));
        Assert.True(resend.ExitCode == 0, resend.StdOut + resend.StdErr);
        var files = Directory.GetFiles(work, "*", SearchOption.AllDirectories).Select(StoreFile.Read).ToDictionary(f => f.SopInstanceUid, StringComparer.Ordinal);
        await using (var index = await cluster.OpenIndexAsync())
        {
            var rows = await ArchiveServer.ListAsync(index);
            Assert.Equal(1200, rows.Count);
            Assert.Equal(1200, rows.Select(r => r.SopInstanceUid).Distinct().Count());
            Assert.Equal(files.Keys.Order(StringComparer.Ordinal), rows.Select(r => r.SopInstanceUid).Order(StringComparer.Ordinal));
        }

        // Every study becomes stable — the studies whose node was killed on a surviving node — and exactly once.
        foreach (var study in studies)
            await WaitUntilAsync(async () => (await StudyAsync(survivors[0], study)).GetProperty("stable").GetBoolean(), TimeSpan.FromMinutes(3), $"study {study} stable");
        foreach (var study in orphaned)
        {
            string host = (await StudyAsync(survivors[1], study)).GetProperty("node").GetString()!;
            Assert.NotEqual(cluster.AddressOf(victim), host);
        }
        await using (var c = new NpgsqlConnection(cluster.Postgres))
        {
            await c.OpenAsync();
            await using var cmd = new NpgsqlCommand("SELECT persistence_id, COUNT(*) FROM akkavna.journal WHERE manifest = 'SS' GROUP BY persistence_id", c);
            await using var r = await cmd.ExecuteReaderAsync();
            var stabilized = new Dictionary<string, long>(StringComparer.Ordinal);
            while (await r.ReadAsync()) stabilized[r.GetString(0)] = r.GetInt64(1);
            Assert.Equal(8, stabilized.Count);
            Assert.All(stabilized, kv => Assert.True(kv.Value == 1, $"{kv.Key} stabilized {kv.Value} times"));
        }

        // verify checks the shared index against the shared blob folder: clean (the dead node's staged blobs settled).
        await WaitUntilAsync(async () => await Adapters.CreateBlobStore(cluster.Options).CountStagedAsync(CancellationToken.None) == 0, TimeSpan.FromMinutes(1), "no blob left staged");
        var verify = cluster.Verify();
        Assert.True(verify.ExitCode == 0, verify.StdOut + verify.StdErr + Trail(verify.StdOut, cluster, outcomesCsv, dir.File("resend.csv")));

        // C-FIND through each surviving node gives the same answer: 8 studies of 150 instances.
        var answers = survivors.Select(n => QueryRetrieveTools.Find(null, n.DicomPort, false, ["QueryRetrieveLevel=STUDY", "StudyInstanceUID", "NumberOfStudyRelatedInstances"]))
            .Select(o => string.Join("\n", o.DataSets.Select(d => $"{d.GetString(DicomTags.StudyInstanceUID)} {d.GetString(DicomTags.NumberOfStudyRelatedInstances)}").Order(StringComparer.Ordinal)))
            .ToList();
        Assert.Equal(answers[0], answers[1]);
        Assert.Equal(8, answers[0].Split('\n').Length);
        Assert.All(answers[0].Split('\n'), line => Assert.EndsWith(" 150", line));

        // Every instance comes back dataset-equal: by C-GET through one survivor, by WADO-RS through the other.
        foreach (var study in studies)
        {
            string got = dir.File("get-" + study);
            var get = QueryRetrieveTools.Get(null, survivors[0].DicomPort, got, ["QueryRetrieveLevel=STUDY", $"StudyInstanceUID={study}"]);
            Assert.True(get.FinalStatus == "Success", get.Output);
            var retrieved = QueryRetrieveTools.Received(got);
            Assert.Equal(150, retrieved.Count);
            foreach (var (sop, path) in retrieved) Storescu.AssertSameDataSet(files[sop].Path, path);
        }
        using var http = Http(survivors[1]);
        int wado = 0;
        foreach (var study in studies) wado += await QueryRetrieveTools.WadoStudyAsync(http, study, sop => files[sop].Path, dir.File("wado"));
        Assert.Equal(1200, wado);

        // The operator's view: both survivors up and reachable, the dead and the departed gone.
        var status = AkkaVnaCli.Run(TimeSpan.FromMinutes(1), "cluster", "status", "--http", $"http://127.0.0.1:{survivors[0].HttpPort}");
        Assert.True(status.ExitCode == 0, status.StdOut + status.StdErr);
        Assert.Contains("2 member(s), 0 unreachable", status.StdOut, StringComparison.Ordinal);
        Assert.Contains(cluster.AddressOf("n4"), status.StdOut, StringComparison.Ordinal);
        Assert.DoesNotContain(cluster.AddressOf(victim), status.StdOut, StringComparison.Ordinal);
        foreach (var node in survivors) Assert.Equal(0, node.Stop());
    }
}

/// <summary>
/// The cluster tests run four archive processes and a load generator on this machine's two cores: alone, not beside the
/// other process tests (their failure detectors and timeouts are set for a loaded machine, not for an overloaded one).
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class ClusterCollection
{
    public const string Name = "cluster (alone)";
}
