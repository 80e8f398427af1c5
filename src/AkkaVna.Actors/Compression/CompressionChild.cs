using System.Security.Cryptography;
using Akka.Actor;
using Akka.Event;
using AkkaVna.Core.Blobs;
using AkkaVna.Core.Compression;
using AkkaVna.Core.Model;
using AkkaVna.Core.Ports;
using AkkaVna.Core.Studies;

namespace AkkaVna.Actors.Compression;

/// <summary>What a study's compression child needs from the node: the codecs, the stores, the index, the pool and the rules.</summary>
public sealed record CompressionServices(IInstanceCompressor Compressor, IBlobStore Blobs, IArchiveIndex Index, CompressionPool Pool,
    CompressionSettings Settings, IArchiveMetrics Metrics, TimeProvider Time);

// ---- between a study actor and its compression child (local messages, never serialized) ----

/// <summary>Parent to child: compress what the rules select, except these SOP Instance UIDs (refused before, or without a content checksum).</summary>
public sealed record CompressStudy(IReadOnlySet<string> Skip, long Generation);

/// <summary>Parent to child: delete these replaced originals once the index names another blob that exists.</summary>
public sealed record DeleteObsolete(IReadOnlyList<BlobRef> Blobs);

/// <summary>Child to parent: a verified compressed copy is staged (and, for an object store, uploaded); record the switch.</summary>
public sealed record CompressionReady(string SopInstanceUid, BlobRef FromBlob, string FromSha256, long FromSize, string FromTransferSyntaxUid, StoredInstance Compressed);

/// <summary>Parent to child: the switch is in the journal and the index.</summary>
public sealed record CompressionCommitted(string SopInstanceUid);

/// <summary>Parent to child: the switch was not recorded. <paramref name="Stale"/>: the instance changed meanwhile, nothing was written.</summary>
public sealed record CompressionNotCommitted(string SopInstanceUid, string Reason, bool Stale);

/// <summary>Child to parent: this content cannot be compressed exactly; record it so it is not tried again.</summary>
public sealed record CompressionRefusal(string SopInstanceUid, string Sha256, string Reason);

/// <summary>Child to parent: these replaced originals are deleted.</summary>
public sealed record ObsoleteDeleted(IReadOnlyList<BlobRef> Blobs);

/// <summary>Child to parent: a pass is over; <paramref name="Complete"/> when nothing is left to retry.</summary>
public sealed record CompressionPassFinished(long Generation, bool Complete);

/// <summary>
/// A study's compression child. A pass lists the study's instances from the index, lets the rules pick a syntax for each
/// native one, and compresses them one at a time on the node's <see cref="CompressionPool"/>: the original's checksum is
/// checked first (a damaged original is never copied), the copy is written to a new staged blob under a key of its own,
/// every frame decoded again and compared, sealed (flushed) and prepared (uploaded, for an object store). Only then does
/// the parent persist <see cref="InstanceCompressed"/> and project it; then the copy is promoted and the original
/// deleted (<see cref="OriginalsDeleted"/>). A crash at any moment leaves each instance original or verified compressed:
/// a staged copy whose switch is recorded is promoted by staged-blob recovery, one whose switch is not is discarded, and a
/// replaced original is deleted on the study's next start. Content that cannot be compressed exactly is recorded and left;
/// other failures are logged, counted and retried with backoff.
/// </summary>
public sealed class CompressionChild : ReceiveActor, IWithTimers
{
    private sealed record Candidate(string SopInstanceUid, string SeriesInstanceUid, BlobRef Blob, string Sha256, long Size, string TransferSyntaxUid,
        string Target, DateTimeOffset ReceivedAt);
    private sealed record Listed(IReadOnlyList<Candidate> Candidates);
    private sealed record Prepared(Candidate Candidate, IBlobWriter Writer, StoredInstance Compressed);
    private sealed record Failed(Candidate Candidate, Exception Cause);
    private sealed record Promoted(Candidate Candidate);
    private sealed record ObsoleteChecked(IReadOnlyList<BlobRef> Deleted);
    private sealed class Retry { public static readonly Retry Instance = new(); }

    private readonly string _studyUid;
    private readonly CompressionServices _services;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly Queue<Candidate> _queue = new();
    private readonly Dictionary<string, (int Attempts, DateTimeOffset NotBefore)> _backoff = new(StringComparer.Ordinal);
    /// <summary>Refused by this child (with the checksum refused): a pass asked before the parent recorded the refusal skips them too.</summary>
    private readonly Dictionary<string, string> _refused = new(StringComparer.Ordinal);
    private readonly CancellationTokenSource _stopping = new();
    private bool _busy, _again;
    private CompressStudy? _request;
    /// <summary>The instance in progress; its staged copy once written, and whether the parent was asked to record the switch.</summary>
    private Candidate? _current;
    private Prepared? _prepared;
    private bool _sent;

    public ITimerScheduler Timers { get; set; } = null!;

    public CompressionChild(string studyInstanceUid, CompressionServices services)
    {
        _studyUid = studyInstanceUid;
        _services = services;
        Receive<CompressStudy>(OnCompress);
        Receive<Retry>(_ => { if (_request is { } r) OnCompress(r); });
        Receive<Listed>(listed =>
        {
            foreach (var c in listed.Candidates) _queue.Enqueue(c);
            Next();
        });
        Receive<Prepared>(p =>
        {
            _prepared = p;
            _sent = true;
            Context.Parent.Tell(new CompressionReady(p.Candidate.SopInstanceUid, p.Candidate.Blob, p.Candidate.Sha256, p.Candidate.Size,
                p.Candidate.TransferSyntaxUid, p.Compressed));
        });
        Receive<CompressionCommitted>(_ => _prepared is not null, _ =>
        {
            var p = _prepared!;
            PromoteAsync(p).PipeTo(Self, success: () => new Promoted(p.Candidate), failure: e => new Failed(p.Candidate, e));
        });
        Receive<CompressionNotCommitted>(_ => _prepared is not null, n =>
        {
            var (candidate, writer, _) = _prepared!;
            Done();
            // Stale: decided before anything was written; discarded. Otherwise the outcome is unknown (the journal may
            // hold it): recovery asks the index, and promotes or discards.
            if (!n.Stale) writer.LeaveForRecovery();
            _ = writer.DisposeAsync().AsTask();
            _services.Metrics.InstanceCompression(n.Stale ? "stale" : "failed", 0, 0);
            if (!n.Stale) Backoff(candidate, n.Reason);
            else _backoff.Remove(candidate.SopInstanceUid); // changed meanwhile: the next listing decides afresh
            Next();
        });
        Receive<Promoted>(p =>
        {
            var compressed = _prepared!.Compressed;
            Done();
            var c = p.Candidate;
            _backoff.Remove(c.SopInstanceUid); // done: no longer waiting for a retry (a pass with nothing waiting is complete)
            _services.Metrics.InstanceCompression("compressed", c.Size, compressed.Size);
            if (!_services.Settings.KeepOriginal)
                DeleteIfReplacedAsync([c.Blob]).PipeTo(Self, success: deleted => new ObsoleteChecked(deleted), failure: e => new ObsoleteChecked([]));
            Next();
        });
        Receive<Failed>(OnFailed);
        Receive<DeleteObsolete>(d => DeleteIfReplacedAsync(d.Blobs).PipeTo(Self, success: deleted => new ObsoleteChecked(deleted),
            failure: e =>
            {
                _log.Warning("study {0}: replaced originals not deleted now ({1}); the study's next start tries again", _studyUid, e.Message);
                return new ObsoleteChecked([]);
            }));
        Receive<ObsoleteChecked>(o => { if (o.Deleted.Count > 0) Context.Parent.Tell(new ObsoleteDeleted(o.Deleted)); });
    }

    public static Props Props(string studyInstanceUid, CompressionServices services) =>
        Akka.Actor.Props.Create(() => new CompressionChild(studyInstanceUid, services));

    private void OnCompress(CompressStudy request)
    {
        _request = request;
        if (_busy)
        {
            _again = true;
            return;
        }
        _busy = true;
        ListAsync(request).PipeTo(Self, success: list => new Listed(list), failure: e => new Failed(null!, e));
    }

    /// <summary>The study's native instances a rule selects, not skipped and not backing off.</summary>
    private async Task<IReadOnlyList<Candidate>> ListAsync(CompressStudy request)
    {
        var index = _services.Index;
        var study = await index.GetStudyAsync(_studyUid, _stopping.Token).ConfigureAwait(false);
        if (study is null) return [];
        var series = (await index.GetSeriesAsync(_studyUid, _stopping.Token).ConfigureAwait(false)).ToDictionary(s => s.SeriesInstanceUid, StringComparer.Ordinal);
        var now = _services.Time.GetUtcNow();
        var list = new List<Candidate>();
        await foreach (var i in index.ListInstancesAsync(_studyUid, _stopping.Token).ConfigureAwait(false))
        {
            // Images only (an instance without Rows has no pixel data to compress), native ones only, not refused before.
            if (request.Skip.Contains(i.SopInstanceUid) || !IsNative(i.TransferSyntaxUid) || i.Rows is null) continue;
            if (_refused.TryGetValue(i.SopInstanceUid, out var refusedSha) && refusedSha == i.Sha256) continue;
            if (_backoff.TryGetValue(i.SopInstanceUid, out var b) && b.NotBefore > now) continue;
            series.TryGetValue(i.SeriesInstanceUid, out var s);
            var attributes = new Dictionary<string, string?>(StringComparer.Ordinal)
            {
                ["Modality"] = s?.Modality,
                ["SOPClassUID"] = i.SopClassUid,
                ["TransferSyntaxUID"] = i.TransferSyntaxUid,
                ["BodyPartExamined"] = s?.BodyPartExamined,
                ["SeriesDescription"] = s?.SeriesDescription,
                ["StudyDescription"] = study.StudyDescription,
                ["AccessionNumber"] = study.AccessionNumber,
                ["PatientID"] = study.PatientId,
                ["IssuerOfPatientID"] = study.IssuerOfPatientId,
            };
            if (_services.Settings.Rules.TargetFor(attributes, i.Size) is not { } target || target == i.TransferSyntaxUid) continue;
            if (!_services.Compressor.CanCompressTo(target)) continue;
            list.Add(new Candidate(i.SopInstanceUid, i.SeriesInstanceUid, i.Blob, i.Sha256, i.Size, i.TransferSyntaxUid, target, i.ReceivedAt));
        }
        return list;
    }

    /// <summary>Only native pixel data is compressed: an instance in any compressed syntax (lossless or lossy) stays as it is.</summary>
    private static bool IsNative(string transferSyntaxUid) => transferSyntaxUid is "1.2.840.10008.1.2" or "1.2.840.10008.1.2.1";

    private void Done()
    {
        _current = null;
        _prepared = null;
        _sent = false;
    }

    private void Next()
    {
        if (_current is not null) return;
        if (_queue.Count == 0)
        {
            _busy = false;
            if (_again && _request is { } again)
            {
                _again = false;
                OnCompress(again);
                return;
            }
            bool complete = _backoff.Count == 0;
            if (!complete && _backoff.Values.Min(b => b.NotBefore) is var earliest)
                Timers.StartSingleTimer(Retry.Instance, Retry.Instance, TimeSpan.FromTicks(Math.Max(TimeSpan.FromSeconds(1).Ticks, (earliest - _services.Time.GetUtcNow()).Ticks)));
            Context.Parent.Tell(new CompressionPassFinished(_request?.Generation ?? 0, complete));
            return;
        }
        var c = _queue.Dequeue();
        _current = c;
        _services.Pool.RunAsync(() => Compress(c), _stopping.Token).PipeTo(Self, success: p => p, failure: e => new Failed(c, e));
    }

    /// <summary>On a pool thread: checks the original, writes the verified copy to a staged blob, seals and prepares it.</summary>
    private Prepared Compress(Candidate c)
    {
        var ct = _stopping.Token;
        var blobs = _services.Blobs;
        // Where the instance is now (a tier move may have moved it since the pass listed it): the switch names the blob read.
        var content = InstanceBlobs.OpenAsync(blobs, _services.Index, c.SopInstanceUid, c.Blob, ct).AsTask().GetAwaiter().GetResult();
        c = c with { Blob = content.Blob };
        try
        {
            string sha;
            using (var s = content.OpenRead()) sha = Convert.ToHexStringLower(SHA256.HashData(s));
            if (sha != c.Sha256)
                throw new IOException($"the original's checksum is {sha[..16]}..., the index says {c.Sha256[..Math.Min(16, c.Sha256.Length)]}...: a damaged original is never compressed (verify --repair)");
            var writer = blobs.CreateAsync(ct).AsTask().GetAwaiter().GetResult();
            try
            {
                CompressedInstance result;
                using (var output = new WriterStream(writer)) result = _services.Compressor.Compress(content, c.Target, output, ct);
                if (writer.Length >= c.Size)
                    throw new CompressionRefusedException($"compressed it takes {writer.Length} bytes, not fewer than its {c.Size} (noise does not compress): left as it is");
                string newSha = writer.SealAsync(flushToDisk: true, ct).AsTask().GetAwaiter().GetResult();
                var h = result.Header;
                var blob = blobs.RefFor(_studyUid, h.SeriesInstanceUid, h.SopInstanceUid, CompressionSettings.RepresentationOf(c.Target), newSha);
                writer.PrepareAsync(blob, ct).AsTask().GetAwaiter().GetResult();
                var compressed = new StoredInstance(h, blob, writer.Length, newSha, c.ReceivedAt, result.SourceAE ?? "");
                return new Prepared(c, writer, compressed);
            }
            catch
            {
                writer.DisposeAsync().AsTask().GetAwaiter().GetResult();
                throw;
            }
        }
        finally
        {
            content.DisposeAsync().AsTask().GetAwaiter().GetResult();
        }
    }

    private async Task PromoteAsync(Prepared p)
    {
        await p.Writer.PromoteAsync(p.Compressed.Blob, _stopping.Token).ConfigureAwait(false);
        await p.Writer.DisposeAsync().ConfigureAwait(false);
    }

    private void OnFailed(Failed f)
    {
        if (f.Candidate is null)
        {
            _busy = false;
            _log.Warning("study {0}: cannot list instances to compress ({1}); the next pass tries again", _studyUid, f.Cause.Message);
            _services.Metrics.InstanceCompression("failed", 0, 0);
            return;
        }
        var c = f.Candidate;
        if (_prepared is { Writer: var writer })
        {
            // The switch is recorded but the promotion failed: recovery promotes the staged copy (the index names it).
            writer.LeaveForRecovery();
            _ = writer.DisposeAsync().AsTask();
        }
        Done();
        var cause = f.Cause is AggregateException { InnerException: { } inner } ? inner : f.Cause;
        if (cause is CompressionRefusedException refused)
        {
            _backoff.Remove(c.SopInstanceUid); // decided for good: journaled, never retried
            _refused[c.SopInstanceUid] = c.Sha256;
            _log.Info("study {0}: {1} stays as it is ({2})", _studyUid, c.SopInstanceUid, refused.Message);
            _services.Metrics.InstanceCompression("refused", 0, 0);
            Context.Parent.Tell(new CompressionRefusal(c.SopInstanceUid, c.Sha256, refused.Message));
        }
        else if (cause is not OperationCanceledException)
        {
            _services.Metrics.InstanceCompression("failed", 0, 0);
            Backoff(c, cause.Message);
        }
        Next();
    }

    private void Backoff(Candidate c, string reason)
    {
        int attempts = _backoff.TryGetValue(c.SopInstanceUid, out var b) ? b.Attempts + 1 : 1;
        var s = _services.Settings;
        var wait = TimeSpan.FromTicks(Math.Min(s.RetryMax.Ticks, s.RetryMin.Ticks * (1L << Math.Min(20, attempts - 1))));
        _backoff[c.SopInstanceUid] = (attempts, _services.Time.GetUtcNow() + wait);
        _log.Warning("study {0}: {1} not compressed (attempt {2}: {3}); the original stays, trying again in {4}", _studyUid, c.SopInstanceUid, attempts, reason, wait);
    }

    private Task<IReadOnlyList<BlobRef>> DeleteIfReplacedAsync(IReadOnlyList<BlobRef> blobs) =>
        InstanceBlobs.DeleteIfReplacedAsync(_services.Blobs, _services.Index, blobs, _stopping.Token);

    protected override void PostStop()
    {
        _stopping.Cancel();
        if (_prepared is { Writer: var writer })
        {
            // Stopped while the switch may be in flight: the staged copy is left to recovery, which asks the index.
            if (_sent) writer.LeaveForRecovery();
            _ = writer.DisposeAsync().AsTask();
        }
        base.PostStop();
    }

    /// <summary>A blob writer as a write-only stream (what the transcoder writes to).</summary>
    private sealed class WriterStream(IBlobWriter writer) : Stream
    {
        public override bool CanRead => false;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Length => writer.Length;
        public override long Position { get => writer.Length; set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) =>
            writer.WriteAsync(buffer.AsMemory(offset, count), CancellationToken.None).AsTask().GetAwaiter().GetResult();
        public override void Write(ReadOnlySpan<byte> buffer)
        {
            var rented = System.Buffers.ArrayPool<byte>.Shared.Rent(buffer.Length);
            try
            {
                buffer.CopyTo(rented);
                Write(rented, 0, buffer.Length);
            }
            finally
            {
                System.Buffers.ArrayPool<byte>.Shared.Return(rented);
            }
        }
        public override void WriteByte(byte value) => Write([value]);
    }
}
