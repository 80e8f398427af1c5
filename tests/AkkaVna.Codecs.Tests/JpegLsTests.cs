using System.Buffers.Binary;
using AkkaVna.Codecs;
using AkkaVna.Dicom;
using AkkaVna.Dicom.Buffers;
using AkkaVna.Dicom.IO;
using AkkaVna.Testing;

namespace AkkaVna.Codecs.Tests;

/// <summary>
/// JPEG-LS through CharLS (Debian libcharls2) against dcmtk's own JPEG-LS codec (dcmcjpls, dcmdjpls) on every corpus
/// image it takes: what dcmcjpls encodes decodes here as dcmdjpls decodes it; what is encoded here dcmdjpls decodes as it
/// decodes here, and that is the original (its Bits Stored, sign-extended); every JPEG-LS file of the corpus (lossless
/// and near-lossless) decodes here as dcmdjpls decodes it.
/// </summary>
public sealed class JpegLsTests
{
    public static TheoryData<string> NativeImages() => Corpus.Files(e => CodecOracle.NativeLittleEndian.Contains(e.TransferSyntax)
        && CodecOracle.Geometry(e.Path) is { BitsAllocated: <= 16, BitsStored: >= 2, SamplesPerPixel: 1 or 3 });

    public static TheoryData<string> JpegLsImages() => Corpus.Files(e => e.TransferSyntax is JpegLs.LosslessTransferSyntaxUid or JpegLs.NearLosslessTransferSyntaxUid
        && e.DcmdumpAccepts);

    private static byte[] DecodeHere(byte[] encoded, FrameGeometry g)
    {
        var frame = new byte[g.FrameBytes];
        JpegLs.Decode(encoded, g, frame);
        return frame;
    }

    [Fact]
    public void A_synthetic_CT_and_RGB_frame_round_trip_losslessly_and_bad_streams_are_refused_with_a_reason()
    {
        var random = new Random(3);
        var ct = new FrameGeometry(64, 80, 1, 16, 12, Signed: true);
        var frame = new byte[ct.FrameBytes];
        for (int i = 0; i < frame.Length; i += 2) BinaryPrimitives.WriteInt16LittleEndian(frame.AsSpan(i), (short)random.Next(-2048, 2048));
        var encoded = JpegLs.Encode(frame, ct);
        Assert.True(encoded.Length < frame.Length);
        Assert.Equal(frame, DecodeHere(encoded, ct));
        var rgb = new FrameGeometry(33, 47, 3, 8, 8, Signed: false, PlanarConfiguration: 1);
        var colour = new byte[rgb.FrameBytes];
        random.NextBytes(colour);
        Assert.Equal(colour, DecodeHere(JpegLs.Encode(colour, rgb), rgb));
        Assert.Contains("JPEG-LS", Assert.Throws<CodecException>(() => DecodeHere(encoded[..(encoded.Length / 2)], ct)).Reason, StringComparison.Ordinal);
        Assert.Contains("the data set says", Assert.Throws<CodecException>(() => DecodeHere(encoded, ct with { Columns = 81 })).Reason, StringComparison.Ordinal);
        Assert.Throws<CodecException>(() => JpegLs.Encode(new byte[64 * 80 * 4], ct with { BitsAllocated = 32, BitsStored = 32 }));
    }

    [Theory]
    [MemberData(nameof(NativeImages))]
    public void What_dcmcjpls_encodes_decodes_here_as_dcmdjpls_decodes_it(string file)
    {
        using var dir = new TempDir();
        string jls = dir.File("jls.dcm"), back = dir.File("back.dcm");
        CodecOracle.Dcmtk("dcmcjpls", "+el", Corpus.Get(file).Path, jls);
        CodecOracle.Dcmtk("dcmdjpls", jls, back); // the original planar configuration restored, and named in the data set
        CodecOracle.AssertDecodesAs(jls, back, (e, g, f) => JpegLs.Decode(e, g, f));
    }

    [Theory]
    [MemberData(nameof(NativeImages))]
    public void What_is_encoded_here_is_the_original_and_dcmdjpls_decodes_it_so(string file)
    {
        using var dir = new TempDir();
        string jls = dir.File("mine.dcm"), back = dir.File("back.dcm");
        var (g, frames, _) = CodecOracle.EncodeCorpusImage(file, (f, g) => JpegLs.Encode(f, g), DecodeHere, JpegLs.LosslessTransferSyntaxUid, jls);
        CodecOracle.Dcmtk("dcmdjpls", g.PlanarConfiguration == 0 ? "+px" : "+pl", jls, back);
        using var decoded = DicomFile.Open(back);
        var got = CodecOracle.Frames(decoded.Dataset);
        Assert.Equal(frames.Count, got.Count);
        for (int i = 0; i < frames.Count; i++) Assert.Equal(CodecOracle.Canonical(frames[i], g), got[i]);
    }

    [Theory]
    [MemberData(nameof(JpegLsImages))]
    public void Every_JPEG_LS_file_of_the_corpus_decodes_here_as_dcmdjpls_decodes_it(string file)
    {
        using var dir = new TempDir();
        string native = dir.File("native.dcm");
        CodecOracle.Dcmtk("dcmdjpls", Corpus.Get(file).Path, native);
        CodecOracle.AssertDecodesAs(Corpus.Get(file).Path, native, (e, g, f) => JpegLs.Decode(e, g, f));
    }
}
