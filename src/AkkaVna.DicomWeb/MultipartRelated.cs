using System.Buffers;
using System.Security.Cryptography;
using System.Text;

namespace AkkaVna.DicomWeb;

/// <summary>What kind of failure a <see cref="MultipartException"/> is, so the HTTP layer can pick 400, 413 or 415.</summary>
public enum MultipartFailure
{
    /// <summary>The body or the Content-Type breaks RFC 2046 / RFC 2387 (400 Bad Request).</summary>
    Malformed,

    /// <summary>A configured limit was reached: header block, part count, body bytes (413 Content Too Large).</summary>
    TooLarge,

    /// <summary>The Content-Type is missing or is not multipart/related (415 Unsupported Media Type).</summary>
    UnsupportedMediaType,
}

/// <summary>A multipart/related body or Content-Type that cannot be read, and why; the message is meant for the client.</summary>
public sealed class MultipartException(MultipartFailure failure, string reason) : Exception(reason)
{
    public MultipartFailure Failure { get; } = failure;

    public string Reason => Message;
}

/// <summary>
/// Bounds on what a multipart/related body may make the reader do. Every byte the reader takes from the stream counts
/// toward <see cref="MaxBodyBytes"/>; nothing is buffered beyond <see cref="BufferSize"/> (or the header block limit).
/// </summary>
public sealed record MultipartLimits
{
    /// <summary>The header block of one part (and the preamble before the first boundary, and transport padding).</summary>
    public int MaxHeaderBytes { get; init; } = 16 * 1024;

    /// <summary>Parts in one body; a STOW-RS request of a large series carries one part per instance.</summary>
    public int MaxParts { get; init; } = 10_000;

    /// <summary>Bytes read from the body stream in all.</summary>
    public long MaxBodyBytes { get; init; } = 4L * 1024 * 1024 * 1024;

    /// <summary>The read buffer: a part's body is handed on in pieces of at most this size and never held whole.</summary>
    public int BufferSize { get; init; } = 64 * 1024;

    internal void Validate()
    {
        if (MaxHeaderBytes < 256) throw new ArgumentOutOfRangeException(nameof(MaxHeaderBytes), MaxHeaderBytes, "at least 256 bytes");
        if (MaxParts < 1) throw new ArgumentOutOfRangeException(nameof(MaxParts), MaxParts, "at least 1 part");
        if (MaxBodyBytes < 1) throw new ArgumentOutOfRangeException(nameof(MaxBodyBytes), MaxBodyBytes, "at least 1 byte");
        if (BufferSize < 1024) throw new ArgumentOutOfRangeException(nameof(BufferSize), BufferSize, "at least 1024 bytes");
    }
}

/// <summary>
/// A multipart/related Content-Type value (RFC 2387 3.1, PS3.18 8.6.1.2): the boundary, the root's <c>type</c> and the
/// other parameters, names in lower case. Reading is lenient where clients differ and the meaning is plain: any
/// parameter may be quoted or not (an unquoted <c>type=application/dicom</c> is common though '/' is a tspecial).
/// </summary>
public sealed record MultipartContentType(string MediaType, string Boundary, string? Type, IReadOnlyDictionary<string, string> Parameters)
{
    public const string MultipartRelated = "multipart/related";

    /// <summary>The <c>start</c> parameter (the root part's Content-ID), when given.</summary>
    public string? Start => Parameters.GetValueOrDefault("start");

    /// <summary>Parses a Content-Type header value; throws <see cref="MultipartException"/> with the reason.</summary>
    public static MultipartContentType Parse(string? headerValue)
    {
        if (string.IsNullOrWhiteSpace(headerValue))
            throw new MultipartException(MultipartFailure.UnsupportedMediaType, $"the request has no Content-Type; expected {MultipartRelated} with a boundary");
        int semicolon = headerValue.IndexOf(';', StringComparison.Ordinal);
        string mediaType = (semicolon < 0 ? headerValue : headerValue[..semicolon]).Trim().ToLowerInvariant();
        if (mediaType != MultipartRelated)
            throw new MultipartException(MultipartFailure.UnsupportedMediaType, $"the Content-Type is '{mediaType}', not {MultipartRelated}");
        var parameters = semicolon < 0 ? new Dictionary<string, string>() : ParseParameters(headerValue.AsSpan(semicolon + 1));
        if (!parameters.TryGetValue("boundary", out var boundary))
            throw new MultipartException(MultipartFailure.Malformed, "the Content-Type has no boundary parameter, so the parts cannot be found");
        if (CheckBoundary(boundary) is { } wrong)
            throw new MultipartException(MultipartFailure.Malformed, $"the boundary parameter '{boundary}' is not a valid boundary: {wrong}");
        return new MultipartContentType(mediaType, boundary, parameters.GetValueOrDefault("type"), parameters);
    }

    /// <summary>The longest boundary accepted: RFC 2046 says 70, real clients send longer ones (Orthanc's DICOMweb plugin 73).</summary>
    public const int MaxBoundaryLength = 256;

    /// <summary>
    /// Why <paramref name="boundary"/> cannot delimit parts, or null. Liberal in what it accepts: RFC 2046 5.1.1 allows 1
    /// to 70 characters, but clients in the field send longer ones, so up to <see cref="MaxBoundaryLength"/> are taken;
    /// not ending in a space. Any printable ASCII is accepted rather than only the bchars: what matters to the reader is
    /// that the delimiter line can be matched byte for byte.
    /// </summary>
    public static string? CheckBoundary(string boundary, int maxLength = MaxBoundaryLength)
    {
        if (boundary.Length == 0 || boundary.Length > maxLength)
            return maxLength <= 70 ? $"it has {boundary.Length} characters, RFC 2046 allows 1 to 70"
                : $"it has {boundary.Length} characters; this archive takes 1 to {maxLength} (RFC 2046 says 70)";
        if (boundary[^1] == ' ') return "it ends with a space (RFC 2046 5.1.1)";
        foreach (char c in boundary)
            if (c < 0x20 || c > 0x7E) return $"it contains the character U+{(int)c:X4}; only printable ASCII is allowed";
        return null;
    }

    private static Dictionary<string, string> ParseParameters(ReadOnlySpan<char> s)
    {
        var result = new Dictionary<string, string>(StringComparer.Ordinal);
        int i = 0;
        while (true)
        {
            while (i < s.Length && (s[i] is ' ' or '\t' or ';')) i++;
            if (i == s.Length) return result;
            int eq = s[i..].IndexOf('=');
            int nextSemicolon = s[i..].IndexOf(';');
            if (eq < 0 || (nextSemicolon >= 0 && nextSemicolon < eq))
                throw new MultipartException(MultipartFailure.Malformed, $"the Content-Type parameter '{s[i..(nextSemicolon < 0 ? s.Length : i + nextSemicolon)].Trim()}' has no value");
            string name = s.Slice(i, eq).Trim().ToString().ToLowerInvariant();
            if (name.Length == 0) throw new MultipartException(MultipartFailure.Malformed, "the Content-Type has a parameter without a name");
            i += eq + 1;
            while (i < s.Length && s[i] is ' ' or '\t') i++;
            string value;
            if (i < s.Length && s[i] == '"')
            {
                // quoted-string (RFC 2045 5.1, RFC 822 3.3): a backslash quotes the next character.
                var sb = new StringBuilder();
                i++;
                while (true)
                {
                    if (i == s.Length) throw new MultipartException(MultipartFailure.Malformed, $"the Content-Type parameter '{name}' has an unterminated quoted value");
                    char c = s[i++];
                    if (c == '"') break;
                    if (c == '\\' && i < s.Length) c = s[i++];
                    sb.Append(c);
                }
                value = sb.ToString();
                while (i < s.Length && s[i] is ' ' or '\t') i++;
                if (i < s.Length && s[i] != ';')
                    throw new MultipartException(MultipartFailure.Malformed, $"the Content-Type parameter '{name}' has text after its quoted value");
            }
            else
            {
                int end = s[i..].IndexOf(';');
                value = (end < 0 ? s[i..] : s.Slice(i, end)).Trim().ToString();
                i = end < 0 ? s.Length : i + end;
            }
            if (!result.TryAdd(name, value))
                throw new MultipartException(MultipartFailure.Malformed, $"the Content-Type parameter '{name}' appears twice");
        }
    }
}

/// <summary>One part: its headers, read whole (bounded), and its body, read as a stream that ends at the next delimiter.</summary>
public sealed class MultipartPart
{
    internal MultipartPart(int number, IReadOnlyDictionary<string, string> headers, long? contentLength, Stream body)
    {
        Number = number;
        Headers = headers;
        ContentLength = contentLength;
        Body = body;
    }

    /// <summary>The part's position in the body, from 1.</summary>
    public int Number { get; }

    /// <summary>Header fields by name, case-insensitive; a repeated field other than the Content-* ones is joined with ", ".</summary>
    public IReadOnlyDictionary<string, string> Headers { get; }

    /// <summary>The part's Content-Type, or null when it has none (RFC 2046 then means text/plain; STOW-RS means the root's type).</summary>
    public string? ContentType => Headers.GetValueOrDefault("Content-Type");

    public string? ContentLocation => Headers.GetValueOrDefault("Content-Location");

    /// <summary>The declared Content-Length; when given, the body must have exactly this many bytes.</summary>
    public long? ContentLength { get; }

    /// <summary>
    /// The body, read from the request as it is consumed. Valid until the next <see cref="MultipartRelatedReader.ReadNextPart"/>
    /// call, which skips what was not read.
    /// </summary>
    public Stream Body { get; }
}

/// <summary>
/// Reads a multipart/related body (RFC 2046 5.1.1, RFC 2387; PS3.18 8.6 for STOW-RS) one part at a time from a stream,
/// without holding a whole part: the headers of a part are read into a bounded buffer, its body is handed on as a stream
/// that ends at the next delimiter (CRLF "--" boundary). The grammar followed, from RFC 2046:
/// <code>
/// multipart-body := [preamble CRLF] dash-boundary transport-padding CRLF body-part *encapsulation
///                   close-delimiter transport-padding [CRLF epilogue]
/// encapsulation  := delimiter transport-padding CRLF body-part
/// delimiter      := CRLF dash-boundary        close-delimiter := delimiter "--"
/// body-part      := MIME-part-headers [CRLF *OCTET]
/// </code>
/// The stream is read as if it began with CRLF, so that the first dash-boundary is a delimiter like the others; the
/// preamble and epilogue are skipped. Sync and async reads share one implementation (a flag says which the stream gets).
/// A part's body is checked only as far as the format goes; what it holds is the caller's business.
/// </summary>
public sealed class MultipartRelatedReader
{
    private static ReadOnlySpan<byte> Crlf => "\r\n"u8;
    private static ReadOnlySpan<byte> HeaderEnd => "\r\n\r\n"u8;

    private readonly Stream _stream;
    private readonly MultipartLimits _limits;
    private readonly byte[] _delimiter; // CRLF "--" boundary
    private readonly string _boundary;
    private readonly byte[] _buffer;
    private int _start;
    private int _end;
    private bool _eof;
    private long _bytesRead;

    private bool _started;
    private bool _done;
    private int _parts;
    private PartBody? _current;
    private int _safeEnd; // bytes [_start, _safeEnd) of the current body are known to come before any delimiter
    private int _delimiterAt = -1; // where the current body's closing delimiter begins, once found

    public MultipartRelatedReader(Stream body, MultipartContentType contentType, MultipartLimits? limits = null)
        : this(body, contentType.Boundary, limits)
    {
    }

    public MultipartRelatedReader(Stream body, string boundary, MultipartLimits? limits = null)
    {
        ArgumentNullException.ThrowIfNull(body);
        if (MultipartContentType.CheckBoundary(boundary) is { } wrong) throw new ArgumentException($"'{boundary}' is not a valid boundary: {wrong}", nameof(boundary));
        _limits = limits ?? new MultipartLimits();
        _limits.Validate();
        _stream = body;
        _boundary = boundary;
        _delimiter = Encoding.ASCII.GetBytes("\r\n--" + boundary);
        _buffer = new byte[Math.Max(_limits.BufferSize, _limits.MaxHeaderBytes + 2 * _delimiter.Length + 8)];
        // The body as if preceded by CRLF: the first dash-boundary then matches the delimiter.
        _buffer[0] = (byte)'\r';
        _buffer[1] = (byte)'\n';
        _end = 2;
    }

    /// <summary>Bytes taken from the body stream so far.</summary>
    public long BytesRead => _bytesRead;

    /// <summary>Parts begun so far.</summary>
    public int PartCount => _parts;

    /// <summary>The next part, or null after the close delimiter. Skips what was left unread of the previous part's body.</summary>
    public MultipartPart? ReadNextPart() => NextPart(async: false, CancellationToken.None).GetAwaiter().GetResult();

    /// <inheritdoc cref="ReadNextPart"/>
    public ValueTask<MultipartPart?> ReadNextPartAsync(CancellationToken cancellationToken = default) => NextPart(async: true, cancellationToken);

    private async ValueTask<MultipartPart?> NextPart(bool async, CancellationToken ct)
    {
        if (_done) return null;
        if (_current is { } previous)
        {
            bool unread = !previous.Finished;
            await Skip(previous, async, ct).ConfigureAwait(false);
            previous.Abandoned = unread; // its remaining bytes are gone: reading it now is an error, not an empty read
            _current = null;
        }
        else if (!_started)
        {
            _started = true;
            await SkipPreamble(async, ct).ConfigureAwait(false);
        }

        // At a delimiter: what follows says whether another part comes.
        _start = _delimiterAt + _delimiter.Length;
        _delimiterAt = -1;
        if (!await Ensure(2, async, ct).ConfigureAwait(false))
            throw Malformed($"the body ends right after a boundary delimiter, without the close delimiter '--{_boundary}--'");
        if (_buffer[_start] == '-' && _buffer[_start + 1] == '-')
        {
            _done = true;
            if (_parts == 0) throw Malformed("the body holds no parts: its first boundary is the close delimiter");
            return null;
        }
        await SkipTransportPadding(async, ct).ConfigureAwait(false);

        if (++_parts > _limits.MaxParts) throw TooLarge($"the body holds more than {_limits.MaxParts} parts");
        var (headers, contentLength) = await ReadHeaders(async, ct).ConfigureAwait(false);
        _current = new PartBody(this, _parts, contentLength);
        _safeEnd = _start;
        return new MultipartPart(_parts, headers, contentLength, _current);
    }

    /// <summary>Discards bytes up to the first delimiter; a preamble longer than the header limit means the boundary is wrong.</summary>
    private async ValueTask SkipPreamble(bool async, CancellationToken ct)
    {
        long skipped = 0;
        while (true)
        {
            int i = _buffer.AsSpan(_start, _end - _start).IndexOf(_delimiter);
            if (i >= 0)
            {
                _delimiterAt = _start + i;
                return;
            }
            int keep = Math.Min(_end - _start, _delimiter.Length - 1);
            skipped += _end - _start - keep;
            _start = _end - keep;
            if (skipped > _limits.MaxHeaderBytes)
                throw Malformed($"no boundary delimiter '--{_boundary}' in the first {_limits.MaxHeaderBytes} bytes of the body: the boundary does not match the body");
            if (_eof) throw Malformed($"the body holds no boundary delimiter '--{_boundary}'");
            await Fill(async, ct).ConfigureAwait(false);
        }
    }

    /// <summary>After a boundary: optional spaces and tabs, then CRLF (RFC 2046 transport-padding).</summary>
    private async ValueTask SkipTransportPadding(bool async, CancellationToken ct)
    {
        int padding = 0;
        while (true)
        {
            if (!await Ensure(2, async, ct).ConfigureAwait(false))
                throw Malformed($"the body ends in the line of a boundary delimiter, after part {_parts}");
            byte b = _buffer[_start];
            if (b is (byte)' ' or (byte)'\t')
            {
                _start++;
                if (++padding > _limits.MaxHeaderBytes) throw TooLarge($"a boundary line is padded with more than {_limits.MaxHeaderBytes} spaces");
                continue;
            }
            if (_buffer.AsSpan(_start, 2).SequenceEqual(Crlf))
            {
                _start += 2;
                return;
            }
            string seen = Encoding.ASCII.GetString(_buffer, _start, Math.Min(16, _end - _start)).ReplaceLineEndings("\\n");
            throw Malformed($"after part {_parts}, the boundary delimiter '--{_boundary}' is followed by '{seen}' instead of CRLF or '--': "
                + "the boundary occurs inside a part, or the body is not this boundary's");
        }
    }

    /// <summary>Reads the header block of a part (up to the empty line) and leaves <see cref="_start"/> at its body.</summary>
    private async ValueTask<(IReadOnlyDictionary<string, string> Headers, long? ContentLength)> ReadHeaders(bool async, CancellationToken ct)
    {
        int blockLength; // header lines, each with its CRLF; the blank line's CRLF follows
        while (true)
        {
            var span = _buffer.AsSpan(_start, _end - _start);
            if (span.StartsWith(Crlf))
            {
                blockLength = 0;
                break;
            }
            int i = span.IndexOf(HeaderEnd);
            if (i >= 0)
            {
                blockLength = i + 2;
                break;
            }
            if (span.Length > _limits.MaxHeaderBytes) throw TooLarge($"the headers of part {_parts} exceed {_limits.MaxHeaderBytes} bytes");
            if (_eof) throw Malformed($"the body ends inside the headers of part {_parts}");
            await Fill(async, ct).ConfigureAwait(false);
        }
        if (blockLength > _limits.MaxHeaderBytes) throw TooLarge($"the headers of part {_parts} exceed {_limits.MaxHeaderBytes} bytes");
        var headers = ParseHeaders(Encoding.Latin1.GetString(_buffer, _start, blockLength));
        _start += blockLength;

        // body-part := MIME-part-headers [CRLF *OCTET]: without the optional CRLF, the delimiter follows the headers at once.
        if (await Ensure(_delimiter.Length, async, ct).ConfigureAwait(false) && _buffer.AsSpan(_start, _delimiter.Length).SequenceEqual(_delimiter))
            _delimiterAt = _start;
        else _start += 2;

        long? contentLength = null;
        if (headers.TryGetValue("Content-Length", out var declared))
        {
            if (!long.TryParse(declared, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out long n))
                throw Malformed($"part {_parts} has Content-Length '{declared}', not a number of bytes");
            if (n > _limits.MaxBodyBytes) throw TooLarge($"part {_parts} declares {n} bytes, more than the {_limits.MaxBodyBytes} bytes a body may have");
            contentLength = n;
        }
        return (headers, contentLength);
    }

    private Dictionary<string, string> ParseHeaders(string block)
    {
        var headers = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        string? last = null;
        foreach (var line in block.Split("\r\n"))
        {
            if (line.Length == 0) continue;
            if (line[0] is ' ' or '\t')
            {
                // obs-fold (RFC 5322 2.2.3): the line continues the previous field.
                if (last is null) throw Malformed($"part {_parts} begins its headers with a continuation line");
                headers[last] = headers[last] + " " + line.Trim();
                continue;
            }
            int colon = line.IndexOf(':', StringComparison.Ordinal);
            string name = colon > 0 ? line[..colon].Trim() : "";
            if (name.Length == 0 || name.Any(c => c <= ' ' || c > '~'))
                throw Malformed($"part {_parts} has a header line that is not 'Name: value': '{(line.Length > 80 ? line[..80] + "..." : line)}'");
            string value = line[(colon + 1)..].Trim();
            if (headers.TryGetValue(name, out var earlier))
            {
                if (name.StartsWith("Content-", StringComparison.OrdinalIgnoreCase))
                    throw Malformed($"part {_parts} has {name} twice ('{earlier}' and '{value}')");
                headers[name] = earlier + ", " + value;
            }
            else headers[name] = value;
            last = name;
        }
        return headers;
    }

    /// <summary>Copies the next bytes of the current body to <paramref name="destination"/>; 0 at its closing delimiter.</summary>
    private async ValueTask<int> ReadBody(PartBody part, Memory<byte> destination, bool async, CancellationToken ct)
    {
        if (part.Finished)
        {
            if (part.Abandoned) throw new InvalidOperationException($"the body of part {part.Number} can no longer be read: the reader has moved on to the next part");
            return 0;
        }
        if (destination.IsEmpty) return 0;
        while (true)
        {
            if (_safeEnd > _start)
            {
                int n = Math.Min(_safeEnd - _start, destination.Length);
                _buffer.AsSpan(_start, n).CopyTo(destination.Span);
                _start += n;
                part.BytesRead += n;
                if (part.ContentLength is long declared && part.BytesRead > declared)
                    throw Malformed($"part {part.Number} declares Content-Length {declared} but its body is longer");
                return n;
            }
            if (_delimiterAt == _start)
            {
                part.Finished = true;
                if (part.ContentLength is long declared && part.BytesRead != declared)
                    throw Malformed($"part {part.Number} declares Content-Length {declared} but its body is {part.BytesRead} bytes");
                return 0;
            }
            var span = _buffer.AsSpan(_start, _end - _start);
            int i = span.IndexOf(_delimiter);
            if (i >= 0)
            {
                _delimiterAt = _start + i;
                _safeEnd = _delimiterAt;
                continue;
            }
            // The last bytes may be the beginning of a delimiter: hold them back until more arrive.
            _safeEnd = _end - Math.Min(span.Length, _delimiter.Length - 1);
            if (_safeEnd > _start) continue;
            if (_eof) throw Malformed($"the body ends inside part {part.Number}, without its closing boundary delimiter '--{_boundary}'");
            await Fill(async, ct).ConfigureAwait(false);
        }
    }

    private async ValueTask Skip(PartBody part, bool async, CancellationToken ct)
    {
        byte[] scratch = ArrayPool<byte>.Shared.Rent(16 * 1024);
        try
        {
            while (await ReadBody(part, scratch, async, ct).ConfigureAwait(false) > 0)
            {
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(scratch);
        }
    }

    /// <summary>True when at least <paramref name="count"/> bytes are buffered, reading as needed; false at the end of the stream.</summary>
    private async ValueTask<bool> Ensure(int count, bool async, CancellationToken ct)
    {
        while (_end - _start < count)
        {
            if (_eof) return false;
            await Fill(async, ct).ConfigureAwait(false);
        }
        return true;
    }

    /// <summary>Moves the unread bytes to the front of the buffer and reads more behind them.</summary>
    private async ValueTask Fill(bool async, CancellationToken ct)
    {
        if (_start > 0)
        {
            int kept = _end - _start;
            Buffer.BlockCopy(_buffer, _start, _buffer, 0, kept);
            _safeEnd = Math.Max(0, _safeEnd - _start);
            if (_delimiterAt >= 0) _delimiterAt -= _start;
            _start = 0;
            _end = kept;
        }
        if (_end == _buffer.Length) throw new InvalidOperationException("multipart reader buffer full"); // the limits make this unreachable
        int n = async
            ? await _stream.ReadAsync(_buffer.AsMemory(_end), ct).ConfigureAwait(false)
            : _stream.Read(_buffer, _end, _buffer.Length - _end);
        if (n == 0)
        {
            _eof = true;
            return;
        }
        _end += n;
        _bytesRead += n;
        if (_bytesRead > _limits.MaxBodyBytes) throw TooLarge($"the body is larger than {_limits.MaxBodyBytes} bytes");
    }

    private static MultipartException Malformed(string reason) => new(MultipartFailure.Malformed, reason);

    private static MultipartException TooLarge(string reason) => new(MultipartFailure.TooLarge, reason);

    /// <summary>The stream a part's body is read through; it reads from the reader's buffer and, through it, from the request.</summary>
    private sealed class PartBody(MultipartRelatedReader reader, int number, long? contentLength) : Stream
    {
        public int Number => number;
        public long? ContentLength => contentLength;
        public long BytesRead { get; set; }
        public bool Finished { get; set; }
        public bool Abandoned { get; set; }

        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => BytesRead; set => throw new NotSupportedException(); }

        public override int Read(byte[] buffer, int offset, int count) => reader.ReadBody(this, buffer.AsMemory(offset, count), async: false, CancellationToken.None).GetAwaiter().GetResult();

        public override int Read(Span<byte> buffer)
        {
            byte[] rented = ArrayPool<byte>.Shared.Rent(buffer.Length);
            try
            {
                int n = reader.ReadBody(this, rented.AsMemory(0, buffer.Length), async: false, CancellationToken.None).GetAwaiter().GetResult();
                rented.AsSpan(0, n).CopyTo(buffer);
                return n;
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(rented);
            }
        }

        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
            reader.ReadBody(this, buffer, async: true, cancellationToken);

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

        public override void Flush() { }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}

/// <summary>
/// Writes a multipart/related body (RFC 2046 5.1.1, RFC 2387) part by part to an output stream, as DICOMweb responses
/// and STOW-RS requests carry instances, frames or bulk data (PS3.18 8.6). The boundary is random (128 bits), so it
/// cannot occur in a body by accident, and bodies are copied through without being scanned or held. Not thread-safe:
/// one writer per response.
/// </summary>
public sealed class MultipartRelatedWriter
{
    private readonly Stream _output;
    private bool _completed;

    /// <param name="output">Where the body goes; not disposed by the writer.</param>
    /// <param name="type">The root type (the <c>type</c> parameter), e.g. application/dicom or application/octet-stream.</param>
    /// <param name="boundary">A fixed boundary (tests, reproducible output); random when null.</param>
    public MultipartRelatedWriter(Stream output, string type = "application/dicom", string? boundary = null)
    {
        ArgumentNullException.ThrowIfNull(output);
        CheckHeaderValue(type, nameof(type));
        if (type.Contains('"', StringComparison.Ordinal) || type.Contains('\\', StringComparison.Ordinal))
            throw new ArgumentException("the type must not contain quotes or backslashes", nameof(type));
        boundary ??= "akkavna-" + RandomNumberGenerator.GetHexString(32, lowercase: true);
        if (MultipartContentType.CheckBoundary(boundary, maxLength: 70) is { } wrong) throw new ArgumentException($"'{boundary}' is not a valid boundary: {wrong}", nameof(boundary));
        _output = output;
        Type = type;
        Boundary = boundary;
    }

    public string Boundary { get; }

    public string Type { get; }

    /// <summary>Parts written so far.</summary>
    public int PartCount { get; private set; }

    /// <summary>The Content-Type header value of the body: <c>multipart/related; type="..."; boundary=...</c> (quoted when it must be).</summary>
    public string ContentType => $"{MultipartContentType.MultipartRelated}; type=\"{Type}\"; boundary={(Boundary.All(IsTokenChar) ? Boundary : "\"" + Boundary + "\"")}";

    /// <summary>Writes one part: the delimiter, Content-Type, the extra headers, an empty line, then <paramref name="body"/> from its position to its end.</summary>
    public void WritePart(string contentType, Stream body, IEnumerable<KeyValuePair<string, string>>? headers = null) =>
        WritePartCore(contentType, headers, async: false, (s, _) => { body.CopyTo(s, 81920); return Task.CompletedTask; }, CancellationToken.None).GetAwaiter().GetResult();

    /// <inheritdoc cref="WritePart"/>
    public Task WritePartAsync(string contentType, Stream body, IEnumerable<KeyValuePair<string, string>>? headers = null, CancellationToken cancellationToken = default) =>
        WritePartCore(contentType, headers, async: true, (s, ct) => body.CopyToAsync(s, 81920, ct), cancellationToken).AsTask();

    /// <summary>Writes one part whose body <paramref name="writeBody"/> writes (e.g. a pixel data frame's CopyToAsync).</summary>
    public Task WritePartAsync(string contentType, Func<Stream, CancellationToken, Task> writeBody, IEnumerable<KeyValuePair<string, string>>? headers = null,
        CancellationToken cancellationToken = default) =>
        WritePartCore(contentType, headers, async: true, writeBody, cancellationToken).AsTask();

    /// <summary>Writes the close delimiter. A body needs at least one part (RFC 2046 5.1.1).</summary>
    public void Complete() => CompleteCore(async: false, CancellationToken.None).GetAwaiter().GetResult();

    /// <inheritdoc cref="Complete"/>
    public Task CompleteAsync(CancellationToken cancellationToken = default) => CompleteCore(async: true, cancellationToken).AsTask();

    private async ValueTask WritePartCore(string contentType, IEnumerable<KeyValuePair<string, string>>? headers, bool async,
        Func<Stream, CancellationToken, Task> writeBody, CancellationToken ct)
    {
        if (_completed) throw new InvalidOperationException("the multipart body is complete: no part can follow the close delimiter");
        CheckHeaderValue(contentType, nameof(contentType));
        var head = new StringBuilder();
        head.Append(PartCount == 0 ? "--" : "\r\n--").Append(Boundary).Append("\r\n");
        head.Append("Content-Type: ").Append(contentType).Append("\r\n");
        foreach (var (name, value) in headers ?? [])
        {
            if (name.Length == 0 || !name.All(IsTokenChar)) throw new ArgumentException($"'{name}' is not a header name", nameof(headers));
            if (name.Equals("Content-Type", StringComparison.OrdinalIgnoreCase)) throw new ArgumentException("the Content-Type is given by contentType", nameof(headers));
            CheckHeaderValue(value, nameof(headers));
            head.Append(name).Append(": ").Append(value).Append("\r\n");
        }
        head.Append("\r\n");
        byte[] bytes = Encoding.Latin1.GetBytes(head.ToString());
        PartCount++;
        if (async)
        {
            await _output.WriteAsync(bytes, ct).ConfigureAwait(false);
            await writeBody(_output, ct).ConfigureAwait(false);
        }
        else
        {
            _output.Write(bytes);
            writeBody(_output, ct).GetAwaiter().GetResult(); // the sync overload passes a body writer that completes synchronously
        }
    }

    private async ValueTask CompleteCore(bool async, CancellationToken ct)
    {
        if (_completed) return;
        if (PartCount == 0) throw new InvalidOperationException("a multipart body needs at least one part (RFC 2046 5.1.1)");
        byte[] close = Encoding.ASCII.GetBytes("\r\n--" + Boundary + "--\r\n");
        if (async)
        {
            await _output.WriteAsync(close, ct).ConfigureAwait(false);
            await _output.FlushAsync(ct).ConfigureAwait(false);
        }
        else
        {
            _output.Write(close);
            _output.Flush();
        }
        _completed = true;
    }

    private static void CheckHeaderValue(string value, string parameter)
    {
        ArgumentNullException.ThrowIfNull(value, parameter);
        foreach (char c in value)
            if (c is '\r' or '\n' || c > 0xFF) throw new ArgumentException($"a header value must be one line of Latin-1 text: '{value}'", parameter);
    }

    // RFC 2045 token: printable ASCII except space and tspecials.
    private static bool IsTokenChar(char c) => c > ' ' && c < 0x7F && "()<>@,;:\\\"/[]?=".IndexOf(c, StringComparison.Ordinal) < 0;
}
