namespace AkkaVna.Testing;

/// <summary>A clock a test sets by hand (for code that takes the time from an injected <see cref="TimeProvider"/>).</summary>
public sealed class ManualClock(DateTimeOffset now) : TimeProvider
{
    public DateTimeOffset Now { get; set; } = now;

    public override DateTimeOffset GetUtcNow() => Now;
}
