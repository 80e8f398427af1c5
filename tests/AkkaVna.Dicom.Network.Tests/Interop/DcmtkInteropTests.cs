using System.Globalization;
using System.Text;
using AkkaVna.Dicom.IO;
using AkkaVna.Dicom.Network.Scp;
using AkkaVna.Dicom.Network.Scu;
using AkkaVna.Testing;
using Xunit.Abstractions;

namespace AkkaVna.Dicom.Network.Tests.Interop;

/// <summary>
/// AkkaVna against dcmtk, the independent peer: echoscu and storescu against <c>akka-vna receive</c>, and <c>akka-vna
/// echo</c>/<c>store</c> against storescp. storescp cannot bind to loopback only, so it runs in a private network
/// namespace (unshare -n) together with its client.
/// </summary>
public sealed class DcmtkInteropTests(ITestOutputHelper output)
{
    private static readonly TimeSpan ToolTimeout = TimeSpan.FromMinutes(3);

    /// <summary>
    /// Transfer syntaxes storescp 3.6.7 does not accept with +xa: those added to the standard after 2022 (HTJ2K, deflated
    /// image frames) and JPEG Lossless Process 14 with a selection value other than 1 (its +xa list has only SV1).
    /// </summary>
    private static readonly HashSet<string> StorescpSyntaxRefusals =
        ["1.2.840.10008.1.2.4.201", "1.2.840.10008.1.2.4.202", "1.2.840.10008.1.2.4.203", "1.2.840.10008.1.2.8.1", "1.2.840.10008.1.2.4.57"];

    /// <summary>What storescp refuses to negotiate: the syntaxes above, the DICOMDIR class (media only, never sent over a network) and private SOP classes.</summary>
    private static bool StorescpRefuses(StoreFile f) =>
        StorescpSyntaxRefusals.Contains(f.TransferSyntax.Uid) || f.SopClassUid == "1.2.840.10008.1.3.10" || Dictionary.DicomUidRegistry.Lookup(f.SopClassUid) is null;

    /// <summary>Starts <c>akka-vna receive</c> on a port it picks itself (0), read back from its ready line.</summary>
    private static ServerProcess StartReceive(string folder, out int port, params string[] options)
    {
        var server = new ServerProcess("dotnet", [AkkaVnaCli.Dll, "receive", "--port", "0", "--out", folder, "--bind", "127.0.0.1", "--timeout", "20", .. options], "listening on");
        port = server.ReadyPort("127.0.0.1:");
        return server;
    }

    [Fact]
    public void Echoscu_verifies_akka_vna_receive()
    {
        using var dir = new TempDir();
        using var server = StartReceive(dir.Path, out int port);
        var r = Tool.Run(Tool.Dcmtk("echoscu"), ["-v", "-aec", "AKKAVNA", "127.0.0.1", port.ToString(CultureInfo.InvariantCulture)]);
        Assert.True(r.ExitCode == 0, r.StdErr + r.StdOut);
        Assert.Contains("Received Echo Response (Success)", r.StdErr + r.StdOut);
    }

    [Fact]
    public void Echoscu_with_an_unknown_called_AE_is_rejected_with_called_AE_not_recognized()
    {
        using var dir = new TempDir();
        using var server = StartReceive(dir.Path, out int port);
        var r = Tool.Run(Tool.Dcmtk("echoscu"), ["-v", "-aec", "NOT-ME", "127.0.0.1", port.ToString(CultureInfo.InvariantCulture)]);
        Assert.NotEqual(0, r.ExitCode);
        Assert.Contains("Called AE Title Not Recognized", r.StdErr + r.StdOut);
    }

    [Fact]
    public void A_calling_AE_outside_the_allowed_list_is_rejected_with_calling_AE_not_recognized()
    {
        using var dir = new TempDir();
        using var server = StartReceive(dir.Path, out int port, "--allow-calling-ae", "GATEWAY1", "--allow-calling-ae", "GATEWAY2");
        var refused = Tool.Run(Tool.Dcmtk("echoscu"), ["-v", "-aet", "INTRUDER", "-aec", "AKKAVNA", "127.0.0.1", port.ToString(CultureInfo.InvariantCulture)]);
        Assert.NotEqual(0, refused.ExitCode);
        Assert.Contains("Calling AE Title Not Recognized", refused.StdErr + refused.StdOut);
        var admitted = Tool.Run(Tool.Dcmtk("echoscu"), ["-aet", "GATEWAY2", "-aec", "AKKAVNA", "127.0.0.1", port.ToString(CultureInfo.InvariantCulture)]);
        Assert.True(admitted.ExitCode == 0, admitted.StdErr);
    }

    [Fact]
    public void Akka_vna_echo_verifies_dcmtk_storescp()
    {
        using var dir = new TempDir();
        var r = InNetworkNamespace(dir, $"""
            {StartStorescp(dir, 11112)}
            {AkkaVnaCli.ShellCommand} echo 127.0.0.1 11112 --called-ae STORESCP
            """);
        Assert.True(r.ExitCode == 0, r.StdOut + r.StdErr);
        Assert.Contains("Success (0000H)", r.StdOut);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(4)]
    public void Storescu_sends_every_corpus_file_to_receive_and_each_arrives_dataset_equal(int associations)
    {
        using var dir = new TempDir();
        var files = Storescu.SendableCorpus.Value;
        string config = Storescu.WriteConfig(dir, files);
        string received = Path.Combine(dir.Path, "received");
        using var server = StartReceive(received, out int port);

        var cannotSend = new List<string>();
        int compared = 0;
        // Corpus files share SOP Instance UIDs (one data set in many encodings): send them in rounds of distinct UIDs.
        foreach (var round in Storescu.Rounds(files))
        {
            foreach (var f in Directory.EnumerateFiles(received)) File.Delete(f);
            foreach (var r in Storescu.Send(config, port, round, associations, ToolTimeout))
                cannotSend.AddRange(Storescu.RefusedByDcmtk(r, files));
            foreach (var f in round)
            {
                if (cannotSend.Any(l => l.Contains(f.Path, StringComparison.Ordinal)) || Storescu.UnknownToDcmtk367.Contains(f.TransferSyntax.Uid)) continue;
                string path = Path.Combine(received, FolderStoreHandler.FileNameFor(f.SopInstanceUid));
                Assert.True(File.Exists(path), $"{f.Path} was not received\n{server.Output}");
                Storescu.AssertSameDataSet(f.Path, path);
                compared++;
            }
        }
        output.WriteLine($"{compared} files received dataset-equal; dcmtk could not read {cannotSend.Count}: {string.Join("; ", cannotSend)}");
        // Every file was either received dataset-equal or refused by dcmtk itself before sending; most were received.
        int refused = files.Count(f => cannotSend.Any(l => l.Contains(f.Path, StringComparison.Ordinal)) || Storescu.UnknownToDcmtk367.Contains(f.TransferSyntax.Uid));
        Assert.Equal(files.Count, compared + refused);
        Assert.True(compared >= 90, $"only {compared} of {files.Count} files were compared");
        Assert.Equal(0, server.Stop());
    }

    [Theory]
    [InlineData(1)]
    [InlineData(4)]
    public void Akka_vna_store_sends_the_corpus_to_storescp_and_storescp_writes_each_dataset_equal(int associations)
    {
        using var dir = new TempDir();
        var files = Storescu.SendableCorpus.Value;
        string list = Path.Combine(dir.Path, "files.txt");
        File.WriteAllLines(list, files.Select(f => f.Path));
        var r = InNetworkNamespace(dir, $"""
            {StartStorescp(dir, 11112)}
            set +e
            xargs -d '\n' -a '{list}' {AkkaVnaCli.ShellCommand} store 127.0.0.1 11112 --called-ae STORESCP --associations {associations} --timeout 30
            echo "store exit code $?"
            """);
        output.WriteLine(r.StdOut + r.StdErr);
        // The only failures allowed are the presentation contexts storescp rejects.
        var failed = r.StdErr.Split('\n').Where(l => l.StartsWith("error: ", StringComparison.Ordinal)).ToList();
        foreach (var line in failed)
        {
            var file = files.SingleOrDefault(f => line.StartsWith("error: " + f.Path + ":", StringComparison.Ordinal));
            Assert.True(file is not null && StorescpRefuses(file) && line.Contains("accepted no presentation context", StringComparison.Ordinal),
                $"unexpected failure: {line}");
        }
        var expected = files.Where(f => !StorescpRefuses(f)).ToList();
        Assert.Contains($"{expected.Count} of {files.Count} file(s) stored", r.StdOut);

        // storescp wrote each instance (+B: the data set bit for bit as received). Every source has a received twin.
        var receivedFiles = Directory.GetFiles(Path.Combine(dir.Path, "scp")).ToList();
        Assert.Equal(expected.Count, receivedFiles.Count);
        var byUid = receivedFiles.ToLookup(p => StoreFile.Read(p).SopInstanceUid);
        foreach (var f in expected)
        {
            var candidates = byUid[f.SopInstanceUid].ToList();
            Assert.True(candidates.Count > 0, $"storescp did not write {f.Path}");
            using var source = DicomFile.Open(f.Path);
            Assert.True(candidates.Any(c => SameDataSet(source, c)), $"no file storescp wrote is dataset-equal to {f.Path}");
        }
        foreach (var p in receivedFiles)
        {
            var d = Tool.Run(Tool.Dcmtk("dcmdump"), ["-q", p]);
            Assert.True(d.ExitCode == 0, $"dcmdump rejects {p}: {d.StdErr}");
        }
    }

    private static bool SameDataSet(DicomFile source, string receivedPath)
    {
        using var received = DicomFile.Open(receivedPath);
        return DatasetAssert.Differences(source.Dataset, received.Dataset, "", ignoreVR: false).Count == 0;
    }

    /// <summary>Starts storescp (accepting every transfer syntax it knows, writing bit-preserved, unique file names) and waits for its port.</summary>
    private static string StartStorescp(TempDir dir, int port) => $"""
        mkdir -p '{dir.Path}/scp'
        {Tool.Dcmtk("storescp")} -aet STORESCP +xa +B +uf -od '{dir.Path}/scp' {port} > '{dir.Path}/storescp.log' 2>&1 &
        for i in $(seq 100); do (echo > /dev/tcp/127.0.0.1/{port}) 2>/dev/null && break; sleep 0.1; done
        """;

    private static Tool.Result InNetworkNamespace(TempDir dir, string script)
    {
        string path = dir.File("run.sh");
        File.WriteAllText(path, "set -eu\nip link set lo up\n" + script + "\nkill %1 2>/dev/null || true\nwait\n");
        return Tool.Run("unshare", ["-n", "bash", path], ToolTimeout);
    }
}
