using System.Buffers;
using System.IO.Compression;
using AkkaVna.Dicom.IO;

namespace AkkaVna.Dicom.Network.Dimse;

/// <summary>Small data sets carried by DIMSE messages (identifiers, responses), parsed from memory.</summary>
public static class DimseDataSets
{
    /// <summary>A deflated identifier inflates to at most this much (a small deflate stream can expand a thousandfold).</summary>
    public const int MaxInflatedLength = 16 * 1024 * 1024;

    public static DicomDataset Parse(ReadOnlyMemory<byte> bytes, DicomTransferSyntax syntax)
    {
        var ds = new DicomDataset();
        var builder = new DicomDatasetBuilder(ds, InMemoryLargeValues.Instance);
        if (syntax.IsDeflated)
        {
            using var deflate = new DeflateStream(new MemoryStream(bytes.ToArray()), CompressionMode.Decompress);
            var inflated = new MemoryStream();
            var chunk = new byte[64 * 1024];
            try
            {
                int n;
                while ((n = deflate.Read(chunk)) > 0)
                {
                    if (inflated.Length + n > MaxInflatedLength) throw new DimseFormatException($"the deflated data set inflates beyond {MaxInflatedLength} bytes");
                    inflated.Write(chunk, 0, n);
                }
            }
            catch (InvalidDataException e)
            {
                throw new DimseFormatException("corrupt deflate stream: " + e.Message);
            }
            bytes = inflated.GetBuffer().AsMemory(0, (int)inflated.Length);
        }
        var parser = new DicomParser(builder, syntax, new DicomParserOptions { LargeValueThreshold = int.MaxValue });
        try
        {
            var status = parser.Parse(new ReadOnlySequence<byte>(bytes), isFinal: true, out _);
            if (status != DicomParseStatus.Completed) throw new DimseFormatException("the data set is incomplete");
        }
        catch (DicomParseException e)
        {
            throw new DimseFormatException("malformed data set " + e.Message);
        }
        return ds;
    }
}
