using System.Security.Cryptography;
using AkkaVna.Dicom.Buffers;
using AkkaVna.Dicom.IO;
using AkkaVna.Testing;

namespace AkkaVna.Dicom.Tests.IO;

/// <summary>
/// The spool (temporary copies of data sets): encrypted, a file holds no plaintext yet reads back whole and in any range
/// through the spool that wrote it, and not through another one (another process); an altered file fails. Every corpus
/// file written through an encrypted spool and parsed from it gives the same data set as the file itself.
/// </summary>
public sealed class SpoolTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    [Theory]
    [InlineData(0)]
    [InlineData(5)]
    [InlineData(64 * 1024)]
    [InlineData(3 * 64 * 1024 + 999)]
    public void An_encrypted_spool_file_holds_no_plaintext_and_reads_back_whole_and_in_ranges(int size)
    {
        var spool = Spool.Encrypted();
        byte[] plain = new byte[size];
        new Random(size).NextBytes(plain);
        if (size >= 4) "DICM"u8.CopyTo(plain);
        string path = _dir.File($"s{size}.dcm");
        using (var w = spool.Create(path))
        {
            for (int at = 0; at < size; at += 7_000) w.Write(plain, at, Math.Min(7_000, size - at));
        }
        byte[] stored = File.ReadAllBytes(path);
        if (size >= 4) Assert.True(stored.AsSpan().IndexOf("DICM"u8) < 0);
        var source = spool.Open(path);
        Assert.Equal(size, source.Length);
        using (var s = source.OpenRead())
        {
            var all = new byte[size];
            s.ReadExactly(all);
            Assert.Equal(plain, all);
            if (size > 70_000)
            {
                s.Position = 65_530;
                var part = new byte[20];
                s.ReadExactly(part);
                Assert.Equal(plain.AsSpan(65_530, 20).ToArray(), part);
            }
        }
        // Another spool (another process's key) cannot read it; an altered byte fails rather than reading wrong.
        if (size > 0)
        {
            using (var other = Spool.Encrypted().Open(path).OpenRead())
                Assert.Throws<InvalidDataException>(() => other.ReadExactly(new byte[Math.Min(size, 10)]));
            stored[40] ^= 1;
            File.WriteAllBytes(path, stored);
            using var altered = spool.Open(path).OpenRead();
            Assert.Throws<InvalidDataException>(() => altered.ReadExactly(new byte[Math.Min(size, 10)]));
        }
    }

    public static TheoryData<string> CorpusFiles() => Corpus.Files(e => e.DcmdumpAccepts);

    [Theory]
    [MemberData(nameof(CorpusFiles))]
    public void A_corpus_file_spooled_encrypted_parses_as_the_file_itself_does(string name)
    {
        var entry = Corpus.Get(name);
        var spool = Spool.Encrypted();
        string path = _dir.File("corpus.spool");
        using (var w = spool.Create(path))
        using (var from = File.OpenRead(entry.Path))
            from.CopyTo(w);
        DicomFile direct;
        try
        {
            direct = DicomFile.Open(entry.Path);
        }
        catch (DicomParseException)
        {
            Assert.Throws<DicomParseException>(() => DicomFile.Open(spool.Open(path), new DicomReadOptions { TempDirectory = _dir.Path, Spool = spool }).Dispose());
            return;
        }
        using (direct)
        using (var spooled = DicomFile.Open(spool.Open(path), new DicomReadOptions { TempDirectory = _dir.Path, Spool = spool }))
            DatasetAssert.Equal(direct.Dataset, spooled.Dataset);
    }
}
