using System.CommandLine;
using System.Globalization;
using System.Net.Http.Json;
using System.Text.Json;

namespace AkkaVna.Cli.Commands;

/// <summary>
/// <c>hold add|list|release</c> and <c>lifecycle plan|queue|approve|tombstones|audit</c>: a node's lifecycle endpoints
/// (<c>/admin/holds</c>, <c>/admin/lifecycle/*</c>, <c>/admin/audit</c>) from the command line.
/// </summary>
public static class LifecycleCommands
{
    private static Option<string> Http() => new("--http") { Description = "The HTTP address of any node, e.g. http://10.0.0.1:8080.", Required = true };

    private static readonly Option<bool> Json = new("--json") { Description = "Print the node's JSON answer as it is." };

    private static Uri? Node(string url)
    {
        if (Uri.TryCreate(url, UriKind.Absolute, out var node) && node.Scheme is "http" or "https") return node;
        Console.Error.WriteLine($"error: --http '{url}' is not an http or https URL, e.g. http://10.0.0.1:8080");
        return null;
    }

    /// <summary>Sends one request; prints the error and returns null when the node refuses it or cannot be reached.</summary>
    private static async Task<JsonElement?> CallAsync(Uri node, HttpMethod method, string path, object? body, CancellationToken ct, TimeSpan? timeout = null)
    {
        using var client = new HttpClient { BaseAddress = node, Timeout = timeout ?? TimeSpan.FromSeconds(60), MaxResponseContentBufferSize = 512L * 1024 * 1024 };
        try
        {
            using var request = new HttpRequestMessage(method, path);
            if (body is not null) request.Content = JsonContent.Create(body);
            using var response = await client.SendAsync(request, ct);
            string text = await response.Content.ReadAsStringAsync(ct);
            if (!response.IsSuccessStatusCode)
            {
                Console.Error.WriteLine($"error: {node} answered {(int)response.StatusCode}: {text.Trim()}");
                return null;
            }
            return JsonDocument.Parse(text).RootElement.Clone();
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException or JsonException)
        {
            Console.Error.WriteLine($"error: cannot ask {node}: {e.Message}");
            return null;
        }
    }

    private static string Str(JsonElement e, string name) =>
        e.TryGetProperty(name, out var v) && v.ValueKind is not (JsonValueKind.Null or JsonValueKind.Undefined) ? v.ToString() : "-";

    private static void Table(string[] header, IEnumerable<string[]> rows)
    {
        var all = rows.ToList();
        var widths = header.Select((h, i) => all.Select(r => r[i].Length).Append(h.Length).Max()).ToArray();
        Console.WriteLine(string.Join("  ", header.Select((h, i) => h.PadRight(widths[i]))));
        foreach (var row in all) Console.WriteLine(string.Join("  ", row.Select((c, i) => c.PadRight(widths[i]))));
    }

    public static Command Hold()
    {
        var http = Http();
        var scope = new Option<string>("--scope") { Description = "What the hold covers: patient, study or accession.", Required = true };
        scope.AcceptOnlyFromAmong("patient", "study", "accession");
        var value = new Option<string>("--value") { Description = "The patient ID, Study Instance UID or accession number.", Required = true };
        var issuer = new Option<string?>("--issuer") { Description = "For a patient hold: the Issuer of Patient ID (absent: the ID under any issuer)." };
        var reason = new Option<string>("--reason") { Description = "Why (a case number, a request): kept with the hold and in the audit trail.", Required = true };
        var by = new Option<string>("--by") { Description = "Who places the hold (kept with it and in the audit trail).", Required = true };
        var until = new Option<DateTimeOffset?>("--until") { Description = "An end (ISO 8601); absent: until released." };
        var add = new Command("add", "Place a legal hold: no study it covers is destroyed while it holds, whatever the rules say. Prints the hold (its ID releases it).")
        {
            http, scope, value, issuer, reason, by, until, Json,
        };
        add.SetAction(async (r, ct) =>
        {
            if (Node(r.GetValue(http)!) is not { } node) return 2;
            var hold = await CallAsync(node, HttpMethod.Post, "/admin/holds", new
            {
                scope = r.GetValue(scope), value = r.GetValue(value), issuerOfPatientId = r.GetValue(issuer), reason = r.GetValue(reason), placedBy = r.GetValue(by),
                until = r.GetValue(until),
            }, ct);
            if (hold is not { } h) return 1;
            Console.WriteLine(r.GetValue(Json) ? h.ToString() : $"hold {Str(h, "id")} placed on {Str(h, "scope")} {Str(h, "value")} by {Str(h, "placedBy")}");
            return 0;
        });
        var all = new Option<bool>("--all") { Description = "Released holds too." };
        var list = new Command("list", "List the legal holds (active ones; --all: released ones too).") { http, all, Json };
        list.SetAction(async (r, ct) =>
        {
            if (Node(r.GetValue(http)!) is not { } node) return 2;
            if (await CallAsync(node, HttpMethod.Get, "/admin/holds" + (r.GetValue(all) ? "?all=true" : ""), null, ct) is not { } holds) return 1;
            if (r.GetValue(Json)) Console.WriteLine(holds);
            else
                Table(["id", "scope", "value", "issuer", "placed by", "placed at", "until", "released", "reason"], holds.EnumerateArray().Select(h => new[]
                {
                    Str(h, "id"), Str(h, "scope"), Str(h, "value"), Str(h, "issuerOfPatientId"), Str(h, "placedBy"), Str(h, "placedAt"), Str(h, "until"),
                    h.TryGetProperty("releasedAt", out var rel) && rel.ValueKind != JsonValueKind.Null ? $"{rel} by {Str(h, "releasedBy")}" : "-", Str(h, "reason"),
                }));
            return 0;
        });
        var id = new Argument<string>("id") { Description = "The hold's ID (from hold add or hold list)." };
        var releaseBy = new Option<string>("--by") { Description = "Who releases the hold.", Required = true };
        var release = new Command("release", "Release a legal hold: the studies it covered are planned again (and destroyed if due).") { http, id, releaseBy, Json };
        release.SetAction(async (r, ct) =>
        {
            if (Node(r.GetValue(http)!) is not { } node) return 2;
            string path = $"/admin/holds/{Uri.EscapeDataString(r.GetValue(id)!)}?by={Uri.EscapeDataString(r.GetValue(releaseBy)!)}";
            if (await CallAsync(node, HttpMethod.Delete, path, null, ct) is not { } h) return 1;
            Console.WriteLine(r.GetValue(Json) ? h.ToString() : $"hold {Str(h, "id")} released by {Str(h, "releasedBy")} at {Str(h, "releasedAt")}");
            return 0;
        });
        return new Command("hold", "Legal holds on patients, studies or accession numbers.") { add, list, release };
    }

    public static Command Lifecycle()
    {
        var http = Http();
        var at = new Option<DateTimeOffset?>("--at") { Description = "The date and time to plan for (ISO 8601); absent: now." };
        var plan = new Command("plan", "List what would be moved or destroyed by --at, when, and by which rule (a held study is listed as held). Exits 1 when the node cannot be asked.")
        {
            http, at, Json,
        };
        plan.SetAction(async (r, ct) =>
        {
            if (Node(r.GetValue(http)!) is not { } node) return 2;
            string path = "/admin/lifecycle/plan" + (r.GetValue(at) is { } when ? "?at=" + Uri.EscapeDataString(when.ToString("O", CultureInfo.InvariantCulture)) : "");
            if (await CallAsync(node, HttpMethod.Get, path, null, ct, TimeSpan.FromHours(2)) is not { } p) return 1;
            if (r.GetValue(Json))
            {
                Console.WriteLine(p);
                return 0;
            }
            var studies = p.GetProperty("studies").EnumerateArray().ToList();
            Console.WriteLine($"plan at {Str(p, "at")} (lifecycle {(p.GetProperty("enabled").GetBoolean() ? "on" : "OFF")}, approval "
                + $"{(p.GetProperty("requireApproval").GetBoolean() ? "required" : "not required")}): {studies.Count} stud(ies)"
                + (p.GetProperty("truncated").GetBoolean() ? " (truncated)" : ""));
            Table(["study", "patient", "rule", "action", "at", "store", "holds"], studies.Select(s => new[]
            {
                Str(s, "studyInstanceUid"), Str(s, "patientId"), Str(s, "rule"), Str(s, "action"), Str(s, "at"), Str(s, "store"),
                string.Join(",", s.GetProperty("holds").EnumerateArray().Select(h => h.GetString())),
            }));
            return 0;
        });
        var queue = new Command("queue", "List the studies due for destruction that wait for an operator's approval.") { http, Json };
        queue.SetAction(async (r, ct) =>
        {
            if (Node(r.GetValue(http)!) is not { } node) return 2;
            if (await CallAsync(node, HttpMethod.Get, "/admin/lifecycle/queue", null, ct) is not { } q) return 1;
            if (r.GetValue(Json)) Console.WriteLine(q);
            else Table(["study", "rule", "due", "queued", "approved by"], q.EnumerateArray().Select(e => new[]
                { Str(e, "studyInstanceUid"), Str(e, "rule"), Str(e, "dueAt"), Str(e, "queuedAt"), Str(e, "approvedBy") }));
            return 0;
        });
        var uids = new Argument<string[]>("study") { Description = "Study Instance UIDs from the queue.", Arity = ArgumentArity.OneOrMore };
        var by = new Option<string>("--by") { Description = "Who approves (kept in the tombstone and the audit trail).", Required = true };
        var approve = new Command("approve", "Approve the destruction of queued studies: each is destroyed at once. Exits 1 when one was not in the queue.")
        {
            http, uids, by, Json,
        };
        approve.SetAction(async (r, ct) =>
        {
            if (Node(r.GetValue(http)!) is not { } node) return 2;
            if (await CallAsync(node, HttpMethod.Post, "/admin/lifecycle/approve", new { studyInstanceUids = r.GetValue(uids), approvedBy = r.GetValue(by) }, ct) is not { } a)
                return 1;
            if (r.GetValue(Json)) Console.WriteLine(a);
            foreach (var s in a.GetProperty("approved").EnumerateArray()) if (!r.GetValue(Json)) Console.WriteLine($"approved: {Str(s, "studyInstanceUid")} (rule {Str(s, "rule")})");
            var missing = a.GetProperty("notQueued").EnumerateArray().Select(e => e.GetString()).ToList();
            foreach (var m in missing) Console.Error.WriteLine($"not in the queue: {m}");
            return missing.Count == 0 ? 0 : 1;
        });
        var tombstones = new Command("tombstones", "List the destroyed studies: rule, counts, when, approved by whom.") { http, Json };
        tombstones.SetAction(async (r, ct) =>
        {
            if (Node(r.GetValue(http)!) is not { } node) return 2;
            if (await CallAsync(node, HttpMethod.Get, "/admin/lifecycle/tombstones", null, ct) is not { } t) return 1;
            if (r.GetValue(Json)) Console.WriteLine(t);
            else Table(["study", "rule", "state", "instances", "bytes", "destroyed at", "approved by"], t.EnumerateArray().Select(e => new[]
                { Str(e, "studyInstanceUid"), Str(e, "rule"), Str(e, "state"), Str(e, "instances"), Str(e, "bytes"), Str(e, "destroyedAt"), Str(e, "approvedBy") }));
            return 0;
        });
        var after = new Option<long>("--after") { Description = "Only records after this sequence number." };
        var audit = new Command("audit", "Print the audit trail (holds, approvals, destructions), oldest first.") { http, after, Json };
        audit.SetAction(async (r, ct) =>
        {
            if (Node(r.GetValue(http)!) is not { } node) return 2;
            if (await CallAsync(node, HttpMethod.Get, $"/admin/audit?after={r.GetValue(after)}&limit=10000", null, ct) is not { } t) return 1;
            if (r.GetValue(Json)) Console.WriteLine(t);
            else Table(["seq", "at", "action", "study", "actor", "outcome", "detail"], t.EnumerateArray().Select(e => new[]
                { Str(e, "sequence"), Str(e, "at"), Str(e, "action"), Str(e, "studyInstanceUid"), Str(e, "actor"), Str(e, "outcome"), Str(e, "detail") }));
            return 0;
        });
        return new Command("lifecycle", "Retention, destruction and its audit on a running archive.") { plan, queue, approve, tombstones, audit };
    }
}
