using AkkaVna.Codecs;
using AkkaVna.Core.Compression;
using AkkaVna.Core.Model;
using AkkaVna.Core.Ports;
using AkkaVna.Dicom;
using AkkaVna.Dicom.IO;

namespace AkkaVna.Host;

/// <summary>The compression port over the codecs: an archived Part 10 blob written in a lossless syntax by <see cref="DicomTranscoder"/>.</summary>
public sealed class CodecCompressor(string? tempDirectory, AkkaVna.Dicom.Buffers.Spool? spool = null) : IInstanceCompressor
{
    public bool CanCompressTo(string transferSyntaxUid) => DicomTranscoder.CanEncode(transferSyntaxUid);

    public CompressedInstance Compress(IBlobContent source, string transferSyntaxUid, Stream output, CancellationToken cancellationToken)
    {
        var to = DicomTransferSyntax.Lookup(transferSyntaxUid) ?? throw new CompressionRefusedException($"unknown transfer syntax {transferSyntaxUid}");
        DicomFile file;
        try
        {
            file = DicomFile.Open(source, new DicomReadOptions { TempDirectory = tempDirectory, Spool = spool ?? AkkaVna.Dicom.Buffers.Spool.Plain });
        }
        catch (DicomParseException e)
        {
            throw new CompressionRefusedException($"the archived instance cannot be read: {e.Message}");
        }
        using (file)
        {
            try
            {
                using var buffered = new BufferedStream(output, 256 * 1024);
                DicomTranscoder.WriteFile(file.Dataset, file.FileMetaInfo, file.TransferSyntax, to, buffered, cancellationToken);
                buffered.Flush();
            }
            catch (CodecException e)
            {
                throw new CompressionRefusedException(e.Reason);
            }
            var header = InstanceHeader.From(file.Dataset, transferSyntaxUid);
            return new CompressedInstance(header, file.FileMetaInfo.GetString(DicomTags.SourceApplicationEntityTitle));
        }
    }
}
