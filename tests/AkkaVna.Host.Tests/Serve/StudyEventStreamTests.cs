using AkkaVna.Dicom.IO;
using Akka.Actor;
using Akka.Persistence.Query;
using Akka.Streams;
using Akka.Streams.Dsl;
using AkkaVna.Dicom.Network.Scu;
using AkkaVna.Testing;
using AkkaVna.Actors.Logging;
using AkkaVna.Actors.Studies;
using AkkaVna.Core.Studies;
using AkkaVna.Host;

namespace AkkaVna.Host.Tests.Serve;

/// <summary>The study events a node journals, read back as one ordered stream (what later features subscribe to).</summary>
public sealed class StudyEventStreamTests
{
    [Fact]
    public async Task A_reader_gets_every_study_event_in_order_with_the_attributes_and_blob_keys()
    {
        using var dir = new TempDir();
        string data = Path.Combine(dir.Path, "data");
        var files = Instances.WriteStudy(Path.Combine(dir.Path, "s"), 3, 4096).Select(StoreFile.Read).ToList();
        using (var server = new ArchiveServer(data, "akka-vna.studies.quiet-period = 2s\nakka-vna.studies.stability-poll = 200ms\n"))
        {
            var r = Storescu.Send(Storescu.WriteConfig(dir, files), server.DicomPort, files, 1, TimeSpan.FromMinutes(2)).Single();
            Assert.All(Storescu.Responses(r).Values, s => Assert.Equal("Success", s));
            string study = IngestTests.StudyOf(files[0].Path);
            var until = DateTime.UtcNow.AddSeconds(30);
            await using (var index = await ArchiveServer.OpenIndexAsync(data))
                while ((await index.GetStudyAsync(study, CancellationToken.None))?.Stable != true && DateTime.UtcNow < until) await Task.Delay(100);
            Assert.Equal(0, server.Stop());
        }

        var journal = Adapters.CreateJournal(ArchiveServer.OptionsFor(data));
        using var system = ActorSystem.Create("reader", ArchiveNode.PersistenceConfig(journal));
        try
        {
            var envelopes = await StudyEventStream.Current(system, journal.ReadJournalPluginId, Offset.NoOffset()).RunWith(Sink.Seq<EventEnvelope>(), system.Materializer());
            var events = envelopes.Select(e => e.Event).ToList();
            // Three instances and the study's stabilization last. On a loaded machine a pause longer than the quiet period
            // between two instances stabilizes the study early and the next one reopens it: those come in pairs.
            var stored = events.OfType<InstanceStored>().ToList();
            Assert.Equal(3, stored.Count);
            var lifecycle = events.Where(e => e is not InstanceStored).Select(e => e.GetType().Name).ToList();
            Assert.Equal(Enumerable.Range(0, lifecycle.Count).Select(i => i % 2 == 0 ? nameof(StudyStabilized) : nameof(StudyReopened)), lifecycle);
            Assert.Equal(files.Select(f => f.SopInstanceUid).Order(), stored.Select(s => s.Instance.Header.SopInstanceUid).Order());
            Assert.All(stored, s => Assert.EndsWith(s.Instance.Header.SopInstanceUid + ".dcm", s.Instance.Blob.Key, StringComparison.Ordinal));
            Assert.IsType<StudyStabilized>(events[^1]);
            Assert.Equal(envelopes.Select(e => e.Offset).Order(), envelopes.Select(e => e.Offset));
            Assert.All(envelopes, e => Assert.StartsWith("study-", e.PersistenceId, StringComparison.Ordinal));
        }
        finally
        {
            await system.Terminate();
        }
    }
}
