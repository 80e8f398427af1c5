using System.Globalization;
using System.Text.Json;
using AkkaVna.Core.Lifecycle;
using AkkaVna.Core.Model;
using AkkaVna.Core.Ports;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace AkkaVna.Host;

/// <summary>
/// The lifecycle's admin endpoints: legal holds (place, list, release), the plan (what would move or be destroyed, when,
/// by which rule), the approval queue and approvals, tombstones and the audit trail. Every 4xx says why, in JSON.
/// </summary>
internal static class LifecycleEndpoints
{
    private const int MaxBody = 64 * 1024;

    public sealed record HoldRequest(string? Scope, string? Value, string? IssuerOfPatientId, string? Reason, string? PlacedBy, DateTimeOffset? Until);

    public sealed record ApproveRequest(IReadOnlyList<string>? StudyInstanceUids, string? ApprovedBy);

    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web)
    {
        Converters = { new System.Text.Json.Serialization.JsonStringEnumConverter(JsonNamingPolicy.CamelCase) },
    };

    private static IResult Bad(string error) => Results.BadRequest(new { error });

    private static async Task<(T? Value, IResult? Error)> BodyAsync<T>(HttpRequest request, CancellationToken ct) where T : class
    {
        if (request.ContentLength is > MaxBody) return (null, Results.Json(new { error = $"the body is larger than {MaxBody} bytes" }, statusCode: 413));
        try
        {
            using var limited = new MemoryStream();
            var buffer = new byte[8192];
            int read;
            while ((read = await request.Body.ReadAsync(buffer, ct)) > 0)
            {
                if (limited.Length + read > MaxBody) return (null, Results.Json(new { error = $"the body is larger than {MaxBody} bytes" }, statusCode: 413));
                limited.Write(buffer, 0, read);
            }
            limited.Position = 0;
            var value = limited.Length == 0 ? null : JsonSerializer.Deserialize<T>(limited, Json);
            return value is null ? (null, Bad("the body is not a JSON object")) : (value, null);
        }
        catch (JsonException e)
        {
            return (null, Bad($"the body is not the JSON expected: {e.Message}"));
        }
    }

    public static void Map(WebApplication app, IArchiveIndex index, LifecycleSettings settings, TimeProvider time)
    {
        var store = index.Lifecycle;

        app.MapPost("/admin/holds", async (HttpRequest request, CancellationToken ct) =>
        {
            var (body, error) = await BodyAsync<HoldRequest>(request, ct);
            if (error is not null) return error;
            var b = body!;
            if (!Enum.TryParse<HoldScope>(b.Scope, ignoreCase: true, out var scope) || !Enum.IsDefined(scope))
                return Bad("scope must be patient, study or accession");
            if (b.Value is not { Length: > 0 and <= 64 } value) return Bad("value must be set (the patient ID, study UID or accession number; at most 64 characters)");
            if (scope == HoldScope.Study && !Dicom.Dictionary.DicomUidRegistry.IsWellFormed(value)) return Bad($"'{value}' is not a study UID");
            if (b.Reason is not { Length: > 0 and <= 1024 }) return Bad("reason must be set (at most 1024 characters)");
            if (b.PlacedBy is not { Length: > 0 and <= 128 }) return Bad("placedBy must be set (who places the hold; at most 128 characters)");
            if (b.IssuerOfPatientId is { Length: > 64 }) return Bad("issuerOfPatientId has at most 64 characters");
            if (scope != HoldScope.Patient && b.IssuerOfPatientId is not null) return Bad("issuerOfPatientId belongs to a patient hold");
            var now = time.GetUtcNow();
            var hold = new LegalHold("hold-" + Guid.NewGuid().ToString("N")[..16], scope, value, b.IssuerOfPatientId, b.Reason!, b.PlacedBy!, now, b.Until);
            await store.PlaceHoldAsync(hold, ct);
            await store.AppendAuditAsync(new AuditRecord(now, "hold-placed", scope == HoldScope.Study ? value : null, scope == HoldScope.Patient ? value : null,
                hold.PlacedBy, "success", $"{hold.Id}: {scope} {value}{(hold.IssuerOfPatientId is { } i ? " (issuer " + i + ")" : "")}: {hold.Reason}"), ct);
            return Results.Json(hold, Json, statusCode: StatusCodes.Status201Created);
        });

        app.MapGet("/admin/holds", async (HttpRequest request, CancellationToken ct) =>
            Results.Json(await store.ListHoldsAsync(request.Query["all"] == "true", ct), Json));

        app.MapDelete("/admin/holds/{id}", async (string id, HttpRequest request, CancellationToken ct) =>
        {
            if (request.Query["by"].ToString() is not { Length: > 0 and <= 128 } by) return Bad("by must name who releases the hold (?by=NAME, at most 128 characters)");
            var now = time.GetUtcNow();
            var released = await store.ReleaseHoldAsync(id, by, now, ct);
            if (released is null) return Results.NotFound(new { error = $"no hold {id}" });
            await store.AppendAuditAsync(new AuditRecord(now, "hold-released", released.Scope == HoldScope.Study ? released.Value : null,
                released.Scope == HoldScope.Patient ? released.Value : null, by, "success", $"{released.Id}: {released.Scope} {released.Value}"), ct);
            // What the hold named is looked at again now (an accession's studies at their next hold re-check).
            var studies = released.Scope switch
            {
                HoldScope.Study => [released.Value],
                HoldScope.Patient => await index.StudiesOfPatientAsync(released.Value, released.IssuerOfPatientId, ct),
                _ => (IReadOnlyList<string>)[],
            };
            foreach (var study in studies) await store.ScheduleAsync(study, now, ct);
            return Results.Json(released, Json);
        });

        app.MapGet("/admin/lifecycle/plan", async (HttpContext c, CancellationToken ct) =>
        {
            var now = time.GetUtcNow();
            var at = now;
            if (c.Request.Query["at"].ToString() is { Length: > 0 } asked
                && !DateTimeOffset.TryParse(asked, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal, out at))
            {
                await Results.BadRequest(new { error = $"at '{asked}' is not a date or time (ISO 8601, e.g. 2030-01-01 or 2030-01-01T12:00:00Z)" }).ExecuteAsync(c);
                return;
            }
            int limit = 100_000;
            if (c.Request.Query["limit"].ToString() is { Length: > 0 } l && (!int.TryParse(l, CultureInfo.InvariantCulture, out limit) || limit is < 1 or > 10_000_000))
            {
                await Results.BadRequest(new { error = $"limit '{l}' is not a number from 1 to 10000000" }).ExecuteAsync(c);
                return;
            }
            c.Response.ContentType = "application/json";
            // Over the response's pipe: the writer's flushes only hand bytes to the pipe, which is flushed asynchronously.
            await using var w = new Utf8JsonWriter(c.Response.BodyWriter);
            w.WriteStartObject();
            w.WriteString("at", at);
            w.WriteBoolean("enabled", settings.Enabled);
            w.WriteBoolean("requireApproval", settings.RequireApproval);
            w.WriteStartArray("studies");
            int written = 0;
            await foreach (var step in LifecyclePlanScan.RunAsync(index, settings, at, ct))
            {
                JsonSerializer.Serialize(w, step, Json);
                if (++written % 256 == 0) await c.Response.BodyWriter.FlushAsync(ct);
                if (written >= limit) break;
            }
            w.WriteEndArray();
            w.WriteBoolean("truncated", written >= limit);
            w.WriteEndObject();
            await w.FlushAsync(ct);
            await c.Response.BodyWriter.FlushAsync(ct);
        });

        app.MapGet("/admin/lifecycle/queue", async (CancellationToken ct) => Results.Json(await store.ListPendingAsync(ct), Json));

        app.MapPost("/admin/lifecycle/approve", async (HttpRequest request, CancellationToken ct) =>
        {
            var (body, error) = await BodyAsync<ApproveRequest>(request, ct);
            if (error is not null) return error;
            if (body!.ApprovedBy is not { Length: > 0 and <= 128 } by) return Bad("approvedBy must name who approves (at most 128 characters)");
            if (body.StudyInstanceUids is not { Count: > 0 and <= 10_000 } uids) return Bad("studyInstanceUids must list 1 to 10000 studies from the queue");
            if (uids.FirstOrDefault(u => !Dicom.Dictionary.DicomUidRegistry.IsWellFormed(u)) is { } badUid) return Bad($"'{badUid}' is not a study UID");
            var now = time.GetUtcNow();
            var approved = new List<PendingDestruction>();
            var notQueued = new List<string>();
            foreach (var uid in uids.Distinct(StringComparer.Ordinal))
            {
                if (await store.ApproveAsync(uid, by, now, ct) is not { } p)
                {
                    notQueued.Add(uid);
                    continue;
                }
                approved.Add(p);
                await store.AppendAuditAsync(new AuditRecord(now, "destruction-approved", uid, null, by, "success", $"rule {p.Rule}, due {p.DueAt:O}"), ct);
                await store.ScheduleAsync(uid, now, ct); // its lifecycle child acts now
            }
            return Results.Json(new { approved, notQueued }, Json);
        });

        app.MapGet("/admin/lifecycle/tombstones", async (CancellationToken ct) =>
        {
            var list = new List<object>();
            await foreach (var t in store.ListTombstonesAsync(ct))
                list.Add(new { t.StudyInstanceUid, t.Rule, state = t.State, t.Series, t.Instances, t.Bytes, t.Checksums, t.StartedAt, t.DestroyedAt, t.ApprovedBy });
            return Results.Json(list, Json);
        });

        app.MapGet("/admin/audit", async (HttpRequest request, CancellationToken ct) =>
        {
            long after = long.TryParse(request.Query["after"], CultureInfo.InvariantCulture, out var a) ? a : 0;
            int limit = int.TryParse(request.Query["limit"], CultureInfo.InvariantCulture, out var n) ? Math.Clamp(n, 1, 10_000) : 1000;
            return Results.Json(await store.ListAuditAsync(after, limit, ct), Json);
        });
    }
}
