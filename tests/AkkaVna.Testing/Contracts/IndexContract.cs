using AkkaVna.Core.Lifecycle;
using AkkaVna.Core.Model;
using AkkaVna.Core.Ports;
using AkkaVna.Core.Studies;
using Xunit;
using static AkkaVna.Testing.Samples;

namespace AkkaVna.Testing.Contracts;

/// <summary>
/// What every index adapter must do, written against the port alone: the query-first tables filled by a commit, paged
/// scans, stability timers, partition moves, grouped commits, the one-owner claim of a SOP Instance UID, per-node
/// projection checkpoints. An adapter's test class derives from this one and supplies a fresh, empty index; later
/// adapters (PostgreSQL, a Cassandra-shaped one) pass it unchanged.
/// </summary>
public abstract class IndexContract : IAsyncLifetime
{
    protected IArchiveIndex Index { get; set; } = null!;

    /// <summary>A new, empty, initialized index (called once per test).</summary>
    protected abstract Task<IArchiveIndex> CreateIndexAsync();

    /// <summary>Closes the index and opens the same one again, as a restarted node does.</summary>
    protected abstract Task ReopenAsync();

    public async Task InitializeAsync() => Index = await CreateIndexAsync();

    public virtual async Task DisposeAsync() => await Index.DisposeAsync();

    protected static StudyIndexUpdate UpdateFor(string study, long seq, bool stable, params StoredInstance[] instances)
    {
        var s = StudyState.Empty(study);
        foreach (var i in instances)
            foreach (var e in s.Decide(i, ConflictPolicy.Overwrite).Events) s = s.Apply(e);
        var quiet = TimeSpan.FromMinutes(5);
        var row = new StudyRow(study, s.Latest!, string.Join('\\', s.Modalities), s.Series.Count, s.Instances.Count, s.SizeBytes, stable, s.LastReceived,
            stable ? null : s.StableDue(quiet), stable ? s.LastReceived : null);
        return new StudyIndexUpdate(row, s.Series.Select(kv => new SeriesRow(kv.Key, kv.Value.Latest, kv.Value.InstanceCount)).ToList(), instances, [], seq);
    }

    [Fact]
    public async Task A_newIndex_checkpoints_at_the_beginning_and_keeps_it_until_a_sync_records_a_later_one()
    {
        Assert.Equal(DateTimeOffset.UnixEpoch, await Index.GetProjectionCheckpointAsync(CancellationToken.None));
        await Index.CommitAsync(UpdateFor(Study, 2, false, Instance("1.1")), CancellationToken.None);
        await ReopenAsync(); // a restart before any sync (a rebuild cut short): still the beginning
        Assert.Equal(DateTimeOffset.UnixEpoch, await Index.GetProjectionCheckpointAsync(CancellationToken.None));
        var later = new DateTimeOffset(2026, 11, 22, 12, 0, 0, TimeSpan.Zero);
        await Index.MakeDurableAsync("node-a", later, CancellationToken.None);
        await Index.MakeDurableAsync("node-a", later.AddHours(-1), CancellationToken.None); // never moves back
        // The new index's beginning holds until a catch-up is recorded.
        Assert.Equal(DateTimeOffset.UnixEpoch, await Index.GetProjectionCheckpointAsync(CancellationToken.None));
        await Index.RecordCatchUpAsync(later, later.AddMinutes(-1), CancellationToken.None);
        Assert.Equal(later, await Index.GetProjectionCheckpointAsync(CancellationToken.None));
    }

    [Fact]
    public async Task A_commit_fills_every_query_table()
    {
        await Index.CommitAsync(UpdateFor(Study, 2, false, Instance("1.1"), Instance("1.2", series: "1.2.3.4.2")), CancellationToken.None);
        var study = await Index.GetStudyAsync(Study, CancellationToken.None);
        Assert.Equal((2, 2, "P1", "HOSP-A", 2L, false), (study!.SeriesCount, study.InstanceCount, study.PatientId, study.IssuerOfPatientId, study.JournalSequenceNr, study.Stable));
        Assert.Equal(2, await Index.GetWatermarkAsync(Study, CancellationToken.None));
        Assert.Equal(0, await Index.GetWatermarkAsync("9.9", CancellationToken.None));
        Assert.Equal([Study], await Index.StudiesOfPatientAsync("P1", "HOSP-A", CancellationToken.None));
        Assert.Empty(await Index.StudiesOfPatientAsync("P1", "", CancellationToken.None)); // the issuer qualifies the patient
        Assert.Equal([Study], await Index.StudiesInMonthAsync("202601", CancellationToken.None));
        Assert.Equal(2, (await Index.GetSeriesAsync(Study, CancellationToken.None)).Count);
        Assert.Equal("1.2.3.4.2", (await Index.FindInstanceAsync("1.2", CancellationToken.None))!.SeriesInstanceUid);
        Assert.Equal(new IndexCounts(1, 2, 2, 2000), await Index.CountAsync(CancellationToken.None));
    }

    [Fact]
    public async Task Institutions_and_procedure_codes_are_indexed_and_lifecycle_rules_match_on_them()
    {
        var a = Instance("1.1");
        a = a with { Header = a.Header with { InstitutionName = "Hôpital Nord", ProcedureCodes = "RPID17\\XR-CHEST" } };
        var b = Instance("1.2", series: "1.2.3.4.2");
        b = b with { Header = b.Header with { InstitutionName = "Clinique Sud", ProcedureCodes = "RPID17\\XR-CHEST" } };
        await Index.CommitAsync(UpdateFor(Study, 2, true, a, b), CancellationToken.None);
        Assert.Equal("RPID17\\XR-CHEST", (await Index.GetStudyAsync(Study, CancellationToken.None))!.ProcedureCodes);
        Assert.Equal(["Clinique Sud", "Hôpital Nord"], (await Index.GetSeriesAsync(Study, CancellationToken.None)).Select(s => s.InstitutionName!).Order(StringComparer.Ordinal));
        var facts = await LifecycleFacts.ReadAsync(Index, Study, new HashSet<string> { "InstitutionName", "ProcedureCode" }, CancellationToken.None);
        static LifecycleRule Rule(string attribute, params string[] values) =>
            new("r", new Dictionary<string, IReadOnlyList<string>> { [attribute] = values }, RetentionPeriod.Parse("1y"), RetentionAnchor.StudyDate, null, []);
        Assert.True(Rule("InstitutionName", "Clinique Sud").Matches(facts!));
        Assert.True(Rule("ProcedureCode", "XR-*").Matches(facts!));
        Assert.False(Rule("InstitutionName", "Hôpital Est").Matches(facts!));
        Assert.False(Rule("ProcedureCode", "CT-HEAD").Matches(facts!));
    }

    [Fact]
    public async Task Full_scans_of_studies_and_of_patient_studies_page_through_every_row_in_key_order()
    {
        // More rows than a page (1000): 1100 studies of 550 patients, two studies each.
        var commits = Enumerable.Range(0, 1100).Select(i =>
        {
            string study = $"1.2.{i}", patient = $"P{i / 2:D4}";
            return Index.CommitAsync(UpdateFor(study, 1, true, Instance($"1.2.{i}.1", series: $"1.2.{i}.9", study: study, patientId: patient)), CancellationToken.None);
        }).ToList();
        await Task.WhenAll(commits);
        var studies = new List<string>();
        await foreach (var s in Index.ScanStudiesAsync(CancellationToken.None)) studies.Add(s.StudyInstanceUid);
        Assert.Equal(Enumerable.Range(0, 1100).Select(i => $"1.2.{i}").Order(StringComparer.Ordinal), studies);
        var rows = new List<(string, string, string)>();
        await foreach (var r in Index.ScanPatientStudiesAsync(CancellationToken.None)) rows.Add(r);
        Assert.Equal(Enumerable.Range(0, 1100).Select(i => ($"P{i / 2:D4}", "HOSP-A", $"1.2.{i}")).Order(), rows);
    }

    [Fact]
    public async Task Studies_come_due_for_compression_when_their_row_says_so_and_leave_the_timer_table_when_it_does_not()
    {
        var at = new DateTimeOffset(2026, 11, 22, 10, 0, 0, TimeSpan.Zero);
        var update = UpdateFor(Study, 1, true, Instance("1.1", at: at));
        await Index.CommitAsync(update with { Study = update.Study with { CompressionDue = at.AddMinutes(10) } }, CancellationToken.None);
        Assert.Empty(await Index.DueForCompressionAsync(at.AddMinutes(9), 10, CancellationToken.None));
        Assert.Equal([Study], await Index.DueForCompressionAsync(at.AddMinutes(10), 10, CancellationToken.None));
        await Index.CommitAsync(UpdateFor(Study, 2, true, Instance("1.1", at: at)), CancellationToken.None);
        Assert.Empty(await Index.DueForCompressionAsync(at.AddDays(1), 10, CancellationToken.None));
    }

    [Fact]
    public async Task Kept_originals_are_listed_replaced_with_their_instance_and_removed_with_it()
    {
        async Task<List<KeptBlob>> KeptAsync(string? study) => await Index.ListKeptBlobsAsync(study, CancellationToken.None).ToListAsync();
        var original = Instance("1.1");
        var compressed = original with { Blob = new BlobRef(BlobRef.PrimaryStore, "abc/1.2.3.4.1/1.1.jpegls.dcm", "jpegls"), Size = 400, Sha256 = "dd" };
        var kept = new KeptBlob(Study, "1.1", original.Blob, original.Size, original.Sha256, original.Header.TransferSyntaxUid);
        await Index.CommitAsync(UpdateFor(Study, 1, true, original, Instance("1.2")), CancellationToken.None);
        Assert.Empty(await KeptAsync(null));
        // The compressed copy is the instance's blob now; its original is kept beside it.
        await Index.CommitAsync(UpdateFor(Study, 2, true, compressed) with { KeptBlobs = [kept] }, CancellationToken.None);
        Assert.Equal([kept], await KeptAsync(Study));
        Assert.Equal([kept], await KeptAsync(null));
        Assert.Empty(await KeptAsync("1.2.999"));
        Assert.Equal(compressed.Blob, (await Index.FindInstanceAsync("1.1", CancellationToken.None))!.Blob);
        // Writing it again with the same list changes nothing (an update applied twice is harmless).
        await Index.CommitAsync(UpdateFor(Study, 2, true, compressed) with { KeptBlobs = [kept] }, CancellationToken.None);
        Assert.Equal([kept], await KeptAsync(Study));
        // Another instance's update leaves it alone; the instance written with none keeps none; removed, none either.
        await Index.CommitAsync(UpdateFor(Study, 3, true, Instance("1.2")), CancellationToken.None);
        Assert.Equal([kept], await KeptAsync(Study));
        await Index.CommitAsync(UpdateFor(Study, 4, true, compressed), CancellationToken.None);
        Assert.Empty(await KeptAsync(Study));
        await Index.CommitAsync(UpdateFor(Study, 5, true, compressed) with { KeptBlobs = [kept] }, CancellationToken.None);
        await Index.CommitAsync(UpdateFor(Study, 6, true, Instance("1.2")) with { RemovedInstances = [("1.2.3.4.1", "1.1")] }, CancellationToken.None);
        Assert.Empty(await KeptAsync(null));
    }

    [Fact]
    public async Task Deleting_a_study_removes_every_row_of_it_and_nothing_of_another()
    {
        var at = new DateTimeOffset(2026, 12, 3, 10, 0, 0, TimeSpan.Zero);
        var gone = Instance("1.1", at: at);
        var update = UpdateFor(Study, 1, false, gone, Instance("1.2", series: "1.2.3.4.2"));
        await Index.CommitAsync(update with
        {
            Study = update.Study with { CompressionDue = at },
            KeptBlobs = [new KeptBlob(Study, "1.1", new BlobRef(BlobRef.PrimaryStore, "x/y/1.1.dcm"), 10, "aa", "1.2.840.10008.1.2.1")],
        }, CancellationToken.None);
        const string Other = "1.2.3.999";
        await Index.CommitAsync(UpdateFor(Other, 1, false, Instance("9.1", study: Other)), CancellationToken.None);
        await Index.DeleteStudyAsync(Study, CancellationToken.None);
        await Index.DeleteStudyAsync(Study, CancellationToken.None); // again: nothing left to remove
        Assert.Null(await Index.GetStudyAsync(Study, CancellationToken.None));
        Assert.Empty(await Index.GetSeriesAsync(Study, CancellationToken.None));
        Assert.Empty(await Index.ListInstancesAsync(Study, CancellationToken.None).ToListAsync());
        Assert.Empty(await Index.ListKeptBlobsAsync(null, CancellationToken.None).ToListAsync());
        Assert.Null(await Index.FindInstanceAsync("1.1", CancellationToken.None));
        Assert.DoesNotContain(Study, await Index.StudiesOfPatientAsync(gone.Header.PatientId, null, CancellationToken.None));
        Assert.Equal([Other], await Index.DueForStabilityAsync(at.AddYears(1), 10, CancellationToken.None));
        Assert.Empty(await Index.DueForCompressionAsync(at.AddYears(1), 10, CancellationToken.None));
        var scanned = new List<string>();
        await foreach (var s in Index.ScanStudiesAsync(CancellationToken.None)) scanned.Add(s.StudyInstanceUid);
        Assert.Equal([Other], scanned);
        Assert.NotNull(await Index.FindInstanceAsync("9.1", CancellationToken.None));
        // The SOP Instance UID is free again: a new study may claim it.
        Assert.Equal(IndexCommitResult.Applied, await Index.CommitAsync(UpdateFor("1.2.3.777", 1, false, Instance("1.1", study: "1.2.3.777")), CancellationToken.None));
    }

    [Fact]
    public async Task Legal_holds_are_placed_listed_found_by_what_they_name_and_released_once()
    {
        var store = Index.Lifecycle;
        var at = new DateTimeOffset(2026, 12, 3, 10, 0, 0, TimeSpan.Zero);
        var patient = new LegalHold("h1", HoldScope.Patient, "P1", "HOSP", "litigation 2026-114", "dpo@hospital", at, null);
        var accession = new LegalHold("h2", HoldScope.Accession, "ACC9", null, "audit", "qa@hospital", at.AddMinutes(1), at.AddDays(30));
        await store.PlaceHoldAsync(patient, CancellationToken.None);
        await store.PlaceHoldAsync(accession, CancellationToken.None);
        await Assert.ThrowsAnyAsync<Exception>(() => store.PlaceHoldAsync(patient, CancellationToken.None)); // an ID is placed once
        Assert.Equal([patient, accession], await store.ListHoldsAsync(false, CancellationToken.None));
        Assert.Equal([patient], await store.HoldsNamingAsync("P1", "HOSP", "1.2.9", null, CancellationToken.None));
        Assert.Equal([accession], await store.HoldsNamingAsync("P7", "HOSP", "1.2.9", "ACC9", CancellationToken.None));
        var released = await store.ReleaseHoldAsync("h1", "judge", at.AddHours(1), CancellationToken.None);
        Assert.Equal(patient with { ReleasedAt = at.AddHours(1), ReleasedBy = "judge" }, released);
        // Released once: a second release changes nothing; the record stays for the audit.
        Assert.Equal(released, await store.ReleaseHoldAsync("h1", "someone else", at.AddHours(2), CancellationToken.None));
        Assert.Null(await store.ReleaseHoldAsync("h404", "x", at, CancellationToken.None));
        Assert.Equal([accession], await store.ListHoldsAsync(false, CancellationToken.None));
        Assert.Equal([released!, accession], await store.ListHoldsAsync(true, CancellationToken.None));
    }

    [Fact]
    public async Task Lifecycle_timers_approvals_tombstones_and_the_audit_trail_are_kept()
    {
        var store = Index.Lifecycle;
        var at = new DateTimeOffset(2026, 12, 3, 10, 0, 0, TimeSpan.Zero);
        await store.ScheduleAsync("1.2.1", at.AddMinutes(5), CancellationToken.None);
        await store.ScheduleAsync("1.2.2", at, CancellationToken.None);
        await store.ScheduleAsync("1.2.3", at.AddDays(1), CancellationToken.None);
        Assert.Equal(["1.2.2", "1.2.1"], await store.DueForLifecycleAsync(at.AddMinutes(5), 10, CancellationToken.None));
        await store.ScheduleAsync("1.2.1", at.AddDays(2), CancellationToken.None);
        await store.ScheduleAsync("1.2.2", null, CancellationToken.None);
        Assert.Equal(["1.2.3"], await store.DueForLifecycleAsync(at.AddDays(1), 10, CancellationToken.None));
        await store.ScheduleManyAsync([("1.2.4", at), ("1.2.3", at.AddDays(3)), ("1.2.5", at.AddMinutes(1))], CancellationToken.None);
        Assert.Equal(["1.2.4", "1.2.5"], await store.DueForLifecycleAsync(at.AddDays(1), 10, CancellationToken.None));
        await store.ScheduleManyAsync([], CancellationToken.None);

        var pending = new PendingDestruction("1.2.1", "mg-10y", at, at.AddMinutes(1));
        await store.QueueForApprovalAsync(pending, CancellationToken.None);
        await store.QueueForApprovalAsync(pending with { QueuedAt = at.AddMinutes(9) }, CancellationToken.None); // queued once
        Assert.Equal([pending], await store.ListPendingAsync(CancellationToken.None));
        Assert.Null(await store.ApproveAsync("1.2.404", "dpo", at, CancellationToken.None));
        var approved = await store.ApproveAsync("1.2.1", "dpo@hospital", at.AddHours(1), CancellationToken.None);
        Assert.Equal(pending with { ApprovedBy = "dpo@hospital", ApprovedAt = at.AddHours(1) }, approved);
        await store.QueueForApprovalAsync(pending with { Rule = "mg-12y" }, CancellationToken.None); // re-queued: the approval stays
        Assert.Equal("dpo@hospital", (await store.GetPendingAsync("1.2.1", CancellationToken.None))!.ApprovedBy);
        await store.DequeueAsync("1.2.1", CancellationToken.None);
        Assert.Empty(await store.ListPendingAsync(CancellationToken.None));

        var blobs = new[] { new BlobRef(BlobRef.PrimaryStore, "a/b/c.dcm"), new BlobRef("cold", "a/b/d.dcm", "jpegls", "cold") };
        var destroying = new Tombstone("1.2.1", "mg-10y", TombstoneState.Destroying, 1, 2, 2048, ["aa", "bb"], at, null, "dpo@hospital") { Blobs = blobs };
        await store.WriteTombstoneAsync(destroying, CancellationToken.None);
        var back = await store.GetTombstoneAsync("1.2.1", CancellationToken.None);
        Assert.Equal(blobs, back!.Blobs);
        Assert.Equal(["aa", "bb"], back.Checksums);
        var done = destroying with { State = TombstoneState.Destroyed, DestroyedAt = at.AddMinutes(1), Blobs = [] };
        await store.WriteTombstoneAsync(done, CancellationToken.None);
        var all = new List<Tombstone>();
        await foreach (var t in store.ListTombstonesAsync(CancellationToken.None)) all.Add(t);
        var only = Assert.Single(all);
        Assert.Equal((TombstoneState.Destroyed, at.AddMinutes(1), 0), (only.State, only.DestroyedAt, only.Blobs.Count));
        Assert.Null(await store.GetTombstoneAsync("1.2.2", CancellationToken.None));

        long first = await store.AppendAuditAsync(new AuditRecord(at, "study-destroyed", "1.2.1", "P1", "lifecycle", "success", "rule mg-10y"), CancellationToken.None);
        long second = await store.AppendAuditAsync(new AuditRecord(at, "hold-placed", null, "P1", "dpo", "success", "h1"), CancellationToken.None);
        Assert.True(second > first);
        var trail = await store.ListAuditAsync(0, 10, CancellationToken.None);
        Assert.Equal(["study-destroyed", "hold-placed"], trail.Select(a => a.Action));
        Assert.Equal([second], (await store.ListAuditAsync(first, 10, CancellationToken.None)).Select(a => a.Sequence));
    }

    [Fact]
    public async Task Open_studies_come_due_for_stability_and_stable_ones_leave_the_timer_table()
    {
        var at = new DateTimeOffset(2026, 11, 22, 10, 0, 0, TimeSpan.Zero);
        await Index.CommitAsync(UpdateFor(Study, 1, false, Instance("1.1", at: at)), CancellationToken.None);
        Assert.Empty(await Index.DueForStabilityAsync(at + TimeSpan.FromMinutes(4), 10, CancellationToken.None));
        Assert.Equal([Study], await Index.DueForStabilityAsync(at + TimeSpan.FromMinutes(5), 10, CancellationToken.None));
        await Index.CommitAsync(UpdateFor(Study, 2, true, Instance("1.1", at: at)), CancellationToken.None);
        Assert.Empty(await Index.DueForStabilityAsync(at + TimeSpan.FromDays(1), 10, CancellationToken.None));
        Assert.True((await Index.GetStudyAsync(Study, CancellationToken.None))!.Stable);
    }

    [Fact]
    public async Task A_changed_patient_or_study_date_moves_the_partition_rows_and_an_older_update_never_wins()
    {
        await Index.CommitAsync(UpdateFor(Study, 1, false, Instance("1.1")), CancellationToken.None);
        await Index.CommitAsync(UpdateFor(Study, 3, false, Instance("1.1", patientId: "P2", studyDate: null)), CancellationToken.None);
        Assert.Empty(await Index.StudiesOfPatientAsync("P1", "HOSP-A", CancellationToken.None));
        Assert.Equal([Study], await Index.StudiesOfPatientAsync("P2", "HOSP-A", CancellationToken.None));
        Assert.Empty(await Index.StudiesInMonthAsync("202601", CancellationToken.None));
        Assert.Equal([Study], await Index.StudiesInMonthAsync("none", CancellationToken.None));
        await Index.CommitAsync(UpdateFor(Study, 2, false, Instance("1.1", patientId: "P9")), CancellationToken.None);
        Assert.Equal(("P2", 3L), ((await Index.GetStudyAsync(Study, CancellationToken.None))!.PatientId, await Index.GetWatermarkAsync(Study, CancellationToken.None)));
    }

    [Fact]
    public async Task Concurrent_commits_of_many_studies_are_grouped_and_all_applied()
    {
        var commits = Enumerable.Range(1, 200).Select(n => Index.CommitAsync(
            UpdateFor($"1.9.{n}", 1, false, Instance($"1.9.{n}.1", study: $"1.9.{n}"), Instance($"1.9.{n}.2", study: $"1.9.{n}")), CancellationToken.None));
        await Task.WhenAll(commits);
        Assert.Equal(new IndexCounts(200, 200, 400, 400_000), await Index.CountAsync(CancellationToken.None));
    }

    [Fact]
    public async Task A_SOP_Instance_UID_belongs_to_the_first_study_that_commits_it_and_another_study_is_refused_whole()
    {
        Assert.Same(IndexCommitResult.Applied, await Index.CommitAsync(UpdateFor("1.7.1", 1, false, Instance("1.7.9", study: "1.7.1")), CancellationToken.None));
        // Study 1.7.2 claims 1.7.9 too (and brings a new instance): nothing of it is applied, the conflict names the owner.
        var refused = await Index.CommitAsync(UpdateFor("1.7.2", 1, false, Instance("1.7.8", study: "1.7.2"), Instance("1.7.9", study: "1.7.2")), CancellationToken.None);
        Assert.Equal([new LocationConflict("1.7.9", "1.7.1")], refused.Conflicts);
        Assert.Null(await Index.GetStudyAsync("1.7.2", CancellationToken.None));
        Assert.Null(await Index.FindInstanceAsync("1.7.8", CancellationToken.None));
        Assert.Equal("1.7.1", (await Index.FindInstanceAsync("1.7.9", CancellationToken.None))!.StudyInstanceUid);
        // The owner commits it again (a re-projection): still its own.
        Assert.Empty((await Index.CommitAsync(UpdateFor("1.7.1", 2, false, Instance("1.7.9", study: "1.7.1")), CancellationToken.None)).Conflicts);
    }

    [Fact]
    public async Task Two_studies_claiming_one_SOP_Instance_UID_in_one_group_commit_leave_exactly_one_owner_and_the_others_applied()
    {
        // Grouped into as few transactions as the writer likes: whichever comes first wins, the other is refused alone.
        var a = Index.CommitAsync(UpdateFor("1.6.1", 1, false, Instance("1.6.9", study: "1.6.1")), CancellationToken.None);
        var b = Index.CommitAsync(UpdateFor("1.6.2", 1, false, Instance("1.6.9", study: "1.6.2")), CancellationToken.None);
        var others = Enumerable.Range(1, 20).Select(n => Index.CommitAsync(UpdateFor($"1.5.{n}", 1, false, Instance($"1.5.{n}.1", study: $"1.5.{n}")), CancellationToken.None)).ToList();
        var results = await Task.WhenAll(a, b);
        Assert.Single(results, r => r.Conflicts.Count == 0);
        var loser = Assert.Single(results, r => r.Conflicts.Count == 1);
        var owner = (await Index.FindInstanceAsync("1.6.9", CancellationToken.None))!.StudyInstanceUid;
        Assert.Equal(owner, loser.Conflicts[0].StudyInstanceUid);
        Assert.All(await Task.WhenAll(others), r => Assert.Empty(r.Conflicts));
        Assert.Equal(new IndexCounts(21, 21, 21, 21_000), await Index.CountAsync(CancellationToken.None));
    }

    [Fact]
    public async Task Each_node_keeps_its_own_checkpoint_and_a_start_catches_up_from_the_earliest()
    {
        var t0 = new DateTimeOffset(2026, 12, 1, 8, 0, 0, TimeSpan.Zero);
        await Index.RecordCatchUpAsync(t0, t0, CancellationToken.None); // the new index's first catch-up
        await Index.MakeDurableAsync("node-a", t0.AddMinutes(10), CancellationToken.None);
        await Index.MakeDurableAsync("node-b", t0.AddMinutes(3), CancellationToken.None); // b has older unprojected writes
        Assert.Equal(t0.AddMinutes(3), await Index.GetProjectionCheckpointAsync(CancellationToken.None));
        // a's checkpoint moving on never passes b's writes.
        await Index.MakeDurableAsync("node-a", t0.AddMinutes(20), CancellationToken.None);
        Assert.Equal(t0.AddMinutes(3), await Index.GetProjectionCheckpointAsync(CancellationToken.None));
        // A catch-up covers b's writes, but b was heard from just now: its checkpoint stays (b moves it itself).
        await Index.RecordCatchUpAsync(t0.AddMinutes(30), DateTimeOffset.UnixEpoch, CancellationToken.None);
        Assert.Equal(t0.AddMinutes(3), await Index.GetProjectionCheckpointAsync(CancellationToken.None));
        // A node silent since before the cut-off is gone: a catch-up that covers its checkpoint drops it.
        await Index.RecordCatchUpAsync(t0.AddMinutes(30), DateTimeOffset.UtcNow.AddMinutes(1), CancellationToken.None);
        // (a's was dropped too: with no node's checkpoint left, the last catch-up is where a start begins.)
        Assert.Equal(t0.AddMinutes(30), await Index.GetProjectionCheckpointAsync(CancellationToken.None));
    }

    [Fact]
    public async Task A_study_has_one_data_key_the_first_stored_and_it_can_be_found_by_id_rewrapped_and_destroyed()
    {
        var none = CancellationToken.None;
        var keys = Index.Lifecycle;
        var first = new WrappedStudyKey("1.2.840.9.1", "aaaa0000aaaa0000aaaa0000aaaa0000", "m1", [1, 2, 3], DateTimeOffset.FromUnixTimeMilliseconds(1_000));
        Assert.Equal(first, await keys.PutStudyKeyAsync(first, none) with { Wrapped = first.Wrapped });
        // A second writer of the same study (another node) gets the first one's key, not its own.
        var second = first with { KeyId = "bbbb0000bbbb0000bbbb0000bbbb0000", Wrapped = [9] };
        var kept = await keys.PutStudyKeyAsync(second, none);
        Assert.Equal(first.KeyId, kept.KeyId);
        Assert.Equal([1, 2, 3], kept.Wrapped);
        Assert.Equal(first.KeyId, (await keys.GetStudyKeyAsync(first.KeyId, none))!.KeyId);
        Assert.Null(await keys.GetStudyKeyAsync(second.KeyId, none));
        // Rewrapped only when still wrapped by the master key named.
        await keys.RewrapStudyKeyAsync(first with { MasterKeyId = "m2", Wrapped = [4] }, "m0", none);
        Assert.Equal("m1", (await keys.GetStudyKeyOfAsync(first.StudyInstanceUid, none))!.MasterKeyId);
        await keys.RewrapStudyKeyAsync(first with { MasterKeyId = "m2", Wrapped = [4] }, "m1", none);
        var rewrapped = (await keys.GetStudyKeyOfAsync(first.StudyInstanceUid, none))!;
        Assert.Equal("m2", rewrapped.MasterKeyId);
        Assert.Equal([4], rewrapped.Wrapped);
        await keys.DeleteStudyKeyAsync(first.StudyInstanceUid, none);
        Assert.Null(await keys.GetStudyKeyOfAsync(first.StudyInstanceUid, none));
        Assert.Null(await keys.GetStudyKeyAsync(first.KeyId, none));
    }
}
