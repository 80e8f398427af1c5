using System.Buffers.Binary;
using System.Globalization;
using System.Security.Cryptography;
using System.Text.RegularExpressions;
using AkkaVna.Dicom.Buffers;
using AkkaVna.Dicom.Imaging;
using AkkaVna.Dicom.IO;
using AkkaVna.Testing;

namespace AkkaVna.Dicom.Tests.Imaging;

/// <summary>
/// Frames of every corpus file with pixel data, checked against the value itself and against dcmtk (dcmdump +W writes
/// each binary value, or each fragment, to a file); hand-built datasets for the layouts the corpus lacks (Extended
/// Offset Table, byte-unaligned 1-bit frames in a file, frames of several fragments) and for every error.
/// </summary>
public sealed partial class PixelDataFramesTests
{
    /// <summary>Corpus files whose pixel data cannot be split, each with the phrase of the reason it must give.</summary>
    public static readonly IReadOnlyDictionary<string, string> Unsplittable = new Dictionary<string, string>
    {
        // A test dataset of private sequences that ends with a 2-byte Pixel Data and no Image Pixel module at all.
        ["pydicom/nested_priv_SQ.dcm"] = "Rows (0028,0010) is missing",
        ["pydicom/meta_missing_tsyntax.dcm"] = "Rows (0028,0010) is missing",
        // A CT header whose Pixel Data has length 0 (fo-dicom issue 1146 is about its private creators).
        ["fo-dicom/GH1146.dcm"] = "is empty",
        // Number of Frames deliberately '1A' (pydicom's bad-VR sample): how many frames there are is unknown.
        ["pydicom/badVR.dcm"] = "Number of Frames (0028,0008) is '1A'",
    };

    public static TheoryData<string> All => Corpus.Files(_ => true);
    public static TheoryData<string> Accepted => Corpus.Files(e => e.DcmdumpAccepts);

    [Theory]
    [MemberData(nameof(All))]
    public async Task Every_corpus_image_splits_into_Number_of_Frames_frames_that_cover_its_pixel_data(string file)
    {
        // The default threshold keeps small values in memory; 1 KiB puts fragments and offset tables in the file too.
        foreach (int threshold in new[] { new DicomReadOptions().LargeValueThreshold, 1024 })
        {
            DicomFile f;
            try
            {
                f = DicomFile.Open(Corpus.Get(file).Path, new DicomReadOptions { LargeValueThreshold = threshold });
            }
            catch (DicomParseException)
            {
                return; // unreadable files are MalformedInputTests' subject
            }
            using (f)
            {
                var ds = f.Dataset;
                if (!PixelDataFrames.HasPixelData(ds))
                {
                    Assert.Contains("no Pixel Data", Assert.Throws<PixelDataException>(() => PixelDataFrames.Of(ds)).Message, StringComparison.Ordinal);
                    continue;
                }
                if (Unsplittable.TryGetValue(file, out var reason))
                {
                    Assert.Contains(reason, Assert.Throws<PixelDataException>(() => PixelDataFrames.Of(ds)).Message, StringComparison.Ordinal);
                    continue;
                }

                var frames = PixelDataFrames.Of(ds);
                Assert.Equal(ds.GetInt(DicomTags.NumberOfFrames) ?? 1, frames.Count);
                var sync = frames.Frames().Select(ReadSync).ToList();
                var async = new List<byte[]>();
                foreach (var frame in frames.Frames()) async.Add(await ReadInSmallChunksAsync(frame));
                for (int k = 0; k < frames.Count; k++)
                {
                    Assert.Equal(frames.GetFrame(k + 1).Length, sync[k].Length);
                    Assert.Equal(sync[k], async[k]);
                }

                switch (ds[frames.Tag])
                {
                    case DicomElement value when frames.Layout == FrameLayout.Native:
                        long length = frames.GetFrame(1).Length;
                        // The value is the frames, plus at most the pad byte that makes an odd length even.
                        Assert.True(value.Length == frames.Count * length || (value.Length == frames.Count * length + 1 && value.Length % 2 == 0),
                            $"{file}: {frames.Count} frames of {length} bytes in a value of {value.Length}");
                        Assert.Equal(Prefix(value.Value, frames.Count * length), Concat(sync));
                        break;
                    case DicomElement value:
                        Assert.Equal(FrameLayout.BitPacked, frames.Layout);
                        Assert.Equal((ushort)1, ds.GetUInt16(DicomTags.BitsAllocated));
                        byte[] all = value.Value.Memory.ToArray();
                        long frameBits = (long)ds.GetUInt16(DicomTags.Rows)!.Value * ds.GetUInt16(DicomTags.Columns)!.Value * (ds.GetUInt16(DicomTags.SamplesPerPixel) ?? 1);
                        Assert.Equal((frames.Count * frameBits + 7) / 8, value.Length);
                        for (int k = 0; k < frames.Count; k++) Assert.Equal(BitsOneByOne(all, k * frameBits, frameBits), sync[k]);
                        break;
                    case DicomFragmentSequence fragments:
                        // Without Extended Offset Table lengths, the frames are exactly the fragments, in order.
                        Assert.False(ds.Contains(DicomTags.ExtendedOffsetTable));
                        var joined = new MemoryStream();
                        foreach (var fragment in fragments.Fragments) fragment.CopyTo(joined);
                        Assert.Equal(joined.ToArray(), Concat(sync));
                        break;
                }
            }
        }
    }

    [Theory]
    [MemberData(nameof(Accepted))]
    public void Frames_equal_the_values_and_fragments_dcmdump_writes(string file)
    {
        using var f = DicomFile.Open(Corpus.Get(file).Path);
        if (!PixelDataFrames.HasPixelData(f.Dataset) || Unsplittable.ContainsKey(file)) return;
        var frames = PixelDataFrames.Of(f.Dataset);
        using var tmp = new TempDir();
        var dump = Tool.Run(Tool.Dcmtk("dcmdump"), ["-q", "+L", "+W", tmp.Path, Corpus.Get(file).Path]);
        Assert.True(dump.ExitCode == 0, dump.StdErr);
        var lines = dump.StdOut.Split('\n');
        // Top-level lines start in column 0; an icon image's Pixel Data inside a sequence item is indented.
        int at = Array.FindIndex(lines, l => l.StartsWith($"({frames.Tag.Group:x4},{frames.Tag.Element:x4})", StringComparison.Ordinal));
        Assert.True(at >= 0, $"dcmdump lists no {frames.Tag}");
        string line = lines[at];

        if (!frames.IsEncapsulated && line.Contains(" OF ", StringComparison.Ordinal))
        {
            // dcmdump writes only OB/OW values to files: Float Pixel Data is compared as the numbers it prints (9 significant digits round-trip a float).
            var values = FloatValues().Match(line).Groups[1].Value.Split('\\').Select(v => float.Parse(v, CultureInfo.InvariantCulture)).ToArray();
            var bytes = new byte[values.Length * 4];
            for (int i = 0; i < values.Length; i++) BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(i * 4), values[i]);
            AssertNativeFrames(frames, bytes, f.Dataset);
            return;
        }
        if (!frames.IsEncapsulated)
        {
            AssertNativeFrames(frames, File.ReadAllBytes(WrittenPath().Match(line).Groups[1].Value), f.Dataset);
            return;
        }

        // Encapsulated: the items that follow, indented by two; the first is the Basic Offset Table.
        var items = new List<byte[]>();
        for (int i = at + 1; i < lines.Length && lines[i].StartsWith("  (fffe,e000)", StringComparison.Ordinal); i++)
            items.Add(File.ReadAllBytes(WrittenPath().Match(lines[i]).Groups[1].Value));
        var fragmentStarts = new List<long> { 0 }; // offset of each fragment's Item tag from the first one's, and the end
        foreach (var item in items.Skip(1)) fragmentStarts.Add(fragmentStarts[^1] + 8 + item.Length);
        var read = frames.Frames().Select(ReadSync).ToList();
        Assert.Equal(Concat(items.Skip(1).ToList()), Concat(read));

        // Each frame starts on a fragment boundary, and where dcmtk shows a Basic Offset Table, exactly where it says.
        int fragment = 0;
        var itemStarts = new List<long>();
        foreach (var frame in read)
        {
            itemStarts.Add(fragmentStarts[fragment]);
            long left = frame.Length;
            while (left > 0) left -= items[1 + fragment++].Length;
            Assert.Equal(0, left);
        }
        Assert.Equal(items.Count - 1, fragment);
        if (items[0].Length > 0)
        {
            var bot = Enumerable.Range(0, items[0].Length / 4).Select(i => (long)BinaryPrimitives.ReadUInt32LittleEndian(items[0].AsSpan(i * 4))).ToList();
            Assert.Equal(bot, itemStarts);
        }
    }

    private static void AssertNativeFrames(PixelDataFrames frames, byte[] value, DicomDataset ds)
    {
        long length = frames.GetFrame(1).Length;
        for (int k = 0; k < frames.Count; k++)
        {
            byte[] actual = ReadSync(frames.GetFrame(k + 1));
            if (frames.Layout == FrameLayout.BitPacked)
            {
                long frameBits = (long)ds.GetUInt16(DicomTags.Rows)!.Value * ds.GetUInt16(DicomTags.Columns)!.Value * (ds.GetUInt16(DicomTags.SamplesPerPixel) ?? 1);
                Assert.Equal(BitsOneByOne(value, k * frameBits, frameBits), actual);
            }
            else Assert.Equal(value.AsSpan((int)(k * length), (int)length).ToArray(), actual);
        }
    }

    [GeneratedRegex(@"=(\S+)\s+#")]
    private static partial Regex WrittenPath();

    [GeneratedRegex(@"^\(7fe0,0008\) OF (\S+)")]
    private static partial Regex FloatValues();

    [Theory]
    [InlineData("dicomParser/CT1_UNC.explicit_big_endian.dcm", "dicomParser/CT1_UNC.explicit_little_endian.dcm")]
    [InlineData("pydicom/MR_small_bigendian.dcm", "pydicom/MR_small.dcm")]
    public async Task A_big_endian_image_gives_the_frames_of_its_little_endian_twin(string bigEndian, string littleEndian)
    {
        // CT1's 512 KiB value stays in the file behind the byte-swapping view, which can only copy itself whole: the
        // frame is pushed through a pipe; MR_small's 8 KiB value is swapped in memory.
        using var be = DicomFile.Open(Corpus.Get(bigEndian).Path);
        using var le = DicomFile.Open(Corpus.Get(littleEndian).Path);
        var expected = ReadSync(PixelDataFrames.Of(le.Dataset).GetFrame(1));
        var frame = PixelDataFrames.Of(be.Dataset).GetFrame(1);
        Assert.Equal(expected, ReadSync(frame));
        Assert.Equal(expected, await ReadInSmallChunksAsync(frame));

        // A reader that stops early releases the producer: the next open starts afresh and reads everything.
        for (int i = 0; i < 3; i++)
        {
            using var s = frame.Open();
            var head = new byte[100];
            s.ReadExactly(head);
            Assert.Equal(expected.AsSpan(0, 100).ToArray(), head);
        }
        Assert.Equal(expected, ReadSync(frame));
    }

    [Fact]
    public void A_frame_is_read_from_the_file_without_loading_the_pixel_data()
    {
        // 16 frames of 1 MiB in the file; reading frame 16 allocates a small fraction of one frame on this thread.
        using var tmp = new TempDir();
        const int rows = 512, columns = 1024, frameCount = 16;
        var value = new byte[rows * columns * 2 * frameCount];
        new Random(7).NextBytes(value);
        var ds = Image(rows, columns, 16, frameCount).AddBytes(DicomTags.PixelData, DicomVR.OW, new MemoryByteBuffer(value));
        string path = tmp.File("big.dcm");
        DicomWriter.WriteFile(path, ds, DicomTransferSyntax.ExplicitVRLittleEndian);
        using var f = DicomFile.Open(path);
        Assert.IsType<FileByteBuffer>(((DicomElement)f.Dataset[DicomTags.PixelData]!).Value);
        var frame = PixelDataFrames.Of(f.Dataset).GetFrame(frameCount);
        frame.CopyTo(Stream.Null); // warm-up: pooled buffers and JIT
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        using var sink = new HashingSink(hash);
        long before = GC.GetAllocatedBytesForCurrentThread();
        frame.CopyTo(sink);
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.True(allocated < 128 * 1024, $"reading a 1 MiB frame allocated {allocated} bytes");
        int frameBytes = rows * columns * 2;
        Assert.Equal(frameBytes, sink.Written);
        Assert.Equal(SHA256.HashData(value.AsSpan((frameCount - 1) * frameBytes)), hash.GetHashAndReset());
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task One_bit_frames_that_do_not_end_on_a_byte_are_repacked_to_start_at_bit_0(bool fromFile)
    {
        // 3 frames of 3 x 3 one-bit pixels: 9 bits each, so frame 2 starts at bit 1 of byte 1 and frame 3 at bit 2 of byte 2.
        var bits = new byte[] { 0b1010_1101, 0b0110_0011, 0b1111_0000, 0b0000_0101 }; // 27 bits used, 5 padding bits
        var ds = Image(3, 3, 1, 3).AddBytes(DicomTags.PixelData, DicomVR.OB, new MemoryByteBuffer(bits));
        using var tmp = new TempDir();
        using var file = fromFile ? Reopened(ds, tmp, DicomTransferSyntax.ExplicitVRLittleEndian) : null;
        var frames = PixelDataFrames.Of(file?.Dataset ?? ds);
        Assert.Equal(FrameLayout.BitPacked, frames.Layout);
        Assert.Equal(3, frames.Count);
        // Frame k holds source bits [9k, 9k + 9), least significant bit first (PS3.5 8.1.1); bits above the 9th are zero.
        // Source bits, LSB first: 10110101 11000110 00001111 10100000.
        byte[][] expected =
        [
            [0b1010_1101, 0b0000_0001], // bits 0-8: 1,0,1,1,0,1,0,1 | 1
            [0b0011_0001, 0b0000_0000], // bits 9-17: 1,0,0,0,1,1,0,0 | 0
            [0b0111_1100, 0b0000_0001], // bits 18-26: 0,0,1,1,1,1,1,0 | 1
        ];
        for (int k = 0; k < 3; k++)
        {
            var frame = frames.GetFrame(k + 1);
            Assert.Equal(2, frame.Length);
            Assert.Equal(BitsOneByOne(bits, 9L * k, 9), expected[k]);
            Assert.Equal(expected[k], ReadSync(frame));
            Assert.Equal(expected[k], await ReadInSmallChunksAsync(frame));
        }
    }

    [Fact]
    public void One_bit_frames_that_end_on_a_byte_are_plain_slices()
    {
        var bits = Enumerable.Range(0, 16).Select(i => (byte)(i * 17)).ToArray();
        var ds = Image(8, 8, 1, 2).AddBytes(DicomTags.PixelData, DicomVR.OB, new MemoryByteBuffer(bits));
        var frames = PixelDataFrames.Of(ds);
        Assert.Equal(FrameLayout.Native, frames.Layout);
        Assert.Equal(bits[..8], ReadSync(frames.GetFrame(1)));
        Assert.Equal(bits[8..], ReadSync(frames.GetFrame(2)));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task The_Extended_Offset_Table_locates_frames_and_its_lengths_drop_the_padding(bool fromFile)
    {
        // Frame 1: one fragment, 5 bytes + 1 pad. Frame 2: 3 bytes + 1 pad. Frame 3: 7 bytes + 1 pad.
        byte[][] frameBytes = [[1, 2, 3, 4, 5], [6, 7, 8], [9, 10, 11, 12, 13, 14, 15]];
        var fragments = frameBytes.Select(b => (IByteBuffer)new MemoryByteBuffer(b.Concat(new byte[b.Length % 2]).ToArray())).ToList();
        var ds = Image(1, 1, 8, 3);
        ds.Add(new DicomFragmentSequence(DicomTags.PixelData, DicomVR.OB, MemoryByteBuffer.Empty, fragments));
        ds.AddBytes(DicomTags.ExtendedOffsetTable, DicomVR.OV, UInt64s(0, 8 + 6, 8 + 6 + 8 + 4));
        ds.AddBytes(DicomTags.ExtendedOffsetTableLengths, DicomVR.OV, UInt64s(5, 3, 7));
        using var tmp = new TempDir();
        using var file = fromFile ? Reopened(ds, tmp, DicomTransferSyntax.JPEGBaseline8Bit) : null;
        var frames = PixelDataFrames.Of(file?.Dataset ?? ds);
        Assert.Equal(FrameLayout.ExtendedOffsetTable, frames.Layout);
        for (int k = 0; k < 3; k++)
        {
            Assert.Equal(frameBytes[k].Length, frames.GetFrame(k + 1).Length);
            Assert.Equal(frameBytes[k], ReadSync(frames.GetFrame(k + 1)));
            Assert.Equal(frameBytes[k], await ReadInSmallChunksAsync(frames.GetFrame(k + 1)));
        }
    }

    [Fact]
    public void The_Extended_Offset_Table_wins_over_a_Basic_Offset_Table_and_a_frame_may_span_fragments()
    {
        // PS3.5 A.4 wants an empty Basic Offset Table beside an Extended one; a writer that fills both is read by the Extended one.
        var fragments = new IByteBuffer[] { Bytes(1, 2), Bytes(3, 4, 5, 6), Bytes(7, 8), Bytes(9, 10) };
        var ds = Image(1, 1, 8, 2);
        ds.Add(new DicomFragmentSequence(DicomTags.PixelData, DicomVR.OB, UInt32s(0, 10), fragments)); // wrong on purpose
        ds.AddBytes(DicomTags.ExtendedOffsetTable, DicomVR.OV, UInt64s(0, 8 + 2 + 8 + 4));
        ds.AddBytes(DicomTags.ExtendedOffsetTableLengths, DicomVR.OV, UInt64s(6, 3));
        var frames = PixelDataFrames.Of(ds);
        Assert.Equal([1, 2, 3, 4, 5, 6], ReadSync(frames.GetFrame(1)));
        Assert.Equal([7, 8, 9], ReadSync(frames.GetFrame(2)));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void The_Basic_Offset_Table_groups_fragments_into_frames(bool fromFile)
    {
        var fragments = new IByteBuffer[] { Bytes(1, 2), Bytes(3, 4), Bytes(5, 6, 7, 8), Bytes(9, 10), Bytes(11, 12), Bytes(13, 14) };
        var ds = Image(1, 1, 8, 3);
        ds.Add(new DicomFragmentSequence(DicomTags.PixelData, DicomVR.OB, UInt32s(0, 10 + 10, 10 + 10 + 12), fragments));
        using var tmp = new TempDir();
        using var file = fromFile ? Reopened(ds, tmp, DicomTransferSyntax.JPEGBaseline8Bit) : null;
        var frames = PixelDataFrames.Of(file?.Dataset ?? ds);
        Assert.Equal(FrameLayout.BasicOffsetTable, frames.Layout);
        Assert.Equal([1, 2, 3, 4], ReadSync(frames.GetFrame(1)));
        Assert.Equal([5, 6, 7, 8], ReadSync(frames.GetFrame(2)));
        Assert.Equal([9, 10, 11, 12, 13, 14], ReadSync(frames.GetFrame(3)));
    }

    [Fact]
    public void Without_an_offset_table_frames_are_fragments_one_frame_is_all_fragments_and_codestream_starts_divide_the_rest()
    {
        var perFrame = Image(1, 1, 8, 2).Add(new DicomFragmentSequence(DicomTags.PixelData, DicomVR.OB, MemoryByteBuffer.Empty, [Bytes(1, 2), Bytes(3, 4)]));
        var frames = PixelDataFrames.Of(perFrame);
        Assert.Equal(FrameLayout.OneFragmentPerFrame, frames.Layout);
        Assert.Equal([3, 4], ReadSync(frames.GetFrame(2)));

        var single = Image(1, 1, 8, 1).Add(new DicomFragmentSequence(DicomTags.PixelData, DicomVR.OB, MemoryByteBuffer.Empty, [Bytes(1, 2), Bytes(3, 4)]));
        frames = PixelDataFrames.Of(single);
        Assert.Equal(FrameLayout.SingleFrame, frames.Layout);
        Assert.Equal([1, 2, 3, 4], ReadSync(frames.GetFrame(1)));

        // Two JPEG 2000 codestreams in three fragments: the second fragment continues the first.
        var j2k = Image(1, 1, 8, 2).Add(new DicomFragmentSequence(DicomTags.PixelData, DicomVR.OB, MemoryByteBuffer.Empty,
            [Bytes(0xFF, 0x4F, 0xFF, 0x51, 1, 2), Bytes(0xFF, 0xD9), Bytes(0xFF, 0x4F, 0xFF, 0x51, 3, 4)]));
        frames = PixelDataFrames.Of(j2k);
        Assert.Equal(FrameLayout.CodestreamStarts, frames.Layout);
        Assert.Equal([0xFF, 0x4F, 0xFF, 0x51, 1, 2, 0xFF, 0xD9], ReadSync(frames.GetFrame(1)));
        Assert.Equal([0xFF, 0x4F, 0xFF, 0x51, 3, 4], ReadSync(frames.GetFrame(2)));
    }

    public static TheoryData<string, string> Errors => new()
    {
        { "no pixel data", "no Pixel Data" },
        { "empty pixel data", "is empty" },
        { "pixel data and float pixel data", "ambiguous" },
        { "rows missing", "Rows (0028,0010) is missing" },
        { "bits allocated 0", "Bits Allocated (0028,0100) is 0" },
        { "number of frames 0", "Number of Frames (0028,0008) is '0'" },
        { "number of frames not a number", "Number of Frames (0028,0008) is 'two'" },
        { "native value too short", "holds 17 bytes, but 2 frames of 3 x 3 pixels, 1 sample of 8 bits need 18" },
        { "no fragments", "no fragments" },
        { "basic offset table of the wrong size", "not 4 per frame for 3 frames" },
        { "basic offset table not from 0", "the first frame starts at the first fragment" },
        { "basic offset table not ascending", "is not ascending" },
        { "basic offset table between fragments", "not the start of a fragment" },
        { "extended offset table without lengths", "without its Extended Offset Table Lengths" },
        { "extended offset table of the wrong size", "not 8 per frame" },
        { "extended offset table length past the fragment", "give frame 2 5 bytes, but its 1 fragment(s) hold 4" },
        { "more frames than fragments", "a fragment holds at most one frame" },
        { "fragments that begin no codestream", "begins no JPEG or JPEG 2000 codestream" },
        { "fewer codestream starts than frames", "2 fragments begin a codestream" },
    };

    [Theory]
    [MemberData(nameof(Errors))]
    public void Pixel_data_that_cannot_be_split_says_why(string @case, string reason)
    {
        var e = Assert.Throws<PixelDataException>(() => PixelDataFrames.Of(Broken(@case)));
        Assert.Contains(reason, e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(4)]
    [InlineData(-1)]
    public void A_frame_number_out_of_range_says_how_many_frames_there_are(int number)
    {
        var frames = PixelDataFrames.Of(Image(1, 2, 8, 3).AddBytes(DicomTags.PixelData, DicomVR.OB, Bytes(1, 2, 3, 4, 5, 6)));
        var e = Assert.Throws<PixelDataException>(() => frames.GetFrame(number));
        Assert.Contains($"frame {number} does not exist: the pixel data has 3 frames, numbered from 1", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Float_and_double_float_pixel_data_are_native_frames()
    {
        var floats = new byte[2 * 2 * 4 * 2];
        for (int i = 0; i < floats.Length; i++) floats[i] = (byte)i;
        var frames = PixelDataFrames.Of(Image(2, 2, 32, 2).AddBytes(DicomTags.FloatPixelData, DicomVR.OF, new MemoryByteBuffer(floats)));
        Assert.Equal(DicomTags.FloatPixelData, frames.Tag);
        Assert.Equal(floats[16..], ReadSync(frames.GetFrame(2)));
        var doubles = new byte[2 * 2 * 8];
        frames = PixelDataFrames.Of(Image(2, 2, 64, 1).AddBytes(DicomTags.DoubleFloatPixelData, DicomVR.OD, new MemoryByteBuffer(doubles)));
        Assert.Equal(32, frames.GetFrame(1).Length);
    }

    private static DicomDataset Broken(string @case)
    {
        DicomDataset Encapsulated(int frames, IByteBuffer bot, params IByteBuffer[] fragments) =>
            Image(1, 1, 8, frames).Add(new DicomFragmentSequence(DicomTags.PixelData, DicomVR.OB, bot, fragments));
        switch (@case)
        {
            case "no pixel data": return Image(3, 3, 8, 1);
            case "empty pixel data": return Image(3, 3, 8, 1).AddBytes(DicomTags.PixelData, DicomVR.OB, MemoryByteBuffer.Empty);
            case "pixel data and float pixel data":
                return Image(1, 1, 32, 1).AddBytes(DicomTags.PixelData, DicomVR.OB, Bytes(1, 2, 3, 4)).AddBytes(DicomTags.FloatPixelData, DicomVR.OF, Bytes(1, 2, 3, 4));
            case "rows missing":
                var noRows = Image(3, 3, 8, 1).AddBytes(DicomTags.PixelData, DicomVR.OB, new MemoryByteBuffer(new byte[10]));
                noRows.Remove(DicomTags.Rows);
                return noRows;
            case "bits allocated 0": return Image(3, 3, 0, 1).AddBytes(DicomTags.PixelData, DicomVR.OB, new MemoryByteBuffer(new byte[10]));
            case "number of frames 0":
                return Image(3, 3, 8, 1).AddString(DicomTags.NumberOfFrames, DicomVR.IS, "0").AddBytes(DicomTags.PixelData, DicomVR.OB, new MemoryByteBuffer(new byte[10]));
            case "number of frames not a number":
                return Image(3, 3, 8, 1).AddString(DicomTags.NumberOfFrames, DicomVR.IS, "two").AddBytes(DicomTags.PixelData, DicomVR.OB, new MemoryByteBuffer(new byte[10]));
            case "native value too short": return Image(3, 3, 8, 2).AddBytes(DicomTags.PixelData, DicomVR.OB, new MemoryByteBuffer(new byte[17]));
            case "no fragments": return Encapsulated(1, MemoryByteBuffer.Empty);
            case "basic offset table of the wrong size": return Encapsulated(3, UInt32s(0, 10), Bytes(1, 2), Bytes(3, 4), Bytes(5, 6));
            case "basic offset table not from 0": return Encapsulated(2, UInt32s(10, 20), Bytes(1, 2), Bytes(3, 4), Bytes(5, 6));
            case "basic offset table not ascending": return Encapsulated(3, UInt32s(0, 20, 10), Bytes(1, 2), Bytes(3, 4), Bytes(5, 6));
            case "basic offset table between fragments": return Encapsulated(2, UInt32s(0, 12), Bytes(1, 2), Bytes(3, 4), Bytes(5, 6));
            case "extended offset table without lengths":
                return Encapsulated(2, MemoryByteBuffer.Empty, Bytes(1, 2), Bytes(3, 4)).AddBytes(DicomTags.ExtendedOffsetTable, DicomVR.OV, UInt64s(0, 10));
            case "extended offset table of the wrong size":
                return Encapsulated(2, MemoryByteBuffer.Empty, Bytes(1, 2), Bytes(3, 4))
                    .AddBytes(DicomTags.ExtendedOffsetTable, DicomVR.OV, UInt64s(0)).AddBytes(DicomTags.ExtendedOffsetTableLengths, DicomVR.OV, UInt64s(2));
            case "extended offset table length past the fragment":
                return Encapsulated(2, MemoryByteBuffer.Empty, Bytes(1, 2), Bytes(3, 4, 5, 6))
                    .AddBytes(DicomTags.ExtendedOffsetTable, DicomVR.OV, UInt64s(0, 10)).AddBytes(DicomTags.ExtendedOffsetTableLengths, DicomVR.OV, UInt64s(2, 5));
            case "more frames than fragments": return Encapsulated(3, MemoryByteBuffer.Empty, Bytes(0xFF, 0xD8), Bytes(0xFF, 0xD8));
            case "fragments that begin no codestream": return Encapsulated(2, MemoryByteBuffer.Empty, Bytes(1, 2), Bytes(3, 4), Bytes(5, 6));
            case "fewer codestream starts than frames":
                return Encapsulated(3, MemoryByteBuffer.Empty, Bytes(0xFF, 0xD8, 1, 2), Bytes(3, 4), Bytes(0xFF, 0xD8, 5, 6), Bytes(7, 8));
            default: throw new ArgumentException(@case);
        }
    }

    // ---- helpers ----

    private static DicomDataset Image(int rows, int columns, int bitsAllocated, int frames)
    {
        var ds = new DicomDataset()
            .AddUInt16(DicomTags.SamplesPerPixel, 1)
            .AddUInt16(DicomTags.Rows, (ushort)rows)
            .AddUInt16(DicomTags.Columns, (ushort)columns)
            .AddUInt16(DicomTags.BitsAllocated, (ushort)bitsAllocated);
        if (frames > 1) ds.AddString(DicomTags.NumberOfFrames, DicomVR.IS, frames.ToString(CultureInfo.InvariantCulture));
        return ds;
    }

    /// <summary>Writes the dataset to a file and reads it back with a tiny large-value threshold, so values and fragments point into the file.</summary>
    private static DicomFile Reopened(DicomDataset ds, TempDir tmp, DicomTransferSyntax syntax)
    {
        string path = tmp.File("built.dcm");
        ds.AddString(DicomTags.SOPClassUID, DicomVR.UI, "1.2.840.10008.5.1.4.1.1.7");
        ds.AddString(DicomTags.SOPInstanceUID, DicomVR.UI, "1.2.3.4.5");
        DicomWriter.WriteFile(path, ds, syntax);
        return DicomFile.Open(path, new DicomReadOptions { LargeValueThreshold = 0 });
    }

    private static MemoryByteBuffer Bytes(params byte[] b) => new(b);

    private static MemoryByteBuffer UInt32s(params uint[] values)
    {
        var b = new byte[values.Length * 4];
        for (int i = 0; i < values.Length; i++) BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(i * 4), values[i]);
        return new MemoryByteBuffer(b);
    }

    private static MemoryByteBuffer UInt64s(params ulong[] values)
    {
        var b = new byte[values.Length * 8];
        for (int i = 0; i < values.Length; i++) BinaryPrimitives.WriteUInt64LittleEndian(b.AsSpan(i * 8), values[i]);
        return new MemoryByteBuffer(b);
    }

    /// <summary>The reference for bit-packed frames, independent of the byte-shifting implementation: one bit at a time.</summary>
    private static byte[] BitsOneByOne(byte[] source, long startBit, long count)
    {
        var frame = new byte[(count + 7) / 8];
        for (long j = 0; j < count; j++)
        {
            long bit = startBit + j;
            if (((source[bit / 8] >> (int)(bit % 8)) & 1) == 1) frame[j / 8] |= (byte)(1 << (int)(j % 8));
        }
        return frame;
    }

    private static byte[] ReadSync(PixelDataFrame frame)
    {
        var ms = new MemoryStream();
        frame.CopyTo(ms);
        return ms.ToArray();
    }

    /// <summary>The async path, in reads of 997 bytes so that reads straddle fragment and range boundaries.</summary>
    private static async Task<byte[]> ReadInSmallChunksAsync(PixelDataFrame frame)
    {
        var ms = new MemoryStream();
        await using var s = frame.Open();
        Assert.Equal(frame.Length, s.Length);
        var chunk = new byte[997];
        int n;
        while ((n = await s.ReadAsync(chunk)) > 0) ms.Write(chunk, 0, n);
        var viaCopy = new MemoryStream();
        await frame.CopyToAsync(viaCopy);
        Assert.Equal(ms.ToArray(), viaCopy.ToArray());
        return ms.ToArray();
    }

    private static byte[] Concat(IReadOnlyList<byte[]> parts) => parts.SelectMany(p => p).ToArray();

    private static byte[] Prefix(IByteBuffer value, long length)
    {
        var ms = new MemoryStream();
        value.CopyTo(ms);
        return ms.ToArray()[..(int)length];
    }

    private sealed class HashingSink(IncrementalHash hash) : Stream
    {
        public long Written { get; private set; }
        public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));
        public override void Write(ReadOnlySpan<byte> buffer)
        {
            hash.AppendData(buffer);
            Written += buffer.Length;
        }
        public override bool CanRead => false;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Length => Written;
        public override long Position { get => Written; set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
    }
}
