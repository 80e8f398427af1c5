using Xunit;

namespace AkkaVna.Testing;

/// <summary>Polling for what a real process does in its own time (no fixed sleeps).</summary>
public static class Waits
{
    /// <summary>Returns once <paramref name="condition"/> holds; fails the test naming <paramref name="what"/> when <paramref name="timeout"/> passes first.</summary>
    public static async Task UntilAsync(Func<Task<bool>> condition, TimeSpan timeout, string what, Func<string>? detail = null)
    {
        var until = DateTime.UtcNow + timeout;
        while (!await condition())
        {
            Assert.True(DateTime.UtcNow < until, $"not within {timeout}: {what}{(detail is null ? "" : "\n" + detail())}");
            await Task.Delay(300);
        }
    }
}
