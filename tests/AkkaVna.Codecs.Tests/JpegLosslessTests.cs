using System.Buffers.Binary;
using AkkaVna.Codecs;
using AkkaVna.Dicom;
using AkkaVna.Dicom.IO;
using AkkaVna.Testing;

namespace AkkaVna.Codecs.Tests;

/// <summary>
/// JPEG Lossless (process 14) in C# against dcmtk's own JPEG codec (dcmcjpeg, dcmdjpeg) on every corpus image it takes:
/// what is encoded here (SV1) dcmdjpeg decodes to the original; what dcmcjpeg encodes (SV1, and with every other
/// predictor) decodes here as dcmdjpeg decodes it; every JPEG Lossless file of the corpus decodes here as dcmdjpeg does.
/// </summary>
public sealed class JpegLosslessTests
{
    public static TheoryData<string> NativeImages() => Corpus.Files(e => CodecOracle.NativeLittleEndian.Contains(e.TransferSyntax)
        && CodecOracle.Geometry(e.Path) is { BitsAllocated: <= 16, BitsStored: >= 2, SamplesPerPixel: 1 or 3 });

    public static TheoryData<string> LosslessJpegImages() => Corpus.Files(e => e.TransferSyntax is JpegLossless.Sv1TransferSyntaxUid or JpegLossless.TransferSyntaxUid
        && e.DcmdumpAccepts && CodecOracle.Geometry(e.Path) is not null);

    private static byte[] DecodeHere(byte[] encoded, FrameGeometry g)
    {
        var frame = new byte[g.FrameBytes];
        JpegLossless.Decode(encoded, g, frame);
        return frame;
    }

    [Fact]
    public void A_synthetic_CT_and_RGB_frame_round_trip_losslessly_and_bad_streams_are_refused_with_a_reason()
    {
        var random = new Random(7);
        var ct = new FrameGeometry(64, 80, 1, 16, 16, Signed: false);
        var frame = new byte[ct.FrameBytes];
        for (int i = 0; i < frame.Length; i += 2) BinaryPrimitives.WriteUInt16LittleEndian(frame.AsSpan(i), (ushort)random.Next(0, 65536));
        var encoded = JpegLossless.Encode(frame, ct);
        Assert.Equal(frame, DecodeHere(encoded, ct)); // 16-bit noise: differences of category 16 too
        var signed = new FrameGeometry(33, 47, 1, 16, 12, Signed: true);
        var s = new byte[signed.FrameBytes];
        for (int i = 0; i < s.Length; i += 2) BinaryPrimitives.WriteInt16LittleEndian(s.AsSpan(i), (short)random.Next(-2048, 2048));
        Assert.Equal(s, DecodeHere(JpegLossless.Encode(s, signed), signed));
        foreach (int planar in new[] { 0, 1 })
        {
            var rgb = new FrameGeometry(17, 23, 3, 8, 8, Signed: false, PlanarConfiguration: planar);
            var colour = new byte[rgb.FrameBytes];
            random.NextBytes(colour);
            Assert.Equal(colour, DecodeHere(JpegLossless.Encode(colour, rgb), rgb));
        }
        Assert.Contains("JPEG Lossless", Assert.Throws<CodecException>(() => DecodeHere(encoded[..(encoded.Length / 2)], ct)).Reason, StringComparison.Ordinal);
        Assert.Contains("the data set says", Assert.Throws<CodecException>(() => DecodeHere(encoded, ct with { Columns = 81 })).Reason, StringComparison.Ordinal);
        Assert.Throws<CodecException>(() => DecodeHere([0xFF, 0xD8, 0xFF, 0xC0, 0, 2, 0xFF, 0xD9], ct));
        Assert.Throws<CodecException>(() => DecodeHere([], ct));
    }

    [Theory]
    [MemberData(nameof(NativeImages))]
    public void What_is_encoded_here_is_the_original_and_dcmdjpeg_decodes_it_so(string file)
    {
        using var dir = new TempDir();
        string jpeg = dir.File("mine.dcm"), back = dir.File("back.dcm");
        var (g, frames, _) = CodecOracle.EncodeCorpusImage(file, (f, geometry) => JpegLossless.Encode(f, geometry), DecodeHere, JpegLossless.Sv1TransferSyntaxUid, jpeg);
        CodecOracle.Dcmtk("dcmdjpeg", "+cn", g.PlanarConfiguration == 0 ? "+px" : "+pl", jpeg, back);
        using var decoded = DicomFile.Open(back);
        var got = CodecOracle.Frames(decoded.Dataset);
        Assert.Equal(frames.Count, got.Count);
        for (int i = 0; i < frames.Count; i++) Assert.Equal(CodecOracle.Canonical(frames[i], g), got[i]);
    }

    [Theory]
    [MemberData(nameof(NativeImages))]
    public void What_dcmcjpeg_encodes_with_each_predictor_decodes_here_as_dcmdjpeg_decodes_it(string file)
    {
        using var dir = new TempDir();
        foreach (var option in new[] { "+e1", "+el" })
        {
            string jpeg = dir.File($"jpeg{option}.dcm"), back = dir.File($"back{option}.dcm");
            // +e1: selection value 1 (.70); +el with each predictor 1-7 and a point transform of 0 (.57).
            var args = option == "+e1" ? new[] { option } : new[] { option, "+sv", "6" };
            var r = Tool.Run(Tool.Dcmtk("dcmcjpeg"), [.. args, Corpus.Get(file).Path, jpeg], TimeSpan.FromMinutes(2));
            if (r.ExitCode != 0) continue; // dcmcjpeg takes only what its IJG codec can (8, 12 or 16 bits)
            CodecOracle.Dcmtk("dcmdjpeg", "+cn", jpeg, back);
            CodecOracle.AssertDecodesAs(jpeg, back, (e, g, f) => JpegLossless.Decode(e, g, f));
        }
    }

    [Theory]
    [MemberData(nameof(LosslessJpegImages))]
    public void Every_JPEG_Lossless_file_of_the_corpus_decodes_here_as_dcmdjpeg_decodes_it(string file)
    {
        using var dir = new TempDir();
        string native = dir.File("native.dcm");
        CodecOracle.Dcmtk("dcmdjpeg", "+cn", Corpus.Get(file).Path, native);
        try
        {
            CodecOracle.AssertDecodesAs(Corpus.Get(file).Path, native, (e, g, f) => JpegLossless.Decode(e, g, f));
        }
        catch (CodecException e) when (e.Reason.Contains("another JPEG process", StringComparison.Ordinal))
        {
            // A file whose syntax says lossless but whose stream is baseline JPEG (dcmtk's IJG decoder takes any process):
            // refused here with that reason, never decoded wrongly.
        }
    }
}
