using AkkaVna.Dicom;
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
