using System.Buffers;
using AkkaVna.Dicom.Buffers;
using AkkaVna.Dicom.IO;
using AkkaVna.Testing;

namespace AkkaVna.Dicom.Tests.IO;

/// <summary>
/// The inspector that ingest runs over every data set as it streams: whole data sets pass in any chunking, data sets cut
/// inside anything are refused naming what is missing, and the content checksum is the same for the same data set in
/// every uncompressed syntax and different for any other content.
/// </summary>
public sealed class DatasetInspectorTests
{
    public static TheoryData<string> Readable => Corpus.Files(e => e.DcmdumpAccepts);

    /// <summary>The data set of a Part 10 file (the bytes after its File Meta) and the syntax it is in.</summary>
    private static (byte[] Data, DicomTransferSyntax Syntax) DataSetOf(string path)
    {
        using var fs = File.OpenRead(path);
        var layout = DicomFileReader.ReadLayout(fs, new DicomReadOptions());
        using var ms = new MemoryStream();
        fs.CopyTo(ms);
        return (ms.ToArray(), layout.TransferSyntax);
    }

    private static DatasetInspection Inspect(byte[] data, DicomTransferSyntax syntax, Random chunks, DatasetInspectorOptions? options = null)
    {
        using var inspector = new DatasetInspector(syntax, options ?? new DatasetInspectorOptions { ContentHash = true });
        for (int at = 0; at < data.Length;)
        {
            int n = Math.Min(data.Length - at, chunks.Next(1, 70_000));
            inspector.Write(new ReadOnlySequence<byte>(data, at, n));
            at += n;
        }
        return inspector.Complete();
    }

    [Theory]
    [MemberData(nameof(Readable))]
    public void Every_readable_corpus_data_set_is_whole_in_any_chunking_with_one_content_checksum(string file)
    {
        var (data, syntax) = DataSetOf(Corpus.Get(file).Path);
        var first = Inspect(data, syntax, new Random(1));
        var second = Inspect(data, syntax, new Random(2));
        Assert.Equal(data.Length, first.Length);
        Assert.NotNull(first.ContentSha256);
        Assert.Equal(first.ContentSha256, second.ContentSha256);
    }

    [Theory]
    [MemberData(nameof(Readable))]
    public void A_corpus_data_set_cut_anywhere_but_between_top_level_elements_is_refused(string file)
    {
        var (data, syntax) = DataSetOf(Corpus.Get(file).Path);
        if (syntax.IsDeflated) return; // cut points of a deflate stream are not element boundaries; see the deflated test
        var offsets = new MalformedInputTests.BoundaryRecorder();
        var parser = new DicomParser(offsets, syntax);
        Assert.Equal(DicomParseStatus.Completed, parser.Parse(new ReadOnlySequence<byte>(data), true, out _));
        var random = new Random(file.Length);
        var cuts = Enumerable.Range(0, 24).Select(_ => random.Next(1, data.Length)).Append(data.Length - 1).Distinct();
        foreach (int cut in cuts)
        {
            var part = data[..cut];
            if (offsets.Offsets.Contains(cut))
            {
                Inspect(part, syntax, new Random(cut)); // a shorter whole data set: nothing says more was to come
                continue;
            }
            var e = Assert.Throws<DicomParseException>(() => Inspect(part, syntax, new Random(cut)));
            Assert.True(e.Message.Contains("data ends", StringComparison.Ordinal) || e.Message.Contains("runs past", StringComparison.Ordinal)
                || e.Message.Contains("overruns", StringComparison.Ordinal), $"{file} cut at {cut}: {e.Message}");
        }
    }

    [Fact]
    public void Pixel_data_that_ends_short_of_its_declared_length_names_the_element_and_the_bytes_present()
    {
        var ds = Generated(8192);
        var data = Encode(ds, DicomTransferSyntax.ExplicitVRLittleEndian);
        var e = Assert.Throws<DicomParseException>(() => Inspect(data[..^3892], DicomTransferSyntax.ExplicitVRLittleEndian, new Random(3)));
        Assert.Contains("(7FE0,0010)", e.Message, StringComparison.Ordinal);
        Assert.Contains("(7FE0,0010) OW: 4300 of 8192 bytes", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_value_cut_inside_a_header_element_an_unclosed_sequence_and_an_unclosed_item_are_refused()
    {
        // (0008,0016) declares 26 bytes and 21 arrive.
        var ds = new DicomDataset();
        ds.AddString(DicomTags.SOPClassUID, DicomVR.UI, "1.2.840.10008.5.1.4.1.1.2");
        var header = Encode(ds, DicomTransferSyntax.ExplicitVRLittleEndian);
        var e = Assert.Throws<DicomParseException>(() => Inspect(header[..^5], DicomTransferSyntax.ExplicitVRLittleEndian, new Random(1)));
        Assert.Contains("(0008,0016) UI: 21 of 26 bytes", e.Message, StringComparison.Ordinal);

        // A sequence of undefined length with one item of undefined length: cut before the item's and the sequence's delimiters.
        byte[] item = [0x08, 0x00, 0x50, 0x11, (byte)'U', (byte)'I', 4, 0, (byte)'1', (byte)'.', (byte)'2', 0];
        byte[] seqHeader = [0x08, 0x00, 0x40, 0x11, (byte)'S', (byte)'Q', 0, 0, 0xFF, 0xFF, 0xFF, 0xFF];
        byte[] itemStart = [0xFE, 0xFF, 0x00, 0xE0, 0xFF, 0xFF, 0xFF, 0xFF];
        byte[] itemEnd = [0xFE, 0xFF, 0x0D, 0xE0, 0, 0, 0, 0];
        byte[] seqEnd = [0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0];
        var whole = seqHeader.Concat(itemStart).Concat(item).Concat(itemEnd).Concat(seqEnd).ToArray();
        Inspect(whole, DicomTransferSyntax.ExplicitVRLittleEndian, new Random(1));
        var unclosedItem = Assert.Throws<DicomParseException>(() => Inspect(seqHeader.Concat(itemStart).Concat(item).ToArray(), DicomTransferSyntax.ExplicitVRLittleEndian, new Random(1)));
        Assert.Contains("data ends before the delimiter of an item of (0008,1140)", unclosedItem.Message, StringComparison.Ordinal);
        var unclosedSequence = Assert.Throws<DicomParseException>(() => Inspect(seqHeader.Concat(itemStart).Concat(item).Concat(itemEnd).ToArray(),
            DicomTransferSyntax.ExplicitVRLittleEndian, new Random(1)));
        Assert.Contains("data ends before the delimiter of sequence (0008,1140)", unclosedSequence.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void An_empty_data_set_is_refused()
    {
        using var inspector = new DatasetInspector(DicomTransferSyntax.ExplicitVRLittleEndian);
        Assert.Contains("empty", Assert.Throws<DicomParseException>(() => inspector.Complete()).Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("pydicom/MR_small.dcm")]
    [InlineData("pydicom/test-SR.dcm")]
    [InlineData("dicomParser/CT1_UNC.explicit_little_endian.dcm")]
    [InlineData("pydicom/nested_priv_SQ.dcm")]
    public void The_content_checksum_is_the_same_in_every_uncompressed_syntax(string file)
    {
        using var tmp = new TempDir();
        using var source = DicomFile.Open(Corpus.Get(file).Path);
        var sums = new Dictionary<string, string>();
        foreach (var ts in new[] { DicomTransferSyntax.ImplicitVRLittleEndian, DicomTransferSyntax.ExplicitVRLittleEndian, DicomTransferSyntax.ExplicitVRBigEndian,
                     DicomTransferSyntax.DeflatedExplicitVRLittleEndian })
        {
            string path = tmp.File(ts.Keyword + ".dcm");
            DicomWriter.WriteFile(path, source.Dataset, ts);
            using var fs = File.OpenRead(path);
            sums[ts.Keyword] = DatasetInspector.InspectFile(fs, new DatasetInspectorOptions { ContentHash = true }).ContentSha256!;
        }
        Assert.Single(sums.Values.Distinct());
    }

    [Fact]
    public void The_content_checksum_changes_with_any_value_byte_and_ignores_the_group_lengths()
    {
        var ds = Generated(512);
        var baseline = Inspect(Encode(ds, DicomTransferSyntax.ExplicitVRLittleEndian), DicomTransferSyntax.ExplicitVRLittleEndian, new Random(1)).ContentSha256;

        var renamed = Generated(512);
        renamed.AddString(DicomTags.PatientName, DicomVR.PN, "Other^Name");
        Assert.NotEqual(baseline, Inspect(Encode(renamed, DicomTransferSyntax.ExplicitVRLittleEndian), DicomTransferSyntax.ExplicitVRLittleEndian, new Random(1)).ContentSha256);

        var pixels = Generated(512);
        var bytes = new byte[512];
        ((DicomElement)ds[DicomTags.PixelData]!).Value.Memory.Span.CopyTo(bytes);
        bytes[100] ^= 1;
        pixels.Add(new DicomElement(DicomTags.PixelData, DicomVR.OW, new MemoryByteBuffer(bytes)));
        Assert.NotEqual(baseline, Inspect(Encode(pixels, DicomTransferSyntax.ExplicitVRLittleEndian), DicomTransferSyntax.ExplicitVRLittleEndian, new Random(1)).ContentSha256);

        // The same data set with a group length (0010,0000) in front of its patient group (writers may add or drop them).
        var encoded = Encode(ds, DicomTransferSyntax.ExplicitVRLittleEndian);
        int patientGroup = IndexOf(encoded, [0x10, 0x00, 0x10, 0x00, (byte)'P', (byte)'N']);
        byte[] groupLength = [0x10, 0x00, 0x00, 0x00, (byte)'U', (byte)'L', 4, 0, 42, 0, 0, 0];
        var withLength = encoded[..patientGroup].Concat(groupLength).Concat(encoded[patientGroup..]).ToArray();
        Assert.Equal(baseline, Inspect(withLength, DicomTransferSyntax.ExplicitVRLittleEndian, new Random(1)).ContentSha256);
    }

    [Fact]
    public void The_kept_attributes_are_the_ones_asked_for_at_the_top_level_only()
    {
        var (data, syntax) = DataSetOf(Corpus.Get("pydicom/MR_small.dcm").Path);
        var kept = Inspect(data, syntax, new Random(5), new DatasetInspectorOptions
        {
            Keep = t => t == DicomTags.SOPInstanceUID || t == DicomTags.Rows || t == DicomTags.PatientName,
        }).Kept;
        using var file = DicomFile.Open(Corpus.Get("pydicom/MR_small.dcm").Path);
        Assert.Equal(3, kept.Count);
        Assert.Equal(file.Dataset.GetString(DicomTags.SOPInstanceUID), kept.GetString(DicomTags.SOPInstanceUID));
        Assert.Equal(file.Dataset.GetInt(DicomTags.Rows), kept.GetInt(DicomTags.Rows));
        Assert.Equal(file.Dataset.GetString(DicomTags.PatientName), kept.GetString(DicomTags.PatientName));
    }

    [Fact]
    public void A_deflated_data_set_is_inflated_on_the_way_and_a_cut_one_is_refused()
    {
        var ds = Generated(64 * 1024);
        var deflated = Encode(ds, DicomTransferSyntax.DeflatedExplicitVRLittleEndian);
        var plain = Encode(ds, DicomTransferSyntax.ExplicitVRLittleEndian);
        Assert.Equal(Inspect(plain, DicomTransferSyntax.ExplicitVRLittleEndian, new Random(1)).ContentSha256,
            Inspect(deflated, DicomTransferSyntax.DeflatedExplicitVRLittleEndian, new Random(2)).ContentSha256);
        Assert.Throws<DicomParseException>(() => Inspect(deflated[..(deflated.Length / 2)], DicomTransferSyntax.DeflatedExplicitVRLittleEndian, new Random(3)));
    }

    private static int IndexOf(byte[] data, byte[] pattern) => data.AsSpan().IndexOf(pattern) is var i and >= 0 ? i : throw new InvalidOperationException("pattern not found");

    private static DicomDataset Generated(int pixelBytes)
    {
        var ds = new DicomDataset();
        ds.AddString(DicomTags.SOPClassUID, DicomVR.UI, DicomUids.CTImageStorage);
        ds.AddString(DicomTags.SOPInstanceUID, DicomVR.UI, "1.2.3.4.5.6");
        ds.AddString(DicomTags.PatientName, DicomVR.PN, "Test^Patient");
        ds.AddString(DicomTags.StudyInstanceUID, DicomVR.UI, "1.2.3");
        ds.AddUInt16(DicomTags.Rows, 16);
        var pixels = new byte[pixelBytes];
        new Random(pixelBytes).NextBytes(pixels);
        ds.Add(new DicomElement(DicomTags.PixelData, DicomVR.OW, new MemoryByteBuffer(pixels)));
        return ds;
    }

    /// <summary>The data set as a sender puts it on the wire in <paramref name="syntax"/> (deflated included): a Part 10 file without its File Meta.</summary>
    private static byte[] Encode(DicomDataset ds, DicomTransferSyntax syntax)
    {
        var written = new MemoryStream();
        DicomWriter.WriteFile(written, ds, syntax);
        using var file = new MemoryStream(written.ToArray());
        DicomFileReader.ReadLayout(file, new DicomReadOptions());
        return file.ToArray()[(int)file.Position..];
    }
}
