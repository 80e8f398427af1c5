namespace AkkaVna.Core.Lifecycle;

/// <summary>
/// The node's pace for tier moves (<c>akka-vna.lifecycle.move-rate</c>, bytes per second; 0: as fast as the stores go),
/// shared by every study's lifecycle child, so that moving years of studies to a cold tier never starves ingest and
/// retrieval of disk or network. Each copy reserves its slot in time; a copy waits until its slot comes.
/// </summary>
public sealed class MoveThrottle(long bytesPerSecond, TimeProvider time)
{
    private readonly object _gate = new();
    private DateTimeOffset _next = DateTimeOffset.MinValue;

    public static readonly MoveThrottle Unlimited = new(0, TimeProvider.System);

    public long BytesPerSecond => bytesPerSecond;

    /// <summary>How long a copy of <paramref name="bytes"/> must wait before it starts (and reserves the time it takes at the pace).</summary>
    public TimeSpan Reserve(long bytes)
    {
        if (bytesPerSecond <= 0) return TimeSpan.Zero;
        lock (_gate)
        {
            var now = time.GetUtcNow();
            if (_next < now) _next = now;
            var wait = _next - now;
            _next += TimeSpan.FromSeconds((double)bytes / bytesPerSecond);
            return wait;
        }
    }

    /// <summary>Waits for the slot of a copy of <paramref name="bytes"/>.</summary>
    public Task WaitAsync(long bytes, CancellationToken cancellationToken) =>
        Reserve(bytes) is { Ticks: > 0 } wait ? Task.Delay(wait, time, cancellationToken) : Task.CompletedTask;
}
