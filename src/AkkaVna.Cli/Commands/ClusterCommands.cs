using System.CommandLine;
using System.Globalization;
using System.Net.Http.Json;
using AkkaVna.Host;

namespace AkkaVna.Cli.Commands;

/// <summary><c>cluster status</c>: the cluster as one node sees it, from its <c>/admin/cluster</c> endpoint.</summary>
public static class ClusterCommands
{
    public static Command Create()
    {
        var http = new Option<string>("--http")
        {
            Description = "The HTTP address of any node, e.g. http://10.0.0.1:8080.",
            Required = true,
        };
        var json = new Option<bool>("--json") { Description = "Print the node's JSON answer as it is." };
        var timeout = new Option<int>("--timeout") { Description = "Seconds to wait for the node's answer.", DefaultValueFactory = _ => 30 };
        var status = new Command("status", "Show the cluster's members (address, status, roles, reachability), the leader, and the study shards and active "
            + "study actors on each member, as the node at --http sees them. Exits 1 when a member is unreachable or the node cannot be asked.")
        {
            http, json, timeout,
        };
        status.SetAction((r, ct) =>
        {
            string url = r.GetValue(http)!;
            if (!Uri.TryCreate(url, UriKind.Absolute, out var node) || node.Scheme is not ("http" or "https"))
            {
                Console.Error.WriteLine($"error: --http '{url}' is not an http or https URL, e.g. http://10.0.0.1:8080");
                return Task.FromResult(2);
            }
            return RunStatus(node, r.GetValue(json), TimeSpan.FromSeconds(Math.Clamp(r.GetValue(timeout), 1, 600)), ct);
        });
        return new Command("cluster", "Look at an AkkaVna cluster.") { status };
    }

    private static async Task<int> RunStatus(Uri node, bool json, TimeSpan timeout, CancellationToken ct)
    {
        // A cluster report is a few KB per member: a node answering more than 16 MB is not answering a report.
        using var client = new HttpClient { BaseAddress = node, Timeout = timeout, MaxResponseContentBufferSize = 16 * 1024 * 1024 };
        ClusterReport? report;
        string body;
        try
        {
            using var response = await client.GetAsync("/admin/cluster", ct);
            body = await response.Content.ReadAsStringAsync(ct);
            if (!response.IsSuccessStatusCode)
            {
                Console.Error.WriteLine($"error: {node} answered {(int)response.StatusCode}: {body.Trim()}");
                return 1;
            }
            report = System.Text.Json.JsonSerializer.Deserialize<ClusterReport>(body, ClusterReport.Json);
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException or System.Text.Json.JsonException)
        {
            Console.Error.WriteLine($"error: cannot ask {node} for the cluster: {e.Message}");
            return 1;
        }
        if (report is null)
        {
            Console.Error.WriteLine($"error: {node} answered no cluster report");
            return 1;
        }
        if (json)
        {
            Console.WriteLine(body);
            return report.Unreachable.Count == 0 ? 0 : 1;
        }
        Console.WriteLine($"cluster seen by {report.Self}; leader {report.Leader ?? "(none)"}");
        Console.WriteLine($"{report.Members.Count} member(s), {report.Unreachable.Count} unreachable; {report.TotalShards} shard(s), {report.TotalActiveStudies} active study actor(s)");
        var rows = report.Members.Select(m => new[]
        {
            m.Address + (m.Self ? " (this)" : "") + (m.Leader ? " (leader)" : ""), m.Status, m.Reachable ? "yes" : "NO",
            m.Roles.Count == 0 ? "-" : string.Join(",", m.Roles),
            m.Shards?.ToString(CultureInfo.InvariantCulture) ?? "?", m.ActiveStudies?.ToString(CultureInfo.InvariantCulture) ?? "?",
        }).ToList();
        string[] header = ["member", "status", "reachable", "roles", "shards", "studies"];
        var widths = header.Select((h, i) => rows.Select(r => r[i].Length).Append(h.Length).Max()).ToArray();
        Console.WriteLine(string.Join("  ", header.Select((h, i) => h.PadRight(widths[i]))));
        foreach (var row in rows) Console.WriteLine(string.Join("  ", row.Select((c, i) => c.PadRight(widths[i]))));
        if (report.ShardStatsError is { } error) Console.WriteLine($"note: {error}; shard counts are missing");
        return report.Unreachable.Count == 0 ? 0 : 1;
    }
}
