using AkkaVna.Dicom.IO;
using System.Diagnostics;
using AkkaVna.Dicom.Network.Dimse;
using AkkaVna.Dicom.Network.Pdus;
using AkkaVna.Dicom.Network.Scu;
using Microsoft.Extensions.Logging;

namespace AkkaVna.Dicom.Network.Replay;

/// <summary>One C-STORE to replay: when (seconds from the start), from which calling AE to which called AE, and what.</summary>
/// <summary>A node to replay against.</summary>
public sealed record ReplayEndpoint(string Host, int Port)
{
    public override string ToString() => $"{Host}:{Port}";
}

public sealed record ReplayItem(double Offset, string CallingAE, string CalledAE, StoreFile File);

public sealed record ReplayOptions
{
    /// <summary>
    /// Open loop (a rate, a speed or a trace's own times): each C-STORE has a scheduled time and its latency is counted
    /// from it, so a server that falls behind shows as latency, never as a slower schedule (no coordinated omission).
    /// Closed loop ("as fast as possible"): the latency of each C-STORE is counted from when it was sent.
    /// </summary>
    public bool OpenLoop { get; init; } = true;

    /// <summary>The longest wait for an association, a C-STORE-RSP or a write; then the C-STORE fails and the association is dropped.</summary>
    public TimeSpan Timeout { get; init; } = TimeSpan.FromSeconds(30);

    public uint MaxPdu { get; init; } = 128 * 1024;

    /// <summary>How associations are opened: plain TCP, or DICOM TLS (<see cref="Transport.TlsConnector"/>).</summary>
    public Transport.IDicomConnector Connector { get; init; } = Transport.TcpTransport.Tcp;
}

/// <summary>Why a C-STORE got no status: it was never sent (no association), its response never came, or the transport broke.</summary>
public enum TransportFailure { None, NotAssociated, Timeout, Broken }

/// <summary>What happened to one C-STORE: times in seconds from the start, the status, or the transport failure and its reason.</summary>
public sealed record ReplayOutcome(ReplayItem Item, double Scheduled, double Sent, double Completed, DimseStatus? Status, string? Error,
    TransportFailure Transport = TransportFailure.None)
{
    public bool Stored => Status is { IsStored: true };

    /// <summary>The node (HOST:PORT) the C-STORE went to, or was to go to.</summary>
    public string? Endpoint { get; init; }

    /// <summary>Whether the data set went out (everything but a C-STORE that never had an association).</summary>
    public bool WasSent => Transport != TransportFailure.NotAssociated;

    /// <summary>The failure's label in reports: the status (e.g. "A700"), or the kind of transport failure.</summary>
    public string? FailureKind => Stored ? null : Status is { } s ? s.Code.ToString("X4", System.Globalization.CultureInfo.InvariantCulture) : Transport switch
    {
        TransportFailure.Timeout => "timeout",
        TransportFailure.NotAssociated => "association refused or failed",
        _ => "transport error",
    };
}

/// <summary>
/// Plays C-STORE traffic against any storage SCP as many edge gateways at once: one association per (calling AE,
/// called AE) of the schedule, each sending its instances in order, one at a time, each at its scheduled time or as
/// soon as the previous one is answered if late. Every wait has a timeout: a stalled server yields failures and
/// latency, never a hung tool. The files are streamed from disk.
/// </summary>
public static class ReplayRunner
{
    public static Task<List<ReplayOutcome>> RunAsync(string host, int port, IReadOnlyList<ReplayItem> items, ReplayOptions options,
        Action<ReplayOutcome>? completed = null, ILogger? log = null, CancellationToken cancellationToken = default) =>
        RunAsync([new ReplayEndpoint(host, port)], items, options, completed, log, cancellationToken);

    /// <summary>
    /// Plays the schedule against several nodes of one archive: the gateways (associations) are dealt over
    /// <paramref name="endpoints"/> in turn, and a gateway whose node stops answering (its association refused, aborted
    /// or timed out) moves on to the next node for its next C-STORE, as an edge gateway configured with every node does.
    /// </summary>
    public static async Task<List<ReplayOutcome>> RunAsync(IReadOnlyList<ReplayEndpoint> endpoints, IReadOnlyList<ReplayItem> items, ReplayOptions options,
        Action<ReplayOutcome>? completed = null, ILogger? log = null, CancellationToken cancellationToken = default)
    {
        if (endpoints.Count == 0) throw new ArgumentException("no endpoint to replay against", nameof(endpoints));
        var groups = items.GroupBy(i => (i.CallingAE, i.CalledAE)).Select(g => g.OrderBy(i => i.Offset).ToList()).ToList();
        foreach (var g in groups)
        {
            int pairs = g.Select(i => (i.File.SopClassUid, i.File.TransferSyntax.Uid)).Distinct().Count();
            if (pairs > 128)
                throw new ArgumentException($"calling AE {g[0].CallingAE} would need {pairs} presentation contexts (SOP class, transfer syntax), more than 128: spread the load over more associations");
        }
        // Every association is opened before the clock starts (connection set-up and warm-up are not part of the schedule);
        // one that cannot be opened then retries at its first C-STORE, which counts the failure.
        var connected = new TaskCompletionSource<long>(TaskCreationOptions.RunContinuationsAsynchronously);
        int pending = groups.Count;
        void Ready()
        {
            if (Interlocked.Decrement(ref pending) == 0) connected.TrySetResult(Stopwatch.GetTimestamp());
        }
        var outcomes = await Task.WhenAll(groups.Select((g, i) => Task.Run(() => RunAssociationAsync(endpoints, i, g, options, Ready, connected.Task, completed, log, cancellationToken))));
        return [.. outcomes.SelectMany(o => o).OrderBy(o => o.Scheduled)];
    }

    private static double Now(long start) => Stopwatch.GetElapsedTime(start).TotalSeconds;

    private static async Task<List<ReplayOutcome>> RunAssociationAsync(IReadOnlyList<ReplayEndpoint> endpoints, int gateway, List<ReplayItem> items,
        ReplayOptions options, Action ready, Task<long> started, Action<ReplayOutcome>? completed, ILogger? log, CancellationToken cancellationToken)
    {
        int current = gateway % endpoints.Count;
        string host = endpoints[current].Host;
        int port = endpoints[current].Port;
        void NextNode()
        {
            if (endpoints.Count == 1) return;
            current = (current + 1) % endpoints.Count;
            (host, port) = (endpoints[current].Host, endpoints[current].Port);
        }
        var outcomes = new List<ReplayOutcome>(items.Count);
        var pairs = items.Select(i => (i.File.SopClassUid, i.File.TransferSyntax.Uid)).Distinct().ToList();
        var request = new AssociateRequest
        {
            CalledAE = items[0].CalledAE,
            CallingAE = items[0].CallingAE,
            PresentationContexts = pairs.Select((p, i) => new PresentationContextProposal((byte)(2 * i + 1), p.SopClassUid, [p.Uid])).ToList(),
            UserInformation = new UserInformation { ImplementationClassUid = DicomImplementation.ClassUid, ImplementationVersionName = DicomImplementation.VersionName },
        };
        var associationOptions = new DicomAssociationOptions
        {
            ConnectTimeout = options.Timeout, ArtimTimeout = options.Timeout, DimseTimeout = options.Timeout, MaxReceivePduLength = options.MaxPdu, MaxSendPduLength = options.MaxPdu,
            Connector = options.Connector,
        };
        DicomAssociation? association = null;
        try
        {
            try
            {
                association = await DicomAssociation.ConnectAsync(host, port, request, associationOptions, log: log, cancellationToken: cancellationToken)
                    .WaitAsync(options.Timeout, cancellationToken);
            }
            catch (Exception e) when (e is DicomAssociationException or TimeoutException or IOException or System.Net.Sockets.SocketException)
            {
                log?.LogWarning("{CallingAE}: cannot associate with {Host}:{Port} yet: {Reason}", request.CallingAE, host, port, e.Message);
                NextNode();
            }
            finally
            {
                ready();
            }
            long start = await started;
            foreach (var item in items)
            {
                double wait = item.Offset - Now(start);
                if (wait > 0) await Task.Delay(TimeSpan.FromSeconds(wait), cancellationToken);
                double sent = Now(start);
                string endpoint = $"{host}:{port}";
                ReplayOutcome outcome;
                try
                {
                    association ??= await DicomAssociation.ConnectAsync(host, port, request, associationOptions, log: log, cancellationToken: cancellationToken)
                        .WaitAsync(options.Timeout, cancellationToken);
                    outcome = await SendAsync(association, item, options, start, sent);
                }
                catch (Exception e) when (e is DicomAssociationException or TimeoutException or IOException or System.Net.Sockets.SocketException)
                {
                    outcome = new ReplayOutcome(item, item.Offset, sent, Now(start), null, $"cannot associate with {host}:{port}: " + e.Message, TransportFailure.NotAssociated);
                    NextNode();
                }
                if (outcome.Transport != TransportFailure.None && association is not null)
                {
                    // The association is in an unknown state (no response, broken transport): drop it, the next item reconnects.
                    try
                    {
                        await association.AbortAsync(outcome.Error ?? "transport failure").WaitAsync(options.Timeout, CancellationToken.None);
                    }
                    catch (Exception e) when (e is TimeoutException or IOException or DicomAssociationException or System.Net.Sockets.SocketException)
                    {
                        association.CloseTransport();
                    }
                    await association.DisposeAsync();
                    association = null;
                    NextNode();
                }
                outcome = outcome with { Endpoint = endpoint };
                outcomes.Add(outcome);
                completed?.Invoke(outcome);
            }
        }
        finally
        {
            if (association is not null)
            {
                try
                {
                    if (association.State == UpperLayer.UlState.Sta6) await association.ReleaseAsync().WaitAsync(options.Timeout, CancellationToken.None);
                }
                catch (Exception e) when (e is TimeoutException or DicomAssociationException or IOException)
                {
                    await association.AbortAsync("no A-RELEASE-RP in time");
                }
                await association.DisposeAsync();
            }
        }
        return outcomes;
    }

    private static async Task<ReplayOutcome> SendAsync(DicomAssociation association, ReplayItem item, ReplayOptions options, long start, double sent)
    {
        var file = item.File;
        var pc = association.FindContext(file.SopClassUid, file.TransferSyntax.Uid);
        if (pc is null)
            return new ReplayOutcome(item, item.Offset, sent, Now(start), DimseStatus.SopClassNotSupported, $"the SCP accepted no presentation context for {file.SopClassUid} in {file.TransferSyntax.Uid}");
        var (source, length) = file.OpenDataSet();
        await using var _ = source;
        var cmd = DimseCommand.StoreRequest(association.NextMessageId(), file.SopClassUid, file.SopInstanceUid);
        try
        {
            var rsp = await association.SendRequestAsync(pc.Id, cmd, source, length).WaitAsync(options.Timeout);
            return new ReplayOutcome(item, item.Offset, sent, Now(start), rsp.Status, rsp.Status.IsStored ? null : rsp.Command.ErrorComment);
        }
        catch (TimeoutException)
        {
            return new ReplayOutcome(item, item.Offset, sent, Now(start), null, $"no C-STORE-RSP within {options.Timeout.TotalSeconds:0.#} s", TransportFailure.Timeout);
        }
        catch (Exception e) when (e is DicomAssociationException or IOException)
        {
            return new ReplayOutcome(item, item.Offset, sent, Now(start), null, e.Message, TransportFailure.Broken);
        }
    }
}
