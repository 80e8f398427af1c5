namespace AkkaVna.Dicom.Network.Replay;

/// <summary>
/// Latencies in log-linear buckets (HdrHistogram's idea, two significant digits): from 1 µs to about 18 hours, each
/// bucket at most 1 % wide, so percentiles are within 1 % whatever the count, in constant memory (about 3,700 counters).
/// </summary>
public sealed class LatencyHistogram
{
    private const int SubBuckets = 128;          // per power of two: 1/128 < 1 % resolution
    private const int Magnitudes = 36;           // 2^36 µs ≈ 19 hours
    private readonly long[] _counts = new long[SubBuckets * Magnitudes];
    private long _count;
    private double _max, _sum;

    public long Count => _count;
    public double MaxMs => _max;
    public double MeanMs => _count == 0 ? 0 : _sum / _count;

    public void Record(double milliseconds)
    {
        double us = Math.Max(1, milliseconds * 1000);
        _counts[Index(us)]++;
        _count++;
        _sum += milliseconds;
        if (milliseconds > _max) _max = milliseconds;
    }

    private static int Index(double us)
    {
        int magnitude = Math.Min(Magnitudes - 1, (int)Math.Floor(Math.Log2(us)));
        double lower = Math.Pow(2, magnitude);
        int sub = Math.Min(SubBuckets - 1, (int)((us - lower) / lower * SubBuckets));
        return magnitude * SubBuckets + sub;
    }

    /// <summary>The upper edge of bucket <paramref name="index"/>, in milliseconds.</summary>
    private static double UpperMs(int index)
    {
        int magnitude = index / SubBuckets, sub = index % SubBuckets;
        double lower = Math.Pow(2, magnitude);
        return (lower + lower * (sub + 1) / SubBuckets) / 1000;
    }

    /// <summary>The latency at or below which <paramref name="percentile"/> % of the recorded ones fall (0 when empty).</summary>
    public double Percentile(double percentile)
    {
        if (_count == 0) return 0;
        long rank = Math.Max(1, (long)Math.Ceiling(percentile / 100 * _count));
        long seen = 0;
        for (int i = 0; i < _counts.Length; i++)
        {
            seen += _counts[i];
            if (seen >= rank) return Math.Min(UpperMs(i), _max);
        }
        return _max;
    }

    public void Add(LatencyHistogram other)
    {
        for (int i = 0; i < _counts.Length; i++) _counts[i] += other._counts[i];
        _count += other._count;
        _sum += other._sum;
        _max = Math.Max(_max, other._max);
    }
}
