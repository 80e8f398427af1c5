using AkkaVna.Dicom.Network.Trace;
using AkkaVna.Testing;

namespace AkkaVna.Dicom.Network.Tests.Trace;

public sealed class StoreTraceTests
{
    private static readonly TraceEntry[] Entries =
    [
        new(0, "GW1", "AKKAVNA", "1.2.3", 524_288, null),
        new(0.25, "GW2", "AKKAVNA", null, 1000, null) { LatencyMs = 3.5, Status = "0000", Time = new DateTimeOffset(2026, 11, 22, 10, 0, 0, TimeSpan.Zero) },
        new(1.5, "GW1", "ARCHIVE", "1.2.3.4", 42, null),
    ];

    [Theory]
    [InlineData("trace.jsonl")]
    [InlineData("trace.csv")]
    public void Written_entries_read_back_the_same(string name)
    {
        using var dir = new TempDir();
        string path = dir.File(name);
        StoreTrace.Write(path, Entries);
        var read = StoreTrace.Read(path);
        bool csv = name.EndsWith(".csv", StringComparison.Ordinal);
        // CSV carries the six replay fields; JSON Lines also the recorded latency, status and time.
        Assert.Equal(csv ? Entries.Select(e => e with { LatencyMs = null, Status = null, Time = null }) : Entries, read);
    }

    [Fact]
    public void Entries_are_returned_in_time_order_and_files_resolve_beside_the_trace()
    {
        using var dir = new TempDir();
        File.WriteAllBytes(dir.File("a.dcm"), [1, 2, 3]);
        string path = dir.File("t.jsonl");
        File.WriteAllLines(path, ["{\"t\": 2, \"calling\": \"GW1\", \"called\": \"AKKAVNA\", \"file\": \"a.dcm\"}", "", "# comment",
            "{\"t\": 1, \"calling\": \"GW1\", \"called\": \"AKKAVNA\", \"size\": 10}"]);
        var read = StoreTrace.Read(path);
        Assert.Equal([1.0, 2.0], read.Select(e => e.Offset));
        Assert.Equal(dir.File("a.dcm"), read[1].File);
    }

    [Theory]
    [InlineData("{\"t\": 0, \"calling\": \"GW1\", \"called\": \"AKKAVNA\", \"size\": 1}\n{not json}", 2, "not a JSON object")]
    [InlineData("{\"calling\": \"GW1\", \"called\": \"AKKAVNA\", \"size\": 1}", 1, "\"t\"")]
    [InlineData("{\"t\": -1, \"calling\": \"GW1\", \"called\": \"AKKAVNA\", \"size\": 1}", 1, "negative")]
    [InlineData("{\"t\": 0, \"calling\": \"A\\\\B\", \"called\": \"AKKAVNA\", \"size\": 1}", 1, "calling AE title")]
    [InlineData("{\"t\": 0, \"calling\": \"GW1\", \"called\": \"\", \"size\": 1}", 1, "called AE title")]
    [InlineData("{\"t\": 0, \"calling\": \"GW1\", \"called\": \"AKKAVNA\"}", 1, "neither a size nor a file")]
    [InlineData("{\"t\": 0, \"calling\": \"GW1\", \"called\": \"AKKAVNA\", \"size\": 0}", 1, "size 0")]
    [InlineData("{\"t\": 0, \"calling\": \"GW1\", \"called\": \"AKKAVNA\", \"study\": \"1..2\", \"size\": 1}", 1, "not a UID")]
    [InlineData("\n\n{\"t\": 0, \"calling\": \"GW1\", \"called\": \"AKKAVNA\", \"file\": \"missing.dcm\"}", 3, "does not exist")]
    [InlineData("", 1, "no entry")]
    public void A_bad_json_lines_trace_names_the_line_and_the_reason(string text, int line, string reason)
    {
        using var dir = new TempDir();
        string path = dir.File("bad.jsonl");
        File.WriteAllText(path, text);
        var e = Assert.Throws<TraceFormatException>(() => StoreTrace.Read(path));
        Assert.Equal(line, e.Line);
        Assert.Contains(reason, e.Reason, StringComparison.Ordinal);
        Assert.StartsWith($"{path}:{line}: ", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("offset,ae\n", 1, "header")]
    [InlineData("offset_s,calling_ae,called_ae,study,size,file\n0,GW1,AKKAVNA,,12\n", 2, "5 fields")]
    [InlineData("offset_s,calling_ae,called_ae,study,size,file\nsoon,GW1,AKKAVNA,,12,\n", 2, "not a number of seconds")]
    [InlineData("offset_s,calling_ae,called_ae,study,size,file\n0,GW1,AKKAVNA,,big,\n", 2, "not a number of bytes")]
    public void A_bad_csv_trace_names_the_line_and_the_reason(string text, int line, string reason)
    {
        using var dir = new TempDir();
        string path = dir.File("bad.csv");
        File.WriteAllText(path, text);
        var e = Assert.Throws<TraceFormatException>(() => StoreTrace.Read(path));
        Assert.Equal(line, e.Line);
        Assert.Contains(reason, e.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_writer_appends_one_json_line_per_record_and_flushes_on_dispose()
    {
        using var dir = new TempDir();
        string path = dir.File("rec/trace.jsonl");
        await using (var w = new StoreTraceWriter(path))
        {
            w.Record("GW1", "AKKAVNA", "1.2.3", 100, 2.5, "0000");
            w.Record("GW2", "AKKAVNA", null, 200, 3.5, "0111");
        }
        var read = StoreTrace.Read(path);
        Assert.Equal(["GW1", "GW2"], read.Select(e => e.CallingAE));
        Assert.Equal([100L, 200L], read.Select(e => e.Size!.Value));
        Assert.Equal(["0000", "0111"], read.Select(e => e.Status!));
        Assert.All(read, e => Assert.NotNull(e.Time));
    }
}
