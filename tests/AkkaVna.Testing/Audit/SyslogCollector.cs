using System.Collections.Concurrent;
using System.Globalization;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.RegularExpressions;
using System.Xml.Linq;

namespace AkkaVna.Testing.Audit;

/// <summary>
/// An audit record repository for tests: a syslog receiver on 127.0.0.1 over TLS (RFC 5425: octet-counted frames) or
/// UDP (RFC 5426: a message per datagram), which parses each RFC 5424 message (header, UTF-8 BOM, XML) independently
/// of AkkaVna's code and keeps them in arrival order.
/// </summary>
public sealed partial class SyslogCollector : IDisposable
{
    /// <summary>One received message: its RFC 5424 header fields and the DICOM audit message.</summary>
    public sealed record Message(int Priority, string Timestamp, string Host, string App, string MsgId, string Xml)
    {
        public XElement Root => XElement.Parse(Xml);
        public string EventId => Root.Element("EventIdentification")!.Element("EventID")!.Attribute("csd-code")!.Value;
        public string? EventType => Root.Element("EventIdentification")!.Element("EventTypeCode")?.Attribute("csd-code")!.Value;
        public string Outcome => Root.Element("EventIdentification")!.Attribute("EventOutcomeIndicator")!.Value;
        public string Action => Root.Element("EventIdentification")!.Attribute("EventActionCode")!.Value;
        public IEnumerable<string> UserIds => Root.Elements("ActiveParticipant").Select(p => p.Attribute("UserID")!.Value);
        public IEnumerable<XElement> Objects => Root.Elements("ParticipantObjectIdentification");
    }

    private readonly ConcurrentQueue<Message> _messages = new();
    private readonly ConcurrentQueue<string> _errors = new();
    private readonly CancellationTokenSource _stop = new();
    private readonly TcpListener? _tcp;
    private readonly UdpClient? _udp;

    public int Port { get; }
    public IReadOnlyList<Message> Messages => [.. _messages];
    public IReadOnlyList<string> Errors => [.. _errors];

    private SyslogCollector(TcpListener? tcp, UdpClient? udp, int port)
    {
        _tcp = tcp;
        _udp = udp;
        Port = port;
    }

    /// <summary>A TLS receiver with this server certificate and key (PEM).</summary>
    public static SyslogCollector Tls(string certificate, string key)
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var collector = new SyslogCollector(listener, null, ((IPEndPoint)listener.LocalEndpoint).Port);
        var cert = X509Certificate2.CreateFromPemFile(certificate, key);
        _ = Task.Run(() => collector.AcceptLoopAsync(cert));
        return collector;
    }

    /// <summary>A UDP receiver.</summary>
    public static SyslogCollector Udp()
    {
        var udp = new UdpClient(new IPEndPoint(IPAddress.Loopback, 0));
        var collector = new SyslogCollector(null, udp, ((IPEndPoint)udp.Client.LocalEndPoint!).Port);
        _ = Task.Run(collector.ReceiveLoopAsync);
        return collector;
    }

    private async Task AcceptLoopAsync(X509Certificate2 certificate)
    {
        while (!_stop.IsCancellationRequested)
        {
            TcpClient client;
            try
            {
                client = await _tcp!.AcceptTcpClientAsync(_stop.Token);
            }
            catch (Exception) when (_stop.IsCancellationRequested)
            {
                return;
            }
            _ = Task.Run(async () =>
            {
                using var c = client;
                try
                {
                    await using var tls = new SslStream(c.GetStream());
                    await tls.AuthenticateAsServerAsync(new SslServerAuthenticationOptions { ServerCertificate = certificate }, _stop.Token);
                    await ReadFramesAsync(tls);
                }
                catch (Exception e) when (e is IOException or System.Security.Authentication.AuthenticationException or OperationCanceledException or ObjectDisposedException)
                {
                    if (!_stop.IsCancellationRequested) _errors.Enqueue("connection: " + e.Message);
                }
            });
        }
    }

    /// <summary>RFC 5425 §4.3: MSG-LEN SP SYSLOG-MSG, repeated.</summary>
    private async Task ReadFramesAsync(Stream s)
    {
        var one = new byte[1];
        while (true)
        {
            var length = new StringBuilder();
            while (true)
            {
                if (await s.ReadAsync(one, _stop.Token) == 0) return;
                if (one[0] == (byte)' ') break;
                if (one[0] is < (byte)'0' or > (byte)'9' || length.Length > 9)
                {
                    _errors.Enqueue($"bad frame length byte 0x{one[0]:X2}");
                    return;
                }
                length.Append((char)one[0]);
            }
            var body = new byte[int.Parse(length.ToString(), CultureInfo.InvariantCulture)];
            await s.ReadExactlyAsync(body, _stop.Token);
            Parse(body);
        }
    }

    private async Task ReceiveLoopAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            try
            {
                var datagram = await _udp!.ReceiveAsync(_stop.Token);
                Parse(datagram.Buffer);
            }
            catch (Exception) when (_stop.IsCancellationRequested)
            {
                return;
            }
        }
    }

    [GeneratedRegex(@"^<(\d{1,3})>1 (\S+) (\S+) (\S+) (\S+) (\S+) (-|\[.*?\]) ", RegexOptions.CultureInvariant)]
    private static partial Regex Header();

    private void Parse(byte[] message)
    {
        // The header is ASCII; the MSG part begins with a UTF-8 BOM (RFC 5424 6.4).
        int bom = message.AsSpan().IndexOf(new byte[] { 0xEF, 0xBB, 0xBF });
        if (bom < 0)
        {
            _errors.Enqueue("a message without the UTF-8 BOM before its MSG: " + Encoding.UTF8.GetString(message)[..Math.Min(120, message.Length)]);
            return;
        }
        string header = Encoding.ASCII.GetString(message, 0, bom);
        var m = Header().Match(header);
        if (!m.Success || m.Length != header.Length)
        {
            _errors.Enqueue("not an RFC 5424 header: " + header);
            return;
        }
        _messages.Enqueue(new Message(int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture), m.Groups[2].Value, m.Groups[3].Value, m.Groups[4].Value,
            m.Groups[6].Value, Encoding.UTF8.GetString(message, bom + 3, message.Length - bom - 3)));
    }

    public void Dispose()
    {
        _stop.Cancel();
        _tcp?.Stop();
        _udp?.Dispose();
    }

    /// <summary>
    /// Validates audit messages against the DICOM audit message schema (PS3.15 A.5.1) with jing, an independent RELAX NG
    /// validator; returns its complaints (empty: all valid).
    /// </summary>
    public static string ValidateAgainstSchema(IEnumerable<string> xmls, string folder)
    {
        Directory.CreateDirectory(folder);
        var files = xmls.Select((x, i) =>
        {
            string path = Path.Combine(folder, $"audit-{i:D4}.xml");
            File.WriteAllText(path, x);
            return path;
        }).ToList();
        string schema = Path.Combine(AppContext.BaseDirectory, "Audit", "dicom-audit-message.rnc");
        if (!File.Exists(schema)) throw new FileNotFoundException("the audit schema was not copied beside the tests", schema);
        var r = Tool.Run("jing", ["-c", schema, .. files], TimeSpan.FromMinutes(2));
        // jing's launcher warns about optional jars on stderr; its verdict is the exit code and the lines naming files.
        return r.ExitCode == 0 ? "" : r.StdOut + string.Join('\n', r.StdErr.Split('\n').Where(l => !l.StartsWith("[warning]", StringComparison.Ordinal)));
    }
}
