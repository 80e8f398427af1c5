using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;

namespace AkkaVna.Dicom.Network.Transport;

/// <summary>
/// DICOM's secure transport (PS3.15 Annex B; BCP 195, the non-downgrading profile): TLS 1.2 or 1.3 only, this AE's
/// certificate and key, and the certificate authorities a peer's certificate must chain to (when given; required of
/// clients with <see cref="RequireClientCertificate"/>). The handshake must end within <see cref="HandshakeTimeout"/>:
/// a peer that speaks plain DICOM to a TLS port, or nothing, is dropped then.
/// </summary>
public sealed record TlsSettings(X509Certificate2? Certificate, X509Certificate2Collection TrustedAuthorities, bool RequireClientCertificate)
{
    public TimeSpan HandshakeTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>TLS 1.2 and 1.3: what BCP 195 allows (the OS's cipher policy applies within them).</summary>
    public const SslProtocols Protocols = SslProtocols.Tls12 | SslProtocols.Tls13;

    /// <summary>Loads a certificate and its private key from PEM files, and the authorities (PEM, one or more) when given.</summary>
    /// <param name="certificate">This AE's certificate (with <paramref name="key"/>); null only for a client that has none.</param>
    public static TlsSettings FromPem(string? certificate, string? key, string? authorities, bool requireClientCertificate)
    {
        X509Certificate2? cert = null;
        if (certificate is not null)
        {
            using var pem = X509Certificate2.CreateFromPemFile(certificate, key);
            // A key loaded from PEM is ephemeral, which SslStream cannot use on every platform: exported and re-imported as PKCS#12.
            cert = X509CertificateLoader.LoadPkcs12(pem.Export(X509ContentType.Pkcs12), null);
        }
        var cas = new X509Certificate2Collection();
        if (!string.IsNullOrEmpty(authorities)) cas.ImportFromPemFile(authorities);
        return new TlsSettings(cert, cas, requireClientCertificate);
    }

    /// <summary>
    /// Whether the peer's certificate chains to one of <see cref="TrustedAuthorities"/> (with none configured: the
    /// system's trust). No certificate: acceptable only when none is required.
    /// </summary>
    public bool Validate(X509Certificate? certificate, bool required, out string? why)
    {
        why = null;
        if (certificate is null)
        {
            if (required) why = "the peer sent no certificate";
            return !required;
        }
        using var chain = new X509Chain();
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        if (TrustedAuthorities.Count > 0)
        {
            chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
            chain.ChainPolicy.CustomTrustStore.AddRange(TrustedAuthorities);
        }
        var peer = certificate as X509Certificate2 ?? X509CertificateLoader.LoadCertificate(certificate.GetRawCertData());
        if (chain.Build(peer)) return true;
        why = $"the peer's certificate ({peer.Subject}) does not chain to a trusted authority: "
            + string.Join("; ", chain.ChainStatus.Select(s => s.StatusInformation.Trim()).Where(s => s.Length > 0));
        return false;
    }
}

/// <summary>TLS connections: a <see cref="TcpTransport"/> read and written through an <see cref="SslStream"/> over its socket.</summary>
public static class TlsTransport
{
    /// <summary>Accepts TLS on a listener's sockets: the handshake, with this AE's certificate, within the settings' timeout.</summary>
    public sealed class Acceptor(TlsSettings settings) : IDicomAcceptor
    {
        public async ValueTask<IDicomTransport> AcceptAsync(Socket socket, CancellationToken cancellationToken)
        {
            string? refusal = null;
            var ssl = new SslStream(new NetworkStream(socket, ownsSocket: false), leaveInnerStreamOpen: false);
            try
            {
                using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
                cts.CancelAfter(settings.HandshakeTimeout);
                await ssl.AuthenticateAsServerAsync(new SslServerAuthenticationOptions
                {
                    ServerCertificate = settings.Certificate ?? throw new InvalidOperationException("a TLS listener needs a certificate"),
                    // Asked for whenever there are authorities to check it against (a peer may be known by its certificate);
                    // a client without one is refused only when one is required.
                    ClientCertificateRequired = settings.RequireClientCertificate || settings.TrustedAuthorities.Count > 0,
                    EnabledSslProtocols = TlsSettings.Protocols,
                    CertificateRevocationCheckMode = X509RevocationMode.NoCheck,
                    RemoteCertificateValidationCallback = (_, certificate, _, _) => settings.Validate(certificate, settings.RequireClientCertificate, out refusal),
                }, cts.Token).ConfigureAwait(false);
                return new TcpTransport(socket, ssl, ssl.RemoteCertificate?.Subject);
            }
            catch (Exception e) when (e is AuthenticationException or IOException or OperationCanceledException)
            {
                await ssl.DisposeAsync().ConfigureAwait(false);
                throw new TlsHandshakeException(
                    $"TLS handshake with {socket.RemoteEndPoint} failed: {refusal ?? (e is OperationCanceledException ? $"no handshake within {settings.HandshakeTimeout.TotalSeconds:0} s" : e.Message)}", e);
            }
        }
    }
}

/// <summary>
/// Connects over TLS (an association to a C-MOVE destination, the load tool): the server's certificate must chain to the
/// settings' authorities (the system's trust when there are none) and name the host connected to; this AE's certificate,
/// when the settings have one, is offered to servers that ask for a client certificate.
/// </summary>
public sealed class TlsConnector(TlsSettings settings) : IDicomConnector
{
    public async ValueTask<IDicomTransport> ConnectAsync(string host, int port, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        string? refusal = null;
        SslStream? ssl = null;
        try
        {
            using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            cts.CancelAfter(timeout);
            await socket.ConnectAsync(host, port, cts.Token).ConfigureAwait(false);
            ssl = new SslStream(new NetworkStream(socket, ownsSocket: false), leaveInnerStreamOpen: false);
            cts.CancelAfter(settings.HandshakeTimeout);
            await ssl.AuthenticateAsClientAsync(new SslClientAuthenticationOptions
            {
                TargetHost = host,
                EnabledSslProtocols = TlsSettings.Protocols,
                CertificateRevocationCheckMode = X509RevocationMode.NoCheck,
                ClientCertificates = settings.Certificate is { } own ? [own] : null,
                RemoteCertificateValidationCallback = (_, certificate, _, errors) =>
                {
                    if (!settings.Validate(certificate, required: true, out refusal)) return false;
                    // The chain is checked above against our own authorities; the name must still be the host's.
                    if ((errors & SslPolicyErrors.RemoteCertificateNameMismatch) == 0) return true;
                    refusal = $"the server's certificate ({certificate!.Subject}) does not name {host}";
                    return false;
                },
            }, cts.Token).ConfigureAwait(false);
            return new TcpTransport(socket, ssl, ssl.RemoteCertificate?.Subject);
        }
        catch (Exception e) when (e is AuthenticationException or IOException or OperationCanceledException or SocketException)
        {
            if (ssl is not null) await ssl.DisposeAsync().ConfigureAwait(false);
            socket.Dispose();
            if (e is SocketException || (e is OperationCanceledException && ssl is null)) throw;
            throw new TlsHandshakeException($"TLS handshake with {host}:{port} failed: {refusal ?? (e is OperationCanceledException ? $"no handshake within {settings.HandshakeTimeout.TotalSeconds:0} s" : e.Message)}", e);
        }
    }
}

/// <summary>A connection to the TLS port that did not complete its handshake (logged as a warning, the socket closed).</summary>
public sealed class TlsHandshakeException(string message, Exception inner) : IOException(message, inner);
