using AkkaVna.Codecs;
using AkkaVna.Dicom.IO;
using AkkaVna.Testing;

namespace AkkaVna.Codecs.Tests;

/// <summary>
/// Lossy JPEG decoding through libjpeg-turbo (TurboJPEG) against dcmtk's own decoder (dcmdjpeg, IJG): every 8-bit lossy
/// JPEG file of the corpus decodes here as dcmdjpeg decodes it (colour converted to RGB by pixel), and so does every
/// 12-bit one (decoded in C# with IJG's integer IDCT, as dcmtk's 12-bit IJG does).
/// </summary>
public sealed class JpegBaselineTests
{
    public static TheoryData<string> LossyJpegImages() => Corpus.Files(e => e.TransferSyntax is JpegBaseline.BaselineTransferSyntaxUid or JpegBaseline.ExtendedTransferSyntaxUid
        && e.DcmdumpAccepts && CodecOracle.Geometry(e.Path) is not null);

    [Theory]
    [MemberData(nameof(LossyJpegImages))]
    public void Every_lossy_JPEG_file_of_the_corpus_decodes_here_as_dcmdjpeg_decodes_it(string file)
    {
        using var dir = new TempDir();
        string native = dir.File("native.dcm");
        CodecOracle.Dcmtk("dcmdjpeg", "+ca", "+px", Corpus.Get(file).Path, native);
        using var encoded = DicomFile.Open(Corpus.Get(file).Path);
        using var reference = DicomFile.Open(native);
        var g = CodecOracle.GeometryOf(reference.Dataset)!;
        var expected = CodecOracle.Frames(reference.Dataset);
        var fragments = CodecOracle.Frames(encoded.Dataset);
        Assert.Equal(expected.Count, fragments.Count);
        for (int i = 0; i < Math.Min(4, expected.Count); i++)
        {
            var frame = new byte[g.FrameBytes];
            JpegBaseline.Decode(fragments[i], g, frame);
            int worst = expected[i].Zip(frame, (a, b) => Math.Abs(a - b)).Max();
            Assert.True(worst == 0, $"frame {i + 1} differs from dcmdjpeg's by up to {worst}");
        }
    }

    [Fact]
    public void A_damaged_12_bit_stream_is_refused_with_a_reason()
    {
        var entry = Corpus.Entries.First(e => e.TransferSyntax == JpegBaseline.ExtendedTransferSyntaxUid && e.DcmdumpAccepts
            && CodecOracle.Geometry(e.Path) is { BitsAllocated: 16 });
        using var encoded = DicomFile.Open(entry.Path);
        var g = CodecOracle.GeometryOf(encoded.Dataset)!;
        var fragment = CodecOracle.Frames(encoded.Dataset)[0];
        var frame = new byte[g.FrameBytes];
        Assert.Contains("12-bit JPEG", Assert.Throws<CodecException>(() => JpegBaseline.Decode(fragment.AsSpan(0, fragment.Length / 2), g, frame)).Reason, StringComparison.Ordinal);
        Assert.Contains("the data set says", Assert.Throws<CodecException>(() => JpegBaseline.Decode(fragment, g with { Rows = g.Rows + 8 }, new byte[(g.Rows + 8) * g.Columns * 2])).Reason, StringComparison.Ordinal);
        Assert.Contains("grey", Assert.Throws<CodecException>(() => JpegBaseline.Decode(fragment, g with { SamplesPerPixel = 3 }, new byte[g.FrameBytes * 3])).Reason, StringComparison.Ordinal);
        // Damaged entropy-coded data: refused with a reason or decoded to some pixels, never another exception.
        var garbled = fragment.ToArray();
        for (int i = 200; i < Math.Min(garbled.Length, 400); i++) garbled[i] ^= 0x5A;
        try
        {
            JpegBaseline.Decode(garbled, g, frame);
        }
        catch (CodecException)
        {
        }
    }
}
