using System.Security.Claims;
using System.Security.Cryptography.X509Certificates;
using Akka.Configuration;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authentication.JwtBearer;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.IdentityModel.Tokens;

namespace AkkaVna.Host;

/// <summary>What an HTTP request needs: nothing (health), or a token with one of the scopes of a permission.</summary>
public enum HttpPermission { Open, Read, Write, Admin, Metrics }

/// <summary>
/// <c>akka-vna.http.auth</c>: OAuth 2.0 bearer tokens (JWT, RFC 9068 style) checked against an issuer, an audience and the
/// issuer's signing keys (a JWKS file, re-read when it changes, or a JWKS URL, fetched again periodically and when a token
/// names a key it does not know: key rotation needs no restart), with the scopes that grant each permission.
/// </summary>
public sealed record HttpAuthOptions(string Issuer, IReadOnlyList<string> Audiences, string? JwksFile, Uri? JwksUrl, TimeSpan JwksRefresh, TimeSpan ClockSkew,
    IReadOnlyDictionary<HttpPermission, IReadOnlySet<string>> Scopes, bool OpenMetrics)
{
    /// <summary>The settings, or null when <c>akka-vna.http.auth.enabled</c> is off.</summary>
    internal static HttpAuthOptions? Read(Config c, string data)
    {
        if (!c.GetBoolean("http.auth.enabled", false)) return null;
        const string at = "akka-vna.http.auth";
        string issuer = c.GetString("http.auth.issuer") is { Length: > 0 } i ? i : throw new ArchiveConfigException($"{at}.issuer must name the token issuer (the iss claim)");
        var audienceValue = c.GetValue("http.auth.audience");
        var audiences = (audienceValue is null ? [] : audienceValue.IsArray() ? c.GetStringList("http.auth.audience") ?? [] : [audienceValue.GetString() ?? ""])
            .Where(a => a.Length > 0).ToList();
        if (audiences.Count == 0) throw new ArchiveConfigException($"{at}.audience must name this archive as the tokens' audience (the aud claim), one or a list");
        string? file = c.GetString("http.auth.jwks-file") is { Length: > 0 } f ? Path.GetFullPath(Path.Combine(data, f)) : null;
        Uri? url = null;
        if (c.GetString("http.auth.jwks-url") is { Length: > 0 } u)
            url = Uri.TryCreate(u, UriKind.Absolute, out var parsed) && parsed.Scheme is "https" or "http" ? parsed
                : throw new ArchiveConfigException($"{at}.jwks-url: '{u}' is not an http or https URL");
        if ((file is null) == (url is null)) throw new ArchiveConfigException($"{at}: set exactly one of jwks-file and jwks-url (the issuer's signing keys)");
        if (file is not null && !File.Exists(file)) throw new ArchiveConfigException($"{at}.jwks-file: {file} does not exist");
        var refresh = c.GetTimeSpan("http.auth.jwks-refresh", TimeSpan.FromMinutes(10), allowInfinite: false);
        var skew = c.GetTimeSpan("http.auth.clock-skew", TimeSpan.FromSeconds(60), allowInfinite: false);
        if (refresh < TimeSpan.FromSeconds(1) || skew < TimeSpan.Zero || skew > TimeSpan.FromMinutes(10))
            throw new ArchiveConfigException($"{at}: jwks-refresh must be at least 1s and clock-skew between 0 and 10m");
        var scopes = new Dictionary<HttpPermission, IReadOnlySet<string>>();
        foreach (var p in new[] { HttpPermission.Read, HttpPermission.Write, HttpPermission.Admin, HttpPermission.Metrics })
        {
            string key = "http.auth.scopes." + p.ToString().ToLowerInvariant();
            var names = (c.GetStringList(key) ?? []).Where(s => s.Length > 0).ToHashSet(StringComparer.Ordinal);
            if (names.Count == 0 || names.Any(n => n.Any(char.IsWhiteSpace)))
                throw new ArchiveConfigException($"akka-vna.{key} must list at least one scope name (without spaces)");
            scopes[p] = names;
        }
        return new HttpAuthOptions(issuer, audiences, file, url, refresh, skew, scopes, c.GetBoolean("http.auth.open-metrics", false));
    }
}

/// <summary><c>akka-vna.http.https</c>: an HTTPS listener with a PEM certificate and key (by default the DICOM TLS ones), beside or instead of plain HTTP.</summary>
public sealed record HttpsOptions(int Port, string Certificate, string Key, bool Only)
{
    internal static HttpsOptions? Read(Config c, string data, DicomTlsOptions? dicomTls)
    {
        if (!c.GetBoolean("http.https.enabled", false)) return null;
        const string at = "akka-vna.http.https";
        string Full(string p) => Path.GetFullPath(Path.Combine(data, p));
        string? certificate = c.GetString("http.https.certificate") is { Length: > 0 } cf ? Full(cf) : dicomTls?.Certificate;
        string? key = c.GetString("http.https.key") is { Length: > 0 } k ? Full(k) : c.GetString("http.https.certificate") is { Length: > 0 } ? null : dicomTls?.Key;
        if (certificate is null || key is null)
            throw new ArchiveConfigException($"{at}: set certificate and key (PEM), or configure akka-vna.dicom.tls whose certificate and key it then uses");
        foreach (var file in new[] { certificate, key })
            if (!File.Exists(file)) throw new ArchiveConfigException($"{at}: {file} does not exist");
        int port = c.GetInt("http.https.port", 8443);
        if (port is < 0 or > 65535) throw new ArchiveConfigException($"{at}.port must be between 0 and 65535, not {port}");
        return new HttpsOptions(port, certificate, key, c.GetBoolean("http.https.only", false));
    }

    /// <summary>The certificate with its key (a bad file is a configuration error, named).</summary>
    public X509Certificate2 Load()
    {
        try
        {
            return X509Certificate2.CreateFromPemFile(Certificate, Key);
        }
        catch (Exception e) when (e is System.Security.Cryptography.CryptographicException or ArgumentException or IOException)
        {
            throw new ArchiveConfigException($"akka-vna.http.https: cannot load {Certificate} with {Key}: {e.Message}");
        }
    }
}

/// <summary><c>akka-vna.http.cors</c>: the origins a browser viewer may call DICOMweb from (none: no CORS headers at all).</summary>
public sealed record CorsOptions(IReadOnlyList<string> Origins, TimeSpan MaxAge)
{
    internal static CorsOptions? Read(Config c)
    {
        var origins = (c.GetStringList("http.cors.origins") ?? []).Where(o => o.Length > 0).ToList();
        if (origins.Count == 0) return null;
        foreach (var o in origins)
            if (o != "*" && !(Uri.TryCreate(o, UriKind.Absolute, out var u) && u.Scheme is "http" or "https" && u.AbsolutePath == "/" && !o.EndsWith('/')))
                throw new ArchiveConfigException($"akka-vna.http.cors.origins: '{o}' is not an origin (scheme://host[:port], or *)");
        return new CorsOptions(origins, c.GetTimeSpan("http.cors.max-age", TimeSpan.FromMinutes(10), allowInfinite: false));
    }
}

/// <summary>
/// The issuer's signing keys from a JWKS file or URL, held in memory and swapped whole. A token naming a key id that is
/// not there asks for a reload (at most every few seconds), so a rotated key is taken without a restart.
/// </summary>
internal sealed class SigningKeys : IDisposable
{
    private const int MaxJwksBytes = 1 << 20;
    private static readonly TimeSpan MinReloadInterval = TimeSpan.FromSeconds(5);
    private readonly HttpAuthOptions _options;
    private readonly ILogger _log;
    private readonly HttpClient? _http;
    private readonly CancellationTokenSource _stop = new();
    private readonly SemaphoreSlim _reloadNow = new(0, 1);
    private volatile IReadOnlyList<SecurityKey> _keys = [];
    private DateTime _fileStamp;
    private long _lastReload;

    public SigningKeys(HttpAuthOptions options, ILogger log)
    {
        _options = options;
        _log = log;
        if (options.JwksUrl is not null) _http = new HttpClient { Timeout = TimeSpan.FromSeconds(10), MaxResponseContentBufferSize = MaxJwksBytes };
    }

    /// <summary>Loads the keys once (a start with no readable keys fails, named) and keeps them fresh in the background.</summary>
    public async Task StartAsync(CancellationToken ct)
    {
        try
        {
            await ReloadAsync(ct).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or HttpRequestException or ArgumentException or TaskCanceledException or InvalidOperationException)
        {
            throw new ArchiveConfigException($"akka-vna.http.auth: cannot read the signing keys from {Source}: {e.Message}");
        }
        _ = Task.Run(RefreshLoopAsync);
    }

    private string Source => _options.JwksFile ?? _options.JwksUrl!.ToString();

    /// <summary>The keys a token with this key id may be signed with (all of them when it names none).</summary>
    public IEnumerable<SecurityKey> Resolve(string? kid)
    {
        var keys = _keys;
        if (string.IsNullOrEmpty(kid)) return keys;
        var matching = keys.Where(k => k.KeyId == kid).ToList();
        if (matching.Count == 0) AskReload();
        return matching;
    }

    private void AskReload()
    {
        long now = Environment.TickCount64;
        if (now - Interlocked.Read(ref _lastReload) < MinReloadInterval.TotalMilliseconds) return;
        if (_reloadNow.CurrentCount == 0) try { _reloadNow.Release(); } catch (SemaphoreFullException) { }
    }

    private async Task RefreshLoopAsync()
    {
        // A file is looked at every few seconds (a stat), a URL fetched every jwks-refresh; both at once when a token names an unknown key.
        var every = _options.JwksFile is not null ? TimeSpan.FromSeconds(5) : _options.JwksRefresh;
        while (!_stop.IsCancellationRequested)
        {
            try
            {
                await _reloadNow.WaitAsync(every, _stop.Token).ConfigureAwait(false);
                await ReloadAsync(_stop.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (_stop.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e) when (e is IOException or HttpRequestException or ArgumentException or TaskCanceledException or InvalidOperationException)
            {
                _log.LogWarning("cannot read the token signing keys from {Source} ({Reason}); the {Count} key(s) read before stay in use", Source, e.Message, _keys.Count);
            }
        }
    }

    private async Task ReloadAsync(CancellationToken ct)
    {
        Interlocked.Exchange(ref _lastReload, Environment.TickCount64);
        string json;
        if (_options.JwksFile is { } file)
        {
            var stamp = File.GetLastWriteTimeUtc(file);
            if (stamp == _fileStamp && _keys.Count > 0) return;
            if (new FileInfo(file).Length > MaxJwksBytes) throw new InvalidOperationException($"{file} is larger than {MaxJwksBytes} bytes");
            json = await File.ReadAllTextAsync(file, ct).ConfigureAwait(false);
            _fileStamp = stamp;
        }
        else
        {
            json = await _http!.GetStringAsync(_options.JwksUrl, ct).ConfigureAwait(false);
        }
        var set = new JsonWebKeySet(json);
        // Keys meant for encryption are not signing keys; symmetric keys are refused (a JWKS is public).
        var keys = set.Keys.Where(k => k.Use is null or "" or "sig" && k.Kty is "RSA" or "EC").Select(k => (SecurityKey)k).ToList();
        if (keys.Count == 0) throw new InvalidOperationException("the key set holds no RSA or EC signing key");
        var before = _keys.Select(k => k.KeyId).Order(StringComparer.Ordinal).ToList();
        _keys = keys;
        var after = keys.Select(k => k.KeyId).Order(StringComparer.Ordinal).ToList();
        if (!before.SequenceEqual(after))
            _log.LogInformation("token signing keys from {Source}: {Kids}", Source, string.Join(", ", after.Select(k => k ?? "(no kid)")));
    }

    public void Dispose()
    {
        _stop.Cancel();
        _http?.Dispose();
    }
}

/// <summary>
/// Who may do what over HTTP. Every request but the health probes (and CORS preflights, answered before) needs a valid
/// bearer token when <c>akka-vna.http.auth</c> is on, and one of the scopes of the permission its route needs: DICOMweb
/// reads (QIDO-RS, WADO-RS, WADO-URI) read, STOW-RS write, <c>/admin</c> admin, <c>/metrics</c> metrics. A missing or bad
/// token is 401 with <c>WWW-Authenticate: Bearer</c> (RFC 6750), a missing scope 403 with the scopes that would do, each
/// with a plain-text reason; both are logged and counted. Deny by default: a route not named here needs write.
/// </summary>
public static class HttpAccess
{
    /// <summary>The key under which a request's authenticated user (the token's subject) is kept, for logs and the audit trail.</summary>
    public const string UserItem = AkkaVna.DicomWeb.DicomWebEndpoints.UserItem;

    private const string Realm = "akka-vna";

    public static HttpPermission Required(HttpRequest request, bool openMetrics)
    {
        string path = request.Path.Value ?? "/";
        if (path is "/health/live" or "/health/ready") return HttpPermission.Open;
        if (path == "/metrics" || path.StartsWith("/metrics/", StringComparison.Ordinal)) return openMetrics ? HttpPermission.Open : HttpPermission.Metrics;
        if (path == "/admin" || path.StartsWith("/admin/", StringComparison.Ordinal)) return HttpPermission.Admin;
        return HttpMethods.IsGet(request.Method) || HttpMethods.IsHead(request.Method) ? HttpPermission.Read : HttpPermission.Write;
    }

    /// <summary>The token's scopes: the space-separated <c>scope</c> claim (RFC 8693, 9068), or <c>scp</c> values.</summary>
    public static IReadOnlySet<string> Scopes(ClaimsPrincipal user) =>
        user.FindAll("scope").Concat(user.FindAll("scp"))
            .SelectMany(c => c.Value.Split(' ', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)).ToHashSet(StringComparer.Ordinal);

    internal static void AddServices(IServiceCollection services, HttpAuthOptions options, SigningKeys keys)
    {
        services.AddAuthentication(JwtBearerDefaults.AuthenticationScheme).AddJwtBearer(o =>
        {
            o.MapInboundClaims = false;
            o.RequireHttpsMetadata = false;
            o.TokenValidationParameters = new TokenValidationParameters
            {
                ValidIssuer = options.Issuer,
                ValidAudiences = options.Audiences,
                ValidateIssuer = true,
                ValidateAudience = true,
                ValidateLifetime = true,
                RequireExpirationTime = true,
                RequireSignedTokens = true,
                ValidateIssuerSigningKey = true,
                ClockSkew = options.ClockSkew,
                // Asymmetric signatures only: never "none", never HMAC with a public key.
                ValidAlgorithms = [SecurityAlgorithms.RsaSha256, SecurityAlgorithms.RsaSha384, SecurityAlgorithms.RsaSha512,
                    SecurityAlgorithms.RsaSsaPssSha256, SecurityAlgorithms.RsaSsaPssSha384, SecurityAlgorithms.RsaSsaPssSha512,
                    SecurityAlgorithms.EcdsaSha256, SecurityAlgorithms.EcdsaSha384, SecurityAlgorithms.EcdsaSha512],
                IssuerSigningKeyResolver = (_, _, kid, _) => keys.Resolve(kid),
                NameClaimType = "sub",
            };
        });
    }

    /// <summary>The access check, as middleware: after CORS (so preflights are answered), before every endpoint.</summary>
    internal static void Use(WebApplication app, HttpAuthOptions options, ArchiveMetrics metrics, ILogger log, AkkaVna.Core.Audit.IAuditTrail audit,
        AkkaVna.Core.Audit.AuditParticipant archive)
    {
        app.Use(async (context, next) =>
        {
            var need = Required(context.Request, options.OpenMetrics);
            if (need == HttpPermission.Open)
            {
                await next(context);
                return;
            }
            string who = context.Connection.RemoteIpAddress?.ToString() ?? "?";
            var result = await context.AuthenticateAsync(JwtBearerDefaults.AuthenticationScheme);
            if (!result.Succeeded || result.Principal is null)
            {
                bool missing = result.None;
                string reason = missing ? "a bearer token is required (Authorization: Bearer ...)" : "the bearer token is not valid: " + Describe(result.Failure);
                log.LogWarning("HTTP {Method} {Path} from {Remote} refused (401): {Reason}", context.Request.Method, context.Request.Path, who, reason);
                metrics.HttpRefused(401, need);
                audit.Record(new AkkaVna.Core.Audit.Authentication(DateTimeOffset.UtcNow, AkkaVna.Core.Audit.AuditOutcome.MinorFailure,
                    $"HTTP {context.Request.Method} {context.Request.Path} refused (401): {reason}", new AkkaVna.Core.Audit.AuditParticipant(who, null, who, IsRequestor: true), archive));
                context.Items["akka-vna.refusal"] = reason;
                // RFC 6750 3.1: no error code when the request had no token at all.
                context.Response.Headers.WWWAuthenticate = missing ? $"Bearer realm=\"{Realm}\""
                    : $"Bearer realm=\"{Realm}\", error=\"invalid_token\", error_description=\"{Quote(reason)}\"";
                await Refuse(context, StatusCodes.Status401Unauthorized, reason);
                return;
            }
            context.User = result.Principal;
            string user = result.Principal.FindFirst("sub")?.Value ?? result.Principal.FindFirst("client_id")?.Value ?? result.Principal.FindFirst("azp")?.Value ?? "(no subject)";
            context.Items[UserItem] = user;
            var granting = options.Scopes[need];
            if (!Scopes(result.Principal).Overlaps(granting))
            {
                string wanted = string.Join(' ', granting.Order(StringComparer.Ordinal));
                string reason = $"{context.Request.Method} {context.Request.Path} needs the {need.ToString().ToLowerInvariant()} permission: a token with one of the scopes {wanted}";
                log.LogWarning("HTTP {Method} {Path} from {Remote} as {User} refused (403): {Reason}", context.Request.Method, context.Request.Path, who, user, reason);
                metrics.HttpRefused(403, need);
                audit.Record(new AkkaVna.Core.Audit.SecurityAlert(DateTimeOffset.UtcNow, AkkaVna.Core.Audit.SecurityAlertType.UseOfRestrictedFunction,
                    $"HTTP {context.Request.Method} {context.Request.Path} refused (403): {reason}", archive, new AkkaVna.Core.Audit.AuditParticipant(user, null, who, IsRequestor: true)));
                context.Response.Headers.WWWAuthenticate = $"Bearer realm=\"{Realm}\", error=\"insufficient_scope\", scope=\"{wanted}\"";
                await Refuse(context, StatusCodes.Status403Forbidden, reason);
                return;
            }
            await next(context);
        });
    }

    private static string Describe(Exception? e) => e switch
    {
        SecurityTokenExpiredException x => $"it expired at {x.Expires:O}",
        SecurityTokenNotYetValidException x => $"it is not valid before {x.NotBefore:O}",
        SecurityTokenSignatureKeyNotFoundException => "it is not signed by a key of the issuer",
        SecurityTokenInvalidSignatureException => "its signature does not verify with the issuer's keys",
        SecurityTokenInvalidIssuerException => "it is from another issuer",
        SecurityTokenInvalidAudienceException => "it is meant for another audience",
        SecurityTokenInvalidAlgorithmException => "its signature algorithm is not accepted (RS, PS or ES only)",
        SecurityTokenNoExpirationException => "it has no expiry",
        // IDX141xx: the token could not be read as a JWT at all (its exception type varies with the stage that failed).
        SecurityTokenMalformedException or ArgumentException or SecurityTokenException when e.Message.StartsWith("IDX141", StringComparison.Ordinal)
            => "it is not a JWT (three base64url parts: header, claims, signature)",
        null => "unknown",
        _ => e.Message.Split('\n')[0],
    };

    private static string Quote(string s) => s.Replace("\\", "", StringComparison.Ordinal).Replace("\"", "'", StringComparison.Ordinal);

    private static async Task Refuse(HttpContext context, int status, string reason)
    {
        context.Response.StatusCode = status;
        context.Response.ContentType = "text/plain; charset=utf-8";
        await context.Response.WriteAsync(reason + "\n");
    }
}
