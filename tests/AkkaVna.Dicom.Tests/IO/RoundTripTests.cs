using AkkaVna.Dicom.IO;
using AkkaVna.Testing;

namespace AkkaVna.Dicom.Tests.IO;

/// <summary>Read -> write (same transfer syntax, and explicit VR little endian) -> read gives an equal dataset, and dcmdump accepts every written file.</summary>
public sealed class RoundTripTests
{
    public static TheoryData<string> Readable => Corpus.Files(e => e.DcmdumpAccepts);

    [Theory]
    [MemberData(nameof(Readable))]
    public void Should_round_trip_in_the_same_syntax_and_in_explicit_little_endian(string file)
    {
        using var tmp = new TempDir();
        using var source = DicomFile.Open(Corpus.Get(file).Path);
        var targets = new List<DicomTransferSyntax> { source.TransferSyntax };
        if (!source.TransferSyntax.IsEncapsulated && source.TransferSyntax != DicomTransferSyntax.ExplicitVRLittleEndian)
            targets.Add(DicomTransferSyntax.ExplicitVRLittleEndian);
        foreach (var ts in targets)
        {
            string written = tmp.File(ts.Keyword + ".dcm");
            DicomWriter.WriteFile(written, source.Dataset, ts, source.FileMetaInfo);
            using var back = DicomFile.Open(written);
            Assert.Equal(ts.Uid, back.FileMetaInfo.GetString(DicomTags.TransferSyntaxUID));
            Assert.Equal(DicomImplementation.ClassUid, back.FileMetaInfo.GetString(DicomTags.ImplementationClassUID));
            Assert.Equal(ts, back.TransferSyntax);
            DatasetAssert.Equal(source.Dataset, back.Dataset);

            var dump = Tool.Run(Tool.Dcmtk("dcmdump"), ["-q", "+E", written]);
            Assert.True(dump.ExitCode == 0, $"dcmdump rejects {file} written as {ts}: {dump.StdErr}");
        }
    }

    [Theory]
    [InlineData("pydicom/MR_small.dcm")]
    [InlineData("dicomParser/CT1_UNC.explicit_little_endian.dcm")]
    [InlineData("pydicom/test-SR.dcm")]
    public void Should_convert_between_every_uncompressed_syntax(string file)
    {
        using var tmp = new TempDir();
        using var source = DicomFile.Open(Corpus.Get(file).Path);
        DicomTransferSyntax[] all = [DicomTransferSyntax.ImplicitVRLittleEndian, DicomTransferSyntax.ExplicitVRLittleEndian,
            DicomTransferSyntax.ExplicitVRBigEndian, DicomTransferSyntax.DeflatedExplicitVRLittleEndian];
        foreach (var from in all)
        {
            string a = tmp.File("a.dcm");
            DicomWriter.WriteFile(a, source.Dataset, from);
            using var mid = DicomFile.Open(a);
            foreach (var to in all)
            {
                string b = tmp.File("b.dcm");
                DicomWriter.WriteFile(b, mid.Dataset, to);
                using var back = DicomFile.Open(b);
                // Implicit VR loses the VR on the wire: values must still be equal, VRs come back from the dictionary.
                DatasetAssert.Equal(source.Dataset, back.Dataset, ignoreVR: from == DicomTransferSyntax.ImplicitVRLittleEndian || to == DicomTransferSyntax.ImplicitVRLittleEndian);
                var dump = Tool.Run(Tool.Dcmtk("dcmdump"), ["-q", "+E", b]);
                Assert.True(dump.ExitCode == 0, $"dcmdump rejects {file} {from.Keyword} -> {to.Keyword}: {dump.StdErr}");
            }
        }
    }

    [Fact]
    public void Should_refuse_to_write_encapsulated_pixel_data_in_a_native_syntax()
    {
        using var source = DicomFile.Open(Corpus.Get("pydicom/MR_small_RLE.dcm").Path);
        using var ms = new MemoryStream();
        var e = Assert.Throws<InvalidOperationException>(() => DicomWriter.WriteFile(ms, source.Dataset, DicomTransferSyntax.ExplicitVRLittleEndian));
        Assert.Contains("encapsulated", e.Message);
    }
}
