using AkkaVna.Dicom.Buffers;
using AkkaVna.Dicom.IO;
using AkkaVna.Dicom.Network.Dimse;
using AkkaVna.Dicom.Network.Pdus;
using Microsoft.Extensions.Logging;

namespace AkkaVna.Dicom.Network.Scu;

/// <summary>
/// A Part 10 file ready to send: its SOP class and instance, the transfer syntax its data set is really encoded in,
/// and where the data set lies in the file (sent from there as is, never loaded whole).
/// </summary>
public sealed record StoreFile(string Path, string SopClassUid, string SopInstanceUid, DicomTransferSyntax TransferSyntax, long DataSetOffset, long DataSetLength)
{
    /// <summary>Reads what sending needs: the File Meta, and the data set's first elements when the meta lacks the UIDs.</summary>
    /// <summary>Where the bytes are read from when sent: the file at <see cref="Path"/> unless the file was read from another source (a blob).</summary>
    public IRandomAccessSource Source { get; init; } = new FileSource(Path);

    public static StoreFile Read(string path) => Read(new FileSource(path));

    /// <summary>Reads what a C-STORE needs from the start of a Part 10 file held by any random-access source (a file, a blob).</summary>
    public static StoreFile Read(IRandomAccessSource source)
    {
        using var fs = source.OpenRead();
        var options = new DicomReadOptions { StopBefore = t => t.Group > 0x0008 || (t.Group == 0x0008 && t.Element > 0x0018) };
        var layout = DicomFileReader.ReadLayout(fs, options);
        string? sopClass = layout.FileMetaInfo.GetString(DicomTags.MediaStorageSOPClassUID);
        string? sopInstance = layout.FileMetaInfo.GetString(DicomTags.MediaStorageSOPInstanceUID);
        var ds = new DicomDataset();
        var result = DicomFileReader.ParseDataset(fs, layout, new DicomDatasetBuilder(ds, InMemoryLargeValues.Instance), options);
        sopClass = ds.GetString(DicomTags.SOPClassUID) is { Length: > 0 } c ? c : sopClass;
        sopInstance = ds.GetString(DicomTags.SOPInstanceUID) is { Length: > 0 } i ? i : sopInstance;
        if (string.IsNullOrEmpty(sopClass)) throw new DicomParseException(0, "no SOP Class UID in the File Meta or the data set");
        if (string.IsNullOrEmpty(sopInstance)) throw new DicomParseException(0, "no SOP Instance UID in the File Meta or the data set");
        // The meta may name a syntax the data set is not in (the parser sniffs it); send what is really there.
        var ts = layout.TransferSyntax.IsDeflated ? layout.TransferSyntax : result.EffectiveSyntax;
        long length = source.Length;
        return new StoreFile(source is FileSource file ? file.Path : source.Description, sopClass, sopInstance, ts, layout.DatasetOffset, length - layout.DatasetOffset)
        {
            Source = source,
        };
    }

    /// <summary>
    /// The data set as a C-STORE sends it: read from the file at its offset in large chunks (PDVs are often only 16 KB).
    /// PDV fragments have even lengths (PS3.8 9.3.5.1), so a deflated bitstream of odd length gets one trailing NUL
    /// byte (PS3.5 A.5), which inflaters ignore; other data sets are sent as they are.
    /// </summary>
    public (Stream Source, long Length) OpenDataSet()
    {
        var fs = Source.OpenRead(); // unbuffered: each PDV's bytes are read straight into the send buffer
        fs.Position = DataSetOffset;
        return TransferSyntax.IsDeflated && DataSetLength % 2 == 1 ? (new PaddedStream(fs, DataSetLength), DataSetLength + 1) : (fs, DataSetLength);
    }
}

/// <summary>The outcome of sending one file: its status, or why it could not be sent.</summary>
public sealed record StoreOutcome(string Path, DimseStatus? Status, string? Error, long Bytes, TimeSpan Latency)
{
    public bool Stored => Status is { IsStored: true };
}

public sealed record StoreScuOptions
{
    public string CallingAE { get; init; } = "AKKAVNA-SCU";
    public string CalledAE { get; init; } = "ANY-SCP";
    /// <summary>Operations outstanding at once on one association, when the peer accepts asynchronous operations.</summary>
    public int AsyncWindow { get; init; } = 1;
    public DicomAssociationOptions Association { get; init; } = new();
}

/// <summary>A C-STORE SCU: sends files over one association per batch of at most 128 (SOP class, transfer syntax) pairs.</summary>
public static class StoreScu
{
    private const int MaxContexts = 128;

    public static async Task<IReadOnlyList<StoreOutcome>> SendAsync(string host, int port, IReadOnlyList<StoreFile> files, StoreScuOptions options,
        Action<StoreOutcome>? progress = null, ILogger? log = null, CancellationToken cancellationToken = default)
    {
        var outcomes = new List<StoreOutcome>(files.Count);
        foreach (var batch in Batches(files))
        {
            var pairs = batch.Select(f => (f.SopClassUid, f.TransferSyntax.Uid)).Distinct().ToList();
            var rq = new AssociateRequest
            {
                CalledAE = options.CalledAE,
                CallingAE = options.CallingAE,
                PresentationContexts = pairs.Select((p, i) => new PresentationContextProposal((byte)(2 * i + 1), p.SopClassUid, [p.Uid])).ToList(),
                UserInformation = new UserInformation
                {
                    ImplementationClassUid = DicomImplementation.ClassUid,
                    ImplementationVersionName = DicomImplementation.VersionName,
                    AsyncOperations = options.AsyncWindow > 1 ? ((ushort)options.AsyncWindow, (ushort)1) : null,
                },
            };
            await using var association = await DicomAssociation.ConnectAsync(host, port, rq, options.Association, log: log, cancellationToken: cancellationToken);
            var queue = new Queue<StoreFile>(batch);
            var results = new List<StoreOutcome>();
            async Task Worker()
            {
                while (true)
                {
                    StoreFile file;
                    lock (queue)
                    {
                        if (!queue.TryDequeue(out file!)) return;
                    }
                    var outcome = await SendOneAsync(association, file, cancellationToken);
                    lock (results) results.Add(outcome);
                    progress?.Invoke(outcome);
                }
            }
            int workers = Math.Max(1, Math.Min(options.AsyncWindow, association.MaxInvokedOperations));
            await Task.WhenAll(Enumerable.Range(0, workers).Select(_ => Worker()));
            if (association.State == UpperLayer.UlState.Sta6) await association.ReleaseAsync();
            outcomes.AddRange(results);
        }
        return outcomes;
    }

    private static async Task<StoreOutcome> SendOneAsync(DicomAssociation association, StoreFile file, CancellationToken cancellationToken)
    {
        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        var pc = association.FindContext(file.SopClassUid, file.TransferSyntax.Uid);
        if (pc is null)
            return new StoreOutcome(file.Path, null, $"the peer accepted no presentation context for {file.SopClassUid} in {file.TransferSyntax.Uid}", 0, TimeSpan.Zero);
        try
        {
            var (source, length) = file.OpenDataSet();
            await using var _ = source;
            var cmd = DimseCommand.StoreRequest(association.NextMessageId(), file.SopClassUid, file.SopInstanceUid);
            var rsp = await association.SendRequestAsync(pc.Id, cmd, source, length, cancellationToken: cancellationToken);
            var error = rsp.Status.IsStored ? null : rsp.Command.ErrorComment ?? rsp.Status.Describe(DimseCommandField.CStoreResponse);
            return new StoreOutcome(file.Path, rsp.Status, error, file.DataSetLength, System.Diagnostics.Stopwatch.GetElapsedTime(started));
        }
        catch (Exception e) when (e is IOException or DicomAssociationException or UnauthorizedAccessException)
        {
            return new StoreOutcome(file.Path, null, e.Message, 0, System.Diagnostics.Stopwatch.GetElapsedTime(started));
        }
    }

    /// <summary>Consecutive runs of files whose (SOP class, transfer syntax) pairs fit in one association.</summary>
    private static IEnumerable<List<StoreFile>> Batches(IReadOnlyList<StoreFile> files)
    {
        var batch = new List<StoreFile>();
        var pairs = new HashSet<(string, string)>();
        foreach (var f in files)
        {
            var pair = (f.SopClassUid, f.TransferSyntax.Uid);
            if (!pairs.Contains(pair) && pairs.Count == MaxContexts)
            {
                yield return batch;
                batch = [];
                pairs.Clear();
            }
            pairs.Add(pair);
            batch.Add(f);
        }
        if (batch.Count > 0) yield return batch;
    }
}

/// <summary>Reads <c>length</c> bytes of a stream, then one NUL byte. Owns the stream: disposing this disposes it.</summary>
internal sealed class PaddedStream(Stream inner, long length) : Stream
{
    private long _read;

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    public override int Read(Span<byte> buffer)
    {
        if (_read < length)
        {
            int n = inner.Read(buffer[..(int)Math.Min(buffer.Length, length - _read)]);
            if (n == 0) throw new IOException("the data set ended early");
            _read += n;
            return n;
        }
        if (_read == length && buffer.Length > 0)
        {
            buffer[0] = 0;
            _read++;
            return 1;
        }
        return 0;
    }

    public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) => ValueTask.FromResult(Read(buffer.Span));
    public override bool CanRead => true;
    public override bool CanSeek => false;
    public override bool CanWrite => false;
    public override long Length => length + 1;
    public override long Position { get => _read; set => throw new NotSupportedException(); }
    public override void Flush() { }
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    protected override void Dispose(bool disposing)
    {
        if (disposing) inner.Dispose();
        base.Dispose(disposing);
    }
}
