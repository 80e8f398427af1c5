using System.Buffers.Binary;
using AkkaVna.Codecs;
using AkkaVna.Dicom;
using AkkaVna.Dicom.Buffers;
using AkkaVna.Dicom.IO;
using AkkaVna.Testing;

namespace AkkaVna.Codecs.Tests;

/// <summary>
/// JPEG 2000 through OpenJPEG (Debian libopenjp2-7) against OpenJPEG's own command-line tools (opj_compress,
/// opj_decompress from libopenjp2-tools) and dcmtk: every native image of the corpus encoded here decodes here and in
/// opj_decompress to the original (its Bits Stored, sign-extended), and dcmtk reads the file written; what opj_compress
/// encodes from those images decodes here to the original; every JPEG 2000 file of the corpus (lossless and lossy)
/// decodes here as opj_decompress decodes its codestreams.
/// </summary>
public sealed class Jpeg2000Tests
{
    public static TheoryData<string> NativeImages() => Corpus.Files(e => CodecOracle.NativeLittleEndian.Contains(e.TransferSyntax)
        && CodecOracle.Geometry(e.Path) is { BitsAllocated: <= 16, SamplesPerPixel: 1 or 3 });

    public static TheoryData<string> Jpeg2000Images() => Corpus.Files(e => e.TransferSyntax is Jpeg2000.LosslessTransferSyntaxUid or Jpeg2000.LossyTransferSyntaxUid
        && e.DcmdumpAccepts);

    private static string OpenJpegTool(string name) => File.Exists("/usr/bin/" + name) ? "/usr/bin/" + name
        : throw new InvalidOperationException($"{name} is missing: tests/run.sh installs it (Debian package libopenjp2-tools)");

    private static void Run(string tool, params string[] args)
    {
        var r = Tool.Run(OpenJpegTool(tool), args, TimeSpan.FromMinutes(2));
        Assert.True(r.ExitCode == 0, $"{tool} {string.Join(' ', args)}: {r.StdErr}{r.StdOut}");
    }

    /// <summary>Bytes per sample in OpenJPEG's raw files: one up to 8 bits of precision, two above.</summary>
    private static int RawBytes(FrameGeometry g) => g.BitsStored <= 8 ? 1 : 2;

    /// <summary>A native frame as opj_compress reads a little-endian raw file: plane by plane, the canonical value of each sample.</summary>
    private static byte[] ToRaw(byte[] frame, FrameGeometry g)
    {
        var canonical = CodecOracle.Canonical(frame, g);
        int spp = g.SamplesPerPixel, rb = RawBytes(g), nb = g.BytesPerSample;
        long pixels = g.Pixels;
        var raw = new byte[pixels * spp * rb];
        for (int c = 0; c < spp; c++)
            for (long p = 0; p < pixels; p++)
            {
                long from = spp == 1 || g.PlanarConfiguration == 0 ? p * spp + c : c * pixels + p;
                int v = nb == 1 ? canonical[from] : BinaryPrimitives.ReadUInt16LittleEndian(canonical.AsSpan((int)(from * 2)));
                long to = c * pixels + p;
                if (rb == 1) raw[to] = (byte)v;
                else BinaryPrimitives.WriteUInt16LittleEndian(raw.AsSpan((int)(to * 2)), (ushort)v);
            }
        return raw;
    }

    /// <summary>What opj_decompress writes to a little-endian raw file, as a native frame in <paramref name="g"/>'s layout.</summary>
    private static byte[] FromRaw(byte[] raw, FrameGeometry g)
    {
        int spp = g.SamplesPerPixel, rb = RawBytes(g), nb = g.BytesPerSample, shift = 32 - g.BitsStored;
        long pixels = g.Pixels;
        Assert.Equal(pixels * spp * rb, raw.Length);
        var frame = new byte[g.FrameBytes];
        for (int c = 0; c < spp; c++)
            for (long p = 0; p < pixels; p++)
            {
                long from = c * pixels + p;
                uint v = rb == 1 ? raw[from] : BinaryPrimitives.ReadUInt16LittleEndian(raw.AsSpan((int)(from * 2)));
                v = g.Signed ? (uint)((int)(v << shift) >> shift) : v << shift >> shift;
                long to = spp == 1 || g.PlanarConfiguration == 0 ? p * spp + c : c * pixels + p;
                if (nb == 1) frame[to] = (byte)v;
                else BinaryPrimitives.WriteUInt16LittleEndian(frame.AsSpan((int)(to * 2)), (ushort)v);
            }
        return frame;
    }

    private static byte[] DecodeHere(byte[] encoded, FrameGeometry g)
    {
        var frame = new byte[g.FrameBytes];
        Jpeg2000.Decode(encoded, g, frame);
        return frame;
    }

    internal static byte[] DecodeWithOpenJpeg(TempDir dir, byte[] codestream, FrameGeometry g)
    {
        string j2k = dir.File($"{Guid.NewGuid():N}.{(Jpeg2000.IsJp2(codestream) ? "jp2" : "j2k")}"), raw = Path.ChangeExtension(j2k, ".rawl");
        File.WriteAllBytes(j2k, codestream);
        Run("opj_decompress", "-quiet", "-i", j2k, "-o", raw);
        return FromRaw(File.ReadAllBytes(raw), g);
    }

    /// <summary>The COD marker's coding style: (decomposition levels, reversible 5/3 wavelet, multiple component transform).</summary>
    private static (int Levels, bool Reversible, bool Mct) CodingStyle(byte[] codestream)
    {
        for (int i = 2; i + 14 < codestream.Length; i++)
            if (codestream[i] == 0xFF && codestream[i + 1] == 0x52)
                return (codestream[i + 9], codestream[i + 13] == 1, codestream[i + 8] == 1);
        throw new Xunit.Sdk.XunitException("no COD marker");
    }

    [Fact]
    public void A_synthetic_CT_and_RGB_frame_round_trip_reversibly_and_bad_streams_are_refused_with_a_reason()
    {
        using var dir = new TempDir();
        var random = new Random(5);
        var ct = new FrameGeometry(64, 80, 1, 16, 12, Signed: true);
        var frame = new byte[ct.FrameBytes];
        for (int i = 0; i < frame.Length; i += 2) BinaryPrimitives.WriteInt16LittleEndian(frame.AsSpan(i), (short)random.Next(-2048, 2048));
        var encoded = Jpeg2000.Encode(frame, ct);
        Assert.Equal((5, true, false), CodingStyle(encoded));
        Assert.Equal(frame, DecodeHere(encoded, ct));
        Assert.Equal(frame, DecodeWithOpenJpeg(dir, encoded, ct));
        // A small frame takes fewer resolutions; colour by plane keeps its layout, with no colour transform.
        var rgb = new FrameGeometry(13, 47, 3, 8, 8, Signed: false, PlanarConfiguration: 1);
        var colour = new byte[rgb.FrameBytes];
        random.NextBytes(colour);
        var encodedColour = Jpeg2000.Encode(colour, rgb);
        Assert.Equal((3, true, false), CodingStyle(encodedColour));
        Assert.Equal(colour, DecodeHere(encodedColour, rgb));
        Assert.Contains("JPEG 2000", Assert.Throws<CodecException>(() => DecodeHere(encoded[..(encoded.Length / 3)], ct)).Reason, StringComparison.Ordinal);
        Assert.Contains("the data set says", Assert.Throws<CodecException>(() => DecodeHere(encoded, ct with { Columns = 81 })).Reason, StringComparison.Ordinal);
        Assert.Throws<CodecException>(() => DecodeHere([0xFF, 0x4F, 0xFF, 0x51, 0, 2], ct));
        Assert.Throws<CodecException>(() => DecodeHere([], ct));
        Assert.Throws<CodecException>(() => Jpeg2000.Encode(new byte[64 * 80 * 4], ct with { BitsAllocated = 32, BitsStored = 32 }));
    }

    [Theory]
    [MemberData(nameof(NativeImages))]
    public void What_is_encoded_here_is_the_original_as_decoded_here_by_opj_decompress_and_dcmtk_reads_the_file(string file)
    {
        using var dir = new TempDir();
        string j2k = dir.File("mine.dcm");
        var (g, frames, encoded) = CodecOracle.EncodeCorpusImage(file, (f, g) => Jpeg2000.Encode(f, g), DecodeHere, Jpeg2000.LosslessTransferSyntaxUid, j2k);
        for (int i = 0; i < Math.Min(3, frames.Count); i++) Assert.Equal(CodecOracle.Canonical(frames[i], g), DecodeWithOpenJpeg(dir, encoded[i], g));
        CodecOracle.Dcmtk("dcmdump", "-q", "+E", j2k);
    }

    [Theory]
    [MemberData(nameof(NativeImages))]
    public void What_opj_compress_encodes_decodes_here_to_the_original(string file)
    {
        using var dir = new TempDir();
        using var original = DicomFile.Open(Corpus.Get(file).Path);
        var g = CodecOracle.GeometryOf(original.Dataset)!;
        var frame = CodecOracle.Frames(original.Dataset)[0];
        string raw = dir.File("frame.rawl"), j2k = dir.File("frame.j2k");
        File.WriteAllBytes(raw, ToRaw(frame, g));
        string format = string.Join(",", g.Columns, g.Rows, g.SamplesPerPixel, g.BitsStored, g.Signed ? "s" : "u");
        Run("opj_compress", "-i", raw, "-o", j2k, "-F", format, "-n", Jpeg2000.Resolutions(g).ToString(System.Globalization.CultureInfo.InvariantCulture));
        Assert.Equal(CodecOracle.Canonical(frame, g), DecodeHere(File.ReadAllBytes(j2k), g));
    }

    [Theory]
    [MemberData(nameof(Jpeg2000Images))]
    public void Every_JPEG_2000_file_of_the_corpus_decodes_here_as_opj_decompress_decodes_it(string file)
    {
        using var dir = new TempDir();
        using var encoded = DicomFile.Open(Corpus.Get(file).Path);
        var g = CodecOracle.GeometryOf(encoded.Dataset)!;
        var codestreams = CodecOracle.Frames(encoded.Dataset);
        Assert.NotEmpty(codestreams);
        foreach (var codestream in codestreams.Take(4))
        {
            byte[] expected;
            try
            {
                expected = DecodeWithOpenJpeg(dir, codestream, g);
            }
            catch (Xunit.Sdk.XunitException)
            {
                // Not a codestream opj_decompress reads (a parser test's broken one): refused here too, with a reason.
                Assert.Contains("JPEG 2000", Assert.Throws<CodecException>(() => DecodeHere(codestream, g)).Reason, StringComparison.Ordinal);
                continue;
            }
            Assert.Equal(expected, DecodeHere(codestream, g));
        }
    }
}
