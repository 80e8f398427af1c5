using AkkaVna.Dicom.Buffers;
using AkkaVna.Dicom.IO;
using AkkaVna.Dicom.Network.Dimse;
using AkkaVna.Dicom.Network.Pdus;
using Microsoft.Extensions.Logging;

namespace AkkaVna.Dicom.Network.Scu;

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
