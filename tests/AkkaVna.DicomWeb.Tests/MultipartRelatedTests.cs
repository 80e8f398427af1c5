using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using AkkaVna.Testing;
using AkkaVna.DicomWeb;

namespace AkkaVna.DicomWeb.Tests;

/// <summary>
/// multipart/related as STOW-RS sends it and DICOMweb answers with it: Content-Type parameters, writer -> reader round
/// trips of awkward binary bodies, parts of several MB streamed through a small buffer, every malformed or oversize body,
/// RFC 2046's own example, and a body produced by curl.
/// </summary>
public sealed class MultipartRelatedTests
{
    // ---- Content-Type ----

    [Theory]
    [InlineData("multipart/related; type=\"application/dicom\"; boundary=abc-123", "abc-123", "application/dicom")]
    [InlineData("multipart/related; type=application/dicom; boundary=\"a b:c/d\"", "a b:c/d", "application/dicom")]
    [InlineData("Multipart/Related;BOUNDARY=XyZ;Type=\"application/dicom+xml\"", "XyZ", "application/dicom+xml")]
    [InlineData("  multipart/related ; boundary = \"q\\\"uote\" ; type = application/octet-stream ;", "q\"uote", "application/octet-stream")]
    [InlineData("multipart/related; boundary=only", "only", null)]
    public void The_boundary_and_type_are_read_quoted_or_not(string header, string boundary, string? type)
    {
        var ct = MultipartContentType.Parse(header);
        Assert.Equal("multipart/related", ct.MediaType);
        Assert.Equal(boundary, ct.Boundary);
        Assert.Equal(type, ct.Type);
    }

    private const string Boundary257 = "12345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567";

    [Fact]
    public void Boundaries_longer_than_RFC_2046s_70_characters_are_taken_as_Orthanc_sends_them()
    {
        // Orthanc's DICOMweb plugin sends 73 characters; regression for STOW-RS from Orthanc answered 400.
        string orthanc = new string('a', 36) + "-" + new string('b', 36);
        Assert.Equal(orthanc, MultipartContentType.Parse($"multipart/related; type=\"application/dicom\"; boundary={orthanc}").Boundary);
        Assert.Equal(256, MultipartContentType.Parse("multipart/related; boundary=" + Boundary257[..256]).Boundary.Length);
    }

    [Fact]
    public void The_start_parameter_and_others_are_kept()
    {
        var ct = MultipartContentType.Parse("multipart/related; type=\"application/dicom\"; start=\"<root@akkavna>\"; boundary=b; start-info=x");
        Assert.Equal("<root@akkavna>", ct.Start);
        Assert.Equal("x", ct.Parameters["start-info"]);
    }

    [Theory]
    [InlineData(null, MultipartFailure.UnsupportedMediaType, "no Content-Type")]
    [InlineData("application/dicom", MultipartFailure.UnsupportedMediaType, "is 'application/dicom', not multipart/related")]
    [InlineData("multipart/form-data; boundary=x", MultipartFailure.UnsupportedMediaType, "not multipart/related")]
    [InlineData("multipart/related; type=\"application/dicom\"", MultipartFailure.Malformed, "no boundary parameter")]
    [InlineData("multipart/related; boundary=\"\"", MultipartFailure.Malformed, "0 characters")]
    [InlineData("multipart/related; boundary=" + Boundary257, MultipartFailure.Malformed, "257 characters")]
    [InlineData("multipart/related; boundary=\"ends with space \"", MultipartFailure.Malformed, "ends with a space")]
    [InlineData("multipart/related; boundary=\"open", MultipartFailure.Malformed, "unterminated quoted value")]
    [InlineData("multipart/related; boundary=a; boundary=b", MultipartFailure.Malformed, "'boundary' appears twice")]
    [InlineData("multipart/related; boundary; type=x", MultipartFailure.Malformed, "'boundary' has no value")]
    public void A_Content_Type_that_names_no_usable_boundary_says_why(string? header, MultipartFailure failure, string reason)
    {
        var e = Assert.Throws<MultipartException>(() => MultipartContentType.Parse(header));
        Assert.Equal(failure, e.Failure);
        Assert.Contains(reason, e.Message, StringComparison.Ordinal);
    }

    // ---- writer ----

    [Fact]
    public void The_writer_writes_RFC_2046_bytes_and_the_Content_Type_that_goes_with_them()
    {
        var output = new MemoryStream();
        var writer = new MultipartRelatedWriter(output, boundary: "B");
        writer.WritePart("application/dicom", new MemoryStream("abc"u8.ToArray()), [new("Content-Location", "/studies/1.2/series/3.4/instances/5.6")]);
        writer.WritePart("text/plain", new MemoryStream());
        writer.Complete();
        Assert.Equal("multipart/related; type=\"application/dicom\"; boundary=B", writer.ContentType);
        Assert.Equal(
            "--B\r\nContent-Type: application/dicom\r\nContent-Location: /studies/1.2/series/3.4/instances/5.6\r\n\r\nabc"
            + "\r\n--B\r\nContent-Type: text/plain\r\n\r\n"
            + "\r\n--B--\r\n",
            Encoding.Latin1.GetString(output.ToArray()));
    }

    [Fact]
    public void Each_writer_has_its_own_random_boundary_and_its_Content_Type_parses_back()
    {
        var a = new MultipartRelatedWriter(Stream.Null);
        var b = new MultipartRelatedWriter(Stream.Null, "application/octet-stream");
        Assert.NotEqual(a.Boundary, b.Boundary);
        Assert.Matches("^akkavna-[0-9a-f]{32}$", a.Boundary);
        var parsed = MultipartContentType.Parse(b.ContentType);
        Assert.Equal(b.Boundary, parsed.Boundary);
        Assert.Equal("application/octet-stream", parsed.Type);
        // A boundary with tspecials is quoted in the Content-Type.
        var spaced = new MultipartRelatedWriter(Stream.Null, boundary: "has space:colon");
        Assert.Equal("has space:colon", MultipartContentType.Parse(spaced.ContentType).Boundary);
    }

    [Fact]
    public void The_writer_refuses_an_empty_body_parts_after_the_end_and_header_injection()
    {
        Assert.Throws<InvalidOperationException>(() => new MultipartRelatedWriter(Stream.Null).Complete());
        var w = new MultipartRelatedWriter(Stream.Null);
        w.WritePart("application/dicom", new MemoryStream([1]));
        w.Complete();
        Assert.Throws<InvalidOperationException>(() => w.WritePart("application/dicom", new MemoryStream([1])));
        var fresh = new MultipartRelatedWriter(Stream.Null);
        Assert.Throws<ArgumentException>(() => fresh.WritePart("application/dicom\r\nX-Evil: 1", new MemoryStream()));
        Assert.Throws<ArgumentException>(() => fresh.WritePart("application/dicom", new MemoryStream(), [new("X-Evil", "a\r\n\r\nbody")]));
        Assert.Throws<ArgumentException>(() => fresh.WritePart("application/dicom", new MemoryStream(), [new("Bad Name", "v")]));
        Assert.Throws<ArgumentException>(() => new MultipartRelatedWriter(Stream.Null, boundary: new string('x', 71)));
    }

    // ---- round trips ----

    public static TheoryData<bool, int> Modes => new() { { false, 1024 }, { true, 1024 }, { false, 64 * 1024 }, { true, 64 * 1024 } };

    [Theory]
    [MemberData(nameof(Modes))]
    public async Task Binary_bodies_with_CR_LF_and_boundary_like_bytes_come_back_exactly(bool async, int bufferSize)
    {
        const string boundary = "akkavna-0123456789abcdef";
        var rng = new Random(2387);
        byte[] Random(int n)
        {
            var b = new byte[n];
            rng.NextBytes(b);
            return b;
        }
        byte[] Ascii(string s) => Encoding.ASCII.GetBytes(s);
        byte[][] bodies =
        [
            [.. Random(3000), .. Ascii("\r\n"), .. Ascii("\r\n--"), .. Ascii("--" + boundary), .. Random(50), .. Ascii("\r\n--" + boundary[..^1]),
                .. Random(5000), .. Ascii("\r\n-")], // ends with what could begin a delimiter
            [],
            Ascii("\r\n"),
            Ascii("\r\n\r\n--\r\n"),
            Random(200_000), // larger than the smaller buffer
            [.. Random(10), .. Ascii("--" + boundary + "--")], // mid-line, a close delimiter without its CRLF is data (at the start of
                                                               // a body it would begin a line, which RFC 2046 reserves for delimiters)
        ];
        var output = new MemoryStream();
        var writer = new MultipartRelatedWriter(output, boundary: boundary);
        for (int i = 0; i < bodies.Length; i++)
        {
            KeyValuePair<string, string>[] headers = [new("Content-Location", $"part-{i}"), new("Content-Length", bodies[i].Length.ToString(System.Globalization.CultureInfo.InvariantCulture))];
            if (async) await writer.WritePartAsync("application/octet-stream", new MemoryStream(bodies[i]), headers);
            else writer.WritePart("application/octet-stream", new MemoryStream(bodies[i]), headers);
        }
        if (async) await writer.CompleteAsync();
        else writer.Complete();

        // Read in awkward chunk sizes, from a stream that returns few bytes per read.
        var reader = new MultipartRelatedReader(new TricklingStream(output.ToArray(), 777), MultipartContentType.Parse(writer.ContentType),
            new MultipartLimits { BufferSize = bufferSize });
        var parts = await ReadAll(reader, async, chunk: 333);
        Assert.Equal(bodies.Length, parts.Count);
        for (int i = 0; i < bodies.Length; i++)
        {
            Assert.Equal($"part-{i}", parts[i].Part.ContentLocation);
            Assert.Equal("application/octet-stream", parts[i].Part.ContentType);
            Assert.Equal(bodies[i].Length, parts[i].Part.ContentLength);
            Assert.Equal(i + 1, parts[i].Part.Number);
            Assert.Equal(bodies[i], parts[i].Body);
        }
        Assert.Equal(output.Length, reader.BytesRead);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Parts_of_several_MB_pass_through_a_64_KiB_buffer_without_being_held(bool async)
    {
        // The writer feeds a pipe that holds at most 64 KiB while the reader drains it: neither side can hold a whole
        // 8 MiB part, so this only finishes if both stream.
        const long partSize = 8L * 1024 * 1024;
        var pipe = new Pipe(new PipeOptions(pauseWriterThreshold: 64 * 1024, resumeWriterThreshold: 32 * 1024));
        var writer = new MultipartRelatedWriter(pipe.Writer.AsStream());
        var writing = Task.Run(async () =>
        {
            for (int i = 0; i < 3; i++) await writer.WritePartAsync("application/dicom", new PseudoRandomStream(i, partSize));
            await writer.CompleteAsync();
            await pipe.Writer.CompleteAsync();
        });
        var reader = new MultipartRelatedReader(pipe.Reader.AsStream(), MultipartContentType.Parse(writer.ContentType));
        var chunk = new byte[64 * 1024];
        for (int i = 0; i < 3; i++)
        {
            var part = async ? await reader.ReadNextPartAsync() : reader.ReadNextPart();
            Assert.NotNull(part);
            using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            long total = 0;
            int n;
            while ((n = async ? await part.Body.ReadAsync(chunk) : part.Body.Read(chunk, 0, chunk.Length)) > 0)
            {
                hash.AppendData(chunk, 0, n);
                total += n;
            }
            Assert.Equal(partSize, total);
            Assert.Equal(ExpectedHash(i, partSize), hash.GetHashAndReset());
        }
        Assert.Null(async ? await reader.ReadNextPartAsync() : reader.ReadNextPart());
        await writing.WaitAsync(TimeSpan.FromSeconds(60));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_delimiter_split_across_reads_at_any_byte_is_found(bool async)
    {
        // Reads of 1 to 30 bytes put every split point of "\r\n--boundary" at the end of the buffered bytes at least once.
        const string boundary = "split-me";
        byte[][] bodies = [Encoding.ASCII.GetBytes("abc\r\n--split-m"), [], Encoding.ASCII.GetBytes("\r\r\n\r\n-")];
        var output = new MemoryStream();
        var writer = new MultipartRelatedWriter(output, boundary: boundary);
        foreach (var body in bodies) writer.WritePart("application/octet-stream", new MemoryStream(body));
        writer.Complete();
        for (int most = 1; most <= 30; most++)
        {
            var reader = new MultipartRelatedReader(new TricklingStream(output.ToArray(), most), boundary, new MultipartLimits { BufferSize = 1024 });
            var parts = await ReadAll(reader, async, chunk: 3);
            Assert.Equal(bodies, parts.Select(p => p.Body));
        }
    }

    [Fact]
    public void Reading_24_MB_of_parts_allocates_little_more_than_the_buffer()
    {
        using var tmp = new TempDir();
        string path = tmp.File("body.bin");
        string contentType;
        using (var fs = File.Create(path))
        {
            var writer = new MultipartRelatedWriter(fs);
            for (int i = 0; i < 3; i++) writer.WritePart("application/dicom", new PseudoRandomStream(i, 8L * 1024 * 1024));
            writer.Complete();
            contentType = writer.ContentType;
        }
        var chunk = new byte[81920];
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        using var body = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1);
        long before = GC.GetAllocatedBytesForCurrentThread();
        var reader = new MultipartRelatedReader(body, MultipartContentType.Parse(contentType));
        int parts = 0;
        while (reader.ReadNextPart() is { } part)
        {
            parts++;
            int n;
            while ((n = part.Body.Read(chunk, 0, chunk.Length)) > 0) hash.AppendData(chunk, 0, n);
        }
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.Equal(3, parts);
        Assert.True(allocated < 512 * 1024, $"reading 24 MiB of parts allocated {allocated} bytes");
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task The_example_body_of_RFC_2046_reads_with_its_preamble_epilogue_and_header_less_part(bool async)
    {
        // RFC 2046 5.1.1's example, verbatim but for CRLF line ends (the RFC's form of a line end) and the media type.
        string body =
            "This is the preamble.  It is to be ignored, though it\r\n"
            + "is a handy place for composition agents to include an\r\n"
            + "explanatory note to non-MIME conformant readers.\r\n"
            + "\r\n"
            + "--simple boundary\r\n"
            + "\r\n"
            + "This is implicitly typed plain US-ASCII text.\r\n"
            + "It does NOT end with a linebreak.\r\n"
            + "--simple boundary\r\n"
            + "Content-type: text/plain; charset=us-ascii\r\n"
            + "\r\n"
            + "This is explicitly typed plain US-ASCII text.\r\n"
            + "It DOES end with a linebreak.\r\n"
            + "\r\n"
            + "--simple boundary--\r\n"
            + "\r\n"
            + "This is the epilogue.  It is also to be ignored.\r\n";
        var ct = MultipartContentType.Parse("multipart/related; boundary=\"simple boundary\"");
        var parts = await ReadAll(new MultipartRelatedReader(new MemoryStream(Encoding.ASCII.GetBytes(body)), ct), async, chunk: 4096);
        Assert.Equal(2, parts.Count);
        Assert.Null(parts[0].Part.ContentType);
        Assert.Empty(parts[0].Part.Headers);
        Assert.Equal("This is implicitly typed plain US-ASCII text.\r\nIt does NOT end with a linebreak.", Encoding.ASCII.GetString(parts[0].Body));
        Assert.Equal("text/plain; charset=us-ascii", parts[1].Part.ContentType); // names are case-insensitive
        Assert.Equal("This is explicitly typed plain US-ASCII text.\r\nIt DOES end with a linebreak.\r\n", Encoding.ASCII.GetString(parts[1].Body));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Padding_after_a_boundary_folded_headers_and_parts_without_body_are_read(bool async)
    {
        string body =
            "--b \t\r\n"                                          // transport padding
            + "Content-Type: application/dicom\r\n"
            + "X-Note: first\r\n  continued\r\n"                  // obs-fold
            + "X-Note: second\r\n"                                // repeated field
            + "\r\n--b\r\n"                                       // part 1: no CRLF before the delimiter, so an empty body
            + "Content-Type: application/dicom\r\n"
            + "\r\n--b\r\n"                                       // part 2: headers then the delimiter at once: no body either
            + "\r\n--b--";                                        // part 3: no headers, no body; close delimiter without CRLF
        var parts = await ReadAll(new MultipartRelatedReader(new MemoryStream(Encoding.ASCII.GetBytes(body)), "b"), async, chunk: 10);
        Assert.Equal(3, parts.Count);
        Assert.Equal("first continued, second", parts[0].Part.Headers["x-note"]);
        Assert.All(parts, p => Assert.Empty(p.Body));
        Assert.Empty(parts[2].Part.Headers);
    }

    [Fact]
    public void A_part_left_unread_is_skipped_and_its_body_then_refuses_to_read()
    {
        var output = new MemoryStream();
        var writer = new MultipartRelatedWriter(output);
        writer.WritePart("application/dicom", new MemoryStream(new byte[100_000]));
        writer.WritePart("application/dicom", new MemoryStream([1, 2, 3]));
        writer.WritePart("application/dicom", new MemoryStream([4]));
        writer.Complete();
        var reader = new MultipartRelatedReader(new MemoryStream(output.ToArray()), writer.Boundary);
        var first = reader.ReadNextPart()!;
        Assert.Equal(10, first.Body.Read(new byte[10], 0, 10));
        var second = reader.ReadNextPart()!;
        var e = Assert.Throws<InvalidOperationException>(() => first.Body.Read(new byte[10], 0, 10));
        Assert.Contains("part 1", e.Message, StringComparison.Ordinal);
        var all = new MemoryStream();
        second.Body.CopyTo(all);
        Assert.Equal([1, 2, 3], all.ToArray());
        Assert.Equal(3, reader.ReadNextPart()!.Number);
        Assert.Equal(0, second.Body.Read(new byte[10], 0, 10)); // read to its end before moving on: stays at its end
        Assert.Null(reader.ReadNextPart());
        Assert.Null(reader.ReadNextPart());
    }

    // ---- malformed and oversize bodies ----

    public static TheoryData<string, string, MultipartFailure, string, int, long> BadBodies => new()
    {
        { "no boundary at all", "hello world", MultipartFailure.Malformed, "holds no boundary delimiter '--B'", 10_000, long.MaxValue },
        { "preamble longer than the header limit", new string('a', 20_000), MultipartFailure.Malformed, "in the first 16384 bytes", 10_000, long.MaxValue },
        { "close delimiter missing, body cut", "--B\r\nContent-Type: a/b\r\n\r\nbody", MultipartFailure.Malformed,
            "ends inside part 1, without its closing boundary delimiter '--B'", 10_000, long.MaxValue },
        { "close delimiter missing after a delimiter", "--B\r\nContent-Type: a/b\r\n\r\nbody\r\n--B", MultipartFailure.Malformed,
            "ends right after a boundary delimiter, without the close delimiter '--B--'", 10_000, long.MaxValue },
        { "cut inside the headers", "--B\r\nContent-Ty", MultipartFailure.Malformed, "ends inside the headers of part 1", 10_000, long.MaxValue },
        { "cut in a boundary line", "--B\r\n\r\nx\r\n--B  ", MultipartFailure.Malformed, "ends in the line of a boundary delimiter", 10_000, long.MaxValue },
        { "header without colon", "--B\r\nContent-Type a/b\r\n\r\nx\r\n--B--", MultipartFailure.Malformed, "not 'Name: value': 'Content-Type a/b'", 10_000, long.MaxValue },
        { "continuation first", "--B\r\n folded\r\n\r\nx\r\n--B--", MultipartFailure.Malformed, "begins its headers with a continuation line", 10_000, long.MaxValue },
        { "boundary inside a part", "--B\r\n\r\nx\r\n--Bogus\r\n--B--", MultipartFailure.Malformed, "is followed by 'ogus", 10_000, long.MaxValue },
        { "text after the boundary", "--B junk\r\n\r\nx\r\n--B--", MultipartFailure.Malformed, "is followed by 'junk", 10_000, long.MaxValue },
        { "Content-Length too small", "--B\r\nContent-Length: 2\r\n\r\nabc\r\n--B--", MultipartFailure.Malformed,
            "declares Content-Length 2 but its body is longer", 10_000, long.MaxValue },
        { "Content-Length too large", "--B\r\nContent-Length: 5\r\n\r\nabc\r\n--B--", MultipartFailure.Malformed,
            "declares Content-Length 5 but its body is 3 bytes", 10_000, long.MaxValue },
        { "Content-Length not a number", "--B\r\nContent-Length: -3\r\n\r\nabc\r\n--B--", MultipartFailure.Malformed, "Content-Length '-3', not a number", 10_000, long.MaxValue },
        { "Content-Type twice", "--B\r\nContent-Type: a/b\r\ncontent-type: c/d\r\n\r\nx\r\n--B--", MultipartFailure.Malformed,
            "has content-type twice ('a/b' and 'c/d')", 10_000, long.MaxValue },
        { "no parts", "--B--\r\n", MultipartFailure.Malformed, "holds no parts", 10_000, long.MaxValue },
        { "empty body", "", MultipartFailure.Malformed, "holds no boundary delimiter", 10_000, long.MaxValue },
        { "headers over the limit", "--B\r\nX-Big: " + new string('h', 20_000) + "\r\n\r\nx\r\n--B--", MultipartFailure.TooLarge,
            "headers of part 1 exceed 16384 bytes", 10_000, long.MaxValue },
        { "padding over the limit", "--B" + new string(' ', 20_000) + "\r\n\r\nx\r\n--B--", MultipartFailure.TooLarge, "padded with more than 16384", 10_000, long.MaxValue },
        { "too many parts", "--B\r\n\r\n1\r\n--B\r\n\r\n2\r\n--B\r\n\r\n3\r\n--B--", MultipartFailure.TooLarge, "more than 2 parts", 2, long.MaxValue },
        { "body over the limit", "--B\r\n\r\n" + new string('x', 5000) + "\r\n--B--", MultipartFailure.TooLarge, "larger than 2000 bytes", 10_000, 2000 },
        { "declared part over the limit", "--B\r\nContent-Length: 999999\r\n\r\nx\r\n--B--", MultipartFailure.TooLarge, "declares 999999 bytes", 10_000, 2000 },
    };

    [Theory]
    [MemberData(nameof(BadBodies))]
    public async Task A_malformed_or_oversize_body_fails_with_the_reason(string @case, string body, MultipartFailure failure, string reason, int maxParts, long maxBodyBytes)
    {
        foreach (bool async in new[] { false, true })
        {
            var limits = new MultipartLimits { MaxParts = maxParts, MaxBodyBytes = maxBodyBytes, BufferSize = 1024 };
            var reader = new MultipartRelatedReader(new TricklingStream(Encoding.Latin1.GetBytes(body), 100), "B", limits);
            var e = await Assert.ThrowsAsync<MultipartException>(() => ReadAll(reader, async, chunk: 64));
            Assert.True(e.Failure == failure, $"{@case}: {e.Failure} '{e.Message}'");
            Assert.Contains(reason, e.Message, StringComparison.Ordinal);
        }
    }

    // ---- a real client ----

    [Fact]
    public async Task A_body_curl_sends_is_read_with_its_parts_intact()
    {
        // curl -F builds the body (RFC 2046 framing, its own boundary) and appends the boundary to our multipart/related
        // Content-Type; a one-shot HTTP listener on loopback captures the request as curl sends it.
        using var tmp = new TempDir();
        string dicom = Corpus.Get("pydicom/MR_small.dcm").Path;
        string tricky = tmp.File("tricky.bin");
        byte[] trickyBytes = [.. "\r\n--"u8, .. "--------------------------"u8, 0, 0xFF, .. "\r\n\r\n"u8, .. new byte[3000].Select((_, i) => (byte)i)];
        File.WriteAllBytes(tricky, trickyBytes);

        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        int port = ((IPEndPoint)listener.LocalEndpoint).Port;
        var curl = Task.Run(() => Tool.Run("curl", ["-sS", "--max-time", "30", "-X", "POST", "-H", "Expect:",
            "-H", "Content-Type: multipart/related; type=\"application/dicom\"",
            "-F", $"file=@{dicom};type=application/dicom", "-F", $"file=@{tricky};type=application/dicom",
            $"http://127.0.0.1:{port}/studies"]));
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var (headers, body) = await CaptureOneRequest(listener, cts.Token);
        var result = await curl;
        Assert.True(result.ExitCode == 0, result.StdErr);

        var ct = MultipartContentType.Parse(headers["content-type"]);
        Assert.Equal("application/dicom", ct.Type);
        Assert.StartsWith("------", ct.Boundary, StringComparison.Ordinal);
        foreach (bool async in new[] { false, true })
        {
            var parts = await ReadAll(new MultipartRelatedReader(new MemoryStream(body), ct), async, chunk: 1000);
            Assert.Equal(2, parts.Count);
            Assert.All(parts, p => Assert.Equal("application/dicom", p.Part.ContentType));
            Assert.Contains("filename=\"MR_small.dcm\"", parts[0].Part.Headers["Content-Disposition"], StringComparison.Ordinal);
            Assert.Equal(await File.ReadAllBytesAsync(dicom), parts[0].Body);
            Assert.Equal(trickyBytes, parts[1].Body);
        }
    }

    private static async Task<(Dictionary<string, string> Headers, byte[] Body)> CaptureOneRequest(TcpListener listener, CancellationToken ct)
    {
        using var client = await listener.AcceptTcpClientAsync(ct);
        var stream = client.GetStream();
        var received = new MemoryStream();
        var buffer = new byte[8192];
        int headerEnd;
        while ((headerEnd = received.ToArray().AsSpan().IndexOf("\r\n\r\n"u8)) < 0)
        {
            int n = await stream.ReadAsync(buffer, ct);
            Assert.True(n > 0, "curl closed the connection inside the request headers");
            received.Write(buffer, 0, n);
        }
        var lines = Encoding.ASCII.GetString(received.ToArray(), 0, headerEnd).Split("\r\n");
        var headers = lines.Skip(1).Select(l => l.Split(':', 2)).ToDictionary(p => p[0].Trim().ToLowerInvariant(), p => p[1].Trim());
        long length = long.Parse(headers["content-length"], System.Globalization.CultureInfo.InvariantCulture);
        while (received.Length < headerEnd + 4 + length)
        {
            int n = await stream.ReadAsync(buffer, ct);
            Assert.True(n > 0, "curl closed the connection inside the request body");
            received.Write(buffer, 0, n);
        }
        await stream.WriteAsync("HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"u8.ToArray(), ct);
        return (headers, received.ToArray()[(headerEnd + 4)..]);
    }

    // ---- helpers ----

    private static async Task<List<(MultipartPart Part, byte[] Body)>> ReadAll(MultipartRelatedReader reader, bool async, int chunk)
    {
        var parts = new List<(MultipartPart, byte[])>();
        var buffer = new byte[chunk];
        while ((async ? await reader.ReadNextPartAsync() : reader.ReadNextPart()) is { } part)
        {
            var body = new MemoryStream();
            int n;
            while ((n = async ? await part.Body.ReadAsync(buffer) : part.Body.Read(buffer.AsSpan())) > 0) body.Write(buffer, 0, n);
            parts.Add((part, body.ToArray()));
        }
        return parts;
    }

    private static byte[] ExpectedHash(int seed, long length)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        using var s = new PseudoRandomStream(seed, length);
        var chunk = new byte[81920];
        int n;
        while ((n = s.Read(chunk, 0, chunk.Length)) > 0) hash.AppendData(chunk, 0, n);
        return hash.GetHashAndReset();
    }

    /// <summary>A stream of <c>length</c> reproducible pseudo-random bytes (xorshift), generated as read, never held.</summary>
    private sealed class PseudoRandomStream(int seed, long length) : Stream
    {
        private ulong _state = 0x9E3779B97F4A7C15UL ^ (ulong)(seed + 1);
        private long _position;

        public override int Read(byte[] buffer, int offset, int count)
        {
            int n = (int)Math.Min(count, length - _position);
            for (int i = 0; i < n; i++)
            {
                _state ^= _state << 13;
                _state ^= _state >> 7;
                _state ^= _state << 17;
                buffer[offset + i] = (byte)_state;
            }
            _position += n;
            return n;
        }

        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => length;
        public override long Position { get => _position; set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }

    /// <summary>Returns at most <c>most</c> bytes per read, as a network stream does, so delimiters straddle reads.</summary>
    private sealed class TricklingStream(byte[] data, int most) : Stream
    {
        private int _position;

        public override int Read(byte[] buffer, int offset, int count)
        {
            int n = Math.Min(Math.Min(count, most), data.Length - _position);
            Array.Copy(data, _position, buffer, offset, n);
            _position += n;
            return n;
        }

        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            int n = Math.Min(Math.Min(buffer.Length, most), data.Length - _position);
            data.AsSpan(_position, n).CopyTo(buffer.Span);
            _position += n;
            return ValueTask.FromResult(n);
        }

        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => data.Length;
        public override long Position { get => _position; set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
