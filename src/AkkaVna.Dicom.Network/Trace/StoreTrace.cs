using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Threading.Channels;
using AkkaVna.Dicom.Network.Pdus;

namespace AkkaVna.Dicom.Network.Trace;

/// <summary>
/// One C-STORE of a recorded or scripted traffic trace: when it came (seconds from the trace's start), from which calling
/// AE to which called AE, the study, and either the instance's size (a generator makes one of that size) or a file to
/// send. A recording also holds the status the archive answered and its latency to commit.
/// </summary>
public sealed record TraceEntry(double Offset, string CallingAE, string CalledAE, string? Study, long? Size, string? File)
{
    public double? LatencyMs { get; init; }
    public string? Status { get; init; }
    public DateTimeOffset? Time { get; init; }
}

/// <summary>A trace line that cannot be used: the file, the line number and why.</summary>
public sealed class TraceFormatException(string path, int line, string reason) : Exception($"{path}:{line}: {reason}")
{
    public int Line { get; } = line;
    public string Reason { get; } = reason;
}

/// <summary>
/// Trace files: JSON Lines (one object per line: <c>t</c>, <c>calling</c>, <c>called</c>, <c>study</c>, <c>size</c>,
/// <c>file</c>, and in recordings <c>time</c>, <c>latency_ms</c>, <c>status</c>) or CSV with the header
/// <c>offset_s,calling_ae,called_ae,study,size,file</c>. The format is chosen by the extension (.csv, else JSON Lines).
/// Files named in a trace are relative to the trace's folder.
/// </summary>
public static class StoreTrace
{
    public const string CsvHeader = "offset_s,calling_ae,called_ae,study,size,file";

    /// <summary>Reads and checks every line; the entries are returned in time order. Throws <see cref="TraceFormatException"/>.</summary>
    public static List<TraceEntry> Read(string path)
    {
        bool csv = path.EndsWith(".csv", StringComparison.OrdinalIgnoreCase);
        string folder = Path.GetDirectoryName(Path.GetFullPath(path))!;
        var entries = new List<TraceEntry>();
        int number = 0;
        foreach (var raw in File.ReadLines(path))
        {
            number++;
            string line = raw.Trim();
            if (line.Length == 0 || line.StartsWith('#')) continue;
            if (csv && number == 1)
            {
                if (!line.Equals(CsvHeader, StringComparison.OrdinalIgnoreCase)) throw new TraceFormatException(path, number, $"the CSV header must be '{CsvHeader}'");
                continue;
            }
            var entry = csv ? ParseCsv(path, number, line) : ParseJson(path, number, line);
            entries.Add(Check(path, number, entry, folder));
        }
        if (entries.Count == 0) throw new TraceFormatException(path, Math.Max(number, 1), "the trace holds no entry");
        return [.. entries.OrderBy(e => e.Offset)];
    }

    private static TraceEntry ParseJson(string path, int number, string line)
    {
        try
        {
            using var doc = JsonDocument.Parse(line);
            var o = doc.RootElement;
            if (o.ValueKind != JsonValueKind.Object) throw new TraceFormatException(path, number, "a JSON Lines trace holds one object per line");
            string? Str(string name) => o.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;
            double? Num(string name) => o.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetDouble() : null;
            if (!o.TryGetProperty("t", out var t) || t.ValueKind != JsonValueKind.Number) throw new TraceFormatException(path, number, "\"t\" (seconds from the start) is missing or not a number");
            return new TraceEntry(t.GetDouble(), Str("calling") ?? "", Str("called") ?? "", Str("study"), Num("size") is { } s ? (long)s : null, Str("file"))
            {
                LatencyMs = Num("latency_ms"),
                Status = Str("status"),
                Time = Str("time") is { } time && DateTimeOffset.TryParse(time, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var when) ? when : null,
            };
        }
        catch (JsonException e)
        {
            throw new TraceFormatException(path, number, "not a JSON object: " + e.Message);
        }
    }

    private static TraceEntry ParseCsv(string path, int number, string line)
    {
        var f = line.Split(',');
        if (f.Length != 6) throw new TraceFormatException(path, number, $"{f.Length} fields, expected 6 ({CsvHeader})");
        if (!double.TryParse(f[0], NumberStyles.Float, CultureInfo.InvariantCulture, out double offset))
            throw new TraceFormatException(path, number, $"offset '{f[0]}' is not a number of seconds");
        long? size = null;
        if (f[4].Length > 0)
            size = long.TryParse(f[4], NumberStyles.Integer, CultureInfo.InvariantCulture, out long s) ? s : throw new TraceFormatException(path, number, $"size '{f[4]}' is not a number of bytes");
        return new TraceEntry(offset, f[1].Trim(), f[2].Trim(), f[3].Length > 0 ? f[3].Trim() : null, size, f[5].Length > 0 ? f[5].Trim() : null);
    }

    private static TraceEntry Check(string path, int number, TraceEntry e, string folder)
    {
        if (double.IsNaN(e.Offset) || e.Offset < 0) throw new TraceFormatException(path, number, $"offset {e.Offset} is negative");
        if (!PduCodec.IsValidAETitle(e.CallingAE)) throw new TraceFormatException(path, number, $"calling AE title '{e.CallingAE}' is not 1-16 characters without backslash");
        if (!PduCodec.IsValidAETitle(e.CalledAE)) throw new TraceFormatException(path, number, $"called AE title '{e.CalledAE}' is not 1-16 characters without backslash");
        if (e.Study is { } study && !Dictionary.DicomUidRegistry.IsWellFormed(study)) throw new TraceFormatException(path, number, $"study '{study}' is not a UID");
        if (e.File is null && e.Size is null) throw new TraceFormatException(path, number, "neither a size nor a file: nothing to send");
        if (e.Size is { } size && size is <= 0 or > 4L * 1024 * 1024 * 1024) throw new TraceFormatException(path, number, $"size {size} is not between 1 byte and 4 GiB");
        if (e.File is { } file)
        {
            string full = Path.GetFullPath(Path.Combine(folder, file));
            if (!System.IO.File.Exists(full)) throw new TraceFormatException(path, number, $"file {full} does not exist");
            return e with { File = full };
        }
        return e;
    }

    /// <summary>Writes entries as JSON Lines or CSV (by the extension), readable by <see cref="Read"/>.</summary>
    public static void Write(string path, IEnumerable<TraceEntry> entries)
    {
        bool csv = path.EndsWith(".csv", StringComparison.OrdinalIgnoreCase);
        using var w = new StreamWriter(path, false, new UTF8Encoding(false));
        if (csv) w.WriteLine(CsvHeader);
        foreach (var e in entries) w.WriteLine(csv ? ToCsv(e) : ToJson(e));
    }

    private static string ToCsv(TraceEntry e) => string.Join(',', e.Offset.ToString("0.######", CultureInfo.InvariantCulture), e.CallingAE, e.CalledAE, e.Study ?? "",
        e.Size?.ToString(CultureInfo.InvariantCulture) ?? "", e.File ?? "");

    public static string ToJson(TraceEntry e)
    {
        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms))
        {
            w.WriteStartObject();
            w.WriteNumber("t", Math.Round(e.Offset, 6));
            if (e.Time is { } time) w.WriteString("time", time.UtcDateTime.ToString("O", CultureInfo.InvariantCulture));
            w.WriteString("calling", e.CallingAE);
            w.WriteString("called", e.CalledAE);
            if (e.Study is not null) w.WriteString("study", e.Study);
            if (e.Size is { } size) w.WriteNumber("size", size);
            if (e.File is not null) w.WriteString("file", e.File);
            if (e.LatencyMs is { } latency) w.WriteNumber("latency_ms", Math.Round(latency, 3));
            if (e.Status is not null) w.WriteString("status", e.Status);
            w.WriteEndObject();
        }
        return Encoding.UTF8.GetString(ms.ToArray());
    }
}

/// <summary>
/// Appends trace entries to a JSON Lines file as a server receives instances, off the ingest path: entries are queued
/// (bounded; when the disk cannot keep up, entries are dropped and counted rather than slowing ingest) and written by
/// one background loop that flushes whenever the queue runs empty.
/// </summary>
public sealed class StoreTraceWriter : IAsyncDisposable
{
    private readonly Channel<TraceEntry> _queue = Channel.CreateBounded<TraceEntry>(new BoundedChannelOptions(65_536) { FullMode = BoundedChannelFullMode.DropWrite, SingleReader = true });
    private readonly Task _loop;
    private readonly long _start = System.Diagnostics.Stopwatch.GetTimestamp();
    private long _dropped;

    public StoreTraceWriter(string path)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        var stream = new FileStream(path, FileMode.Append, FileAccess.Write, FileShare.Read, 64 * 1024);
        _loop = Task.Run(() => WriteLoopAsync(new StreamWriter(stream, new UTF8Encoding(false))));
    }

    /// <summary>Entries the queue had no room for.</summary>
    public long Dropped => Interlocked.Read(ref _dropped);

    /// <summary>Records one C-STORE; its offset is the time since the writer started.</summary>
    public void Record(string callingAE, string calledAE, string? study, long size, double latencyMs, string status)
    {
        var entry = new TraceEntry(System.Diagnostics.Stopwatch.GetElapsedTime(_start).TotalSeconds, callingAE, calledAE, study, size, null)
        {
            LatencyMs = latencyMs, Status = status, Time = DateTimeOffset.UtcNow,
        };
        if (!_queue.Writer.TryWrite(entry)) Interlocked.Increment(ref _dropped);
    }

    private async Task WriteLoopAsync(StreamWriter w)
    {
        await using (w)
        {
            while (await _queue.Reader.WaitToReadAsync())
            {
                while (_queue.Reader.TryRead(out var e)) await w.WriteLineAsync(StoreTrace.ToJson(e));
                await w.FlushAsync();
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        _queue.Writer.TryComplete();
        await _loop;
    }
}
