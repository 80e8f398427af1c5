using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using AkkaVna.Dicom.Network.Transport;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace AkkaVna.Dicom.Network;

public sealed record DicomServerOptions
{
    /// <summary>Address to listen on; 127.0.0.1 unless configured otherwise.</summary>
    public IPAddress BindAddress { get; init; } = IPAddress.Loopback;

    /// <summary>TCP port; 0 picks a free one (see <see cref="DicomServer.LocalEndPoint"/>).</summary>
    public int Port { get; init; } = 11112;

    /// <summary>Associations served at once; one more is answered with A-ASSOCIATE-RJ (transient, local limit exceeded).</summary>
    public int MaxAssociations { get; init; } = 256;

    public DicomAssociationOptions Association { get; init; } = new();

    /// <summary>The transport accepted connections are wrapped in: plain TCP unless another (TLS) is given.</summary>
    public Transport.IDicomAcceptor Acceptor { get; init; } = Transport.TcpTransport.Tcp;
}

/// <summary>
/// A DICOM SCP: accepts TCP connections and runs each as an association with the given services. The accept loop never
/// waits on an association: each runs on its own, bounded by its timers, and a slow one holds only its own connection.
/// </summary>
public sealed class DicomServer(DicomServerOptions options, DicomServices services, ILoggerFactory? loggerFactory = null) : IAsyncDisposable
{
    private readonly ILogger _log = (loggerFactory ?? NullLoggerFactory.Instance).CreateLogger("AkkaVna.Dicom.Network.Server");
    private readonly ILogger _associationLog = (loggerFactory ?? NullLoggerFactory.Instance).CreateLogger("AkkaVna.Dicom.Network.Association");
    private readonly ConcurrentDictionary<Task, DicomAssociation?> _running = new();
    private readonly CancellationTokenSource _stopping = new();
    private Socket? _listener;
    private Task? _acceptLoop;
    private int _active;
    // Association numbers: a random high half per server, so two servers of one process (plain and TLS) never share one.
    private long _nextId = (long)Random.Shared.Next() << 32;

    public IPEndPoint LocalEndPoint => (IPEndPoint)(_listener?.LocalEndPoint ?? throw new InvalidOperationException("the server is not started"));

    public int ActiveAssociations => Volatile.Read(ref _active);

    public void Start()
    {
        var listener = new Socket(options.BindAddress.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        listener.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
        listener.Bind(new IPEndPoint(options.BindAddress, options.Port));
        listener.Listen(512);
        _listener = listener;
        _log.LogInformation("DICOM SCP listening on {EndPoint}, AE titles {AETitles}", LocalEndPoint,
            services.Policy.CalledAETitles.Count == 0 ? "(any)" : string.Join(",", services.Policy.CalledAETitles));
        _acceptLoop = Task.Run(AcceptLoopAsync);
    }

    private async Task AcceptLoopAsync()
    {
        while (!_stopping.IsCancellationRequested)
        {
            Socket socket;
            try
            {
                socket = await _listener!.AcceptAsync(_stopping.Token);
            }
            catch (OperationCanceledException) { break; }
            catch (ObjectDisposedException) { break; }
            catch (SocketException e)
            {
                _log.LogWarning("accept failed: {Error}", e.Message);
                continue;
            }
            _ = Serve(socket, transport: null);
        }
    }

    /// <summary>
    /// Runs an association over a transport that did not come from this server's listener (in-memory pipes in tests, a
    /// connection accepted elsewhere), with this server's services, limits and stop; completes when it ends.
    /// </summary>
    public Task ServeAsync(IDicomTransport transport) => Serve(null, transport);

    private Task Serve(Socket? socket, IDicomTransport? transport)
    {
        int active = Interlocked.Increment(ref _active);
        bool overloaded = active > options.MaxAssociations;
        var started = new TaskCompletionSource<DicomAssociation>();
        var task = Task.Run(async () =>
        {
            try
            {
                transport ??= await options.Acceptor.AcceptAsync(socket!, _stopping.Token);
                await DicomAssociation.RunAcceptorAsync(transport, services, options.Association, _associationLog, overloaded, a => started.TrySetResult(a),
                    Interlocked.Increment(ref _nextId));
            }
            catch (Transport.TlsHandshakeException e)
            {
                _log.LogWarning("{Reason}; connection closed", e.Message);
                services.Observer?.ConnectionRefused(socket?.RemoteEndPoint, e.Message);
            }
            catch (Exception e)
            {
                _log.LogError(e, "association from {Remote} failed", transport?.RemoteEndPoint ?? socket?.RemoteEndPoint);
            }
            finally
            {
                Interlocked.Decrement(ref _active);
                if (transport is not null) await transport.DisposeAsync();
                socket?.Dispose();
            }
        });
        _running[task] = null;
        _ = started.Task.ContinueWith(t => _running.TryUpdate(task, t.Result, null), TaskContinuationOptions.OnlyOnRanToCompletion);
        _ = task.ContinueWith(t => _running.TryRemove(t, out _), TaskScheduler.Default);
        return task;
    }

    /// <summary>Stops accepting, lets running associations finish for <paramref name="grace"/>, then aborts the rest.</summary>
    public async Task StopAsync(TimeSpan grace)
    {
        if (_listener is null) return;
        await _stopping.CancelAsync();
        _listener.Dispose();
        if (_acceptLoop is not null) await _acceptLoop;
        var all = _running.Keys.ToArray();
        if (all.Length == 0) return;
        _log.LogInformation("waiting up to {Grace} for {Count} association(s) to finish", grace, all.Length);
        try
        {
            await Task.WhenAll(all).WaitAsync(grace);
        }
        catch (TimeoutException)
        {
            foreach (var a in _running.Values)
                if (a is not null) await a.AbortAsync("the server is shutting down");
            await Task.WhenAll(_running.Keys.ToArray()).WaitAsync(options.Association.ArtimTimeout).ContinueWith(_ => { }, TaskScheduler.Default);
        }
    }

    public async ValueTask DisposeAsync() => await StopAsync(TimeSpan.FromSeconds(5));
}
