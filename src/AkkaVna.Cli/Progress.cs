using System.Diagnostics;

namespace AkkaVna.Cli;

/// <summary>
/// A progress bar on stderr for long CLI work (count, rate, ETA), redrawn at most 10 times a second. Silent when stderr
/// is not a terminal, so logs and scripts get only the summary.
/// </summary>
public sealed class Progress : IDisposable
{
    private readonly int _total;
    private readonly long _started = Stopwatch.GetTimestamp();
    private readonly bool _enabled;
    private long _lastDraw;
    private int _done;

    private Progress(int total, bool enabled)
    {
        _total = total;
        _enabled = enabled;
    }

    public static Progress Start(int total) => new(total, !Console.IsErrorRedirected);

    public void Report(int done)
    {
        _done = done;
        if (!_enabled) return;
        long now = Stopwatch.GetTimestamp();
        if (done < _total && Stopwatch.GetElapsedTime(_lastDraw, now).TotalMilliseconds < 100) return;
        _lastDraw = now;
        Draw();
    }

    private void Draw()
    {
        lock (this)
        {
            double seconds = Stopwatch.GetElapsedTime(_started).TotalSeconds;
            double rate = _done / Math.Max(seconds, 1e-9);
            int width = 30;
            int filled = _total == 0 ? width : (int)((long)width * _done / _total);
            string eta = rate > 0 && _done < _total ? $" ETA {TimeSpan.FromSeconds((_total - _done) / rate):hh\\:mm\\:ss}" : "";
            Console.Error.Write($"\r[{new string('#', filled)}{new string('.', width - filled)}] {_done}/{_total} {rate:0.0}/s{eta}   ");
        }
    }

    public void Dispose()
    {
        if (!_enabled) return;
        Draw();
        Console.Error.WriteLine();
    }
}
