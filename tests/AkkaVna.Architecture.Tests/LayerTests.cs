using System.Reflection;
using System.Xml.Linq;
using AkkaVna.Testing;
using NetArchTest.Rules;

namespace AkkaVna.Architecture.Tests;

/// <summary>
/// Who may reference whom (README, "Layout"): the core knows no Akka, ASP.NET, database driver or object-store SDK;
/// each adapter knows the core and nothing beside it; the front doors know the core (and, for DIMSE, the network stack);
/// the toolkit and the network stack know none of the archive; only the host (and the CLI on it) knows everything.
/// Checked twice: what each project file declares, and what each compiled assembly really references.
/// </summary>
public sealed class LayerTests
{
    /// <summary>The AkkaVna projects each project may reference (directly), and the frameworks and package prefixes it must not.</summary>
    private static readonly Dictionary<string, (string[] Projects, string[] Forbidden)> Rules = new()
    {
        ["AkkaVna.Dicom"] = ([], ["Akka", "Microsoft.AspNetCore", "Microsoft.Data", "Npgsql", "AWSSDK", "Amazon", "prometheus", "Prometheus"]),
        // Pixel data codecs: a library on the toolkit, knowing nothing of the archive.
        ["AkkaVna.Codecs"] = (["AkkaVna.Dicom"], ["Akka", "Microsoft.AspNetCore", "Microsoft.Data", "Npgsql", "AWSSDK", "Amazon", "prometheus", "Prometheus"]),
        ["AkkaVna.Dicom.Network"] = (["AkkaVna.Dicom"], ["Akka", "Microsoft.AspNetCore", "Microsoft.Data", "Npgsql", "AWSSDK", "Amazon", "prometheus", "Prometheus"]),
        ["AkkaVna.Core"] = (["AkkaVna.Dicom"], ["Akka", "Microsoft.AspNetCore", "Microsoft.Data", "Npgsql", "linq2db", "AWSSDK", "Amazon", "prometheus", "Prometheus"]),
        ["AkkaVna.Actors"] = (["AkkaVna.Core"], ["Microsoft.AspNetCore", "Microsoft.Data", "Npgsql", "AWSSDK", "Amazon", "prometheus", "Prometheus", "Akka.Persistence.Sql"]),
        ["AkkaVna.Index.Sqlite"] = (["AkkaVna.Core"], ["Akka", "Microsoft.AspNetCore", "Npgsql", "AWSSDK", "Amazon", "prometheus", "Prometheus"]),
        ["AkkaVna.Blobs.FileSystem"] = (["AkkaVna.Core"], ["Akka", "Microsoft.AspNetCore", "Microsoft.Data", "Npgsql", "AWSSDK", "Amazon", "prometheus", "Prometheus"]),
        ["AkkaVna.Blobs.S3"] = (["AkkaVna.Core"], ["Akka", "Microsoft.AspNetCore", "Microsoft.Data", "Npgsql", "prometheus", "Prometheus"]),
        ["AkkaVna.Index.PostgreSql"] = (["AkkaVna.Core"], ["Akka", "Microsoft.AspNetCore", "Microsoft.Data", "AWSSDK", "Amazon", "prometheus", "Prometheus"]),
        // The journal adapter is Akka.Persistence.Sql's plugin on SQLite or PostgreSQL: it may know both databases, nothing else.
        ["AkkaVna.Journal.Sql"] = (["AkkaVna.Core"], ["Microsoft.AspNetCore", "AWSSDK", "Amazon", "prometheus", "Prometheus"]),
        ["AkkaVna.Dimse"] = (["AkkaVna.Core", "AkkaVna.Dicom.Network"], ["Akka", "Microsoft.AspNetCore", "Microsoft.Data", "Npgsql", "AWSSDK", "Amazon", "prometheus", "Prometheus"]),
        ["AkkaVna.DicomWeb"] = (["AkkaVna.Core"], ["Akka", "Microsoft.Data", "Npgsql", "AWSSDK", "Amazon", "prometheus", "Prometheus"]),
    };

    public static TheoryData<string> Projects => [.. Rules.Keys];

    /// <summary>Whether a package or assembly name is <paramref name="family"/> or one of its family ("Akka" names Akka.Cluster, not AkkaVna).</summary>
    private static bool Names(string name, string family) =>
        name.Equals(family, StringComparison.OrdinalIgnoreCase) || name.StartsWith(family + ".", StringComparison.OrdinalIgnoreCase);

    private static string ProjectFile(string name) => Path.Combine(Corpus.RepoRoot, "src", name, name + ".csproj");

    [Theory]
    [MemberData(nameof(Projects))]
    public void A_project_file_declares_only_what_its_layer_may_reference(string project)
    {
        var (allowed, forbidden) = Rules[project];
        var xml = XDocument.Load(ProjectFile(project));
        var projects = xml.Descendants("ProjectReference").Select(e => Path.GetFileNameWithoutExtension(e.Attribute("Include")!.Value.Replace('\\', '/'))).ToList();
        Assert.True(projects.All(allowed.Contains), $"{project} references {string.Join(", ", projects.Except(allowed))}; its layer may reference only {string.Join(", ", allowed)}");
        var packages = xml.Descendants("PackageReference").Concat(xml.Descendants("FrameworkReference")).Select(e => e.Attribute("Include")!.Value).ToList();
        var bad = packages.Where(p => forbidden.Any(f => Names(p, f))).ToList();
        Assert.True(bad.Count == 0, $"{project} references {string.Join(", ", bad)}, which its layer must not");
    }

    [Theory]
    [MemberData(nameof(Projects))]
    public void A_compiled_assembly_references_only_what_its_layer_may(string project)
    {
        var (allowed, forbidden) = Rules[project];
        var assembly = Assembly.Load(project);
        var references = assembly.GetReferencedAssemblies().Select(a => a.Name!).ToList();
        // The toolkit is a library every layer may use (through the core, or itself).
        var archive = references.Where(r => r.StartsWith("AkkaVna", StringComparison.Ordinal) && r != "AkkaVna.Dicom").ToList();
        Assert.True(archive.All(allowed.Contains), $"{project} uses {string.Join(", ", archive.Except(allowed))}; its layer may use only {string.Join(", ", allowed)}");
        var bad = references.Where(r => forbidden.Any(f => Names(r, f))).ToList();
        Assert.True(bad.Count == 0, $"{project} uses {string.Join(", ", bad)}, which its layer must not");
    }

    [Fact]
    public void No_type_of_the_core_depends_on_Akka_ASP_NET_a_database_driver_or_an_object_store()
    {
        var result = Types.InAssembly(typeof(Core.StableHash).Assembly).ShouldNot()
            .HaveDependencyOnAny("Akka", "Microsoft.AspNetCore", "Microsoft.Data", "Npgsql", "LinqToDB", "Amazon", "Prometheus", "AkkaVna.Dicom.Network")
            .GetResult();
        Assert.True(result.IsSuccessful, "core types with forbidden dependencies: " + string.Join(", ", result.FailingTypeNames ?? []));
    }

    [Fact]
    public void Only_the_host_builds_adapters_and_nothing_but_the_CLI_references_the_host()
    {
        // The composition root is the host: no other source project references it.
        foreach (var project in Directory.EnumerateDirectories(Path.Combine(Corpus.RepoRoot, "src")).Select(Path.GetFileName).Where(p => p is not ("AkkaVna.Host" or "AkkaVna.Cli")))
        {
            var xml = XDocument.Load(ProjectFile(project!));
            Assert.DoesNotContain(xml.Descendants("ProjectReference"), e => e.Attribute("Include")!.Value.Contains("AkkaVna.Host", StringComparison.Ordinal));
        }
        // Every source project is covered by a rule (a new project must say what its layer may reference).
        var covered = Rules.Keys.Concat(["AkkaVna.Host", "AkkaVna.Cli"]).ToHashSet();
        Assert.All(Directory.EnumerateDirectories(Path.Combine(Corpus.RepoRoot, "src")).Select(Path.GetFileName), p => Assert.Contains(p!, covered));
    }

    [Fact]
    public void No_source_type_holds_static_mutable_state()
    {
        // Two nodes run side by side in one process: no static field that is neither readonly nor const (compiler-made ones aside).
        var offenders = Rules.Keys.Concat(["AkkaVna.Host"]).Select(Assembly.Load)
            .SelectMany(a => a.GetTypes())
            .SelectMany(t => t.GetFields(BindingFlags.Static | BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.DeclaredOnly)
                .Where(f => !f.IsInitOnly && !f.IsLiteral && !f.Name.Contains('<') && !t.Name.Contains('<'))
                .Select(f => $"{t.FullName}.{f.Name}"))
            .ToList();
        Assert.True(offenders.Count == 0, "static mutable fields: " + string.Join(", ", offenders));
    }
}
