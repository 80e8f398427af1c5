using AkkaVna.Core.Model;
using AkkaVna.Dicom.Buffers;
using AkkaVna.Dicom.IO;
using AkkaVna.Testing;

namespace AkkaVna.Core.Tests.Model;

public sealed class InstanceHeaderTests
{
    /// <summary>
    /// Ingest reads the header from the elements the streaming inspector kept; recovery and tier moves read it from the
    /// stored file. Across the corpus both give the same header, Institution Name and the procedure codes included.
    /// </summary>
    [Fact]
    public void The_header_kept_while_streaming_is_the_header_read_from_the_file_across_the_corpus()
    {
        int compared = 0, withInstitution = 0, withProcedures = 0;
        foreach (var entry in Corpus.Entries)
        {
            InstanceHeader fromFile;
            try
            {
                fromFile = InstanceHeader.Read(new FileSource(entry.Path));
            }
            catch (Exception e) when (e is InvalidInstanceException or AkkaVna.Dicom.IO.DicomParseException or IOException or InvalidDataException)
            {
                continue; // not an instance the archive takes
            }
            DatasetInspection inspection;
            try
            {
                using var fs = File.OpenRead(entry.Path);
                inspection = DatasetInspector.InspectFile(fs, new DatasetInspectorOptions { Keep = InstanceHeader.IndexedTags.Contains });
            }
            catch (AkkaVna.Dicom.IO.DicomParseException)
            {
                continue; // cut short or malformed past the header: ingest refuses it
            }
            var streamed = InstanceHeader.From(inspection.Kept, fromFile.TransferSyntaxUid);
            Assert.True(fromFile == streamed, $"{entry.File}: {fromFile} != {streamed}");
            compared++;
            if (fromFile.InstitutionName is not null) withInstitution++;
            if (fromFile.ProcedureCodes is not null) withProcedures++;
        }
        // The corpus has institutions in a third of its files and two Procedure Code Sequences: the comparison covered them.
        Assert.True(compared >= 90, $"only {compared} corpus files compared");
        Assert.True(withInstitution >= 30, $"{withInstitution} with an institution");
        Assert.True(withProcedures >= 2, $"{withProcedures} with procedure codes");
    }
}
