using System.Buffers.Binary;

namespace AkkaVna.Codecs;

/// <summary>
/// RLE Lossless (1.2.840.10008.1.2.5, PS3.5 Annex G): a frame is a 64-byte header (the number of segments and up to
/// fifteen offsets) followed by one segment per byte of each sample — the most significant byte's segment first, the
/// samples in order — each a PackBits byte stream (G.3.1) that restarts on every row and is padded to an even length.
/// Every read is bounds-checked: malformed input is a <see cref="CodecException"/>, never an overrun.
/// </summary>
public static class RleLossless
{
    public const string TransferSyntaxUid = "1.2.840.10008.1.2.5";
    private const int HeaderBytes = 64, MaxSegments = 15;

    /// <summary>The segments a frame of <paramref name="geometry"/> has.</summary>
    private static int SegmentCount(FrameGeometry geometry)
    {
        geometry.Validate();
        int segments = geometry.SamplesPerPixel * geometry.BytesPerSample;
        if (segments > MaxSegments) throw new CodecException($"{geometry.SamplesPerPixel} samples of {geometry.BitsAllocated} bits need {segments} RLE segments; at most 15 fit");
        return segments;
    }

    /// <summary>Where byte <paramref name="b"/> (0: least significant) of sample <paramref name="s"/> of pixel 0 is, and the step to the next pixel's.</summary>
    private static (long First, int Step) Layout(FrameGeometry g, int s, int b) =>
        g.SamplesPerPixel == 1 || g.PlanarConfiguration == 0
            ? (((long)s * g.BytesPerSample) + b, g.SamplesPerPixel * g.BytesPerSample)
            : ((s * g.Pixels * g.BytesPerSample) + b, g.BytesPerSample);

    /// <summary>Encodes one native frame (little endian, laid out as <paramref name="geometry"/> says).</summary>
    public static byte[] Encode(ReadOnlySpan<byte> frame, FrameGeometry geometry)
    {
        int segments = SegmentCount(geometry);
        if (frame.Length != geometry.FrameBytes) throw new CodecException($"the frame has {frame.Length} bytes, its geometry {geometry.FrameBytes}");
        var output = new List<byte>((int)Math.Min(int.MaxValue / 2, frame.Length / 2 + HeaderBytes));
        output.AddRange(new byte[HeaderBytes]);
        var header = new uint[1 + MaxSegments];
        header[0] = (uint)segments;
        var row = new byte[geometry.Columns];
        int n = 0;
        for (int s = 0; s < geometry.SamplesPerPixel; s++)
        {
            for (int b = geometry.BytesPerSample - 1; b >= 0; b--, n++)
            {
                header[1 + n] = (uint)output.Count;
                var (first, step) = Layout(geometry, s, b);
                long at = first;
                for (int r = 0; r < geometry.Rows; r++)
                {
                    for (int c = 0; c < geometry.Columns; c++, at += step) row[c] = frame[(int)at];
                    PackBits(row, output);
                }
                if ((output.Count & 1) != 0) output.Add(0);
            }
        }
        var bytes = output.ToArray();
        for (int i = 0; i < header.Length; i++) BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(i * 4), header[i]);
        return bytes;
    }

    /// <summary>PackBits (G.3.1): runs of 3 or more equal bytes as replicate runs, the rest as literal runs, at most 128 bytes each.</summary>
    private static void PackBits(ReadOnlySpan<byte> row, List<byte> output)
    {
        int i = 0;
        while (i < row.Length)
        {
            int run = 1;
            while (i + run < row.Length && run < 128 && row[i + run] == row[i]) run++;
            if (run >= 3)
            {
                output.Add((byte)(257 - run)); // -(run - 1)
                output.Add(row[i]);
                i += run;
                continue;
            }
            // A literal run: up to the next run of three (or 128 bytes).
            int start = i, length = 0;
            while (i < row.Length && length < 128)
            {
                if (i + 2 < row.Length && row[i] == row[i + 1] && row[i] == row[i + 2]) break;
                i++;
                length++;
            }
            output.Add((byte)(length - 1));
            for (int k = start; k < start + length; k++) output.Add(row[k]);
        }
    }

    /// <summary>Decodes one frame into <paramref name="frame"/> (native, little endian, laid out as <paramref name="geometry"/> says).</summary>
    public static void Decode(ReadOnlySpan<byte> encoded, FrameGeometry geometry, Span<byte> frame)
    {
        int expected = SegmentCount(geometry);
        if (frame.Length != geometry.FrameBytes) throw new CodecException($"the output has {frame.Length} bytes, the frame {geometry.FrameBytes}");
        if (encoded.Length < HeaderBytes) throw new CodecException($"an RLE frame of {encoded.Length} bytes has no 64-byte header");
        int segments = (int)BinaryPrimitives.ReadUInt32LittleEndian(encoded);
        if (segments != expected)
            throw new CodecException($"the RLE header names {segments} segments; {geometry.SamplesPerPixel} sample(s) of {geometry.BitsAllocated} bits have {expected}");
        var offsets = new long[segments + 1];
        for (int i = 0; i < segments; i++)
        {
            offsets[i] = BinaryPrimitives.ReadUInt32LittleEndian(encoded[(4 + i * 4)..]);
            if (offsets[i] < HeaderBytes || offsets[i] > encoded.Length || (i > 0 && offsets[i] < offsets[i - 1]))
                throw new CodecException($"RLE segment {i + 1} starts at {offsets[i]}, outside the frame's {encoded.Length} bytes or before the previous one");
        }
        offsets[segments] = encoded.Length;
        long pixels = geometry.Pixels;
        int n = 0;
        for (int s = 0; s < geometry.SamplesPerPixel; s++)
        {
            for (int b = geometry.BytesPerSample - 1; b >= 0; b--, n++)
            {
                var segment = encoded[(int)offsets[n]..(int)offsets[n + 1]];
                var (first, step) = Layout(geometry, s, b);
                long produced = UnpackBits(segment, frame, first, step, pixels);
                if (produced < pixels) throw new CodecException($"RLE segment {n + 1} decodes to {produced} bytes, not the frame's {pixels}");
            }
        }
    }

    /// <summary>Unpacks a segment into every <paramref name="step"/>-th byte of <paramref name="frame"/> from <paramref name="first"/>, up to <paramref name="count"/> bytes.</summary>
    private static long UnpackBits(ReadOnlySpan<byte> segment, Span<byte> frame, long first, int step, long count)
    {
        long produced = 0, at = first;
        int i = 0;
        while (produced < count && i < segment.Length)
        {
            int control = (sbyte)segment[i++];
            if (control >= 0)
            {
                int length = control + 1;
                if (i + length > segment.Length) throw new CodecException($"an RLE literal run of {length} bytes passes the segment's end");
                if (produced + length > count) throw new CodecException("an RLE literal run passes the frame's end");
                for (int k = 0; k < length; k++, at += step) frame[(int)at] = segment[i + k];
                i += length;
                produced += length;
            }
            else if (control != -128)
            {
                int length = 1 - control;
                if (i >= segment.Length) throw new CodecException("an RLE replicate run has no byte to repeat");
                if (produced + length > count) throw new CodecException("an RLE replicate run passes the frame's end");
                byte value = segment[i++];
                for (int k = 0; k < length; k++, at += step) frame[(int)at] = value;
                produced += length;
            }
        }
        return produced;
    }
}
