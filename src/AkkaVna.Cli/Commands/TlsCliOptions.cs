using System.CommandLine;
using System.Security.Cryptography;
using AkkaVna.Dicom.Network.Transport;

namespace AkkaVna.Cli.Commands;

/// <summary>
/// DICOM TLS for the client commands (echo, store, replay): <c>--tls</c>, the authorities the server's certificate must
/// chain to (<c>--tls-ca</c>; the system's trust without it) and this client's certificate and key when the server asks
/// for one (<c>--tls-cert</c>, <c>--tls-key</c>, PEM).
/// </summary>
internal sealed class TlsCliOptions
{
    private readonly Option<bool> _tls = new("--tls") { Description = "Connect with DICOM TLS (TLS 1.2/1.3, PS3.15 Annex B): the server's certificate must chain to --tls-ca (or the system's trust) and name HOST." };
    private readonly Option<FileInfo?> _ca = new("--tls-ca") { Description = "With --tls: the authorities (PEM) the server's certificate must chain to." };
    private readonly Option<FileInfo?> _cert = new("--tls-cert") { Description = "With --tls: this client's certificate (PEM), for servers that require one." };
    private readonly Option<FileInfo?> _key = new("--tls-key") { Description = "With --tls: the private key (PEM) of --tls-cert." };

    public void AddTo(Command command)
    {
        command.Options.Add(_tls);
        command.Options.Add(_ca);
        command.Options.Add(_cert);
        command.Options.Add(_key);
    }

    /// <summary>The TLS connector the options ask for (null: plain TCP), or why they cannot be used.</summary>
    public (IDicomConnector? Connector, string? Error) Connector(ParseResult r)
    {
        FileInfo? ca = r.GetValue(_ca), cert = r.GetValue(_cert), key = r.GetValue(_key);
        if (!r.GetValue(_tls))
            return ca is null && cert is null && key is null ? (null, null) : (null, "--tls-ca, --tls-cert and --tls-key go with --tls");
        if ((cert is null) != (key is null)) return (null, "--tls-cert and --tls-key go together");
        foreach (var f in new[] { ca, cert, key })
            if (f is not null && !f.Exists) return (null, $"{f.FullName}: no such file");
        try
        {
            return (new TlsConnector(TlsSettings.FromPem(cert?.FullName, key?.FullName, ca?.FullName, requireClientCertificate: false)), null);
        }
        catch (CryptographicException e)
        {
            return (null, $"cannot load the TLS certificates: {e.Message}");
        }
    }
}
