using System.Buffers.Binary;
using System.IO.Compression;

namespace AkkaVna.Host.Tests.Serve;

/// <summary>A PNG reader for tests (8-bit grey or RGB, not interlaced; every row filter of PNG 1.2 undone), checking each chunk's CRC.</summary>
internal static class Png
{
    public sealed record Image(int Width, int Height, int Channels, byte[] Pixels);

    public static Image Read(byte[] png)
    {
        Assert.Equal(new byte[] { 0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A }, png[..8]);
        int width = 0, height = 0, channels = 0;
        using var idat = new MemoryStream();
        for (int at = 8; at < png.Length;)
        {
            int length = BinaryPrimitives.ReadInt32BigEndian(png.AsSpan(at));
            string type = System.Text.Encoding.ASCII.GetString(png, at + 4, 4);
            var data = png.AsSpan(at + 8, length);
            Assert.Equal(System.IO.Hashing.Crc32.HashToUInt32(png.AsSpan(at + 4, length + 4)), BinaryPrimitives.ReadUInt32BigEndian(png.AsSpan(at + 8 + length)));
            if (type == "IHDR")
            {
                width = BinaryPrimitives.ReadInt32BigEndian(data);
                height = BinaryPrimitives.ReadInt32BigEndian(data[4..]);
                Assert.Equal(8, data[8]);
                channels = data[9] switch { 0 => 1, 2 => 3, _ => throw new Xunit.Sdk.XunitException($"PNG colour type {data[9]}") };
                Assert.Equal(0, data[12]);
            }
            else if (type == "IDAT") idat.Write(data);
            at += 12 + length;
        }
        idat.Position = 0;
        using var z = new ZLibStream(idat, CompressionMode.Decompress);
        int row = width * channels;
        var raw = new byte[(row + 1) * height];
        z.ReadExactly(raw);
        var pixels = new byte[row * height];
        for (int y = 0; y < height; y++)
        {
            int filter = raw[y * (row + 1)];
            for (int x = 0; x < row; x++)
            {
                int a = x >= channels ? pixels[y * row + x - channels] : 0, b = y > 0 ? pixels[(y - 1) * row + x] : 0;
                int c = x >= channels && y > 0 ? pixels[(y - 1) * row + x - channels] : 0;
                int v = raw[y * (row + 1) + 1 + x];
                int p = a + b - c, pa = Math.Abs(p - a), pb = Math.Abs(p - b), pc = Math.Abs(p - c);
                v += filter switch { 0 => 0, 1 => a, 2 => b, 3 => (a + b) / 2, 4 => pa <= pb && pa <= pc ? a : pb <= pc ? b : c, _ => throw new Xunit.Sdk.XunitException($"PNG filter {filter}") };
                pixels[y * row + x] = (byte)v;
            }
        }
        return new Image(width, height, channels, pixels);
    }
}
