using System.Diagnostics;
using System.Globalization;
using AkkaVna.Testing;

namespace AkkaVna.Perf;

/// <summary>What the benchmarks share: a private network namespace, storescu runs, medians, options.</summary>
internal static class Bench
{
    /// <summary>
    /// Re-runs this benchmark inside a private network namespace with its loopback up (storescp and Orthanc cannot bind
    /// to loopback only); returns its exit code, or null when already inside.
    /// </summary>
    public static int? ReexecInNetworkNamespace(string benchmark, string[] args)
    {
        if (Environment.GetEnvironmentVariable("AKKAVNA_NETNS") == "1") return null;
        var self = Environment.ProcessPath!;
        var argv = string.Join(" ", new List<string> { benchmark }.Concat(args).Select(a => $"'{a}'"));
        string dll = typeof(Bench).Assembly.Location;
        string command = self.EndsWith("dotnet", StringComparison.Ordinal) ? $"'{self}' '{dll}' {argv}" : $"'{self}' {argv}";
        var psi = new ProcessStartInfo("unshare", ["-n", "bash", "-c", $"ip link set lo up && AKKAVNA_NETNS=1 {command}"]) { UseShellExecute = false };
        using var p = Process.Start(psi)!;
        p.WaitForExit();
        return p.ExitCode;
    }

    /// <summary>Sends every file with dcmtk storescu (TCP_NODELAY=1) over <paramref name="associations"/> processes; returns seconds.</summary>
    /// <param name="byStudy">Give each association whole consecutive runs of files (the way gateways send a study per
    /// association) instead of dealing them one at a time.</param>
    public static double Storescu(List<string> files, int port, string aet, int associations, bool byStudy = false) =>
        Storescu(files, [port], aet, associations, byStudy);

    /// <summary>The same over several nodes of one archive: association i goes to <paramref name="ports"/>[i mod n].</summary>
    public static double Storescu(List<string> files, IReadOnlyList<int> ports, string aet, int associations, bool byStudy = false, string options = "")
    {
        int chunk = (files.Count + associations - 1) / associations;
        var lists = Enumerable.Range(0, associations)
            .Select(i => byStudy ? files.Skip(i * chunk).Take(chunk).ToList() : files.Where((_, k) => k % associations == i).ToList()).ToList();
        var listFiles = lists.Select((l, i) =>
        {
            string p = Path.Combine(Path.GetTempPath(), $"akkavna-bench-{Environment.ProcessId}-{i}.txt");
            File.WriteAllLines(p, l);
            return p;
        }).ToList();
        var sw = Stopwatch.StartNew();
        var procs = listFiles.Select((lf, i) =>
        {
            var psi = new ProcessStartInfo("bash", ["-c", $"xargs -d '\\n' -a '{lf}' storescu {options} -aec {aet} 127.0.0.1 {ports[i % ports.Count]}"])
            {
                UseShellExecute = false, RedirectStandardError = true, RedirectStandardOutput = true,
            };
            psi.Environment["TCP_NODELAY"] = "1";
            var p = Process.Start(psi)!;
            var err = p.StandardError.ReadToEndAsync();
            return (p, err);
        }).ToList();
        foreach (var (p, err) in procs)
        {
            p.WaitForExit();
            if (p.ExitCode != 0) throw new InvalidOperationException($"storescu to {aet} failed: {err.Result}");
        }
        double seconds = sw.Elapsed.TotalSeconds;
        foreach (var lf in listFiles) File.Delete(lf);
        return seconds;
    }

    public static string DcmtkVersion()
    {
        var r = Tool.Run(Tool.Dcmtk("storescu"), ["--version"]);
        var line = r.StdOut.Split('\n').FirstOrDefault(l => l.Contains("storescu", StringComparison.Ordinal)) ?? "dcmtk";
        return line.Trim().TrimStart('$').Trim();
    }

    public static double Median(List<double> xs)
    {
        var s = xs.Order().ToList();
        return s[s.Count / 2];
    }

    public static double Option(string[] args, string name, double fallback)
    {
        int i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length ? double.Parse(args[i + 1], CultureInfo.InvariantCulture) : fallback;
    }

    public static string Invariant(FormattableString s) => s.ToString(CultureInfo.InvariantCulture);
}
