using System.Buffers;
using System.IO.Compression;
using AkkaVna.Dicom.IO;

namespace AkkaVna.Dicom.Network.Dimse;

/// <summary>Small data sets carried by DIMSE messages (identifiers, responses), parsed from and written to memory.</summary>
public static class DimseDataSets
{
    public static DicomDataset Parse(ReadOnlyMemory<byte> bytes, DicomTransferSyntax syntax)
    {
        var ds = new DicomDataset();
        var builder = new DicomDatasetBuilder(ds, InMemoryLargeValues.Instance);
        if (syntax.IsDeflated)
        {
            using var inflated = new DeflateStream(new MemoryStream(bytes.ToArray()), CompressionMode.Decompress);
            var p = new DicomParser(builder, syntax);
            DicomFileReader.Drive(inflated, p, seekBase: null, maxBuffered: 16 * 1024 * 1024);
            return ds;
        }
        var parser = new DicomParser(builder, syntax, new DicomParserOptions { LargeValueThreshold = int.MaxValue });
        var status = parser.Parse(new ReadOnlySequence<byte>(bytes), isFinal: true, out _);
        if (status != DicomParseStatus.Completed) throw new DimseFormatException("the data set is incomplete");
        return ds;
    }

    public static byte[] Encode(DicomDataset dataSet, DicomTransferSyntax syntax)
    {
        using var ms = new MemoryStream();
        if (syntax.IsDeflated)
        {
            using (var deflate = new DeflateStream(ms, CompressionLevel.Fastest, leaveOpen: true))
                DicomWriter.WriteDataset(deflate, dataSet, DicomTransferSyntax.ExplicitVRLittleEndian);
            return ms.ToArray();
        }
        DicomWriter.WriteDataset(ms, dataSet, syntax);
        return ms.ToArray();
    }
}
