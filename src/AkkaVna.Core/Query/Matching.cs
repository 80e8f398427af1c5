using System.Text;
using System.Text.RegularExpressions;
using AkkaVna.Dicom;

namespace AkkaVna.Core.Query;

/// <summary>
/// One matching key of a query (PS3.4 C.2.2.2): single value, universal (empty: return only), wildcard (<c>*</c>,
/// <c>?</c>), range (DA, TM, DT), list of UIDs, or a list of values (any one matches). A stored attribute with several
/// values (Modalities in Study) matches when any of its values does.
/// </summary>
public abstract class ValueMatcher
{
    /// <summary>Whether the stored value (null or empty when the record has none) matches.</summary>
    public abstract bool Matches(string? stored);

    /// <summary>
    /// The matcher for a key's value, or null for universal matching. <paramref name="caseInsensitiveNames"/> makes PN
    /// matching ignore case (the configured option).
    /// </summary>
    public static ValueMatcher? For(DicomVR vr, string value, bool caseInsensitiveNames)
    {
        if (value.Length == 0) return null;
        if (vr == DicomVR.UI) return new ListMatcher(value.Split('\\').Select(v => v.Trim()).Where(v => v.Length > 0), StringComparer.Ordinal);
        if (vr is DicomVR.DA or DicomVR.TM or DicomVR.DT)
        {
            var alternatives = value.Split('\\').Select(v => TemporalMatcher.Parse(vr, v.Trim())).ToList();
            return alternatives.Count == 1 ? alternatives[0] : new AnyMatcher(alternatives);
        }
        if (vr is DicomVR.IS or DicomVR.DS or DicomVR.US or DicomVR.SS or DicomVR.UL or DicomVR.SL)
            return new ListMatcher(value.Split('\\').Select(v => v.Trim()).Where(v => v.Length > 0).Select(NormalizeNumber), StringComparer.Ordinal, NormalizeNumber);
        bool ignoreCase = vr == DicomVR.PN && caseInsensitiveNames;
        // Text with '\' in a multi-valued VR is a list of values (any one matches); LT, ST, UT take it literally.
        var values = vr.IsMultiValuedString() ? value.Split('\\') : [value];
        var matchers = new List<ValueMatcher>();
        foreach (var v in values)
        {
            if (v.Length == 0) continue;
            if (v.All(c => c == '*')) return null; // "*" alone is universal matching
            matchers.Add(v.IndexOfAny(['*', '?']) >= 0 ? new WildcardMatcher(v, ignoreCase) : new SingleValueMatcher(v, ignoreCase));
        }
        return matchers.Count switch { 0 => null, 1 => matchers[0], _ => new AnyMatcher(matchers) };
    }

    private static string NormalizeNumber(string s) =>
        decimal.TryParse(s.Trim(), System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out var d)
            ? d.ToString(System.Globalization.CultureInfo.InvariantCulture) : s.Trim();

    /// <summary>The values of a stored attribute (several for a multi-valued one such as Modalities in Study).</summary>
    protected static IEnumerable<string> Values(string? stored) => string.IsNullOrEmpty(stored) ? [] : stored.Split('\\');

    private sealed class ListMatcher(IEnumerable<string> values, StringComparer comparer, Func<string, string>? normalize = null) : ValueMatcher
    {
        private readonly HashSet<string> _values = new(values, comparer);

        public override bool Matches(string? stored) => Values(stored).Any(v => _values.Contains(normalize is null ? v.Trim() : normalize(v)));
    }

    private sealed class SingleValueMatcher(string value, bool ignoreCase) : ValueMatcher
    {
        public override bool Matches(string? stored) =>
            Values(stored).Any(v => string.Equals(v.Trim(), value, ignoreCase ? StringComparison.OrdinalIgnoreCase : StringComparison.Ordinal));
    }

    private sealed class WildcardMatcher : ValueMatcher
    {
        private readonly Regex _regex;

        public WildcardMatcher(string pattern, bool ignoreCase)
        {
            var sb = new StringBuilder("^");
            foreach (char c in pattern)
                sb.Append(c switch { '*' => ".*", '?' => ".", _ => Regex.Escape(c.ToString()) });
            sb.Append('$');
            _regex = new Regex(sb.ToString(), RegexOptions.Singleline | RegexOptions.CultureInvariant | (ignoreCase ? RegexOptions.IgnoreCase : RegexOptions.None),
                TimeSpan.FromMilliseconds(100));
        }

        public override bool Matches(string? stored) => Values(stored).Any(v => _regex.IsMatch(v.Trim()));
    }

    private sealed class AnyMatcher(IReadOnlyList<ValueMatcher> alternatives) : ValueMatcher
    {
        public override bool Matches(string? stored) => alternatives.Any(m => m.Matches(stored));
    }
}

/// <summary>
/// DA, TM and DT matching: a single value, or a range <c>a-b</c>, <c>-b</c>, <c>a-</c> (PS3.4 C.2.2.2.5). Values are
/// compared on a normalized form (TM padded to HHMMSS.FFFFFF, colons of old-style times dropped), so a range bound of
/// lower precision covers all of its unit (a TM upper bound "12" takes 12:59:59.999999).
/// </summary>
public sealed class TemporalMatcher : ValueMatcher
{
    private readonly DicomVR _vr;

    private TemporalMatcher(DicomVR vr, string? lower, string? upper, bool isRange)
    {
        _vr = vr;
        Lower = lower;
        Upper = upper;
        IsRange = isRange;
    }

    public string? Lower { get; }
    public string? Upper { get; }
    public bool IsRange { get; }

    public static TemporalMatcher Parse(DicomVR vr, string value)
    {
        int dash = vr == DicomVR.DT ? RangeDash(value) : value.IndexOf('-', StringComparison.Ordinal);
        if (dash < 0)
        {
            Validate(vr, value);
            return new TemporalMatcher(vr, Normalize(vr, value, upper: false), Normalize(vr, value, upper: true), isRange: false);
        }
        string lo = value[..dash].Trim(), hi = value[(dash + 1)..].Trim();
        if (lo.Length == 0 && hi.Length == 0) throw new QueryException($"'{value}' is not a {vr} range: both bounds are empty");
        if (lo.Length > 0) Validate(vr, lo);
        if (hi.Length > 0) Validate(vr, hi);
        return new TemporalMatcher(vr, lo.Length > 0 ? Normalize(vr, lo, upper: false) : null, hi.Length > 0 ? Normalize(vr, hi, upper: true) : null, isRange: true);
    }

    /// <summary>A DT value may carry a UTC offset "-0500": the range dash is the one not followed by four offset digits at the end.</summary>
    private static int RangeDash(string value)
    {
        for (int i = 0; i < value.Length; i++)
        {
            if (value[i] != '-') continue;
            bool offset = i >= 8 && value.Length - i == 5 && value[(i + 1)..].All(char.IsAsciiDigit) && value.IndexOf('-', i + 1) < 0 && i > 0 && char.IsAsciiDigit(value[i - 1]);
            if (!offset) return i;
        }
        return -1;
    }

    /// <summary>A key must be a date, time or date-time that exists (PS3.5 6.2): 20241345 or 256199 are refused, not matched against nothing.</summary>
    private static void Validate(DicomVR vr, string v)
    {
        string? why = vr switch
        {
            DicomVR.DA => CheckDate(v.Length == 10 && v[4] == '.' && v[7] == '.' ? v.Replace(".", "", StringComparison.Ordinal) : v),
            DicomVR.TM => CheckTime(v.Replace(":", "", StringComparison.Ordinal)),
            _ => CheckDateTime(v),
        };
        if (why is not null) throw new QueryException($"'{v}' is not a valid {vr} value: {why}");
    }

    private static bool Digits(string s) => s.Length > 0 && s.All(char.IsAsciiDigit);

    private static string? CheckDate(string d)
    {
        if (d.Length != 8 || !Digits(d)) return "a date is YYYYMMDD";
        return DateOnly.TryParseExact(d, "yyyyMMdd", System.Globalization.CultureInfo.InvariantCulture, System.Globalization.DateTimeStyles.None, out _)
            ? null : "there is no such day";
    }

    /// <summary>HH[MM[SS[.F{1,6}]]]: hours 00-23, minutes 00-59, seconds 00-60 (a leap second).</summary>
    private static string? CheckTime(string t)
    {
        var parts = t.Split('.');
        string hms = parts[0];
        if (parts.Length > 2 || hms.Length is not (2 or 4 or 6) || !Digits(hms)) return "a time is HH, HHMM, HHMMSS or HHMMSS.FFFFFF";
        if (parts.Length == 2 && (hms.Length != 6 || parts[1].Length is 0 or > 6 || !Digits(parts[1]))) return "a fraction follows HHMMSS and has 1 to 6 digits";
        if (int.Parse(hms[..2], System.Globalization.CultureInfo.InvariantCulture) > 23) return "hours run from 00 to 23";
        if (hms.Length >= 4 && int.Parse(hms[2..4], System.Globalization.CultureInfo.InvariantCulture) > 59) return "minutes run from 00 to 59";
        if (hms.Length == 6 && int.Parse(hms[4..6], System.Globalization.CultureInfo.InvariantCulture) > 60) return "seconds run from 00 to 60";
        return null;
    }

    /// <summary>YYYY[MM[DD[HH[MM[SS[.F{1,6}]]]]]][&amp;ZZXX], each component valid.</summary>
    private static string? CheckDateTime(string v)
    {
        int sign = v.IndexOfAny(['+', '-'], Math.Min(4, v.Length));
        string core = sign > 0 ? v[..sign] : v;
        if (sign > 0)
        {
            string offset = v[(sign + 1)..];
            if (offset.Length != 4 || !Digits(offset)) return "a UTC offset is &ZZXX";
        }
        string whole = core.Split('.')[0];
        if (whole.Length is < 4 or > 14 || whole.Length % 2 != 0 || !Digits(whole)) return "a date-time is YYYY[MM[DD[HH[MM[SS[.FFFFFF]]]]]]";
        if (whole.Length >= 6 && whole[4..6] is var mm && (mm.CompareTo("01") < 0 || mm.CompareTo("12") > 0)) return "months run from 01 to 12";
        if (whole.Length >= 8 && CheckDate(whole[..8]) is { } badDate) return badDate;
        if (whole.Length > 8) return CheckTime(core[8..]);
        return core.Contains('.', StringComparison.Ordinal) ? "a fraction follows the seconds" : null;
    }

    private static string Normalize(DicomVR vr, string v, bool upper)
    {
        switch (vr)
        {
            case DicomVR.DA:
                return v.Replace(".", "", StringComparison.Ordinal);
            case DicomVR.TM:
            {
                v = v.Replace(":", "", StringComparison.Ordinal);
                var parts = v.Split('.');
                string hms = parts[0], frac = parts.Length > 1 ? parts[1] : "";
                string fill = upper ? "59" : "00";
                while (hms.Length < 6) hms += fill;
                frac = frac.PadRight(6, upper ? '9' : '0');
                return hms + "." + frac;
            }
            default:
            {
                // DT: YYYYMMDDHHMMSS.FFFFFF&ZZXX; the offset is ignored (values are compared as recorded).
                int plus = v.IndexOfAny(['+', '-'], 4);
                if (plus > 0) v = v[..plus];
                string whole = upper ? "99991231235959.999999" : "00000101000000.000000";
                if (v.Contains('.', StringComparison.Ordinal))
                {
                    var p = v.Split('.');
                    return p[0] + whole[p[0].Length..14] + "." + p[1].PadRight(6, upper ? '9' : '0');
                }
                return v + whole[Math.Min(v.Length, whole.Length)..];
            }
        }
    }

    public override bool Matches(string? stored)
    {
        if (string.IsNullOrEmpty(stored)) return false;
        foreach (var raw in Values(stored))
        {
            string v = raw.Trim();
            if (v.Length == 0) continue;
            string lo = Normalize(_vr, v, upper: false), hi = Normalize(_vr, v, upper: true);
            if (!IsRange)
            {
                // A single value matches what falls within its precision ("1030" matches 10:30:15).
                if (string.CompareOrdinal(lo, Lower) >= 0 && string.CompareOrdinal(lo, Upper) <= 0) return true;
                continue;
            }
            if ((Lower is null || string.CompareOrdinal(hi, Lower) >= 0) && (Upper is null || string.CompareOrdinal(lo, Upper) <= 0)) return true;
        }
        return false;
    }

    /// <summary>
    /// Combined date-time range matching (PS3.4 C.2.2.2.5.1): a DA range and a TM range given together select the
    /// period from (lower date, lower time) to (upper date, upper time), not a time window on each day.
    /// </summary>
    public static bool MatchesCombined(TemporalMatcher date, TemporalMatcher time, string? storedDate, string? storedTime)
    {
        if (string.IsNullOrEmpty(storedDate)) return false;
        string d = Normalize(DicomVR.DA, storedDate.Trim(), upper: false);
        string t = string.IsNullOrEmpty(storedTime) ? "000000.000000" : Normalize(DicomVR.TM, storedTime.Trim(), upper: false);
        string stamp = d + t;
        string? lo = date.Lower is null ? null : date.Lower + (time.Lower ?? "000000.000000");
        string? hi = date.Upper is null ? null : date.Upper + (time.Upper ?? "235959.999999");
        return (lo is null || string.CompareOrdinal(stamp, lo) >= 0) && (hi is null || string.CompareOrdinal(stamp, hi) <= 0);
    }
}

/// <summary>A query that cannot be performed as given; the message says why (sent as the Error Comment or HTTP body).</summary>
public sealed class QueryException(string message) : Exception(message);
