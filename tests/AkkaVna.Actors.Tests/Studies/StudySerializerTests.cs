using Akka.Actor;
using static AkkaVna.Testing.Samples;
using AkkaVna.Actors.Studies;
using AkkaVna.Core.Model;
using AkkaVna.Core.Ports;
using AkkaVna.Core.Studies;

namespace AkkaVna.Actors.Tests.Studies;

public sealed class StudySerializerTests : IDisposable
{
    private readonly ActorSystem _system = ActorSystem.Create("serializer-test", "akka.loglevel = WARNING");
    private StudySerializer Serializer => new((ExtendedActorSystem)_system);

    private object RoundTrip(object message)
    {
        var bytes = Serializer.ToBinary(message);
        return Serializer.FromBinary(bytes, Serializer.Manifest(message));
    }

    public static TheoryData<object, string> Messages()
    {
        var at = new DateTimeOffset(2026, 11, 22, 10, 0, 0, TimeSpan.Zero);
        return new TheoryData<object, string>
        {
            { new InstanceStored(Instance("1.1")), "IS" },
            { new InstanceStored(Instance("1.1") with { ContentSha256 = "cc" + new string('1', 62) }), "IS" },
            { new InstanceWithdrawn(Study, "1.2.3.4.1", "1.1", "archived in study 9.9"), "IW" },
            { new InstanceReplaced(Instance("1.1", sha: "bb"), "aa", "1.2.3.4.1", new BlobRef("cold", "abc/1.2.3.4/1.2.3.4.1/1.1.dcm", BlobRef.Original, "archive")), "IR" },
            { new StudyStabilized(Study, at), "SS" },
            { new StudyReopened(Study, at), "SR" },
            { new StoreInstance(Instance("1.1") with { Header = Header("1.1") with { PatientName = null, Modality = null, SeriesNumber = null } }), "CS" },
            { new StoreInstance(Instance("1.1")) { CommitBy = at.AddSeconds(30) }, "CS" },
            { new StoreInstanceResult("1.1", StoreOutcome.Rejected, "why", null), "RS" },
            { new StoreInstanceResult("1.1", StoreOutcome.Duplicate, null, null, "ab12"), "RS" },
            { new StoreInstanceResult("1.1", StoreOutcome.Replaced, null, new BlobRef(BlobRef.PrimaryStore, "abc/1.1.dcm", "htj2k")), "RS" },
            { new CheckStability(Study), "CK" },
            { new GetStudySummary(Study), "GS" },
            { new StudySummary(Study, 2, 3, 4000, true, null, at, 7), "SU" },
            { new StudySummary(Study, 2, 3, 4000, false, at, null, 9) { Node = "akka.tcp://akka-vna@10.0.0.7:4053" }, "SU" },
            { StopStudy.Instance, "SP" },
            { new InstanceCompressed(Instance("1.1", sha: "dd") with { ContentSha256 = "cc" + new string('1', 62) }, new BlobRef(BlobRef.PrimaryStore, "abc/1.1.dcm"), "aa", 2000, "1.2.840.10008.1.2.1"), "IC" },
            { new InstanceCompressed(Instance("1.1", sha: "dd"), new BlobRef(BlobRef.PrimaryStore, "abc/1.1.dcm"), "aa", 2000, "1.2.840.10008.1.2.1") { OriginalKept = true }, "IC" },
            { new InstanceMoved(Instance("1.1", sha: "dd") with { Blob = new BlobRef("cold", "abc/1.1.dcm") }, new BlobRef(BlobRef.PrimaryStore, "abc/1.1.dcm")), "IM" },
            { new InstanceMoved(Instance("1.1", sha: "dd") with { Blob = new BlobRef("cold", "abc/1.1.jpegls.dcm", "jpegls") }, new BlobRef(BlobRef.PrimaryStore, "abc/1.1.jpegls.dcm", "jpegls"))
                { KeptPreviousBlob = new BlobRef(BlobRef.PrimaryStore, "abc/1.1.dcm"), KeptBlob = new BlobRef("cold", "abc/1.1.dcm") }, "IM" },
            { new InstanceCompressionRefused(Study, "1.1", "aa", "bits above Bits Stored"), "CR" },
            { new OriginalsDeleted(Study, [new BlobRef(BlobRef.PrimaryStore, "abc/1.1.dcm"), new BlobRef("cold", "abc/1.2.dcm")]), "OD" },
            { new StudyCompressed(Study, at), "SC" },
            { new CheckCompression(Study), "CC" },
        };
    }

    [Theory]
    [MemberData(nameof(Messages))]
    public void Every_message_round_trips_under_its_stable_manifest(object message, string manifest)
    {
        Assert.Equal(manifest, Serializer.Manifest(message));
        Assert.Equal(message, RoundTrip(message));
    }

    [Fact]
    public void A_state_snapshot_round_trips()
    {
        var s = StudyState.Empty(Study);
        foreach (var i in new[] { Instance("1.1"), Instance("1.2", series: "1.2.3.4.2") })
            foreach (var e in s.Decide(i, ConflictPolicy.Reject).Events) s = s.Apply(e);
        s = s.Apply(new StudyStabilized(Study, DateTimeOffset.FromUnixTimeMilliseconds(1_800_000_000_000)));
        var original = s.Instances["1.1"];
        s = s.Apply(new InstanceCompressed(Instance("1.1", sha: "dd") with { Blob = new BlobRef(BlobRef.PrimaryStore, "abc/1.1.jpegls.dcm", "jpegls") },
            original.Blob, original.Sha256, original.Size, "1.2.840.10008.1.2.1") { OriginalKept = true });
        Assert.Single(s.KeptOriginals);
        var back = Assert.IsType<StudyState>(RoundTrip(s));
        Assert.Equal(s.KeptOriginals.OrderBy(kv => kv.Key), back.KeptOriginals.OrderBy(kv => kv.Key));
        Assert.Equal(s.Instances.OrderBy(kv => kv.Key), back.Instances.OrderBy(kv => kv.Key));
        Assert.Equal(s.Series.OrderBy(kv => kv.Key), back.Series.OrderBy(kv => kv.Key));
        Assert.Equal((s.Latest, s.SizeBytes, s.LastReceived, s.Stable, s.StableAt), (back.Latest, back.SizeBytes, back.LastReceived, back.Stable, back.StableAt));
    }

    // Unit/study-serializer-v1.txt was written by the format-1 serializer (commit 2c5b176): journals and snapshots of that
    // version still recover.
    [Fact]
    public void Format_1_events_snapshots_and_results_still_read()
    {
        var golden = File.ReadAllLines(Path.Combine(AppContext.BaseDirectory, "study-serializer-v1.txt"))
            .Select(l => l.Split(' ')).ToDictionary(p => p[0], p => Convert.FromHexString(p[1]));
        var stored = Assert.IsType<InstanceStored>(Serializer.FromBinary(golden["IS"], "IS"));
        Assert.Equal(("1.2.3.4.5", "aa", 1000L, "GW1"), (stored.Instance.Header.SopInstanceUid, stored.Instance.Sha256, stored.Instance.Size, stored.Instance.CallingAE));
        Assert.Null(stored.Instance.ContentSha256);
        var state = Assert.IsType<StudyState>(Serializer.FromBinary(golden["ST"], "ST"));
        Assert.Equal("aa", state.Instances["1.2.3.4.5"].Sha256);
        Assert.Equal(new BlobRef(BlobRef.PrimaryStore, "abc/1.2.3/1.2.3.4/1.2.3.4.5.dcm"), state.Instances["1.2.3.4.5"].Blob);
        Assert.Null(state.Instances["1.2.3.4.5"].ContentSha256);
        var result = Assert.IsType<StoreInstanceResult>(Serializer.FromBinary(golden["RS"], "RS"));
        Assert.Equal(new StoreInstanceResult("1.2.3.4.5", StoreOutcome.Duplicate), result);
    }

    [Fact]
    public void Unknown_manifests_and_versions_are_refused_clearly()
    {
        Assert.Throws<System.Runtime.Serialization.SerializationException>(() => Serializer.FromBinary([1], "XX"));
        Assert.Throws<System.Runtime.Serialization.SerializationException>(() => Serializer.FromBinary([99], "CK"));
        Assert.Throws<ArgumentException>(() => Serializer.Manifest("not a study message"));
    }

    [Fact]
    public async Task The_actor_system_binds_the_protocol_to_this_serializer()
    {
        using var system = ActorSystem.Create("binding-test", StudySerializer.Binding);
        Assert.IsType<StudySerializer>(system.Serialization.FindSerializerFor(new InstanceStored(Instance("1.1"))));
        // Snapshots too: a snapshot left to the default (JSON) serializer could not be read back (regression).
        Assert.IsType<StudySerializer>(system.Serialization.FindSerializerFor(StudyState.Empty(Study)));
        await system.Terminate();
    }

    public void Dispose() => _system.Terminate().Wait(TimeSpan.FromSeconds(10));
}
