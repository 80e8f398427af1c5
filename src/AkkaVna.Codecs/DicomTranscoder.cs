using System.Buffers.Binary;
using AkkaVna.Dicom;
using AkkaVna.Dicom.Imaging;
using AkkaVna.Dicom.IO;

namespace AkkaVna.Codecs;

/// <summary>What a transcoding wrote: frames, and the pixel data's bytes before and after.</summary>
public sealed record TranscodeStats(int Frames, long PixelBytesIn, long PixelBytesOut);

/// <summary>
/// Writes a data set in another transfer syntax, its pixel data transcoded a frame at a time (one frame and its encoded
/// form in memory, never the whole pixel data): native to a lossless compressed syntax (RLE, JPEG-LS, JPEG 2000), a
/// compressed syntax (lossless or lossy) to native, or one lossless syntax to another through native. Every frame
/// encoded is decoded again at once and compared with the original's bytes: any difference (bits above Bits Stored that
/// a codec does not keep, say) refuses the whole transcoding, so a compressed copy is made only when it is exact.
/// A lossy source is never compressed again. Every other attribute is written as it was, except where the pixels'
/// form changes them: a JPEG 2000 colour transform (YBR_RCT, YBR_ICT) decodes to RGB. Syntaxes: RLE, JPEG-LS, JPEG 2000
/// and JPEG Lossless SV1 encoded; those, JPEG Lossless (any predictor), JPEG-LS near-lossless and JPEG 2000 lossy decoded.
/// </summary>
public static class DicomTranscoder
{
    /// <summary>A frame larger than this is refused (a codec holds one frame and its encoded form in memory).</summary>
    public const long MaxFrameBytes = 512L * 1024 * 1024;

    private static readonly string[] Lossless = [RleLossless.TransferSyntaxUid, JpegLs.LosslessTransferSyntaxUid, Jpeg2000.LosslessTransferSyntaxUid,
        JpegLossless.Sv1TransferSyntaxUid, HtJ2k.LosslessTransferSyntaxUid];

    /// <summary>Lossless syntaxes decoded only (JPEG Lossless with any predictor).</summary>
    private static readonly string[] LosslessDecodeOnly = [JpegLossless.TransferSyntaxUid, Jpeg2000.HtRpclLosslessTransferSyntaxUid];
    private static readonly string[] Lossy = [JpegLs.NearLosslessTransferSyntaxUid, Jpeg2000.LossyTransferSyntaxUid, Jpeg2000.HtTransferSyntaxUid,
        JpegBaseline.BaselineTransferSyntaxUid, JpegBaseline.ExtendedTransferSyntaxUid];

    /// <summary>Whether this build can compress into <paramref name="transferSyntaxUid"/> (losslessly).</summary>
    public static bool CanEncode(string transferSyntaxUid) => Lossless.Contains(transferSyntaxUid);

    /// <summary>Whether this build can decode pixel data stored in <paramref name="transferSyntaxUid"/>.</summary>
    public static bool CanDecode(string transferSyntaxUid) => Lossless.Contains(transferSyntaxUid) || LosslessDecodeOnly.Contains(transferSyntaxUid) || Lossy.Contains(transferSyntaxUid);

    /// <summary>Whether pixel data in <paramref name="syntax"/> is little-endian native frames (what codecs take and give).</summary>
    public static bool IsNative(DicomTransferSyntax syntax) => syntax is { IsEncapsulated: false, IsBigEndian: false, IsDeflated: false, IsFileEncoding: true };

    /// <summary>
    /// Null when this machine can compress into <paramref name="transferSyntaxUid"/> now (a small frame is encoded and
    /// decoded); else why not — a native library that is not installed is named with its Debian package.
    /// </summary>
    public static string? Unavailable(string transferSyntaxUid)
    {
        if (!CanEncode(transferSyntaxUid)) return $"{transferSyntaxUid} is not a syntax this build compresses to";
        var g = new FrameGeometry(8, 8, 1, 16, 12, Signed: false);
        var frame = new byte[g.FrameBytes];
        for (int i = 0; i < frame.Length; i += 2) BinaryPrimitives.WriteUInt16LittleEndian(frame.AsSpan(i), (ushort)(i * 13 % 4096));
        try
        {
            var back = new byte[g.FrameBytes];
            Decode(transferSyntaxUid, Encode(transferSyntaxUid, frame, g), g, back);
            return back.AsSpan().SequenceEqual(frame) ? null : $"{transferSyntaxUid} does not round-trip a test frame here";
        }
        catch (CodecException e)
        {
            return e.Reason;
        }
    }

    /// <summary>Whether <paramref name="from"/> can be written as <paramref name="to"/> by this class.</summary>
    public static bool CanTranscode(DicomTransferSyntax from, DicomTransferSyntax to) =>
        from.Uid != to.Uid && (IsNative(from) || CanDecode(from.Uid)) && (IsNative(to) || (CanEncode(to.Uid) && !Lossy.Contains(from.Uid)));

    /// <summary>Writes a Part 10 file of <paramref name="dataset"/> (read from a file in <paramref name="from"/>) in <paramref name="to"/>.</summary>
    public static TranscodeStats WriteFile(DicomDataset dataset, DicomDataset? sourceMeta, DicomTransferSyntax from, DicomTransferSyntax to, Stream output,
        CancellationToken cancellationToken)
    {
        var meta = DicomWriter.BuildFileMeta(dataset, to, sourceMeta);
        output.Write(new byte[128]);
        output.Write("DICM"u8);
        DicomWriter.WriteFileMeta(output, meta);
        return WriteDataset(dataset, from, to, output, cancellationToken);
    }

    /// <summary>
    /// Writes <paramref name="dataset"/> (read from a file in <paramref name="from"/>) in <paramref name="to"/>, without File
    /// Meta. Throws <see cref="CodecException"/> with the reason when it cannot (nothing about the source changes).
    /// </summary>
    public static TranscodeStats WriteDataset(DicomDataset dataset, DicomTransferSyntax from, DicomTransferSyntax to, Stream output, CancellationToken cancellationToken)
    {
        if (!CanTranscode(from, to))
            throw new CodecException(Lossy.Contains(from.Uid) && !IsNative(to)
                ? $"the pixel data is lossy compressed ({from.Uid}): it is kept as it is, never compressed again"
                : $"cannot transcode from {from.Uid} to {to.Uid}");
        if (dataset[DicomTags.PixelData] is not { } pixelItem) throw new CodecException("the data set has no Pixel Data (7FE0,0010)");
        var g = Geometry(dataset);
        PixelDataFrames frames;
        try
        {
            frames = PixelDataFrames.Of(dataset);
        }
        catch (PixelDataException e)
        {
            throw new CodecException(e.Reason);
        }
        if (frames.IsEncapsulated == IsNative(from)) throw new CodecException($"the pixel data's form does not match its transfer syntax {from.Uid}");
        if (g.FrameBytes > MaxFrameBytes) throw new CodecException($"a frame of {g.FrameBytes} bytes is larger than the {MaxFrameBytes}-byte limit for transcoding");
        string? photometric = dataset.GetString(DicomTags.PhotometricInterpretation);
        if (photometric is "YBR_FULL_422" or "YBR_PARTIAL_422" or "YBR_PARTIAL_420" && IsNative(from))
            throw new CodecException($"native {photometric} pixel data (subsampled) is not transcoded");

        // Everything but the pixel data as it was (the photometric interpretation as decoding leaves it), in the output's encoding.
        var head = new DicomDataset();
        var tail = new DicomDataset();
        foreach (var item in dataset)
        {
            if (item.Tag.Group == 0x0002 || item.Tag == DicomTags.PixelData || item.Tag.Group == 0xFFFC) continue;
            (item.Tag.CompareTo(DicomTags.PixelData) < 0 ? head : tail).Add(item);
        }
        if (photometric is "YBR_RCT" or "YBR_ICT" && from.Uid is Jpeg2000.LosslessTransferSyntaxUid or Jpeg2000.LossyTransferSyntaxUid
            or Jpeg2000.HtLosslessTransferSyntaxUid or Jpeg2000.HtRpclLosslessTransferSyntaxUid or Jpeg2000.HtTransferSyntaxUid)
            head.AddString(DicomTags.PhotometricInterpretation, DicomVR.CS, "RGB");
        if (from.Uid is JpegBaseline.BaselineTransferSyntaxUid or JpegBaseline.ExtendedTransferSyntaxUid && IsNative(to) && g.SamplesPerPixel == 3)
        {
            // Decoded to RGB by pixel (whatever the stream's YCbCr subsampling); the data set says so.
            head.AddString(DicomTags.PhotometricInterpretation, DicomVR.CS, "RGB");
            head.AddUInt16(DicomTags.PlanarConfiguration, 0);
            g = g with { PlanarConfiguration = 0 };
        }
        DicomWriter.WriteDataset(output, head, to);

        long bytesIn = 0, bytesOut = 0;
        var frame = new byte[g.FrameBytes];
        if (IsNative(to))
        {
            long total = g.FrameBytes * frames.Count;
            WritePixelHeader(output, to, g.BitsAllocated > 8 ? DicomVR.OW : DicomVR.OB, checked((uint)(total + (total & 1))));
            foreach (var f in frames.Frames())
            {
                cancellationToken.ThrowIfCancellationRequested();
                bytesIn += Source(f, from, g, frame);
                output.Write(frame);
                bytesOut += frame.Length;
            }
            if ((total & 1) == 1) output.WriteByte(0);
        }
        else
        {
            WritePixelHeader(output, to, DicomVR.OB, 0xFFFFFFFF);
            WriteItem(output, []); // an empty Basic Offset Table: one fragment per frame
            var check = new byte[g.FrameBytes];
            foreach (var f in frames.Frames())
            {
                cancellationToken.ThrowIfCancellationRequested();
                bytesIn += Source(f, from, g, frame);
                byte[] encoded = Encode(to.Uid, frame, g);
                Decode(to.Uid, encoded, g, check);
                if (!check.AsSpan().SequenceEqual(frame))
                    throw new CodecException($"frame {f.Number} does not decode to its original pixels in {to.Uid} (bits above Bits Stored {g.BitsStored} are set?): the instance is left as it is");
                WriteItem(output, encoded);
                bytesOut += encoded.Length + (encoded.Length & 1);
            }
            WriteTagLength(output, 0xFFFE, 0xE0DD, 0);
        }
        if (tail.Any()) DicomWriter.WriteDataset(output, tail, to);
        return new TranscodeStats(frames.Count, bytesIn, bytesOut);
    }

    /// <summary>The frame's native bytes into <paramref name="frame"/>: read as they are, or decoded; the bytes read from the source.</summary>
    private static long Source(PixelDataFrame f, DicomTransferSyntax from, FrameGeometry g, byte[] frame)
    {
        if (f.Length > MaxFrameBytes) throw new CodecException($"frame {f.Number} has {f.Length} bytes, more than the {MaxFrameBytes}-byte limit");
        var bytes = new byte[f.Length];
        using (var s = f.Open()) s.ReadExactly(bytes);
        if (IsNative(from))
        {
            if (bytes.Length != frame.Length) throw new CodecException($"frame {f.Number} has {bytes.Length} bytes, its geometry {frame.Length}");
            bytes.CopyTo(frame, 0);
        }
        else Decode(from.Uid, bytes, g, frame);
        return bytes.Length;
    }

    private static byte[] Encode(string syntax, ReadOnlySpan<byte> frame, FrameGeometry g) => syntax switch
    {
        RleLossless.TransferSyntaxUid => RleLossless.Encode(frame, g),
        JpegLs.LosslessTransferSyntaxUid => JpegLs.Encode(frame, g),
        Jpeg2000.LosslessTransferSyntaxUid => Jpeg2000.Encode(frame, g),
        HtJ2k.LosslessTransferSyntaxUid => HtJ2k.Encode(frame, g),
        JpegLossless.Sv1TransferSyntaxUid => JpegLossless.Encode(frame, g),
        _ => throw new CodecException($"no encoder for {syntax}"),
    };

    /// <summary>One encoded frame of <paramref name="dataset"/> (stored in <paramref name="syntax"/>) decoded to its native bytes.</summary>
    public static byte[] DecodeFrame(DicomDataset dataset, string syntax, ReadOnlySpan<byte> encoded)
    {
        var g = Geometry(dataset);
        if (g.FrameBytes > MaxFrameBytes) throw new CodecException($"a frame of {g.FrameBytes} bytes is larger than the {MaxFrameBytes}-byte limit");
        var frame = new byte[g.FrameBytes];
        Decode(syntax, encoded, g, frame);
        return frame;
    }

    private static void Decode(string syntax, ReadOnlySpan<byte> encoded, FrameGeometry g, Span<byte> frame)
    {
        switch (syntax)
        {
            case RleLossless.TransferSyntaxUid: RleLossless.Decode(encoded, g, frame); break;
            case JpegLs.LosslessTransferSyntaxUid or JpegLs.NearLosslessTransferSyntaxUid: JpegLs.Decode(encoded, g, frame); break;
            case Jpeg2000.LosslessTransferSyntaxUid or Jpeg2000.LossyTransferSyntaxUid or Jpeg2000.HtLosslessTransferSyntaxUid
                or Jpeg2000.HtRpclLosslessTransferSyntaxUid or Jpeg2000.HtTransferSyntaxUid:
                Jpeg2000.Decode(encoded, g, frame);
                break;
            case JpegLossless.Sv1TransferSyntaxUid or JpegLossless.TransferSyntaxUid: JpegLossless.Decode(encoded, g, frame); break;
            case JpegBaseline.BaselineTransferSyntaxUid or JpegBaseline.ExtendedTransferSyntaxUid: JpegBaseline.Decode(encoded, g, frame); break;
            default: throw new CodecException($"no decoder for {syntax}");
        }
    }

    /// <summary>The frame geometry the Image Pixel module gives; throws <see cref="CodecException"/> for one a codec cannot take.</summary>
    public static FrameGeometry Geometry(DicomDataset ds)
    {
        var g = new FrameGeometry(ds.GetUInt16(DicomTags.Rows) ?? 0, ds.GetUInt16(DicomTags.Columns) ?? 0, ds.GetUInt16(DicomTags.SamplesPerPixel) ?? 1,
            ds.GetUInt16(DicomTags.BitsAllocated) ?? 0, ds.GetUInt16(DicomTags.BitsStored) ?? 0, ds.GetUInt16(DicomTags.PixelRepresentation) == 1,
            ds.GetUInt16(DicomTags.PlanarConfiguration) ?? 0);
        g.Validate(); // (each codec refuses what it cannot take: JPEG-LS and JPEG 2000 samples of up to 16 bits, RLE up to 32)
        return g;
    }

    private static void WritePixelHeader(Stream o, DicomTransferSyntax syntax, DicomVR vr, uint length)
    {
        Span<byte> h = stackalloc byte[12];
        BinaryPrimitives.WriteUInt16LittleEndian(h, 0x7FE0);
        BinaryPrimitives.WriteUInt16LittleEndian(h[2..], 0x0010);
        if (syntax.IsExplicitVR)
        {
            string code = vr.Code();
            h[4] = (byte)code[0];
            h[5] = (byte)code[1];
            BinaryPrimitives.WriteUInt16LittleEndian(h[6..], 0);
            BinaryPrimitives.WriteUInt32LittleEndian(h[8..], length);
            o.Write(h);
        }
        else
        {
            BinaryPrimitives.WriteUInt32LittleEndian(h[4..], length);
            o.Write(h[..8]);
        }
    }

    private static void WriteItem(Stream o, ReadOnlySpan<byte> value)
    {
        WriteTagLength(o, 0xFFFE, 0xE000, checked((uint)(value.Length + (value.Length & 1))));
        o.Write(value);
        if ((value.Length & 1) == 1) o.WriteByte(0);
    }

    private static void WriteTagLength(Stream o, ushort group, ushort element, uint length)
    {
        Span<byte> h = stackalloc byte[8];
        BinaryPrimitives.WriteUInt16LittleEndian(h, group);
        BinaryPrimitives.WriteUInt16LittleEndian(h[2..], element);
        BinaryPrimitives.WriteUInt32LittleEndian(h[4..], length);
        o.Write(h);
    }
}

/// <summary>The toolkit's transcoding seam over <see cref="DicomTranscoder"/> (for retrieval in a syntax the receiver takes).</summary>
public sealed class CodecTranscoder : IPixelTranscoder
{
    public bool CanTranscode(DicomTransferSyntax from, DicomTransferSyntax to) => DicomTranscoder.CanTranscode(from, to);

    public bool CanDecode(DicomTransferSyntax syntax) => DicomTranscoder.CanDecode(syntax.Uid);

    public byte[] DecodeFrame(DicomDataset dataset, DicomTransferSyntax syntax, ReadOnlySpan<byte> encoded)
    {
        try
        {
            return DicomTranscoder.DecodeFrame(dataset, syntax.Uid, encoded);
        }
        catch (CodecException e)
        {
            throw new PixelDataException(e.Reason);
        }
    }

    public byte[] EncodeJpeg(FrameRenderer.Picture picture, int quality)
    {
        try
        {
            return JpegBaseline.EncodePicture(picture.Pixels, picture.Width, picture.Height, picture.Channels, quality);
        }
        catch (CodecException e)
        {
            throw new PixelDataException(e.Reason);
        }
    }

    public void WriteDataset(DicomDataset dataset, DicomTransferSyntax from, DicomTransferSyntax to, Stream output, CancellationToken cancellationToken)
    {
        try
        {
            DicomTranscoder.WriteDataset(dataset, from, to, output, cancellationToken);
        }
        catch (CodecException e)
        {
            throw new PixelDataException(e.Reason);
        }
    }
}
