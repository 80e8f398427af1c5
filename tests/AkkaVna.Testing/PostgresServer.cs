using System.Diagnostics;
using System.Globalization;

namespace AkkaVna.Testing;

/// <summary>
/// A throwaway PostgreSQL server from Debian's packages for the tests: its own data folder under the temp folder, run
/// as the unprivileged <c>postgres</c> user when the tests run as root (PostgreSQL refuses root), listening on a Unix
/// socket in that folder only — no TCP port to collide with anything, nothing reachable from the network — and no system
/// service. One per test process (<see cref="Shared"/>), stopped when the process exits; each test takes a fresh
/// database of its own (<see cref="CreateDatabase"/>).
/// </summary>
public sealed class PostgresServer : IDisposable
{
    private static readonly Lazy<PostgresServer> Instance = new(() =>
    {
        var server = new PostgresServer();
        AppDomain.CurrentDomain.ProcessExit += (_, _) => server.Dispose();
        return server;
    });

    /// <summary>The server of this test process, started on first use.</summary>
    public static PostgresServer Shared => Instance.Value;

    private readonly string _bin;
    private readonly string _folder;
    private readonly bool _asPostgres;
    private int _databases;
    private int _stopped;

    /// <param name="sharedBuffers">PostgreSQL's shared_buffers: small for tests; a benchmark gives what a production server would.</param>
    public PostgresServer(string sharedBuffers = "64MB")
    {
        _bin = Directory.EnumerateDirectories("/usr/lib/postgresql").OrderByDescending(d => d, StringComparer.Ordinal)
                   .Select(d => Path.Combine(d, "bin")).FirstOrDefault(d => File.Exists(Path.Combine(d, "initdb")))
               ?? throw new InvalidOperationException("PostgreSQL is not installed (Debian package postgresql): tests/run.sh installs it");
        _asPostgres = Environment.UserName == "root";
        _folder = Path.Combine(Path.GetTempPath(), "akkavna-pg-" + Guid.NewGuid().ToString("N")[..8]);
        Reaper.Watch(_folder);
        Directory.CreateDirectory(_folder);
        if (_asPostgres) Run("chown", ["postgres:postgres", _folder]);
        string data = Path.Combine(_folder, "data");
        Pg("initdb", ["-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-locale"], TimeSpan.FromMinutes(2));
        // Unix socket only (listen_addresses empty); fsync stays on: the durability tests mean it.
        Pg("pg_ctl", ["-D", data, "-l", Path.Combine(_folder, "server.log"), "-w", "-t", "60",
            "-o", $"-c listen_addresses='' -k {_folder} -c max_connections=300 -c shared_buffers={sharedBuffers}", "start"], TimeSpan.FromMinutes(2));
    }

    /// <summary>The folder holding the server's socket (the Host of a connection string).</summary>
    public string SocketFolder => _folder;

    /// <summary>
    /// CPU seconds the server has used so far (the postmaster and its backends, live and exited), from /proc: what a
    /// benchmark charges to the database per instance.
    /// </summary>
    public double CpuSeconds()
    {
        string pidFile = Path.Combine(_folder, "data", "postmaster.pid");
        if (!int.TryParse(File.ReadLines(pidFile).First(), NumberStyles.None, CultureInfo.InvariantCulture, out int postmaster)) return double.NaN;
        double ticks = 0;
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), NumberStyles.None, CultureInfo.InvariantCulture, out int pid)) continue;
            string stat;
            try
            {
                stat = File.ReadAllText(Path.Combine(dir, "stat"));
            }
            catch (IOException)
            {
                continue; // gone meanwhile
            }
            // pid (comm) state ppid ... utime(14) stime(15) cutime(16) cstime(17), counted after the closing parenthesis.
            var f = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            int ppid = int.Parse(f[1], CultureInfo.InvariantCulture);
            if (pid != postmaster && ppid != postmaster) continue;
            ticks += long.Parse(f[11], CultureInfo.InvariantCulture) + long.Parse(f[12], CultureInfo.InvariantCulture);
            if (pid == postmaster) ticks += long.Parse(f[13], CultureInfo.InvariantCulture) + long.Parse(f[14], CultureInfo.InvariantCulture);
        }
        return ticks / 100.0; // USER_HZ
    }

    /// <summary>A new, empty database; returns its connection string.</summary>
    public string CreateDatabase(string? name = null)
    {
        name ??= "test_" + Interlocked.Increment(ref _databases).ToString(CultureInfo.InvariantCulture) + "_" + Guid.NewGuid().ToString("N")[..8];
        Pg("psql", ["-h", _folder, "-U", "postgres", "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-q", "-c", $"CREATE DATABASE {name}"], TimeSpan.FromMinutes(1));
        return ConnectionString(name);
    }

    public string ConnectionString(string database) => $"Host={_folder};Username=postgres;Database={database};Pooling=true;Maximum Pool Size=30";

    private void Pg(string tool, IReadOnlyList<string> args, TimeSpan timeout)
    {
        string program = Path.Combine(_bin, tool);
        var r = _asPostgres && tool != "psql"
            ? Tool.Run("su", ["postgres", "-s", "/bin/sh", "-c", string.Join(' ', new[] { program }.Concat(args).Select(Shell))], timeout)
            : Tool.Run(program, [.. args], timeout);
        if (r.ExitCode != 0) throw new InvalidOperationException($"{tool} failed ({r.ExitCode}): {r.StdErr}{r.StdOut}");
    }

    private static void Run(string program, string[] args)
    {
        var r = Tool.Run(program, args, TimeSpan.FromSeconds(30));
        if (r.ExitCode != 0) throw new InvalidOperationException($"{program} failed: {r.StdErr}");
    }

    private static string Shell(string s) => "'" + s.Replace("'", "'\\''", StringComparison.Ordinal) + "'";

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _stopped, 1) != 0) return;
        try
        {
            Pg("pg_ctl", ["-D", Path.Combine(_folder, "data"), "-m", "immediate", "-w", "stop"], TimeSpan.FromSeconds(30));
        }
        catch (Exception e) when (e is InvalidOperationException or TimeoutException)
        {
            Debug.WriteLine(e.Message);
        }
        try { Directory.Delete(_folder, recursive: true); }
        catch (IOException) { }
    }
}
