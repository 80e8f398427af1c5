using System.Collections.Immutable;
using AkkaVna.Core.Ingest;
using AkkaVna.Core.Model;
using AkkaVna.Core.Ports;

namespace AkkaVna.Core.Studies;

/// <summary>What the archive does with different content under a SOP Instance UID it already holds.</summary>
public enum ConflictPolicy
{
    /// <summary>The default: the archived instance stays, the new one is refused with 0111H (Duplicate SOP Instance) and a reason.</summary>
    Reject,
    /// <summary>The new content replaces the archived instance; an <see cref="InstanceReplaced"/> event records both checksums.</summary>
    Overwrite,
}

/// <summary>One archived instance as the study actor remembers it (the index holds the rest); <paramref name="ContentSha256"/> is null for instances journaled before content checksums.</summary>
public sealed record InstanceEntry(string SeriesInstanceUid, string Sha256, long Size, BlobRef Blob, string? ContentSha256 = null)
{
    /// <summary>Whether <paramref name="incoming"/> is this instance again: the same content (by content checksum when both have one, else the same bytes) in the same series.</summary>
    public bool IsSameAs(StoredInstance incoming) =>
        SeriesInstanceUid == incoming.Header.SeriesInstanceUid
        && (ContentSha256 is { } mine && incoming.ContentSha256 is { } theirs ? mine == theirs : Sha256 == incoming.Sha256);
}

/// <summary>One series: its latest instance header (series attributes) and how many instances it holds.</summary>
public sealed record SeriesEntry(InstanceHeader Latest, int InstanceCount);

/// <summary>
/// The state of one study, as a pure type: <see cref="Decide"/> turns a command into events, <see cref="Apply"/> folds an
/// event in. The actor around it only persists, indexes and answers.
/// </summary>
public sealed record StudyState(
    string StudyInstanceUid,
    InstanceHeader? Latest,
    ImmutableDictionary<string, InstanceEntry> Instances,
    ImmutableDictionary<string, SeriesEntry> Series,
    long SizeBytes,
    DateTimeOffset? LastReceived,
    bool Stable,
    DateTimeOffset? StableAt) : IStudyProtocol
{
    /// <summary>Instances the compression child could not compress exactly, by SOP Instance UID: the checksum of the content refused.</summary>
    public ImmutableDictionary<string, string> CompressionRefused { get; init; } = ImmutableDictionary<string, string>.Empty;

    /// <summary>Blobs that compressed copies replaced and that are not yet known to be deleted.</summary>
    public ImmutableList<BlobRef> ObsoleteBlobs { get; init; } = ImmutableList<BlobRef>.Empty;

    /// <summary>Originals kept beside their compressed copies (<c>compression.keep-original</c>), by SOP Instance UID.</summary>
    public ImmutableDictionary<string, KeptBlob> KeptOriginals { get; init; } = ImmutableDictionary<string, KeptBlob>.Empty;

    /// <summary>When the last compression pass found nothing left to do; null while the study has changed since (or never had one).</summary>
    public DateTimeOffset? CompressedAt { get; init; }

    /// <summary>When compression is due: <paramref name="delay"/> after the study became stable, unless a pass has finished since.</summary>
    public DateTimeOffset? CompressionDue(TimeSpan delay) => Stable && StableAt is { } at && CompressedAt is null ? at + delay : null;

    public static StudyState Empty(string studyInstanceUid) =>
        new(studyInstanceUid, null, ImmutableDictionary<string, InstanceEntry>.Empty, ImmutableDictionary<string, SeriesEntry>.Empty, 0, null, false, null);

    /// <summary>When the study becomes stable if nothing else arrives (null when it is stable or empty).</summary>
    public DateTimeOffset? StableDue(TimeSpan quietPeriod) => Stable || LastReceived is null ? null : LastReceived + quietPeriod;

    /// <summary>The outcome for an incoming instance and the events that record it (none for a duplicate or a rejection).</summary>
    public (StoreOutcome Outcome, IReadOnlyList<IStudyEvent> Events, string? Reason) Decide(StoredInstance incoming, ConflictPolicy policy)
    {
        var sop = incoming.Header.SopInstanceUid;
        if (incoming.Header.StudyInstanceUid != StudyInstanceUid)
            throw new ArgumentException($"instance of study {incoming.Header.StudyInstanceUid} sent to study {StudyInstanceUid}", nameof(incoming));
        List<IStudyEvent> events = [];
        if (Instances.TryGetValue(sop, out var existing))
        {
            if (existing.IsSameAs(incoming))
                return (StoreOutcome.Duplicate, events, null);
            if (policy == ConflictPolicy.Reject)
                return (StoreOutcome.Rejected, events,
                    $"SOP Instance {sop} is already archived with different content (content SHA-256 {Short(existing.ContentSha256 ?? existing.Sha256)}, series {existing.SeriesInstanceUid}); the archive keeps the first (conflict policy: reject)");
            if (Stable) events.Add(new StudyReopened(StudyInstanceUid, incoming.ReceivedAt));
            events.Add(new InstanceReplaced(incoming, existing.Sha256, existing.SeriesInstanceUid, existing.Blob));
            return (StoreOutcome.Replaced, events, null);
        }
        if (Stable) events.Add(new StudyReopened(StudyInstanceUid, incoming.ReceivedAt));
        events.Add(new InstanceStored(incoming));
        return (StoreOutcome.Stored, events, null);
    }

    private static string Short(string checksum) => checksum.Length > 16 ? checksum[..16] + "..." : checksum;

    /// <summary>The event that makes the study stable, when its quiet period is over at <paramref name="now"/>.</summary>
    public StudyStabilized? DecideStability(DateTimeOffset now, TimeSpan quietPeriod) =>
        StableDue(quietPeriod) is { } due && due <= now ? new StudyStabilized(StudyInstanceUid, now) : null;

    public StudyState Apply(IStudyEvent e) => e switch
    {
        InstanceStored s => Add(s.Instance),
        InstanceReplaced r => Remove(r.Instance.Header.SopInstanceUid).Add(r.Instance),
        StudyStabilized s => this with { Stable = true, StableAt = s.At },
        StudyReopened => this with { Stable = false, StableAt = null, CompressedAt = null },
        InstanceWithdrawn w => Withdraw(w.SopInstanceUid),
        InstanceCompressed c => Compressed(c),
        InstanceMoved m => Moved(m),
        InstanceCompressionRefused r => this with { CompressionRefused = CompressionRefused.SetItem(r.SopInstanceUid, r.Sha256) },
        OriginalsDeleted d => this with { ObsoleteBlobs = ObsoleteBlobs.RemoveRange(d.Blobs) },
        StudyCompressed c => this with { CompressedAt = c.At },
        _ => throw new ArgumentException($"unknown study event {e.GetType().Name}", nameof(e)),
    };

    private StudyState Add(StoredInstance i)
    {
        var h = i.Header;
        var count = Series.TryGetValue(h.SeriesInstanceUid, out var series) ? series.InstanceCount : 0;
        return this with
        {
            Latest = h,
            Instances = Instances.SetItem(h.SopInstanceUid, new InstanceEntry(h.SeriesInstanceUid, i.Sha256, i.Size, i.Blob, i.ContentSha256)),
            Series = Series.SetItem(h.SeriesInstanceUid, new SeriesEntry(h, count + 1)),
            SizeBytes = SizeBytes + i.Size,
            LastReceived = LastReceived is { } last && last > i.ReceivedAt ? last : i.ReceivedAt,
            CompressedAt = null,
        };
    }

    /// <summary>The instance's blob is its compressed copy now; the study's size shrinks; nothing else about it changes.</summary>
    private StudyState Compressed(InstanceCompressed c)
    {
        var sop = c.Instance.Header.SopInstanceUid;
        if (!Instances.TryGetValue(sop, out var entry)) return this;
        return this with
        {
            Instances = Instances.SetItem(sop, entry with { Sha256 = c.Instance.Sha256, Size = c.Instance.Size, Blob = c.Instance.Blob }),
            SizeBytes = SizeBytes - entry.Size + c.Instance.Size,
            ObsoleteBlobs = c.PreviousBlob == c.Instance.Blob || c.OriginalKept ? ObsoleteBlobs : ObsoleteBlobs.Add(c.PreviousBlob),
            KeptOriginals = c.OriginalKept && c.PreviousBlob != c.Instance.Blob
                ? KeptOriginals.SetItem(sop, new KeptBlob(StudyInstanceUid, sop, c.PreviousBlob, c.PreviousSize, c.PreviousSha256, c.PreviousTransferSyntaxUid))
                : KeptOriginals,
        };
    }

    /// <summary>The instance's blob (and its kept original's, when it moved too) is in another store now; the old copies are obsolete.</summary>
    private StudyState Moved(InstanceMoved m)
    {
        var sop = m.Instance.Header.SopInstanceUid;
        if (!Instances.TryGetValue(sop, out var entry)) return this;
        var obsolete = ObsoleteBlobs;
        if (m.PreviousBlob != m.Instance.Blob) obsolete = obsolete.Add(m.PreviousBlob);
        var kept = KeptOriginals;
        if (m.KeptBlob is { } to && m.KeptPreviousBlob is { } from && kept.TryGetValue(sop, out var original) && original.Blob == from && from != to)
        {
            kept = kept.SetItem(sop, original with { Blob = to });
            obsolete = obsolete.Add(from);
        }
        return this with { Instances = Instances.SetItem(sop, entry with { Blob = m.Instance.Blob }), ObsoleteBlobs = obsolete, KeptOriginals = kept };
    }

    /// <summary>An instance leaves (withdrawn, or about to be replaced): its kept original, if any, is obsolete with it.</summary>
    private StudyState Remove(string sop)
    {
        if (!Instances.TryGetValue(sop, out var entry)) return this;
        var series = Series[entry.SeriesInstanceUid];
        var kept = KeptOriginals.TryGetValue(sop, out var original);
        return this with
        {
            KeptOriginals = kept ? KeptOriginals.Remove(sop) : KeptOriginals,
            ObsoleteBlobs = kept ? ObsoleteBlobs.Add(original!.Blob) : ObsoleteBlobs,
            Instances = Instances.Remove(sop),
            Series = series.InstanceCount <= 1 ? Series.Remove(entry.SeriesInstanceUid) : Series.SetItem(entry.SeriesInstanceUid, series with { InstanceCount = series.InstanceCount - 1 }),
            SizeBytes = SizeBytes - entry.Size,
        };
    }

    /// <summary>An instance leaves the study; when its header was the study's latest, another series' takes its place (none when the study is left empty).</summary>
    private StudyState Withdraw(string sop)
    {
        var s = Remove(sop);
        if (s.Latest?.SopInstanceUid == sop) s = s with { Latest = s.Series.Values.Select(v => v.Latest).FirstOrDefault() };
        return s;
    }

    /// <summary>Modalities in Study (0008,0061): the distinct modalities of the series, sorted.</summary>
    public IReadOnlyList<string> Modalities =>
        Series.Values.Select(s => s.Latest.Modality).OfType<string>().Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToList();
}
