using System.Buffers;
using System.Diagnostics;
using AkkaVna.Dicom.IO;
using AkkaVna.Testing;

namespace AkkaVna.Dicom.Tests.IO;

/// <summary>Every file dcmdump rejects, and every corpus file cut short, gives a clear error with the offset, fast, without a crash.</summary>
public sealed class MalformedInputTests
{
    /// <summary>Files dcmdump rejects that AkkaVna reads anyway, and why that is right.</summary>
    public static readonly IReadOnlyDictionary<string, string> Recovered = new Dictionary<string, string>
    {
        ["pydicom/SC_rgb_jpeg.dcm"] = "The File Meta says JPEG Baseline (explicit VR) but the dataset is implicit VR: the VR bytes are not letters, so the "
            + "encoding is sniffed per PS3.5 7.1 structure and every element reads cleanly (pixel data as fragments).",
    };

    public static TheoryData<string> Rejected => Corpus.Files(e => !e.DcmdumpAccepts);
    public static TheoryData<string> All => Corpus.Files(_ => true);

    [Theory]
    [MemberData(nameof(Rejected))]
    public void Should_report_the_offset_of_what_dcmdump_rejects(string file)
    {
        var path = Corpus.Get(file).Path;
        var sw = Stopwatch.StartNew();
        try
        {
            using var f = DicomFile.Open(path);
            Assert.True(Recovered.ContainsKey(file) && Recovered[file].Length > 0, $"{file} was read without error but is not listed as recovered with a reason");
        }
        catch (DicomParseException e)
        {
            Assert.InRange(e.Offset, 0, new FileInfo(path).Length);
            Assert.False(string.IsNullOrWhiteSpace(e.Reason));
        }
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(5), "reading a malformed file must not hang"); // generous bound: a hang guard, not a benchmark
    }

    [Theory]
    [MemberData(nameof(All))]
    public void Should_fail_cleanly_when_a_file_is_cut_short_at_any_of_ten_offsets(string file)
    {
        var entry = Corpus.Get(file);
        byte[] bytes = File.ReadAllBytes(entry.Path);
        var boundaries = TopLevelBoundaries(entry.Path);
        using var tmp = new TempDir();
        var rng = new Random(file.GetHashCode(StringComparison.Ordinal) & 0x7FFFFFFF);
        var cuts = new SortedSet<int> { 1, 131, 132 + 7, bytes.Length - 1 };
        while (cuts.Count < 10) cuts.Add(rng.Next(1, bytes.Length));
        foreach (int cut in cuts.Where(c => c > 0 && c < bytes.Length))
        {
            string path = tmp.File("cut.dcm");
            File.WriteAllBytes(path, bytes[..cut]);
            try
            {
                using var f = DicomFile.Open(path);
                // Success is right only where the cut falls between two top-level elements (a shorter, valid dataset),
                // or inside a deflated stream whose inflated bytes end on such a boundary.
                if (boundaries is not null && !entry.TransferSyntax.EndsWith(".99", StringComparison.Ordinal))
                    Assert.True(boundaries.Contains(cut), $"{file} cut at {cut}: read without error although the cut is inside an element");
            }
            catch (DicomParseException e)
            {
                Assert.InRange(e.Offset, 0, long.MaxValue);
                Assert.False(string.IsNullOrWhiteSpace(e.Reason));
            }
        }
    }

    /// <summary>Offsets where a top-level element (or the dataset) starts or the file ends; null when the file itself does not parse.</summary>
    private static HashSet<long>? TopLevelBoundaries(string path)
    {
        try
        {
            using var fs = File.OpenRead(path);
            var options = new DicomReadOptions();
            var layout = DicomFileReader.ReadLayout(fs, options);
            var recorder = new BoundaryRecorder();
            DicomFileReader.ParseDataset(fs, layout, recorder, options);
            recorder.Offsets.Add(layout.DatasetOffset);
            recorder.Offsets.Add(fs.Length);
            return recorder.Offsets;
        }
        catch (DicomParseException)
        {
            return null;
        }
    }

    /// <summary>Where the top-level elements begin (a data set cut exactly there is a shorter whole one).</summary>
    internal sealed class BoundaryRecorder : IDicomParserObserver
    {
        public HashSet<long> Offsets { get; } = [];
        public void OnElement(in DicomElementHeader header, ReadOnlySequence<byte> value) { if (header.Depth == 0) Offsets.Add(header.Offset); }
        public bool OnLargeValueStart(in DicomElementHeader header) { if (header.Depth == 0) Offsets.Add(header.Offset); return false; }
        public void OnLargeValueChunk(ReadOnlySequence<byte> chunk) { }
        public void OnLargeValueEnd() { }
        public void OnSequenceStart(in DicomElementHeader header) { if (header.Depth == 0) Offsets.Add(header.Offset); }
        public void OnSequenceItemStart(long offset, uint length) { }
        public void OnSequenceItemEnd() { }
        public void OnSequenceEnd() { }
        public void OnFragmentsStart(in DicomElementHeader header) { if (header.Depth == 0) Offsets.Add(header.Offset); }
        public void OnFragmentsEnd() { }
    }
}
