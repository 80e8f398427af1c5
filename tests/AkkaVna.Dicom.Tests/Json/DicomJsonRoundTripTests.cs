using AkkaVna.Dicom.IO;
using AkkaVna.Dicom.Json;
using AkkaVna.Testing;

namespace AkkaVna.Dicom.Tests.Json;

/// <summary>DICOM JSON written by AkkaVna reads back to an equal dataset (PS3.18 Annex F both ways).</summary>
public sealed class DicomJsonRoundTripTests
{
    [Theory]
    [InlineData("pydicom/MR_small.dcm")]
    [InlineData("pydicom/test-SR.dcm")]
    [InlineData("pydicom/rtdose.dcm")]
    [InlineData("dcmjs/structured_report.dcm")]
    [InlineData("pydicom/MR_small_RLE.dcm")]
    [InlineData("pydicom/charset/chrX1.dcm")]
    [InlineData("pydicom/charset/chrRuss.dcm")]
    public void Should_read_back_what_it_wrote(string file)
    {
        using var source = DicomFile.Open(Corpus.Get(file).Path);
        string json = DicomJsonWriter.ToJson(source.Dataset);
        var back = DicomJsonReader.Read(json);
        // Text is re-encoded, so compare what the model carries: the JSON of the read-back dataset.
        Assert.Equal(json, DicomJsonWriter.ToJson(back));
    }

    [Fact]
    public void Should_resolve_bulk_data_uris_through_the_resolver()
    {
        using var source = DicomFile.Open(Corpus.Get("pydicom/MR_small.dcm").Path);
        var options = new DicomJsonOptions { BinaryMode = DicomJsonBinaryMode.BulkDataUri, BulkDataUri = (path, _) => "bulk/" + path };
        string json = DicomJsonWriter.ToJson(source.Dataset, options);
        Assert.Contains("\"BulkDataURI\":\"bulk/7FE00010\"", json);
        var back = DicomJsonReader.Read(json, uri => ((DicomElement)source.Dataset[new DicomTag(uint.Parse(uri[5..], System.Globalization.NumberStyles.HexNumber, null))]!).Value);
        Assert.True(DatasetAssert.SameBytes(((DicomElement)source.Dataset[DicomTags.PixelData]!).Value, ((DicomElement)back[DicomTags.PixelData]!).Value));
    }

    [Theory]
    [InlineData("[]", "$")]
    [InlineData("{\"0010\":{\"vr\":\"PN\"}}", "$.0010")]
    [InlineData("{\"00100010\":{\"vr\":\"XX\"}}", "$.00100010")]
    [InlineData("{\"00280010\":{\"vr\":\"US\",\"Value\":[\"a\"]}}", "$.00280010")]
    [InlineData("{\"7FE00010\":{\"vr\":\"OB\",\"InlineBinary\":\"@@@\"}}", "$.7FE00010")]
    public void Should_name_the_path_of_a_malformed_json_attribute(string json, string path)
    {
        var e = Assert.Throws<DicomJsonException>(() => DicomJsonReader.Read(json));
        Assert.Equal(path, e.Path);
    }
}
