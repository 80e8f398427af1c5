using System.Buffers.Binary;

namespace AkkaVna.Codecs;

/// <summary>A Huffman table as a JPEG decoder reads it (ITU-T T.81 F.2.2.3: MINCODE, MAXCODE, VALPTR).</summary>
internal sealed class HuffmanTable
{
    public readonly int[] MaxCode = new int[18];
    public readonly int[] ValPtr = new int[17];
    public readonly int[] MinCode = new int[17];
    public byte[] Values = [];
}

/// <summary>What the Huffman-coded JPEG decoders here share (lossless, and 12-bit DCT): DHT segments and symbol decoding.</summary>
internal static class JpegEntropy
{
    /// <summary>
    /// Reads a DHT segment into <paramref name="dc"/> (class 0) and <paramref name="ac"/> (class 1; null where a process
    /// has no AC tables, which makes one an error). <paramref name="codec"/> names the codec in errors.
    /// </summary>
    public static void ReadTables(ReadOnlySpan<byte> segment, HuffmanTable?[] dc, HuffmanTable?[]? ac, string codec)
    {
        int at = 0;
        while (at < segment.Length)
        {
            if (at + 17 > segment.Length) throw new CodecException($"{codec}: DHT is cut short");
            int tc = segment[at] >> 4, th = segment[at] & 0x0F;
            if (tc > 1 || (tc == 1 && ac is null) || th > 3)
                throw new CodecException($"{codec}: DHT defines table class {tc} id {th} (this process uses {(ac is null ? "DC tables 0-3" : "DC and AC tables 0-3")})");
            var counts = segment.Slice(at + 1, 16);
            int total = 0;
            foreach (var n in counts) total += n;
            if (total > 256 || at + 17 + total > segment.Length) throw new CodecException($"{codec}: DHT's values are cut short");
            var t = new HuffmanTable { Values = segment.Slice(at + 17, total).ToArray() };
            int code = 0, k = 0;
            for (int l = 1; l <= 16; l++)
            {
                int n = counts[l - 1];
                if (n == 0)
                {
                    t.MaxCode[l] = -1;
                }
                else
                {
                    t.ValPtr[l] = k;
                    t.MinCode[l] = code;
                    code += n;
                    k += n;
                    t.MaxCode[l] = code - 1;
                }
                code <<= 1;
            }
            t.MaxCode[17] = int.MaxValue;
            (tc == 0 ? dc : ac!)[th] = t;
            at += 17 + total;
        }
    }

    public static int DecodeSymbol(ref JpegBitReader r, HuffmanTable t)
    {
        int code = r.Bit(), l = 1;
        while (code > t.MaxCode[l])
        {
            code = (code << 1) | r.Bit();
            if (++l > 16) throw new CodecException($"{r.Codec}: a Huffman code longer than 16 bits");
        }
        int index = t.ValPtr[l] + code - t.MinCode[l];
        if ((uint)index >= (uint)t.Values.Length) throw new CodecException($"{r.Codec}: a Huffman code outside its table");
        return t.Values[index];
    }

    /// <summary>T.81 F.2.2.1 EXTEND: the <paramref name="bits"/> received for a category <paramref name="category"/> as a signed value.</summary>
    public static int Extend(int bits, int category) => category == 0 ? 0 : bits < 1 << (category - 1) ? bits - (1 << category) + 1 : bits;

    /// <summary>
    /// The next marker segment from <paramref name="pos"/> (fill bytes skipped; a stray RSTn between segments ignored):
    /// false at EOI, else its marker and body (without its length), <paramref name="pos"/> moved past it.
    /// </summary>
    public static bool NextSegment(ReadOnlySpan<byte> data, ref int pos, string codec, out int marker, out ReadOnlySpan<byte> segment)
    {
        segment = default;
        while (true)
        {
            if (pos + 2 > data.Length) throw new CodecException($"{codec}: the stream ends before EOI");
            if (data[pos] != 0xFF) throw new CodecException($"{codec}: a marker was expected at byte {pos}");
            while (pos < data.Length && data[pos] == 0xFF) pos++;
            if (pos >= data.Length) throw new CodecException($"{codec}: the stream ends in a marker");
            marker = data[pos++];
            if (marker == 0xD9) return false;
            if (marker is >= 0xD0 and <= 0xD7) continue;
            if (pos + 2 > data.Length) throw new CodecException($"{codec}: a segment's length is cut short");
            int length = BinaryPrimitives.ReadUInt16BigEndian(data[pos..]);
            if (length < 2 || pos + length > data.Length) throw new CodecException($"{codec}: segment FF{marker:X2} of {length} bytes runs past the stream");
            segment = data.Slice(pos + 2, length - 2);
            pos += length;
            return true;
        }
    }
}

/// <summary>Reads the entropy-coded bits of a JPEG scan, removing stuffed zero bytes, stopping at a marker.</summary>
internal ref struct JpegBitReader(ReadOnlySpan<byte> data, int pos, string codec)
{
    private readonly ReadOnlySpan<byte> _data = data;
    public readonly string Codec = codec;
    public int Pos = pos;
    private uint _bits;
    private int _count;
    public bool AtMarker;

    public int Bit()
    {
        if (_count == 0) Fill();
        _count--;
        return (int)(_bits >> _count) & 1;
    }

    public int Bits(int n)
    {
        int v = 0;
        for (int i = 0; i < n; i++) v = (v << 1) | Bit();
        return v;
    }

    private void Fill()
    {
        if (AtMarker || Pos >= _data.Length) throw new CodecException($"{Codec}: the scan's data ends before its last sample");
        byte b = _data[Pos];
        if (b == 0xFF)
        {
            if (Pos + 1 >= _data.Length) throw new CodecException($"{Codec}: the scan's data ends in a marker");
            if (_data[Pos + 1] != 0)
            {
                AtMarker = true; // a marker: the data ends here (padding with 1-bits would follow in a conforming stream)
                throw new CodecException($"{Codec}: the scan's data ends before its last sample");
            }
            Pos += 2;
        }
        else Pos++;
        _bits = b;
        _count = 8;
    }

    /// <summary>Drops the bits left in the current byte (before a restart marker).</summary>
    public void Align() => _count = 0;

    /// <summary>Skips to just after the next RSTn marker.</summary>
    public void Restart()
    {
        Align();
        while (Pos + 1 < _data.Length && !(_data[Pos] == 0xFF && _data[Pos + 1] is >= 0xD0 and <= 0xD7)) Pos++;
        if (Pos + 1 >= _data.Length) throw new CodecException($"{Codec}: a restart marker is missing");
        Pos += 2;
        AtMarker = false;
    }

    /// <summary>After the scan: the position of the next marker.</summary>
    public int End()
    {
        int p = Pos;
        while (p + 1 < _data.Length && !(_data[p] == 0xFF && _data[p + 1] != 0 && _data[p + 1] != 0xFF)) p++;
        return p;
    }
}
