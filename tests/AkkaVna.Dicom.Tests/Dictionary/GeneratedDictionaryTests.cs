using AkkaVna.Dicom.Dictionary;
using AkkaVna.Testing;

namespace AkkaVna.Dicom.Tests.Dictionary;

/// <summary>The generated dictionary holds every row of the standard's tables, unchanged.</summary>
public sealed class GeneratedDictionaryTests
{
    [Fact]
    public void Should_hold_every_row_of_the_standard_tables()
    {
        Assert.Equal(Csv.Read(Path.Combine(Corpus.StandardRoot, "data_elements.csv")).Count, DicomDictionary.Entries.Count);
        Assert.Equal(5174, DicomDictionary.Entries.Count);
        Assert.Equal(1840, DicomUidRegistry.Entries.Count);
        Assert.Equal(63, DicomTransferSyntax.All.Count);
        Assert.Equal(4567, DicomPrivateDictionary.Count);
    }

    [Fact]
    public void Should_match_the_csv_row_by_row()
    {
        foreach (var r in Csv.Read(Path.Combine(Corpus.StandardRoot, "data_elements.csv")))
        {
            var e = DicomDictionary.Lookup(r["keyword"])!;
            Assert.Equal(Convert.ToUInt32(r["match_value"], 16), e.Tag);
            Assert.Equal(r["vr"], string.Join('/', e.ValueRepresentations.Select(v => v.Code())));
            Assert.Equal(r["vm"], e.VM);
            Assert.Equal(r["retired"] == "True", e.Retired);
        }
    }

    [Fact]
    public void Should_resolve_repeating_groups_and_implicit_vrs()
    {
        Assert.Equal("OverlayData", DicomDictionary.Lookup(new DicomTag(0x6002, 0x3000))!.Keyword);
        Assert.Equal(DicomVR.PN, DicomDictionary.ImplicitVR(DicomTags.PatientName));
        Assert.Equal(DicomVR.OW, DicomDictionary.ImplicitVR(DicomTags.PixelData));
        Assert.Equal(DicomVR.UL, DicomDictionary.ImplicitVR(new DicomTag(0x0008, 0x0000)));
        Assert.Equal(DicomVR.LO, DicomDictionary.ImplicitVR(new DicomTag(0x0029, 0x0010)));
        Assert.Equal(DicomVR.UN, DicomDictionary.ImplicitVR(new DicomTag(0x0029, 0x1010)));
        Assert.Equal(DicomVR.DS, DicomPrivateDictionary.Lookup("PHILIPS MR/PART", new DicomTag(0x0019, 0x1000))!.VR);
    }

    [Fact]
    public void Should_know_each_transfer_syntax_encoding()
    {
        var be = DicomTransferSyntax.Lookup("1.2.840.10008.1.2.2")!;
        Assert.True(be.IsBigEndian && be.IsExplicitVR && be.IsRetired && !be.IsEncapsulated);
        Assert.True(DicomTransferSyntax.Lookup("1.2.840.10008.1.2.1.99")!.IsDeflated);
        Assert.True(DicomTransferSyntax.Lookup("1.2.840.10008.1.2.4.80")!.IsEncapsulated);
        Assert.False(DicomTransferSyntax.ImplicitVRLittleEndian.IsExplicitVR);
        Assert.True(DicomTransferSyntax.Resolve("1.2.3.4.5").IsEncapsulated); // unknown: encapsulated explicit LE
        Assert.Equal("CT Image Storage", DicomUidRegistry.Lookup(DicomUids.CTImageStorage)!.Name);
        Assert.True(DicomUidRegistry.Lookup(DicomUids.CTImageStorage)!.IsStorageSopClass);
    }
}
