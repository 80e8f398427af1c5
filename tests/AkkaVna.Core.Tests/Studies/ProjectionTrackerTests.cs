using AkkaVna.Testing;
using AkkaVna.Core.Studies;

namespace AkkaVna.Core.Tests.Studies;

public sealed class ProjectionTrackerTests
{
    private static readonly DateTimeOffset T0 = new(2026, 11, 22, 12, 0, 0, TimeSpan.Zero);

    [Fact]
    public void With_nothing_behind_the_checkpoint_follows_the_clock_less_the_margin()
    {
        var clock = new ManualClock(T0);
        var tracker = new ProjectionTracker(clock);
        Assert.Equal(T0 - ProjectionTracker.Margin, tracker.Checkpoint());
        clock.Now = T0.AddMinutes(1);
        Assert.Equal(T0.AddMinutes(1) - ProjectionTracker.Margin, tracker.Checkpoint());
    }

    [Fact]
    public void A_study_behind_holds_the_checkpoint_at_its_first_unprojected_write_until_it_is_projected()
    {
        var clock = new ManualClock(T0);
        var tracker = new ProjectionTracker(clock);
        tracker.Writing("1.2.3");
        clock.Now = T0.AddSeconds(10);
        tracker.Writing("1.2.3"); // a second batch before the first was projected keeps the earlier time
        tracker.Writing("1.2.4");
        clock.Now = T0.AddSeconds(20);
        Assert.Equal(T0 - ProjectionTracker.Margin, tracker.Checkpoint());
        Assert.Equal(2, tracker.Behind);
        tracker.Projected("1.2.3");
        Assert.Equal(T0.AddSeconds(10) - ProjectionTracker.Margin, tracker.Checkpoint());
        tracker.Projected("1.2.4");
        Assert.Equal(T0.AddSeconds(20) - ProjectionTracker.Margin, tracker.Checkpoint());
        Assert.Equal(0, tracker.Behind);
    }

    [Fact]
    public void A_study_recovering_with_unprojected_events_holds_the_checkpoint_where_this_node_started()
    {
        var clock = new ManualClock(T0.AddHours(1));
        var tracker = new ProjectionTracker(clock);
        tracker.StartedFrom(T0);
        tracker.Recovered("1.2.3");
        Assert.Equal(T0 - ProjectionTracker.Margin, tracker.Checkpoint());
        tracker.Projected("1.2.3");
        Assert.Equal(T0.AddHours(1) - ProjectionTracker.Margin, tracker.Checkpoint());
    }
}
