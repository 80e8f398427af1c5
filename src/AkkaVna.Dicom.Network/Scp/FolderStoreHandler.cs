using System.Buffers;
using System.Security.Cryptography;
using System.Text;
using AkkaVna.Dicom.IO;
using AkkaVna.Dicom.Network.Dimse;

namespace AkkaVna.Dicom.Network.Scp;

/// <summary>
/// Writes each received instance as a Part 10 file in a folder, as dcmtk's storescp does: File Meta from the command and
/// the presentation context, then the data set bytes exactly as they arrived. The file is written under a temporary name
/// and renamed when complete, so a half-received instance never appears; a resend replaces the file.
/// </summary>
public sealed class FolderStoreHandler(string folder, bool flushToDisk = false) : ICStoreHandler
{
    public string Folder { get; } = Directory.CreateDirectory(folder).FullName;

    /// <summary>
    /// The file name for a SOP Instance UID: the UID itself when it is a valid UID (digits and dots, at most 64
    /// characters — nothing else reaches a path), otherwise a hash of it.
    /// </summary>
    public static string FileNameFor(string sopInstanceUid) =>
        (IsValidUid(sopInstanceUid) ? sopInstanceUid : "uid-" + Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(sopInstanceUid)))[..40]) + ".dcm";

    public static bool IsValidUid(string uid) => Dictionary.DicomUidRegistry.IsWellFormed(uid);

    public ValueTask<IStoreSink> BeginAsync(StoreRequest request, CancellationToken cancellationToken)
    {
        string final = Path.Combine(Folder, FileNameFor(request.SopInstanceUid));
        string temp = Path.Combine(Folder, "." + Guid.NewGuid().ToString("N") + ".part");
        var fs = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 0);
        try
        {
            fs.Write(Part10Header.For(request));
        }
        catch
        {
            fs.Dispose();
            File.Delete(temp);
            throw;
        }
        return ValueTask.FromResult<IStoreSink>(new Sink(fs, temp, final, flushToDisk, new DatasetInspector(request.TransferSyntax)));
    }

    private sealed class Sink(FileStream fs, string temp, string final, bool flush, DatasetInspector inspector) : IStoreSink
    {
        private bool _done;
        private long _length;
        private string? _malformed;

        public ValueTask WriteAsync(ReadOnlySequence<byte> data, CancellationToken cancellationToken)
        {
            foreach (var segment in data) fs.Write(segment.Span);
            _length += data.Length;
            if (_malformed is null)
            {
                try
                {
                    inspector.Write(data);
                }
                catch (DicomParseException e)
                {
                    _malformed = $"malformed: {e.Reason} (byte {e.Offset})";
                }
            }
            return ValueTask.CompletedTask;
        }

        public ValueTask<DimseResult> CompleteAsync(CancellationToken cancellationToken)
        {
            if (_length == 0) return ValueTask.FromResult(new DimseResult(DimseStatus.StoreCannotUnderstand, "the data set is empty"));
            if (_malformed is null)
            {
                try
                {
                    inspector.Complete();
                }
                catch (DicomParseException e)
                {
                    _malformed = $"{e.Reason} (byte {e.Offset})";
                }
            }
            if (_malformed is not null) return ValueTask.FromResult(new DimseResult(DimseStatus.StoreCannotUnderstand, _malformed));
            fs.Flush(flush);
            fs.Dispose();
            File.Move(temp, final, overwrite: true);
            _done = true;
            return ValueTask.FromResult(DimseResult.Success);
        }

        public ValueTask DisposeAsync()
        {
            inspector.Dispose();
            fs.Dispose();
            if (!_done) File.Delete(temp);
            return ValueTask.CompletedTask;
        }
    }
}
