using System.Buffers.Binary;
using System.Globalization;
using System.IO.Compression;

namespace AkkaVna.Dicom.Imaging;

/// <summary>
/// A native frame as a picture for a viewer (WADO-RS <c>/rendered</c> and <c>/thumbnail</c>, PS3.18 8.3.5 and 9.5):
/// monochrome through the Modality LUT (Rescale Slope and Intercept) and the VOI window (the first Window Center and
/// Width of the header, or the frame's own range when it has none; PS3.3 C.11.2.1.2's linear function), MONOCHROME1
/// inverted, to 8-bit grey; RGB and YBR_FULL to 8-bit colour. Optionally scaled down to fit a viewport (box filter).
/// Written as PNG (zlib from the framework, CRC-32 here).
/// </summary>
public static class FrameRenderer
{
    /// <summary>The picture: width, height, channels (1 grey, 3 RGB), 8-bit samples row by row.</summary>
    public sealed record Picture(int Width, int Height, int Channels, byte[] Pixels);

    /// <summary>
    /// Renders one native frame of <paramref name="dataset"/> (little endian, the data set's layout); <paramref name="decodedAsRgb"/>:
    /// the frame was decoded to RGB by pixel (lossy JPEG colour), whatever the data set says. Throws <see cref="PixelDataException"/> for what it cannot show.
    /// </summary>
    public static Picture Render(DicomDataset dataset, byte[] frame, bool decodedAsRgb = false)
    {
        int rows = dataset.GetUInt16(DicomTags.Rows) ?? 0, columns = dataset.GetUInt16(DicomTags.Columns) ?? 0;
        int spp = dataset.GetUInt16(DicomTags.SamplesPerPixel) ?? 1, allocated = dataset.GetUInt16(DicomTags.BitsAllocated) ?? 0;
        int stored = dataset.GetUInt16(DicomTags.BitsStored) ?? allocated;
        bool signed = dataset.GetUInt16(DicomTags.PixelRepresentation) == 1;
        int planar = decodedAsRgb ? 0 : dataset.GetUInt16(DicomTags.PlanarConfiguration) ?? 0;
        string photometric = decodedAsRgb && spp == 3 ? "RGB" : dataset.GetString(DicomTags.PhotometricInterpretation) ?? "MONOCHROME2";
        if (rows < 1 || columns < 1 || allocated is not (8 or 16) || stored < 1 || stored > allocated)
            throw new PixelDataException($"a {columns} x {rows} frame of Bits Allocated {allocated}, Bits Stored {stored} is not rendered");
        int nb = allocated / 8;
        long pixels = (long)rows * columns;
        if (frame.Length < pixels * spp * nb) throw new PixelDataException($"the frame has {frame.Length} bytes, fewer than {columns} x {rows} x {spp} samples");
        int shift = 32 - stored;
        int Sample(long i)
        {
            uint v = nb == 1 ? frame[i] : BinaryPrimitives.ReadUInt16LittleEndian(frame.AsSpan((int)(i * 2)));
            return signed ? (int)(v << shift) >> shift : (int)(v << shift >>> shift);
        }
        if (spp == 3)
        {
            if (photometric is not ("RGB" or "YBR_FULL")) throw new PixelDataException($"colour frames in {photometric} are not rendered (RGB and YBR_FULL are)");
            var rgb = new byte[pixels * 3];
            int down = Math.Max(0, stored - 8);
            for (long p = 0; p < pixels; p++)
            {
                int a = Sample(planar == 0 ? p * 3 : p) >> down, b = Sample(planar == 0 ? p * 3 + 1 : pixels + p) >> down, c = Sample(planar == 0 ? p * 3 + 2 : 2 * pixels + p) >> down;
                if (photometric == "YBR_FULL")
                {
                    // PS3.3 C.7.6.3.1.2: YBR_FULL to RGB.
                    double y = a, cb = b - 128, cr = c - 128;
                    (a, b, c) = ((int)Math.Round(y + 1.402 * cr), (int)Math.Round(y - 0.344136 * cb - 0.714136 * cr), (int)Math.Round(y + 1.772 * cb));
                }
                rgb[p * 3] = (byte)Math.Clamp(a, 0, 255);
                rgb[p * 3 + 1] = (byte)Math.Clamp(b, 0, 255);
                rgb[p * 3 + 2] = (byte)Math.Clamp(c, 0, 255);
            }
            return new Picture(columns, rows, 3, rgb);
        }
        if (spp != 1 || photometric is not ("MONOCHROME1" or "MONOCHROME2"))
            throw new PixelDataException($"frames in {photometric} with {spp} samples per pixel are not rendered");
        double slope = Number(dataset, DicomTags.RescaleSlope) ?? 1, intercept = Number(dataset, DicomTags.RescaleIntercept) ?? 0;
        double? center = Number(dataset, DicomTags.WindowCenter), width = Number(dataset, DicomTags.WindowWidth);
        if (center is null || width is null or < 1)
        {
            // No window in the header: the frame's own range.
            double min = double.MaxValue, max = double.MinValue;
            for (long p = 0; p < pixels; p++)
            {
                double v = Sample(p) * slope + intercept;
                min = Math.Min(min, v);
                max = Math.Max(max, v);
            }
            width = Math.Max(1, max - min + 1);
            center = min + (max - min + 1) / 2;
        }
        var grey = new byte[pixels];
        double c0 = center.Value - 0.5, w0 = width.Value - 1;
        bool invert = photometric == "MONOCHROME1";
        for (long p = 0; p < pixels; p++)
        {
            double x = Sample(p) * slope + intercept;
            // PS3.3 C.11.2.1.2.1: the linear VOI function.
            double y = x <= c0 - w0 / 2 ? 0 : x > c0 + w0 / 2 ? 255 : ((x - c0) / Math.Max(w0, 1) + 0.5) * 255;
            byte g = (byte)Math.Clamp((int)Math.Round(y), 0, 255);
            grey[p] = invert ? (byte)(255 - g) : g;
        }
        return new Picture(columns, rows, 1, grey);
    }

    private static double? Number(DicomDataset ds, DicomTag tag) =>
        ds.GetString(tag)?.Split('\\')[0].Trim() is { Length: > 0 } s && double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out var v) ? v : null;

    /// <summary>The picture scaled down (box filter) to fit <paramref name="maxWidth"/> x <paramref name="maxHeight"/>, keeping its aspect; never scaled up.</summary>
    public static Picture Fit(Picture picture, int maxWidth, int maxHeight)
    {
        double scale = Math.Min(1, Math.Min((double)maxWidth / picture.Width, (double)maxHeight / picture.Height));
        if (scale >= 1) return picture;
        int w = Math.Max(1, (int)(picture.Width * scale)), h = Math.Max(1, (int)(picture.Height * scale)), ch = picture.Channels;
        var result = new byte[w * h * ch];
        for (int y = 0; y < h; y++)
        {
            int y0 = y * picture.Height / h, y1 = Math.Max(y0 + 1, (y + 1) * picture.Height / h);
            for (int x = 0; x < w; x++)
            {
                int x0 = x * picture.Width / w, x1 = Math.Max(x0 + 1, (x + 1) * picture.Width / w);
                for (int c = 0; c < ch; c++)
                {
                    long sum = 0;
                    for (int yy = y0; yy < y1; yy++)
                        for (int xx = x0; xx < x1; xx++) sum += picture.Pixels[((long)yy * picture.Width + xx) * ch + c];
                    result[(y * w + x) * ch + c] = (byte)(sum / ((y1 - y0) * (x1 - x0)));
                }
            }
        }
        return new Picture(w, h, ch, result);
    }

    /// <summary>Writes the picture as a PNG (8-bit grey or RGB, no interlace, filter 0 on every row).</summary>
    public static void WritePng(Picture picture, Stream output)
    {
        output.Write([0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A]);
        Span<byte> ihdr = stackalloc byte[13];
        BinaryPrimitives.WriteInt32BigEndian(ihdr, picture.Width);
        BinaryPrimitives.WriteInt32BigEndian(ihdr[4..], picture.Height);
        ihdr[8] = 8;
        ihdr[9] = (byte)(picture.Channels == 3 ? 2 : 0);
        Chunk(output, "IHDR"u8, ihdr);
        using var data = new MemoryStream();
        using (var z = new ZLibStream(data, CompressionLevel.Fastest, leaveOpen: true))
        {
            int row = picture.Width * picture.Channels;
            for (int y = 0; y < picture.Height; y++)
            {
                z.WriteByte(0);
                z.Write(picture.Pixels, y * row, row);
            }
        }
        Chunk(output, "IDAT"u8, data.GetBuffer().AsSpan(0, (int)data.Length));
        Chunk(output, "IEND"u8, []);
    }

    private static void Chunk(Stream output, ReadOnlySpan<byte> type, ReadOnlySpan<byte> data)
    {
        Span<byte> length = stackalloc byte[4];
        BinaryPrimitives.WriteInt32BigEndian(length, data.Length);
        output.Write(length);
        output.Write(type);
        output.Write(data);
        uint crc = Crc32.Update(Crc32.Update(0xFFFFFFFF, type), data) ^ 0xFFFFFFFF;
        Span<byte> c = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(c, crc);
        output.Write(c);
    }

    /// <summary>The CRC-32 of PNG chunks (ISO 3309, polynomial EDB88320, table driven).</summary>
    private static class Crc32
    {
        private static readonly uint[] Table = Build();

        private static uint[] Build()
        {
            var t = new uint[256];
            for (uint n = 0; n < 256; n++)
            {
                uint c = n;
                for (int k = 0; k < 8; k++) c = (c & 1) != 0 ? 0xEDB88320 ^ (c >> 1) : c >> 1;
                t[n] = c;
            }
            return t;
        }

        public static uint Update(uint crc, ReadOnlySpan<byte> data)
        {
            foreach (var b in data) crc = Table[(crc ^ b) & 0xFF] ^ (crc >> 8);
            return crc;
        }
    }
}
