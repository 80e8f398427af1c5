using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace AkkaVna.Testing;

/// <summary>
/// Cleans up after a test process that ends without disposing the servers it started (a test host is often ended without
/// its exit handlers running): a small detached watcher waits for this process to be gone, then kills every process whose
/// command line names <c>marker</c> (a server's own temporary folder: nothing else has it) and deletes the folder. So a
/// test run never leaves Ceph or PostgreSQL servers behind for the next one.
/// </summary>
public static class Reaper
{
    public static void Watch(string folder)
    {
        string script = $$"""
            exec </dev/null >/dev/null 2>&1
            while kill -0 {{Environment.ProcessId}} 2>/dev/null; do sleep 2; done
            for p in $(pgrep -f -- '{{folder}}'); do [ "$p" != "$$" ] && kill -9 "$p" 2>/dev/null; done
            rm -rf -- '{{folder}}'
            """;
        // Its own pipes, closed at once: it must not hold the test host's output open (the test runner waits for that to end).
        var psi = new ProcessStartInfo("setsid", ["bash", "-c", script])
        {
            UseShellExecute = false, RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true,
        };
        using var watcher = Process.Start(psi);
    }
}

/// <summary>The akka-vna executable built beside the tests, run as a user runs it.</summary>
public static class AkkaVnaCli
{
    public static string Dll { get; } = Path.Combine(AppContext.BaseDirectory, "akka-vna.dll");

    public static Tool.Result Run(TimeSpan timeout, params string[] args) => Tool.Run("dotnet", [Dll, .. args], timeout);

    /// <summary>A shell command line that runs the CLI (for scripts run inside a network namespace).</summary>
    public static string ShellCommand => $"dotnet '{Dll}'";
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
    private readonly TaskCompletionSource _exited = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <param name="readyMarker">
    /// A line that shows the server is ready; null: wait until <paramref name="readyPort"/> accepts connections on this
    /// host's loopback; null and port 0: do not wait (the caller checks readiness itself, e.g. inside a network namespace).
    /// </param>
    public ServerProcess(string program, IEnumerable<string> args, string? readyMarker, TimeSpan? timeout = null, int readyPort = 0)
    {
        var psi = new ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args) psi.ArgumentList.Add(a);
        _process = new Process { StartInfo = psi, EnableRaisingEvents = true };
        _process.Exited += (_, _) => _exited.TrySetResult();
        if (!_process.Start()) throw new InvalidOperationException("could not start " + program);
        void OnLine(string? line)
        {
            if (line is null) return;
            lock (_output) _output.AppendLine(line);
            if (readyMarker is not null && line.Contains(readyMarker, StringComparison.Ordinal))
            {
                lock (_output) ReadyLine ??= line;
                _ready.TrySetResult();
            }
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
        // Stop waiting as soon as the server exits: a server that failed to start says why in its output.
        int first = Task.WaitAny([_ready.Task, _exited.Task], wait);
        if (first == 1 && !_ready.Task.IsCompleted)
        {
            _process.WaitForExit(); // the output is read to its end
            int code = _process.ExitCode;
            Dispose();
            throw new InvalidOperationException($"{program} exited with code {code} before it was ready:\n{Output}");
        }
        if (first < 0)
        {
            Dispose();
            throw new TimeoutException($"{program} did not print '{readyMarker}' within {wait}:\n{Output}");
        }
    }

    /// <summary>The output line that showed the server ready (servers started on port 0 name the port they took in it).</summary>
    public string? ReadyLine { get; private set; }

    /// <summary>The port a server names in its ready line after <paramref name="prefix"/> (e.g. "127.0.0.1:" or "HTTP port ").</summary>
    public int ReadyPort(string prefix)
    {
        string line = ReadyLine ?? throw new InvalidOperationException("the server printed no ready line");
        int at = line.IndexOf(prefix, StringComparison.Ordinal);
        if (at < 0) throw new InvalidOperationException($"'{prefix}' is not in the ready line: {line}");
        var digits = new string(line[(at + prefix.Length)..].TakeWhile(char.IsAsciiDigit).ToArray());
        return int.Parse(digits, System.Globalization.CultureInfo.InvariantCulture);
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
