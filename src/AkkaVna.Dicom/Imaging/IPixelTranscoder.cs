namespace AkkaVna.Dicom.Imaging;

/// <summary>
/// Writes a data set's pixel data in another transfer syntax (decoding a compressed syntax, or compressing a native one):
/// what retrieval needs when a receiver does not take the stored syntax. The toolkit converts between native syntaxes
/// itself; a codec library implements this for the rest, and the composition root hands it to those who send.
/// </summary>
public interface IPixelTranscoder
{
    /// <summary>Whether a data set stored in <paramref name="from"/> can be written in <paramref name="to"/>.</summary>
    bool CanTranscode(DicomTransferSyntax from, DicomTransferSyntax to);

    /// <summary>
    /// Writes <paramref name="dataset"/> (read from a file in <paramref name="from"/>) in <paramref name="to"/>, without
    /// File Meta, a frame at a time. Throws <see cref="PixelDataException"/> with the reason when the pixel data cannot be.
    /// </summary>
    void WriteDataset(DicomDataset dataset, DicomTransferSyntax from, DicomTransferSyntax to, Stream output, CancellationToken cancellationToken);

    /// <summary>Whether frames stored in <paramref name="syntax"/> can be decoded to native frames.</summary>
    bool CanDecode(DicomTransferSyntax syntax);

    /// <summary>One encoded frame of <paramref name="dataset"/> (stored in <paramref name="syntax"/>) as its native frame (little endian, the data set's layout).</summary>
    byte[] DecodeFrame(DicomDataset dataset, DicomTransferSyntax syntax, ReadOnlySpan<byte> encoded);

    /// <summary>
    /// A rendered picture as a JPEG file (baseline, 4:4:4, <paramref name="quality"/> 1-100) for a viewer that asks for
    /// image/jpeg; throws <see cref="PixelDataException"/> when it cannot be made.
    /// </summary>
    byte[] EncodeJpeg(FrameRenderer.Picture picture, int quality);
}
