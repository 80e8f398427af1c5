using System.Globalization;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Threading.Channels;
using Akka.Configuration;
using AkkaVna.Core.Audit;
using AkkaVna.Core.Ports;
using Microsoft.Extensions.Logging;

namespace AkkaVna.Host;

/// <summary>Where audit messages go: <c>akka-vna.audit</c>.</summary>
public sealed record AuditOptions(string? File, AuditSyslogTransport Transport, string SyslogHost, int SyslogPort, string? Ca, string? Certificate, string? Key,
    int Buffer, string? SiteId, string? SourceId)
{
    internal static AuditOptions? Read(Config c, string data)
    {
        if (!c.GetBoolean("audit.enabled", true)) return null;
        const string at = "akka-vna.audit";
        string Full(string p) => Path.GetFullPath(Path.Combine(data, p));
        string? file = c.GetString("audit.file") is { Length: > 0 } f ? Full(f) : null;
        var transport = (c.GetString("audit.syslog.transport") ?? "none") switch
        {
            "none" or "" => AuditSyslogTransport.None,
            "udp" => AuditSyslogTransport.Udp,
            "tls" => AuditSyslogTransport.Tls,
            var t => throw new ArchiveConfigException($"{at}.syslog.transport must be none, udp (RFC 5426) or tls (RFC 5425), not '{t}'"),
        };
        string host = c.GetString("audit.syslog.host") is { Length: > 0 } h ? h : "127.0.0.1";
        int port = c.GetInt("audit.syslog.port", transport == AuditSyslogTransport.Udp ? 514 : 6514);
        if (port is < 1 or > 65535) throw new ArchiveConfigException($"{at}.syslog.port must be between 1 and 65535, not {port}");
        string? ca = c.GetString("audit.syslog.ca") is { Length: > 0 } a ? Full(a) : null;
        string? certificate = c.GetString("audit.syslog.certificate") is { Length: > 0 } cf ? Full(cf) : null;
        string? key = c.GetString("audit.syslog.key") is { Length: > 0 } k ? Full(k) : null;
        if ((certificate is null) != (key is null)) throw new ArchiveConfigException($"{at}.syslog: certificate and key go together");
        foreach (var p in new[] { ca, certificate, key })
            if (p is not null && !System.IO.File.Exists(p)) throw new ArchiveConfigException($"{at}.syslog: {p} does not exist");
        int buffer = c.GetInt("audit.buffer", 10_000);
        if (buffer is < 10 or > 10_000_000) throw new ArchiveConfigException($"{at}.buffer must be between 10 and 10000000, not {buffer}");
        if (file is null && transport == AuditSyslogTransport.None)
            throw new ArchiveConfigException($"{at}: enabled, but neither a file nor a syslog transport is set (turn it off with {at}.enabled = off)");
        return new AuditOptions(file, transport, host, port, ca, certificate, key, buffer,
            c.GetString("audit.site-id") is { Length: > 0 } site ? site : null, c.GetString("audit.source-id") is { Length: > 0 } src ? src : null);
    }
}

public enum AuditSyslogTransport { None, Udp, Tls }

/// <summary>
/// The audit trail (IHE ATNA): events become DICOM audit messages (PS3.15 A.5) sent as RFC 5424 syslog messages
/// (facility authpriv, MSGID "IHE+RFC-3881") over TLS (RFC 5425, octet-counted) or UDP (RFC 5426), and appended to a
/// local file, one per line. Callers never wait: a bounded queue sits between them and the one writer, and what does not
/// fit is dropped and counted (<c>akkavna_audit_messages_total{outcome="dropped"}</c>). Instances stored are gathered per
/// association or request and study and reported once it ends; patients are looked up in the index by the writer.
/// </summary>
public sealed class AuditTrail : IAuditTrail, IAsyncDisposable
{
    private abstract record Item;
    private sealed record EventItem(AuditEvent Event) : Item;
    private sealed record StoredItem(string Transfer, AuditParticipant Source, AuditParticipant Destination, string Study, string SopClass, DateTimeOffset At) : Item;
    private sealed record EndItem(string Transfer) : Item;

    private sealed class Transfer(AuditParticipant source, AuditParticipant destination, DateTimeOffset at)
    {
        public AuditParticipant Source { get; } = source;
        public AuditParticipant Destination { get; } = destination;
        public DateTimeOffset At { get; set; } = at;
        public long LastTouched { get; set; } = Environment.TickCount64;
        public Dictionary<string, Dictionary<string, int>> Studies { get; } = new(StringComparer.Ordinal);
    }

    /// <summary>A transfer whose end never came (a crashed client) is reported after this long without an instance.</summary>
    private static readonly TimeSpan IdleTransfer = TimeSpan.FromSeconds(30);

    private readonly AuditOptions _options;
    private readonly IArchiveIndex _index;
    private readonly ArchiveMetrics _metrics;
    private readonly ILogger _log;
    private readonly string _sourceId, _hostname;
    private readonly Channel<Item> _queue;
    private readonly Task _writer;
    private readonly Dictionary<string, Transfer> _transfers = new(StringComparer.Ordinal);
    private readonly Dictionary<string, (string? Id, string? Name)> _patients = new(StringComparer.Ordinal);
    private readonly CancellationTokenSource _stop = new();
    private UdpClient? _udp;
    private TcpClient? _tcp;
    private SslStream? _tls;
    private long _tlsRetryAt;
    private AkkaVna.Dicom.Network.Transport.TlsSettings? _tlsSettings;

    public AuditTrail(AuditOptions options, string sourceId, IArchiveIndex index, ArchiveMetrics metrics, ILogger log)
    {
        _options = options;
        _index = index;
        _metrics = metrics;
        _log = log;
        _sourceId = options.SourceId ?? sourceId;
        _hostname = Dns.GetHostName() is { Length: > 0 } h ? h.Replace(' ', '-') : "-";
        _queue = Channel.CreateBounded<Item>(new BoundedChannelOptions(options.Buffer) { SingleReader = true, FullMode = BoundedChannelFullMode.Wait });
        if (options.File is { } file) Directory.CreateDirectory(Path.GetDirectoryName(file)!);
        _writer = Task.Run(WriteLoopAsync);
    }

    public void Record(AuditEvent e) => Enqueue(new EventItem(e));

    public void InstanceStored(string transfer, AuditParticipant source, AuditParticipant destination, string studyInstanceUid, string sopClassUid) =>
        Enqueue(new StoredItem(transfer, source, destination, studyInstanceUid, sopClassUid, DateTimeOffset.UtcNow));

    public void EndOfTransfer(string transfer) => Enqueue(new EndItem(transfer));

    private void Enqueue(Item item)
    {
        if (!_queue.Writer.TryWrite(item)) _metrics.AuditMessages("dropped", 1);
    }

    private async Task WriteLoopAsync()
    {
        var reader = _queue.Reader;
        while (true)
        {
            bool more;
            try
            {
                // Wake at least every few seconds to report transfers whose end never came.
                using var wake = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
                wake.CancelAfter(TimeSpan.FromSeconds(5));
                more = await reader.WaitToReadAsync(wake.Token);
            }
            catch (OperationCanceledException) when (!_stop.IsCancellationRequested)
            {
                more = true;
            }
            catch (OperationCanceledException)
            {
                more = false;
            }
            while (reader.TryRead(out var item))
            {
                try
                {
                    await HandleAsync(item);
                }
                catch (Exception e) when (e is not OutOfMemoryException)
                {
                    _log.LogError(e, "audit: an event could not be written");
                    _metrics.AuditMessages("failed", 1);
                }
            }
            foreach (var (key, t) in _transfers.Where(kv => Environment.TickCount64 - kv.Value.LastTouched > IdleTransfer.TotalMilliseconds).ToList())
                await FlushAsync(key, t);
            if (!more || (_stop.IsCancellationRequested && reader.Completion.IsCompleted)) break;
        }
        foreach (var (key, t) in _transfers.ToList()) await FlushAsync(key, t);
    }

    private async Task HandleAsync(Item item)
    {
        switch (item)
        {
            case StoredItem s:
                if (!_transfers.TryGetValue(s.Transfer, out var t)) _transfers[s.Transfer] = t = new Transfer(s.Source, s.Destination, s.At);
                t.LastTouched = Environment.TickCount64;
                t.At = s.At;
                var classes = t.Studies.TryGetValue(s.Study, out var c) ? c : t.Studies[s.Study] = new Dictionary<string, int>(StringComparer.Ordinal);
                classes[s.SopClass] = classes.GetValueOrDefault(s.SopClass) + 1;
                break;
            case EndItem end:
                if (_transfers.TryGetValue(end.Transfer, out var ended)) await FlushAsync(end.Transfer, ended);
                break;
            case EventItem { Event: var e }:
                await WriteAsync(await WithPatientsAsync(e));
                break;
        }
    }

    private async Task FlushAsync(string key, Transfer t)
    {
        _transfers.Remove(key);
        var studies = t.Studies.Select(kv => new AuditStudy(kv.Key, kv.Value)).ToList();
        await WriteAsync(await WithPatientsAsync(new InstancesTransferred(t.At, AuditOutcome.Success, null, Created: true, t.Source, t.Destination, null, studies)));
    }

    /// <summary>The event with each study's patient from the index where the event does not carry it.</summary>
    private async Task<AuditEvent> WithPatientsAsync(AuditEvent e)
    {
        if (e is not InstancesTransferred t || t.Studies.All(s => s.PatientId is not null)) return e;
        var studies = new List<AuditStudy>();
        foreach (var s in t.Studies)
        {
            if (s.PatientId is not null)
            {
                studies.Add(s);
                continue;
            }
            // A viewer reading a study frame by frame makes a message per request: the patient is read once, then remembered.
            if (!_patients.TryGetValue(s.StudyInstanceUid, out var patient))
            {
                try
                {
                    using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
                    if (await _index.GetStudyAsync(s.StudyInstanceUid, timeout.Token) is { } row)
                    {
                        patient = (row.PatientId, row.PatientName);
                        if (_patients.Count >= 10_000) _patients.Clear();
                        _patients[s.StudyInstanceUid] = patient;
                    }
                }
                catch (Exception ex) when (ex is System.Data.Common.DbException or OperationCanceledException or InvalidOperationException)
                {
                    _log.LogWarning("audit: the patient of study {Study} could not be read ({Reason}); the message names it unknown", s.StudyInstanceUid, ex.Message);
                }
            }
            studies.Add(s with { PatientId = patient.Id ?? "", PatientName = patient.Name });
        }
        return t with { Studies = studies };
    }

    private async Task WriteAsync(AuditEvent e)
    {
        foreach (var xml in AuditMessage.Write(e, _sourceId, _options.SiteId))
        {
            // RFC 5424: <PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID SD MSG; facility 10 (security/authorization),
            // severity notice (5), or warning (4) for failures; MSGID as IHE ATNA asks; MSG is the XML after a UTF-8 BOM.
            int pri = 10 * 8 + (e.Outcome == AuditOutcome.Success ? 5 : 4);
            string header = string.Create(CultureInfo.InvariantCulture,
                $"<{pri}>1 {e.At.UtcDateTime:yyyy-MM-dd'T'HH:mm:ss.fff'Z'} {_hostname} akka-vna {Environment.ProcessId} IHE+RFC-3881 - ");
            byte[] message = [.. Encoding.ASCII.GetBytes(header), 0xEF, 0xBB, 0xBF, .. Encoding.UTF8.GetBytes(xml)];
            bool sent = true;
            if (_options.File is { } file) sent &= await AppendAsync(file, message);
            if (_options.Transport == AuditSyslogTransport.Udp) sent &= await SendUdpAsync(message);
            if (_options.Transport == AuditSyslogTransport.Tls) sent &= await SendTlsAsync(message);
            _metrics.AuditMessages(sent ? "sent" : "failed", 1);
        }
    }

    private async Task<bool> AppendAsync(string file, byte[] message)
    {
        try
        {
            // Opened per message in append mode: a log rotator may rename the file at any time.
            await using var f = new FileStream(file, FileMode.Append, FileAccess.Write, FileShare.ReadWrite | FileShare.Delete, 4096, FileOptions.None);
            await f.WriteAsync(message);
            f.WriteByte((byte)'\n');
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            _log.LogWarning("audit: cannot append to {File}: {Reason}", file, e.Message);
            return false;
        }
    }

    private async Task<bool> SendUdpAsync(byte[] message)
    {
        try
        {
            _udp ??= new UdpClient(_options.SyslogHost, _options.SyslogPort);
            await _udp.SendAsync(message);
            return true;
        }
        catch (SocketException e)
        {
            _log.LogWarning("audit: cannot send to syslog udp://{Host}:{Port}: {Reason}", _options.SyslogHost, _options.SyslogPort, e.Message);
            _udp?.Dispose();
            _udp = null;
            return false;
        }
    }

    private async Task<bool> SendTlsAsync(byte[] message)
    {
        // RFC 5425 framing: the message's length in octets, a space, the message. One retry on a fresh connection.
        byte[] frame = [.. Encoding.ASCII.GetBytes(message.Length.ToString(CultureInfo.InvariantCulture) + " "), .. message];
        for (int attempt = 0; attempt < 2; attempt++)
        {
            try
            {
                var tls = await ConnectTlsAsync();
                if (tls is null) return false;
                using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
                await tls.WriteAsync(frame, timeout.Token);
                await tls.FlushAsync(timeout.Token);
                return true;
            }
            catch (Exception e) when (e is IOException or SocketException or OperationCanceledException or System.Security.Authentication.AuthenticationException or ObjectDisposedException)
            {
                _log.LogWarning("audit: syslog over TLS to {Host}:{Port} failed: {Reason}", _options.SyslogHost, _options.SyslogPort, e.Message);
                CloseTls();
                if (attempt == 1) _tlsRetryAt = Environment.TickCount64 + 5_000;
            }
        }
        return false;
    }

    private async Task<SslStream?> ConnectTlsAsync()
    {
        if (_tls is not null) return _tls;
        if (Environment.TickCount64 < _tlsRetryAt) return null; // the collector was out of reach a moment ago: the file has it
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        var tcp = new TcpClient { NoDelay = true };
        try
        {
            await tcp.ConnectAsync(_options.SyslogHost, _options.SyslogPort, timeout.Token);
            // The collector's certificate must chain to audit.syslog.ca (the system's trust without it) and name its host;
            // this node's certificate goes along when configured — the same checks as DICOM's outgoing TLS.
            var settings = _tlsSettings ??= AkkaVna.Dicom.Network.Transport.TlsSettings.FromPem(_options.Certificate, _options.Key, _options.Ca, requireClientCertificate: false);
            var ssl = new SslStream(tcp.GetStream(), leaveInnerStreamOpen: false);
            await ssl.AuthenticateAsClientAsync(new SslClientAuthenticationOptions
            {
                TargetHost = _options.SyslogHost,
                EnabledSslProtocols = AkkaVna.Dicom.Network.Transport.TlsSettings.Protocols,
                CertificateRevocationCheckMode = X509RevocationMode.NoCheck,
                ClientCertificates = settings.Certificate is { } own ? [own] : null,
                RemoteCertificateValidationCallback = (_, certificate, _, errors) =>
                    settings.Validate(certificate, required: true, out _) && (errors & SslPolicyErrors.RemoteCertificateNameMismatch) == 0,
            }, timeout.Token);
            _tcp = tcp;
            _tls = ssl;
            return ssl;
        }
        catch
        {
            tcp.Dispose();
            throw;
        }
    }

    private void CloseTls()
    {
        _tls?.Dispose();
        _tcp?.Dispose();
        _tls = null;
        _tcp = null;
    }

    /// <summary>Writes what is queued (for up to <paramref name="grace"/>), then closes the connections.</summary>
    public async Task StopAsync(TimeSpan grace)
    {
        _queue.Writer.TryComplete();
        await Task.WhenAny(_writer, Task.Delay(grace));
        await _stop.CancelAsync();
        await Task.WhenAny(_writer, Task.Delay(TimeSpan.FromSeconds(1)));
        CloseTls();
        _udp?.Dispose();
    }

    public async ValueTask DisposeAsync() => await StopAsync(TimeSpan.FromSeconds(5));
}
