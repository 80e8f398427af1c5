using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace AkkaVna.Testing;

/// <summary>
/// A throwaway Ceph cluster with its S3 gateway (Debian's radosgw) for the tests: one monitor, one bluestore OSD on a
/// sparse file and one radosgw, every path under a temporary folder, every socket on 127.0.0.1 (ports picked free), cephx
/// on, no systemd. One per test process (<see cref="Shared"/>), stopped when the process exits; each test takes a bucket
/// of its own. <see cref="Stop"/> and <see cref="Start"/> take the gateway away and bring it back (fault tests).
/// </summary>
public sealed class RadosGateway : IDisposable
{
    private static readonly Lazy<RadosGateway> Instance = new(() =>
    {
        var gateway = new RadosGateway();
        AppDomain.CurrentDomain.ProcessExit += (_, _) => gateway.Dispose();
        return gateway;
    });

    /// <summary>The gateway of this test process, started on first use.</summary>
    public static RadosGateway Shared => Instance.Value;

    public const string AccessKey = "AKKAVNATESTACCESSKEY", SecretKey = "akkavna-test-secret-key-0123456789abcdef";
    private readonly string _folder;
    private readonly string _conf;
    private readonly int _monPort, _monV1Port, _rgwPort;
    private readonly List<Process> _daemons = [];
    private Process? _rgw;
    private int _buckets;
    private int _stopped;

    public RadosGateway()
    {
        foreach (var tool in new[] { "ceph-mon", "ceph-osd", "radosgw", "ceph-authtool", "monmaptool", "radosgw-admin", "ceph" })
            if (Tool.Run("which", [tool]).ExitCode != 0)
                throw new InvalidOperationException($"{tool} is missing (Debian packages ceph-mon ceph-osd radosgw ceph-common): tests/run.sh installs them");
        _folder = Path.Combine(Path.GetTempPath(), "akkavna-rgw-" + Guid.NewGuid().ToString("N")[..8]);
        Reaper.Watch(_folder);
        foreach (var sub in new[] { "mon", "osd/ceph-0", "run", "log", "rgw" }) Directory.CreateDirectory(Path.Combine(_folder, sub));
        _monPort = Ports.Free();
        _monV1Port = Ports.Free();
        _rgwPort = Ports.Free();
        string fsid = Guid.NewGuid().ToString();
        _conf = Path.Combine(_folder, "ceph.conf");
        string keyring = Path.Combine(_folder, "keyring");
        File.WriteAllText(_conf, $"""
            [global]
            fsid = {fsid}
            mon host = v2:127.0.0.1:{_monPort}/0
            public addr = 127.0.0.1
            cluster addr = 127.0.0.1
            ms bind ipv6 = false
            ms bind ipv4 = true
            auth cluster required = cephx
            auth service required = cephx
            auth client required = cephx
            keyring = {keyring}
            run dir = {_folder}/run
            admin socket = {_folder}/run/$name.asok
            log file = {_folder}/log/$name.log
            pid file = {_folder}/run/$name.pid
            osd pool default size = 1
            osd pool default min size = 1
            osd pool default pg num = 8
            osd pool default pgp num = 8
            osd crush chooseleaf type = 0
            mon allow pool size one = true
            mon allow pool delete = true
            mon warn on pool no redundancy = false
            osd objectstore = bluestore
            mon data = {_folder}/mon/$cluster-$id
            osd data = {_folder}/osd/$cluster-$id
            bluestore block path = {_folder}/osd/block
            bluestore block create = true
            bluestore block size = 10737418240
            bluestore fsck on mount = false
            osd memory target = 536870912
            [client.rgw.test]
            rgw frontends = "beast endpoint=127.0.0.1:{_rgwPort}"
            rgw data = {_folder}/rgw

            """);
        Run("ceph-authtool", ["--create-keyring", keyring, "--gen-key", "-n", "mon.", "--cap", "mon", "allow *"]);
        Run("ceph-authtool", [keyring, "--gen-key", "-n", "client.admin", "--cap", "mon", "allow *", "--cap", "osd", "allow *", "--cap", "mds", "allow *", "--cap", "mgr", "allow *"]);
        Run("ceph-authtool", [keyring, "--gen-key", "-n", "osd.0", "--cap", "mon", "allow profile osd", "--cap", "osd", "allow *", "--cap", "mgr", "allow profile osd"]);
        Run("ceph-authtool", [keyring, "--gen-key", "-n", "client.rgw.test", "--cap", "mon", "allow rw", "--cap", "osd", "allow rwx", "--cap", "mgr", "allow rw"]);
        string monmap = Path.Combine(_folder, "monmap");
        Run("monmaptool", ["--create", "--fsid", fsid, "--addv", "a", $"[v2:127.0.0.1:{_monPort},v1:127.0.0.1:{_monV1Port}]", monmap]);
        Run("ceph-mon", ["-c", _conf, "--mkfs", "-i", "a", "--monmap", monmap, "--keyring", keyring]);
        _daemons.Add(Daemon("ceph-mon", ["-c", _conf, "-f", "-i", "a"]));
        WaitFor(() => Ceph(["mon", "stat"]).ExitCode == 0, TimeSpan.FromSeconds(60), "the monitor answers");
        string uuid = Guid.NewGuid().ToString();
        Run("ceph", ["-c", _conf, "osd", "new", uuid, "0"]);
        Run("ceph-osd", ["-c", _conf, "--mkfs", "-i", "0", "--osd-uuid", uuid], TimeSpan.FromMinutes(2));
        _daemons.Add(Daemon("ceph-osd", ["-c", _conf, "-f", "-i", "0"]));
        WaitFor(() => Ceph(["osd", "dump"]).StdOut.Contains("osd.0 up", StringComparison.Ordinal), TimeSpan.FromSeconds(90), "osd.0 is up");
        Start();
        Run("radosgw-admin", ["-c", _conf, "user", "create", "--uid=akkavna", "--display-name=akkavna", $"--access-key={AccessKey}", $"--secret-key={SecretKey}"],
            TimeSpan.FromMinutes(2));
    }

    /// <summary>The S3 endpoint.</summary>
    public string Endpoint => $"http://127.0.0.1:{_rgwPort}";

    /// <summary>A new bucket name (the bucket itself is made by whoever first writes to it).</summary>
    public string NewBucket() => "test-" + Interlocked.Increment(ref _buckets).ToString(CultureInfo.InvariantCulture) + "-" + Guid.NewGuid().ToString("N")[..8];

    /// <summary>Starts the gateway (again) and waits until it answers HTTP.</summary>
    public void Start()
    {
        _rgw = Daemon("radosgw", ["-c", _conf, "-f", "-n", "client.rgw.test"]);
        WaitFor(() => Answers(Endpoint), TimeSpan.FromSeconds(120), "radosgw answers HTTP");
    }

    /// <summary>Kills the gateway (the monitor and OSD stay): S3 is unreachable until <see cref="Start"/>.</summary>
    public void Stop()
    {
        if (_rgw is null) return;
        try { _rgw.Kill(entireProcessTree: true); } catch (InvalidOperationException) { }
        _rgw.WaitForExit(30_000);
        _rgw.Dispose();
        _rgw = null;
    }

    /// <summary>Whether the gateway answers an S3 request (anonymous: any HTTP answer but a server error will do).</summary>
    private static bool Answers(string endpoint)
    {
        try
        {
            using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
            using var rsp = http.GetAsync(endpoint + "/").GetAwaiter().GetResult();
            return (int)rsp.StatusCode < 500;
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
        {
            return false;
        }
    }

    private Tool.Result Ceph(string[] args) => Tool.Run("ceph", ["-c", _conf, "--connect-timeout", "10", .. args], TimeSpan.FromSeconds(30));

    private static void Run(string tool, string[] args, TimeSpan? timeout = null)
    {
        var r = Tool.Run(tool, args, timeout ?? TimeSpan.FromSeconds(60));
        if (r.ExitCode != 0) throw new InvalidOperationException($"{tool} {string.Join(' ', args)} failed ({r.ExitCode}): {r.StdErr}{r.StdOut}");
    }

    private Process Daemon(string tool, string[] args)
    {
        var psi = new ProcessStartInfo(tool, args) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        var p = Process.Start(psi)!;
        p.OutputDataReceived += (_, _) => { };
        p.ErrorDataReceived += (_, _) => { };
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        return p;
    }

    private void WaitFor(Func<bool> condition, TimeSpan timeout, string what)
    {
        var sw = Stopwatch.StartNew();
        while (!condition())
        {
            if (sw.Elapsed > timeout)
            {
                string logs = string.Join("\n", Directory.EnumerateFiles(Path.Combine(_folder, "log")).Select(f => f + ":\n" + string.Join("\n", File.ReadLines(f).TakeLast(15))));
                throw new TimeoutException($"not within {timeout}: {what}\n{logs}");
            }
            Thread.Sleep(300);
        }
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _stopped, 1) != 0) return;
        Stop();
        foreach (var d in Enumerable.Reverse(_daemons))
        {
            try { d.Kill(entireProcessTree: true); } catch (InvalidOperationException) { }
            d.WaitForExit(30_000);
            d.Dispose();
        }
        try { Directory.Delete(_folder, recursive: true); }
        catch (IOException) { }
    }
}
