using System.Buffers.Binary;
using System.Runtime.InteropServices;

namespace AkkaVna.Codecs;

/// <summary>
/// JPEG-LS (1.2.840.10008.1.2.4.80 lossless; 1.2.840.10008.1.2.4.81 near-lossless, decoded only) through CharLS
/// (Debian libcharls2), called through its C API. Samples of up to 16 bits; colour as the frame lays it out
/// (by pixel: sample interleaving; by plane: none). The codec works on the Bits Stored of each sample: encoding takes
/// the low Bits Stored bits, decoding writes them back sign-extended (signed) or zero-filled — so a frame whose unused
/// high bits carry anything else does not survive, which the compression child's pixel comparison catches. Every
/// return code is checked, every buffer bounded by what CharLS says it needs.
/// </summary>
public static partial class JpegLs
{
    public const string LosslessTransferSyntaxUid = "1.2.840.10008.1.2.4.80";
    public const string NearLosslessTransferSyntaxUid = "1.2.840.10008.1.2.4.81";

    [StructLayout(LayoutKind.Sequential)]
    private struct FrameInfo
    {
        public uint Width, Height;
        public int BitsPerSample, ComponentCount;
    }

    private const int InterleaveNone = 0, InterleaveSample = 2;

    [LibraryImport("charls", EntryPoint = "charls_jpegls_encoder_create")] private static partial IntPtr EncoderCreate();
    [LibraryImport("charls", EntryPoint = "charls_jpegls_encoder_destroy")] private static partial void EncoderDestroy(IntPtr encoder);
    [LibraryImport("charls", EntryPoint = "charls_jpegls_encoder_set_frame_info")] private static partial int EncoderSetFrameInfo(IntPtr encoder, in FrameInfo info);
    [LibraryImport("charls", EntryPoint = "charls_jpegls_encoder_set_near_lossless")] private static partial int EncoderSetNearLossless(IntPtr encoder, int near);
    [LibraryImport("charls", EntryPoint = "charls_jpegls_encoder_set_interleave_mode")] private static partial int EncoderSetInterleaveMode(IntPtr encoder, int mode);
    [LibraryImport("charls", EntryPoint = "charls_jpegls_encoder_get_estimated_destination_size")] private static partial int EncoderEstimatedSize(IntPtr encoder, out nuint size);
    [LibraryImport("charls", EntryPoint = "charls_jpegls_encoder_set_destination_buffer")] private static unsafe partial int EncoderSetDestination(IntPtr encoder, byte* buffer, nuint size);
    [LibraryImport("charls", EntryPoint = "charls_jpegls_encoder_encode_from_buffer")] private static unsafe partial int EncoderEncode(IntPtr encoder, byte* source, nuint size, uint stride);
    [LibraryImport("charls", EntryPoint = "charls_jpegls_encoder_get_bytes_written")] private static partial int EncoderBytesWritten(IntPtr encoder, out nuint written);
    [LibraryImport("charls", EntryPoint = "charls_jpegls_decoder_create")] private static partial IntPtr DecoderCreate();
    [LibraryImport("charls", EntryPoint = "charls_jpegls_decoder_destroy")] private static partial void DecoderDestroy(IntPtr decoder);
    [LibraryImport("charls", EntryPoint = "charls_jpegls_decoder_set_source_buffer")] private static unsafe partial int DecoderSetSource(IntPtr decoder, byte* source, nuint size);
    [LibraryImport("charls", EntryPoint = "charls_jpegls_decoder_read_header")] private static partial int DecoderReadHeader(IntPtr decoder);
    [LibraryImport("charls", EntryPoint = "charls_jpegls_decoder_get_frame_info")] private static partial int DecoderFrameInfo(IntPtr decoder, out FrameInfo info);
    [LibraryImport("charls", EntryPoint = "charls_jpegls_decoder_get_interleave_mode")] private static partial int DecoderInterleaveMode(IntPtr decoder, out int mode);
    [LibraryImport("charls", EntryPoint = "charls_jpegls_decoder_get_destination_size")] private static partial int DecoderDestinationSize(IntPtr decoder, uint stride, out nuint size);
    [LibraryImport("charls", EntryPoint = "charls_jpegls_decoder_decode_to_buffer")] private static unsafe partial int DecoderDecode(IntPtr decoder, byte* destination, nuint size, uint stride);
    [LibraryImport("charls", EntryPoint = "charls_get_error_message")] private static partial IntPtr ErrorMessage(int error);

    private static void Check(int error, string what)
    {
        if (error == 0) return;
        string message = Marshal.PtrToStringUTF8(ErrorMessage(error)) ?? "unknown error";
        throw new CodecException($"JPEG-LS {what}: {message} (CharLS error {error})");
    }

    private static void CheckGeometry(FrameGeometry g)
    {
        g.Validate();
        if (g.BitsAllocated > 16 || g.BitsStored < 2)
            throw new CodecException($"JPEG-LS codes samples of 2 to 16 bits, not Bits Allocated {g.BitsAllocated} / Bits Stored {g.BitsStored}");
        if (g.SamplesPerPixel == 4) throw new CodecException("JPEG-LS here takes one or three samples per pixel");
    }

    /// <summary>Bytes per sample in CharLS's buffers: one up to 8 bits, two above.</summary>
    private static int CodecBytes(FrameGeometry g) => g.BitsStored <= 8 ? 1 : 2;

    /// <summary>Encodes one native frame, lossless.</summary>
    public static byte[] Encode(ReadOnlySpan<byte> frame, FrameGeometry geometry)
    {
        CheckGeometry(geometry);
        if (frame.Length != geometry.FrameBytes) throw new CodecException($"the frame has {frame.Length} bytes, its geometry {geometry.FrameBytes}");
        var samples = ToCodec(frame, geometry);
        return NativeLibraries.Call("charls", () => EncodeNative(samples, geometry));
    }

    private static unsafe byte[] EncodeNative(byte[] samples, FrameGeometry g)
    {
        IntPtr encoder = EncoderCreate();
        if (encoder == IntPtr.Zero) throw new CodecException("JPEG-LS: CharLS could not create an encoder");
        try
        {
            var info = new FrameInfo { Width = (uint)g.Columns, Height = (uint)g.Rows, BitsPerSample = g.BitsStored, ComponentCount = g.SamplesPerPixel };
            Check(EncoderSetFrameInfo(encoder, info), "frame");
            Check(EncoderSetNearLossless(encoder, 0), "near-lossless 0");
            if (g.SamplesPerPixel > 1) Check(EncoderSetInterleaveMode(encoder, g.PlanarConfiguration == 0 ? InterleaveSample : InterleaveNone), "interleave mode");
            Check(EncoderEstimatedSize(encoder, out nuint estimated), "size estimate");
            // CharLS 2.4's estimate can fall short for noise (seen with 8-bit colour planes): a quarter more, and a margin.
            long size = (long)estimated + samples.Length / 4 + 4096;
            if (size > int.MaxValue - 64) throw new CodecException($"JPEG-LS: a frame of {samples.Length} bytes is too large to encode at once");
            var destination = new byte[size];
            fixed (byte* d = destination)
            fixed (byte* s = samples)
            {
                Check(EncoderSetDestination(encoder, d, (nuint)destination.Length), "destination");
                Check(EncoderEncode(encoder, s, (nuint)samples.Length, 0), "encoding");
            }
            Check(EncoderBytesWritten(encoder, out nuint written), "bytes written");
            if (written > (nuint)destination.Length) throw new CodecException($"JPEG-LS: CharLS reports {written} bytes written into {destination.Length}");
            return destination.AsSpan(0, (int)written).ToArray();
        }
        finally
        {
            EncoderDestroy(encoder);
        }
    }

    /// <summary>Decodes one frame (lossless or near-lossless) into <paramref name="frame"/>, laid out and sized as <paramref name="geometry"/> says.</summary>
    public static void Decode(ReadOnlySpan<byte> encoded, FrameGeometry geometry, Span<byte> frame)
    {
        CheckGeometry(geometry);
        if (frame.Length != geometry.FrameBytes) throw new CodecException($"the output has {frame.Length} bytes, the frame {geometry.FrameBytes}");
        byte[] input = encoded.ToArray();
        var (samples, interleave) = NativeLibraries.Call("charls", () => DecodeNative(input, geometry));
        FromCodec(samples, interleave, geometry, frame);
    }

    private static unsafe (byte[] Samples, int Interleave) DecodeNative(byte[] input, FrameGeometry g)
    {
        IntPtr decoder = DecoderCreate();
        if (decoder == IntPtr.Zero) throw new CodecException("JPEG-LS: CharLS could not create a decoder");
        try
        {
            fixed (byte* s = input)
            {
                Check(DecoderSetSource(decoder, s, (nuint)input.Length), "source");
                Check(DecoderReadHeader(decoder), "header");
                Check(DecoderFrameInfo(decoder, out var info), "frame");
                if (info.Width != g.Columns || info.Height != g.Rows || info.ComponentCount != g.SamplesPerPixel)
                    throw new CodecException($"the JPEG-LS frame is {info.Width} x {info.Height} x {info.ComponentCount}, the data set says {g.Columns} x {g.Rows} x {g.SamplesPerPixel}");
                if (info.BitsPerSample > g.BitsAllocated || (info.BitsPerSample <= 8) != (g.BitsStored <= 8))
                    throw new CodecException($"the JPEG-LS frame has {info.BitsPerSample}-bit samples, the data set {g.BitsStored} of {g.BitsAllocated} bits");
                Check(DecoderInterleaveMode(decoder, out int interleave), "interleave mode");
                Check(DecoderDestinationSize(decoder, 0, out nuint size), "size");
                long expected = g.Pixels * g.SamplesPerPixel * CodecBytes(g);
                if ((long)size != expected) throw new CodecException($"the JPEG-LS frame decodes to {size} bytes, not {expected}");
                var samples = new byte[expected];
                fixed (byte* d = samples) Check(DecoderDecode(decoder, d, size, 0), "decoding");
                return (samples, interleave);
            }
        }
        finally
        {
            DecoderDestroy(decoder);
        }
    }

    /// <summary>The native frame as CharLS takes it: the low Bits Stored bits of each sample, one or two bytes each, in the frame's layout.</summary>
    private static byte[] ToCodec(ReadOnlySpan<byte> frame, FrameGeometry g)
    {
        int cb = CodecBytes(g), nb = g.BytesPerSample;
        uint mask = g.BitsStored >= 32 ? uint.MaxValue : (1u << g.BitsStored) - 1;
        long count = g.Pixels * g.SamplesPerPixel;
        var samples = new byte[count * cb];
        for (long i = 0; i < count; i++)
        {
            uint v = nb == 1 ? frame[(int)i] : BinaryPrimitives.ReadUInt16LittleEndian(frame[(int)(i * 2)..]);
            v &= mask;
            if (cb == 1) samples[i] = (byte)v;
            else BinaryPrimitives.WriteUInt16LittleEndian(samples.AsSpan((int)(i * 2)), (ushort)v);
        }
        return samples;
    }

    /// <summary>CharLS's output into the native frame: reordered to the frame's layout, widened, sign-extended when signed.</summary>
    private static void FromCodec(byte[] samples, int interleave, FrameGeometry g, Span<byte> frame)
    {
        int cb = CodecBytes(g), nb = g.BytesPerSample, spp = g.SamplesPerPixel;
        long pixels = g.Pixels;
        int shift = 32 - g.BitsStored;
        for (long p = 0; p < pixels; p++)
        {
            for (int s = 0; s < spp; s++)
            {
                // CharLS gives a scan without interleaving plane by plane, and line- or sample-interleaved ones by pixel.
                long from = spp == 1 ? p : interleave == InterleaveNone ? s * pixels + p : p * spp + s;
                long to = spp == 1 || g.PlanarConfiguration == 0 ? p * spp + s : s * pixels + p;
                uint v = cb == 1 ? samples[from] : BinaryPrimitives.ReadUInt16LittleEndian(samples.AsSpan((int)(from * 2)));
                if (g.Signed && g.BitsStored < 32) v = (uint)((int)(v << shift) >> shift);
                if (nb == 1) frame[(int)to] = (byte)v;
                else BinaryPrimitives.WriteUInt16LittleEndian(frame[(int)(to * 2)..], (ushort)v);
            }
        }
    }
}
