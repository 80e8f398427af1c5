using System.Runtime.InteropServices;

namespace AkkaVna.Codecs;

/// <summary>
/// Lossy JPEG decoding (1.2.840.10008.1.2.4.50 baseline, 1.2.840.10008.1.2.4.51 extended with 8-bit samples) through
/// libjpeg-turbo's TurboJPEG API (Debian libturbojpeg0): for rendering and for receivers that take only native pixels,
/// never to encode (the archive makes no lossy copy). Grey frames decode to grey, colour frames (YCbCr or RGB in the
/// stream) to RGB by pixel, with the accurate integer IDCT. Twelve-bit grey frames (process 4), which this library
/// version does not decode, go to <see cref="JpegDct12"/> (C#, the same IDCT). Every return code is checked; the output
/// is sized from the header.
/// </summary>
public static partial class JpegBaseline
{
    public const string BaselineTransferSyntaxUid = "1.2.840.10008.1.2.4.50";
    public const string ExtendedTransferSyntaxUid = "1.2.840.10008.1.2.4.51";

    private const int PixelFormatRgb = 0, PixelFormatGray = 6, AccurateDct = 4096;
    private const string Library = "turbojpeg";

    [LibraryImport(Library, EntryPoint = "tjInitDecompress")] private static partial IntPtr InitDecompress();
    [LibraryImport(Library, EntryPoint = "tjInitCompress")] private static partial IntPtr InitCompress();
    [LibraryImport(Library, EntryPoint = "tjCompress2")]
    private static unsafe partial int Compress(IntPtr handle, byte* source, int width, int pitch, int height, int pixelFormat, byte** jpeg, nuint* jpegSize,
        int subsampling, int quality, int flags);
    [LibraryImport(Library, EntryPoint = "tjFree")] private static unsafe partial void Free(byte* buffer);
    [LibraryImport(Library, EntryPoint = "tjDestroy")] private static partial int Destroy(IntPtr handle);
    [LibraryImport(Library, EntryPoint = "tjGetErrorStr2")] private static partial IntPtr ErrorString(IntPtr handle);
    [LibraryImport(Library, EntryPoint = "tjDecompressHeader3")]
    private static unsafe partial int DecompressHeader(IntPtr handle, byte* jpeg, nuint size, out int width, out int height, out int subsampling, out int colourspace);
    [LibraryImport(Library, EntryPoint = "tjDecompress2")]
    private static unsafe partial int Decompress(IntPtr handle, byte* jpeg, nuint size, byte* destination, int width, int pitch, int height, int pixelFormat, int flags);

    /// <summary>
    /// Decodes one frame into <paramref name="frame"/>: 8-bit grey (one sample) or RGB by pixel (three samples), sized as
    /// <paramref name="geometry"/> says (Bits Allocated 8; a colour frame is written by pixel whatever its planar configuration).
    /// </summary>
    public static void Decode(ReadOnlySpan<byte> encoded, FrameGeometry geometry, Span<byte> frame)
    {
        geometry.Validate();
        if (JpegDct12.IsTwelveBit(encoded))
        {
            JpegDct12.Decode(encoded, geometry, frame);
            return;
        }
        if (geometry.BitsAllocated != 8 || geometry.SamplesPerPixel == 4)
            throw new CodecException($"lossy JPEG decodes here to 8-bit grey or RGB, or 12-bit grey, not Bits Allocated {geometry.BitsAllocated} with {geometry.SamplesPerPixel} samples");
        if (frame.Length != geometry.FrameBytes) throw new CodecException($"the output has {frame.Length} bytes, the frame {geometry.FrameBytes}");
        byte[] input = encoded.ToArray();
        var output = NativeLibraries.Call(Library, () => DecodeNative(input, geometry));
        output.CopyTo(frame);
    }

    private static unsafe byte[] DecodeNative(byte[] input, FrameGeometry g)
    {
        IntPtr handle = InitDecompress();
        if (handle == IntPtr.Zero) throw new CodecException("JPEG: TurboJPEG could not create a decompressor");
        try
        {
            string Error() => Marshal.PtrToStringUTF8(ErrorString(handle)) ?? "unknown error";
            fixed (byte* jpeg = input)
            {
                if (DecompressHeader(handle, jpeg, (nuint)input.Length, out int width, out int height, out _, out _) != 0)
                    throw new CodecException($"JPEG header: {Error()} (TurboJPEG)");
                if (width != g.Columns || height != g.Rows)
                    throw new CodecException($"the JPEG frame is {width} x {height}, the data set says {g.Columns} x {g.Rows}");
                var output = new byte[g.FrameBytes];
                fixed (byte* o = output)
                {
                    int format = g.SamplesPerPixel == 1 ? PixelFormatGray : PixelFormatRgb;
                    if (Decompress(handle, jpeg, (nuint)input.Length, o, width, width * g.SamplesPerPixel, height, format, AccurateDct) != 0)
                        throw new CodecException($"JPEG decoding: {Error()} (TurboJPEG)");
                }
                return output;
            }
        }
        finally
        {
            Destroy(handle);
        }
    }

    private const int Subsampling444 = 0, SubsamplingGray = 3;

    /// <summary>
    /// An 8-bit grey or RGB picture (<paramref name="channels"/> 1 or 3, rows top to bottom) as a baseline JPEG file, for
    /// rendering only (never stored): 4:4:4, the accurate DCT, <paramref name="quality"/> 1 to 100.
    /// </summary>
    public static byte[] EncodePicture(ReadOnlySpan<byte> pixels, int width, int height, int channels, int quality)
    {
        if (width is < 1 or > 65535 || height is < 1 or > 65535 || channels is not (1 or 3) || quality is < 1 or > 100)
            throw new CodecException($"a JPEG picture of {width} x {height} x {channels} at quality {quality}");
        if (pixels.Length != (long)width * height * channels) throw new CodecException($"the picture has {pixels.Length} bytes, not {width} x {height} x {channels}");
        byte[] input = pixels.ToArray();
        return NativeLibraries.Call(Library, () => EncodeNative(input, width, height, channels, quality));
    }

    private static unsafe byte[] EncodeNative(byte[] input, int width, int height, int channels, int quality)
    {
        IntPtr handle = InitCompress();
        if (handle == IntPtr.Zero) throw new CodecException("JPEG: TurboJPEG could not create a compressor");
        byte* jpeg = null;
        try
        {
            nuint size = 0;
            fixed (byte* source = input)
            {
                int format = channels == 1 ? PixelFormatGray : PixelFormatRgb;
                if (Compress(handle, source, width, width * channels, height, format, &jpeg, &size, channels == 1 ? SubsamplingGray : Subsampling444, quality, AccurateDct) != 0)
                    throw new CodecException($"JPEG encoding: {Marshal.PtrToStringUTF8(ErrorString(handle)) ?? "unknown error"} (TurboJPEG)");
            }
            if (jpeg == null || size == 0 || size > int.MaxValue) throw new CodecException($"JPEG encoding gave {size} bytes (TurboJPEG)");
            return new ReadOnlySpan<byte>(jpeg, (int)size).ToArray();
        }
        finally
        {
            if (jpeg != null) Free(jpeg);
            Destroy(handle);
        }
    }
}
