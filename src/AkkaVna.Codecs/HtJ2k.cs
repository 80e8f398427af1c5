using System.Runtime.InteropServices;

namespace AkkaVna.Codecs;

/// <summary>
/// High-Throughput JPEG 2000 lossless (1.2.840.10008.1.2.4.201, PS3.5 A.4.11) encoded through OpenJPH (Debian
/// libopenjph0.9): reversible 5/3 wavelet, 64x64 code-blocks, no colour transform (the Photometric Interpretation of a
/// colour image stays what it was), as many resolutions as <see cref="Jpeg2000.Resolutions"/> gives, one tile. Decoded
/// by <see cref="Jpeg2000.Decode"/> (OpenJPEG 2.5 reads HT code-blocks).
/// <para>
/// OpenJPH is a C++ library that reports errors by throwing: it is called through <c>native/openjph_shim.cpp</c>, a C
/// face built with the project when libopenjph-dev and g++ are installed, which catches every exception and returns its
/// message. Without the shim or the library, encoding is a <see cref="CodecException"/> naming the packages.
/// </para>
/// </summary>
public static unsafe partial class HtJ2k
{
    public const string LosslessTransferSyntaxUid = Jpeg2000.HtLosslessTransferSyntaxUid;

    internal const string Library = "akkavna_openjph";

    [LibraryImport(Library, EntryPoint = "akv_ojph_version")] private static partial IntPtr Version();

    [LibraryImport(Library, EntryPoint = "akv_ojph_encode")]
    private static partial int EncodeFrame(int* samples, uint width, uint height, uint components, uint bitDepth, int isSigned, uint decompositions,
        byte** output, nuint* outputSize, byte* error, nuint errorSize);

    [LibraryImport(Library, EntryPoint = "akv_ojph_free")] private static partial void Free(byte* data);

    /// <summary>The OpenJPH version the shim was built against (e.g. "0.9.0"); a <see cref="CodecException"/> when it is missing.</summary>
    public static string LibraryVersion() => NativeLibraries.Call(Library, () => Marshal.PtrToStringUTF8(Version()) ?? "?");

    /// <summary>Encodes one native frame, lossless, as a bare HTJ2K codestream.</summary>
    public static byte[] Encode(ReadOnlySpan<byte> frame, FrameGeometry geometry)
    {
        Jpeg2000.CheckGeometry(geometry);
        if (frame.Length != geometry.FrameBytes) throw new CodecException($"the frame has {frame.Length} bytes, its geometry {geometry.FrameBytes}");
        int spp = geometry.SamplesPerPixel, pixels = checked((int)geometry.Pixels);
        var samples = new int[checked(pixels * spp)];
        for (int c = 0; c < spp; c++) Jpeg2000.ComponentSamples(frame, geometry, c, samples.AsSpan(c * pixels, pixels));
        return NativeLibraries.Call(Library, () => EncodeNative(samples, geometry));
    }

    private static byte[] EncodeNative(int[] samples, FrameGeometry g)
    {
        const int errorSize = 512;
        byte* error = stackalloc byte[errorSize];
        error[0] = 0;
        byte* output = null;
        nuint size = 0;
        int rc;
        fixed (int* p = samples)
            rc = EncodeFrame(p, (uint)g.Columns, (uint)g.Rows, (uint)g.SamplesPerPixel, (uint)g.BitsStored, g.Signed ? 1 : 0,
                (uint)(Jpeg2000.Resolutions(g) - 1), &output, &size, error, errorSize);
        try
        {
            if (rc != 0) throw new CodecException($"HTJ2K encoding: {Marshal.PtrToStringUTF8((IntPtr)error)} (OpenJPH)");
            if (output == null || size == 0 || size > int.MaxValue) throw new CodecException($"HTJ2K encoding gave {size} bytes (OpenJPH)");
            return new ReadOnlySpan<byte>(output, (int)size).ToArray();
        }
        finally
        {
            if (output != null) Free(output);
        }
    }
}
