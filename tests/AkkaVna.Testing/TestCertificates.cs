using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace AkkaVna.Testing;

/// <summary>
/// A throwaway PKI for TLS tests, written as PEM files: a certificate authority, a server certificate for 127.0.0.1 and a
/// client certificate it signed, and a second authority with a client certificate of its own (one the server must refuse).
/// </summary>
public sealed class TestCertificates
{
    public required string CaCertificate { get; init; }
    public required string ServerCertificate { get; init; }
    public required string ServerKey { get; init; }
    public required string ClientCertificate { get; init; }
    public required string ClientKey { get; init; }
    public required string OtherCaCertificate { get; init; }
    public required string RogueClientCertificate { get; init; }
    public required string RogueClientKey { get; init; }
    /// <summary>A second client of the trusted authority (CN=WORKSTATION): trusted, but not every peer's subject.</summary>
    public required string WorkstationCertificate { get; init; }
    public required string WorkstationKey { get; init; }

    public static TestCertificates Create(string folder)
    {
        Directory.CreateDirectory(folder);
        string F(string name) => Path.Combine(folder, name);
        using var ca = Authority("CN=AkkaVna Test CA");
        using var other = Authority("CN=Another CA");
        Write(ca, F("ca.crt"), null);
        Write(other, F("other-ca.crt"), null);
        using (var server = Leaf(ca, "CN=akkavna-test-server", server: true)) Write(server, F("server.crt"), F("server.key"));
        using (var client = Leaf(ca, "CN=MODALITY1", server: false)) Write(client, F("client.crt"), F("client.key"));
        using (var rogue = Leaf(other, "CN=ROGUE", server: false)) Write(rogue, F("rogue.crt"), F("rogue.key"));
        using (var workstation = Leaf(ca, "CN=WORKSTATION", server: false)) Write(workstation, F("workstation.crt"), F("workstation.key"));
        return new TestCertificates
        {
            CaCertificate = F("ca.crt"), ServerCertificate = F("server.crt"), ServerKey = F("server.key"), ClientCertificate = F("client.crt"),
            ClientKey = F("client.key"), OtherCaCertificate = F("other-ca.crt"), RogueClientCertificate = F("rogue.crt"), RogueClientKey = F("rogue.key"),
            WorkstationCertificate = F("workstation.crt"), WorkstationKey = F("workstation.key"),
        };
    }

    private static X509Certificate2 Authority(string subject)
    {
        var key = RSA.Create(2048); // kept alive with the certificate that uses it
        var request = new CertificateRequest(subject, key, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, false));
        return request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(30));
    }

    private static X509Certificate2 Leaf(X509Certificate2 issuer, string subject, bool server)
    {
        var key = RSA.Create(2048); // kept alive with the certificate that uses it
        var request = new CertificateRequest(subject, key, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature | X509KeyUsageFlags.KeyEncipherment, true));
        // A node's certificate serves both ends (it listens, and it connects to move destinations): server and client auth.
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension(
            server ? [new Oid("1.3.6.1.5.5.7.3.1"), new Oid("1.3.6.1.5.5.7.3.2")] : [new Oid("1.3.6.1.5.5.7.3.2")], false));
        if (server)
        {
            var names = new SubjectAlternativeNameBuilder();
            names.AddIpAddress(System.Net.IPAddress.Loopback);
            names.AddDnsName("localhost");
            request.CertificateExtensions.Add(names.Build());
        }
        var serial = RandomNumberGenerator.GetBytes(16);
        serial[0] &= 0x7F;
        using var signed = request.Create(issuer, DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(29), serial);
        return signed.CopyWithPrivateKey(key);
    }

    private static void Write(X509Certificate2 certificate, string certificatePath, string? keyPath)
    {
        File.WriteAllText(certificatePath, certificate.ExportCertificatePem() + "\n");
        if (keyPath is null) return;
        using var rsa = certificate.GetRSAPrivateKey()!;
        File.WriteAllText(keyPath, rsa.ExportPkcs8PrivateKeyPem() + "\n");
    }
}
