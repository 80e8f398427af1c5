using System.IO.Compression;
using AkkaVna.Dicom.IO;
using AkkaVna.Dicom.Network.Dimse;

namespace AkkaVna.Dicom.Network.Tests.Dimse;

/// <summary>Small data sets in DIMSE messages: parsed in their syntax, and a deflated one cannot inflate without bound.</summary>
public sealed class DimseDataSetsTests
{
    private static byte[] Encode(DicomDataset ds, DicomTransferSyntax syntax)
    {
        using var ms = new MemoryStream();
        DicomWriter.WriteDataset(ms, ds, syntax);
        return ms.ToArray();
    }

    private static byte[] Deflate(byte[] raw)
    {
        using var ms = new MemoryStream();
        using (var d = new DeflateStream(ms, CompressionLevel.SmallestSize, leaveOpen: true)) d.Write(raw);
        return ms.ToArray();
    }

    [Fact]
    public void An_identifier_parses_in_plain_and_deflated_syntaxes()
    {
        var ds = new DicomDataset().AddString(DicomTags.PatientID, DicomVR.LO, "P1").AddString(DicomTags.QueryRetrieveLevel, DicomVR.CS, "STUDY");
        var plain = Encode(ds, DicomTransferSyntax.ImplicitVRLittleEndian);
        Assert.Equal("P1", DimseDataSets.Parse(plain, DicomTransferSyntax.ImplicitVRLittleEndian).GetString(DicomTags.PatientID));
        var deflated = Deflate(Encode(ds, DicomTransferSyntax.ExplicitVRLittleEndian));
        var syntax = DicomTransferSyntax.Lookup(DicomUids.DeflatedExplicitVRLittleEndian)!;
        Assert.Equal("STUDY", DimseDataSets.Parse(deflated, syntax).GetString(DicomTags.QueryRetrieveLevel));
    }

    [Fact]
    public void A_deflate_bomb_is_refused_at_the_inflation_limit()
    {
        var bomb = Deflate(new byte[DimseDataSets.MaxInflatedLength + 1024 * 1024]);
        Assert.True(bomb.Length < 1_000_000, $"{bomb.Length} bytes"); // far below the 4 MB in-memory data set limit
        var e = Assert.Throws<DimseFormatException>(() => DimseDataSets.Parse(bomb, DicomTransferSyntax.Lookup(DicomUids.DeflatedExplicitVRLittleEndian)!));
        Assert.Contains("inflates beyond", e.Message);
    }

    [Fact]
    public void A_malformed_identifier_gives_a_DIMSE_format_error()
    {
        Assert.Throws<DimseFormatException>(() => DimseDataSets.Parse(new byte[] { 0x10, 0x00, 0x20, 0x00, 0xFF, 0xFF, 0x00, 0x10 }, DicomTransferSyntax.ImplicitVRLittleEndian));
    }
}
