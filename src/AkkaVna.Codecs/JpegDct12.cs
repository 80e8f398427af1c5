using System.Buffers.Binary;

namespace AkkaVna.Codecs;

/// <summary>
/// Twelve-bit lossy JPEG (ITU-T T.81 process 4: extended sequential DCT, Huffman coded; 1.2.840.10008.1.2.4.51) decoded
/// in C#, for the grey images that come so (nuclear medicine, some X-ray): TurboJPEG here decodes 8-bit samples only.
/// The inverse DCT is the IJG library's accurate integer one (<c>jidctint.c</c>, 12-bit constants), which dcmtk's
/// dcmdjpeg uses too, so the pixels are the ones dcmtk gives. One component (several are refused with the reason),
/// restart intervals, 8- and 16-bit quantization tables. Every read is bounds-checked.
/// </summary>
internal static class JpegDct12
{
    private const string Codec = "12-bit JPEG";
    private const int SOI = 0xD8, SOF0 = 0xC0, SOF1 = 0xC1, DHT = 0xC4, DQT = 0xDB, SOS = 0xDA, DRI = 0xDD;

    /// <summary>The zig-zag order: the natural (row-major) position of the k-th coefficient of a block as coded.</summary>
    private static readonly int[] Natural =
    [
        0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6, 7, 14, 21, 28,
        35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
    ];

    /// <summary>Whether <paramref name="encoded"/>'s frame header says 12-bit samples (what this class decodes).</summary>
    public static bool IsTwelveBit(ReadOnlySpan<byte> encoded)
    {
        if (encoded.Length < 4 || encoded[0] != 0xFF || encoded[1] != SOI) return false;
        int pos = 2;
        try
        {
            while (JpegEntropy.NextSegment(encoded, ref pos, Codec, out int marker, out var segment))
            {
                if (marker is >= 0xC0 and <= 0xCF and not (DHT or 0xC8 or 0xCC)) return segment.Length > 0 && segment[0] == 12;
                if (marker == SOS) return false;
            }
        }
        catch (CodecException)
        {
        }
        return false;
    }

    /// <summary>Decodes one frame into <paramref name="frame"/> (one sample a pixel, Bits Allocated 16, little endian).</summary>
    public static void Decode(ReadOnlySpan<byte> encoded, FrameGeometry g, Span<byte> frame)
    {
        g.Validate();
        if (g.SamplesPerPixel != 1 || g.BitsAllocated != 16)
            throw new CodecException($"{Codec} decodes grey images with Bits Allocated 16 here, not {g.SamplesPerPixel} samples of {g.BitsAllocated} bits");
        if (frame.Length != g.FrameBytes) throw new CodecException($"the output has {frame.Length} bytes, the frame {g.FrameBytes}");
        if (encoded.Length < 4 || encoded[0] != 0xFF || encoded[1] != SOI) throw new CodecException($"{Codec}: the stream does not begin with SOI");
        var quant = new int[4][];
        var dc = new HuffmanTable?[4];
        var ac = new HuffmanTable?[4];
        int width = 0, height = 0, restartInterval = 0, componentId = -1, quantId = 0;
        bool scanned = false;
        int pos = 2;
        while (JpegEntropy.NextSegment(encoded, ref pos, Codec, out int marker, out var segment))
        {
            switch (marker)
            {
                case SOF0 or SOF1:
                    if (segment.Length < 6) throw new CodecException($"{Codec}: SOF is cut short");
                    if (segment[0] != 12) throw new CodecException($"{Codec}: the frame has {segment[0]}-bit samples");
                    height = BinaryPrimitives.ReadUInt16BigEndian(segment[1..]);
                    width = BinaryPrimitives.ReadUInt16BigEndian(segment[3..]);
                    if (segment[5] != 1) throw new CodecException($"{Codec}: the frame has {segment[5]} components (one is decoded here)");
                    if (segment.Length < 9) throw new CodecException($"{Codec}: SOF's component is cut short");
                    if (width != g.Columns || height != g.Rows) throw new CodecException($"the JPEG frame is {width} x {height}, the data set says {g.Columns} x {g.Rows}");
                    componentId = segment[6];
                    quantId = segment[8];
                    if (quantId > 3) throw new CodecException($"{Codec}: quantization table {quantId}");
                    break;
                case 0xC2 or 0xC3 or 0xC5 or 0xC6 or 0xC7 or 0xC9 or 0xCA or 0xCB or 0xCD or 0xCE or 0xCF:
                    throw new CodecException($"{Codec}: the stream is another JPEG process (SOF FF{marker:X2}), not extended sequential Huffman (SOF1)");
                case DQT:
                    ReadQuantization(segment, quant);
                    break;
                case DHT:
                    JpegEntropy.ReadTables(segment, dc, ac, Codec);
                    break;
                case DRI:
                    if (segment.Length < 2) throw new CodecException($"{Codec}: DRI is cut short");
                    restartInterval = BinaryPrimitives.ReadUInt16BigEndian(segment);
                    break;
                case SOS:
                    if (width == 0) throw new CodecException($"{Codec}: SOS before SOF");
                    if (scanned) throw new CodecException($"{Codec}: more than one scan");
                    var q = quant[quantId] ?? throw new CodecException($"{Codec}: quantization table {quantId} was not defined");
                    pos = DecodeScan(encoded, pos, segment, componentId, q, dc, ac, width, height, restartInterval, frame);
                    scanned = true;
                    break;
                default:
                    break; // APPn, COM: not needed
            }
        }
        if (!scanned) throw new CodecException($"{Codec}: no scan");
    }

    /// <summary>DQT: 8- or 16-bit tables, kept in zig-zag order.</summary>
    private static void ReadQuantization(ReadOnlySpan<byte> segment, int[][] quant)
    {
        int at = 0;
        while (at < segment.Length)
        {
            int pq = segment[at] >> 4, tq = segment[at] & 0x0F;
            if (pq > 1 || tq > 3) throw new CodecException($"{Codec}: DQT names precision {pq} table {tq}");
            int size = pq == 0 ? 64 : 128;
            if (at + 1 + size > segment.Length) throw new CodecException($"{Codec}: DQT is cut short");
            var t = new int[64];
            for (int k = 0; k < 64; k++) t[k] = pq == 0 ? segment[at + 1 + k] : BinaryPrimitives.ReadUInt16BigEndian(segment[(at + 1 + 2 * k)..]);
            quant[tq] = t;
            at += 1 + size;
        }
    }

    private static int DecodeScan(ReadOnlySpan<byte> data, int pos, ReadOnlySpan<byte> header, int componentId, int[] quant, HuffmanTable?[] dcTables,
        HuffmanTable?[] acTables, int width, int height, int restartInterval, Span<byte> frame)
    {
        if (header.Length < 6 || header[0] != 1) throw new CodecException($"{Codec}: a scan of {(header.Length > 0 ? header[0] : 0)} components (one expected)");
        if (header[1] != componentId) throw new CodecException($"{Codec}: the scan names component {header[1]}, which SOF does not");
        int td = header[2] >> 4, ta = header[2] & 0x0F;
        var dcTable = (td < 4 ? dcTables[td] : null) ?? throw new CodecException($"{Codec}: the scan uses DC table {td}, which no DHT defined");
        var acTable = (ta < 4 ? acTables[ta] : null) ?? throw new CodecException($"{Codec}: the scan uses AC table {ta}, which no DHT defined");
        if (header[3] != 0 || header[4] != 63 || header[5] != 0) throw new CodecException($"{Codec}: spectral selection {header[3]}-{header[4]}, approximation {header[5]:X2} (sequential takes 0-63, 0)");
        var r = new JpegBitReader(data, pos, Codec);
        int blocksWide = (width + 7) / 8, blocksHigh = (height + 7) / 8;
        long blocks = (long)blocksWide * blocksHigh;
        Span<int> coefficients = stackalloc int[64];
        Span<int> workspace = stackalloc int[64];
        Span<ushort> pixels = stackalloc ushort[64];
        int predictor = 0, sinceRestart = 0;
        for (long b = 0; b < blocks; b++)
        {
            if (restartInterval > 0 && sinceRestart == restartInterval)
            {
                r.Restart();
                predictor = 0;
                sinceRestart = 0;
            }
            coefficients.Clear();
            int category = JpegEntropy.DecodeSymbol(ref r, dcTable);
            if (category > 15) throw new CodecException($"{Codec}: DC difference category {category}");
            predictor += JpegEntropy.Extend(r.Bits(category), category);
            coefficients[0] = predictor * quant[0];
            for (int k = 1; k < 64;)
            {
                int rs = JpegEntropy.DecodeSymbol(ref r, acTable), run = rs >> 4, size = rs & 15;
                if (size == 0)
                {
                    if (run != 15) break; // end of block
                    k += 16;
                    continue;
                }
                k += run;
                if (k > 63) throw new CodecException($"{Codec}: a coefficient past the end of its block");
                coefficients[Natural[k]] = JpegEntropy.Extend(r.Bits(size), size) * quant[k];
                k++;
            }
            InverseDct(coefficients, workspace, pixels);
            int bx = (int)(b % blocksWide) * 8, by = (int)(b / blocksWide) * 8;
            for (int y = 0; y < 8 && by + y < height; y++)
                for (int x = 0; x < 8 && bx + x < width; x++)
                    BinaryPrimitives.WriteUInt16LittleEndian(frame[(((by + y) * width + bx + x) * 2)..], pixels[y * 8 + x]);
            sinceRestart++;
        }
        return r.End();
    }

    // IJG jidctint.c (jpeg_idct_islow) with BITS_IN_JSAMPLE 12: CONST_BITS 13, PASS1_BITS 1.
    private const int ConstBits = 13, Pass1Bits = 1, Center = 2048, MaxSample = 4095;
    private const long Fix0298631336 = 2446, Fix0390180644 = 3196, Fix0541196100 = 4433, Fix0765366865 = 6270, Fix0899976223 = 7373,
        Fix1175875602 = 9633, Fix1501321110 = 12299, Fix1847759065 = 15137, Fix1961570560 = 16069, Fix2053119869 = 16819,
        Fix2562915447 = 20995, Fix3072711026 = 25172;

    private static long Descale(long x, int n) => (x + (1L << (n - 1))) >> n;

    /// <summary>IJG's range limit after the IDCT: the value wrapped to 14 bits (its RANGE_MASK), centred and clamped.</summary>
    private static ushort Limit(long x)
    {
        int wrapped = ((int)x & 0x3FFF) << 18 >> 18;
        return (ushort)Math.Clamp(wrapped + Center, 0, MaxSample);
    }

    /// <summary>One 8x8 block of dequantized coefficients (natural order) into samples, exactly as IJG's accurate integer IDCT.</summary>
    private static void InverseDct(ReadOnlySpan<int> input, Span<int> ws, Span<ushort> output)
    {
        for (int c = 0; c < 8; c++)
        {
            // Columns.
            long z2 = input[16 + c], z3 = input[48 + c];
            long z1 = (z2 + z3) * Fix0541196100;
            long tmp2 = z1 + z3 * -Fix1847759065, tmp3 = z1 + z2 * Fix0765366865;
            z2 = input[c];
            z3 = input[32 + c];
            long tmp0 = (z2 + z3) << ConstBits, tmp1 = (z2 - z3) << ConstBits;
            long tmp10 = tmp0 + tmp3, tmp13 = tmp0 - tmp3, tmp11 = tmp1 + tmp2, tmp12 = tmp1 - tmp2;
            Odd(input[56 + c], input[40 + c], input[24 + c], input[8 + c], out tmp0, out tmp1, out tmp2, out tmp3);
            const int n = ConstBits - Pass1Bits;
            ws[c] = (int)Descale(tmp10 + tmp3, n);
            ws[56 + c] = (int)Descale(tmp10 - tmp3, n);
            ws[8 + c] = (int)Descale(tmp11 + tmp2, n);
            ws[48 + c] = (int)Descale(tmp11 - tmp2, n);
            ws[16 + c] = (int)Descale(tmp12 + tmp1, n);
            ws[40 + c] = (int)Descale(tmp12 - tmp1, n);
            ws[24 + c] = (int)Descale(tmp13 + tmp0, n);
            ws[32 + c] = (int)Descale(tmp13 - tmp0, n);
        }
        for (int row = 0; row < 8; row++)
        {
            // Rows.
            int w = row * 8;
            long z2 = ws[w + 2], z3 = ws[w + 6];
            long z1 = (z2 + z3) * Fix0541196100;
            long tmp2 = z1 + z3 * -Fix1847759065, tmp3 = z1 + z2 * Fix0765366865;
            long tmp0 = ((long)ws[w] + ws[w + 4]) << ConstBits, tmp1 = ((long)ws[w] - ws[w + 4]) << ConstBits;
            long tmp10 = tmp0 + tmp3, tmp13 = tmp0 - tmp3, tmp11 = tmp1 + tmp2, tmp12 = tmp1 - tmp2;
            Odd(ws[w + 7], ws[w + 5], ws[w + 3], ws[w + 1], out tmp0, out tmp1, out tmp2, out tmp3);
            const int n = ConstBits + Pass1Bits + 3;
            output[w] = Limit(Descale(tmp10 + tmp3, n));
            output[w + 7] = Limit(Descale(tmp10 - tmp3, n));
            output[w + 1] = Limit(Descale(tmp11 + tmp2, n));
            output[w + 6] = Limit(Descale(tmp11 - tmp2, n));
            output[w + 2] = Limit(Descale(tmp12 + tmp1, n));
            output[w + 5] = Limit(Descale(tmp12 - tmp1, n));
            output[w + 3] = Limit(Descale(tmp13 + tmp0, n));
            output[w + 4] = Limit(Descale(tmp13 - tmp0, n));
        }
    }

    /// <summary>The odd part of jpeg_idct_islow, from the 7th, 5th, 3rd and 1st inputs of a column or row.</summary>
    private static void Odd(long i7, long i5, long i3, long i1, out long tmp0, out long tmp1, out long tmp2, out long tmp3)
    {
        tmp0 = i7;
        tmp1 = i5;
        tmp2 = i3;
        tmp3 = i1;
        long z1 = tmp0 + tmp3, z2 = tmp1 + tmp2, z3 = tmp0 + tmp2, z4 = tmp1 + tmp3;
        long z5 = (z3 + z4) * Fix1175875602;
        tmp0 *= Fix0298631336;
        tmp1 *= Fix2053119869;
        tmp2 *= Fix3072711026;
        tmp3 *= Fix1501321110;
        z1 *= -Fix0899976223;
        z2 *= -Fix2562915447;
        z3 = z3 * -Fix1961570560 + z5;
        z4 = z4 * -Fix0390180644 + z5;
        tmp0 += z1 + z3;
        tmp1 += z2 + z4;
        tmp2 += z2 + z3;
        tmp3 += z1 + z4;
    }
}
