using System.Net;
using System.Net.Http.Headers;
using System.Security.Claims;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using AkkaVna.Dicom;
using AkkaVna.Dicom.IO;
using AkkaVna.Dicom.Network.Scu;
using AkkaVna.Testing;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;
using Xunit.Abstractions;

namespace AkkaVna.Host.Tests.Serve;

/// <summary>
/// Issue 20's DICOMweb authentication against a running node: tokens minted here (RSA keys of a test issuer, published as a
/// JWKS file) for QIDO-RS, WADO-RS, STOW-RS, /admin and /metrics — no token, an expired one, one signed by another key,
/// one for another audience or issuer, one without the scope, a good one: 401, 401, 401, 401, 403, 200. Then a rotated
/// key taken without restart, HTTPS with the same rules, and CORS for a viewer's origin.
/// </summary>
public sealed class HttpAuthTests(ITestOutputHelper output) : IDisposable
{
    private const string Issuer = "https://idp.test/realms/imaging", Audience = "akka-vna";
    private readonly TempDir _dir = new();
    private readonly RSA _issuerKey = RSA.Create(2048), _otherKey = RSA.Create(2048), _rotatedKey = RSA.Create(2048);

    public void Dispose()
    {
        _issuerKey.Dispose();
        _otherKey.Dispose();
        _rotatedKey.Dispose();
        _dir.Dispose();
    }

    [Fact]
    public async Task Each_endpoint_answers_401_without_a_good_token_403_without_the_scope_and_200_with_both()
    {
        var pki = TestCertificates.Create(_dir.File("pki"));
        string jwks = _dir.File("jwks.json");
        WriteJwks(jwks, ("k1", _issuerKey));
        string config = $$"""
            akka-vna.http {
              auth {
                enabled = on
                issuer = "{{Issuer}}"
                audience = "{{Audience}}"
                jwks-file = {{AkkaVna.Host.ArchiveOptions.Quote(jwks)}}
                clock-skew = 30s
              }
              https {
                enabled = on
                port = 0
                certificate = {{AkkaVna.Host.ArchiveOptions.Quote(pki.ServerCertificate)}}
                key = {{AkkaVna.Host.ArchiveOptions.Quote(pki.ServerKey)}}
              }
              cors.origins = ["https://viewer.hospital.test"]
            }
            """;
        using var server = new ArchiveServer(ArchiveServer.NewDataFolder(_dir, ArchiveServer.Sqlite), config);
        // The embedded first run (auth off) says loudly that HTTP is open; a node with auth on does not.
        using (var open = new ArchiveServer(ArchiveServer.NewDataFolder(_dir, ArchiveServer.Sqlite)))
            Assert.Contains("HTTP IS OPEN TO ANYONE", open.Output, StringComparison.Ordinal);
        Assert.DoesNotContain("HTTP IS OPEN", server.Output, StringComparison.Ordinal);
        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{server.HttpPort}/"), Timeout = TimeSpan.FromMinutes(1) };

        // A study to read: stored over DICOM (not HTTP), so the STOW rows below are the only HTTP writes.
        var files = Instances.WriteStudy(_dir.File("study"), 2, 32 * 32 * 2, seed: 41).Select(StoreFile.Read).ToList();
        string study;
        using (var first = DicomFile.Open(files[0].Path, new DicomReadOptions { StopBefore = t => t.Group > 0x0020 }))
            study = first.Dataset.GetString(DicomTags.StudyInstanceUID)!;
        var stored = Tool.Run(Tool.Dcmtk("storescu"), ["-aec", "AKKAVNA", "127.0.0.1", server.DicomPort.ToString(System.Globalization.CultureInfo.InvariantCulture),
            .. files.Select(f => f.Path)], TimeSpan.FromMinutes(2));
        Assert.True(stored.ExitCode == 0, stored.StdOut + stored.StdErr);

        string allScopes = "dicomweb.read dicomweb.write akka-vna.admin akka-vna.metrics";
        var requests = new (string Name, string Scope, Func<HttpRequestMessage> Make)[]
        {
            ("QIDO", "dicomweb.read", () => new HttpRequestMessage(HttpMethod.Get, $"dicom-web/studies?StudyInstanceUID={study}")),
            ("WADO", "user/ImagingStudy.read", () => new HttpRequestMessage(HttpMethod.Get, $"dicom-web/studies/{study}")
                { Headers = { Accept = { MediaTypeWithQualityHeaderValue.Parse("multipart/related; type=\"application/dicom\"; transfer-syntax=*") } } }),
            ("STOW", "dicomweb.write", () => new HttpRequestMessage(HttpMethod.Post, "dicom-web/studies") { Content = Multipart.Related([files[0].Path]) }),
            ("admin", "akka-vna.admin", () => new HttpRequestMessage(HttpMethod.Get, $"admin/studies/{study}")),
            ("metrics", "akka-vna.metrics", () => new HttpRequestMessage(HttpMethod.Get, "metrics")),
        };
        var now = DateTime.UtcNow;
        foreach (var (name, scope, make) in requests)
        {
            string withoutScope = string.Join(' ', allScopes.Split(' ').Where(s => s != scope && !(scope.EndsWith(".read", StringComparison.Ordinal) && s.EndsWith(".read", StringComparison.Ordinal))));
            var rows = new (string Token, string? Bearer, HttpStatusCode Expected, string Reason)[]
            {
                ("none", null, HttpStatusCode.Unauthorized, "a bearer token is required"),
                ("expired", Token(_issuerKey, "k1", scope, now.AddMinutes(-20), now.AddMinutes(-10)), HttpStatusCode.Unauthorized, "expired"),
                ("other key", Token(_otherKey, "k1", scope, now.AddMinutes(-1), now.AddMinutes(10)), HttpStatusCode.Unauthorized, "signature"),
                ("other audience", Token(_issuerKey, "k1", scope, now.AddMinutes(-1), now.AddMinutes(10), audience: "another-app"), HttpStatusCode.Unauthorized, "audience"),
                ("other issuer", Token(_issuerKey, "k1", scope, now.AddMinutes(-1), now.AddMinutes(10), issuer: "https://evil.test"), HttpStatusCode.Unauthorized, "issuer"),
                ("not a JWT", "abc.def.ghi", HttpStatusCode.Unauthorized, "not a JWT"),
                ("no scope", Token(_issuerKey, "k1", withoutScope, now.AddMinutes(-1), now.AddMinutes(10)), HttpStatusCode.Forbidden, scope),
                ("good", Token(_issuerKey, "k1", scope, now.AddMinutes(-1), now.AddMinutes(10)), HttpStatusCode.OK, ""),
            };
            foreach (var (token, bearer, expected, reason) in rows)
            {
                using var request = make();
                if (bearer is not null) request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", bearer);
                using var response = await http.SendAsync(request);
                string body = await response.Content.ReadAsStringAsync();
                output.WriteLine($"{name,-8} {token,-15} {(int)response.StatusCode} {response.Headers.WwwAuthenticate} {(expected == HttpStatusCode.OK ? "" : body.Trim())}");
                Assert.True(expected == response.StatusCode, $"{name} with {token}: {(int)response.StatusCode} {body}");
                if (expected == HttpStatusCode.OK) continue;
                Assert.Contains(reason, body, StringComparison.Ordinal);
                var challenge = Assert.Single(response.Headers.WwwAuthenticate);
                Assert.Equal("Bearer", challenge.Scheme);
                if (expected == HttpStatusCode.Forbidden) Assert.Contains("error=\"insufficient_scope\"", challenge.Parameter, StringComparison.Ordinal);
                else if (bearer is not null) Assert.Contains("error=\"invalid_token\"", challenge.Parameter, StringComparison.Ordinal);
                else Assert.DoesNotContain("error=", challenge.Parameter, StringComparison.Ordinal);
            }
        }
        // The health probes stay open (an orchestrator has no token).
        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("health/live")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("health/ready")).StatusCode);
        // The refusals are logged with where they came from, and counted.
        Assert.Contains("from 127.0.0.1 refused (401)", server.Output, StringComparison.Ordinal);
        Assert.Contains("as viewer-7 refused (403)", server.Output, StringComparison.Ordinal);
        using (var metrics = new HttpRequestMessage(HttpMethod.Get, "metrics"))
        {
            metrics.Headers.Authorization = new AuthenticationHeaderValue("Bearer", Token(_issuerKey, "k1", "akka-vna.metrics", now.AddMinutes(-1), now.AddMinutes(10)));
            string text = await (await http.SendAsync(metrics)).Content.ReadAsStringAsync();
            Assert.Contains("akkavna_http_refused_total{status=\"401\",permission=\"read\"} 12", text, StringComparison.Ordinal);
            Assert.Contains("akkavna_http_refused_total{status=\"403\",permission=\"write\"} 1", text, StringComparison.Ordinal);
        }

        // Key rotation: the issuer publishes a second key and signs with it; the node takes it without a restart.
        string rotated = Token(_rotatedKey, "k2", "dicomweb.read", now.AddMinutes(-1), now.AddMinutes(10));
        WriteJwks(jwks, ("k1", _issuerKey), ("k2", _rotatedKey));
        await Waits.UntilAsync(async () =>
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, "dicom-web/studies");
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", rotated);
            return (await http.SendAsync(request)).StatusCode == HttpStatusCode.OK;
        }, TimeSpan.FromSeconds(30), "a token signed by the rotated key is accepted");
        Assert.Contains("token signing keys from", server.Output, StringComparison.Ordinal);

        // HTTPS with the same rules, the server's certificate checked against the test authority.
        Assert.NotNull(server.HttpsPort);
        using var caCert = X509Certificate2.CreateFromPem(File.ReadAllText(pki.CaCertificate));
        using var tlsHandler = new HttpClientHandler
        {
            ServerCertificateCustomValidationCallback = (_, certificate, _, _) =>
            {
                using var chain = new X509Chain();
                chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
                chain.ChainPolicy.CustomTrustStore.Add(caCert);
                chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
                return certificate is not null && chain.Build(certificate);
            },
        };
        using var https = new HttpClient(tlsHandler) { BaseAddress = new Uri($"https://127.0.0.1:{server.HttpsPort}/"), Timeout = TimeSpan.FromMinutes(1) };
        Assert.Equal(HttpStatusCode.Unauthorized, (await https.GetAsync("dicom-web/studies")).StatusCode);
        using (var request = new HttpRequestMessage(HttpMethod.Get, $"dicom-web/studies?StudyInstanceUID={study}"))
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", Token(_issuerKey, "k1", "dicomweb.read", now.AddMinutes(-1), now.AddMinutes(10)));
            using var response = await https.SendAsync(request);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Contains(study, await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }

        // CORS: a preflight from the viewer's origin is answered without a token; one from elsewhere gets no grant; a 401
        // to the viewer carries the grant so the viewer can read why.
        async Task<HttpResponseMessage> Preflight(string origin)
        {
            using var request = new HttpRequestMessage(HttpMethod.Options, "dicom-web/studies");
            request.Headers.Add("Origin", origin);
            request.Headers.Add("Access-Control-Request-Method", "GET");
            request.Headers.Add("Access-Control-Request-Headers", "authorization");
            return await http.SendAsync(request);
        }
        using (var viewer = await Preflight("https://viewer.hospital.test"))
        {
            Assert.True(viewer.IsSuccessStatusCode, viewer.StatusCode.ToString());
            Assert.Equal("https://viewer.hospital.test", Assert.Single(viewer.Headers.GetValues("Access-Control-Allow-Origin")));
            Assert.Contains("authorization", string.Join(',', viewer.Headers.GetValues("Access-Control-Allow-Headers")), StringComparison.OrdinalIgnoreCase);
        }
        using (var elsewhere = await Preflight("https://evil.test"))
            Assert.False(elsewhere.Headers.Contains("Access-Control-Allow-Origin"));
        using (var request = new HttpRequestMessage(HttpMethod.Get, "dicom-web/studies"))
        {
            request.Headers.Add("Origin", "https://viewer.hospital.test");
            using var response = await http.SendAsync(request);
            Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
            Assert.Equal("https://viewer.hospital.test", Assert.Single(response.Headers.GetValues("Access-Control-Allow-Origin")));
        }
        Assert.Equal(0, server.Stop());
    }

    [Fact]
    public async Task Signing_keys_come_from_a_JWKS_URL_and_a_new_key_is_fetched_when_a_token_names_it()
    {
        // The issuer's key set served over HTTP by the test (an identity provider's certs endpoint).
        string jwks = _dir.File("served-jwks.json");
        WriteJwks(jwks, ("k1", _issuerKey));
        int port = Ports.Free();
        using var listener = new System.Net.HttpListener();
        listener.Prefixes.Add($"http://127.0.0.1:{port}/");
        listener.Start();
        int fetches = 0;
        using var stop = new CancellationTokenSource();
        var serving = Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                System.Net.HttpListenerContext c;
                try
                {
                    c = await listener.GetContextAsync().WaitAsync(stop.Token);
                }
                catch (Exception) when (stop.IsCancellationRequested)
                {
                    return;
                }
                Interlocked.Increment(ref fetches);
                byte[] body = await File.ReadAllBytesAsync(jwks);
                c.Response.ContentType = "application/json";
                await c.Response.OutputStream.WriteAsync(body);
                c.Response.Close();
            }
        });
        string config = $$"""
            akka-vna.http.auth {
              enabled = on
              issuer = "{{Issuer}}"
              audience = "{{Audience}}"
              jwks-url = "http://127.0.0.1:{{port}}/realms/imaging/certs"
              jwks-refresh = 1h
            }
            """;
        using var server = new ArchiveServer(ArchiveServer.NewDataFolder(_dir, ArchiveServer.Sqlite), config);
        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{server.HttpPort}/"), Timeout = TimeSpan.FromMinutes(1) };
        var now = DateTime.UtcNow;
        async Task<HttpStatusCode> QueryWith(string token)
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, "dicom-web/studies");
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
            using var response = await http.SendAsync(request);
            return response.StatusCode;
        }
        Assert.Equal(HttpStatusCode.NoContent, await QueryWith(Token(_issuerKey, "k1", "dicomweb.read", now.AddMinutes(-1), now.AddMinutes(10)))); // no studies yet
        Assert.Equal(1, fetches); // fetched once at start, not per request
        // The issuer rotates to k2: a token naming it makes the node fetch the key set again (no restart, no hour-long wait).
        WriteJwks(jwks, ("k1", _issuerKey), ("k2", _rotatedKey));
        string rotated = Token(_rotatedKey, "k2", "dicomweb.read", now.AddMinutes(-1), now.AddMinutes(10));
        await Waits.UntilAsync(async () => await QueryWith(rotated) == HttpStatusCode.NoContent, TimeSpan.FromSeconds(30), "a token signed by the new key is accepted");
        Assert.True(fetches >= 2, $"{fetches} fetch(es)");
        // A key that is nowhere in the set stays refused, and asking again does not hammer the issuer.
        int before = fetches;
        for (int i = 0; i < 5; i++)
            Assert.Equal(HttpStatusCode.Unauthorized, await QueryWith(Token(_otherKey, "k9", "dicomweb.read", now.AddMinutes(-1), now.AddMinutes(10))));
        Assert.True(fetches - before <= 1, $"{fetches - before} fetches for 5 requests");
        Assert.Equal(0, server.Stop());
        await stop.CancelAsync();
        listener.Stop();
        await serving;
    }

    private static string Token(RSA key, string kid, string scope, DateTime notBefore, DateTime expires, string audience = Audience, string issuer = Issuer) =>
        new JsonWebTokenHandler().CreateToken(new SecurityTokenDescriptor
        {
            Issuer = issuer,
            Audience = audience,
            NotBefore = notBefore,
            IssuedAt = notBefore,
            Expires = expires,
            Subject = new ClaimsIdentity([new Claim("sub", "viewer-7"), new Claim("scope", scope)]),
            SigningCredentials = new SigningCredentials(new RsaSecurityKey(key) { KeyId = kid }, SecurityAlgorithms.RsaSha256),
        });

    private static void WriteJwks(string path, params (string Kid, RSA Key)[] keys)
    {
        var entries = keys.Select(k =>
        {
            var p = k.Key.ExportParameters(false);
            return new Dictionary<string, string>
            {
                ["kty"] = "RSA", ["use"] = "sig", ["alg"] = "RS256", ["kid"] = k.Kid, ["n"] = Base64UrlEncoder.Encode(p.Modulus), ["e"] = Base64UrlEncoder.Encode(p.Exponent),
            };
        });
        // Written aside and renamed, as an issuer's key publisher would, so the node never reads half a file.
        File.WriteAllText(path + ".tmp", System.Text.Json.JsonSerializer.Serialize(new { keys = entries }));
        File.Move(path + ".tmp", path, overwrite: true);
    }
}
