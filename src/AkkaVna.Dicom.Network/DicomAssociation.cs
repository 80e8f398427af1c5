using System.Buffers;
using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using AkkaVna.Dicom.IO;
using AkkaVna.Dicom.Network.Dimse;
using AkkaVna.Dicom.Network.Pdus;
using AkkaVna.Dicom.Network.Scp;
using AkkaVna.Dicom.Network.Services;
using AkkaVna.Dicom.Network.Transport;
using AkkaVna.Dicom.Network.UpperLayer;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace AkkaVna.Dicom.Network;

/// <summary>A presentation context as negotiated.</summary>
public sealed record PresentationContext(byte Id, string AbstractSyntax, PresentationContextResultReason Result, string TransferSyntaxUid)
{
    public bool Accepted => Result == PresentationContextResultReason.Acceptance;
    public DicomTransferSyntax TransferSyntax => DicomTransferSyntax.Resolve(TransferSyntaxUid);
}

/// <summary>A DIMSE response as received by a requestor, with its data set when it has one (C-FIND identifiers).</summary>
public sealed record DimseResponse(DimseCommand Command, DicomDataset? DataSet)
{
    public DimseStatus Status => Command.Status;
}

/// <summary>The association failed: rejected, aborted, timed out or the connection broke.</summary>
public class DicomAssociationException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>The peer rejected the association (A-ASSOCIATE-RJ).</summary>
public sealed class DicomAssociationRejectedException(AssociateReject reject) : DicomAssociationException("association rejected: " + reject.Describe())
{
    public AssociateReject Reject { get; } = reject;
}

/// <summary>
/// One DICOM association, requestor or acceptor, over a transport's duplex pipe (<see cref="IDicomTransport"/>: TCP, or
/// TLS over TCP, or in-memory pipes in tests). The
/// Upper Layer state machine (<see cref="UpperLayerMachine"/>) decides what every event does; this class is its port:
/// it frames PDUs (refusing a PDU longer than allowed from its header, before buffering it), runs the timers (ARTIM, DIMSE,
/// idle), reassembles DIMSE messages from PDVs and streams C-STORE data sets into the store handler's sink as they arrive.
/// Events are serialized by a gate; the indications the machine issues run after the gate is released.
/// </summary>
public sealed class DicomAssociation : IUpperLayerPort, IAsyncDisposable
{
    private IDicomTransport? _transport;
    private readonly DicomAssociationOptions _options;
    private readonly DicomServices? _services;
    private readonly DimseServiceRegistry _registry;
    private readonly ILogger _log;
    private readonly UpperLayerMachine _machine;
    private readonly SemaphoreSlim _gate = new(1, 1);
    private readonly SemaphoreSlim _sendLock = new(1, 1);
    private readonly List<Func<ValueTask>> _afterGate = [];
    private readonly TaskCompletionSource _closed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly ConcurrentDictionary<ushort, PendingRequest> _pending = new();
    private readonly Dictionary<byte, PresentationContext> _contexts = [];
    private readonly HashSet<Task> _responders = [];
    private readonly ConcurrentDictionary<ushort, CancellationTokenSource> _cancellable = new();
    private readonly Timer _readTimer;
    private readonly CancellationTokenSource _writeTimeout = new();
    private PipeReader? _reader;
    private PipeWriter? _writer;
    private string? _connectHost;
    private int _connectPort;
    private long _artimDeadline;   // Environment.TickCount64 when ARTIM expires; 0 = stopped
    private long _readDeadline;
    private bool _discarding;      // framing lost (invalid PDU header): read and drop until the transport closes
    private bool _partialPdu;
    private IncomingMessage? _incoming;
    private TaskCompletionSource<Pdu>? _associateConfirmation;
    private TaskCompletionSource? _releaseConfirmation;
    private SemaphoreSlim _invokeSlots = new(1, 1);
    private SemaphoreSlim _performSlots = new(1, 1);
    private uint _peerMaxPdu;
    private int _messageId;
    private bool _overloaded;
    private string? _endReason;

    private DicomAssociation(IDicomTransport? transport, DicomAssociationOptions options, DicomServices? services, ILogger? log, bool isRequestor)
    {
        _transport = transport;
        _registry = DimseServiceRegistry.For(services);
        _options = options;
        _services = services;
        _log = log ?? NullLogger.Instance;
        _machine = new UpperLayerMachine(this, isRequestor);
        _readTimer = new Timer(static s => ((DicomAssociation)s!)._reader?.CancelPendingRead(), this, Timeout.Infinite, Timeout.Infinite);
    }

    /// <summary>This association's limits and timers.</summary>
    public DicomAssociationOptions Options => _options;

    /// <summary>Calling/called AE titles and the peer's implementation, once the A-ASSOCIATE-RQ is known.</summary>
    public AssociationInfo Info { get; private set; } = new("", "", null, null, null);

    public AssociateRequest? Request { get; private set; }
    public AssociateAccept? Accept { get; private set; }
    public IReadOnlyDictionary<byte, PresentationContext> PresentationContexts => _contexts;
    public UlState State => _machine.State;

    /// <summary>Completes when the association is over (the transport is closed).</summary>
    public Task Completion => _closed.Task;

    /// <summary>Why the association ended, when it did not end by an orderly release.</summary>
    public string? EndReason => _endReason;

    // ================================================================== requestor (SCU)

    /// <summary>Opens a connection to <paramref name="host"/>:<paramref name="port"/> and negotiates an association.</summary>
    public static async Task<DicomAssociation> ConnectAsync(string host, int port, AssociateRequest request, DicomAssociationOptions? options = null,
        DicomServices? services = null, ILogger? log = null, CancellationToken cancellationToken = default)
    {
        options ??= new DicomAssociationOptions();
        // The association enforces its receive limit, so it is the one that advertises it.
        request = request with { UserInformation = request.UserInformation with { MaximumLength = options.MaxReceivePduLength } };
        var a = new DicomAssociation(null, options, services, log, isRequestor: true)
        {
            _connectHost = host, _connectPort = port,
            _associateConfirmation = new(TaskCreationOptions.RunContinuationsAsynchronously),
            Request = request,
        };
        a.Info = new AssociationInfo(request.CallingAE, request.CalledAE, null, null, null);
        try
        {
            await a.FireAsync(UlEvent.Evt1);
        }
        catch (Exception e) when (e is SocketException or OperationCanceledException or IOException)
        {
            a._endReason = $"cannot connect to {host}:{port}: {e.Message}";
            await a.FireIfPossibleAsync(UlEvent.Evt17);
            a._closed.TrySetResult();
            if (a._transport is { } t) await t.DisposeAsync();
            throw new DicomAssociationException(a._endReason, e);
        }
        Pdu answer;
        try
        {
            await a.FireAsync(UlEvent.Evt2, request);
            _ = Task.Run(a.ReadLoopAsync, CancellationToken.None);
            answer = await a._associateConfirmation.Task.WaitAsync(cancellationToken);
        }
        catch
        {
            await a.DisposeAsync();
            throw;
        }
        if (answer is AssociateReject rj)
        {
            await a.Completion;
            throw new DicomAssociationRejectedException(rj);
        }
        return a;
    }

    /// <summary>The accepted presentation context for an abstract syntax and transfer syntax, if any.</summary>
    public PresentationContext? FindContext(string abstractSyntax, string? transferSyntax = null) =>
        _contexts.Values.FirstOrDefault(c => c.Accepted && c.AbstractSyntax == abstractSyntax && (transferSyntax is null || c.TransferSyntaxUid == transferSyntax));

    /// <summary>Number of operations this side may have outstanding (the negotiated asynchronous operations window).</summary>
    public int MaxInvokedOperations { get; private set; } = 1;

    public ushort NextMessageId()
    {
        int id = Interlocked.Increment(ref _messageId) & 0xFFFF;
        return id == 0 ? (ushort)(Interlocked.Increment(ref _messageId) & 0xFFFF) : (ushort)id;
    }

    /// <summary>
    /// Sends a request (and its data set, read from <paramref name="dataSet"/> for <paramref name="dataSetLength"/> bytes,
    /// never whole in memory) and returns its final response. Waits for a slot in the asynchronous operations window first.
    /// </summary>
    public async Task<DimseResponse> SendRequestAsync(byte presentationContextId, DimseCommand command, Stream? dataSet = null, long dataSetLength = 0,
        Action<DimseResponse>? onPending = null, CancellationToken cancellationToken = default)
    {
        await _invokeSlots.WaitAsync(cancellationToken);
        var pending = new PendingRequest(onPending);
        try
        {
            if (!_pending.TryAdd(command.MessageId, pending)) throw new InvalidOperationException($"message ID {command.MessageId} is already outstanding");
            try
            {
                await SendMessageAsync(presentationContextId, command, dataSet, dataSetLength, cancellationToken);
            }
            catch
            {
                _pending.TryRemove(command.MessageId, out _);
                throw;
            }
            return await pending.Completion.Task;
        }
        finally
        {
            _invokeSlots.Release();
        }
    }

    /// <summary>
    /// C-CANCEL-RQ for an outstanding C-FIND, C-MOVE or C-GET (PS3.7 9.3.2.3): the peer ends it with a Cancel status, which
    /// completes that request's task as usual. No response to the cancel itself is expected.
    /// </summary>
    public Task CancelAsync(byte presentationContextId, ushort messageId, CancellationToken cancellationToken = default) =>
        SendMessageAsync(presentationContextId, DimseCommand.CancelRequest(messageId), null, 0, cancellationToken);

    /// <summary>C-ECHO on the Verification presentation context.</summary>
    public async Task<DimseStatus> EchoAsync(CancellationToken cancellationToken = default)
    {
        var pc = FindContext(DicomUids.Verification) ?? throw new DicomAssociationException("the peer did not accept the Verification SOP class");
        var rsp = await SendRequestAsync(pc.Id, DimseCommand.EchoRequest(NextMessageId()), cancellationToken: cancellationToken);
        return rsp.Status;
    }

    /// <summary>Orderly release (A-RELEASE): waits for the peer's A-RELEASE-RP and the transport to close.</summary>
    public async Task ReleaseAsync()
    {
        _releaseConfirmation = new(TaskCreationOptions.RunContinuationsAsynchronously);
        await FireAsync(UlEvent.Evt11);
        await _releaseConfirmation.Task;
        await Completion;
    }

    /// <summary>A-ABORT (service-user): the peer is told, the transport closes.</summary>
    public async Task AbortAsync(string reason = "aborted by the local user")
    {
        _endReason ??= reason;
        if (await FireIfPossibleAsync(UlEvent.Evt15)) await Completion;
    }

    public async ValueTask DisposeAsync()
    {
        if (!_closed.Task.IsCompleted)
        {
            try { await AbortAsync(); }
            catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException or DicomAssociationException) { CloseTransport(); }
            await Completion.WaitAsync(_options.ArtimTimeout).ContinueWith(_ => { }, TaskScheduler.Default);
        }
        CloseTransport();
        if (_transport is not null) await _transport.DisposeAsync();
        await _readTimer.DisposeAsync();
    }

    // ================================================================== acceptor (SCP)

    /// <summary>Runs an accepted connection as an association until it ends. <paramref name="overloaded"/>: reject it (local limit exceeded).</summary>
    internal static async Task RunAcceptorAsync(IDicomTransport transport, DicomServices services, DicomAssociationOptions options, ILogger log, bool overloaded,
        Action<DicomAssociation>? onStarted = null, long id = 0)
    {
        var a = new DicomAssociation(transport, options, services, log, isRequestor: false) { _overloaded = overloaded };
        a.Info = new AssociationInfo("", "", transport.RemoteEndPoint, null, null) { Id = id, CertificateSubject = transport.PeerCertificateSubject };
        a.OpenStream();
        onStarted?.Invoke(a);
        try
        {
            await a.FireAsync(UlEvent.Evt5);
            await a.ReadLoopAsync();
        }
        finally
        {
            if (a.Accept is not null) services.Observer?.Ended(a.Info);
        }
    }

    // ================================================================== events and the read loop

    private async ValueTask FireAsync(UlEvent evt, object? argument = null)
    {
        if (!await FireIfPossibleAsync(evt, argument))
        {
            throw new DicomAssociationException(_machine.State is UlState.Sta1 or UlState.Sta13
                ? "the association is over: " + (_endReason ?? "it was released")
                : $"the association cannot take {evt} in {_machine.State}");
        }
    }

    /// <summary>Feeds an event if the current state has a cell for it; runs the indications it issued after the gate is released.</summary>
    private async ValueTask<bool> FireIfPossibleAsync(UlEvent evt, object? argument = null)
    {
        Func<ValueTask>[] followUps;
        await _gate.WaitAsync();
        try
        {
            if (UlStateTable.Lookup(_machine.State, evt) is null) return false;
            var before = _machine.State;
            await _machine.HandleAsync(evt, argument);
            if (_machine.State != before && _log.IsEnabled(LogLevel.Trace))
                _log.LogTrace("{Association}: {State} + {Event} -> {Action} -> {Next}", Info, before, evt, _machine.LastAction, _machine.State);
            followUps = [.. _afterGate];
            _afterGate.Clear();
        }
        finally
        {
            _gate.Release();
        }
        foreach (var f in followUps) await f();
        return true;
    }

    private async Task ReadLoopAsync()
    {
        try
        {
            while (_machine.State != UlState.Sta1)
            {
                ArmReadTimer();
                ReadResult result;
                try
                {
                    result = await _reader!.ReadAsync();
                }
                finally
                {
                    _readTimer.Change(Timeout.Infinite, Timeout.Infinite);
                }
                if (result.IsCanceled)
                {
                    await OnReadTimerAsync();
                    continue;
                }
                var buffer = result.Buffer;
                try
                {
                    if (_discarding) buffer = buffer.Slice(buffer.End);
                    else await DispatchPdusAsync(ref buffer);
                    _partialPdu = !buffer.IsEmpty;
                }
                finally
                {
                    _reader.AdvanceTo(buffer.Start, buffer.End);
                }
                if (result.IsCompleted)
                {
                    _endReason ??= "the peer closed the connection";
                    await FireIfPossibleAsync(UlEvent.Evt17);
                    break;
                }
            }
        }
        catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException or OperationCanceledException or InvalidOperationException)
        {
            if (_machine.State != UlState.Sta1)
            {
                _endReason ??= "connection lost: " + e.Message;
                try { await FireIfPossibleAsync(UlEvent.Evt17); }
                catch (Exception inner) when (inner is IOException or SocketException or ObjectDisposedException) { }
            }
        }
        catch (Exception e)
        {
            _log.LogError(e, "{Association}: unexpected failure; closing the connection", Info);
            _endReason ??= "internal error: " + e.Message;
        }
        finally
        {
            await EndAsync();
        }
    }

    // Not async (ref parameter): dispatches the complete PDUs at the head of the buffer, one awaited event at a time.
    private ValueTask DispatchPdusAsync(ref ReadOnlySequence<byte> buffer)
    {
        var pdus = new List<(UlEvent, object?)>();
        Span<byte> h = stackalloc byte[PduCodec.HeaderLength];
        while (true)
        {
            if (buffer.Length < PduCodec.HeaderLength) break;
            buffer.Slice(0, PduCodec.HeaderLength).CopyTo(h);
            byte type = h[0];
            uint length = BinaryPrimitives.ReadUInt32BigEndian(h[2..]);
            if (!PduCodec.IsKnownType(type))
            {
                pdus.Add((UlEvent.Evt19, new PduFormatException(Pdus.Abort.UnrecognizedPdu, $"unrecognized PDU type {type:X2}H")));
                _discarding = true;
                buffer = buffer.Slice(buffer.End);
                break;
            }
            uint limit = (PduType)type switch
            {
                PduType.PData => _options.MaxReceivePduLength,
                PduType.AssociateRequest or PduType.AssociateAccept => _options.MaxAssociatePduLength,
                _ => 64,
            };
            if (length > limit)
            {
                pdus.Add((UlEvent.Evt19, new PduFormatException(Pdus.Abort.InvalidPduParameterValue,
                    $"{(PduType)type} PDU length {length} exceeds the maximum of {limit}")));
                _discarding = true;
                buffer = buffer.Slice(buffer.End);
                break;
            }
            if (buffer.Length < PduCodec.HeaderLength + length) break;
            var body = buffer.Slice(PduCodec.HeaderLength, length);
            buffer = buffer.Slice(PduCodec.HeaderLength + length);
            pdus.Add(Classify((PduType)type, body));
            if (type is (byte)PduType.Abort or (byte)PduType.AssociateReject or (byte)PduType.ReleaseResponse) break;
        }
        return pdus.Count == 0 ? ValueTask.CompletedTask : DispatchAllAsync(pdus);
    }

    private async ValueTask DispatchAllAsync(List<(UlEvent Event, object? Argument)> pdus)
    {
        foreach (var (evt, arg) in pdus)
        {
            if (_machine.State == UlState.Sta1) return;
            try
            {
                await FireIfPossibleAsync(evt, arg);
            }
            catch (Exception e) when (e is PduFormatException or DimseFormatException)
            {
                // A P-DATA-TF whose PDVs or DIMSE message break the standard: the PDU was invalid after all.
                var invalid = e as PduFormatException ?? new PduFormatException(Pdus.Abort.InvalidPduParameterValue, e.Message);
                _endReason ??= invalid.Message;
                _log.LogWarning("{Association}: {Reason}; aborting", Info, invalid.Message);
                _discarding = true;
                await FireIfPossibleAsync(UlEvent.Evt19, invalid);
                return;
            }
        }
    }

    private static (UlEvent, object?) Classify(PduType type, ReadOnlySequence<byte> body)
    {
        try
        {
            var pdu = PduCodec.Decode(type, body);
            return (pdu switch
            {
                AssociateRequest => UlEvent.Evt6,
                AssociateAccept => UlEvent.Evt3,
                AssociateReject => UlEvent.Evt4,
                PDataReceived => UlEvent.Evt10,
                ReleaseRequest => UlEvent.Evt12,
                ReleaseResponse => UlEvent.Evt13,
                _ => UlEvent.Evt16,
            }, pdu);
        }
        catch (PduFormatException e)
        {
            return (UlEvent.Evt19, e);
        }
    }

    private void ArmReadTimer()
    {
        long now = Environment.TickCount64;
        TimeSpan timeout;
        if (_artimDeadline != 0) timeout = TimeSpan.FromMilliseconds(Math.Max(0, _artimDeadline - now));
        else if (_machine.State is UlState.Sta5 or UlState.Sta7 or UlState.Sta13 or UlState.Sta2) timeout = _options.ArtimTimeout;
        else if (_partialPdu || _incoming is not null || !_pending.IsEmpty) timeout = _options.DimseTimeout;
        else timeout = _options.IdleTimeout;
        _readDeadline = now + (long)timeout.TotalMilliseconds;
        _readTimer.Change(timeout, Timeout.InfiniteTimeSpan);
    }

    private async ValueTask OnReadTimerAsync()
    {
        long now = Environment.TickCount64;
        if (_artimDeadline != 0 && now >= _artimDeadline)
        {
            _endReason ??= $"ARTIM timer expired in {_machine.State}";
            _log.LogWarning("{Association}: {Reason}", Info, _endReason);
            await FireIfPossibleAsync(UlEvent.Evt18);
            return;
        }
        if (_artimDeadline != 0 || now < _readDeadline) return; // a timer rearmed or fired late: read again
        string what = _partialPdu || _incoming is not null ? "in the middle of a message" : !_pending.IsEmpty ? "while a response was awaited" : "while idle";
        _endReason ??= $"timed out {what} (state {_machine.State})";
        _log.LogWarning("{Association}: {Reason}; aborting", Info, _endReason);
        await FireIfPossibleAsync(UlEvent.Evt15);
    }

    private async ValueTask EndAsync()
    {
        _readTimer.Change(Timeout.Infinite, Timeout.Infinite);
        CloseTransport();
        var reason = _endReason ?? "the association ended";
        foreach (var p in _pending.Values) p.Completion.TrySetException(new DicomAssociationException(reason));
        _pending.Clear();
        _associateConfirmation?.TrySetException(new DicomAssociationException(reason));
        _releaseConfirmation?.TrySetException(new DicomAssociationException(reason));
        if (_incoming is { } m)
        {
            _incoming = null;
            await m.DisposeAsync();
        }
        Task[] responders;
        lock (_responders) responders = [.. _responders];
        try { await Task.WhenAll(responders).WaitAsync(_options.DimseTimeout); }
        catch (Exception e) { _log.LogDebug(e, "{Association}: responders ended with an error", Info); }
        try { await _reader!.CompleteAsync(); } catch (Exception e) when (e is IOException or ObjectDisposedException or InvalidOperationException) { }
        _closed.TrySetResult();
    }

    // ================================================================== IUpperLayerPort

    async ValueTask IUpperLayerPort.ConnectTransportAsync()
    {
        _transport = await _options.Connector.ConnectAsync(_connectHost!, _connectPort, _options.ConnectTimeout, CancellationToken.None);
        Info = Info with { RemoteEndPoint = _transport.RemoteEndPoint };
        OpenStream();
    }

    private void OpenStream()
    {
        _reader = _transport!.Input;
        _writer = _transport.Output;
    }

    async ValueTask IUpperLayerPort.SendAsync(Pdu pdu)
    {
        var bytes = PduCodec.Encode(pdu);
        _writer!.Write(bytes);
        await FlushAsync();
        if (pdu is Pdus.Abort ab) _log.LogDebug("{Association}: sent A-ABORT ({Reason})", Info, ab.Describe());
    }

    ValueTask IUpperLayerPort.SendPDataAsync(PDataRequest request) => request.Write(CancellationToken.None);

    private async ValueTask FlushAsync()
    {
        _writeTimeout.CancelAfter(_options.DimseTimeout);
        try
        {
            await _writer!.FlushAsync(_writeTimeout.Token);
        }
        catch (OperationCanceledException)
        {
            _endReason ??= "the peer stopped reading (write timed out)";
            CloseTransport();
            throw new IOException(_endReason);
        }
        finally
        {
            _ = _writeTimeout.TryReset(); // false after a timeout, when the transport is closed anyway
        }
    }

    public void CloseTransport() => _transport?.Close();

    void IUpperLayerPort.StartArtim()
    {
        var artim = _options.ArtimTimeout;
        _artimDeadline = Environment.TickCount64 + (long)artim.TotalMilliseconds;
        // Wake a read that waits with a longer timeout (e.g. idle) so the loop rearms with ARTIM.
        _readTimer.Change(artim, Timeout.InfiniteTimeSpan);
    }

    void IUpperLayerPort.StopArtim() => _artimDeadline = 0;

    ValueTask IUpperLayerPort.AssociateIndicationAsync(AssociateRequest request)
    {
        Request = request;
        Info = new AssociationInfo(request.CallingAE, request.CalledAE, Info.RemoteEndPoint, request.UserInformation.ImplementationClassUid,
            request.UserInformation.ImplementationVersionName) { Id = Info.Id, CertificateSubject = Info.CertificateSubject };
        _afterGate.Add(() => RespondToAssociationAsync(request));
        return ValueTask.CompletedTask;
    }

    private async ValueTask RespondToAssociationAsync(AssociateRequest request)
    {
        var policy = _services?.Policy ?? new AssociationPolicy();
        var (peer, refusal) = policy.Peers.Admit(request.CallingAE, (Info.RemoteEndPoint as IPEndPoint)?.Address, Info.CertificateSubject);
        Info = Info with { Peer = peer };
        Pdu answer = _overloaded
            ? new AssociateReject(RejectResult.Transient, RejectSource.ServiceProviderPresentation, AssociateReject.LocalLimitExceeded)
            : refusal is not null
            ? new AssociateReject(RejectResult.Permanent, RejectSource.ServiceUser, AssociateReject.CallingAENotRecognized)
            : policy.Negotiate(request, _options.MaxReceivePduLength, peer);
        if (refusal is not null && !_overloaded) _log.LogWarning("{Association}: {Refusal}", Info, refusal);
        if (answer is AssociateAccept ac)
        {
            Accept = ac;
            SetContexts(request, ac);
            _log.LogInformation("{Association}: association accepted, {Accepted} of {Proposed} presentation contexts", Info,
                ac.PresentationContexts.Count(c => c.Result == PresentationContextResultReason.Acceptance), request.PresentationContexts.Count);
            _services?.Observer?.Accepted(Info);
            await FireAsync(UlEvent.Evt7, ac);
        }
        else
        {
            var rj = (AssociateReject)answer;
            _endReason = rj.Describe();
            _log.LogWarning("{Association}: association rejected: {Reason}", Info, rj.Describe());
            _services?.Observer?.Rejected(Info, refusal is not null && !_overloaded ? $"{rj.Describe()}: {refusal}" : rj.Describe());
            await FireAsync(UlEvent.Evt8, rj);
        }
    }

    private void SetContexts(AssociateRequest rq, AssociateAccept ac)
    {
        _contexts.Clear();
        foreach (var r in ac.PresentationContexts)
        {
            var proposal = rq.PresentationContexts.FirstOrDefault(p => p.Id == r.Id);
            if (proposal is null) continue;
            _contexts[r.Id] = new PresentationContext(r.Id, proposal.AbstractSyntax, r.Result, r.TransferSyntax);
        }
        _peerMaxPdu = (_machine.IsRequestor ? ac.UserInformation.MaximumLength : rq.UserInformation.MaximumLength) is var m and > 0 ? m : uint.MaxValue;
        // Asynchronous operations window (PS3.7 D.3.3.3): the AC's invoked value bounds what the requestor invokes.
        int invoked = ac.UserInformation.AsyncOperations is { } w ? (w.Invoked == 0 ? 64 : w.Invoked) : 1;
        if (rq.UserInformation.AsyncOperations is null) invoked = 1;
        if (_machine.IsRequestor)
        {
            MaxInvokedOperations = invoked;
            _invokeSlots = new SemaphoreSlim(invoked, invoked);
        }
        else
        {
            _performSlots = new SemaphoreSlim(invoked, invoked);
        }
    }

    void IUpperLayerPort.AssociateConfirmation(Pdu acceptOrReject)
    {
        if (acceptOrReject is AssociateAccept ac)
        {
            Accept = ac;
            Info = Info with { ImplementationClassUid = ac.UserInformation.ImplementationClassUid, ImplementationVersionName = ac.UserInformation.ImplementationVersionName };
            SetContexts(Request!, ac);
        }
        else if (acceptOrReject is AssociateReject rj)
        {
            _endReason = "association rejected: " + rj.Describe();
        }
        _afterGate.Add(() =>
        {
            _associateConfirmation?.TrySetResult(acceptOrReject);
            return ValueTask.CompletedTask;
        });
    }

    ValueTask IUpperLayerPort.PDataIndicationAsync(PDataReceived data)
    {
        _afterGate.Add(() => OnPDataAsync(data.Body));
        return ValueTask.CompletedTask;
    }

    void IUpperLayerPort.ReleaseIndication()
    {
        _afterGate.Add(async () =>
        {
            if (_machine.State == UlState.Sta8)
            {
                // Let outstanding operations answer first (P-DATA is still allowed in Sta8, AR-7), then A-RELEASE-RP.
                _ = Task.Run(async () =>
                {
                    Task[] running;
                    lock (_responders) running = [.. _responders];
                    try { await Task.WhenAll(running).WaitAsync(_options.DimseTimeout); }
                    catch (Exception e) { _log.LogDebug(e, "{Association}: operations did not finish before release", Info); }
                    try { await FireIfPossibleAsync(UlEvent.Evt14); }
                    catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException) { }
                });
            }
            else if (_machine.State == UlState.Sta9)
            {
                await FireIfPossibleAsync(UlEvent.Evt14); // release collision, requestor side
            }
        });
    }

    void IUpperLayerPort.ReleaseConfirmation()
    {
        _afterGate.Add(async () =>
        {
            if (_machine.State == UlState.Sta12) await FireIfPossibleAsync(UlEvent.Evt14); // release collision, acceptor side
            _releaseConfirmation?.TrySetResult();
        });
    }

    void IUpperLayerPort.AbortIndication(Pdus.Abort abort)
    {
        _endReason ??= "the peer aborted the association";
        _log.LogInformation("{Association}: {Reason}", Info, _endReason);
    }

    void IUpperLayerPort.ProviderAbortIndication(string reason)
    {
        _endReason ??= reason;
        if (_machine.State is not (UlState.Sta13 or UlState.Sta1)) _log.LogInformation("{Association}: provider abort: {Reason}", Info, reason);
    }

    // ================================================================== DIMSE: receiving

    private async ValueTask OnPDataAsync(ReadOnlySequence<byte> body)
    {
        var rest = body;
        while (!rest.IsEmpty)
        {
            var (length, pcId, control) = ReadPdvHeader(rest);
            var data = rest.Slice(6, length - 2);
            rest = rest.Slice(4 + length);
            await OnPdvAsync(pcId, (control & 1) != 0, (control & 2) != 0, data);
        }
    }

    private static (long Length, byte PresentationContextId, byte Control) ReadPdvHeader(ReadOnlySequence<byte> rest)
    {
        // PDV item: item length (uint32 BE, counts the two bytes below and the fragment) | PC ID | message control header
        if (rest.Length < 6) throw new PduFormatException(Pdus.Abort.InvalidPduParameterValue, $"P-DATA-TF ends with {rest.Length} bytes, too few for a PDV item");
        Span<byte> h = stackalloc byte[6];
        rest.Slice(0, 6).CopyTo(h);
        long length = BinaryPrimitives.ReadUInt32BigEndian(h);
        if (length < 2 || length > rest.Length - 4)
            throw new PduFormatException(Pdus.Abort.InvalidPduParameterValue, $"PDV item length {length} does not fit the P-DATA-TF ({rest.Length - 4} bytes remain)");
        if ((h[5] & 0xFC) != 0) throw new PduFormatException(Pdus.Abort.InvalidPduParameterValue, $"PDV message control header {h[5]:X2}H has reserved bits set");
        return (length, h[4], h[5]);
    }

    private async ValueTask OnPdvAsync(byte pcId, bool isCommand, bool isLast, ReadOnlySequence<byte> data)
    {
        if (!_contexts.TryGetValue(pcId, out var context) || !context.Accepted)
            throw new DimseFormatException($"a PDV arrived on presentation context {pcId}, which was not accepted");
        if (_incoming is { } m && m.PresentationContextId != pcId)
            throw new DimseFormatException($"a PDV on presentation context {pcId} interrupts a message on context {m.PresentationContextId}");
        if (isCommand)
        {
            _incoming ??= new IncomingMessage(pcId);
            var msg = _incoming;
            if (msg.Command is not null) throw new DimseFormatException($"a command fragment arrived while the data set of {msg.Command} was expected");
            if (msg.CommandBytes.WrittenCount + data.Length > DimseCommand.MaxEncodedLength)
                throw new DimseFormatException($"the command set is longer than {DimseCommand.MaxEncodedLength} bytes");
            foreach (var segment in data) msg.CommandBytes.Write(segment.Span);
            if (!isLast) return;
            msg.Command = DimseCommand.Decode(new ReadOnlySequence<byte>(msg.CommandBytes.WrittenMemory));
            if (!msg.Command.HasDataSet)
            {
                _incoming = null;
                await OnMessageAsync(msg, context);
                return;
            }
            await OpenTargetAsync(msg, context);
        }
        else
        {
            var msg = _incoming;
            if (msg?.Command is null) throw new DimseFormatException("a data set fragment arrived before the command that announces it");
            await msg.WriteAsync(data, _options.MaxInMemoryDataSetLength);
            if (!isLast) return;
            _incoming = null;
            await OnMessageAsync(msg, context);
        }
    }

    /// <summary>
    /// The command arrived and announces a data set: a service whose data set streams (C-STORE) opens its sink now, after
    /// a slot of the window is free; other data sets are small and kept in memory (bounded).
    /// </summary>
    private async ValueTask OpenTargetAsync(IncomingMessage msg, PresentationContext context)
    {
        var cmd = msg.Command!;
        if (_registry.Find(cmd.Field) is not { StreamsDataSet: true } service) return;
        // Back-pressure: at most the negotiated number of stores are performed at once; reading stops until one answers.
        await _performSlots.WaitAsync();
        msg.HoldsPerformSlot = true;
        msg.Operation = new DimseOperation(this, cmd, context, _log);
        try
        {
            msg.Sink = await service.OpenDataSetAsync(msg.Operation);
        }
        catch (DimseException e)
        {
            msg.Refuse(new DimseResult(e.Status, e.Message));
        }
    }

    private ValueTask OnMessageAsync(IncomingMessage msg, PresentationContext context)
    {
        var cmd = msg.Command!;
        if (cmd.IsResponse)
        {
            if (!_pending.TryGetValue(cmd.MessageIdBeingRespondedTo, out var pending))
            {
                _log.LogWarning("{Association}: a response to message {Id}, which is not outstanding, was ignored", Info, cmd.MessageIdBeingRespondedTo);
                return ValueTask.CompletedTask;
            }
            var ds = msg.MemoryData is { } bytes ? DimseDataSets.Parse(bytes.WrittenMemory, context.TransferSyntax) : null;
            var response = new DimseResponse(cmd, ds);
            if (cmd.Status.IsPending) pending.OnPending?.Invoke(response);
            else if (_pending.TryRemove(cmd.MessageIdBeingRespondedTo, out _)) pending.Completion.TrySetResult(response);
            return ValueTask.CompletedTask;
        }
        if (cmd.Field == DimseCommandField.CCancelRequest)
        {
            // C-FIND, C-MOVE and C-GET stop at their next match or sub-operation; a cancel for anything else is ignored.
            if (_cancellable.TryGetValue(cmd.MessageIdBeingRespondedTo, out var cancel)) cancel.Cancel();
            return ValueTask.CompletedTask;
        }
        if (_registry.Find(cmd.Field) is not { } service)
        {
            Respond(msg, () => Task.FromResult<DimseCommand?>(DimseCommand.UnrecognizedResponse(cmd, $"{cmd.Field} is not supported by this AE")));
            return ValueTask.CompletedTask;
        }
        Perform(service, msg, context);
        return ValueTask.CompletedTask;
    }

    private void Respond(IncomingMessage msg, Func<Task<DimseCommand?>> perform)
    {
        var task = Task.Run(async () =>
        {
            try
            {
                // Null: the operation sent its final response itself (one with a data set).
                if (await perform() is { } response) await SendMessageAsync(msg.PresentationContextId, response, null, 0, CancellationToken.None);
            }
            catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException or DicomAssociationException)
            {
                _log.LogInformation("{Association}: the response to {Command} could not be sent: {Reason}", Info, msg.Command, e.Message);
            }
            finally
            {
                if (msg.HoldsPerformSlot) _performSlots.Release();
                await msg.DisposeAsync();
            }
        });
        lock (_responders) _responders.Add(task);
        _ = task.ContinueWith(t => { lock (_responders) _responders.Remove(t); }, TaskScheduler.Default);
    }

    /// <summary>
    /// Performs a request through its service, off the read loop (which keeps reading C-CANCEL and, for C-GET, the
    /// C-STORE responses). A windowed service (query, retrieve) takes a slot of the negotiated asynchronous operations
    /// window or is refused at once, and is cancellable by C-CANCEL; a streaming one (store) took its slot when its
    /// data set began.
    /// </summary>
    private void Perform(DimseService service, IncomingMessage msg, PresentationContext context)
    {
        var cmd = msg.Command!;
        var operation = msg.Operation ?? new DimseOperation(this, cmd, context, _log);
        operation.DataSetBytes = msg.MemoryData?.WrittenMemory;
        operation.Sink = msg.Sink;
        operation.Refusal = msg.Refusal;
        CancellationTokenSource? cts = null;
        if (service.Windowed)
        {
            if (!_performSlots.Wait(0))
            {
                RespondWith(msg, context, _ => Task.FromResult(service.Refuse(cmd, cmd.Field == DimseCommandField.CFindRequest ? DimseStatus.QueryOutOfResources
                    : DimseStatus.RetrieveOutOfResourcesSubOperations, "more operations at once than the negotiated asynchronous operations window")), null);
                return;
            }
            msg.HoldsPerformSlot = true;
            cts = new CancellationTokenSource();
            if (!_cancellable.TryAdd(cmd.MessageId, cts))
            {
                cts.Dispose();
                RespondWith(msg, context, _ => Task.FromResult(service.Refuse(cmd, DimseStatus.DuplicateInvocation, $"message ID {cmd.MessageId} is already being performed")), null);
                return;
            }
            operation.Cancellation = cts.Token;
        }
        RespondWith(msg, context, async sendPending =>
        {
            operation.SendPending = sendPending;
            try
            {
                return await service.PerformAsync(operation);
            }
            catch (Exception e) when (e is not (IOException or SocketException or ObjectDisposedException or DicomAssociationException))
            {
                _log.LogError(e, "{Association}: {Command} failed", Info, cmd);
                return service.Refuse(cmd, DimseStatus.UnableToProcess, "unable to process: " + e.Message);
            }
        }, cts is null ? null : () =>
        {
            _cancellable.TryRemove(cmd.MessageId, out _);
            cts.Dispose();
        });
    }

    /// <summary>Like <see cref="Respond"/>, for operations that send pending responses (with data sets) before the final one.</summary>
    private void RespondWith(IncomingMessage msg, PresentationContext context, Func<Func<DimseReply, Task>, Task<DimseReply>> perform, Action? cleanup)
    {
        async Task Send(DimseReply reply)
        {
            if (reply.DataSet is null)
            {
                await SendMessageAsync(msg.PresentationContextId, reply.Command, null, 0, CancellationToken.None);
                return;
            }
            using var encoded = EncodeDataSet(reply.DataSet, context.TransferSyntax);
            await SendMessageAsync(msg.PresentationContextId, reply.Command, encoded, encoded.Length, CancellationToken.None);
        }
        Respond(msg, async () =>
        {
            try
            {
                var final = await perform(Send);
                if (final.DataSet is null) return final.Command;
                await Send(final);
                return null;
            }
            finally
            {
                cleanup?.Invoke();
            }
        });
    }

    /// <summary>A response's data set, encoded in the presentation context's syntax (deflated when the syntax is).</summary>
    private static MemoryStream EncodeDataSet(DicomDataset dataSet, DicomTransferSyntax syntax)
    {
        var ms = new MemoryStream();
        if (syntax.IsDeflated)
        {
            using (var deflate = new System.IO.Compression.DeflateStream(ms, System.IO.Compression.CompressionLevel.Fastest, leaveOpen: true))
                DicomWriter.WriteDataset(deflate, dataSet, DicomTransferSyntax.ExplicitVRLittleEndian);
            if (ms.Length % 2 == 1) ms.WriteByte(0);
        }
        else
        {
            DicomWriter.WriteDataset(ms, dataSet, syntax);
        }
        ms.Position = 0;
        return ms;
    }

    // ================================================================== DIMSE: sending

    /// <summary>Sends one message (command, then data set) as P-DATA-TF PDUs, one PDV each; messages never interleave.</summary>
    private async Task SendMessageAsync(byte pcId, DimseCommand command, Stream? dataSet, long dataSetLength, CancellationToken cancellationToken)
    {
        // An operation refused for want of permission, whichever service refused it: the audit trail hears of it.
        if (!_machine.IsRequestor && command.IsResponse && command.Status == DimseStatus.NotAuthorized)
            _services?.Observer?.Refused(Info, command.Field, command.ErrorComment ?? "not authorized");
        var commandBytes = command.Encode();
        int maxFragment = (int)Math.Min(Math.Min(_peerMaxPdu, _options.MaxSendPduLength), int.MaxValue) - 6;
        if (maxFragment < 2) maxFragment = 16 * 1024 - 6;
        await _sendLock.WaitAsync(cancellationToken);
        try
        {
            for (int offset = 0; offset < commandBytes.Length; offset += maxFragment)
            {
                int n = Math.Min(maxFragment, commandBytes.Length - offset);
                bool last = offset + n == commandBytes.Length;
                var slice = new ReadOnlyMemory<byte>(commandBytes, offset, n);
                await FireAsync(UlEvent.Evt9, new PDataRequest(_ => WritePdvAsync(pcId, true, last, slice, endOfMessage: last && dataSet is null)));
            }
            if (dataSet is null) return;
            // One P-DATA request (Evt9: Sta6 stays Sta6) writes the PDUs of up to 256 KiB, so the machine's gate is taken
            // per flush rather than per PDU, yet incoming events (an A-ABORT) still get in between on a large data set.
            long remaining = dataSetLength;
            do
            {
                long chunk = Math.Min(remaining, Math.Max(maxFragment, FlushThreshold));
                remaining -= chunk;
                bool lastChunk = remaining == 0;
                await FireAsync(UlEvent.Evt9, new PDataRequest(async _ =>
                {
                    for (long left = chunk; left > 0;)
                    {
                        int n = (int)Math.Min(maxFragment, left);
                        left -= n;
                        await WritePdvFromStreamAsync(pcId, lastChunk && left == 0, dataSet, n);
                    }
                }));
            }
            while (remaining > 0);
        }
        finally
        {
            _sendLock.Release();
        }
    }

    /// <summary>
    /// P-DATA PDUs of one message are flushed to the socket together (at the message's end, or every 256 KiB), not one
    /// by one: a peer with 16 KB PDUs would otherwise cost a send per 16 KB.
    /// </summary>
    private const int FlushThreshold = 256 * 1024;
    private int _unflushed; // bytes of P-DATA written and not flushed; touched only under _sendLock

    private async ValueTask WritePdvAsync(byte pcId, bool command, bool last, ReadOnlyMemory<byte> fragment, bool endOfMessage)
    {
        var memory = _writer!.GetMemory(PduCodec.PDataOverhead + fragment.Length);
        PduCodec.WritePDataHeader(memory.Span, pcId, command, last, fragment.Length);
        fragment.Span.CopyTo(memory.Span[PduCodec.PDataOverhead..]);
        _writer.Advance(PduCodec.PDataOverhead + fragment.Length);
        await FlushIfDueAsync(PduCodec.PDataOverhead + fragment.Length, endOfMessage);
    }

    private async ValueTask WritePdvFromStreamAsync(byte pcId, bool last, Stream source, int length)
    {
        var memory = _writer!.GetMemory(PduCodec.PDataOverhead + length);
        PduCodec.WritePDataHeader(memory.Span, pcId, false, last, length);
        int read = await source.ReadAtLeastAsync(memory.Slice(PduCodec.PDataOverhead, length), length, throwOnEndOfStream: false);
        if (read != length) throw new IOException($"the data set source ended {length - read} bytes early");
        _writer.Advance(PduCodec.PDataOverhead + length);
        await FlushIfDueAsync(PduCodec.PDataOverhead + length, last);
    }

    private async ValueTask FlushIfDueAsync(int written, bool endOfMessage)
    {
        _unflushed += written;
        if (!endOfMessage && _unflushed < FlushThreshold) return;
        _unflushed = 0;
        await FlushAsync();
    }

    // ================================================================== helpers

    private sealed class PendingRequest(Action<DimseResponse>? onPending)
    {
        public Action<DimseResponse>? OnPending { get; } = onPending;
        public TaskCompletionSource<DimseResponse> Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }
}
