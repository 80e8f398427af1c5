using System.Globalization;
using System.Text.RegularExpressions;

namespace AkkaVna.Core.Lifecycle;

/// <summary>
/// A period of calendar time as retention rules state it: <c>20y</c>, <c>6mo</c>, <c>30d</c>, <c>12h</c>, <c>90s</c>, or a
/// sum such as <c>1y6mo</c>. Years and months are calendar units, added so that the result is never earlier than the
/// exact anniversary: where the day does not exist in the target month (29 February in a common year, 31 in a 30-day
/// month) the period ends at the start of the next day (1 March, the 1st of the next month) — a law that says "twenty
/// years" is never satisfied a day early.
/// </summary>
public readonly partial record struct RetentionPeriod(int Months, TimeSpan Time)
{
    public static readonly RetentionPeriod Zero = new(0, TimeSpan.Zero);

    [GeneratedRegex(@"^\s*(?:(\d+)\s*(y|mo|d|h|m|s)\s*)+$", RegexOptions.CultureInvariant)]
    private static partial Regex Shape();

    [GeneratedRegex(@"(\d+)\s*(y|mo|d|h|m|s)", RegexOptions.CultureInvariant)]
    private static partial Regex Part();

    /// <summary>Parses a period; throws <see cref="FormatException"/> with what is expected.</summary>
    public static RetentionPeriod Parse(string text)
    {
        if (string.IsNullOrWhiteSpace(text) || !Shape().IsMatch(text))
            throw new FormatException($"'{text}' is not a period (a number and a unit: y years, mo months, d days, h hours, m minutes, s seconds; e.g. 20y, 6mo, 1y6mo, 10s)");
        long months = 0;
        var time = TimeSpan.Zero;
        foreach (Match m in Part().Matches(text))
        {
            long n = long.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture);
            if (n > 100_000) throw new FormatException($"'{text}': {n} is too large a count");
            switch (m.Groups[2].Value)
            {
                case "y": months += 12 * n; break;
                case "mo": months += n; break;
                case "d": time += TimeSpan.FromDays(n); break;
                case "h": time += TimeSpan.FromHours(n); break;
                case "m": time += TimeSpan.FromMinutes(n); break;
                default: time += TimeSpan.FromSeconds(n); break;
            }
        }
        if (months > 12 * 1000) throw new FormatException($"'{text}' is more than 1000 years");
        return new RetentionPeriod((int)months, time);
    }

    /// <summary>
    /// <paramref name="from"/> plus this period: calendar months first (the next day's start where the day does not
    /// exist in the target month), then the fixed part; null when the result passes the calendar's end.
    /// </summary>
    public DateTimeOffset? After(DateTimeOffset from)
    {
        try
        {
            var shifted = from.AddMonths(Months);
            if (shifted.Day != from.Day) shifted = new DateTimeOffset(shifted.Year, shifted.Month, 1, 0, 0, 0, from.Offset).AddMonths(1);
            return shifted + Time;
        }
        catch (ArgumentOutOfRangeException)
        {
            return null;
        }
    }

    public override string ToString()
    {
        var parts = new List<string>();
        if (Months / 12 > 0) parts.Add($"{Months / 12}y");
        if (Months % 12 > 0) parts.Add($"{Months % 12}mo");
        if (Time.Days > 0) parts.Add($"{Time.Days}d");
        if (Time.Hours > 0) parts.Add($"{Time.Hours}h");
        if (Time.Minutes > 0) parts.Add($"{Time.Minutes}m");
        if (Time.Seconds > 0) parts.Add($"{Time.Seconds}s");
        return parts.Count == 0 ? "0s" : string.Concat(parts);
    }
}
