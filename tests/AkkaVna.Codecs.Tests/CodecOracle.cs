using System.Buffers.Binary;
using AkkaVna.Dicom;
using AkkaVna.Dicom.Buffers;
using AkkaVna.Dicom.Imaging;
using AkkaVna.Dicom.IO;
using AkkaVna.Testing;

namespace AkkaVna.Codecs.Tests;

/// <summary>What the codec tests share: the corpus images a codec takes, their geometry and frames, dcmtk as the oracle.</summary>
internal static class CodecOracle
{
    public static readonly string[] NativeLittleEndian = [DicomUids.ImplicitVRLittleEndian, DicomUids.ExplicitVRLittleEndian];

    public static FrameGeometry? Geometry(string path)
    {
        try
        {
            using var file = DicomFile.Open(path);
            return GeometryOf(file.Dataset) is { } g && PixelDataFrames.Of(file.Dataset).Count > 0 ? g : null;
        }
        catch (Exception e) when (e is DicomParseException or PixelDataException)
        {
            return null; // not an image a codec takes (no pixels, or pixels that do not fit the geometry)
        }
    }

    public static FrameGeometry? GeometryOf(DicomDataset ds)
    {
        if (!PixelDataFrames.HasPixelData(ds) || ds[DicomTags.PixelData] is null) return null;
        var g = new FrameGeometry(ds.GetUInt16(DicomTags.Rows) ?? 0, ds.GetUInt16(DicomTags.Columns) ?? 0, ds.GetUInt16(DicomTags.SamplesPerPixel) ?? 1,
            ds.GetUInt16(DicomTags.BitsAllocated) ?? 0, ds.GetUInt16(DicomTags.BitsStored) ?? 0, ds.GetUInt16(DicomTags.PixelRepresentation) == 1,
            ds.GetUInt16(DicomTags.PlanarConfiguration) ?? 0);
        try
        {
            g.Validate();
            return g;
        }
        catch (CodecException)
        {
            return null;
        }
    }

    public static List<byte[]> Frames(DicomDataset ds) =>
        [.. PixelDataFrames.Of(ds).Frames().Select(f =>
        {
            using var s = f.Open();
            using var ms = new MemoryStream();
            s.CopyTo(ms);
            return ms.ToArray();
        })];

    /// <summary>A native frame as a codec of its Bits Stored gives it back: the stored bits, sign-extended or zero-filled above.</summary>
    public static byte[] Canonical(byte[] frame, FrameGeometry g)
    {
        var result = (byte[])frame.Clone();
        int shift = 32 - g.BitsStored;
        for (int i = 0; i < result.Length; i += g.BytesPerSample)
        {
            uint v = g.BytesPerSample == 1 ? result[i] : BinaryPrimitives.ReadUInt16LittleEndian(result.AsSpan(i));
            v = g.Signed ? (uint)((int)(v << shift) >> shift) : v << shift >> shift;
            if (g.BytesPerSample == 1) result[i] = (byte)v;
            else BinaryPrimitives.WriteUInt16LittleEndian(result.AsSpan(i), (ushort)v);
        }
        return result;
    }

    /// <summary>
    /// Encodes every frame of a corpus image with <paramref name="encode"/>, shows each decodes with <paramref name="decode"/>
    /// to the original (its Bits Stored), and writes the file in <paramref name="syntaxUid"/> to <paramref name="output"/>.
    /// </summary>
    public static (FrameGeometry Geometry, List<byte[]> Frames, List<byte[]> Encoded) EncodeCorpusImage(string file, Func<byte[], FrameGeometry, byte[]> encode,
        Func<byte[], FrameGeometry, byte[]> decode, string syntaxUid, string output)
    {
        using var original = DicomFile.Open(Corpus.Get(file).Path);
        var g = GeometryOf(original.Dataset)!;
        var frames = Frames(original.Dataset);
        var encoded = frames.Select(f => encode(f, g)).ToList();
        for (int i = 0; i < frames.Count; i++) Assert.Equal(Canonical(frames[i], g), decode(encoded[i], g));
        var ds = original.Dataset;
        ds.Add(new DicomFragmentSequence(DicomTags.PixelData, DicomVR.OB, MemoryByteBuffer.Empty, encoded.Select(e => (IByteBuffer)new MemoryByteBuffer(e))));
        DicomWriter.WriteFile(output, ds, DicomTransferSyntax.Lookup(syntaxUid)!);
        return (g, frames, encoded);
    }

    public static void Dcmtk(string tool, params string[] args)
    {
        var r = Tool.Run(Tool.Dcmtk(tool), args, TimeSpan.FromMinutes(2));
        Assert.True(r.ExitCode == 0, $"{tool}: {r.StdErr}{r.StdOut}");
    }

    /// <summary>Every frame of <paramref name="encodedPath"/>, decoded here, equals the frame dcmtk decoded into <paramref name="referencePath"/> (in its layout).</summary>
    public static void AssertDecodesAs(string encodedPath, string referencePath, Action<byte[], FrameGeometry, byte[]> decode)
    {
        using var encoded = DicomFile.Open(encodedPath);
        using var reference = DicomFile.Open(referencePath);
        var g = GeometryOf(reference.Dataset)!;
        var fragments = Frames(encoded.Dataset);
        var expected = Frames(reference.Dataset);
        Assert.Equal(expected.Count, fragments.Count);
        for (int i = 0; i < expected.Count; i++)
        {
            var frame = new byte[g.FrameBytes];
            decode(fragments[i], g, frame);
            Assert.Equal(expected[i], frame);
        }
    }
}
