using AkkaVna.Testing;
using AkkaVna.Actors.Logging;
using AkkaVna.Host;

namespace AkkaVna.Host.Tests;

public sealed class ArchiveOptionsTests
{
    [Fact]
    public void The_built_in_defaults_are_the_documented_ones()
    {
        var o = ArchiveOptions.Load(null);
        Assert.Equal("AKKAVNA", o.AETitle);
        Assert.Equal(11112, o.DicomPort);
        Assert.Equal(Path.GetFullPath("data"), o.DataFolder);
        Assert.True(o.Ingest.FlushBlobs);
        Assert.False(o.AkkaOverrides.HasPath("akka"));
        // Compression: on, one rule, every native image in JPEG-LS lossless.
        Assert.True(o.Compression.Enabled);
        var rule = Assert.Single(o.Compression.Rules.Rules);
        Assert.Equal("1.2.840.10008.1.2.4.80", rule.TransferSyntaxUid);
        Assert.Empty(rule.Match);
        Assert.Equal(TimeSpan.FromMinutes(10), o.Compression.Delay);
    }

    [Fact]
    public void Compression_rules_are_read_in_order_with_their_matches_and_sizes()
    {
        var o = ArchiveOptions.Load(null, """
            akka-vna.compression.rules = [
              {
                match { Modality = [XA, US] }
                transfer-syntax = none
              }
              {
                match {
                  Modality = CT
                  SOPClassUID = "1.2.840.10008.5.1.4.1.1.2*"
                }
                min-size = 1MiB
                transfer-syntax = "1.2.840.10008.1.2.4.90"
              }
            ]
            """);
        Assert.Equal(2, o.Compression.Rules.Rules.Count);
        Assert.Null(o.Compression.Rules.Rules[0].TransferSyntaxUid);
        Assert.Equal(["XA", "US"], o.Compression.Rules.Rules[0].Match["Modality"]);
        Assert.Equal(["CT"], o.Compression.Rules.Rules[1].Match["Modality"]);
        Assert.Equal(1024 * 1024, o.Compression.Rules.Rules[1].MinSize);
        Assert.Equal("1.2.840.10008.1.2.4.90", o.Compression.Rules.Rules[1].TransferSyntaxUid);
    }

    [Fact]
    public void A_file_overrides_the_defaults_flags_override_the_file_and_its_akka_section_is_kept_for_the_actor_system()
    {
        using var dir = new TempDir();
        string file = Path.Combine(dir.Path, "my.conf");
        File.WriteAllText(file, """
            akka-vna.dicom { ae-title = "SITE_A", port = 104 }
            akka.persistence.journal.sql.parallelism = 1
            """);
        var o = ArchiveOptions.Load(file, "akka-vna.dicom.port = 4242");
        Assert.Equal("SITE_A", o.AETitle);
        Assert.Equal(4242, o.DicomPort);
        Assert.Equal(1, o.AkkaOverrides.GetInt("akka.persistence.journal.sql.parallelism"));
    }

    [Theory]
    [InlineData("akka-vna.dicom.ae-title = \"A\\\\B\"", "akka-vna.dicom.ae-title")]
    [InlineData("akka-vna.dicom.port = 70000", "akka-vna.dicom.port")]
    [InlineData("akka-vna.ingest.conflict-policy = merge", "akka-vna.ingest.conflict-policy")]
    [InlineData("akka-vna.studies.quiet-period = 0s", "akka-vna.studies.quiet-period")]
    [InlineData("akka-vna.index.provider = cassandra", "akka-vna.index.provider is 'cassandra', which this build does not have; it has: sqlite")]
    [InlineData("akka-vna.blobs.provider = azure", "akka-vna.blobs.provider is 'azure', which this build does not have; it has: filesystem, s3")]
    [InlineData("akka-vna.blobs.provider = s3", "akka-vna.blobs.s3.bucket")]
    [InlineData("akka-vna.blobs.path = \"s3://Bad_Bucket\"", "is not a bucket name")]
    [InlineData("akka-vna.blobs.s3.acknowledge = eventually\nakka-vna.blobs.path = \"s3://bucket\"", "akka-vna.blobs.s3.acknowledge must be after-upload or after-local-commit")]
    [InlineData("akka-vna.blobs.s3.acknowledge = after-local-commit\nakka-vna.blobs.s3.cache.max-size = 0\nakka-vna.blobs.path = \"s3://bucket\"", "cache.max-size must be more than 0")]
    [InlineData("akka-vna.blobs.stores.primary.path = x", "not 'primary'")]
    [InlineData("akka-vna.blobs.stores.cold.provider = tape", "akka-vna.blobs.stores.cold.provider is 'tape'")]
    [InlineData("akka-vna.blobs.stores.cold.provider = s3", "akka-vna.blobs.stores.cold.s3.bucket")]
    [InlineData("akka-vna.journal.provider = mongodb", "akka-vna.journal.provider is 'mongodb'")]
    [InlineData("akka-vna.index.provider = postgresql", "akka-vna.postgresql.connection-string must be set")]
    [InlineData("akka-vna.cluster.seed-nodes = [\"10.0.0.1:4053\"]", "SQLite cannot be shared")]
    [InlineData("akka-vna.cluster.seed-nodes = [\"10.0.0.1\"]", "is not HOST:PORT")]
    [InlineData("akka-vna.cluster.split-brain-resolver.active-strategy = keep-referee", "akka-vna.cluster.split-brain-resolver.active-strategy")]
    [InlineData("akka-vna.postgresql.schema = \"Archive; DROP\"", "akka-vna.postgresql.schema")]
    [InlineData("akka-vna.compression.rules = [{ transfer-syntax = \"1.2.840.10008.1.2.4.91\" }]", "akka-vna.compression.rules[1].transfer-syntax 1.2.840.10008.1.2.4.91 is not a lossless syntax")]
    [InlineData("akka-vna.compression.rules = [{\n match { Colour = red }\n transfer-syntax = none\n}]", "akka-vna.compression.rules[1].match.Colour")]
    [InlineData("akka-vna.compression.rules = [{ match { Modality = CT } }]", "akka-vna.compression.rules[1].transfer-syntax must be set")]
    [InlineData("akka-vna.compression.workers = 0", "akka-vna.compression.workers")]
    [InlineData("akka-vna.dicom.peers = [{\n ae-title = CT1\n permissions = [store, fly]\n}]", "akka-vna.dicom.peers[1].permissions: 'fly' is not one of echo, store, find, get, move")]
    [InlineData("akka-vna.dicom.peers = [{\n ae-title = CT1\n hosts = [\"10.1.2.0/33\"]\n}]", "akka-vna.dicom.peers[1].hosts: '10.1.2.0/33' is not an address or a network")]
    [InlineData("akka-vna.dicom.peers = [{\n ae-title = \"A\\\\B\"\n}]", "akka-vna.dicom.peers[1].ae-title must be an AE title")]
    [InlineData("akka-vna.dicom.peers = [{\n ae-title = VIEWER\n move-destinations = [PACS9]\n}]", "akka-vna.dicom.peers[1].move-destinations: 'PACS9' is not a destination")]
    [InlineData("akka-vna.http.auth.enabled = on", "akka-vna.http.auth.issuer must name the token issuer")]
    [InlineData("akka-vna.http.auth { enabled = on\n issuer = x }", "akka-vna.http.auth.audience must name this archive")]
    [InlineData("akka-vna.http.auth { enabled = on\n issuer = x\n audience = y }", "set exactly one of jwks-file and jwks-url")]
    [InlineData("akka-vna.http.auth { enabled = on\n issuer = x\n audience = y\n jwks-url = \"ftp://keys\" }", "akka-vna.http.auth.jwks-url: 'ftp://keys' is not an http or https URL")]
    [InlineData("akka-vna.http.auth { enabled = on\n issuer = x\n audience = y\n jwks-file = /nonexistent/jwks.json }", "akka-vna.http.auth.jwks-file: /nonexistent/jwks.json does not exist")]
    [InlineData("akka-vna.http.auth { enabled = on\n issuer = x\n audience = y\n jwks-url = \"https://idp/keys\"\n scopes.read = [] }", "akka-vna.http.auth.scopes.read must list at least one scope")]
    [InlineData("akka-vna.http.https.enabled = on", "akka-vna.http.https: set certificate and key")]
    [InlineData("akka-vna.http.cors.origins = [\"https://viewer.example/app\"]", "akka-vna.http.cors.origins: 'https://viewer.example/app' is not an origin")]
    [InlineData("akka-vna.retrieve.destinations { PACS2 { \n host = h\n port = 2762\n tls = on\n } }", "akka-vna.retrieve.destinations.PACS2.tls = on needs akka-vna.dicom.tls")]
    [InlineData("akka-vna.dicom.peers = [{\n ae-title = CT1\n certificate-subject = \"not a name\"\n}]", "akka-vna.dicom.peers[1].certificate-subject: 'not a name' is not a distinguished name")]
    [InlineData("akka-vna.audit.syslog.transport = tcp", "akka-vna.audit.syslog.transport must be none, udp (RFC 5426) or tls (RFC 5425)")]
    [InlineData("akka-vna.audit.file = \"\"", "neither a file nor a syslog transport")]
    public void A_wrong_setting_is_named_in_the_error(string hocon, string setting)
    {
        var e = Assert.Throws<ArchiveConfigException>(() => ArchiveOptions.Load(null, hocon));
        Assert.Contains(setting, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void HTTP_is_open_by_default_and_auth_reads_its_issuer_keys_and_scopes()
    {
        var o = ArchiveOptions.Load(null);
        Assert.Null(o.HttpAuth);
        Assert.Null(o.Https);
        Assert.Null(o.Cors);
        var a = ArchiveOptions.Load(null, """
            akka-vna.http.auth {
              enabled = on
              issuer = "https://idp.example/realms/x"
              audience = ["akka-vna", "viewer-api"]
              jwks-url = "https://idp.example/realms/x/protocol/openid-connect/certs"
              scopes.admin = ["vna.admin"]
            }
            akka-vna.http.cors.origins = ["https://viewer.example", "http://localhost:3000"]
            """);
        var auth = a.HttpAuth!;
        Assert.Equal("https://idp.example/realms/x", auth.Issuer);
        Assert.Equal(["akka-vna", "viewer-api"], auth.Audiences);
        Assert.Equal(new Uri("https://idp.example/realms/x/protocol/openid-connect/certs"), auth.JwksUrl);
        Assert.Equal(["vna.admin"], auth.Scopes[HttpPermission.Admin]);
        Assert.Contains("system/ImagingStudy.read", auth.Scopes[HttpPermission.Read]);
        Assert.False(auth.OpenMetrics);
        Assert.Equal(["https://viewer.example", "http://localhost:3000"], a.Cors!.Origins);
    }

    [Fact]
    public void A_PostgreSQL_index_takes_the_journal_with_it_and_seed_nodes_are_addresses()
    {
        var o = ArchiveOptions.Load(null, """
            akka-vna.index.provider = postgresql
            akka-vna.postgresql.connection-string = "Host=db1;Database=archive"
            akka-vna.cluster.seed-nodes = ["10.0.0.1:4053", "akka.tcp://akka-vna@10.0.0.2:4053"]
            """);
        Assert.Equal("postgresql", o.IndexProvider);
        Assert.Equal("postgresql", o.JournalProvider);
        Assert.Equal(["akka.tcp://akka-vna@10.0.0.1:4053", "akka.tcp://akka-vna@10.0.0.2:4053"], o.SeedNodes);
        Assert.Equal("keep-majority", o.DowningStrategy);
        Assert.Equal("sqlite", ArchiveOptions.Load(null).JournalProvider);
    }

    [Fact]
    public void A_missing_or_malformed_file_is_a_configuration_error()
    {
        using var dir = new TempDir();
        Assert.Throws<ArchiveConfigException>(() => ArchiveOptions.Load(Path.Combine(dir.Path, "absent.conf")));
        string bad = Path.Combine(dir.Path, "bad.conf");
        File.WriteAllText(bad, "akka-vna { dicom { port = ");
        Assert.Throws<ArchiveConfigException>(() => ArchiveOptions.Load(bad));
    }

    [Fact]
    public void Further_stores_are_named_with_their_own_provider_and_the_S3_cache_and_acknowledge_mode_are_read()
    {
        var o = ArchiveOptions.Load(null, """
            akka-vna.data = "/srv/vna"
            akka-vna.blobs.path = "s3://hot-bucket/site-a"
            akka-vna.blobs.s3.acknowledge = after-local-commit
            akka-vna.blobs.s3.cache.max-size = 2GiB
            akka-vna.blobs.stores.cold.provider = s3
            akka-vna.blobs.stores.cold.s3.bucket = cold-bucket
            akka-vna.blobs.stores.cold.s3.endpoint = "http://10.0.0.5:7480"
            akka-vna.blobs.stores.old-nas.path = "/mnt/nas"
            """);
        Assert.Equal("s3", o.BlobProvider);
        Assert.Equal(("hot-bucket", "site-a/"), (o.S3!.Bucket, o.S3.Prefix));
        Assert.Equal(AkkaVna.Blobs.S3.S3Acknowledge.AfterLocalCommit, o.S3.Acknowledge);
        Assert.Equal(2L << 30, o.S3.CacheMaxBytes);
        Assert.Equal("/srv/vna/s3-cache", o.S3.CacheFolder);
        var cold = Assert.Single(o.BlobStores, s => s.Name == "cold");
        Assert.Equal(("s3", "cold-bucket", "http://10.0.0.5:7480", AkkaVna.Blobs.S3.S3Acknowledge.AfterUpload),
            (cold.Provider, cold.S3!.Bucket, cold.S3.Endpoint, cold.S3.Acknowledge));
        var nas = Assert.Single(o.BlobStores, s => s.Name == "old-nas");
        Assert.Equal(("filesystem", "/mnt/nas"), (nas.Provider, nas.Folder));
        Assert.Empty(ArchiveOptions.Load(null).BlobStores);
    }
}
