using System.Data.Common;
using System.Runtime.CompilerServices;
using AkkaVna.Core.Lifecycle;
using AkkaVna.Core.Model;

namespace AkkaVna.Core.Ports;

/// <summary>
/// <see cref="ILifecycleStore"/> on the index's SQL database (SQLite or PostgreSQL: the same tables and statements, only
/// the sequence column's type differs). Small, query-first tables: holds by ID, the due-time table by (due, study) like
/// the stability timers, the approval queue and tombstones by study, the audit trail by sequence. The adapter opens the
/// connections (and makes each write durable: SQLite with synchronous=FULL, PostgreSQL's commits are).
/// </summary>
public sealed class SqlLifecycleStore(Func<CancellationToken, Task<DbConnection>> open) : ILifecycleStore
{
    /// <summary>The tables, for the adapter's migrations; <paramref name="sqlite"/> picks the audit sequence's type.</summary>
    public static string Schema(bool sqlite) => $"""
        CREATE TABLE IF NOT EXISTS legal_holds (
            hold_id TEXT NOT NULL PRIMARY KEY, scope TEXT NOT NULL, value TEXT NOT NULL, issuer TEXT, reason TEXT NOT NULL,
            placed_by TEXT NOT NULL, placed_at BIGINT NOT NULL, until_at BIGINT, released_at BIGINT, released_by TEXT
        );
        CREATE INDEX IF NOT EXISTS legal_holds_by_value ON legal_holds (value, scope);
        CREATE TABLE IF NOT EXISTS lifecycle_timers (study_uid TEXT NOT NULL PRIMARY KEY, due_at BIGINT NOT NULL);
        CREATE INDEX IF NOT EXISTS lifecycle_timers_by_due ON lifecycle_timers (due_at, study_uid);
        CREATE TABLE IF NOT EXISTS destruction_queue (
            study_uid TEXT NOT NULL PRIMARY KEY, rule TEXT NOT NULL, due_at BIGINT NOT NULL, queued_at BIGINT NOT NULL,
            approved_by TEXT, approved_at BIGINT
        );
        CREATE TABLE IF NOT EXISTS tombstones (
            study_uid TEXT NOT NULL PRIMARY KEY, rule TEXT NOT NULL, state TEXT NOT NULL, series INTEGER NOT NULL, instances INTEGER NOT NULL,
            bytes BIGINT NOT NULL, checksums TEXT NOT NULL, blobs TEXT NOT NULL, started_at BIGINT NOT NULL, destroyed_at BIGINT, approved_by TEXT
        );
        CREATE TABLE IF NOT EXISTS lifecycle_state (key TEXT NOT NULL PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE IF NOT EXISTS audit_records (
            seq {(sqlite ? "INTEGER PRIMARY KEY AUTOINCREMENT" : "BIGSERIAL PRIMARY KEY")}, at BIGINT NOT NULL, action TEXT NOT NULL,
            study_uid TEXT, patient_id TEXT, actor TEXT NOT NULL, outcome TEXT NOT NULL, detail TEXT NOT NULL
        );
        """;

    /// <summary>Per-study data keys for encryption at rest (wrapped by a master key; none stored in the clear).</summary>
    public const string StudyKeysTable = """
        CREATE TABLE IF NOT EXISTS study_keys (
            study_uid TEXT NOT NULL PRIMARY KEY, key_id TEXT NOT NULL, master_key_id TEXT NOT NULL, wrapped TEXT NOT NULL, created_at BIGINT NOT NULL
        );
        CREATE UNIQUE INDEX IF NOT EXISTS study_keys_by_id ON study_keys (key_id);
        """;

    private const string StudyKeyColumns = "study_uid, key_id, master_key_id, wrapped, created_at";

    private static WrappedStudyKey ReadStudyKey(DbDataReader r) =>
        new(r.GetString(0), r.GetString(1), r.GetString(2), Convert.FromBase64String(r.GetString(3)), DateTimeOffset.FromUnixTimeMilliseconds(r.GetInt64(4)));

    public async Task<WrappedStudyKey> PutStudyKeyAsync(WrappedStudyKey key, CancellationToken cancellationToken)
    {
        await ExecuteAsync($"INSERT INTO study_keys ({StudyKeyColumns}) VALUES (@study, @id, @master, @wrapped, @at) ON CONFLICT (study_uid) DO NOTHING", cancellationToken,
            ("@study", key.StudyInstanceUid), ("@id", key.KeyId), ("@master", key.MasterKeyId), ("@wrapped", Convert.ToBase64String(key.Wrapped)),
            ("@at", key.CreatedAt.ToUnixTimeMilliseconds())).ConfigureAwait(false);
        return await GetStudyKeyOfAsync(key.StudyInstanceUid, cancellationToken).ConfigureAwait(false)
            ?? throw new InvalidOperationException($"the data key of study {key.StudyInstanceUid} was not stored");
    }

    public async Task<WrappedStudyKey?> GetStudyKeyAsync(string keyId, CancellationToken cancellationToken) =>
        (await QueryAsync($"SELECT {StudyKeyColumns} FROM study_keys WHERE key_id = @id", ReadStudyKey, cancellationToken, ("@id", keyId)).ConfigureAwait(false)).FirstOrDefault();

    public async Task<WrappedStudyKey?> GetStudyKeyOfAsync(string studyInstanceUid, CancellationToken cancellationToken) =>
        (await QueryAsync($"SELECT {StudyKeyColumns} FROM study_keys WHERE study_uid = @study", ReadStudyKey, cancellationToken, ("@study", studyInstanceUid))
            .ConfigureAwait(false)).FirstOrDefault();

    public async Task RewrapStudyKeyAsync(WrappedStudyKey key, string previousMasterKeyId, CancellationToken cancellationToken) =>
        await ExecuteAsync("UPDATE study_keys SET master_key_id = @master, wrapped = @wrapped WHERE key_id = @id AND master_key_id = @previous", cancellationToken,
            ("@master", key.MasterKeyId), ("@wrapped", Convert.ToBase64String(key.Wrapped)), ("@id", key.KeyId), ("@previous", previousMasterKeyId)).ConfigureAwait(false);

    public async Task DeleteStudyKeyAsync(string studyInstanceUid, CancellationToken cancellationToken) =>
        await ExecuteAsync("DELETE FROM study_keys WHERE study_uid = @study", cancellationToken, ("@study", studyInstanceUid)).ConfigureAwait(false);

    private const string HoldColumns = "hold_id, scope, value, issuer, reason, placed_by, placed_at, until_at, released_at, released_by";
    private const string PendingColumns = "study_uid, rule, due_at, queued_at, approved_by, approved_at";
    private const string TombstoneColumns = "study_uid, rule, state, series, instances, bytes, checksums, blobs, started_at, destroyed_at, approved_by";

    private async Task<int> ExecuteAsync(string sql, CancellationToken ct, params (string Name, object? Value)[] values)
    {
        await using var c = await open(ct).ConfigureAwait(false);
        await using var cmd = Command(c, sql, values);
        return await cmd.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
    }

    private async Task<List<T>> QueryAsync<T>(string sql, Func<DbDataReader, T> read, CancellationToken ct, params (string Name, object? Value)[] values)
    {
        await using var c = await open(ct).ConfigureAwait(false);
        await using var cmd = Command(c, sql, values);
        await using var r = await cmd.ExecuteReaderAsync(ct).ConfigureAwait(false);
        var list = new List<T>();
        while (await r.ReadAsync(ct).ConfigureAwait(false)) list.Add(read(r));
        return list;
    }

    private static DbCommand Command(DbConnection c, string sql, (string Name, object? Value)[] values)
    {
        var cmd = c.CreateCommand();
        cmd.CommandText = sql;
        foreach (var (name, value) in values)
        {
            var p = cmd.CreateParameter();
            p.ParameterName = name;
            p.Value = value ?? DBNull.Value;
            cmd.Parameters.Add(p);
        }
        return cmd;
    }

    private static long Ms(DateTimeOffset t) => t.ToUnixTimeMilliseconds();
    private static long? Ms(DateTimeOffset? t) => t?.ToUnixTimeMilliseconds();
    private static DateTimeOffset At(DbDataReader r, int i) => DateTimeOffset.FromUnixTimeMilliseconds(r.GetInt64(i));
    private static DateTimeOffset? OptAt(DbDataReader r, int i) => r.IsDBNull(i) ? null : At(r, i);
    private static string? Opt(DbDataReader r, int i) => r.IsDBNull(i) ? null : r.GetString(i);

    private static LegalHold ReadHold(DbDataReader r) =>
        new(r.GetString(0), Enum.Parse<HoldScope>(r.GetString(1)), r.GetString(2), Opt(r, 3), r.GetString(4), r.GetString(5), At(r, 6), OptAt(r, 7))
        {
            ReleasedAt = OptAt(r, 8), ReleasedBy = Opt(r, 9),
        };

    public async Task PlaceHoldAsync(LegalHold h, CancellationToken cancellationToken) =>
        await ExecuteAsync($"INSERT INTO legal_holds ({HoldColumns}) VALUES (@id, @scope, @value, @issuer, @reason, @by, @at, @until, @released, @releasedby)", cancellationToken,
            ("@id", h.Id), ("@scope", h.Scope.ToString()), ("@value", h.Value), ("@issuer", h.IssuerOfPatientId), ("@reason", h.Reason), ("@by", h.PlacedBy),
            ("@at", Ms(h.PlacedAt)), ("@until", Ms(h.Until)), ("@released", Ms(h.ReleasedAt)), ("@releasedby", h.ReleasedBy)).ConfigureAwait(false);

    public async Task<LegalHold?> ReleaseHoldAsync(string id, string releasedBy, DateTimeOffset at, CancellationToken cancellationToken)
    {
        await ExecuteAsync("UPDATE legal_holds SET released_at = @at, released_by = @by WHERE hold_id = @id AND released_at IS NULL", cancellationToken,
            ("@at", Ms(at)), ("@by", releasedBy), ("@id", id)).ConfigureAwait(false);
        return (await QueryAsync($"SELECT {HoldColumns} FROM legal_holds WHERE hold_id = @id", ReadHold, cancellationToken, ("@id", id)).ConfigureAwait(false)).FirstOrDefault();
    }

    public async Task<IReadOnlyList<LegalHold>> ListHoldsAsync(bool includeReleased, CancellationToken cancellationToken) =>
        await QueryAsync($"SELECT {HoldColumns} FROM legal_holds {(includeReleased ? "" : "WHERE released_at IS NULL")} ORDER BY placed_at, hold_id", ReadHold,
            cancellationToken).ConfigureAwait(false);

    public async Task<IReadOnlyList<LegalHold>> HoldsNamingAsync(string patientId, string issuerOfPatientId, string studyInstanceUid, string? accessionNumber,
        CancellationToken cancellationToken) =>
        await QueryAsync($"""
            SELECT {HoldColumns} FROM legal_holds
            WHERE (value = @pid AND scope = 'Patient') OR (value = @study AND scope = 'Study') OR (value = @acc AND scope = 'Accession')
            ORDER BY placed_at, hold_id
            """, ReadHold, cancellationToken, ("@pid", patientId), ("@study", studyInstanceUid), ("@acc", accessionNumber)).ConfigureAwait(false);

    public async Task ScheduleAsync(string studyInstanceUid, DateTimeOffset? due, CancellationToken cancellationToken)
    {
        if (due is { } d)
            await ExecuteAsync("INSERT INTO lifecycle_timers (study_uid, due_at) VALUES (@study, @due) ON CONFLICT (study_uid) DO UPDATE SET due_at = excluded.due_at",
                cancellationToken, ("@study", studyInstanceUid), ("@due", Ms(d))).ConfigureAwait(false);
        else await ExecuteAsync("DELETE FROM lifecycle_timers WHERE study_uid = @study", cancellationToken, ("@study", studyInstanceUid)).ConfigureAwait(false);
    }

    public async Task ScheduleManyAsync(IReadOnlyList<(string StudyInstanceUid, DateTimeOffset Due)> timers, CancellationToken cancellationToken)
    {
        if (timers.Count == 0) return;
        await using var c = await open(cancellationToken).ConfigureAwait(false);
        await using var tx = await c.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
        await using var cmd = Command(c, "INSERT INTO lifecycle_timers (study_uid, due_at) VALUES (@study, @due) ON CONFLICT (study_uid) DO UPDATE SET due_at = excluded.due_at",
            [("@study", ""), ("@due", 0L)]);
        cmd.Transaction = tx;
        foreach (var (study, due) in timers)
        {
            cmd.Parameters[0].Value = study;
            cmd.Parameters[1].Value = Ms(due);
            await cmd.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }
        await tx.CommitAsync(cancellationToken).ConfigureAwait(false);
    }

    public async Task<IReadOnlyList<string>> DueForLifecycleAsync(DateTimeOffset now, int limit, CancellationToken cancellationToken) =>
        await QueryAsync("SELECT study_uid FROM lifecycle_timers WHERE due_at <= @now ORDER BY due_at, study_uid LIMIT @limit", r => r.GetString(0), cancellationToken,
            ("@now", Ms(now)), ("@limit", limit)).ConfigureAwait(false);

    private static PendingDestruction ReadPending(DbDataReader r) =>
        new(r.GetString(0), r.GetString(1), At(r, 2), At(r, 3)) { ApprovedBy = Opt(r, 4), ApprovedAt = OptAt(r, 5) };

    public async Task QueueForApprovalAsync(PendingDestruction p, CancellationToken cancellationToken) =>
        await ExecuteAsync($"""
            INSERT INTO destruction_queue ({PendingColumns}) VALUES (@study, @rule, @due, @queued, NULL, NULL)
            ON CONFLICT (study_uid) DO UPDATE SET rule = excluded.rule, due_at = excluded.due_at
            """, cancellationToken, ("@study", p.StudyInstanceUid), ("@rule", p.Rule), ("@due", Ms(p.DueAt)), ("@queued", Ms(p.QueuedAt))).ConfigureAwait(false);

    public async Task<PendingDestruction?> ApproveAsync(string studyInstanceUid, string approvedBy, DateTimeOffset at, CancellationToken cancellationToken)
    {
        await ExecuteAsync("UPDATE destruction_queue SET approved_by = @by, approved_at = @at WHERE study_uid = @study AND approved_by IS NULL", cancellationToken,
            ("@by", approvedBy), ("@at", Ms(at)), ("@study", studyInstanceUid)).ConfigureAwait(false);
        return await GetPendingAsync(studyInstanceUid, cancellationToken).ConfigureAwait(false);
    }

    public async Task<PendingDestruction?> GetPendingAsync(string studyInstanceUid, CancellationToken cancellationToken) =>
        (await QueryAsync($"SELECT {PendingColumns} FROM destruction_queue WHERE study_uid = @study", ReadPending, cancellationToken, ("@study", studyInstanceUid))
            .ConfigureAwait(false)).FirstOrDefault();

    public async Task<IReadOnlyList<PendingDestruction>> ListPendingAsync(CancellationToken cancellationToken) =>
        await QueryAsync($"SELECT {PendingColumns} FROM destruction_queue ORDER BY queued_at, study_uid", ReadPending, cancellationToken).ConfigureAwait(false);

    public async Task DequeueAsync(string studyInstanceUid, CancellationToken cancellationToken) =>
        await ExecuteAsync("DELETE FROM destruction_queue WHERE study_uid = @study", cancellationToken, ("@study", studyInstanceUid)).ConfigureAwait(false);

    private static Tombstone ReadTombstone(DbDataReader r) =>
        new(r.GetString(0), r.GetString(1), Enum.Parse<TombstoneState>(r.GetString(2)), r.GetInt32(3), r.GetInt32(4), r.GetInt64(5),
            Lines(r.GetString(6)), At(r, 8), OptAt(r, 9), Opt(r, 10))
        {
            Blobs = [.. Lines(r.GetString(7)).Select(l => l.Split('|') is [var store, var key, var rep, var tier] ? new BlobRef(store, key, rep, tier)
                : throw new FormatException($"a tombstone's blob line '{l}'"))],
        };

    private static string[] Lines(string text) => text.Length == 0 ? [] : text.Split('\n');

    public async Task WriteTombstoneAsync(Tombstone t, CancellationToken cancellationToken) =>
        await ExecuteAsync($"""
            INSERT INTO tombstones ({TombstoneColumns}) VALUES (@study, @rule, @state, @series, @instances, @bytes, @checksums, @blobs, @started, @destroyed, @approved)
            ON CONFLICT (study_uid) DO UPDATE SET rule = excluded.rule, state = excluded.state, series = excluded.series, instances = excluded.instances,
                bytes = excluded.bytes, checksums = excluded.checksums, blobs = excluded.blobs, started_at = excluded.started_at,
                destroyed_at = excluded.destroyed_at, approved_by = excluded.approved_by
            """, cancellationToken, ("@study", t.StudyInstanceUid), ("@rule", t.Rule), ("@state", t.State.ToString()), ("@series", t.Series),
            ("@instances", t.Instances), ("@bytes", t.Bytes), ("@checksums", string.Join('\n', t.Checksums)),
            ("@blobs", string.Join('\n', t.Blobs.Select(b => $"{b.Store}|{b.Key}|{b.Representation}|{b.Tier}"))), ("@started", Ms(t.StartedAt)),
            ("@destroyed", Ms(t.DestroyedAt)), ("@approved", t.ApprovedBy)).ConfigureAwait(false);

    public async Task<Tombstone?> GetTombstoneAsync(string studyInstanceUid, CancellationToken cancellationToken) =>
        (await QueryAsync($"SELECT {TombstoneColumns} FROM tombstones WHERE study_uid = @study", ReadTombstone, cancellationToken, ("@study", studyInstanceUid))
            .ConfigureAwait(false)).FirstOrDefault();

    public async IAsyncEnumerable<Tombstone> ListTombstonesAsync([EnumeratorCancellation] CancellationToken cancellationToken)
    {
        const int Page = 500;
        string after = "";
        while (true)
        {
            var page = await QueryAsync($"SELECT {TombstoneColumns} FROM tombstones WHERE study_uid > @after ORDER BY study_uid LIMIT {Page}", ReadTombstone,
                cancellationToken, ("@after", after)).ConfigureAwait(false);
            foreach (var t in page) yield return t;
            if (page.Count < Page) yield break;
            after = page[^1].StudyInstanceUid;
        }
    }

    public async Task DeleteTombstoneAsync(string studyInstanceUid, CancellationToken cancellationToken) =>
        await ExecuteAsync("DELETE FROM tombstones WHERE study_uid = @study", cancellationToken, ("@study", studyInstanceUid)).ConfigureAwait(false);

    public async Task<string?> GetStateAsync(string key, CancellationToken cancellationToken) =>
        (await QueryAsync("SELECT value FROM lifecycle_state WHERE key = @k", r => r.GetString(0), cancellationToken, ("@k", key)).ConfigureAwait(false)).FirstOrDefault();

    public async Task SetStateAsync(string key, string value, CancellationToken cancellationToken) =>
        await ExecuteAsync("INSERT INTO lifecycle_state (key, value) VALUES (@k, @v) ON CONFLICT (key) DO UPDATE SET value = excluded.value", cancellationToken,
            ("@k", key), ("@v", value)).ConfigureAwait(false);

    public async Task<long> AppendAuditAsync(AuditRecord a, CancellationToken cancellationToken)
    {
        var seq = await QueryAsync("""
            INSERT INTO audit_records (at, action, study_uid, patient_id, actor, outcome, detail) VALUES (@at, @action, @study, @pid, @actor, @outcome, @detail)
            RETURNING seq
            """, r => r.GetInt64(0), cancellationToken, ("@at", Ms(a.At)), ("@action", a.Action), ("@study", a.StudyInstanceUid), ("@pid", a.PatientId),
            ("@actor", a.Actor), ("@outcome", a.Outcome), ("@detail", a.Detail)).ConfigureAwait(false);
        return seq[0];
    }

    public async Task<IReadOnlyList<AuditRecord>> ListAuditAsync(long afterSequence, int limit, CancellationToken cancellationToken) =>
        await QueryAsync("SELECT seq, at, action, study_uid, patient_id, actor, outcome, detail FROM audit_records WHERE seq > @after ORDER BY seq LIMIT @limit",
            r => new AuditRecord(At(r, 1), r.GetString(2), Opt(r, 3), Opt(r, 4), r.GetString(5), r.GetString(6), r.GetString(7)) { Sequence = r.GetInt64(0) },
            cancellationToken, ("@after", afterSequence), ("@limit", limit)).ConfigureAwait(false);
}
