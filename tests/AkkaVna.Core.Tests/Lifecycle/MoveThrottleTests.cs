using AkkaVna.Testing;
using AkkaVna.Core.Lifecycle;

namespace AkkaVna.Core.Tests.Lifecycle;

public sealed class MoveThrottleTests
{
    private static readonly DateTimeOffset T0 = new(2026, 12, 3, 12, 0, 0, TimeSpan.Zero);

    [Fact]
    public void Copies_reserve_their_time_at_the_pace_and_an_idle_throttle_does_not_bank_credit()
    {
        var clock = new ManualClock(T0);
        var throttle = new MoveThrottle(1_000_000, clock); // 1 MB/s
        Assert.Equal(TimeSpan.Zero, throttle.Reserve(500_000));                        // starts now, takes 0.5 s
        Assert.Equal(TimeSpan.FromSeconds(0.5), throttle.Reserve(2_000_000));          // after the first, takes 2 s
        Assert.Equal(TimeSpan.FromSeconds(2.5), throttle.Reserve(1));                  // after both
        clock.Now = T0 + TimeSpan.FromSeconds(1);
        Assert.Equal(TimeSpan.FromSeconds(1.5 + 0.000001), throttle.Reserve(1));       // the slots do not move
        clock.Now = T0 + TimeSpan.FromMinutes(10);                                     // idle for minutes: no burst banked
        Assert.Equal(TimeSpan.Zero, throttle.Reserve(1_000_000));
        Assert.Equal(TimeSpan.FromSeconds(1), throttle.Reserve(1_000_000));
    }

    [Fact]
    public void Zero_is_no_limit()
    {
        var throttle = new MoveThrottle(0, new ManualClock(T0));
        for (int i = 0; i < 3; i++) Assert.Equal(TimeSpan.Zero, throttle.Reserve(long.MaxValue / 4));
    }
}
