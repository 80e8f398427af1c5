using System.Diagnostics;
using System.Globalization;

namespace AkkaVna.Testing;

/// <summary>
/// A private network namespace with only its loopback up, held open by a sleeping process: servers that cannot bind to
/// 127.0.0.1 alone (dcmtk's storescp, Orthanc) run in it, and so do their clients — akka-vna as a C-MOVE SCU, the dcmtk
/// tools, curl — through <c>nsenter</c>. Nothing in it is reachable from the host's network.
/// </summary>
public sealed class NetworkNamespace : IDisposable
{
    private readonly Process _holder;

    public NetworkNamespace()
    {
        // unshare runs bash in the new namespace, which brings loopback up and becomes the sleeper (same PID).
        var psi = new ProcessStartInfo("unshare", ["-n", "bash", "-c", "ip link set lo up && exec sleep infinity"]) { UseShellExecute = false };
        _holder = Process.Start(psi) ?? throw new InvalidOperationException("could not start unshare");
        var deadline = Stopwatch.StartNew();
        while (true)
        {
            var r = Tool.Run("nsenter", ["-t", Pid, "-n", "ip", "-o", "link", "show", "lo"], TimeSpan.FromSeconds(10));
            if (r.ExitCode == 0 && r.StdOut.Contains("UP", StringComparison.Ordinal)) break;
            if (_holder.HasExited || deadline.Elapsed > TimeSpan.FromSeconds(10))
                throw new InvalidOperationException($"the network namespace did not come up: {r.StdErr}");
            Thread.Sleep(50);
        }
    }

    private string Pid => _holder.Id.ToString(CultureInfo.InvariantCulture);

    private string[] Enter(string program, IEnumerable<string> args) => ["-t", Pid, "-n", program, .. args];

    /// <summary>Runs a program inside the namespace.</summary>
    public Tool.Result Run(string program, IEnumerable<string> args, TimeSpan? timeout = null, string? workingDirectory = null) =>
        Tool.Run("nsenter", Enter(program, args), timeout, workingDirectory);

    /// <summary>Starts a server inside the namespace (nsenter execs it: signals reach the server itself).</summary>
    public ServerProcess Start(string program, IEnumerable<string> args, string? readyMarker, TimeSpan? timeout = null) =>
        new("nsenter", Enter(program, args), readyMarker, timeout);

    /// <summary>Waits until something in the namespace accepts TCP connections on 127.0.0.1:<paramref name="port"/>.</summary>
    public void WaitForPort(int port, TimeSpan timeout)
    {
        string probe = $"for i in $(seq {(int)(timeout.TotalSeconds * 10)}); do (echo > /dev/tcp/127.0.0.1/{port}) 2>/dev/null && exit 0; sleep 0.1; done; exit 1";
        var r = Run("bash", ["-c", probe], timeout + TimeSpan.FromSeconds(5));
        if (r.ExitCode != 0) throw new TimeoutException($"nothing listens on 127.0.0.1:{port} in the namespace after {timeout}");
    }

    public void Dispose()
    {
        try
        {
            _holder.Kill();
            _holder.WaitForExit(5000);
        }
        catch (InvalidOperationException)
        {
        }
        _holder.Dispose();
    }
}
