using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace AkkaVna.Codecs;

/// <summary>
/// JPEG 2000 (1.2.840.10008.1.2.4.90 lossless, encoded and decoded; 1.2.840.10008.1.2.4.91, decoded only) through
/// OpenJPEG (Debian libopenjp2-7), called through its C API on in-memory streams. What DICOM carries is the bare
/// codestream (J2K, no JP2 box). Encoding is reversible (the 5/3 wavelet), one quality layer, no colour transform (so the
/// Photometric Interpretation of a colour image stays what it was), up to six resolutions (fewer for small frames).
/// Decoding applies whatever colour transform the codestream signals (the result is RGB for a colour image) and clamps
/// what a lossy codestream gives to the Bits Stored. Samples of up to 16 bits; every return code checked.
/// <para>
/// OpenJPEG's encoder parameters are a large C struct: this build writes the few fields it sets at the offsets of
/// OpenJPEG 2.5's <c>openjpeg.h</c> on 64-bit Linux (checked with <c>offsetof</c>) into a block the library itself fills
/// with its defaults first, and refuses other major versions. The tests show the settings took: the codestream's COD
/// marker names the reversible transform and the resolutions, and OpenJPEG's own opj_decompress reads it back.
/// </para>
/// </summary>
public static unsafe partial class Jpeg2000
{
    public const string LosslessTransferSyntaxUid = "1.2.840.10008.1.2.4.90";
    public const string LossyTransferSyntaxUid = "1.2.840.10008.1.2.4.91";

    /// <summary>High-Throughput JPEG 2000 (PS3.5 A.4.11): lossless, lossless with RPCL progression, and possibly lossy. Decoded here (OpenJPEG 2.5 reads HT code-blocks); the lossless one encoded by <see cref="HtJ2k"/> (OpenJPH).</summary>
    public const string HtLosslessTransferSyntaxUid = "1.2.840.10008.1.2.4.201", HtRpclLosslessTransferSyntaxUid = "1.2.840.10008.1.2.4.202",
        HtTransferSyntaxUid = "1.2.840.10008.1.2.4.203";

    private const int CodecJ2k = 0, CodecJp2 = 2;

    /// <summary>The JP2 signature box: some writers put a JP2 file, not the bare codestream, in the fragments (read too).</summary>
    private static ReadOnlySpan<byte> Jp2Signature => [0, 0, 0, 0x0C, 0x6A, 0x50, 0x20, 0x20, 0x0D, 0x0A, 0x87, 0x0A];

    /// <summary>Whether <paramref name="encoded"/> is a JP2 file rather than a bare codestream.</summary>
    public static bool IsJp2(ReadOnlySpan<byte> encoded) => encoded.StartsWith(Jp2Signature);
    private const int ColourSpaceSrgb = 1, ColourSpaceGray = 2;

    // opj_cparameters_t of OpenJPEG 2.5 (LP64): its size and the offsets of the fields set here.
    private const int EncoderParametersSize = 18720, DecoderParametersSize = 8252;
    private const int CpDistoAlloc = 20, TcpNumLayers = 4796, TcpRates = 4800, NumResolution = 5600, Irreversible = 5616, TcpMct = 18698;

    [StructLayout(LayoutKind.Sequential)]
    private struct ComponentParameters
    {
        public uint Dx, Dy, W, H, X0, Y0, Prec, Bpp, Sgnd;
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct Image
    {
        public uint X0, Y0, X1, Y1, NumComps;
        public int ColourSpace;
        public Component* Comps;
        public byte* IccProfile;
        public uint IccProfileLength;
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct Component
    {
        public uint Dx, Dy, W, H, X0, Y0, Prec, Bpp, Sgnd, ResNoDecoded, Factor;
        public int* Data;
        public ushort Alpha;
    }

    [LibraryImport("openjp2", EntryPoint = "opj_version")] private static partial IntPtr Version();
    [LibraryImport("openjp2", EntryPoint = "opj_create_compress")] private static partial IntPtr CreateCompress(int format);
    [LibraryImport("openjp2", EntryPoint = "opj_create_decompress")] private static partial IntPtr CreateDecompress(int format);
    [LibraryImport("openjp2", EntryPoint = "opj_destroy_codec")] private static partial void DestroyCodec(IntPtr codec);
    [LibraryImport("openjp2", EntryPoint = "opj_set_default_encoder_parameters")] private static partial void DefaultEncoderParameters(byte* parameters);
    [LibraryImport("openjp2", EntryPoint = "opj_set_default_decoder_parameters")] private static partial void DefaultDecoderParameters(byte* parameters);
    [LibraryImport("openjp2", EntryPoint = "opj_setup_encoder")] private static partial int SetupEncoder(IntPtr codec, byte* parameters, Image* image);
    [LibraryImport("openjp2", EntryPoint = "opj_setup_decoder")] private static partial int SetupDecoder(IntPtr codec, byte* parameters);
    [LibraryImport("openjp2", EntryPoint = "opj_codec_set_threads")] private static partial int SetThreads(IntPtr codec, int threads);
    [LibraryImport("openjp2", EntryPoint = "opj_image_create")] private static partial Image* ImageCreate(uint components, ComponentParameters* parameters, int colourSpace);
    [LibraryImport("openjp2", EntryPoint = "opj_image_destroy")] private static partial void ImageDestroy(Image* image);
    [LibraryImport("openjp2", EntryPoint = "opj_stream_create")] private static partial IntPtr StreamCreate(nuint bufferSize, int isInput);
    [LibraryImport("openjp2", EntryPoint = "opj_stream_destroy")] private static partial void StreamDestroy(IntPtr stream);
    [LibraryImport("openjp2", EntryPoint = "opj_stream_set_read_function")] private static partial void StreamSetRead(IntPtr stream, delegate* unmanaged[Cdecl]<byte*, nuint, IntPtr, nuint> read);
    [LibraryImport("openjp2", EntryPoint = "opj_stream_set_write_function")] private static partial void StreamSetWrite(IntPtr stream, delegate* unmanaged[Cdecl]<byte*, nuint, IntPtr, nuint> write);
    [LibraryImport("openjp2", EntryPoint = "opj_stream_set_skip_function")] private static partial void StreamSetSkip(IntPtr stream, delegate* unmanaged[Cdecl]<long, IntPtr, long> skip);
    [LibraryImport("openjp2", EntryPoint = "opj_stream_set_seek_function")] private static partial void StreamSetSeek(IntPtr stream, delegate* unmanaged[Cdecl]<long, IntPtr, int> seek);
    [LibraryImport("openjp2", EntryPoint = "opj_stream_set_user_data")] private static partial void StreamSetUserData(IntPtr stream, IntPtr data, IntPtr free);
    [LibraryImport("openjp2", EntryPoint = "opj_stream_set_user_data_length")] private static partial void StreamSetUserDataLength(IntPtr stream, ulong length);
    [LibraryImport("openjp2", EntryPoint = "opj_set_error_handler")] private static partial int SetErrorHandler(IntPtr codec, delegate* unmanaged[Cdecl]<byte*, IntPtr, void> handler, IntPtr data);
    [LibraryImport("openjp2", EntryPoint = "opj_set_warning_handler")] private static partial int SetWarningHandler(IntPtr codec, delegate* unmanaged[Cdecl]<byte*, IntPtr, void> handler, IntPtr data);
    [LibraryImport("openjp2", EntryPoint = "opj_set_info_handler")] private static partial int SetInfoHandler(IntPtr codec, delegate* unmanaged[Cdecl]<byte*, IntPtr, void> handler, IntPtr data);
    [LibraryImport("openjp2", EntryPoint = "opj_start_compress")] private static partial int StartCompress(IntPtr codec, Image* image, IntPtr stream);
    [LibraryImport("openjp2", EntryPoint = "opj_encode")] private static partial int EncodeImage(IntPtr codec, IntPtr stream);
    [LibraryImport("openjp2", EntryPoint = "opj_end_compress")] private static partial int EndCompress(IntPtr codec, IntPtr stream);
    [LibraryImport("openjp2", EntryPoint = "opj_read_header")] private static partial int ReadHeader(IntPtr stream, IntPtr codec, Image** image);
    [LibraryImport("openjp2", EntryPoint = "opj_decode")] private static partial int DecodeImage(IntPtr codec, IntPtr stream, Image* image);
    [LibraryImport("openjp2", EntryPoint = "opj_end_decompress")] private static partial int EndDecompress(IntPtr codec, IntPtr stream);

    private const string Library = "openjp2";

    /// <summary>The codestream bytes a stream reads from, or the growing buffer it writes to, and what the codec said went wrong.</summary>
    private sealed class StreamState
    {
        public byte[] Buffer = [];
        public long Length, Position;
        public readonly List<string> Errors = [];
        public long Limit = int.MaxValue - 64;
    }

    private static StreamState State(IntPtr data) => (StreamState)GCHandle.FromIntPtr(data).Target!;

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static nuint Read(byte* buffer, nuint bytes, IntPtr data)
    {
        var s = State(data);
        long n = Math.Min((long)bytes, s.Length - s.Position);
        if (n <= 0) return unchecked((nuint)(-1)); // the end
        s.Buffer.AsSpan((int)s.Position, (int)n).CopyTo(new Span<byte>(buffer, (int)n));
        s.Position += n;
        return (nuint)n;
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static nuint Write(byte* buffer, nuint bytes, IntPtr data)
    {
        var s = State(data);
        long end = s.Position + (long)bytes;
        if (end > s.Limit) return unchecked((nuint)(-1));
        if (end > s.Buffer.Length) Array.Resize(ref s.Buffer, (int)Math.Min(s.Limit, Math.Max(end, s.Buffer.Length * 2L)));
        new ReadOnlySpan<byte>(buffer, (int)bytes).CopyTo(s.Buffer.AsSpan((int)s.Position));
        s.Position = end;
        s.Length = Math.Max(s.Length, end);
        return bytes;
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static long Skip(long bytes, IntPtr data)
    {
        var s = State(data);
        long to = s.Position + bytes;
        if (to < 0 || to > s.Limit) return -1;
        s.Position = to;
        return bytes;
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static int Seek(long position, IntPtr data)
    {
        var s = State(data);
        if (position < 0 || position > s.Limit) return 0;
        s.Position = position;
        return 1;
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static void OnError(byte* message, IntPtr data)
    {
        var s = State(data);
        if (s.Errors.Count < 8) s.Errors.Add((Marshal.PtrToStringUTF8((IntPtr)message) ?? "").Trim());
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static void Ignore(byte* message, IntPtr data)
    {
    }

    private static void CheckVersion()
    {
        string version = Marshal.PtrToStringUTF8(Version()) ?? "";
        if (!version.StartsWith("2.", StringComparison.Ordinal))
            throw new CodecException($"OpenJPEG {version} is installed; this build is laid out for OpenJPEG 2 (Debian package libopenjp2-7)");
    }

    internal static void CheckGeometry(FrameGeometry g)
    {
        g.Validate();
        if (g.BitsAllocated > 16) throw new CodecException($"JPEG 2000 here codes samples of up to 16 bits, not Bits Allocated {g.BitsAllocated}");
        if (g.SamplesPerPixel == 4) throw new CodecException("JPEG 2000 here takes one or three samples per pixel");
    }

    private static void Fail(string what, StreamState state) =>
        throw new CodecException($"JPEG 2000 {what}{(state.Errors.Count > 0 ? ": " + string.Join("; ", state.Errors) : "")} (OpenJPEG)");

    private static IntPtr Stream(StreamState state, GCHandle handle, bool input)
    {
        IntPtr stream = StreamCreate(1 << 16, input ? 1 : 0);
        if (stream == IntPtr.Zero) throw new CodecException("JPEG 2000: OpenJPEG could not create a stream");
        StreamSetUserData(stream, GCHandle.ToIntPtr(handle), IntPtr.Zero);
        if (input)
        {
            StreamSetUserDataLength(stream, (ulong)state.Length);
            StreamSetRead(stream, &Read);
        }
        else StreamSetWrite(stream, &Write);
        StreamSetSkip(stream, &Skip);
        StreamSetSeek(stream, &Seek);
        return stream;
    }

    private static void Handlers(IntPtr codec, GCHandle handle)
    {
        SetErrorHandler(codec, &OnError, GCHandle.ToIntPtr(handle));
        SetWarningHandler(codec, &Ignore, IntPtr.Zero);
        SetInfoHandler(codec, &Ignore, IntPtr.Zero);
    }

    /// <summary>The resolutions a frame takes: six (five decompositions), fewer when its smaller side is under 32 pixels.</summary>
    public static int Resolutions(FrameGeometry g)
    {
        int smaller = Math.Min(g.Rows, g.Columns), levels = 1;
        while (levels < 6 && (1 << levels) <= smaller) levels++;
        return levels;
    }

    /// <summary>Encodes one native frame, lossless (reversible 5/3 wavelet, no colour transform).</summary>
    public static byte[] Encode(ReadOnlySpan<byte> frame, FrameGeometry geometry)
    {
        CheckGeometry(geometry);
        if (frame.Length != geometry.FrameBytes) throw new CodecException($"the frame has {frame.Length} bytes, its geometry {geometry.FrameBytes}");
        byte[] input = frame.ToArray();
        return NativeLibraries.Call(Library, () => EncodeNative(input, geometry));
    }

    private static byte[] EncodeNative(byte[] frame, FrameGeometry g)
    {
        CheckVersion();
        int spp = g.SamplesPerPixel;
        var parameters = stackalloc ComponentParameters[spp];
        for (int c = 0; c < spp; c++)
            parameters[c] = new ComponentParameters { Dx = 1, Dy = 1, W = (uint)g.Columns, H = (uint)g.Rows, Prec = (uint)g.BitsStored, Sgnd = g.Signed ? 1u : 0u };
        Image* image = ImageCreate((uint)spp, parameters, spp == 1 ? ColourSpaceGray : ColourSpaceSrgb);
        if (image == null) throw new CodecException("JPEG 2000: OpenJPEG could not make an image of this frame");
        var state = new StreamState();
        var handle = GCHandle.Alloc(state);
        IntPtr codec = IntPtr.Zero, stream = IntPtr.Zero;
        byte* cp = (byte*)NativeMemory.AllocZeroed(EncoderParametersSize);
        try
        {
            image->X0 = 0;
            image->Y0 = 0;
            image->X1 = (uint)g.Columns;
            image->Y1 = (uint)g.Rows;
            Fill(frame, g, image);
            DefaultEncoderParameters(cp);
            *(int*)(cp + TcpNumLayers) = 1;
            *(float*)(cp + TcpRates) = 0; // no rate: lossless
            *(int*)(cp + CpDistoAlloc) = 1;
            *(int*)(cp + NumResolution) = Resolutions(g);
            *(int*)(cp + Irreversible) = 0;
            *(cp + TcpMct) = 0;
            codec = CreateCompress(CodecJ2k);
            if (codec == IntPtr.Zero) throw new CodecException("JPEG 2000: OpenJPEG could not create an encoder");
            Handlers(codec, handle);
            SetThreads(codec, 1);
            if (SetupEncoder(codec, cp, image) == 0) Fail("encoder setup", state);
            state.Buffer = new byte[Math.Max(4096, g.FrameBytes / 2)];
            stream = Stream(state, handle, input: false);
            if (StartCompress(codec, image, stream) == 0) Fail("encoding (start)", state);
            if (EncodeImage(codec, stream) == 0) Fail("encoding", state);
            if (EndCompress(codec, stream) == 0) Fail("encoding (end)", state);
            StreamDestroy(stream); // flushes what the stream still buffers
            stream = IntPtr.Zero;
            return state.Buffer.AsSpan(0, (int)state.Length).ToArray();
        }
        finally
        {
            if (stream != IntPtr.Zero) StreamDestroy(stream);
            if (codec != IntPtr.Zero) DestroyCodec(codec);
            ImageDestroy(image);
            NativeMemory.Free(cp);
            handle.Free();
        }
    }

    /// <summary>The native frame into OpenJPEG's components.</summary>
    private static void Fill(byte[] frame, FrameGeometry g, Image* image)
    {
        for (int c = 0; c < g.SamplesPerPixel; c++)
        {
            int* data = image->Comps[c].Data;
            if (data == null) throw new CodecException("JPEG 2000: OpenJPEG gave an image without sample memory");
            ComponentSamples(frame, g, c, new Span<int>(data, checked((int)g.Pixels)));
        }
    }

    /// <summary>
    /// Component <paramref name="c"/> of a native frame as one integer a sample, row by row: the low Bits Stored bits of
    /// each sample, sign-extended when signed (what the JPEG 2000 encoders, OpenJPEG's and OpenJPH's, take).
    /// </summary>
    internal static void ComponentSamples(ReadOnlySpan<byte> frame, FrameGeometry g, int c, Span<int> into)
    {
        int spp = g.SamplesPerPixel, nb = g.BytesPerSample, shift = 32 - g.BitsStored;
        long pixels = g.Pixels;
        if (into.Length < pixels) throw new CodecException("a component buffer shorter than the frame");
        for (long p = 0; p < pixels; p++)
        {
            long i = spp == 1 ? p : g.PlanarConfiguration == 0 ? p * spp + c : c * pixels + p;
            uint v = nb == 1 ? frame[(int)i] : BinaryPrimitives.ReadUInt16LittleEndian(frame[(int)(i * 2)..]);
            into[(int)p] = g.Signed ? (int)(v << shift) >> shift : (int)(v << shift >>> shift);
        }
    }

    /// <summary>
    /// Decodes one frame (lossless or lossy; a bare codestream or a JP2 file) into <paramref name="frame"/>, laid out and sized as <paramref name="geometry"/>
    /// says: samples clamped to the Bits Stored range, sign-extended when signed.
    /// </summary>
    public static void Decode(ReadOnlySpan<byte> encoded, FrameGeometry geometry, Span<byte> frame)
    {
        CheckGeometry(geometry);
        if (frame.Length != geometry.FrameBytes) throw new CodecException($"the output has {frame.Length} bytes, the frame {geometry.FrameBytes}");
        byte[] input = encoded.ToArray();
        var samples = NativeLibraries.Call(Library, () => DecodeNative(input, geometry));
        ToFrame(samples, geometry, frame);
    }

    private static int[][] DecodeNative(byte[] input, FrameGeometry g)
    {
        CheckVersion();
        var state = new StreamState { Buffer = input, Length = input.Length };
        var handle = GCHandle.Alloc(state);
        IntPtr codec = IntPtr.Zero, stream = IntPtr.Zero;
        Image* image = null;
        byte* dp = (byte*)NativeMemory.AllocZeroed(DecoderParametersSize);
        try
        {
            DefaultDecoderParameters(dp);
            codec = CreateDecompress(IsJp2(input) ? CodecJp2 : CodecJ2k);
            if (codec == IntPtr.Zero) throw new CodecException("JPEG 2000: OpenJPEG could not create a decoder");
            Handlers(codec, handle);
            SetThreads(codec, 1);
            if (SetupDecoder(codec, dp) == 0) Fail("decoder setup", state);
            stream = Stream(state, handle, input: true);
            if (ReadHeader(stream, codec, &image) == 0 || image == null) Fail("header", state);
            if (image->NumComps != g.SamplesPerPixel || image->X1 - image->X0 != g.Columns || image->Y1 - image->Y0 != g.Rows)
                throw new CodecException($"the JPEG 2000 frame is {image->X1 - image->X0} x {image->Y1 - image->Y0} x {image->NumComps}, the data set says {g.Columns} x {g.Rows} x {g.SamplesPerPixel}");
            for (int c = 0; c < image->NumComps; c++)
                if (image->Comps[c].Prec > g.BitsAllocated || image->Comps[c].Dx != 1 || image->Comps[c].Dy != 1)
                    throw new CodecException($"JPEG 2000 component {c} has {image->Comps[c].Prec}-bit samples subsampled {image->Comps[c].Dx}x{image->Comps[c].Dy}; the data set has {g.BitsAllocated}-bit samples, not subsampled");
            if (DecodeImage(codec, stream, image) == 0) Fail("decoding", state);
            if (EndDecompress(codec, stream) == 0) Fail("decoding (end)", state);
            var samples = new int[g.SamplesPerPixel][];
            for (int c = 0; c < samples.Length; c++)
            {
                var comp = image->Comps[c];
                if (comp.Data == null || comp.W != g.Columns || comp.H != g.Rows)
                    throw new CodecException($"JPEG 2000 component {c} decoded to {comp.W} x {comp.H}, not {g.Columns} x {g.Rows}");
                samples[c] = new ReadOnlySpan<int>(comp.Data, checked((int)g.Pixels)).ToArray();
            }
            return samples;
        }
        finally
        {
            if (image != null) ImageDestroy(image);
            if (stream != IntPtr.Zero) StreamDestroy(stream);
            if (codec != IntPtr.Zero) DestroyCodec(codec);
            NativeMemory.Free(dp);
            handle.Free();
        }
    }

    private static void ToFrame(int[][] samples, FrameGeometry g, Span<byte> frame)
    {
        int spp = g.SamplesPerPixel, nb = g.BytesPerSample;
        long pixels = g.Pixels;
        int min = g.Signed ? -(1 << (g.BitsStored - 1)) : 0;
        int max = g.Signed ? (1 << (g.BitsStored - 1)) - 1 : (int)((1L << g.BitsStored) - 1);
        for (int c = 0; c < spp; c++)
        {
            var plane = samples[c];
            for (long p = 0; p < pixels; p++)
            {
                long to = spp == 1 || g.PlanarConfiguration == 0 ? p * spp + c : c * pixels + p;
                int v = Math.Clamp(plane[p], min, max);
                if (nb == 1) frame[(int)to] = (byte)v;
                else BinaryPrimitives.WriteUInt16LittleEndian(frame[(int)(to * 2)..], (ushort)v);
            }
        }
    }
}
