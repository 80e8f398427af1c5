using Akka.Actor;
using Akka.Configuration;
using AkkaVna.Actors.Studies;
using AkkaVna.Core.Ports;
using AkkaVna.Core.Studies;
using AkkaVna.Index.Sqlite;
using AkkaVna.Journal.Sql;
using AkkaVna.Testing;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using static AkkaVna.Testing.Samples;

namespace AkkaVna.Actors.Tests.Studies;

/// <summary>
/// The study actor in-process with Akka.TestKit: a real SQLite journal (and its read journal) and a real SQLite index
/// under it, a fake clock, and probes — coalescing, recovery with re-projection after a crash between the journal and
/// the index, a snapshot later than the index, hand-off, stability on the clock, and the one-owner claim.
/// </summary>
public sealed class StudyActorTests : Akka.TestKit.Xunit2.TestKit, IAsyncLifetime
{
    private readonly TempDir _dir;
    private readonly SqliteJournalStore _journal;
    private readonly FakeTimeProvider _clock = new(new DateTimeOffset(2026, 12, 1, 8, 0, 0, TimeSpan.Zero));
    private readonly ProjectionTracker _tracker;
    private ControlledIndex _index = null!;

    public StudyActorTests(Xunit.Abstractions.ITestOutputHelper output) : this(new TempDir(), output)
    {
    }

    private StudyActorTests(TempDir dir, Xunit.Abstractions.ITestOutputHelper output) : base(ConfigFor(dir), "study-actor-tests", output)
    {
        _dir = dir;
        _journal = new SqliteJournalStore(JournalPath(dir));
        _tracker = new ProjectionTracker(_clock);
    }

    private static string JournalPath(TempDir dir) => Path.Combine(dir.Path, "journal.db");

    private static Config ConfigFor(TempDir dir)
    {
        var journal = new SqliteJournalStore(JournalPath(dir));
        journal.PrepareAsync(CancellationToken.None).GetAwaiter().GetResult();
        return ConfigurationFactory.ParseString("akka.loglevel = WARNING\nakka.actor.provider = local")
            .WithFallback(ConfigurationFactory.ParseString(StudyEventTagger.Binding(journal.JournalPluginId)))
            .WithFallback(ConfigurationFactory.ParseString(journal.PersistenceConfiguration))
            .WithFallback(ConfigurationFactory.ParseString(StudySerializer.Binding));
    }

    public async Task InitializeAsync() => _index = await OpenIndexAsync("index.db");

    public async Task DisposeAsync()
    {
        await _index.DisposeAsync();
        Shutdown();
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        _dir.Dispose();
    }

    private async Task<ControlledIndex> OpenIndexAsync(string file)
    {
        var index = new SqliteArchiveIndex(Path.Combine(_dir.Path, file), NullLogger.Instance, _clock);
        await index.InitializeAsync(CancellationToken.None);
        return new ControlledIndex(index);
    }

    private StudySettings Settings(int snapshotEvery = 500) =>
        new(TimeSpan.FromMinutes(5), ConflictPolicy.Reject, snapshotEvery, 512) { ReadJournalPluginId = _journal.ReadJournalPluginId };

    private IActorRef StartStudy(string study = Study, IArchiveIndex? index = null, StudySettings? settings = null) =>
        Sys.ActorOf(StudyActor.Props(study, settings ?? Settings(), index ?? _index, _tracker, _clock, NoMetrics.Instance));

    private void Stop(IActorRef actor)
    {
        Watch(actor);
        actor.Tell(StopStudy.Instance);
        ExpectTerminated(actor, TimeSpan.FromSeconds(10));
    }

    private async Task<int> IndexedInstancesAsync(IArchiveIndex index, string study = Study)
    {
        int n = 0;
        await foreach (var _ in index.ListInstancesAsync(study, CancellationToken.None)) n++;
        return n;
    }

    [Fact]
    public void Instances_that_arrive_while_a_commit_is_in_flight_are_committed_together_as_the_next_batch()
    {
        var study = StartStudy();
        _index.Hold();
        study.Tell(new StoreInstance(Instance("1.1")), TestActor);
        AwaitCondition(() => _index.Commits.Count == 1, TimeSpan.FromSeconds(10)); // the first batch waits at the index
        for (int i = 2; i <= 5; i++) study.Tell(new StoreInstance(Instance($"1.{i}")), TestActor);
        ExpectNoMsg(TimeSpan.FromMilliseconds(300)); // nothing is answered before its commit
        _index.Release();
        var results = ReceiveN(5, TimeSpan.FromSeconds(10)).Cast<StoreInstanceResult>().ToList();
        Assert.All(results, r => Assert.Equal(StoreOutcome.Stored, r.Outcome));
        Assert.Equal(["1.1", "1.2", "1.3", "1.4", "1.5"], results.Select(r => r.SopInstanceUid).Order());
        // One journal write and one index commit for the four that queued up.
        Assert.Equal([1, 4], _index.Commits.Select(c => c.Instances.Count));
    }

    [Fact]
    public async Task A_crash_between_the_journal_and_the_index_is_healed_when_the_study_recovers()
    {
        var study = StartStudy();
        _index.LoseCommits = true; // the journal writes, the index transaction never happens
        for (int i = 1; i <= 3; i++)
        {
            study.Tell(new StoreInstance(Instance($"1.{i}")), TestActor);
            Assert.Equal(StoreOutcome.Stored, ExpectMsg<StoreInstanceResult>(TimeSpan.FromSeconds(10)).Outcome);
        }
        Stop(study);
        Assert.Equal(0, await IndexedInstancesAsync(_index));
        Assert.Equal(0, await _index.GetWatermarkAsync(Study, CancellationToken.None));

        _index.LoseCommits = false;
        var recovered = StartStudy();
        recovered.Tell(new GetStudySummary(Study), TestActor); // answered after the re-projection
        var summary = ExpectMsg<StudySummary>(TimeSpan.FromSeconds(10));
        Assert.Equal(3, summary.InstanceCount);
        Assert.Equal(3, await IndexedInstancesAsync(_index));
        Assert.Equal(summary.SequenceNr, await _index.GetWatermarkAsync(Study, CancellationToken.None));
        Assert.Equal(0, _tracker.Behind);
    }

    [Fact]
    public async Task A_snapshot_later_than_the_index_is_completed_from_the_read_journal()
    {
        var settings = Settings(snapshotEvery: 5);
        var study = StartStudy(settings: settings);
        for (int i = 1; i <= 7; i++)
        {
            study.Tell(new StoreInstance(Instance($"1.{i}")), TestActor);
            ExpectMsg<StoreInstanceResult>(TimeSpan.FromSeconds(10));
        }
        Stop(study); // a snapshot at 5 or later is in the store
        // The index is lost (deleted, or a power loss took its commits): a new one has no watermark at all.
        var fresh = await OpenIndexAsync("fresh.db");
        try
        {
            var recovered = StartStudy(index: fresh, settings: settings);
            recovered.Tell(new GetStudySummary(Study), TestActor);
            Assert.Equal(7, ExpectMsg<StudySummary>(TimeSpan.FromSeconds(15)).InstanceCount);
            // Every instance is back in the index, those before the snapshot included (read from the read journal).
            Assert.Equal(7, await IndexedInstancesAsync(fresh));
            Assert.Equal(7, (await fresh.GetStudyAsync(Study, CancellationToken.None))!.InstanceCount);
        }
        finally
        {
            await fresh.DisposeAsync();
        }
    }

    [Fact]
    public async Task A_command_that_arrives_after_its_sender_stopped_waiting_is_refused_and_never_committed()
    {
        // Held in a shard's buffer while the study moved: its sender gave up and left the blob to recovery, which may
        // have discarded it. Committing it now would index an instance whose blob is gone.
        var study = StartStudy();
        study.Tell(new StoreInstance(Instance("1.1")) { CommitBy = _clock.GetUtcNow().AddSeconds(-1) }, TestActor);
        var late = ExpectMsg<StoreInstanceResult>(TimeSpan.FromSeconds(10));
        Assert.Equal(StoreOutcome.Failed, late.Outcome);
        Assert.Contains("stopped waiting", late.Reason);
        study.Tell(new GetStudySummary(Study), TestActor);
        Assert.Equal(0, ExpectMsg<StudySummary>(TimeSpan.FromSeconds(10)).InstanceCount);
        Assert.Equal(0, await IndexedInstancesAsync(_index));
        // In time, it is committed.
        study.Tell(new StoreInstance(Instance("1.1")) { CommitBy = _clock.GetUtcNow().AddSeconds(30) }, TestActor);
        Assert.Equal(StoreOutcome.Stored, ExpectMsg<StoreInstanceResult>(TimeSpan.FromSeconds(10)).Outcome);
        Assert.Equal(1, await IndexedInstancesAsync(_index));
    }

    [Fact]
    public void The_hand_off_message_stops_the_actor_only_after_what_it_received_is_committed_and_answered()
    {
        var study = StartStudy();
        Watch(study);
        _index.Hold();
        study.Tell(new StoreInstance(Instance("1.1")), TestActor);
        study.Tell(new StoreInstance(Instance("1.2")), TestActor);
        study.Tell(StopStudy.Instance);
        ExpectNoMsg(TimeSpan.FromMilliseconds(300));
        _index.Release();
        var answers = ReceiveN(3, TimeSpan.FromSeconds(10)).ToList();
        Assert.Equal(2, answers.OfType<StoreInstanceResult>().Count(r => r.Outcome == StoreOutcome.Stored));
        Assert.IsType<Terminated>(answers[^1]);
    }

    [Fact]
    public void A_study_becomes_stable_when_the_clock_passes_its_quiet_period_and_not_before()
    {
        var received = _clock.GetUtcNow();
        var study = StartStudy();
        study.Tell(new StoreInstance(Instance("1.1", at: received)), TestActor);
        ExpectMsg<StoreInstanceResult>(TimeSpan.FromSeconds(10));

        _clock.Advance(TimeSpan.FromMinutes(4));
        study.Tell(new CheckStability(Study));
        study.Tell(new GetStudySummary(Study), TestActor);
        var early = ExpectMsg<StudySummary>(TimeSpan.FromSeconds(10));
        Assert.False(early.Stable);
        Assert.Equal(received + TimeSpan.FromMinutes(5), early.StableDue);

        _clock.Advance(TimeSpan.FromMinutes(2));
        study.Tell(new CheckStability(Study));
        study.Tell(new GetStudySummary(Study), TestActor);
        var late = ExpectMsg<StudySummary>(TimeSpan.FromSeconds(10));
        Assert.True(late.Stable);
        Assert.Equal(_clock.GetUtcNow(), late.StableAt);
    }

    [Fact]
    public async Task A_SOP_Instance_UID_claimed_by_two_studies_stays_with_the_first_and_the_second_is_answered_with_the_owner()
    {
        var first = StartStudy("1.2.3.4");
        var second = StartStudy("1.2.3.5");
        first.Tell(new StoreInstance(Instance("9.9")), TestActor);
        Assert.Equal(StoreOutcome.Stored, ExpectMsg<StoreInstanceResult>(TimeSpan.FromSeconds(10)).Outcome);
        second.Tell(new StoreInstance(Instance("9.9", study: "1.2.3.5")), TestActor);
        var refused = ExpectMsg<StoreInstanceResult>(TimeSpan.FromSeconds(10));
        Assert.Equal(StoreOutcome.Rejected, refused.Outcome);
        Assert.Contains("already archived in study 1.2.3.4", refused.Reason, StringComparison.Ordinal);
        // The second study holds nothing; a resend to it is refused the same way (it is decided again, not remembered).
        second.Tell(new GetStudySummary("1.2.3.5"), TestActor);
        Assert.Equal(0, ExpectMsg<StudySummary>(TimeSpan.FromSeconds(10)).InstanceCount);
        second.Tell(new StoreInstance(Instance("9.9", study: "1.2.3.5")), TestActor);
        Assert.Equal(StoreOutcome.Rejected, ExpectMsg<StoreInstanceResult>(TimeSpan.FromSeconds(10)).Outcome);
        Assert.Equal("1.2.3.4", (await _index.FindInstanceAsync("9.9", CancellationToken.None))!.StudyInstanceUid);
        Assert.Null(await _index.GetStudyAsync("1.2.3.5", CancellationToken.None));
    }
}
