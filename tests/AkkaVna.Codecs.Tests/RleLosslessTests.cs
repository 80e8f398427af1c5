using AkkaVna.Codecs;
using AkkaVna.Dicom;
using AkkaVna.Dicom.Buffers;
using AkkaVna.Dicom.Imaging;
using AkkaVna.Dicom.IO;
using AkkaVna.Testing;

namespace AkkaVna.Codecs.Tests;

/// <summary>
/// RLE Lossless against dcmtk as the oracle, across the corpus: what dcmcrle encodes decodes here to the original
/// pixels, what is encoded here dcmdrle decodes to the original pixels, and every RLE file of the corpus decodes here as
/// dcmdrle decodes it. Plus round trips of every layout and malformed input refused with a reason.
/// </summary>
public sealed class RleLosslessTests
{
    [Theory]
    [InlineData(1, 8, 0)]
    [InlineData(1, 16, 0)]
    [InlineData(1, 32, 0)]
    [InlineData(3, 8, 0)]
    [InlineData(3, 8, 1)]
    [InlineData(3, 16, 1)]
    [InlineData(4, 16, 0)]
    public void Every_layout_round_trips_bit_for_bit(int samples, int bits, int planar)
    {
        var g = new FrameGeometry(37, 301, samples, bits, bits, Signed: false, planar);
        var random = new Random(samples * 100 + bits);
        var frame = new byte[g.FrameBytes];
        // Runs, literals and runs longer than 128 bytes, across row ends.
        for (int i = 0; i < frame.Length;)
        {
            int n = Math.Min(frame.Length - i, random.Next(1, 300));
            if (random.Next(2) == 0) frame.AsSpan(i, n).Fill((byte)random.Next(256));
            else random.NextBytes(frame.AsSpan(i, n));
            i += n;
        }
        var encoded = RleLossless.Encode(frame, g);
        Assert.Equal(0, encoded.Length % 2);
        var decoded = new byte[g.FrameBytes];
        RleLossless.Decode(encoded, g, decoded);
        Assert.Equal(frame, decoded);
        // A flat frame compresses well; noise costs at most 1/128 more.
        var flat = new byte[g.FrameBytes];
        Assert.True(RleLossless.Encode(flat, g).Length < g.FrameBytes / 20);
        random.NextBytes(flat);
        Assert.True(RleLossless.Encode(flat, g).Length <= 64 + g.FrameBytes + g.FrameBytes / 128 + g.Rows * samples * g.BytesPerSample * 2 + 32);
    }

    [Fact]
    public void Malformed_frames_are_refused_with_a_reason_never_an_overrun()
    {
        var g = new FrameGeometry(4, 4, 1, 8, 8, Signed: false);
        var good = RleLossless.Encode(new byte[16], g);
        var output = new byte[16];
        void Refused(byte[] encoded, string reason) =>
            Assert.Contains(reason, Assert.Throws<CodecException>(() => RleLossless.Decode(encoded, g, output)).Reason, StringComparison.Ordinal);
        Refused(good[..10], "no 64-byte header");
        var twoSegments = (byte[])good.Clone();
        twoSegments[0] = 2;
        Refused(twoSegments, "names 2 segments");
        var farOffset = (byte[])good.Clone();
        farOffset[4] = 0xFF;
        Refused(farOffset, "outside the frame");
        // A literal run of 128 bytes in a 4-byte segment; a replicate run past the frame; a segment too short.
        Refused([.. good[..64], 127, 1, 2, 3], "passes the segment's end");
        Refused([.. good[..64], 0x81, 7], "passes the frame's end");
        Refused([.. good[..64], 0xFD, 7], "decodes to 4 bytes");
        Assert.Throws<CodecException>(() => RleLossless.Encode(new byte[15], g));
        Assert.Contains("at most 15", Assert.Throws<CodecException>(() => RleLossless.Encode(new byte[16 * 16], g with { SamplesPerPixel = 4, BitsAllocated = 32, BitsStored = 32 })).Reason, StringComparison.Ordinal);
    }

    /// <summary>Corpus files with native little-endian pixel data RLE can take (8, 16 or 32 bits; 1, 3 or 4 samples).</summary>
    public static TheoryData<string> NativeImages() => Corpus.Files(e => CodecOracle.NativeLittleEndian.Contains(e.TransferSyntax)
        && CodecOracle.Geometry(e.Path) is { } g && g.SamplesPerPixel * g.BytesPerSample <= 15);

    public static TheoryData<string> RleImages() => Corpus.Files(e => e.TransferSyntax == RleLossless.TransferSyntaxUid && e.DcmdumpAccepts);

    private static FrameGeometry? GeometryOf(DicomDataset ds) => CodecOracle.GeometryOf(ds);

    private static List<byte[]> Frames(DicomDataset ds) => CodecOracle.Frames(ds);

    private static void Dcmtk(string tool, params string[] args) => CodecOracle.Dcmtk(tool, args);

    [Theory]
    [MemberData(nameof(NativeImages))]
    public void What_dcmcrle_encodes_decodes_here_to_the_original_pixels(string file)
    {
        using var dir = new TempDir();
        using var original = DicomFile.Open(Corpus.Get(file).Path);
        var g = GeometryOf(original.Dataset)!;
        string rle = dir.File("rle.dcm");
        Dcmtk("dcmcrle", Corpus.Get(file).Path, rle);
        using var encoded = DicomFile.Open(rle);
        Assert.Equal(RleLossless.TransferSyntaxUid, encoded.TransferSyntax.Uid);
        // dcmcrle keeps the planar configuration it writes in the data set; decode to that, compare with the original's layout.
        var written = GeometryOf(encoded.Dataset)!;
        var expected = Frames(original.Dataset);
        var fragments = Frames(encoded.Dataset);
        Assert.Equal(expected.Count, fragments.Count);
        for (int i = 0; i < expected.Count; i++)
        {
            var decoded = new byte[g.FrameBytes];
            RleLossless.Decode(fragments[i], g with { PlanarConfiguration = written.PlanarConfiguration }, decoded);
            Assert.Equal(Planar(expected[i], g, written.PlanarConfiguration), decoded);
        }
    }

    [Theory]
    [MemberData(nameof(NativeImages))]
    public void What_is_encoded_here_dcmdrle_decodes_to_the_original_pixels(string file)
    {
        using var dir = new TempDir();
        using var original = DicomFile.Open(Corpus.Get(file).Path);
        var g = GeometryOf(original.Dataset)!;
        var frames = Frames(original.Dataset);
        var ds = original.Dataset;
        ds.Add(new DicomFragmentSequence(DicomTags.PixelData, DicomVR.OB, MemoryByteBuffer.Empty,
            frames.Select(f => (IByteBuffer)new MemoryByteBuffer(RleLossless.Encode(f, g)))));
        string rle = dir.File("mine.dcm"), back = dir.File("back.dcm");
        DicomWriter.WriteFile(rle, ds, DicomTransferSyntax.RLELossless);
        Dcmtk("dcmdrle", rle, back); // it writes the planar configuration it decoded to; compared in that layout below
        using var decoded = DicomFile.Open(back);
        var got = Frames(decoded.Dataset);
        Assert.Equal(frames.Count, got.Count);
        int decodedPlanar = decoded.Dataset.GetUInt16(DicomTags.PlanarConfiguration) ?? 0;
        for (int i = 0; i < frames.Count; i++) Assert.Equal(Planar(frames[i], g, decodedPlanar), got[i]);
    }

    [Theory]
    [MemberData(nameof(RleImages))]
    public void Every_RLE_file_of_the_corpus_decodes_here_as_dcmdrle_decodes_it(string file)
    {
        using var dir = new TempDir();
        string native = dir.File("native.dcm");
        Dcmtk("dcmdrle", Corpus.Get(file).Path, native);
        CodecOracle.AssertDecodesAs(Corpus.Get(file).Path, native, (e, g, f) => RleLossless.Decode(e, g, f));
    }

    /// <summary>A native frame in the layout <paramref name="planar"/> (the same bytes when it is already so, or one sample).</summary>
    private static byte[] Planar(byte[] frame, FrameGeometry g, int planar)
    {
        if (g.SamplesPerPixel == 1 || g.PlanarConfiguration == planar) return frame;
        var result = new byte[frame.Length];
        int bps = g.BytesPerSample;
        for (long p = 0; p < g.Pixels; p++)
            for (int s = 0; s < g.SamplesPerPixel; s++)
            {
                long byPixel = (p * g.SamplesPerPixel + s) * bps, byPlane = (s * g.Pixels + p) * bps;
                var (from, to) = planar == 1 ? (byPixel, byPlane) : (byPlane, byPixel);
                frame.AsSpan((int)from, bps).CopyTo(result.AsSpan((int)to, bps));
            }
        return result;
    }
}
