using AkkaVna.Dicom.IO;
using AkkaVna.Testing;

namespace AkkaVna.Dicom.Tests.Text;

/// <summary>pydicom's charset files, read through the whole toolkit, decode to the names charset-expected.csv gives.</summary>
public sealed class CharacterSetCorpusTests
{
    public static TheoryData<string, string, string> Expected
    {
        get
        {
            var data = new TheoryData<string, string, string>();
            // The element column holds unquoted commas ("(0010,0010)"), so rows are split by pattern, not as CSV.
            var row = new System.Text.RegularExpressions.Regex(@"^([^,]+),(\(.*\)),([A-Z]{2}),(.*)$");
            foreach (var line in File.ReadAllLines(Path.Combine(Corpus.Root, "charset-expected.csv")).Skip(1).Where(l => l.Length > 0))
            {
                var m = row.Match(line);
                Assert.True(m.Success, "unexpected row: " + line);
                data.Add(m.Groups[1].Value, m.Groups[2].Value, m.Groups[4].Value);
            }
            return data;
        }
    }

    [Theory]
    [MemberData(nameof(Expected))]
    public void Should_decode_each_name_to_the_expected_unicode(string file, string element, string expected)
    {
        using var f = DicomFile.Open(Corpus.Get(file).Path);
        var ds = f.Dataset;
        var parts = element.Split('.');
        for (int i = 0; i < parts.Length - 1; i++)
        {
            // "(0032,1064)[0]": a sequence item
            var p = parts[i];
            Assert.True(DicomTag.TryParse(p.AsSpan()[..p.IndexOf('[')], out var sqTag));
            int index = int.Parse(p.AsSpan()[(p.IndexOf('[') + 1)..p.IndexOf(']')], System.Globalization.CultureInfo.InvariantCulture);
            ds = ds.GetSequence(sqTag)!.Items[index];
        }
        Assert.True(DicomTag.TryParse(parts[^1], out var tag));
        // Trailing empty name groups ("...=") are insignificant (PS3.5 6.2.1): compare without them.
        Assert.Equal(expected, ds.GetString(tag)!.TrimEnd('='));
    }
}
