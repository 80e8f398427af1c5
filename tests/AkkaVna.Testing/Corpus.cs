using AkkaVna.Dicom;
using Xunit;
using System.Globalization;

namespace AkkaVna.Testing;

/// <summary>The shared corpus of real-world DICOM files (../shared/corpus beside the checkout) and its manifest.</summary>
public static class Corpus
{
    public sealed record Entry(string File, string TransferSyntax, string DcmdumpVerdict, string EdgeCase)
    {
        public string Path => System.IO.Path.Combine(Root, File);
        public bool DcmdumpAccepts => !DcmdumpVerdict.StartsWith("FAILS", StringComparison.Ordinal);
        public override string ToString() => File;
    }

    public static string RepoRoot { get; } = FindRepoRoot();

    public static string Root { get; } = Environment.GetEnvironmentVariable("AKKAVNA_CORPUS")
        ?? System.IO.Path.GetFullPath(System.IO.Path.Combine(RepoRoot, "..", "shared", "corpus"));

    public static string StandardRoot { get; } = System.IO.Path.GetFullPath(System.IO.Path.Combine(Root, "..", "dicom-standard"));

    private static string FindRepoRoot()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
            if (File.Exists(System.IO.Path.Combine(d.FullName, "AkkaVna.sln"))) return d.FullName;
        throw new InvalidOperationException("AkkaVna.sln not found above " + AppContext.BaseDirectory);
    }

    private static readonly Lazy<IReadOnlyList<Entry>> All = new(() =>
    {
        var rows = Csv.Read(System.IO.Path.Combine(Root, "manifest.csv"));
        var list = rows.Select(r => new Entry(r["file"], r["transfer_syntax"], r["dcmdump"], r["edge_case"])).ToList();
        if (list.Count != 127) throw new InvalidOperationException($"expected 127 corpus files, manifest lists {list.Count}");
        return list;
    });

    public static IReadOnlyList<Entry> Entries => All.Value;

    public static Entry Get(string file) => Entries.Single(e => e.File == file);

    public static TheoryData<string> Files(Func<Entry, bool> where)
    {
        var data = new TheoryData<string>();
        foreach (var e in Entries.Where(where)) data.Add(e.File);
        return data;
    }

    public static string Invariant(FormattableString s) => s.ToString(CultureInfo.InvariantCulture);
}

/// <summary>A small RFC 4180 CSV reader (quoted fields, doubled quotes, newlines inside quotes).</summary>
public static class Csv
{
    public static List<Dictionary<string, string>> Read(string path)
    {
        var records = Parse(File.ReadAllText(path));
        var header = records[0];
        return records.Skip(1).Where(r => r.Count > 1 || r[0].Length > 0)
            .Select(r => header.Select((h, i) => (h, v: i < r.Count ? r[i] : "")).ToDictionary(x => x.h, x => x.v)).ToList();
    }

    public static List<List<string>> Parse(string text)
    {
        var rows = new List<List<string>>();
        var row = new List<string>();
        var field = new System.Text.StringBuilder();
        bool quoted = false;
        for (int i = 0; i < text.Length; i++)
        {
            char c = text[i];
            if (quoted)
            {
                if (c == '"' && i + 1 < text.Length && text[i + 1] == '"') { field.Append('"'); i++; }
                else if (c == '"') quoted = false;
                else field.Append(c);
            }
            else if (c == '"') quoted = true;
            else if (c == ',') { row.Add(field.ToString()); field.Clear(); }
            else if (c == '\n') { row.Add(field.ToString().TrimEnd('\r')); field.Clear(); rows.Add(row); row = []; }
            else field.Append(c);
        }
        if (field.Length > 0 || row.Count > 0) { row.Add(field.ToString()); rows.Add(row); }
        return rows;
    }
}
