using AkkaVna.Dicom;
using Xunit;
using System.Security.Cryptography;
using AkkaVna.Dicom.Buffers;

namespace AkkaVna.Testing;

/// <summary>Dataset equality for round trips: same items, VRs, values (hashes for large ones), sequences and fragments.</summary>
public static class DatasetAssert
{
    public static void Equal(DicomDataset expected, DicomDataset actual, bool ignoreVR = false) =>
        Assert.True(Differences(expected, actual, "", ignoreVR) is var d && d.Count == 0, string.Join("\n", Differences(expected, actual, "", ignoreVR).Take(20)));

    /// <param name="trimStringPadding">
    /// Compare string values without their trailing padding (PS3.5 6.2: trailing spaces are insignificant in most
    /// string VRs): for data that another toolkit re-encoded (dcmtk trims and re-pads when it sends).
    /// </param>
    public static List<string> Differences(DicomDataset a, DicomDataset b, string path, bool ignoreVR, bool trimStringPadding = false)
    {
        var diffs = new List<string>();
        // Group lengths (retired outside group 0002) are not written, so not compared.
        var ea = a.Where(i => !i.Tag.IsGroupLength && i.Tag.Group != 0x0002).ToList();
        var eb = b.Where(i => !i.Tag.IsGroupLength && i.Tag.Group != 0x0002).ToList();
        var tagsA = ea.Select(i => i.Tag).ToList();
        var tagsB = eb.Select(i => i.Tag).ToList();
        if (!tagsA.SequenceEqual(tagsB))
        {
            diffs.Add($"{path}: tags differ: only expected {string.Join(",", tagsA.Except(tagsB))}; only actual {string.Join(",", tagsB.Except(tagsA))}");
            return diffs;
        }
        for (int i = 0; i < ea.Count; i++)
        {
            var x = ea[i];
            var y = eb[i];
            string at = path + x.Tag;
            if (!ignoreVR && x.VR != y.VR) diffs.Add($"{at}: VR {x.VR} vs {y.VR}");
            switch (x, y)
            {
                case (DicomElement p, DicomElement q):
                    if (trimStringPadding && p.VR.IsString() && p.VR != DicomVR.UI && p.Value.IsMemory && q.Value.IsMemory)
                    {
                        if (!p.Value.Memory.Span.TrimEnd((byte)' ').TrimEnd((byte)0).SequenceEqual(q.Value.Memory.Span.TrimEnd((byte)' ').TrimEnd((byte)0)))
                            diffs.Add($"{at}: values differ ({p.Length} vs {q.Length} bytes)");
                    }
                    else if (!SameBytes(p.Value, q.Value)) diffs.Add($"{at}: values differ ({p.Length} vs {q.Length} bytes)");
                    break;
                case (DicomSequence p, DicomSequence q):
                    if (p.Items.Count != q.Items.Count) { diffs.Add($"{at}: {p.Items.Count} vs {q.Items.Count} items"); break; }
                    for (int k = 0; k < p.Items.Count; k++) diffs.AddRange(Differences(p.Items[k], q.Items[k], $"{at}[{k}].", ignoreVR, trimStringPadding));
                    break;
                case (DicomFragmentSequence p, DicomFragmentSequence q):
                    if (!SameBytes(p.OffsetTable, q.OffsetTable)) diffs.Add($"{at}: offset tables differ");
                    if (p.Fragments.Count != q.Fragments.Count) diffs.Add($"{at}: {p.Fragments.Count} vs {q.Fragments.Count} fragments");
                    else for (int k = 0; k < p.Fragments.Count; k++) if (!SameBytes(p.Fragments[k], q.Fragments[k])) diffs.Add($"{at}: fragment {k} differs");
                    break;
                default:
                    diffs.Add($"{at}: {x.GetType().Name} vs {y.GetType().Name}");
                    break;
            }
        }
        return diffs;
    }

    /// <summary>Equal bytes; a value of odd length equals itself padded with one byte (the writer pads to even, PS3.5 7.1.1).</summary>
    public static bool SameBytes(IByteBuffer a, IByteBuffer b)
    {
        if (a.Length == b.Length) return Hash(a, a.Length).SequenceEqual(Hash(b, b.Length));
        long shorter = Math.Min(a.Length, b.Length);
        if (Math.Abs(a.Length - b.Length) != 1 || (shorter & 1) == 0) return false;
        return Hash(a, shorter).SequenceEqual(Hash(b, shorter));
    }

    private static byte[] Hash(IByteBuffer buffer, long length)
    {
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        using var sink = new HashSink(sha, length);
        buffer.CopyTo(sink);
        return sha.GetHashAndReset();
    }

    private sealed class HashSink(IncrementalHash hash, long limit) : Stream
    {
        private long _written;
        public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));
        public override void Write(ReadOnlySpan<byte> data)
        {
            int take = (int)Math.Max(0, Math.Min(data.Length, limit - _written));
            hash.AppendData(data[..take]);
            _written += data.Length;
        }
        public override bool CanRead => false;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Length => _written;
        public override long Position { get => _written; set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
    }
}
