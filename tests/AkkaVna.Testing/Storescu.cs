using System.Globalization;
using Xunit;
using System.Text;
using AkkaVna.Dicom;
using AkkaVna.Dicom.IO;
using AkkaVna.Dicom.Network.Scu;

namespace AkkaVna.Testing;

/// <summary>Sending the corpus with dcmtk's storescu, and what to expect of it.</summary>
public static class Storescu
{
    /// <summary>Transfer syntaxes newer than dcmtk 3.6.7: its storescu cannot read files in them.</summary>
    public static readonly HashSet<string> UnknownToDcmtk367 = ["1.2.840.10008.1.2.4.201", "1.2.840.10008.1.2.4.202", "1.2.840.10008.1.2.4.203", "1.2.840.10008.1.2.8.1"];

    /// <summary>Every corpus file that can be sent: readable, with SOP class and instance, and accepted by dcmdump.</summary>
    public static readonly Lazy<List<StoreFile>> SendableCorpus = new(() =>
    {
        var files = new List<StoreFile>();
        foreach (var e in Corpus.Entries.Where(e => e.DcmdumpAccepts))
        {
            try { files.Add(StoreFile.Read(e.Path)); }
            catch (DicomParseException) { }
        }
        return files;
    });

    /// <summary>Corpus files share SOP Instance UIDs (one data set in many encodings): rounds in which every UID appears once.</summary>
    public static IEnumerable<List<StoreFile>> Rounds(List<StoreFile> files)
    {
        var groups = files.GroupBy(f => f.SopInstanceUid).Select(g => g.ToList()).ToList();
        for (int k = 0; ; k++)
        {
            var round = groups.Where(g => g.Count > k).Select(g => g[k]).ToList();
            if (round.Count == 0) yield break;
            yield return round;
        }
    }

    /// <summary>A storescu association profile proposing, for each (SOP class, transfer syntax) pair of the files, that syntax alone.</summary>
    public static string WriteConfig(TempDir dir, IEnumerable<StoreFile> files)
    {
        var pairs = files.Select(f => (f.SopClassUid, f.TransferSyntax.Uid)).Distinct().ToList();
        Assert.True(pairs.Count <= 128, $"{pairs.Count} presentation contexts do not fit one association");
        var syntaxes = pairs.Select(p => p.Uid).Distinct().ToList();
        var sb = new StringBuilder("[[TransferSyntaxes]]\n");
        for (int i = 0; i < syntaxes.Count; i++) sb.Append(CultureInfo.InvariantCulture, $"[TS{i}]\nTransferSyntax1 = {syntaxes[i]}\n");
        sb.Append("[[PresentationContexts]]\n[Contexts]\n");
        for (int i = 0; i < pairs.Count; i++)
            sb.Append(CultureInfo.InvariantCulture, $"PresentationContext{i + 1} = {pairs[i].SopClassUid}\\TS{syntaxes.IndexOf(pairs[i].Uid)}\n");
        sb.Append("[[Profiles]]\n[Corpus]\nPresentationContexts = Contexts\n");
        string path = dir.File("storescu-" + Guid.NewGuid().ToString("N")[..8] + ".cfg");
        File.WriteAllText(path, sb.ToString());
        return path;
    }

    /// <summary>Sends files over <paramref name="associations"/> concurrent storescu processes (the files dealt round-robin).</summary>
    public static List<Tool.Result> Send(string config, int port, IReadOnlyList<StoreFile> files, int associations, TimeSpan timeout, params string[] options) =>
        Send(null, config, port, files, associations, timeout, options);

    /// <summary>As <see cref="Send(string, int, IReadOnlyList{StoreFile}, int, TimeSpan, string[])"/>, from inside <paramref name="network"/> when given.</summary>
    public static List<Tool.Result> Send(NetworkNamespace? network, string config, int port, IReadOnlyList<StoreFile> files, int associations, TimeSpan timeout,
        params string[] options)
    {
        var lists = Enumerable.Range(0, associations).Select(i => files.Where((_, k) => k % associations == i).ToList()).Where(l => l.Count > 0).ToList();
        return lists.AsParallel().WithDegreeOfParallelism(Math.Max(1, lists.Count)).Select(list =>
        {
            string[] args = ["-xf", config, "Corpus", "-aec", "AKKAVNA", "-nh", "-v", .. options, "127.0.0.1", port.ToString(CultureInfo.InvariantCulture), .. list.Select(f => f.Path)];
            return network is null ? Tool.Run(Tool.Dcmtk("storescu"), args, timeout) : network.Run(Tool.Dcmtk("storescu"), args, timeout);
        }).ToList();
    }

    /// <summary>
    /// Reads storescu's output: the files dcmtk refuses on its own side (files it cannot read, transfer syntaxes newer than
    /// 3.6.7) are returned; any other error — a failure status, an abort — fails the test.
    /// </summary>
    public static List<string> RefusedByDcmtk(Tool.Result r, IReadOnlyList<StoreFile> files)
    {
        var cannotSend = new List<string>();
        string? sending = null;
        foreach (var line in (r.StdErr + r.StdOut).Split('\n'))
        {
            if (line.StartsWith("I: Sending file: ", StringComparison.Ordinal)) sending = line["I: Sending file: ".Length..].Trim();
            if (!line.StartsWith("E:", StringComparison.Ordinal)) continue;
            bool unknownSyntax = files.Any(f => (line.Contains(f.Path, StringComparison.Ordinal) || f.Path == sending) && UnknownToDcmtk367.Contains(f.TransferSyntax.Uid));
            if (line.Contains("Bad DICOM file:", StringComparison.Ordinal) || line.Contains("No SOP Class or Instance UID", StringComparison.Ordinal) || unknownSyntax)
                cannotSend.Add(unknownSyntax ? $"{sending}: transfer syntax unknown to dcmtk 3.6.7" : line);
            else if (!line.Contains("DcmElement", StringComparison.Ordinal))
                Assert.Fail($"storescu reported: {line}\n{r.StdErr}");
        }
        Assert.DoesNotContain("Association Aborted", r.StdErr + r.StdOut);
        return cannotSend;
    }

    /// <summary>The response storescu -v reported for each file it sent: "Success", "Unknown Status: 0x111", ...</summary>
    public static Dictionary<string, string> Responses(Tool.Result r)
    {
        var responses = new Dictionary<string, string>(StringComparer.Ordinal);
        string? sending = null;
        foreach (var line in (r.StdErr + r.StdOut).Split('\n'))
        {
            if (line.StartsWith("I: Sending file: ", StringComparison.Ordinal)) sending = line["I: Sending file: ".Length..].Trim();
            else if (line.StartsWith("I: Received Store Response (", StringComparison.Ordinal) && sending is not null)
                responses[sending] = line["I: Received Store Response (".Length..].TrimEnd().TrimEnd(')');
        }
        return responses;
    }

    /// <summary>Whether dcmtk refused this file on its side, by <see cref="RefusedByDcmtk"/>'s list.</summary>
    public static bool WasRefused(StoreFile f, IEnumerable<string> refused) =>
        UnknownToDcmtk367.Contains(f.TransferSyntax.Uid) || refused.Any(l => l.Contains(f.Path, StringComparison.Ordinal));

    /// <summary>
    /// The received file holds the source's data set, allowing only the normalisations storescu itself makes;
    /// <paramref name="ignorePixelData"/>: every attribute but the pixel data (a transcoded copy, its pixels compared apart).
    /// </summary>
    public static void AssertSameDataSet(string sourcePath, string receivedPath, bool ignorePixelData = false)
    {
        using var source = DicomFile.Open(sourcePath);
        using var received = DicomFile.Open(receivedPath);
        if (ignorePixelData)
        {
            source.Dataset.Remove(DicomTags.PixelData);
            received.Dataset.Remove(DicomTags.PixelData);
        }
        // storescu drops Data Set Trailing Padding (FFFC,FFFC) when it sends; PS3.10 7.2 gives it no meaning.
        source.Dataset.Remove(DicomTags.DataSetTrailingPadding);
        // storescu re-encodes what it reads: string values lose superfluous trailing spaces.
        var diff = DatasetAssert.Differences(source.Dataset, received.Dataset, "", ignoreVR: false, trimStringPadding: true);
        // Encapsulated Pixel Data is OB (PS3.5 A.4); storescu corrects a source that says OW.
        if (source.Dataset[DicomTags.PixelData] is DicomFragmentSequence { VR: DicomVR.OW }) diff.Remove("(7FE0,0010): VR OW vs OB");
        Assert.True(diff.Count == 0, $"{sourcePath} differs after the round trip:\n{string.Join("\n", diff.Take(10))}");
    }
}
