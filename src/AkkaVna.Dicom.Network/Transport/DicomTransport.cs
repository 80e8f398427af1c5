using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;

namespace AkkaVna.Dicom.Network.Transport;

/// <summary>
/// The byte stream an association runs over, as a duplex pipe: the association reads PDUs from <see cref="Input"/> and
/// writes them to <see cref="Output"/>, and knows nothing else of the connection. TCP supplies one today
/// (<see cref="TcpTransport"/>); TLS over TCP supplies one the same way, and tests plug in in-memory pipes.
/// </summary>
public interface IDicomTransport : IAsyncDisposable
{
    PipeReader Input { get; }

    PipeWriter Output { get; }

    /// <summary>The peer, for logs and access control (null when the transport has no address).</summary>
    EndPoint? RemoteEndPoint { get; }

    /// <summary>The subject of the certificate the peer presented in a TLS handshake (null: none, or not TLS), for access control.</summary>
    string? PeerCertificateSubject => null;

    /// <summary>Ends the connection at once in both directions (the association's last act, or an abort); idempotent.</summary>
    void Close();
}

/// <summary>Opens transports to peers: what a requestor (an SCU, a C-MOVE sub-operation) connects with.</summary>
public interface IDicomConnector
{
    /// <summary>Connects within <paramref name="timeout"/>; throws <see cref="SocketException"/>, <see cref="IOException"/> or <see cref="OperationCanceledException"/>.</summary>
    ValueTask<IDicomTransport> ConnectAsync(string host, int port, TimeSpan timeout, CancellationToken cancellationToken);
}

/// <summary>Wraps an accepted connection in the transport the server speaks (plain TCP, or TLS over it).</summary>
public interface IDicomAcceptor
{
    ValueTask<IDicomTransport> AcceptAsync(Socket socket, CancellationToken cancellationToken);
}

/// <summary>
/// A TCP connection (TCP_NODELAY) read and written through System.IO.Pipelines: reads of up to 256 KiB into the pipe's
/// buffers, writes flushed by the association when a message (or 256 KiB of it) is complete.
/// </summary>
public sealed class TcpTransport : IDicomTransport
{
    /// <summary>Plain TCP for both sides (no state: shared).</summary>
    public static readonly Plain Tcp = new();

    private readonly Socket _socket;
    private readonly Stream _stream;
    private int _closed;

    /// <param name="over">A stream the connection is read and written through instead of the socket's own (a TLS stream over it).</param>
    public TcpTransport(Socket socket, Stream? over = null, string? peerCertificateSubject = null)
    {
        PeerCertificateSubject = peerCertificateSubject;
        _socket = socket;
        _socket.NoDelay = true;
        RemoteEndPoint = socket.RemoteEndPoint;
        _stream = over ?? new NetworkStream(socket, ownsSocket: false);
        Input = PipeReader.Create(_stream, new StreamPipeReaderOptions(bufferSize: 256 * 1024, minimumReadSize: 64 * 1024, leaveOpen: true));
        Output = PipeWriter.Create(_stream, new StreamPipeWriterOptions(minimumBufferSize: 64 * 1024, leaveOpen: true));
    }

    public PipeReader Input { get; }
    public PipeWriter Output { get; }
    public EndPoint? RemoteEndPoint { get; }
    public string? PeerCertificateSubject { get; }

    public void Close()
    {
        if (Interlocked.Exchange(ref _closed, 1) != 0) return;
        try { _socket.Shutdown(SocketShutdown.Both); } catch (Exception e) when (e is SocketException or ObjectDisposedException) { }
        _socket.Close();
    }

    public async ValueTask DisposeAsync()
    {
        Close();
        await _stream.DisposeAsync().ConfigureAwait(false);
        _socket.Dispose();
    }

    /// <summary>Connects and accepts plain TCP.</summary>
    public sealed class Plain : IDicomConnector, IDicomAcceptor
    {
        public async ValueTask<IDicomTransport> ConnectAsync(string host, int port, TimeSpan timeout, CancellationToken cancellationToken)
        {
            var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            try
            {
                using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
                cts.CancelAfter(timeout);
                await socket.ConnectAsync(host, port, cts.Token).ConfigureAwait(false);
                return new TcpTransport(socket);
            }
            catch
            {
                socket.Dispose();
                throw;
            }
        }

        public ValueTask<IDicomTransport> AcceptAsync(Socket socket, CancellationToken cancellationToken) => ValueTask.FromResult<IDicomTransport>(new TcpTransport(socket));
    }
}
