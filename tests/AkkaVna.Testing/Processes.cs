using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace AkkaVna.Testing;

/// <summary>The akka-vna executable built beside the tests, run as a user runs it.</summary>
public static class AkkaVnaCli
{
    public static string Dll { get; } = Path.Combine(AppContext.BaseDirectory, "akka-vna.dll");

    public static Tool.Result Run(TimeSpan timeout, params string[] args) => Tool.Run("dotnet", [Dll, .. args], timeout);

    /// <summary>A shell command line that runs the CLI (for scripts run inside a network namespace).</summary>
    public static string ShellCommand => $"dotnet '{Dll}'";
}

public static class Ports
{
    /// <summary>A TCP port free on 127.0.0.1 right now.</summary>
    public static int Free()
    {
        using var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        return ((IPEndPoint)l.LocalEndpoint).Port;
    }
}

/// <summary>
/// A long-running process (a server) whose output is collected; started, waited for until a line shows it is ready,
/// stopped with SIGTERM (then killed) at dispose.
/// </summary>
public sealed class ServerProcess : IDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _output = new();
    private readonly TaskCompletionSource _ready = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <param name="readyMarker">
    /// A line that shows the server is ready; null: wait until <paramref name="readyPort"/> accepts connections on this
    /// host's loopback; null and port 0: do not wait (the caller checks readiness itself, e.g. inside a network namespace).
    /// </param>
    public ServerProcess(string program, IEnumerable<string> args, string? readyMarker, TimeSpan? timeout = null, int readyPort = 0)
    {
        var psi = new ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args) psi.ArgumentList.Add(a);
        _process = Process.Start(psi) ?? throw new InvalidOperationException("could not start " + program);
        void OnLine(string? line)
        {
            if (line is null) return;
            lock (_output) _output.AppendLine(line);
            if (readyMarker is not null && line.Contains(readyMarker, StringComparison.Ordinal)) _ready.TrySetResult();
        }
        _process.OutputDataReceived += (_, e) => OnLine(e.Data);
        _process.ErrorDataReceived += (_, e) => OnLine(e.Data);
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
        var wait = timeout ?? TimeSpan.FromSeconds(30);
        if (readyMarker is null && readyPort == 0) _ready.TrySetResult();
        else if (readyMarker is null)
        {
            _ = Task.Run(async () =>
            {
                while (!_ready.Task.IsCompleted)
                {
                    try
                    {
                        using var c = new TcpClient();
                        await c.ConnectAsync(IPAddress.Loopback, readyPort);
                        _ready.TrySetResult();
                    }
                    catch (SocketException) { await Task.Delay(50); }
                }
            });
        }
        if (!_ready.Task.Wait(wait))
        {
            Dispose();
            throw new TimeoutException($"{program} did not print '{readyMarker}' within {wait}:\n{Output}");
        }
    }

    public string Output { get { lock (_output) return _output.ToString(); } }

    public bool HasExited => _process.HasExited;

    public int ProcessId => _process.Id;

    /// <summary>SIGKILL: the process gets no chance to shut down.</summary>
    public void Kill()
    {
        if (_process.HasExited) return;
        _process.Kill();
        _process.WaitForExit();
    }

    /// <summary>Sends SIGTERM and returns at once (the process drains and exits on its own).</summary>
    public void Terminate()
    {
        if (!_process.HasExited) Tool.Run("kill", ["-TERM", _process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
    }

    /// <summary>The exit code once the process has exited within <paramref name="timeout"/>, else null.</summary>
    public int? WaitForExit(TimeSpan timeout) => _process.WaitForExit(timeout) ? _process.ExitCode : null;

    /// <summary>Stops with SIGTERM and returns the exit code (killed after 15 s).</summary>
    public int Stop()
    {
        if (!_process.HasExited)
        {
            Tool.Run("kill", ["-TERM", _process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
            if (!_process.WaitForExit(TimeSpan.FromSeconds(15))) _process.Kill(entireProcessTree: true);
        }
        _process.WaitForExit();
        return _process.ExitCode;
    }

    public void Dispose()
    {
        try { Stop(); } catch (InvalidOperationException) { }
        _process.Dispose();
    }
}
