using System.Globalization;
using AkkaVna.Dicom.IO;
using AkkaVna.Dicom.Network.Replay;
using AkkaVna.Testing;
using Xunit.Abstractions;

namespace AkkaVna.Host.Tests.Serve;

/// <summary>
/// Issue 20's access control per peer, against dcmtk's tools: with unknown peers refused, a known AE title from an
/// allowed host may do what its permissions say and nothing else (0124H with the reason), an unknown AE title or a known
/// one from another host gets A-ASSOCIATE-RJ, and a C-MOVE may name only the peer's destinations.
/// </summary>
public sealed class PeerAccessTests(ITestOutputHelper output)
{
    private static readonly TimeSpan ToolTimeout = TimeSpan.FromMinutes(2);

    private static Tool.Result Echo(int port, string callingAE) =>
        Tool.Run(Tool.Dcmtk("echoscu"), ["-v", "-aet", callingAE, "-aec", "AKKAVNA", "127.0.0.1", port.ToString(CultureInfo.InvariantCulture)], ToolTimeout);

    [Fact]
    public void Known_peers_do_what_their_permissions_say_and_unknown_or_misplaced_ones_are_refused()
    {
        using var dir = new TempDir();
        string data = ArchiveServer.NewDataFolder(dir, ArchiveServer.Sqlite);
        int port = Ports.Free();
        // The archive is its own move destination (AKKAVNA), so a permitted C-MOVE really sends (its sub-association calls
        // itself, a known peer that may store); ELSEWHERE is configured but not the reader's.
        string config = $$"""
            akka-vna.dicom.accept-unknown-peers = off
            akka-vna.retrieve.destinations {
              AKKAVNA { host = "127.0.0.1", port = {{port}} }
              ELSEWHERE { host = "127.0.0.1", port = {{Ports.Free()}} }
            }
            akka-vna.dicom.peers = [
              {
                ae-title = "STORER"
                hosts = ["127.0.0.1"]
                permissions = [echo, store]
              }
              {
                ae-title = "READER"
                hosts = ["127.0.0.0/8", "::1"]
                permissions = [find, get, move]
                move-destinations = ["AKKAVNA"]
              }
              {
                ae-title = "FARAWAY"
                hosts = ["10.9.9.9"]
                permissions = [echo, store, find, get, move]
              }
              {
                ae-title = "AKKAVNA"
                hosts = ["127.0.0.1"]
                permissions = [store]
              }
            ]
            """;
        var files = ReplaySources.Generate(new GeneratorOptions(1, 3, "CT", 64, 64, Seed: 20), dir.File("ct")).Select(f => StoreFile.Read(f.Path)).ToList();
        string study;
        using (var file = DicomFile.Open(files[0].Path)) study = file.Dataset.GetString(AkkaVna.Dicom.DicomTags.StudyInstanceUID)!;
        string storeConfig = Storescu.WriteConfig(dir, files);
        using var server = new ArchiveServer(data, config, dicomPort: port);

        // Association level: an unknown AE title, and a known one from a host its entry does not allow, are rejected.
        var unknown = Echo(port, "STRANGER");
        Assert.True(unknown.ExitCode != 0 && (unknown.StdOut + unknown.StdErr).Contains("Association Rejected", StringComparison.Ordinal), unknown.StdOut + unknown.StdErr);
        var faraway = Echo(port, "FARAWAY");
        Assert.True(faraway.ExitCode != 0 && (faraway.StdOut + faraway.StdErr).Contains("Association Rejected", StringComparison.Ordinal), faraway.StdOut + faraway.StdErr);
        Assert.Contains("calling AE title 'STRANGER' is not a known peer", server.Output, StringComparison.Ordinal);
        Assert.Contains("calling AE title 'FARAWAY' may not associate from 127.0.0.1", server.Output, StringComparison.Ordinal);

        // STORER: echo and store, nothing else.
        Assert.Equal(0, Echo(port, "STORER").ExitCode);
        var stored = Storescu.Send(storeConfig, port, files, 1, ToolTimeout, "-aet", "STORER").Single();
        Assert.All(Storescu.Responses(stored).Values, s => Assert.Equal("Success", s));
        var storerFind = QueryRetrieveTools.Find(null, port, false, ["QueryRetrieveLevel=STUDY", $"StudyInstanceUID={study}"], "-aet", "STORER", "-d");
        Assert.NotEqual("Success", storerFind.FinalStatus);
        Assert.Empty(storerFind.DataSets);
        var storerGet = QueryRetrieveTools.Get(null, port, dir.File("storer-get"), ["QueryRetrieveLevel=STUDY", $"StudyInstanceUID={study}"], "-aet", "STORER", "-d");
        Assert.NotEqual("Success", storerGet.FinalStatus);
        Assert.Empty(Directory.GetFiles(dir.File("storer-get"), "*.dcm", SearchOption.AllDirectories).Concat(Directory.GetFiles(dir.File("storer-get"), "CT*")));

        // READER: no echo (its Verification context is rejected), no store; find, get, and move to its own destination only.
        Assert.NotEqual(0, Echo(port, "READER").ExitCode);
        var readerStore = Storescu.Send(storeConfig, port, files.Take(1).ToList(), 1, ToolTimeout, "-aet", "READER", "-d").Single(); // -d: the Error Comment
        Assert.All(Storescu.Responses(readerStore).Values, s => Assert.NotEqual("Success", s));
        var found = QueryRetrieveTools.Find(null, port, false, ["QueryRetrieveLevel=STUDY", $"StudyInstanceUID={study}"], "-aet", "READER");
        Assert.Equal("Success", found.FinalStatus);
        Assert.Single(found.DataSets);
        var got = QueryRetrieveTools.Get(null, port, dir.File("reader-get"), ["QueryRetrieveLevel=STUDY", $"StudyInstanceUID={study}"], "-aet", "READER");
        Assert.True(got.FinalStatus == "Success", got.Output);
        Assert.Equal(files.Count, QueryRetrieveTools.Received(dir.File("reader-get")).Count);
        var moved = QueryRetrieveTools.Move(null, port, "AKKAVNA", ["QueryRetrieveLevel=STUDY", $"StudyInstanceUID={study}"], false, "-aet", "READER");
        Assert.True(moved.Code == 0 && moved.Count("Completed") == files.Count, moved.Output);
        var elsewhere = QueryRetrieveTools.Move(null, port, "ELSEWHERE", ["QueryRetrieveLevel=STUDY", $"StudyInstanceUID={study}"], false, "-aet", "READER");
        Assert.True(elsewhere.Code == 0x0124, elsewhere.Output); // Refused: not authorized

        // Each refusal said why, in the log.
        foreach (var why in new[] { "READER from 127.0.0.1 may not store here", "STORER from 127.0.0.1 may not query (C-FIND) here",
                     "STORER from 127.0.0.1 may not retrieve (C-GET) here", "READER from 127.0.0.1 may not have instances moved to ELSEWHERE" })
            Assert.True(server.Output.Contains(why, StringComparison.Ordinal) || storerFind.Output.Contains(why, StringComparison.Ordinal)
                || storerGet.Output.Contains(why, StringComparison.Ordinal) || elsewhere.Output.Contains(why, StringComparison.Ordinal)
                || (readerStore.StdOut + readerStore.StdErr).Contains(why, StringComparison.Ordinal), $"no trace of '{why}'");
        output.WriteLine(storerFind.Output);
        Assert.Equal(0, server.Stop());
    }
}
