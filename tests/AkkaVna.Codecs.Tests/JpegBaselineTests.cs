using AkkaVna.Codecs;
using AkkaVna.Dicom.IO;
using AkkaVna.Testing;

namespace AkkaVna.Codecs.Tests;

/// <summary>
/// Lossy JPEG decoding through libjpeg-turbo (TurboJPEG) against dcmtk's own decoder (dcmdjpeg, IJG): every 8-bit lossy
/// JPEG file of the corpus decodes here as dcmdjpeg decodes it (colour converted to RGB by pixel); 12-bit ones are
/// refused with the reason.
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
            try
            {
                JpegBaseline.Decode(fragments[i], g, frame);
            }
            catch (CodecException e) when (g.BitsAllocated > 8)
            {
                Assert.Contains("12-bit", e.Reason, StringComparison.Ordinal);
                return;
            }
            int worst = expected[i].Zip(frame, (a, b) => Math.Abs(a - b)).Max();
            Assert.True(worst == 0, $"frame {i + 1} differs from dcmdjpeg's by up to {worst}");
        }
    }
}
