using AkkaVna.Core.Model;
using AkkaVna.Core.Ports;
using static AkkaVna.Testing.Samples;
using AkkaVna.Core.Studies;

namespace AkkaVna.Core.Tests.Studies;

public sealed class StudyStateTests
{
    private static readonly TimeSpan Quiet = TimeSpan.FromMinutes(5);

    private static StudyState With(params StoredInstance[] instances)
    {
        var s = StudyState.Empty(Study);
        foreach (var i in instances)
            foreach (var e in s.Decide(i, ConflictPolicy.Reject).Events) s = s.Apply(e);
        return s;
    }

    [Fact]
    public void A_new_instance_is_stored_and_counted()
    {
        var (outcome, events, _) = StudyState.Empty(Study).Decide(Instance("1.1"), ConflictPolicy.Reject);
        Assert.Equal(StoreOutcome.Stored, outcome);
        var stored = Assert.IsType<InstanceStored>(Assert.Single(events));
        var s = StudyState.Empty(Study).Apply(stored);
        Assert.Single(s.Instances);
        Assert.Equal(1, s.Series["1.2.3.4.1"].InstanceCount);
        Assert.Equal(1000, s.SizeBytes);
        Assert.Equal(["CT"], s.Modalities);
    }

    [Fact]
    public void The_same_content_again_is_a_duplicate_with_no_event()
    {
        var (outcome, events, _) = With(Instance("1.1")).Decide(Instance("1.1"), ConflictPolicy.Reject);
        Assert.Equal(StoreOutcome.Duplicate, outcome);
        Assert.Empty(events);
    }

    [Fact]
    public void The_same_content_in_other_bytes_is_a_duplicate_and_other_content_in_the_same_series_is_not()
    {
        // Sent by another gateway or in another uncompressed syntax: other blob bytes, the same content checksum.
        var s = With(Instance("1.1") with { ContentSha256 = "c1" });
        Assert.Equal(StoreOutcome.Duplicate, s.Decide(Instance("1.1", sha: "bb") with { ContentSha256 = "c1" }, ConflictPolicy.Reject).Outcome);
        Assert.Equal(StoreOutcome.Rejected, s.Decide(Instance("1.1") with { ContentSha256 = "c2" }, ConflictPolicy.Reject).Outcome);
        // An instance journaled before content checksums is compared by its bytes.
        var old = With(Instance("1.1"));
        Assert.Equal(StoreOutcome.Duplicate, old.Decide(Instance("1.1") with { ContentSha256 = "c1" }, ConflictPolicy.Reject).Outcome);
        Assert.Equal(StoreOutcome.Rejected, old.Decide(Instance("1.1", sha: "bb") with { ContentSha256 = "c1" }, ConflictPolicy.Reject).Outcome);
    }

    [Fact]
    public void A_withdrawn_instance_leaves_the_study_and_the_latest_header_falls_back_to_another_series()
    {
        var s = With(Instance("1.1"), Instance("1.2", series: "1.2.3.4.2"));
        Assert.Equal("1.2", s.Latest!.SopInstanceUid);
        s = s.Apply(new InstanceWithdrawn(Study, "1.2.3.4.2", "1.2", "archived in study 9.9"));
        Assert.Equal(["1.1"], s.Instances.Keys);
        Assert.Equal(["1.2.3.4.1"], s.Series.Keys);
        Assert.Equal(1000, s.SizeBytes);
        Assert.Equal("1.1", s.Latest!.SopInstanceUid);
        s = s.Apply(new InstanceWithdrawn(Study, "1.2.3.4.1", "1.1", "archived in study 9.9"));
        Assert.Empty(s.Instances);
        Assert.Null(s.Latest);
        // The same SOP Instance UID sent again is a new instance to this study (the index decides again).
        Assert.Equal(StoreOutcome.Stored, s.Decide(Instance("1.1"), ConflictPolicy.Reject).Outcome);
    }

    [Fact]
    public void Different_content_is_rejected_with_a_reason_by_default()
    {
        var (outcome, events, reason) = With(Instance("1.1")).Decide(Instance("1.1", sha: "bb"), ConflictPolicy.Reject);
        Assert.Equal(StoreOutcome.Rejected, outcome);
        Assert.Empty(events);
        Assert.Contains("already archived with different content", reason);
    }

    [Fact]
    public void Different_content_replaces_under_the_overwrite_policy_and_moves_series_counts()
    {
        var s = With(Instance("1.1"), Instance("1.2"));
        var (outcome, events, _) = s.Decide(Instance("1.1", sha: "bb", series: "1.2.3.4.2"), ConflictPolicy.Overwrite);
        Assert.Equal(StoreOutcome.Replaced, outcome);
        var replaced = Assert.IsType<InstanceReplaced>(Assert.Single(events));
        Assert.Equal("1.2.3.4.1", replaced.PreviousSeriesInstanceUid);
        s = s.Apply(replaced);
        Assert.Equal(2, s.Instances.Count);
        Assert.Equal(1, s.Series["1.2.3.4.1"].InstanceCount);
        Assert.Equal(1, s.Series["1.2.3.4.2"].InstanceCount);
        Assert.StartsWith("bb", s.Instances["1.1"].Sha256, StringComparison.Ordinal);
        Assert.Equal(2000, s.SizeBytes);
    }

    [Fact]
    public void A_study_becomes_stable_once_after_its_quiet_period_and_a_late_instance_reopens_it()
    {
        var t0 = new DateTimeOffset(2026, 11, 22, 10, 0, 0, TimeSpan.Zero);
        var s = With(Instance("1.1", at: t0));
        Assert.Equal(t0 + Quiet, s.StableDue(Quiet));
        Assert.Null(s.DecideStability(t0 + Quiet - TimeSpan.FromSeconds(1), Quiet));
        var stable = s.DecideStability(t0 + Quiet, Quiet);
        Assert.NotNull(stable);
        s = s.Apply(stable);
        Assert.True(s.Stable);
        Assert.Null(s.StableDue(Quiet));
        Assert.Null(s.DecideStability(t0 + Quiet * 10, Quiet)); // fires once

        var (outcome, events, _) = s.Decide(Instance("1.2", at: t0 + Quiet * 2), ConflictPolicy.Reject);
        Assert.Equal(StoreOutcome.Stored, outcome);
        Assert.IsType<StudyReopened>(events[0]);
        Assert.IsType<InstanceStored>(events[1]);
        foreach (var e in events) s = s.Apply(e);
        Assert.False(s.Stable);
        Assert.Equal(t0 + Quiet * 3, s.StableDue(Quiet));
    }

    [Fact]
    public void An_instance_of_another_study_is_a_programming_error()
    {
        Assert.Throws<ArgumentException>(() => StudyState.Empty(Study).Decide(Instance("1.1", study: "9.9"), ConflictPolicy.Reject));
    }

    [Fact]
    public void A_compressed_instance_keeps_its_identity_and_the_study_its_counts_only_its_size_changes_and_the_original_waits_for_deletion()
    {
        var at = new DateTimeOffset(2026, 11, 22, 10, 0, 0, TimeSpan.Zero);
        var original = Instance("1.1") with { ContentSha256 = "cc" + new string('0', 62) };
        var s = With(original);
        s = s.Apply(new StudyStabilized(Study, at));
        Assert.Equal(at + TimeSpan.FromMinutes(10), s.CompressionDue(TimeSpan.FromMinutes(10)));
        var compressed = original with { Blob = new BlobRef(BlobRef.PrimaryStore, "abc/x/1.1.jpegls.dcm", "jpegls"), Size = 400, Sha256 = "dd" + new string('0', 62),
            Header = original.Header with { TransferSyntaxUid = "1.2.840.10008.1.2.4.80" } };
        s = s.Apply(new InstanceCompressed(compressed, original.Blob, original.Sha256, original.Size, original.Header.TransferSyntaxUid));
        Assert.Equal(400, s.SizeBytes);
        Assert.Equal(compressed.Blob, s.Instances["1.1"].Blob);
        Assert.True(s.Stable); // compression neither reopens the study nor counts as a receipt
        Assert.Equal([original.Blob], s.ObsoleteBlobs);
        // A resend of the original is still the same instance (its content checksum), not a conflict.
        Assert.Equal(StoreOutcome.Duplicate, s.Decide(original, ConflictPolicy.Reject).Outcome);
        s = s.Apply(new OriginalsDeleted(Study, [original.Blob])).Apply(new StudyCompressed(Study, at.AddMinutes(11)));
        Assert.Empty(s.ObsoleteBlobs);
        Assert.Null(s.CompressionDue(TimeSpan.FromMinutes(10)));
        // A new instance makes a pass due again once the study is stable again.
        foreach (var e in s.Decide(Instance("1.2", at: at.AddHours(1)), ConflictPolicy.Reject).Events) s = s.Apply(e);
        Assert.Null(s.CompressionDue(TimeSpan.FromMinutes(10)));
        s = s.Apply(new StudyStabilized(Study, at.AddHours(2)));
        Assert.Equal(at.AddHours(2).AddMinutes(10), s.CompressionDue(TimeSpan.FromMinutes(10)));
        s = s.Apply(new InstanceCompressionRefused(Study, "1.2", "ee", "bits above Bits Stored"));
        Assert.Equal("ee", s.CompressionRefused["1.2"]);
    }

    [Fact]
    public void A_kept_original_is_not_obsolete_until_its_instance_is_replaced()
    {
        var at = new DateTimeOffset(2026, 12, 3, 10, 0, 0, TimeSpan.Zero);
        var original = Instance("1.1") with { ContentSha256 = "cc" + new string('0', 62) };
        var s = With(original).Apply(new StudyStabilized(Study, at));
        var compressed = original with { Blob = new BlobRef(BlobRef.PrimaryStore, "abc/x/1.1.jpegls.dcm", "jpegls"), Size = 400, Sha256 = "dd" + new string('0', 62),
            Header = original.Header with { TransferSyntaxUid = "1.2.840.10008.1.2.4.80" } };
        s = s.Apply(new InstanceCompressed(compressed, original.Blob, original.Sha256, original.Size, original.Header.TransferSyntaxUid) { OriginalKept = true });
        Assert.Empty(s.ObsoleteBlobs);
        var kept = Assert.Single(s.KeptOriginals.Values);
        Assert.Equal(new KeptBlob(Study, "1.1", original.Blob, original.Size, original.Sha256, original.Header.TransferSyntaxUid), kept);
        Assert.Equal(400, s.SizeBytes); // the study's size is what it serves
        // Replaced by new content (conflict policy overwrite): the kept original goes with the instance it belonged to.
        var replacement = Instance("1.1", sha: "ee") with { ContentSha256 = "ff" + new string('0', 62), Blob = new BlobRef(BlobRef.PrimaryStore, "abc/x/1.1.v2.dcm") };
        foreach (var e in s.Decide(replacement, ConflictPolicy.Overwrite).Events) s = s.Apply(e);
        Assert.Empty(s.KeptOriginals);
        Assert.Contains(original.Blob, s.ObsoleteBlobs);
    }

    [Fact]
    public void A_moved_instance_keeps_everything_but_its_store_its_kept_original_moves_with_it_and_the_old_copies_wait_for_deletion()
    {
        var at = new DateTimeOffset(2026, 12, 3, 10, 0, 0, TimeSpan.Zero);
        var original = Instance("1.1") with { ContentSha256 = "cc" + new string('0', 62) };
        var s = With(original, Instance("1.2")).Apply(new StudyStabilized(Study, at));
        var compressed = original with { Blob = new BlobRef(BlobRef.PrimaryStore, "abc/x/1.1.jpegls.dcm", "jpegls"), Size = 400, Sha256 = "dd" + new string('0', 62) };
        s = s.Apply(new InstanceCompressed(compressed, original.Blob, original.Sha256, original.Size, original.Header.TransferSyntaxUid) { OriginalKept = true });
        var before = s;
        var cold = compressed with { Blob = compressed.Blob with { Store = "cold" } };
        s = s.Apply(new InstanceMoved(cold, compressed.Blob) { KeptPreviousBlob = original.Blob, KeptBlob = original.Blob with { Store = "cold" } });
        Assert.Equal(cold.Blob, s.Instances["1.1"].Blob);
        Assert.Equal((before.Instances["1.1"].Sha256, before.Instances["1.1"].Size, before.SizeBytes, before.Stable), (s.Instances["1.1"].Sha256, s.Instances["1.1"].Size, s.SizeBytes, s.Stable));
        Assert.Equal("cold", s.KeptOriginals["1.1"].Blob.Store);
        Assert.Equal([compressed.Blob, original.Blob], s.ObsoleteBlobs);
        Assert.Equal(before.Instances["1.2"], s.Instances["1.2"]);
        // A move recorded for an instance that has left the study changes nothing.
        Assert.Same(s, s.Apply(new InstanceMoved(Instance("9.9"), Instance("9.9").Blob)));
    }
}
