using System.Buffers.Binary;

namespace AkkaVna.Codecs;

/// <summary>
/// JPEG Lossless (ITU-T T.81 Annex H, process 14, Huffman coded) in C#: 1.2.840.10008.1.2.4.70 (first-order prediction,
/// selection value 1) is encoded and decoded; 1.2.840.10008.1.2.4.57 (any of the seven predictors) is decoded. Samples of
/// 2 to 16 bits, one or three components (one interleaved scan, or a scan per component), restart intervals, a point
/// transform. Encoding writes one scan with Huffman codes built from the frame's own statistics (T.81 Annex K.2, codes of
/// at most 16 bits). Every read is bounds-checked: a stream that ends early, names an unknown table or decodes outside the
/// frame is refused with the reason.
/// </summary>
public static class JpegLossless
{
    public const string Sv1TransferSyntaxUid = "1.2.840.10008.1.2.4.70";
    public const string TransferSyntaxUid = "1.2.840.10008.1.2.4.57";

    private const int SOI = 0xD8, EOI = 0xD9, SOF3 = 0xC3, DHT = 0xC4, SOS = 0xDA, DRI = 0xDD;

    private static void CheckGeometry(FrameGeometry g)
    {
        g.Validate();
        if (g.BitsAllocated > 16 || g.BitsStored < 2) throw new CodecException($"JPEG Lossless codes samples of 2 to 16 bits, not Bits Allocated {g.BitsAllocated} / Bits Stored {g.BitsStored}");
        if (g.SamplesPerPixel == 4) throw new CodecException("JPEG Lossless here takes one or three samples per pixel");
    }

    // ------------------------------------------------------------------ decoding

    /// <summary>Decodes one frame into <paramref name="frame"/>, laid out and sized as <paramref name="geometry"/> says.</summary>
    public static void Decode(ReadOnlySpan<byte> encoded, FrameGeometry geometry, Span<byte> frame)
    {
        CheckGeometry(geometry);
        if (frame.Length != geometry.FrameBytes) throw new CodecException($"the output has {frame.Length} bytes, the frame {geometry.FrameBytes}");
        var g = geometry;
        int spp = g.SamplesPerPixel;
        long pixels = g.Pixels;
        var tables = new HuffmanTable?[4];
        int precision = 0, width = 0, height = 0, restartInterval = 0;
        int[] componentIds = [];
        var samples = new ushort[pixels * spp]; // by pixel
        var decoded = new bool[spp];
        int pos = 0;
        if (encoded.Length < 4 || encoded[0] != 0xFF || encoded[1] != SOI) throw new CodecException("JPEG Lossless: the stream does not begin with SOI");
        pos = 2;
        while (JpegEntropy.NextSegment(encoded, ref pos, "JPEG Lossless", out int marker, out var segment))
        {
            switch (marker)
            {
                case SOF3:
                    if (segment.Length < 6) throw new CodecException("JPEG Lossless: SOF3 is cut short");
                    precision = segment[0];
                    height = BinaryPrimitives.ReadUInt16BigEndian(segment[1..]);
                    width = BinaryPrimitives.ReadUInt16BigEndian(segment[3..]);
                    int nf = segment[5];
                    if (segment.Length < 6 + 3 * nf) throw new CodecException("JPEG Lossless: SOF3's components are cut short");
                    if (nf != spp || width != g.Columns || height != g.Rows)
                        throw new CodecException($"the JPEG Lossless frame is {width} x {height} x {nf}, the data set says {g.Columns} x {g.Rows} x {spp}");
                    if (precision < 2 || precision > 16 || precision > g.BitsAllocated)
                        throw new CodecException($"the JPEG Lossless frame has {precision}-bit samples, the data set {g.BitsStored} of {g.BitsAllocated} bits");
                    componentIds = new int[nf];
                    for (int c = 0; c < nf; c++)
                    {
                        componentIds[c] = segment[6 + 3 * c];
                        if (segment[7 + 3 * c] != 0x11) throw new CodecException("JPEG Lossless: subsampled components are not taken");
                    }
                    break;
                case 0xC0 or 0xC1 or 0xC2 or 0xC5 or 0xC6 or 0xC7 or 0xC9 or 0xCA or 0xCB or 0xCD or 0xCE or 0xCF:
                    throw new CodecException($"JPEG Lossless: the stream is another JPEG process (SOF FF{marker:X2}), not lossless Huffman (SOF3)");
                case DHT:
                    JpegEntropy.ReadTables(segment, tables, null, "JPEG Lossless");
                    break;
                case DRI:
                    if (segment.Length < 2) throw new CodecException("JPEG Lossless: DRI is cut short");
                    restartInterval = BinaryPrimitives.ReadUInt16BigEndian(segment);
                    break;
                case SOS:
                    if (precision == 0) throw new CodecException("JPEG Lossless: SOS before SOF3");
                    pos = DecodeScan(encoded, pos, segment, tables, componentIds, precision, width, height, restartInterval, samples, decoded);
                    break;
                default:
                    break; // APPn, COM, DQT...: not needed
            }
        }
        if (decoded.Any(d => !d)) throw new CodecException("JPEG Lossless: not every component was in a scan");
        // Into the frame's layout: the stored bits, sign-extended when signed.
        int shift = 32 - precision, nb = g.BytesPerSample;
        for (long p = 0; p < pixels; p++)
            for (int c = 0; c < spp; c++)
            {
                uint v = samples[p * spp + c];
                if (g.Signed) v = (uint)((int)(v << shift) >> shift);
                long to = spp == 1 || g.PlanarConfiguration == 0 ? p * spp + c : c * pixels + p;
                if (nb == 1) frame[(int)to] = (byte)v;
                else BinaryPrimitives.WriteUInt16LittleEndian(frame[(int)(to * 2)..], (ushort)v);
            }
    }

    private static int DecodeScan(ReadOnlySpan<byte> data, int pos, ReadOnlySpan<byte> header, HuffmanTable?[] tables, int[] componentIds, int precision, int width,
        int height, int restartInterval, ushort[] samples, bool[] decoded)
    {
        if (header.Length < 1) throw new CodecException("JPEG Lossless: SOS is cut short");
        int ns = header[0];
        if (ns < 1 || header.Length < 1 + 2 * ns + 3) throw new CodecException("JPEG Lossless: SOS is cut short");
        var comps = new int[ns];
        var scanTables = new HuffmanTable[ns];
        for (int i = 0; i < ns; i++)
        {
            int id = header[1 + 2 * i], td = header[2 + 2 * i] >> 4;
            comps[i] = Array.IndexOf(componentIds, id);
            if (comps[i] < 0) throw new CodecException($"JPEG Lossless: the scan names component {id}, which SOF3 does not");
            scanTables[i] = (td < 4 ? tables[td] : null) ?? throw new CodecException($"JPEG Lossless: the scan uses Huffman table {td}, which no DHT defined");
        }
        int predictor = header[1 + 2 * ns], pt = header[3 + 2 * ns] & 0x0F;
        if (predictor is < 1 or > 7) throw new CodecException($"JPEG Lossless: predictor {predictor} (1 to 7 exist)");
        if (pt >= precision) throw new CodecException($"JPEG Lossless: point transform {pt} with {precision}-bit samples");
        int spp = componentIds.Length;
        var r = new JpegBitReader(data, pos, "JPEG Lossless");
        int mask = (1 << (precision - pt)) - 1;
        int initial = 1 << (precision - pt - 1);
        long mcus = (long)width * height, sinceRestart = 0, intervalStart = 0;
        for (long m = 0; m < mcus; m++)
        {
            int x = (int)(m % width), y = (int)(m / width);
            if (restartInterval > 0 && sinceRestart == restartInterval)
            {
                r.Restart();
                sinceRestart = 0;
                intervalStart = m;
            }
            int intervalFirstRow = (int)(intervalStart / width);
            for (int i = 0; i < ns; i++)
            {
                int c = comps[i];
                int ssss = JpegEntropy.DecodeSymbol(ref r, scanTables[i]);
                int diff;
                if (ssss == 0) diff = 0;
                else if (ssss == 16) diff = 32768;
                else if (ssss > 16) throw new CodecException($"JPEG Lossless: difference category {ssss}");
                else
                {
                    diff = r.Bits(ssss);
                    if (diff < 1 << (ssss - 1)) diff -= (1 << ssss) - 1;
                }
                long at = m * spp + c;
                int pred;
                // T.81 H.1.2.1: the first sample of the image or of a restart interval takes 2^(P-Pt-1); the rest of that line
                // Ra; the first sample of every later line Rb; the others the scan's predictor.
                if (m == intervalStart) pred = initial;
                else if (y == intervalFirstRow) pred = samples[at - spp] >> pt;
                else if (x == 0) pred = samples[at - (long)width * spp] >> pt;
                else
                {
                    int ra = samples[at - spp] >> pt, rb = samples[at - (long)width * spp] >> pt, rc = samples[at - (long)width * spp - spp] >> pt;
                    pred = predictor switch
                    {
                        1 => ra,
                        2 => rb,
                        3 => rc,
                        4 => ra + rb - rc,
                        5 => ra + ((rb - rc) >> 1),
                        6 => rb + ((ra - rc) >> 1),
                        _ => (ra + rb) >> 1,
                    };
                }
                samples[at] = (ushort)(((pred + diff) & mask) << pt);
            }
            sinceRestart++;
        }
        foreach (int c in comps) decoded[c] = true;
        return r.End();
    }

    // ------------------------------------------------------------------ encoding (selection value 1)

    /// <summary>Encodes one native frame with first-order prediction (selection value 1, 1.2.840.10008.1.2.4.70), lossless.</summary>
    public static byte[] Encode(ReadOnlySpan<byte> frame, FrameGeometry geometry)
    {
        CheckGeometry(geometry);
        var g = geometry;
        if (frame.Length != g.FrameBytes) throw new CodecException($"the frame has {frame.Length} bytes, its geometry {g.FrameBytes}");
        int spp = g.SamplesPerPixel, width = g.Columns, height = g.Rows, precision = g.BitsStored;
        long pixels = g.Pixels;
        int mask = (1 << precision) - 1;
        // The samples by pixel, the low Bits Stored bits of each.
        var s = new int[pixels * spp];
        for (long p = 0; p < pixels; p++)
            for (int c = 0; c < spp; c++)
            {
                long from = spp == 1 || g.PlanarConfiguration == 0 ? p * spp + c : c * pixels + p;
                s[p * spp + c] = (g.BytesPerSample == 1 ? frame[(int)from] : BinaryPrimitives.ReadUInt16LittleEndian(frame[(int)(from * 2)..])) & mask;
            }
        // Differences, and how often each category occurs.
        var categories = new byte[s.Length];
        var diffs = new int[s.Length];
        var frequency = new long[17];
        for (long m = 0; m < pixels; m++)
        {
            int x = (int)(m % width);
            for (int c = 0; c < spp; c++)
            {
                long at = m * spp + c;
                int pred = m == 0 ? 1 << (precision - 1) : m < width ? s[at - spp] : x == 0 ? s[at - (long)width * spp] : s[at - spp];
                int diff = (s[at] - pred) & 0xFFFF; // modulo 2^16
                if (diff >= 32768) diff -= 65536;
                int ssss = diff == 0 ? 0 : diff == -32768 ? 16 : 32 - System.Numerics.BitOperations.LeadingZeroCount((uint)Math.Abs(diff));
                categories[at] = (byte)ssss;
                diffs[at] = diff;
                frequency[ssss]++;
            }
        }
        var (bits, values) = HuffmanTable(frequency);
        var (codes, lengths) = Codes(bits, values);

        var o = new MemoryStream((int)Math.Min(int.MaxValue, frame.Length / 2 + 1024));
        void Marker(int m) { o.WriteByte(0xFF); o.WriteByte((byte)m); }
        void U16(int v) { o.WriteByte((byte)(v >> 8)); o.WriteByte((byte)v); }
        Marker(SOI);
        Marker(SOF3);
        U16(8 + 3 * spp);
        o.WriteByte((byte)precision);
        U16(height);
        U16(width);
        o.WriteByte((byte)spp);
        for (int c = 0; c < spp; c++) { o.WriteByte((byte)(c + 1)); o.WriteByte(0x11); o.WriteByte(0); }
        Marker(DHT);
        U16(2 + 17 + values.Length);
        o.WriteByte(0x00);
        for (int l = 1; l <= 16; l++) o.WriteByte((byte)bits[l]);
        o.Write(values);
        Marker(SOS);
        U16(6 + 2 * spp);
        o.WriteByte((byte)spp);
        for (int c = 0; c < spp; c++) { o.WriteByte((byte)(c + 1)); o.WriteByte(0x00); }
        o.WriteByte(1); // selection value 1
        o.WriteByte(0);
        o.WriteByte(0); // Ah = 0, Al (point transform) = 0
        // Entropy-coded data.
        ulong acc = 0;
        int count = 0;
        void Put(int code, int length)
        {
            acc = (acc << length) | (uint)(code & ((1 << length) - 1));
            count += length;
            while (count >= 8)
            {
                byte b = (byte)(acc >> (count - 8));
                o.WriteByte(b);
                if (b == 0xFF) o.WriteByte(0);
                count -= 8;
            }
        }
        for (long i = 0; i < s.Length; i++)
        {
            int ssss = categories[i];
            Put(codes[ssss], lengths[ssss]);
            if (ssss is > 0 and < 16)
            {
                int d = diffs[i];
                Put(d < 0 ? d + (1 << ssss) - 1 : d, ssss);
            }
        }
        if (count > 0) Put((1 << (8 - count)) - 1, 8 - count); // pad with 1-bits
        Marker(EOI);
        return o.ToArray();
    }

    /// <summary>T.81 Annex K.2: a Huffman table (code counts per length, values by length) from symbol frequencies, no code longer than 16 bits.</summary>
    private static (int[] Bits, byte[] Values) HuffmanTable(long[] frequency)
    {
        const int Symbols = 257; // 0..16 used; 256 the reserved symbol that keeps the all-ones code out
        var freq = new long[Symbols];
        for (int i = 0; i < frequency.Length; i++) freq[i] = frequency[i];
        freq[256] = 1;
        var codesize = new int[Symbols];
        var others = Enumerable.Repeat(-1, Symbols).ToArray();
        while (true)
        {
            int v1 = -1, v2 = -1;
            for (int i = 0; i < Symbols; i++)
                if (freq[i] > 0 && (v1 < 0 || freq[i] <= freq[v1])) v1 = i;
            for (int i = 0; i < Symbols; i++)
                if (freq[i] > 0 && i != v1 && (v2 < 0 || freq[i] <= freq[v2])) v2 = i;
            if (v2 < 0) break;
            freq[v1] += freq[v2];
            freq[v2] = 0;
            codesize[v1]++;
            while (others[v1] >= 0) { v1 = others[v1]; codesize[v1]++; }
            others[v1] = v2;
            codesize[v2]++;
            while (others[v2] >= 0) { v2 = others[v2]; codesize[v2]++; }
        }
        var bits = new int[33];
        for (int i = 0; i < Symbols; i++) if (codesize[i] > 0) bits[codesize[i]]++;
        // Limit to 16 bits (K.2, Figure K.3).
        for (int i = 32; i > 16; i--)
        {
            while (bits[i] > 0)
            {
                int j = i - 2;
                while (bits[j] == 0) j--;
                bits[i] -= 2;
                bits[i - 1]++;
                bits[j + 1] += 2;
                bits[j]--;
            }
        }
        int last = 16;
        while (bits[last] == 0) last--;
        bits[last]--; // the reserved symbol's code goes
        var values = new List<byte>();
        for (int size = 1; size <= 32; size++)
            for (int i = 0; i < 256; i++)
                if (codesize[i] == size) values.Add((byte)i);
        var result = new int[17];
        Array.Copy(bits, result, 17);
        return (result, [.. values]);
    }

    /// <summary>The code and length of each symbol, from a table's counts and values (T.81 Annex C).</summary>
    private static (int[] Codes, int[] Lengths) Codes(int[] bits, byte[] values)
    {
        var codes = new int[17];
        var lengths = new int[17];
        int code = 0, k = 0;
        for (int l = 1; l <= 16; l++)
        {
            for (int n = 0; n < bits[l]; n++)
            {
                int symbol = values[k++];
                if (symbol <= 16)
                {
                    codes[symbol] = code;
                    lengths[symbol] = l;
                }
                code++;
            }
            code <<= 1;
        }
        return (codes, lengths);
    }
}
