using System.Net;
using System.Net.Sockets;

namespace AkkaVna.Testing;

public static class Ports
{
    /// <summary>A TCP port free on 127.0.0.1 now (for a server whose port must be known before it starts).</summary>
    public static int Free()
    {
        using var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        return ((IPEndPoint)l.LocalEndpoint).Port;
    }
}
