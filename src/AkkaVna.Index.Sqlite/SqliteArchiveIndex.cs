using System.Runtime.CompilerServices;
using System.Threading.Channels;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Logging;
using AkkaVna.Core.Model;
using AkkaVna.Core.Ports;
using static AkkaVna.Core.Ports.IndexRows;
using AkkaVna.Core.Studies;

namespace AkkaVna.Index.Sqlite;

/// <summary>
/// The embedded index: one SQLite file in WAL mode. Writes go through one writer that groups the updates of every study
/// waiting at that moment into one transaction; reads use their own pooled connections and never wait for the writer.
/// A commit does not wait for the disk (<c>synchronous=NORMAL</c>): the index is a projection of the study journal, which
/// does. <see cref="MakeDurableAsync"/> syncs everything committed so far and records the projection checkpoint, from
/// which a node re-projects after a crash (see <see cref="ProjectionTracker"/>).
/// </summary>
public sealed class SqliteArchiveIndex : IArchiveIndex
{
    /// <summary>The lifecycle's records in this database (every write synced: synchronous=FULL on its connections).</summary>
    public ILifecycleStore Lifecycle { get; }

    private const int MaxGroup = 256;
    private readonly string _connectionString;
    private readonly ILogger _log;
    private readonly Channel<QueuedWrite> _queue = Channel.CreateUnbounded<QueuedWrite>(new UnboundedChannelOptions { SingleReader = true });

    /// <summary>One study's update, or (Update null) a durable sync recording a node's projection checkpoint.</summary>
    private sealed record QueuedWrite(StudyIndexUpdate? Update, string? Node, DateTimeOffset Checkpoint, TaskCompletionSource<IndexCommitResult> Done);
    private SqliteConnection? _writer;
    private Task? _writerLoop;

    private readonly TimeProvider _time;

    public SqliteArchiveIndex(string path, ILogger log, TimeProvider? time = null)
    {
        _connectionString = new SqliteConnectionStringBuilder { DataSource = path, Pooling = true, DefaultTimeout = 30 }.ToString();
        _log = log;
        _time = time ?? TimeProvider.System;
        Lifecycle = new SqlLifecycleStore(async ct =>
        {
            var c = new SqliteConnection(_connectionString);
            await c.OpenAsync(ct).ConfigureAwait(false);
            Execute(c, "PRAGMA synchronous=FULL; PRAGMA busy_timeout=30000;");
            return c;
        });
    }

    public async Task InitializeAsync(CancellationToken cancellationToken)
    {
        _writer = new SqliteConnection(_connectionString);
        await _writer.OpenAsync(cancellationToken).ConfigureAwait(false);
        // WAL: readers never block the writer. synchronous=NORMAL: a commit survives the process being killed, and a power
        // loss only takes the commits since the last sync — which the journal (synchronous, the record a C-STORE success
        // waits for) still holds and the node re-projects at start.
        Execute(_writer, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA busy_timeout=30000;");
        Migrate(_writer);
        // A new index (no study, no checkpoint) reflects nothing of the journal yet: its checkpoint is the beginning, durably,
        // so a rebuild cut short by a crash starts over. Only an index from before checkpoints has studies and none.
        using (var fresh = Command(_writer, """
            INSERT INTO node_state (key, value) SELECT $k, $v
            WHERE NOT EXISTS (SELECT 1 FROM studies) AND NOT EXISTS (SELECT 1 FROM node_state WHERE key LIKE 'checkpoint:%')
            ON CONFLICT (key) DO NOTHING
            """, ("$k", CheckpointPrefix + "(new index)"), ("$v", DateTimeOffset.UnixEpoch.UtcTicks)))
            fresh.ExecuteNonQuery();
        Execute(_writer, "PRAGMA synchronous=NORMAL;");
        _writerLoop = Task.Run(WriteLoopAsync, CancellationToken.None);
    }

    private const string Schema = """
        CREATE TABLE IF NOT EXISTS studies (
            study_uid TEXT NOT NULL PRIMARY KEY,
            patient_id TEXT NOT NULL, issuer_of_patient_id TEXT NOT NULL,
            patient_name TEXT, patient_birth_date TEXT, patient_sex TEXT,
            study_date TEXT, study_time TEXT, accession_number TEXT, study_id TEXT, study_description TEXT, referring_physician TEXT,
            date_bucket TEXT NOT NULL,
            modalities TEXT NOT NULL, series_count INTEGER NOT NULL, instance_count INTEGER NOT NULL, size_bytes INTEGER NOT NULL,
            stable INTEGER NOT NULL, last_received INTEGER, stable_due INTEGER, stable_at INTEGER,
            journal_seq INTEGER NOT NULL
        ) WITHOUT ROWID;
        CREATE TABLE IF NOT EXISTS patient_studies (
            patient_id TEXT NOT NULL, issuer_of_patient_id TEXT NOT NULL, study_uid TEXT NOT NULL, study_date TEXT,
            PRIMARY KEY (patient_id, issuer_of_patient_id, study_uid)
        ) WITHOUT ROWID;
        CREATE TABLE IF NOT EXISTS date_studies (
            date_bucket TEXT NOT NULL, study_uid TEXT NOT NULL, study_date TEXT,
            PRIMARY KEY (date_bucket, study_uid)
        ) WITHOUT ROWID;
        CREATE TABLE IF NOT EXISTS series (
            study_uid TEXT NOT NULL, series_uid TEXT NOT NULL,
            modality TEXT, series_number INTEGER, series_description TEXT, body_part TEXT, series_date TEXT,
            instance_count INTEGER NOT NULL,
            PRIMARY KEY (study_uid, series_uid)
        ) WITHOUT ROWID;
        CREATE TABLE IF NOT EXISTS instances (
            study_uid TEXT NOT NULL, series_uid TEXT NOT NULL, sop_uid TEXT NOT NULL,
            sop_class_uid TEXT NOT NULL, transfer_syntax_uid TEXT NOT NULL,
            instance_number INTEGER, number_of_frames INTEGER, rows INTEGER, columns INTEGER,
            blob_key TEXT NOT NULL, size_bytes INTEGER NOT NULL, sha256 TEXT NOT NULL, received_at INTEGER NOT NULL, calling_ae TEXT NOT NULL,
            PRIMARY KEY (study_uid, series_uid, sop_uid)
        ) WITHOUT ROWID;
        CREATE TABLE IF NOT EXISTS instance_locations (
            sop_uid TEXT NOT NULL PRIMARY KEY, study_uid TEXT NOT NULL, series_uid TEXT NOT NULL
        ) WITHOUT ROWID;
        CREATE TABLE IF NOT EXISTS stability_timers (
            study_uid TEXT NOT NULL PRIMARY KEY, due_at INTEGER NOT NULL
        ) WITHOUT ROWID;
        CREATE INDEX IF NOT EXISTS stability_timers_by_due ON stability_timers (due_at, study_uid);
        CREATE TABLE IF NOT EXISTS node_state (
            key TEXT NOT NULL PRIMARY KEY, value INTEGER NOT NULL
        ) WITHOUT ROWID;
        """;

    /// <summary>node_state keys of the projection checkpoints: one per node, and one for a new index until its first catch-up.</summary>
    private const string CheckpointPrefix = "checkpoint:";

    /// <summary>
    /// The schema's versions: each step applied once, in order, in one transaction with its version row. An index written
    /// before versions were recorded has the version 1 tables and no <c>schema_version</c> table.
    /// </summary>
    private static readonly (int Version, string Sql)[] Migrations =
    [
        (1, Schema),
        // Blob references name the store, the representation and the tier, not only a key of the one store.
        (2, """
            ALTER TABLE instances ADD COLUMN blob_store TEXT NOT NULL DEFAULT 'primary';
            ALTER TABLE instances ADD COLUMN blob_representation TEXT NOT NULL DEFAULT 'original';
            ALTER TABLE instances ADD COLUMN blob_tier TEXT NOT NULL DEFAULT 'default';
            """),
        // Projection checkpoints per node (the one checkpoint of a single node becomes a node's of its own).
        (3, """
            UPDATE node_state SET key = 'checkpoint:(before per-node checkpoints)' WHERE key = 'projection_checkpoint';
            ALTER TABLE node_state ADD COLUMN updated_at INTEGER NOT NULL DEFAULT 0;
            """),
        // Studies whose compression pass is due, by when (a query-first table, like the stability timers).
        (4, """
            CREATE TABLE IF NOT EXISTS compression_timers (
                study_uid TEXT NOT NULL PRIMARY KEY, due_at INTEGER NOT NULL
            ) WITHOUT ROWID;
            CREATE INDEX IF NOT EXISTS compression_timers_by_due ON compression_timers (due_at, study_uid);
            """),
        // Originals kept beside their compressed copies (compression.keep-original).
        (5, IndexRows.KeptBlobTable + " WITHOUT ROWID;"),
        // The lifecycle's records: legal holds, due times, the approval queue, tombstones, the audit trail.
        (6, SqlLifecycleStore.Schema(sqlite: true)),
        // What lifecycle rules match on besides: the study's procedure codes, the series' institution.
        (7, IndexRows.ProcedureAndInstitutionColumns),
        // Per-study data keys (encryption at rest), wrapped by a master key.
        (8, SqlLifecycleStore.StudyKeysTable),
    ];

    /// <summary>The schema version this build writes.</summary>
    public static int SchemaVersion => Migrations[^1].Version;

    private static void Migrate(SqliteConnection c)
    {
        Execute(c, "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL PRIMARY KEY, applied_at INTEGER NOT NULL)");
        long current;
        using (var cmd = Command(c, "SELECT COALESCE(MAX(version), 0) FROM schema_version")) current = (long)cmd.ExecuteScalar()!;
        if (current == 0)
        {
            using var old = Command(c, "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'instances'");
            if ((long)old.ExecuteScalar()! > 0)
            {
                // An index from before versions has the version 1 tables (creating any missing is harmless: IF NOT EXISTS).
                Execute(c, Schema);
                Record(c, null, 1);
                current = 1;
            }
        }
        if (current > SchemaVersion)
            throw new InvalidOperationException($"the index has schema version {current}, newer than this build's {SchemaVersion}: upgrade akka-vna");
        foreach (var (version, sql) in Migrations.Where(m => m.Version > current))
        {
            using var tx = c.BeginTransaction();
            using (var step = c.CreateCommand())
            {
                step.Transaction = tx;
                step.CommandText = sql;
                step.ExecuteNonQuery();
            }
            Record(c, tx, version);
            tx.Commit();
        }
    }

    private static void Record(SqliteConnection c, SqliteTransaction? tx, int version)
    {
        using var record = Command(c, "INSERT INTO schema_version VALUES ($v, $at) ON CONFLICT DO NOTHING", ("$v", version), ("$at", DateTimeOffset.UtcNow.ToUnixTimeMilliseconds()));
        record.Transaction = tx;
        record.ExecuteNonQuery();
    }

    private static void Execute(SqliteConnection c, string sql)
    {
        using var cmd = c.CreateCommand();
        cmd.CommandText = sql;
        cmd.ExecuteNonQuery();
    }

    public Task<IndexCommitResult> CommitAsync(StudyIndexUpdate update, CancellationToken cancellationToken) => Enqueue(update, null, default, cancellationToken);

    public Task MakeDurableAsync(string node, DateTimeOffset checkpoint, CancellationToken cancellationToken) => Enqueue(null, node, checkpoint, cancellationToken);

    public async Task<DateTimeOffset?> GetProjectionCheckpointAsync(CancellationToken cancellationToken)
    {
        await using var c = Open();
        // The earliest node checkpoint; with none left (every node's dropped after a catch-up), the last catch-up.
        await using var cmd = Command(c, """
            SELECT COALESCE((SELECT MIN(value) FROM node_state WHERE key LIKE 'checkpoint:%'), (SELECT value FROM node_state WHERE key = 'caught_up'))
            """);
        return await cmd.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false) is long ticks ? new DateTimeOffset(ticks, TimeSpan.Zero) : null;
    }

    public async Task RecordCatchUpAsync(DateTimeOffset caughtUpTo, DateTimeOffset silentSince, CancellationToken cancellationToken)
    {
        // The catch-up's index commits are made durable first; then the checkpoints it covered for nodes that are gone.
        await Enqueue(null, null, caughtUpTo, cancellationToken).ConfigureAwait(false);
        await using var c = Open();
        await using var cmd = Command(c, """
            INSERT INTO node_state (key, value) VALUES ('caught_up', $v) ON CONFLICT (key) DO UPDATE SET value = max(value, excluded.value);
            DELETE FROM node_state WHERE key LIKE 'checkpoint:%' AND value < $v
                AND (key IN ('checkpoint:(new index)', 'checkpoint:(before per-node checkpoints)') OR updated_at < $silent);
            """, ("$v", caughtUpTo.UtcTicks), ("$silent", silentSince.UtcTicks));
        await cmd.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    private Task<IndexCommitResult> Enqueue(StudyIndexUpdate? update, string? node, DateTimeOffset checkpoint, CancellationToken cancellationToken)
    {
        var done = new TaskCompletionSource<IndexCommitResult>(TaskCreationOptions.RunContinuationsAsynchronously);
        if (!_queue.Writer.TryWrite(new QueuedWrite(update, node, checkpoint, done))) done.SetException(new ObjectDisposedException(nameof(SqliteArchiveIndex)));
        return done.Task.WaitAsync(cancellationToken);
    }

    private async Task WriteLoopAsync()
    {
        var statements = new Statements(_writer!);
        var updates = new List<QueuedWrite>(MaxGroup);
        var syncs = new List<QueuedWrite>();
        while (await _queue.Reader.WaitToReadAsync().ConfigureAwait(false))
        {
            updates.Clear();
            syncs.Clear();
            while (updates.Count < MaxGroup && _queue.Reader.TryRead(out var item)) (item.Update is null ? syncs : updates).Add(item);
            if (updates.Count > 0) WriteGroup(statements, updates);
            // After the group: a sync read with these updates waiting makes them durable too, which only helps.
            if (syncs.Count > 0) Sync(syncs);
        }
    }

    /// <summary>Commits with an fsync of the WAL (every earlier commit included) and records the latest checkpoint asked for, per node.</summary>
    private void Sync(List<QueuedWrite> syncs)
    {
        try
        {
            Execute(_writer!, "PRAGMA synchronous=FULL;");
            try
            {
                // One committing transaction under synchronous=FULL syncs the WAL, and with it every commit before it.
                using var tx = _writer!.BeginTransaction();
                foreach (var node in syncs.Where(w => w.Node is not null).GroupBy(w => w.Node!))
                {
                    using var cmd = Command(_writer!, """
                        INSERT INTO node_state (key, value, updated_at) VALUES ($k, $v, $now)
                        ON CONFLICT (key) DO UPDATE SET value = max(value, excluded.value), updated_at = excluded.updated_at
                        """, ("$k", CheckpointPrefix + node.Key), ("$v", node.Max(w => w.Checkpoint).UtcTicks), ("$now", _time.GetUtcNow().UtcTicks));
                    cmd.Transaction = tx;
                    cmd.ExecuteNonQuery();
                }
                using (var touch = Command(_writer!, "INSERT INTO node_state (key, value) VALUES ('last_sync', $now) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                           ("$now", _time.GetUtcNow().UtcTicks)))
                {
                    touch.Transaction = tx; // a write, so the commit syncs even when no checkpoint is recorded
                    touch.ExecuteNonQuery();
                }
                tx.Commit();
            }
            finally
            {
                Execute(_writer!, "PRAGMA synchronous=NORMAL;");
            }
            foreach (var w in syncs) w.Done.TrySetResult(IndexCommitResult.Applied);
        }
        catch (Exception e)
        {
            foreach (var w in syncs) w.Done.TrySetException(e);
        }
    }

    private void WriteGroup(Statements statements, List<QueuedWrite> group)
    {
        try
        {
            var results = Write(statements, group.Select(g => g.Update!).ToList());
            for (int i = 0; i < group.Count; i++) group[i].Done.TrySetResult(results[i]);
        }
        catch (Exception e) when (group.Count > 1)
        {
            // One bad update must not fail the others: write each in its own transaction.
            _log.LogWarning(e, "index group commit of {Count} studies failed; retrying them one by one", group.Count);
            foreach (var g in group)
            {
                try
                {
                    g.Done.TrySetResult(Write(statements, [g.Update!])[0]);
                }
                catch (Exception single)
                {
                    g.Done.TrySetException(single);
                }
            }
        }
        catch (Exception e)
        {
            group[0].Done.TrySetException(e);
        }
    }

    /// <summary>One transaction; each update in a savepoint of its own, rolled back alone when it claims another study's instance.</summary>
    private IndexCommitResult[] Write(Statements s, IReadOnlyList<StudyIndexUpdate> updates)
    {
        using var tx = _writer!.BeginTransaction();
        s.Bind(tx);
        try
        {
            var results = new IndexCommitResult[updates.Count];
            for (int i = 0; i < updates.Count; i++)
            {
                tx.Save("study");
                var conflicts = s.Apply(updates[i]);
                if (conflicts.Count > 0) tx.Rollback("study");
                else tx.Release("study");
                results[i] = conflicts.Count > 0 ? new IndexCommitResult(conflicts) : IndexCommitResult.Applied;
            }
            tx.Commit();
            return results;
        }
        catch
        {
            tx.Rollback();
            throw;
        }
    }

    internal static string DateBucket(string? studyDate) =>
        studyDate is { Length: >= 8 } d && d.AsSpan(0, 8).ContainsAnyExceptInRange('0', '9') == false ? d[..6] : "none";

    internal static long? Millis(DateTimeOffset? t) => t?.ToUnixTimeMilliseconds();




    /// <summary>The writer's prepared statements, reused for every transaction.</summary>
    private sealed class Statements
    {
        private readonly SqliteCommand _current, _upsertStudy, _deletePatient, _upsertPatient, _deleteDate, _upsertDate,
            _upsertSeries, _deleteSeries, _deleteInstance, _upsertInstance, _claimLocation, _locationOwner, _upsertTimer, _deleteTimer,
            _upsertCompression, _deleteCompression, _deleteKept, _insertKept;

        public Statements(SqliteConnection c)
        {
            SqliteCommand Cmd(string sql) { var cmd = c.CreateCommand(); cmd.CommandText = sql; return cmd; }
            _current = Cmd("SELECT patient_id, issuer_of_patient_id, date_bucket FROM studies WHERE study_uid = $study");
            _upsertStudy = Cmd("""
                INSERT INTO studies VALUES ($study, $pid, $issuer, $pname, $pbirth, $psex, $sdate, $stime, $acc, $sid, $sdesc, $ref,
                    $bucket, $mods, $nseries, $ninst, $size, $stable, $last, $due, $stableat, $seq, $procs)
                ON CONFLICT (study_uid) DO UPDATE SET procedure_codes = excluded.procedure_codes, patient_id = excluded.patient_id, issuer_of_patient_id = excluded.issuer_of_patient_id,
                    patient_name = excluded.patient_name, patient_birth_date = excluded.patient_birth_date, patient_sex = excluded.patient_sex,
                    study_date = excluded.study_date, study_time = excluded.study_time, accession_number = excluded.accession_number,
                    study_id = excluded.study_id, study_description = excluded.study_description, referring_physician = excluded.referring_physician,
                    date_bucket = excluded.date_bucket, modalities = excluded.modalities, series_count = excluded.series_count,
                    instance_count = excluded.instance_count, size_bytes = excluded.size_bytes, stable = excluded.stable,
                    last_received = excluded.last_received, stable_due = excluded.stable_due, stable_at = excluded.stable_at, journal_seq = excluded.journal_seq
                WHERE excluded.journal_seq >= studies.journal_seq
                """);
            _deletePatient = Cmd("DELETE FROM patient_studies WHERE patient_id = $pid AND issuer_of_patient_id = $issuer AND study_uid = $study");
            _upsertPatient = Cmd("INSERT INTO patient_studies VALUES ($pid, $issuer, $study, $sdate) ON CONFLICT DO UPDATE SET study_date = excluded.study_date");
            _deleteDate = Cmd("DELETE FROM date_studies WHERE date_bucket = $bucket AND study_uid = $study");
            _upsertDate = Cmd("INSERT INTO date_studies VALUES ($bucket, $study, $sdate) ON CONFLICT DO UPDATE SET study_date = excluded.study_date");
            _upsertSeries = Cmd("""
                INSERT INTO series VALUES ($study, $series, $mod, $num, $desc, $body, $date, $count, $inst)
                ON CONFLICT DO UPDATE SET institution_name = excluded.institution_name, modality = excluded.modality, series_number = excluded.series_number, series_description = excluded.series_description,
                    body_part = excluded.body_part, series_date = excluded.series_date, instance_count = excluded.instance_count
                """);
            _deleteSeries = Cmd("DELETE FROM series WHERE study_uid = $study AND series_uid = $series");
            _deleteInstance = Cmd("DELETE FROM instances WHERE study_uid = $study AND series_uid = $series AND sop_uid = $sop");
            _upsertInstance = Cmd("""
                INSERT INTO instances (study_uid, series_uid, sop_uid, sop_class_uid, transfer_syntax_uid, instance_number, number_of_frames, rows, columns,
                    blob_key, size_bytes, sha256, received_at, calling_ae, blob_store, blob_representation, blob_tier)
                VALUES ($study, $series, $sop, $class, $ts, $num, $frames, $rows, $cols, $key, $size, $sha, $at, $ae, $store, $rep, $tier)
                ON CONFLICT DO UPDATE SET sop_class_uid = excluded.sop_class_uid, transfer_syntax_uid = excluded.transfer_syntax_uid,
                    instance_number = excluded.instance_number, number_of_frames = excluded.number_of_frames, rows = excluded.rows, columns = excluded.columns,
                    blob_key = excluded.blob_key, blob_store = excluded.blob_store, blob_representation = excluded.blob_representation,
                    blob_tier = excluded.blob_tier, size_bytes = excluded.size_bytes, sha256 = excluded.sha256, received_at = excluded.received_at, calling_ae = excluded.calling_ae
                """);
            // A SOP Instance UID belongs to the first study that claims it: another study's claim changes nothing (0 rows).
            _claimLocation = Cmd("""
                INSERT INTO instance_locations VALUES ($sop, $study, $series)
                ON CONFLICT (sop_uid) DO UPDATE SET series_uid = excluded.series_uid WHERE instance_locations.study_uid = excluded.study_uid
                """);
            _locationOwner = Cmd("SELECT study_uid FROM instance_locations WHERE sop_uid = $sop");
            _upsertTimer = Cmd("INSERT INTO stability_timers VALUES ($study, $due) ON CONFLICT DO UPDATE SET due_at = excluded.due_at");
            _deleteTimer = Cmd("DELETE FROM stability_timers WHERE study_uid = $study");
            _upsertCompression = Cmd("INSERT INTO compression_timers VALUES ($study, $due) ON CONFLICT DO UPDATE SET due_at = excluded.due_at");
            _deleteCompression = Cmd("DELETE FROM compression_timers WHERE study_uid = $study");
            _deleteKept = Cmd("DELETE FROM kept_blobs WHERE study_uid = $study AND sop_uid = $sop");
            _insertKept = Cmd($"INSERT INTO kept_blobs ({IndexRows.KeptBlobColumns}) VALUES ($study, $sop, $store, $key, $rep, $tier, $size, $sha, $ts) ON CONFLICT DO NOTHING");
        }

        public void Bind(SqliteTransaction tx)
        {
            foreach (var cmd in (SqliteCommand[])[_current, _upsertStudy, _deletePatient, _upsertPatient, _deleteDate, _upsertDate, _upsertSeries,
                         _deleteSeries, _deleteInstance, _upsertInstance, _claimLocation, _locationOwner, _upsertTimer, _deleteTimer, _upsertCompression, _deleteCompression,
                         _deleteKept, _insertKept])
                cmd.Transaction = tx;
        }

        private static int Run(SqliteCommand cmd, params (string Name, object? Value)[] values)
        {
            cmd.Parameters.Clear();
            foreach (var (name, value) in values) cmd.Parameters.AddWithValue(name, value ?? DBNull.Value);
            return cmd.ExecuteNonQuery();
        }

        /// <summary>Applies the update, claiming its instances' locations first; returns the instances other studies hold (the caller then rolls back).</summary>
        public IReadOnlyList<LocationConflict> Apply(StudyIndexUpdate u)
        {
            List<LocationConflict>? conflicts = null;
            foreach (var i in u.Instances)
            {
                var ih = i.Header;
                if (Run(_claimLocation, ("$sop", ih.SopInstanceUid), ("$study", ih.StudyInstanceUid), ("$series", ih.SeriesInstanceUid)) > 0) continue;
                _locationOwner.Parameters.Clear();
                _locationOwner.Parameters.AddWithValue("$sop", ih.SopInstanceUid);
                (conflicts ??= []).Add(new LocationConflict(ih.SopInstanceUid, _locationOwner.ExecuteScalar() as string ?? "(unknown)"));
            }
            if (conflicts is not null) return conflicts;
            var st = u.Study;
            var h = st.Latest;
            string bucket = DateBucket(h.StudyDate);
            // The patient or the study date can change with a later instance: move the partition rows with them.
            _current.Parameters.Clear();
            _current.Parameters.AddWithValue("$study", st.StudyInstanceUid);
            using (var r = _current.ExecuteReader())
            {
                if (r.Read())
                {
                    string oldPid = r.GetString(0), oldIssuer = r.GetString(1), oldBucket = r.GetString(2);
                    if (oldPid != h.PatientId || oldIssuer != h.IssuerOfPatientId)
                        Run(_deletePatient, ("$pid", oldPid), ("$issuer", oldIssuer), ("$study", st.StudyInstanceUid));
                    if (oldBucket != bucket) Run(_deleteDate, ("$bucket", oldBucket), ("$study", st.StudyInstanceUid));
                }
            }
            Run(_upsertStudy, ("$study", st.StudyInstanceUid), ("$pid", h.PatientId), ("$issuer", h.IssuerOfPatientId), ("$pname", h.PatientName),
                ("$pbirth", h.PatientBirthDate), ("$psex", h.PatientSex), ("$sdate", h.StudyDate), ("$stime", h.StudyTime), ("$acc", h.AccessionNumber),
                ("$sid", h.StudyId), ("$sdesc", h.StudyDescription), ("$ref", h.ReferringPhysicianName), ("$bucket", bucket), ("$mods", st.Modalities),
                ("$nseries", st.SeriesCount), ("$ninst", st.InstanceCount), ("$size", st.SizeBytes), ("$stable", st.Stable ? 1 : 0),
                ("$last", Millis(st.LastReceived)), ("$due", Millis(st.StableDue)), ("$stableat", Millis(st.StableAt)), ("$seq", u.JournalSequenceNr), ("$procs", h.ProcedureCodes));
            Run(_upsertPatient, ("$pid", h.PatientId), ("$issuer", h.IssuerOfPatientId), ("$study", st.StudyInstanceUid), ("$sdate", h.StudyDate));
            Run(_upsertDate, ("$bucket", bucket), ("$study", st.StudyInstanceUid), ("$sdate", h.StudyDate));
            foreach (var (series, sop) in u.RemovedInstances)
            {
                Run(_deleteInstance, ("$study", st.StudyInstanceUid), ("$series", series), ("$sop", sop));
                Run(_deleteKept, ("$study", st.StudyInstanceUid), ("$sop", sop));
            }
            foreach (var s in u.Series)
            {
                if (s.InstanceCount <= 0 || s.Latest is null) Run(_deleteSeries, ("$study", st.StudyInstanceUid), ("$series", s.SeriesInstanceUid));
                else
                    Run(_upsertSeries, ("$study", st.StudyInstanceUid), ("$series", s.SeriesInstanceUid), ("$mod", s.Latest.Modality), ("$num", s.Latest.SeriesNumber),
                        ("$desc", s.Latest.SeriesDescription), ("$body", s.Latest.BodyPartExamined), ("$date", s.Latest.SeriesDate), ("$count", s.InstanceCount),
                        ("$inst", s.Latest.InstitutionName));
            }
            foreach (var i in u.Instances)
            {
                var ih = i.Header;
                Run(_upsertInstance, ("$study", ih.StudyInstanceUid), ("$series", ih.SeriesInstanceUid), ("$sop", ih.SopInstanceUid), ("$class", ih.SopClassUid),
                    ("$ts", ih.TransferSyntaxUid), ("$num", ih.InstanceNumber), ("$frames", ih.NumberOfFrames), ("$rows", ih.Rows), ("$cols", ih.Columns),
                    ("$key", i.Blob.Key), ("$store", i.Blob.Store), ("$rep", i.Blob.Representation), ("$tier", i.Blob.Tier), ("$size", i.Size), ("$sha", i.Sha256), ("$at", i.ReceivedAt.ToUnixTimeMilliseconds()), ("$ae", i.CallingAE));
                Run(_deleteKept, ("$study", ih.StudyInstanceUid), ("$sop", ih.SopInstanceUid));
            }
            foreach (var k in u.KeptBlobs)
                Run(_insertKept, ("$study", k.StudyInstanceUid), ("$sop", k.SopInstanceUid), ("$store", k.Blob.Store), ("$key", k.Blob.Key),
                    ("$rep", k.Blob.Representation), ("$tier", k.Blob.Tier), ("$size", k.Size), ("$sha", k.Sha256), ("$ts", k.TransferSyntaxUid));
            if (!st.Stable && st.StableDue is { } due) Run(_upsertTimer, ("$study", st.StudyInstanceUid), ("$due", Millis(due)));
            else Run(_deleteTimer, ("$study", st.StudyInstanceUid));
            if (st.CompressionDue is { } compressionDue) Run(_upsertCompression, ("$study", st.StudyInstanceUid), ("$due", Millis(compressionDue)));
            else Run(_deleteCompression, ("$study", st.StudyInstanceUid));
            return [];
        }
    }

    // ---- reads ----

    private SqliteConnection Open()
    {
        var c = new SqliteConnection(_connectionString);
        c.Open();
        return c;
    }

    private static SqliteCommand Command(SqliteConnection c, string sql, params (string Name, object? Value)[] values)
    {
        var cmd = c.CreateCommand();
        cmd.CommandText = sql;
        foreach (var (name, value) in values) cmd.Parameters.AddWithValue(name, value ?? DBNull.Value);
        return cmd;
    }

    public async Task<long> GetWatermarkAsync(string studyInstanceUid, CancellationToken cancellationToken)
    {
        await using var c = Open();
        await using var cmd = Command(c, "SELECT journal_seq FROM studies WHERE study_uid = $s", ("$s", studyInstanceUid));
        return await cmd.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false) is long seq ? seq : 0;
    }

    public async Task<StudyRecord?> GetStudyAsync(string studyInstanceUid, CancellationToken cancellationToken)
    {
        await using var c = Open();
        await using var cmd = Command(c, $"SELECT {StudyColumns} FROM studies WHERE study_uid = $s", ("$s", studyInstanceUid));
        await using var r = await cmd.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        return await r.ReadAsync(cancellationToken).ConfigureAwait(false) ? ReadStudy(r) : null;
    }

    public async IAsyncEnumerable<StudyRecord> ScanStudiesAsync([EnumeratorCancellation] CancellationToken cancellationToken)
    {
        const int Page = 1000;
        string after = "";
        while (true)
        {
            var page = new List<StudyRecord>(Page);
            await using (var c = Open())
            await using (var cmd = Command(c, $"SELECT {StudyColumns} FROM studies WHERE study_uid > $after ORDER BY study_uid LIMIT {Page}", ("$after", after)))
            await using (var r = await cmd.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false))
            {
                while (await r.ReadAsync(cancellationToken).ConfigureAwait(false)) page.Add(ReadStudy(r));
            }
            foreach (var study in page) yield return study;
            if (page.Count < Page) yield break;
            after = page[^1].StudyInstanceUid;
        }
    }

    public async IAsyncEnumerable<(string PatientId, string IssuerOfPatientId, string StudyInstanceUid)> ScanPatientStudiesAsync(
        [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        const int Page = 1000;
        (string Id, string Issuer, string Study) after = ("", "", "");
        while (true)
        {
            var page = new List<(string, string, string)>(Page);
            await using (var c = Open())
            await using (var cmd = Command(c, "SELECT patient_id, issuer_of_patient_id, study_uid FROM patient_studies "
                + "WHERE (patient_id, issuer_of_patient_id, study_uid) > ($p, $i, $s) "
                + $"ORDER BY patient_id, issuer_of_patient_id, study_uid LIMIT {Page}", ("$p", after.Id), ("$i", after.Issuer), ("$s", after.Study)))
            await using (var r = await cmd.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false))
            {
                while (await r.ReadAsync(cancellationToken).ConfigureAwait(false)) page.Add((r.GetString(0), r.GetString(1), r.GetString(2)));
            }
            foreach (var row in page) yield return row;
            if (page.Count < Page) yield break;
            after = page[^1];
        }
    }

    public async Task<IReadOnlyList<SeriesRecord>> GetSeriesAsync(string studyInstanceUid, CancellationToken cancellationToken)
    {
        await using var c = Open();
        await using var cmd = Command(c, $"""
            SELECT {SeriesColumns}
            FROM series WHERE study_uid = $s ORDER BY series_uid
            """, ("$s", studyInstanceUid));
        await using var r = await cmd.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        var list = new List<SeriesRecord>();
        while (await r.ReadAsync(cancellationToken).ConfigureAwait(false))
            list.Add(ReadSeries(r));
        return list;
    }

    public async Task DeleteStudyAsync(string studyInstanceUid, CancellationToken cancellationToken)
    {
        // Its own connection, synced (the writer's commits are not): a destruction's step is durable when it returns.
        await using var c = Open();
        Execute(c, "PRAGMA synchronous=FULL; PRAGMA busy_timeout=30000;");
        await using var tx = (SqliteTransaction)await c.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
        foreach (var sql in IndexRows.DeleteStudyStatements)
        {
            await using var cmd = Command(c, sql, ("@study", studyInstanceUid));
            cmd.Transaction = tx;
            await cmd.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }
        await tx.CommitAsync(cancellationToken).ConfigureAwait(false);
    }

    public async IAsyncEnumerable<KeptBlob> ListKeptBlobsAsync(string? studyInstanceUid, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        await using var c = Open();
        await using var cmd = studyInstanceUid is null
            ? Command(c, $"SELECT {IndexRows.KeptBlobColumns} FROM kept_blobs ORDER BY study_uid, sop_uid, blob_key")
            : Command(c, $"SELECT {IndexRows.KeptBlobColumns} FROM kept_blobs WHERE study_uid = $s ORDER BY sop_uid, blob_key", ("$s", studyInstanceUid));
        await using var r = await cmd.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        while (await r.ReadAsync(cancellationToken).ConfigureAwait(false)) yield return IndexRows.ReadKeptBlob(r);
    }

    public async IAsyncEnumerable<IndexedInstance> ListInstancesAsync(string? studyInstanceUid, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        await using var c = Open();
        await using var cmd = studyInstanceUid is null
            ? Command(c, $"SELECT {InstanceColumns} FROM instances ORDER BY study_uid, series_uid, sop_uid")
            : Command(c, $"SELECT {InstanceColumns} FROM instances WHERE study_uid = $s ORDER BY series_uid, sop_uid", ("$s", studyInstanceUid));
        await using var r = await cmd.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        while (await r.ReadAsync(cancellationToken).ConfigureAwait(false)) yield return ReadInstance(r);
    }

    public async Task<IndexedInstance?> FindInstanceAsync(string sopInstanceUid, CancellationToken cancellationToken)
    {
        await using var c = Open();
        await using var cmd = Command(c, $"""
            SELECT {InstanceColumns} FROM instances WHERE (study_uid, series_uid, sop_uid) =
                (SELECT study_uid, series_uid, sop_uid FROM instance_locations WHERE sop_uid = $sop)
            """, ("$sop", sopInstanceUid));
        await using var r = await cmd.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        return await r.ReadAsync(cancellationToken).ConfigureAwait(false) ? ReadInstance(r) : null;
    }

    private async Task<IReadOnlyList<string>> StringsAsync(string sql, CancellationToken cancellationToken, params (string, object?)[] values)
    {
        await using var c = Open();
        await using var cmd = Command(c, sql, values);
        await using var r = await cmd.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        var list = new List<string>();
        while (await r.ReadAsync(cancellationToken).ConfigureAwait(false)) list.Add(r.GetString(0));
        return list;
    }

    public Task<IReadOnlyList<string>> StudiesOfPatientAsync(string patientId, string? issuerOfPatientId, CancellationToken cancellationToken) =>
        issuerOfPatientId is null
            ? StringsAsync("SELECT study_uid FROM patient_studies WHERE patient_id = $p ORDER BY issuer_of_patient_id, study_uid", cancellationToken, ("$p", patientId))
            : StringsAsync("SELECT study_uid FROM patient_studies WHERE patient_id = $p AND issuer_of_patient_id = $i ORDER BY study_uid", cancellationToken,
                ("$p", patientId), ("$i", issuerOfPatientId));

    public Task<IReadOnlyList<string>> StudiesInMonthAsync(string yyyymm, CancellationToken cancellationToken) =>
        StringsAsync("SELECT study_uid FROM date_studies WHERE date_bucket = $b ORDER BY study_uid", cancellationToken, ("$b", yyyymm));

    public Task<IReadOnlyList<string>> DueForStabilityAsync(DateTimeOffset now, int limit, CancellationToken cancellationToken) =>
        StringsAsync("SELECT study_uid FROM stability_timers WHERE due_at <= $now ORDER BY due_at LIMIT $limit", cancellationToken,
            ("$now", now.ToUnixTimeMilliseconds()), ("$limit", limit));

    public Task<IReadOnlyList<string>> DueForCompressionAsync(DateTimeOffset now, int limit, CancellationToken cancellationToken) =>
        StringsAsync("SELECT study_uid FROM compression_timers WHERE due_at <= $now ORDER BY due_at LIMIT $limit", cancellationToken,
            ("$now", now.ToUnixTimeMilliseconds()), ("$limit", limit));

    public async Task<IndexCounts> CountAsync(CancellationToken cancellationToken)
    {
        await using var c = Open();
        await using var cmd = Command(c, """
            SELECT (SELECT COUNT(*) FROM studies), (SELECT COUNT(*) FROM series), (SELECT COUNT(*) FROM instances),
                   (SELECT COALESCE(SUM(size_bytes), 0) FROM instances)
            """);
        await using var r = await cmd.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        await r.ReadAsync(cancellationToken).ConfigureAwait(false);
        return new IndexCounts(r.GetInt64(0), r.GetInt64(1), r.GetInt64(2), r.GetInt64(3));
    }

    public async ValueTask DisposeAsync()
    {
        _queue.Writer.TryComplete();
        if (_writerLoop is not null) await _writerLoop.ConfigureAwait(false);
        if (_writer is not null) await _writer.DisposeAsync().ConfigureAwait(false);
        SqliteConnection.ClearAllPools();
    }
}
