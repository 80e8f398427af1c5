using System.Data;
using System.Runtime.CompilerServices;
using System.Threading.Channels;
using AkkaVna.Core.Model;
using AkkaVna.Core.Ports;
using static AkkaVna.Core.Ports.IndexRows;
using AkkaVna.Core.Studies;
using Microsoft.Extensions.Logging;
using Npgsql;
using NpgsqlTypes;

namespace AkkaVna.Index.PostgreSql;

/// <summary>
/// The index on PostgreSQL, shared by every node of a cluster: the same query-first tables as the embedded index
/// (studies by study, patient_studies by patient and issuer, date_studies by month, series, instances, instance
/// locations, stability timers), in a schema of their own, versioned, with migrations applied at start under an advisory
/// lock (several nodes may start at once). Each node writes through one writer that groups the updates of every study
/// waiting into one transaction of few round trips: one statement claims all of a study's SOP Instance UIDs
/// (<c>INSERT … ON CONFLICT … RETURNING</c>, the first study to commit keeps a UID, whichever node it commits on),
/// arrays unnested into one upsert per table. Reads take pooled connections of their own, and statements the index
/// repeats are prepared once per connection.
/// <para>
/// As on SQLite, the index is the journal's projection and commits without waiting for the disk
/// (<c>synchronous_commit = off</c> for its writes: the journal's commit is the one that waits); every
/// <see cref="MakeDurableAsync"/> commits synchronously, which flushes the write-ahead log up to there — every earlier
/// index commit with it — and records the node's projection checkpoint. A crash of the database server loses at most
/// the index commits since, which the nodes re-project from the journal as after any crash.
/// </para>
/// </summary>
public sealed class PostgreSqlArchiveIndex : IArchiveIndex
{
    private const int MaxGroup = 256;
    private const string CheckpointPrefix = "checkpoint:";
    private readonly NpgsqlDataSource _data;
    private readonly string _schema;
    private readonly ILogger _log;
    private readonly TimeProvider _time;
    private readonly Channel<QueuedWrite> _queue = Channel.CreateUnbounded<QueuedWrite>(new UnboundedChannelOptions { SingleReader = true });
    private Task? _writerLoop;

    private sealed record QueuedWrite(StudyIndexUpdate Update, TaskCompletionSource<IndexCommitResult> Done);

    /// <param name="schema">The PostgreSQL schema the tables live in (created when missing): several archives may share a database.</param>
    public PostgreSqlArchiveIndex(string connectionString, ILogger log, TimeProvider? time = null, string schema = "akkavna")
    {
        if (!IsIdentifier(schema)) throw new ArgumentException($"'{schema}' is not a schema name (lower-case letters, digits, underscores)", nameof(schema));
        var builder = new NpgsqlConnectionStringBuilder(connectionString) { SearchPath = schema };
        builder.Pooling = true;
        // Only this index uses these connections and it leaves no session state behind: no DISCARD ALL round trip per use.
        builder.NoResetOnClose = true;
        if (builder.MaxAutoPrepare == 0) builder.MaxAutoPrepare = 64;
        if (builder.CommandTimeout == 30) builder.CommandTimeout = 60;
        _data = NpgsqlDataSource.Create(builder.ConnectionString);
        _schema = schema;
        _log = log;
        _time = time ?? TimeProvider.System;
        Lifecycle = new SqlLifecycleStore(async ct => await _data.OpenConnectionAsync(ct).ConfigureAwait(false));
    }

    /// <summary>The lifecycle's records in this database (each write its own synchronous commit).</summary>
    public ILifecycleStore Lifecycle { get; }

    /// <summary>Where the index is, for logs (no password).</summary>
    public string Description
    {
        get
        {
            var b = new NpgsqlConnectionStringBuilder(_data.ConnectionString);
            return $"postgresql://{b.Host}:{b.Port}/{b.Database} (schema {_schema})";
        }
    }

    private static bool IsIdentifier(string s) => s.Length is > 0 and <= 63 && s.All(c => char.IsAsciiLetterLower(c) || char.IsAsciiDigit(c) || c == '_') && !char.IsAsciiDigit(s[0]);

    // ------------------------------------------------------------------ schema

    private static readonly (int Version, string Sql)[] Migrations =
    [
        (1, """
            CREATE TABLE studies (
                study_uid text NOT NULL PRIMARY KEY,
                patient_id text NOT NULL, issuer_of_patient_id text NOT NULL,
                patient_name text, patient_birth_date text, patient_sex text,
                study_date text, study_time text, accession_number text, study_id text, study_description text, referring_physician text,
                date_bucket text NOT NULL,
                modalities text NOT NULL, series_count integer NOT NULL, instance_count integer NOT NULL, size_bytes bigint NOT NULL,
                stable boolean NOT NULL, last_received bigint, stable_due bigint, stable_at bigint,
                journal_seq bigint NOT NULL
            );
            CREATE TABLE patient_studies (
                patient_id text NOT NULL, issuer_of_patient_id text NOT NULL, study_uid text NOT NULL, study_date text,
                PRIMARY KEY (patient_id, issuer_of_patient_id, study_uid)
            );
            CREATE TABLE date_studies (
                date_bucket text NOT NULL, study_uid text NOT NULL, study_date text,
                PRIMARY KEY (date_bucket, study_uid)
            );
            CREATE TABLE series (
                study_uid text NOT NULL, series_uid text NOT NULL,
                modality text, series_number integer, series_description text, body_part text, series_date text,
                instance_count integer NOT NULL,
                PRIMARY KEY (study_uid, series_uid)
            );
            CREATE TABLE instances (
                study_uid text NOT NULL, series_uid text NOT NULL, sop_uid text NOT NULL,
                sop_class_uid text NOT NULL, transfer_syntax_uid text NOT NULL,
                instance_number integer, number_of_frames integer, rows integer, columns integer,
                blob_store text NOT NULL, blob_key text NOT NULL, blob_representation text NOT NULL, blob_tier text NOT NULL,
                size_bytes bigint NOT NULL, sha256 text NOT NULL, received_at bigint NOT NULL, calling_ae text NOT NULL,
                PRIMARY KEY (study_uid, series_uid, sop_uid)
            );
            CREATE TABLE instance_locations (
                sop_uid text NOT NULL PRIMARY KEY, study_uid text NOT NULL, series_uid text NOT NULL
            );
            CREATE TABLE stability_timers (
                study_uid text NOT NULL PRIMARY KEY, due_at bigint NOT NULL
            );
            CREATE INDEX stability_timers_by_due ON stability_timers (due_at, study_uid);
            CREATE TABLE node_state (
                key text NOT NULL PRIMARY KEY, value bigint NOT NULL, updated_at bigint NOT NULL DEFAULT 0
            );
            """),
        // Studies whose compression pass is due, by when (a query-first table, like the stability timers).
        (2, """
            CREATE TABLE IF NOT EXISTS compression_timers (
                study_uid text NOT NULL PRIMARY KEY, due_at bigint NOT NULL
            );
            CREATE INDEX IF NOT EXISTS compression_timers_by_due ON compression_timers (due_at, study_uid);
            """),
        // Originals kept beside their compressed copies (compression.keep-original).
        (3, IndexRows.KeptBlobTable + ";"),
        // The lifecycle's records: legal holds, due times, the approval queue, tombstones, the audit trail.
        (4, SqlLifecycleStore.Schema(sqlite: false)),
        // What lifecycle rules match on besides: the study's procedure codes, the series' institution.
        (5, IndexRows.ProcedureAndInstitutionColumns),
        // Per-study data keys (encryption at rest), wrapped by a master key.
        (6, SqlLifecycleStore.StudyKeysTable),
    ];

    /// <summary>The schema version this build writes.</summary>
    public static int SchemaVersion => Migrations[^1].Version;

    public async Task InitializeAsync(CancellationToken cancellationToken)
    {
        await using (var c = await _data.OpenConnectionAsync(cancellationToken).ConfigureAwait(false))
        {
            // One node migrates at a time (the lock is per database, released with the connection's transaction).
            await using var tx = await c.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
            await ExecuteAsync(c, tx, $"SELECT pg_advisory_xact_lock(hashtext('akkavna-schema-{_schema}'))", cancellationToken).ConfigureAwait(false);
            await ExecuteAsync(c, tx, $"CREATE SCHEMA IF NOT EXISTS {_schema}", cancellationToken).ConfigureAwait(false);
            await ExecuteAsync(c, tx, $"CREATE TABLE IF NOT EXISTS {_schema}.schema_version (version integer NOT NULL PRIMARY KEY, applied_at bigint NOT NULL)",
                cancellationToken).ConfigureAwait(false);
            long current;
            await using (var cmd = new NpgsqlCommand($"SELECT COALESCE(MAX(version), 0) FROM {_schema}.schema_version", c, tx))
                current = Convert.ToInt64(await cmd.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false));
            if (current > SchemaVersion)
                throw new InvalidOperationException($"the index has schema version {current}, newer than this build's {SchemaVersion}: upgrade akka-vna");
            foreach (var (version, sql) in Migrations.Where(m => m.Version > current))
            {
                await ExecuteAsync(c, tx, $"SET LOCAL search_path TO {_schema};\n" + sql, cancellationToken).ConfigureAwait(false);
                await using var record = new NpgsqlCommand($"INSERT INTO {_schema}.schema_version VALUES (@v, @at)", c, tx);
                record.Parameters.AddWithValue("v", version);
                record.Parameters.AddWithValue("at", _time.GetUtcNow().ToUnixTimeMilliseconds());
                await record.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
                _log.LogInformation("index schema {Schema} migrated to version {Version}", _schema, version);
            }
            // A new index (no study, no checkpoint) reflects nothing of the journal yet: its checkpoint is the beginning.
            await using (var fresh = new NpgsqlCommand($"""
                INSERT INTO {_schema}.node_state (key, value) SELECT @k, @v
                WHERE NOT EXISTS (SELECT 1 FROM {_schema}.studies) AND NOT EXISTS (SELECT 1 FROM {_schema}.node_state WHERE key LIKE 'checkpoint:%')
                ON CONFLICT (key) DO NOTHING
                """, c, tx))
            {
                fresh.Parameters.AddWithValue("k", CheckpointPrefix + "(new index)");
                fresh.Parameters.AddWithValue("v", DateTimeOffset.UnixEpoch.UtcTicks);
                await fresh.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
            }
            await tx.CommitAsync(cancellationToken).ConfigureAwait(false);
        }
        _writerLoop = Task.Run(WriteLoopAsync, CancellationToken.None);
    }

    private static async Task ExecuteAsync(NpgsqlConnection c, NpgsqlTransaction? tx, string sql, CancellationToken cancellationToken)
    {
        await using var cmd = new NpgsqlCommand(sql, c, tx);
        await cmd.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    // ------------------------------------------------------------------ writes

    public Task<IndexCommitResult> CommitAsync(StudyIndexUpdate update, CancellationToken cancellationToken)
    {
        var done = new TaskCompletionSource<IndexCommitResult>(TaskCreationOptions.RunContinuationsAsynchronously);
        if (!_queue.Writer.TryWrite(new QueuedWrite(update, done))) done.SetException(new ObjectDisposedException(nameof(PostgreSqlArchiveIndex)));
        return done.Task.WaitAsync(cancellationToken);
    }

    private async Task WriteLoopAsync()
    {
        var group = new List<QueuedWrite>(MaxGroup);
        while (await _queue.Reader.WaitToReadAsync().ConfigureAwait(false))
        {
            group.Clear();
            while (group.Count < MaxGroup && _queue.Reader.TryRead(out var item)) group.Add(item);
            try
            {
                var results = await WriteAsync(group.Select(g => g.Update).ToList()).ConfigureAwait(false);
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
                        g.Done.TrySetResult((await WriteAsync([g.Update]).ConfigureAwait(false))[0]);
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
    }

    /// <summary>One transaction; each update in a savepoint of its own, rolled back alone when it claims another study's instance.</summary>
    private async Task<IndexCommitResult[]> WriteAsync(IReadOnlyList<StudyIndexUpdate> updates)
    {
        await using var c = await _data.OpenConnectionAsync().ConfigureAwait(false);
        await using var tx = await c.BeginTransactionAsync().ConfigureAwait(false);
        await using (var async = new NpgsqlCommand("SET LOCAL synchronous_commit TO OFF", c, tx)) await async.ExecuteNonQueryAsync().ConfigureAwait(false);
        var results = new IndexCommitResult[updates.Count];
        for (int i = 0; i < updates.Count; i++)
        {
            await tx.SaveAsync("study").ConfigureAwait(false);
            var conflicts = await ClaimAsync(c, tx, updates[i]).ConfigureAwait(false);
            if (conflicts.Count > 0)
            {
                await tx.RollbackAsync("study").ConfigureAwait(false);
                results[i] = new IndexCommitResult(conflicts);
                continue;
            }
            await ApplyAsync(c, tx, updates[i]).ConfigureAwait(false);
            await tx.ReleaseAsync("study").ConfigureAwait(false);
            results[i] = IndexCommitResult.Applied;
        }
        await tx.CommitAsync().ConfigureAwait(false);
        return results;
    }

    /// <summary>
    /// Claims the locations of the update's instances in one statement: a SOP Instance UID another study holds is left as
    /// it is and missing from what the statement returns; those are the conflicts, with their owners.
    /// </summary>
    private static async Task<IReadOnlyList<LocationConflict>> ClaimAsync(NpgsqlConnection c, NpgsqlTransaction tx, StudyIndexUpdate u)
    {
        if (u.Instances.Count == 0) return [];
        var sops = u.Instances.Select(i => i.Header.SopInstanceUid).ToArray();
        var claimed = new HashSet<string>(StringComparer.Ordinal);
        await using (var cmd = new NpgsqlCommand("""
            INSERT INTO instance_locations (sop_uid, study_uid, series_uid)
            SELECT sop, @study, series FROM unnest(@sops, @series) AS t(sop, series)
            ON CONFLICT (sop_uid) DO UPDATE SET series_uid = EXCLUDED.series_uid WHERE instance_locations.study_uid = EXCLUDED.study_uid
            RETURNING sop_uid
            """, c, tx))
        {
            cmd.Parameters.AddWithValue("study", u.Study.StudyInstanceUid);
            cmd.Parameters.AddWithValue("sops", sops);
            cmd.Parameters.AddWithValue("series", u.Instances.Select(i => i.Header.SeriesInstanceUid).ToArray());
            await using var r = await cmd.ExecuteReaderAsync().ConfigureAwait(false);
            while (await r.ReadAsync().ConfigureAwait(false)) claimed.Add(r.GetString(0));
        }
        var lost = sops.Where(s => !claimed.Contains(s)).Distinct().ToArray();
        if (lost.Length == 0) return [];
        var conflicts = new List<LocationConflict>();
        await using (var owners = new NpgsqlCommand("SELECT sop_uid, study_uid FROM instance_locations WHERE sop_uid = ANY(@sops)", c, tx))
        {
            owners.Parameters.AddWithValue("sops", lost);
            await using var r = await owners.ExecuteReaderAsync().ConfigureAwait(false);
            while (await r.ReadAsync().ConfigureAwait(false)) conflicts.Add(new LocationConflict(r.GetString(0), r.GetString(1)));
        }
        return conflicts;
    }

    private static async Task ApplyAsync(NpgsqlConnection c, NpgsqlTransaction tx, StudyIndexUpdate u)
    {
        var st = u.Study;
        var h = st.Latest;
        string bucket = DateBucket(h.StudyDate);
        var batch = new NpgsqlBatch(c, tx);
        NpgsqlBatchCommand Add(string sql, params (string Name, object? Value)[] values)
        {
            var cmd = new NpgsqlBatchCommand(sql);
            foreach (var (name, value) in values) cmd.Parameters.Add(new NpgsqlParameter(name, value ?? DBNull.Value));
            batch.BatchCommands.Add(cmd);
            return cmd;
        }
        // The patient or the study date can change with a later instance: move the partition rows with them (only when
        // this update is not older than what the study row holds).
        Add("""
            DELETE FROM patient_studies p USING studies s
            WHERE s.study_uid = @study AND s.journal_seq <= @seq AND p.study_uid = s.study_uid AND p.patient_id = s.patient_id
              AND p.issuer_of_patient_id = s.issuer_of_patient_id AND (s.patient_id <> @pid OR s.issuer_of_patient_id <> @issuer)
            """, ("study", st.StudyInstanceUid), ("seq", u.JournalSequenceNr), ("pid", h.PatientId), ("issuer", h.IssuerOfPatientId));
        Add("""
            DELETE FROM date_studies d USING studies s
            WHERE s.study_uid = @study AND s.journal_seq <= @seq AND d.study_uid = s.study_uid AND d.date_bucket = s.date_bucket AND s.date_bucket <> @bucket
            """, ("study", st.StudyInstanceUid), ("seq", u.JournalSequenceNr), ("bucket", bucket));
        Add("""
            INSERT INTO studies VALUES (@study, @pid, @issuer, @pname, @pbirth, @psex, @sdate, @stime, @acc, @sid, @sdesc, @ref,
                @bucket, @mods, @nseries, @ninst, @size, @stable, @last, @due, @stableat, @seq, @procs)
            ON CONFLICT (study_uid) DO UPDATE SET procedure_codes = EXCLUDED.procedure_codes, patient_id = EXCLUDED.patient_id, issuer_of_patient_id = EXCLUDED.issuer_of_patient_id,
                patient_name = EXCLUDED.patient_name, patient_birth_date = EXCLUDED.patient_birth_date, patient_sex = EXCLUDED.patient_sex,
                study_date = EXCLUDED.study_date, study_time = EXCLUDED.study_time, accession_number = EXCLUDED.accession_number,
                study_id = EXCLUDED.study_id, study_description = EXCLUDED.study_description, referring_physician = EXCLUDED.referring_physician,
                date_bucket = EXCLUDED.date_bucket, modalities = EXCLUDED.modalities, series_count = EXCLUDED.series_count,
                instance_count = EXCLUDED.instance_count, size_bytes = EXCLUDED.size_bytes, stable = EXCLUDED.stable,
                last_received = EXCLUDED.last_received, stable_due = EXCLUDED.stable_due, stable_at = EXCLUDED.stable_at, journal_seq = EXCLUDED.journal_seq
            WHERE EXCLUDED.journal_seq >= studies.journal_seq
            """, ("study", st.StudyInstanceUid), ("pid", h.PatientId), ("issuer", h.IssuerOfPatientId), ("pname", h.PatientName),
            ("pbirth", h.PatientBirthDate), ("psex", h.PatientSex), ("sdate", h.StudyDate), ("stime", h.StudyTime), ("acc", h.AccessionNumber),
            ("sid", h.StudyId), ("sdesc", h.StudyDescription), ("ref", h.ReferringPhysicianName), ("bucket", bucket), ("mods", st.Modalities),
            ("nseries", st.SeriesCount), ("ninst", st.InstanceCount), ("size", st.SizeBytes), ("stable", st.Stable),
            ("last", Millis(st.LastReceived)), ("due", Millis(st.StableDue)), ("stableat", Millis(st.StableAt)), ("seq", u.JournalSequenceNr), ("procs", h.ProcedureCodes));
        Add("INSERT INTO patient_studies VALUES (@pid, @issuer, @study, @sdate) ON CONFLICT (patient_id, issuer_of_patient_id, study_uid) DO UPDATE SET study_date = EXCLUDED.study_date",
            ("pid", h.PatientId), ("issuer", h.IssuerOfPatientId), ("study", st.StudyInstanceUid), ("sdate", h.StudyDate));
        Add("INSERT INTO date_studies VALUES (@bucket, @study, @sdate) ON CONFLICT (date_bucket, study_uid) DO UPDATE SET study_date = EXCLUDED.study_date",
            ("bucket", bucket), ("study", st.StudyInstanceUid), ("sdate", h.StudyDate));
        if (u.RemovedInstances.Count > 0)
            Add("DELETE FROM instances WHERE study_uid = @study AND (series_uid, sop_uid) IN (SELECT * FROM unnest(@series, @sops))",
                ("study", st.StudyInstanceUid), ("series", u.RemovedInstances.Select(r => r.SeriesInstanceUid).ToArray()),
                ("sops", u.RemovedInstances.Select(r => r.SopInstanceUid).ToArray()));
        // Kept originals: absolute for every instance written, gone with every instance removed.
        var keptFor = u.Instances.Select(x => x.Header.SopInstanceUid).Concat(u.RemovedInstances.Select(r => r.SopInstanceUid)).Distinct().ToArray();
        if (keptFor.Length > 0)
            Add("DELETE FROM kept_blobs WHERE study_uid = @study AND sop_uid = ANY(@sops)", ("study", st.StudyInstanceUid), ("sops", keptFor));
        if (u.KeptBlobs.Count > 0)
        {
            var k = u.KeptBlobs;
            Add($"""
                INSERT INTO kept_blobs ({IndexRows.KeptBlobColumns})
                SELECT * FROM unnest(@study, @sop, @store, @key, @rep, @tier, @size, @sha, @ts) ON CONFLICT DO NOTHING
                """, ("study", k.Select(x => x.StudyInstanceUid).ToArray()), ("sop", k.Select(x => x.SopInstanceUid).ToArray()),
                ("store", k.Select(x => x.Blob.Store).ToArray()), ("key", k.Select(x => x.Blob.Key).ToArray()),
                ("rep", k.Select(x => x.Blob.Representation).ToArray()), ("tier", k.Select(x => x.Blob.Tier).ToArray()),
                ("size", k.Select(x => x.Size).ToArray()), ("sha", k.Select(x => x.Sha256).ToArray()), ("ts", k.Select(x => x.TransferSyntaxUid).ToArray()));
        }
        var gone = u.Series.Where(s => s.InstanceCount <= 0 || s.Latest is null).Select(s => s.SeriesInstanceUid).ToArray();
        if (gone.Length > 0) Add("DELETE FROM series WHERE study_uid = @study AND series_uid = ANY(@series)", ("study", st.StudyInstanceUid), ("series", gone));
        var kept = u.Series.Where(s => s.InstanceCount > 0 && s.Latest is not null).ToList();
        if (kept.Count > 0)
            Add("""
                INSERT INTO series SELECT @study, * FROM unnest(@series, @mod, @num, @desc, @body, @date, @count, @inst)
                ON CONFLICT (study_uid, series_uid) DO UPDATE SET institution_name = EXCLUDED.institution_name, modality = EXCLUDED.modality, series_number = EXCLUDED.series_number,
                    series_description = EXCLUDED.series_description, body_part = EXCLUDED.body_part, series_date = EXCLUDED.series_date,
                    instance_count = EXCLUDED.instance_count
                """, ("study", st.StudyInstanceUid), ("series", kept.Select(s => s.SeriesInstanceUid).ToArray()),
                ("mod", kept.Select(s => s.Latest!.Modality).ToArray()), ("num", kept.Select(s => s.Latest!.SeriesNumber).ToArray()),
                ("desc", kept.Select(s => s.Latest!.SeriesDescription).ToArray()), ("body", kept.Select(s => s.Latest!.BodyPartExamined).ToArray()),
                ("date", kept.Select(s => s.Latest!.SeriesDate).ToArray()), ("count", kept.Select(s => s.InstanceCount).ToArray()),
                ("inst", kept.Select(s => s.Latest!.InstitutionName).ToArray()));
        if (u.Instances.Count > 0)
        {
            var i = u.Instances;
            Add("""
                INSERT INTO instances (study_uid, series_uid, sop_uid, sop_class_uid, transfer_syntax_uid, instance_number, number_of_frames, rows, columns,
                    blob_store, blob_key, blob_representation, blob_tier, size_bytes, sha256, received_at, calling_ae)
                SELECT * FROM unnest(@study, @series, @sop, @class, @ts, @num, @frames, @rows, @cols, @store, @key, @rep, @tier, @size, @sha, @at, @ae)
                ON CONFLICT (study_uid, series_uid, sop_uid) DO UPDATE SET sop_class_uid = EXCLUDED.sop_class_uid,
                    transfer_syntax_uid = EXCLUDED.transfer_syntax_uid, instance_number = EXCLUDED.instance_number,
                    number_of_frames = EXCLUDED.number_of_frames, rows = EXCLUDED.rows, columns = EXCLUDED.columns, blob_store = EXCLUDED.blob_store,
                    blob_key = EXCLUDED.blob_key, blob_representation = EXCLUDED.blob_representation, blob_tier = EXCLUDED.blob_tier,
                    size_bytes = EXCLUDED.size_bytes, sha256 = EXCLUDED.sha256, received_at = EXCLUDED.received_at, calling_ae = EXCLUDED.calling_ae
                """,
                ("study", i.Select(x => x.Header.StudyInstanceUid).ToArray()), ("series", i.Select(x => x.Header.SeriesInstanceUid).ToArray()),
                ("sop", i.Select(x => x.Header.SopInstanceUid).ToArray()), ("class", i.Select(x => x.Header.SopClassUid).ToArray()),
                ("ts", i.Select(x => x.Header.TransferSyntaxUid).ToArray()), ("num", i.Select(x => x.Header.InstanceNumber).ToArray()),
                ("frames", i.Select(x => x.Header.NumberOfFrames).ToArray()), ("rows", i.Select(x => x.Header.Rows).ToArray()),
                ("cols", i.Select(x => x.Header.Columns).ToArray()), ("store", i.Select(x => x.Blob.Store).ToArray()),
                ("key", i.Select(x => x.Blob.Key).ToArray()), ("rep", i.Select(x => x.Blob.Representation).ToArray()),
                ("tier", i.Select(x => x.Blob.Tier).ToArray()), ("size", i.Select(x => x.Size).ToArray()), ("sha", i.Select(x => x.Sha256).ToArray()),
                ("at", i.Select(x => x.ReceivedAt.ToUnixTimeMilliseconds()).ToArray()), ("ae", i.Select(x => x.CallingAE).ToArray()));
        }
        if (!st.Stable && st.StableDue is { } due)
            Add("INSERT INTO stability_timers VALUES (@study, @due) ON CONFLICT (study_uid) DO UPDATE SET due_at = EXCLUDED.due_at", ("study", st.StudyInstanceUid), ("due", Millis(due)));
        else Add("DELETE FROM stability_timers WHERE study_uid = @study", ("study", st.StudyInstanceUid));
        if (st.CompressionDue is { } compressionDue)
            Add("INSERT INTO compression_timers VALUES (@study, @due) ON CONFLICT (study_uid) DO UPDATE SET due_at = EXCLUDED.due_at", ("study", st.StudyInstanceUid), ("due", Millis(compressionDue)));
        else Add("DELETE FROM compression_timers WHERE study_uid = @study", ("study", st.StudyInstanceUid));
        await using (batch) await batch.ExecuteNonQueryAsync().ConfigureAwait(false);
    }

    // ------------------------------------------------------------------ checkpoints

    /// <summary>A synchronous commit: the write-ahead log is flushed up to it, with every index commit before it.</summary>
    public async Task MakeDurableAsync(string node, DateTimeOffset checkpoint, CancellationToken cancellationToken)
    {
        await using var cmd = _data.CreateCommand("""
            INSERT INTO node_state (key, value, updated_at) VALUES (@k, @v, @now)
            ON CONFLICT (key) DO UPDATE SET value = GREATEST(node_state.value, EXCLUDED.value), updated_at = EXCLUDED.updated_at
            """);
        cmd.Parameters.AddWithValue("k", CheckpointPrefix + node);
        cmd.Parameters.AddWithValue("v", checkpoint.UtcTicks);
        cmd.Parameters.AddWithValue("now", _time.GetUtcNow().UtcTicks);
        await cmd.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    public async Task<DateTimeOffset?> GetProjectionCheckpointAsync(CancellationToken cancellationToken)
    {
        await using var cmd = _data.CreateCommand("""
            SELECT COALESCE((SELECT MIN(value) FROM node_state WHERE key LIKE 'checkpoint:%'), (SELECT value FROM node_state WHERE key = 'caught_up'))
            """);
        return await cmd.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false) is long ticks ? new DateTimeOffset(ticks, TimeSpan.Zero) : null;
    }

    public async Task RecordCatchUpAsync(DateTimeOffset caughtUpTo, DateTimeOffset silentSince, CancellationToken cancellationToken)
    {
        await using var batch = _data.CreateBatch();
        var up = new NpgsqlBatchCommand("INSERT INTO node_state (key, value) VALUES ('caught_up', @v) ON CONFLICT (key) DO UPDATE SET value = GREATEST(node_state.value, EXCLUDED.value)");
        up.Parameters.AddWithValue("v", caughtUpTo.UtcTicks);
        var drop = new NpgsqlBatchCommand("""
            DELETE FROM node_state WHERE key LIKE 'checkpoint:%' AND value < @v
                AND (key IN ('checkpoint:(new index)', 'checkpoint:(before per-node checkpoints)') OR updated_at < @silent)
            """);
        drop.Parameters.AddWithValue("v", caughtUpTo.UtcTicks);
        drop.Parameters.AddWithValue("silent", silentSince.UtcTicks);
        batch.BatchCommands.Add(up);
        batch.BatchCommands.Add(drop);
        await batch.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    // ------------------------------------------------------------------ reads

    private async Task<T?> ScalarAsync<T>(string sql, CancellationToken cancellationToken, params (string Name, object Value)[] values)
    {
        await using var cmd = _data.CreateCommand(sql);
        foreach (var (name, value) in values) cmd.Parameters.AddWithValue(name, value);
        return await cmd.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false) is T t ? t : default;
    }

    public async Task<long> GetWatermarkAsync(string studyInstanceUid, CancellationToken cancellationToken) =>
        await ScalarAsync<long>("SELECT journal_seq FROM studies WHERE study_uid = @s", cancellationToken, ("s", studyInstanceUid)).ConfigureAwait(false);

    public async Task<StudyRecord?> GetStudyAsync(string studyInstanceUid, CancellationToken cancellationToken)
    {
        await using var cmd = _data.CreateCommand($"SELECT {StudyColumns} FROM studies WHERE study_uid = @s");
        cmd.Parameters.AddWithValue("s", studyInstanceUid);
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
            await using (var cmd = _data.CreateCommand($"SELECT {StudyColumns} FROM studies WHERE study_uid COLLATE \"C\" > @after ORDER BY study_uid COLLATE \"C\" LIMIT {Page}"))
            {
                cmd.Parameters.AddWithValue("after", after);
                await using var r = await cmd.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
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
            await using (var cmd = _data.CreateCommand("SELECT patient_id, issuer_of_patient_id, study_uid FROM patient_studies "
                + "WHERE (patient_id COLLATE \"C\", issuer_of_patient_id COLLATE \"C\", study_uid COLLATE \"C\") > (@p, @i, @s) "
                + $"ORDER BY patient_id COLLATE \"C\", issuer_of_patient_id COLLATE \"C\", study_uid COLLATE \"C\" LIMIT {Page}"))
            {
                cmd.Parameters.AddWithValue("p", after.Id);
                cmd.Parameters.AddWithValue("i", after.Issuer);
                cmd.Parameters.AddWithValue("s", after.Study);
                await using var r = await cmd.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
                while (await r.ReadAsync(cancellationToken).ConfigureAwait(false)) page.Add((r.GetString(0), r.GetString(1), r.GetString(2)));
            }
            foreach (var row in page) yield return row;
            if (page.Count < Page) yield break;
            after = page[^1];
        }
    }

    public async Task<IReadOnlyList<SeriesRecord>> GetSeriesAsync(string studyInstanceUid, CancellationToken cancellationToken)
    {
        await using var cmd = _data.CreateCommand($"""
            SELECT {SeriesColumns}
            FROM series WHERE study_uid = @s ORDER BY series_uid COLLATE "C"
            """);
        cmd.Parameters.AddWithValue("s", studyInstanceUid);
        await using var r = await cmd.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        var list = new List<SeriesRecord>();
        while (await r.ReadAsync(cancellationToken).ConfigureAwait(false))
            list.Add(ReadSeries(r));
        return list;
    }

    public async Task DeleteStudyAsync(string studyInstanceUid, CancellationToken cancellationToken)
    {
        await using var c = await _data.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var tx = await c.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
        await using var batch = new NpgsqlBatch(c, tx);
        foreach (var sql in IndexRows.DeleteStudyStatements)
        {
            var cmd = new NpgsqlBatchCommand(sql);
            cmd.Parameters.AddWithValue("study", studyInstanceUid);
            batch.BatchCommands.Add(cmd);
        }
        await batch.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        await tx.CommitAsync(cancellationToken).ConfigureAwait(false);
    }

    public async IAsyncEnumerable<KeptBlob> ListKeptBlobsAsync(string? studyInstanceUid, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        await using var cmd = studyInstanceUid is null
            ? _data.CreateCommand($"SELECT {IndexRows.KeptBlobColumns} FROM kept_blobs ORDER BY study_uid COLLATE \"C\", sop_uid COLLATE \"C\", blob_key COLLATE \"C\"")
            : _data.CreateCommand($"SELECT {IndexRows.KeptBlobColumns} FROM kept_blobs WHERE study_uid = @s ORDER BY sop_uid COLLATE \"C\", blob_key COLLATE \"C\"");
        if (studyInstanceUid is not null) cmd.Parameters.AddWithValue("s", studyInstanceUid);
        await using var r = await cmd.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        while (await r.ReadAsync(cancellationToken).ConfigureAwait(false)) yield return IndexRows.ReadKeptBlob(r);
    }

    public async IAsyncEnumerable<IndexedInstance> ListInstancesAsync(string? studyInstanceUid, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        await using var cmd = studyInstanceUid is null
            ? _data.CreateCommand($"SELECT {InstanceColumns} FROM instances ORDER BY study_uid COLLATE \"C\", series_uid COLLATE \"C\", sop_uid COLLATE \"C\"")
            : _data.CreateCommand($"SELECT {InstanceColumns} FROM instances WHERE study_uid = @s ORDER BY series_uid COLLATE \"C\", sop_uid COLLATE \"C\"");
        if (studyInstanceUid is not null) cmd.Parameters.AddWithValue("s", studyInstanceUid);
        await using var r = await cmd.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        while (await r.ReadAsync(cancellationToken).ConfigureAwait(false)) yield return ReadInstance(r);
    }

    public async Task<IndexedInstance?> FindInstanceAsync(string sopInstanceUid, CancellationToken cancellationToken)
    {
        await using var cmd = _data.CreateCommand($"""
            SELECT {string.Join(", ", InstanceColumns.Split(", ").Select(c => "i." + c))} FROM instance_locations l
            JOIN instances i ON i.study_uid = l.study_uid AND i.series_uid = l.series_uid AND i.sop_uid = l.sop_uid
            WHERE l.sop_uid = @sop
            """);
        cmd.Parameters.AddWithValue("sop", sopInstanceUid);
        await using var r = await cmd.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        return await r.ReadAsync(cancellationToken).ConfigureAwait(false) ? ReadInstance(r) : null;
    }

    private async Task<IReadOnlyList<string>> StringsAsync(string sql, CancellationToken cancellationToken, params (string Name, object Value)[] values)
    {
        await using var cmd = _data.CreateCommand(sql);
        foreach (var (name, value) in values) cmd.Parameters.AddWithValue(name, value);
        await using var r = await cmd.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        var list = new List<string>();
        while (await r.ReadAsync(cancellationToken).ConfigureAwait(false)) list.Add(r.GetString(0));
        return list;
    }

    public Task<IReadOnlyList<string>> StudiesOfPatientAsync(string patientId, string? issuerOfPatientId, CancellationToken cancellationToken) =>
        issuerOfPatientId is null
            ? StringsAsync("SELECT study_uid FROM patient_studies WHERE patient_id = @p ORDER BY issuer_of_patient_id COLLATE \"C\", study_uid COLLATE \"C\"",
                cancellationToken, ("p", patientId))
            : StringsAsync("SELECT study_uid FROM patient_studies WHERE patient_id = @p AND issuer_of_patient_id = @i ORDER BY study_uid COLLATE \"C\"",
                cancellationToken, ("p", patientId), ("i", issuerOfPatientId));

    public Task<IReadOnlyList<string>> StudiesInMonthAsync(string yyyymm, CancellationToken cancellationToken) =>
        StringsAsync("SELECT study_uid FROM date_studies WHERE date_bucket = @b ORDER BY study_uid COLLATE \"C\"", cancellationToken, ("b", yyyymm));

    public Task<IReadOnlyList<string>> DueForStabilityAsync(DateTimeOffset now, int limit, CancellationToken cancellationToken) =>
        StringsAsync("SELECT study_uid FROM stability_timers WHERE due_at <= @now ORDER BY due_at LIMIT @limit", cancellationToken,
            ("now", now.ToUnixTimeMilliseconds()), ("limit", limit));

    public Task<IReadOnlyList<string>> DueForCompressionAsync(DateTimeOffset now, int limit, CancellationToken cancellationToken) =>
        StringsAsync("SELECT study_uid FROM compression_timers WHERE due_at <= @now ORDER BY due_at LIMIT @limit", cancellationToken,
            ("now", now.ToUnixTimeMilliseconds()), ("limit", limit));

    public async Task<IndexCounts> CountAsync(CancellationToken cancellationToken)
    {
        await using var cmd = _data.CreateCommand("""
            SELECT (SELECT COUNT(*) FROM studies), (SELECT COUNT(*) FROM series), (SELECT COUNT(*) FROM instances),
                   (SELECT COALESCE(SUM(size_bytes), 0)::bigint FROM instances)
            """);
        await using var r = await cmd.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        await r.ReadAsync(cancellationToken).ConfigureAwait(false);
        return new IndexCounts(r.GetInt64(0), r.GetInt64(1), r.GetInt64(2), r.GetInt64(3));
    }

    public async ValueTask DisposeAsync()
    {
        _queue.Writer.TryComplete();
        if (_writerLoop is not null) await _writerLoop.ConfigureAwait(false);
        await _data.DisposeAsync().ConfigureAwait(false);
    }

    internal static string DateBucket(string? studyDate) =>
        studyDate is { Length: >= 8 } d && d.AsSpan(0, 8).ContainsAnyExceptInRange('0', '9') == false ? d[..6] : "none";

    private static long? Millis(DateTimeOffset? t) => t?.ToUnixTimeMilliseconds();



}
