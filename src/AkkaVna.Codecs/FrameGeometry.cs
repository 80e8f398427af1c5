namespace AkkaVna.Codecs;

/// <summary>
/// What a codec needs to know of one frame (PS3.3 C.7.6.3, the Image Pixel module): its size, samples and how they are
/// laid out in the native (uncompressed, little endian) form it encodes from or decodes to.
/// </summary>
/// <param name="PlanarConfiguration">0: colour-by-pixel (R1 G1 B1 R2...), 1: colour-by-plane (R1 R2... G1 G2... B1 B2...); ignored for one sample.</param>
public sealed record FrameGeometry(int Rows, int Columns, int SamplesPerPixel, int BitsAllocated, int BitsStored, bool Signed, int PlanarConfiguration = 0)
{
    public int BytesPerSample => (BitsAllocated + 7) / 8;

    public long Pixels => (long)Rows * Columns;

    /// <summary>The native frame's length in bytes (whole bytes per sample; Bits Allocated 1 is not a codec's input).</summary>
    public long FrameBytes => Pixels * SamplesPerPixel * BytesPerSample;

    /// <summary>Throws <see cref="CodecException"/> unless the geometry is one an image can have.</summary>
    public void Validate()
    {
        if (Rows is < 1 or > 65535 || Columns is < 1 or > 65535) throw new CodecException($"a frame of {Rows} x {Columns} pixels");
        if (SamplesPerPixel is not (1 or 3 or 4)) throw new CodecException($"Samples per Pixel {SamplesPerPixel}");
        if (BitsAllocated is not (8 or 16 or 32)) throw new CodecException($"Bits Allocated {BitsAllocated} (8, 16 or 32 can be encoded)");
        if (BitsStored < 1 || BitsStored > BitsAllocated) throw new CodecException($"Bits Stored {BitsStored} with Bits Allocated {BitsAllocated}");
        if (PlanarConfiguration is not (0 or 1)) throw new CodecException($"Planar Configuration {PlanarConfiguration}");
    }
}

/// <summary>Pixel data a codec cannot encode or decode, with why (never a crash or an overrun).</summary>
public sealed class CodecException(string reason) : Exception(reason)
{
    public string Reason => Message;
}
