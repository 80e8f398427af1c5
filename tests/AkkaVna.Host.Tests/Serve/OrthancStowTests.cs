using AkkaVna.Dicom.IO;
using System.Text.Json;
using AkkaVna.Dicom.Network.Scu;
using AkkaVna.Testing;
using Xunit.Abstractions;

namespace AkkaVna.Host.Tests.Serve;

/// <summary>
/// STOW-RS with Orthanc's DICOMweb plugin (Debian <c>orthanc-dicomweb</c>) as the client — a peer in the field that sends
/// multipart/related with a 73-character boundary — against an archive in the same private network namespace (Orthanc
/// cannot bind to loopback only).
/// </summary>
public sealed class OrthancStowTests(ITestOutputHelper output)
{
    private const int OrthancHttp = 8042, OrthancDicom = 4242;
    private const string Plugin = "/usr/share/orthanc/plugins/libOrthancDicomWeb.so";

    [Fact]
    public async Task Orthanc_stores_a_study_into_the_archive_over_STOW_RS()
    {
        Assert.True(File.Exists(Plugin), $"{Plugin} is missing: tests/run.sh installs orthanc-dicomweb");
        using var dir = new TempDir();
        using var network = new NetworkNamespace();
        using var server = new ArchiveServer(dir.File("data"), network: network);
        var files = Instances.WriteStudy(dir.File("study"), 3, 64 * 64 * 2, seed: 21).Select(StoreFile.Read).ToList();

        string config = dir.File("orthanc.json");
        File.WriteAllText(config, JsonSerializer.Serialize(new Dictionary<string, object>
        {
            ["Name"] = "stow-client", ["StorageDirectory"] = dir.File("storage"), ["IndexDirectory"] = dir.File("index"), ["DicomAet"] = "ORTHANC",
            ["DicomPort"] = OrthancDicom, ["HttpPort"] = OrthancHttp, ["RemoteAccessAllowed"] = false, ["AuthenticationEnabled"] = false,
            ["Plugins"] = new[] { Plugin },
            ["DicomWeb"] = new Dictionary<string, object>
            {
                ["Enable"] = true, ["Root"] = "/dicom-web/",
                ["Servers"] = new Dictionary<string, object> { ["akkavna"] = new[] { $"http://127.0.0.1:{server.HttpPort}/dicom-web/" } },
            },
        }));
        using var orthanc = network.Start("Orthanc", [config], null);
        network.WaitForPort(OrthancHttp, TimeSpan.FromSeconds(60));

        var ids = new List<string>();
        foreach (var f in files)
        {
            var upload = network.Run("curl", ["-s", "-f", "-X", "POST", "--data-binary", "@" + f.Path, $"http://127.0.0.1:{OrthancHttp}/instances"]);
            Assert.True(upload.ExitCode == 0, upload.StdErr + upload.StdOut);
            using var json = JsonDocument.Parse(upload.StdOut);
            ids.Add(json.RootElement.GetProperty("ID").GetString()!);
        }
        var stow = network.Run("curl", ["-s", "-w", "\nHTTP %{http_code}", "-X", "POST", "-d", JsonSerializer.Serialize(new { Resources = ids, Synchronous = true }),
            $"http://127.0.0.1:{OrthancHttp}/dicom-web/servers/akkavna/stow"], TimeSpan.FromMinutes(2));
        output.WriteLine(stow.StdOut);
        Assert.True(stow.StdOut.TrimEnd().EndsWith("HTTP 200", StringComparison.Ordinal), $"{stow.StdOut}\n{stow.StdErr}\n{orthanc.Output}\n{server.Output}");

        await using var index = await ArchiveServer.OpenIndexAsync(server.DataFolder);
        var rows = await ArchiveServer.ListAsync(index);
        Assert.Equal(files.Select(f => f.SopInstanceUid).Order(), rows.Select(r => r.SopInstanceUid).Order());
        await IngestTests.AssertArchivedAsync(server.DataFolder, files, rows);
        Assert.Equal(0, ArchiveServer.Verify(server.DataFolder).ExitCode);
    }
}
