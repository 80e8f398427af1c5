using System.Text;
using AkkaVna.Dicom.Text;

namespace AkkaVna.Dicom.Tests.Text;

public class DicomCharacterSetTests
{
    private static byte[] Hex(string hex) => Convert.FromHexString(hex.Replace(" ", "", StringComparison.Ordinal));

    private static byte[] Bytes(params object[] parts) =>
        parts.SelectMany(p => p is string s ? Encoding.ASCII.GetBytes(s) : (byte[])p).ToArray();

    // ------------------------------------------------------------------------------------------------------------
    // Real files: raw value bytes taken from /work/shared/corpus/pydicom/charset/*.dcm (explicit VR little endian,
    // located with a hex dump), expected Unicode from /work/shared/corpus/charset-expected.csv.
    // ------------------------------------------------------------------------------------------------------------

    public static TheoryData<string, string, DicomVR, string, string> CorpusVectors => new()
    {
        {
            "chrH31.dcm (0010,0010) PatientName", @"\ISO 2022 IR 87", DicomVR.PN,
            "59 61 6D 61 64 61 5E 54 61 72 6F 75 3D 1B 24 42 3B 33 45 44 1B 28 42 5E 1B 24 42 42 40 4F 3A 1B 28 42 3D" +
            "1B 24 42 24 64 24 5E 24 40 1B 28 42 5E 1B 24 42 24 3F 24 6D 24 26 1B 28 42",
            "Yamada^Tarou=山田^太郎=やまだ^たろう"
        },
        { "chrKoreanMulti.dcm (0008,1070) OperatorsName", @"\ISO 2022 IR 149", DicomVR.PN, "1B 24 29 43 B1 E8 C8 F1 C1 DF 1B 28 42 20", "김희중" },
        { "chrKoreanMulti.dcm (0010,0010) PatientName", @"\ISO 2022 IR 149", DicomVR.PN, "1B 24 29 43 B1 E8 C8 F1 C1 DF 1B 28 42 20", "김희중" },
        { "chrKoreanMulti.dcm (0010,21B0) AdditionalPatientHistory", @"\ISO 2022 IR 149", DicomVR.LT, "1B 24 29 43 B1 E8 C8 F1 C1 DF 1B 28 42 20", "김희중" },
        // The 'ce' and 'yp' are Latin letters in the file.
        { "chrRuss.dcm (0010,0010) PatientName", "ISO_IR 144", DicomVR.PN, "BB EE DA 63 65 DC D1 79 70 D3", "Люкceмбypг" },
        // The value ends with an empty third component group ("...=" then padding); charset-expected.csv lists the name
        // without that trailing '=', the bytes have it.
        {
            "chrX1.dcm (0010,0010) PatientName", "ISO_IR 192", DicomVR.PN,
            "57 61 6E 67 5E 58 69 61 6F 44 6F 6E 67 3D E7 8E 8B 5E E5 B0 8F E6 9D B1 3D 20", "Wang^XiaoDong=王^小東="
        },
        // (0008,0005) of the sequence item, not of the data set (which is ISO_IR 192).
        {
            "chrSQEncoding.dcm (0032,1064)[0].(0010,0010) PatientName", @"ISO 2022 IR 13\ISO 2022 IR 87", DicomVR.PN,
            "D4 CF C0 DE 5E C0 DB B3 3D 1B 24 42 3B 33 45 44 1B 28 42 5E 1B 24 42 42 40 4F 3A 1B 28 42 3D" +
            "1B 24 42 24 64 24 5E 24 40 1B 28 42 5E 1B 24 42 24 3F 24 6D 24 26 1B 28 42",
            "ﾔﾏﾀﾞ^ﾀﾛｳ=山田^太郎=やまだ^たろう"
        },
    };

    [Theory]
    [MemberData(nameof(CorpusVectors))]
    public void Should_decode_the_corpus_files_to_the_expected_unicode(string source, string charset, DicomVR vr, string hex, string expected)
    {
        _ = source;
        var decoded = DicomCharacterSet.Parse(charset).Decode(Hex(hex), vr);

        Assert.Equal(expected, decoded.TrimEnd(' '));
    }

    [Theory]
    [MemberData(nameof(CorpusVectors))]
    public void Should_round_trip_the_corpus_texts(string source, string charset, DicomVR vr, string hex, string expected)
    {
        _ = (source, hex);
        var set = DicomCharacterSet.Parse(charset);

        Assert.True(set.CanEncode(expected, vr));
        Assert.Equal(expected, set.Decode(set.Encode(expected, vr), vr));
    }

    [Fact]
    public void Should_keep_padding_and_leave_trimming_to_the_caller()
    {
        // chrKoreanMulti.dcm (0010,0010): the value is padded with one space after the final ESC ( B.
        var decoded = DicomCharacterSet.Parse(@"\ISO 2022 IR 149").Decode(Hex("1B 24 29 43 B1 E8 C8 F1 C1 DF 1B 28 42 20"), DicomVR.PN);

        Assert.Equal("김희중 ", decoded);
    }

    // ------------------------------------------------------------------------------------------------------------
    // Exact encodings: corpus bytes and the examples of PS3.5 Annexes H (Japanese), I (Korean), J (UTF-8, GB18030, GBK)
    // and K (GB 2312), plus a sample for every single-byte set (bytes checked against Python's codecs).
    // ------------------------------------------------------------------------------------------------------------

    public static TheoryData<string, DicomVR, string, string> EncodingVectors => new()
    {
        // chrH31.dcm (0010,0010) without padding = PS3.5 Example H.3-1
        {
            @"\ISO 2022 IR 87", DicomVR.PN, "Yamada^Tarou=山田^太郎=やまだ^たろう",
            "59 61 6D 61 64 61 5E 54 61 72 6F 75 3D 1B 24 42 3B 33 45 44 1B 28 42 5E 1B 24 42 42 40 4F 3A 1B 28 42 3D" +
            "1B 24 42 24 64 24 5E 24 40 1B 28 42 5E 1B 24 42 24 3F 24 6D 24 26 1B 28 42"
        },
        // PS3.5 Example H.3-2: value 1 is ISO 2022 IR 13, so G0 returns to JIS X 0201 Roman with ESC ( J before each delimiter
        // (chrSQEncoding.dcm uses ESC ( B there instead, which reads the same).
        {
            @"ISO 2022 IR 13\ISO 2022 IR 87", DicomVR.PN, "ﾔﾏﾀﾞ^ﾀﾛｳ=山田^太郎=やまだ^たろう",
            "D4 CF C0 DE 5E C0 DB B3 3D 1B 24 42 3B 33 45 44 1B 28 4A 5E 1B 24 42 42 40 4F 3A 1B 28 4A 3D" +
            "1B 24 42 24 64 24 5E 24 40 1B 28 4A 5E 1B 24 42 24 3F 24 6D 24 26 1B 28 4A"
        },
        // PS3.5 Example I.2-1: KS X 1001 in G1, designated again in every component, no return to ASCII needed.
        {
            @"\ISO 2022 IR 149", DicomVR.PN, "Hong^Gildong=洪^吉洞=홍^길동",
            "48 6F 6E 67 5E 47 69 6C 64 6F 6E 67 3D 1B 24 29 43 FB F3 5E 1B 24 29 43 D1 CE D4 D7 3D" +
            "1B 24 29 43 C8 AB 5E 1B 24 29 43 B1 E6 B5 BF"
        },
        // PS3.5 Example K.2-1 (without the padding space): GB 2312 in G1.
        {
            @"\ISO 2022 IR 58", DicomVR.PN, "Zhang^XiaoDong=张^小东=",
            "5A 68 61 6E 67 5E 58 69 61 6F 44 6F 6E 67 3D 1B 24 29 41 D5 C5 5E 1B 24 29 41 D0 A1 B6 AB 3D"
        },
        // PS3.5 Example K.3-1: every line starts in the initial state and designates GB 2312 again.
        {
            @"\ISO 2022 IR 58", DicomVR.LT, "1.第一行文字。\r\n2.第二行文字。\r\n3.第三行文字。\r\n",
            "31 2E 1B 24 29 41 B5 DA D2 BB D0 D0 CE C4 D7 D6 A1 A3 0D 0A" +
            "32 2E 1B 24 29 41 B5 DA B6 FE D0 D0 CE C4 D7 D6 A1 A3 0D 0A" +
            "33 2E 1B 24 29 41 B5 DA C8 FD D0 D0 CE C4 D7 D6 A1 A3 0D 0A"
        },
        // chrX1.dcm (0010,0010) without padding (PS3.5 Example J.1-1 with traditional script): UTF-8.
        { "ISO_IR 192", DicomVR.PN, "Wang^XiaoDong=王^小東=", "57 61 6E 67 5E 58 69 61 6F 44 6F 6E 67 3D E7 8E 8B 5E E5 B0 8F E6 9D B1 3D" },
        // PS3.5 Example J.2-1: UTF-8 long text.
        {
            "ISO_IR 192", DicomVR.LT, "The first line includes 中文.\r\nThe second line includes 中文, too.\r\nThe third line.\r\n",
            "54 68 65 20 66 69 72 73 74 20 6C 69 6E 65 20 69 6E 63 6C 75 64 65 73 20 E4 B8 AD E6 96 87 2E 0D 0A" +
            "54 68 65 20 73 65 63 6F 6E 64 20 6C 69 6E 65 20 69 6E 63 6C 75 64 65 73 20 E4 B8 AD E6 96 87 2C 20 74 6F 6F 2E 0D 0A" +
            "54 68 65 20 74 68 69 72 64 20 6C 69 6E 65 2E 0D 0A"
        },
        // PS3.5 Example J.3-1: GB18030 person name; the same bytes are valid GBK (PS3.5 Annex J introduction).
        { "GB18030", DicomVR.PN, "Wang^XiaoDong=王^小东=", "57 61 6E 67 5E 58 69 61 6F 44 6F 6E 67 3D CD F5 5E D0 A1 B6 AB 3D" },
        { "GBK", DicomVR.PN, "Wang^XiaoDong=王^小东=", "57 61 6E 67 5E 58 69 61 6F 44 6F 6E 67 3D CD F5 5E D0 A1 B6 AB 3D" },
        // PS3.5 Example J.4-1: GB18030 long text.
        {
            "GB18030", DicomVR.LT, "The first line includes 中文.\r\nThe second line includes 中文, too.\r\nThe third line.\r\n",
            "54 68 65 20 66 69 72 73 74 20 6C 69 6E 65 20 69 6E 63 6C 75 64 65 73 20 D6 D0 CE C4 2E 0D 0A" +
            "54 68 65 20 73 65 63 6F 6E 64 20 6C 69 6E 65 20 69 6E 63 6C 75 64 65 73 20 D6 D0 CE C4 2C 20 74 6F 6F 2E 0D 0A" +
            "54 68 65 20 74 68 69 72 64 20 6C 69 6E 65 2E 0D 0A"
        },
        // GB18030 four-byte sequences (BMP and supplementary plane).
        { "GB18030", DicomVR.LO, "ђ😀", "81 30 D3 30 94 39 FC 36" },

        // Single-byte sets without code extensions (PS3.3 Table C.12-2).
        { "ISO_IR 6", DicomVR.PN, "Smith^John", "53 6D 69 74 68 5E 4A 6F 68 6E" },
        { "ISO_IR 100", DicomVR.PN, "Buc^Jérôme", "42 75 63 5E 4A E9 72 F4 6D 65" },
        { "ISO_IR 101", DicomVR.PN, "Łódź^Ślęży", "A3 F3 64 BC 5E A6 6C EA BF 79" },
        { "ISO_IR 109", DicomVR.PN, "Ħaġar^Ġużeppi", "A1 61 F5 61 72 5E D5 75 BF 65 70 70 69" },
        { "ISO_IR 110", DicomVR.PN, "Ābols^Šķēle", "C0 62 6F 6C 73 5E A9 F3 BA 6C 65" },
        { "ISO_IR 144", DicomVR.PN, "Люкceмбypг", "BB EE DA 63 65 DC D1 79 70 D3" },
        { "ISO_IR 127", DicomVR.PN, "قباني^لنزار", "E2 C8 C7 E6 EA 5E E4 E6 D2 C7 D1" },
        { "ISO_IR 126", DicomVR.PN, "Διονυσιος", "C4 E9 EF ED F5 F3 E9 EF F2" },
        { "ISO_IR 138", DicomVR.PN, "שרון^דבורה", "F9 F8 E5 EF 5E E3 E1 E5 F8 E4" },
        { "ISO_IR 148", DicomVR.PN, "Çağrı^Şükrü", "C7 61 F0 72 FD 5E DE FC 6B 72 FC" },
        { "ISO_IR 203", DicomVR.LO, "Œuvre^€", "BC 75 76 72 65 5E A4" },
        { "ISO_IR 13", DicomVR.PN, "ﾔﾏﾀﾞ^ﾀﾛｳ", "D4 CF C0 DE 5E C0 DB B3" },
        { "ISO_IR 166", DicomVR.LO, "ภาษาไทย", "C0 D2 C9 D2 E4 B7 C2" },

        // Single-byte sets with code extensions (PS3.3 Table C.12-3): G1 switched by ESC 02/13 F, value 1 restored at the end.
        { @"ISO 2022 IR 100\ISO 2022 IR 126", DicomVR.PN, "Jérôme^Διονυσιος", "4A E9 72 F4 6D 65 5E 1B 2D 46 C4 E9 EF ED F5 F3 E9 EF F2 1B 2D 41" },
        { @"\ISO 2022 IR 144", DicomVR.LO, "Люк", "1B 2D 4C BB EE DA" },
        { @"ISO 2022 IR 6\ISO 2022 IR 166", DicomVR.LO, "ภาษา", "1B 2D 54 C0 D2 C9 D2" },
        { @"\ISO 2022 IR 203", DicomVR.LO, "€", "1B 2D 62 A4" },
        { @"\ISO 2022 IR 101\ISO 2022 IR 109\ISO 2022 IR 110", DicomVR.LO, "ŁĦĀ", "1B 2D 42 A3 1B 2D 43 A1 1B 2D 44 C0" },
        { @"\ISO 2022 IR 127\ISO 2022 IR 138\ISO 2022 IR 148", DicomVR.LO, "قשŞ", "1B 2D 47 E2 1B 2D 48 F9 1B 2D 4D DE" },
        { "ISO 2022 IR 100", DicomVR.LO, "é", "E9" },

        // Multi-byte sets with code extensions (PS3.3 Table C.12-4).
        { @"\ISO 2022 IR 87\ISO 2022 IR 159", DicomVR.LO, "丂亜", "1B 24 28 44 30 21 1B 24 42 30 21 1B 28 42" },
        { @"\ISO 2022 IR 87", DicomVR.LO, @"山田\太郎", "1B 24 42 3B 33 45 44 1B 28 42 5C 1B 24 42 42 40 4F 3A 1B 28 42" },
    };

    [Theory]
    [MemberData(nameof(EncodingVectors))]
    public void Should_encode_exactly_as_the_standard_examples(string charset, DicomVR vr, string text, string hex)
    {
        var set = DicomCharacterSet.Parse(charset);

        Assert.Equal(hex.Replace(" ", "", StringComparison.Ordinal), Convert.ToHexString(set.Encode(text, vr)));
    }

    [Theory]
    [MemberData(nameof(EncodingVectors))]
    public void Should_decode_the_standard_examples(string charset, DicomVR vr, string text, string hex)
    {
        var set = DicomCharacterSet.Parse(charset);

        Assert.Equal(text, set.Decode(Hex(hex), vr));
    }

    [Fact]
    public void Should_decode_korean_lines_that_designate_ks_x_1001_once_at_the_start()
    {
        // PS3.5 Example I.3-1: the escape sequence heads each line; Hangul and ASCII then mix freely in that line.
        var value = Bytes(Hex("1B 24 29 43"), "The first line includes ", Hex("C7 D1 B1 DB"), ".\r\n",
            Hex("1B 24 29 43"), "The second line includes ", Hex("C7 D1 B1 DB"), ", too.\r\n", "The third line");

        var decoded = DicomCharacterSet.Parse(@"\ISO 2022 IR 149").Decode(value, DicomVR.LT);

        Assert.Equal("The first line includes 한글.\r\nThe second line includes 한글, too.\r\nThe third line", decoded);
    }

    // ------------------------------------------------------------------------------------------------------------
    // Round trips
    // ------------------------------------------------------------------------------------------------------------

    public static TheoryData<string, DicomVR, string> RoundTrips => new()
    {
        { "ISO_IR 100", DicomVR.LT, "Ça va?\r\nÀ bientôt, ÿ ß ¤" },
        { "ISO_IR 144", DicomVR.LO, @"Москва\Санкт-Петербург" },
        { "ISO_IR 126", DicomVR.ST, "Αθήνα ΑΒΓΔ" },
        { "ISO_IR 13", DicomVR.SH, "ｱｲｳｴｵ ABC" },
        { "ISO_IR 192", DicomVR.UT, "mixed: é 中文 한글 😀 Ω\r\n" },
        { "GB18030", DicomVR.UC, @"中文\😀\ђ" },
        { "GBK", DicomVR.LO, @"乗\王小东" },
        { @"\ISO 2022 IR 87", DicomVR.PN, "Yamada^Tarou=山田^太郎=やまだ^たろう" },
        { @"\ISO 2022 IR 87", DicomVR.LT, "山田 太郎\r\nline 2: 〜 ― ＼ ¢ £ ¬\tタブ" },
        { @"ISO 2022 IR 13\ISO 2022 IR 87", DicomVR.LO, @"ｱｲｳ山田 ﾀﾛｳ\ABC漢字ｶﾅ" },
        { @"\ISO 2022 IR 87\ISO 2022 IR 159", DicomVR.LO, "丂亜 丂x亜" },
        { @"\ISO 2022 IR 149", DicomVR.PN, "Hong^Gildong=洪^吉洞=홍^길동" },
        { @"\ISO 2022 IR 149", DicomVR.LT, "첫 줄 한글.\r\nsecond 두번째\r\n" },
        { @"\ISO 2022 IR 58", DicomVR.PN, "Zhang^XiaoDong=张^小东=" },
        { @"ISO 2022 IR 100\ISO 2022 IR 144\ISO 2022 IR 126", DicomVR.LO, @"Jérôme Люк Δ\é" },
        { @"ISO 2022 IR 100\ISO 2022 IR 87\ISO 2022 IR 149", DicomVR.PN, "Müller^山田=홍^é" },
    };

    [Theory]
    [MemberData(nameof(RoundTrips))]
    public void Should_round_trip_text_representable_in_the_set(string charset, DicomVR vr, string text)
    {
        var set = DicomCharacterSet.Parse(charset);

        Assert.True(set.CanEncode(text, vr));
        Assert.Equal(text, set.Decode(set.Encode(text, vr), vr));
    }

    [Theory]
    [InlineData("ISO_IR 100", "Ωx", "3F78")]
    [InlineData(@"\ISO 2022 IR 87", "€", "3F")]
    [InlineData("GBK", "😀", "3F3F")] // one '?' per UTF-16 unit, as .NET encoders do
    [InlineData("ISO_IR 13", "é", "3F")]
    public void Should_write_a_question_mark_for_characters_outside_the_set(string charset, string text, string hex)
    {
        var set = DicomCharacterSet.Parse(charset);

        Assert.Equal(hex, Convert.ToHexString(set.Encode(text, DicomVR.LO)));
        Assert.False(set.CanEncode(text, DicomVR.LO));
    }

    [Fact]
    public void Should_write_latin1_for_the_default_repertoire_but_report_it_as_not_encodable()
    {
        Assert.Equal("E9", Convert.ToHexString(DicomCharacterSet.Default.Encode("é", DicomVR.LO)));
        Assert.False(DicomCharacterSet.Default.CanEncode("é", DicomVR.LO));
        Assert.True(DicomCharacterSet.Default.CanEncode("plain ASCII", DicomVR.LO));
    }

    [Fact]
    public void Should_switch_back_from_a_double_byte_g0_before_a_space()
    {
        var bytes = DicomCharacterSet.Parse(@"\ISO 2022 IR 87").Encode("山 田", DicomVR.LO);

        Assert.Equal("1B24423B331B2842201B244245441B2842", Convert.ToHexString(bytes));
    }

    // ------------------------------------------------------------------------------------------------------------
    // Delimiters (PS3.5 6.1.2.5.3) and leniency
    // ------------------------------------------------------------------------------------------------------------

    [Theory]
    // G1 = Cyrillic via ESC - L; after a delimiter the value-1 set (Latin-1) is back, so 0xBB reads as '»'.
    [InlineData(DicomVR.PN, "1B 2D 4C BB 5E BB", "Л^»")]
    [InlineData(DicomVR.PN, "1B 2D 4C BB 3D BB", "Л=»")]
    [InlineData(DicomVR.PN, "1B 2D 4C BB 5C BB", @"Л\»")]
    [InlineData(DicomVR.LO, "1B 2D 4C BB 5C BB", @"Л\»")]
    [InlineData(DicomVR.LT, "1B 2D 4C BB 0D 0A BB", "Л\r\n»")]
    [InlineData(DicomVR.ST, "1B 2D 4C BB 09 BB", "Л\t»")]
    [InlineData(DicomVR.UT, "1B 2D 4C BB 0C BB", "Л\f»")]
    // Not delimiters: '^' and '=' outside PN, '\' in the single-valued text VRs.
    [InlineData(DicomVR.LO, "1B 2D 4C BB 5E BB", "Л^Л")]
    [InlineData(DicomVR.SH, "1B 2D 4C BB 3D BB", "Л=Л")]
    [InlineData(DicomVR.LT, "1B 2D 4C BB 5C BB", @"Л\Л")]
    [InlineData(DicomVR.UT, "1B 2D 4C BB 20 BB", "Л Л")]
    public void Should_return_to_the_initial_set_after_each_delimiter(DicomVR vr, string hex, string expected)
    {
        var set = DicomCharacterSet.Parse(@"ISO 2022 IR 100\ISO 2022 IR 144");

        Assert.Equal(expected, set.Decode(Hex(hex), vr));
    }

    [Fact]
    public void Should_return_g0_to_ascii_after_a_line_end()
    {
        // JIS X 0208 in G0, then CR LF: the next line starts in ASCII again.
        var decoded = DicomCharacterSet.Parse(@"\ISO 2022 IR 87").Decode(Hex("1B 24 42 3B 33 0D 0A 3B 33"), DicomVR.LT);

        Assert.Equal("山\r\n;3", decoded);
    }

    [Fact]
    public void Should_not_treat_a_byte_of_a_double_byte_character_as_a_delimiter()
    {
        // PS3.5 6.1.2.3: only a single byte 05/12 separates values. GBK/GB18030 trail bytes may be 0x5C (乗 = 81 5C).
        Assert.Equal(@"乗\A", DicomCharacterSet.Parse("GBK").Decode(Hex("81 5C 5C 41"), DicomVR.LO));
        Assert.Equal(@"乗\A", DicomCharacterSet.Parse("GB18030").Decode(Hex("81 5C 5C 41"), DicomVR.LO));
        // In JIS X 0208 the pair 0x21 0x40 (＼) holds 0x40 and the pair 0x5C 0x5E is a kanji, not '\' and '^'.
        Assert.Equal("＼權", DicomCharacterSet.Parse(@"\ISO 2022 IR 87").Decode(Hex("1B 24 42 21 40 5C 5E 1B 28 42"), DicomVR.PN));
    }

    [Theory]
    [InlineData(@"\ISO 2022 IR 87", "1B 24 42", false)]
    [InlineData(@"\ISO 2022 IR 159", "1B 24 28 44", false)]
    [InlineData(@"\ISO 2022 IR 149", "1B 24 29 43", true)]
    [InlineData(@"\ISO 2022 IR 58", "1B 24 29 41", true)]
    public void Should_never_decode_a_double_byte_code_to_an_ascii_character(string charset, string escape, bool g1)
    {
        // Every row/cell of the 94 x 94 set, in the code element the defined term uses (G0: bytes 0x21-0x7E, G1: 0xA1-0xFE).
        var value = new List<byte>(Hex(escape));
        for (int row = 0x21; row <= 0x7E; row++)
        {
            for (int cell = 0x21; cell <= 0x7E; cell++)
            {
                value.Add((byte)(g1 ? row | 0x80 : row));
                value.Add((byte)(g1 ? cell | 0x80 : cell));
            }
        }

        var decoded = DicomCharacterSet.Parse(charset).Decode(value.ToArray(), DicomVR.PN);

        Assert.Equal(94 * 94, decoded.Length);
        Assert.DoesNotContain(decoded, c => c < 0x80);
    }

    [Fact]
    public void Should_use_the_jis_mappings_for_jis_x_0208()
    {
        // 0x2141 WAVE DASH, 0x2142 DOUBLE VERTICAL LINE, 0x215D MINUS SIGN, 0x2171 CENT, 0x2172 POUND, 0x224C NOT SIGN.
        var decoded = DicomCharacterSet.Parse(@"\ISO 2022 IR 87").Decode(Hex("1B 24 42 21 41 21 42 21 5D 21 71 21 72 22 4C 1B 28 42"), DicomVR.LO);

        Assert.Equal("\u301C\u2016\u2212\u00A2\u00A3\u00AC", decoded);
    }

    [Theory]
    // JIS X 0208-1990 announcer ESC & @ precedes ESC $ B: unknown, skipped, JIS X 0208 stays in force.
    [InlineData("1B 24 42 3B 33 1B 26 40 45 44 1B 28 42", "山田")]
    // Unknown designation ESC ( Z: skipped, ASCII stays in force.
    [InlineData("41 1B 28 5A 42", "AB")]
    // Truncated escape sequence at the end of the value.
    [InlineData("41 1B 24", "A")]
    // Lone ESC followed by an ordinary byte that cannot end a sequence.
    [InlineData("41 1B 0D 42", "A\rB")]
    // Incomplete double-byte character.
    [InlineData("1B 24 42 3B", "\uFFFD")]
    public void Should_skip_unknown_or_malformed_escape_sequences(string hex, string expected)
    {
        Assert.Equal(expected, DicomCharacterSet.Parse(@"\ISO 2022 IR 87").Decode(Hex(hex), DicomVR.LO));
    }

    [Fact]
    public void Should_keep_using_ks_x_1001_when_a_component_does_not_designate_it_again()
    {
        // Not conformant (PS3.5 Annex I.2 re-designates per component), but seen in practice.
        var set = DicomCharacterSet.Parse(@"\ISO 2022 IR 149");

        Assert.Equal("김^희", set.Decode(Hex("1B 24 29 43 B1 E8 5E C8 F1"), DicomVR.PN));
        Assert.Equal("김희중", set.Decode(Hex("B1 E8 C8 F1 C1 DF"), DicomVR.PN));
    }

    [Fact]
    public void Should_decode_bytes_above_0x7F_as_latin1_with_the_default_repertoire()
    {
        Assert.Equal("Jérôme", DicomCharacterSet.Default.Decode(Hex("4A E9 72 F4 6D 65"), DicomVR.PN));
        Assert.Equal("é", DicomCharacterSet.Parse("ISO_IR 6").Decode(Hex("E9"), DicomVR.LO));
    }

    [Theory]
    [InlineData(DicomVR.CS)]
    [InlineData(DicomVR.AE)]
    [InlineData(DicomVR.UI)]
    [InlineData(DicomVR.DA)]
    [InlineData(DicomVR.UR)]
    public void Should_ignore_the_character_set_for_vrs_it_does_not_apply_to(DicomVR vr)
    {
        // PS3.5 6.1.2.3: only SH, LO, ST, LT, UC, UT and PN use (0008,0005).
        var set = DicomCharacterSet.Parse(@"\ISO 2022 IR 87");

        Assert.Equal("AB\u001B$B;3é", set.Decode(Hex("41 42 1B 24 42 3B 33 E9"), vr));
        Assert.Equal("41423F", Convert.ToHexString(set.Encode("AB山", vr)));
    }

    [Fact]
    public void Should_never_throw_on_arbitrary_bytes()
    {
        var random = new Random(20240601);
        var charsets = new[]
        {
            null, "ISO_IR 100", "ISO_IR 13", "ISO_IR 166", "ISO_IR 192", "GB18030", "GBK", @"\ISO 2022 IR 87\ISO 2022 IR 159",
            @"ISO 2022 IR 13\ISO 2022 IR 87", @"\ISO 2022 IR 149", @"\ISO 2022 IR 58", @"ISO 2022 IR 100\ISO 2022 IR 144", "NONSENSE",
        };
        var alphabet = new byte[] { 0x1B, 0x24, 0x28, 0x29, 0x2D, 0x42, 0x43, 0x41, 0x44, 0x4A, 0x49, 0x5C, 0x5E, 0x3D, 0x0D, 0xA1, 0xB0, 0xFE, 0xFF, 0x80, 0x21, 0x7E };
        foreach (var charset in charsets)
        {
            var set = DicomCharacterSet.Parse(charset);
            for (int n = 0; n < 300; n++)
            {
                var value = new byte[random.Next(0, 24)];
                for (int i = 0; i < value.Length; i++) value[i] = random.Next(2) == 0 ? alphabet[random.Next(alphabet.Length)] : (byte)random.Next(256);
                foreach (var vr in new[] { DicomVR.PN, DicomVR.LO, DicomVR.LT })
                {
                    var decoded = set.Decode(value, vr);
                    Assert.NotNull(decoded);
                    Assert.NotNull(set.Encode(decoded, vr));
                }
            }
        }
    }

    // ------------------------------------------------------------------------------------------------------------
    // Parsing (0008,0005)
    // ------------------------------------------------------------------------------------------------------------

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData("   ")]
    public void Should_give_the_default_repertoire_for_an_empty_value(string? value)
    {
        var set = DicomCharacterSet.Parse(value);

        Assert.Same(DicomCharacterSet.Default, set);
        Assert.True(set.IsDefault);
        Assert.Empty(set.Terms);
        Assert.Empty(set.UnknownTerms);
    }

    [Theory]
    [InlineData("ISO_IR 6")]
    [InlineData("ISO 2022 IR 6")]
    [InlineData(@"\ISO 2022 IR 6")]
    public void Should_report_the_default_repertoire_when_only_iso_ir_6_is_named(string value)
    {
        Assert.True(DicomCharacterSet.Parse(value).IsDefault);
    }

    [Fact]
    public void Should_keep_an_empty_first_term_and_trim_spaces()
    {
        var set = DicomCharacterSet.Parse(@" \ISO 2022 IR 87 ");

        Assert.Equal(new[] { "", "ISO 2022 IR 87" }, set.Terms);
        Assert.False(set.IsDefault);
        Assert.True(set.UsesCodeExtensions);
        Assert.Empty(set.UnknownTerms);
        Assert.Equal(new[] { "ISO_IR 100" }, DicomCharacterSet.Parse("ISO_IR 100 ").Terms);
        Assert.False(DicomCharacterSet.Parse("ISO_IR 100").UsesCodeExtensions);
    }

    [Fact]
    public void Should_report_unknown_terms_and_fall_back_to_ascii_and_latin1()
    {
        var set = DicomCharacterSet.Parse("ISO_IR 999");

        Assert.Equal(new[] { "ISO_IR 999" }, set.UnknownTerms);
        Assert.False(set.IsDefault);
        Assert.Equal("Jérôme", set.Decode(Hex("4A E9 72 F4 6D 65"), DicomVR.PN));
    }

    [Fact]
    public void Should_ignore_unknown_terms_and_still_use_the_known_ones()
    {
        var set = DicomCharacterSet.Parse(@"KLINGON\ISO 2022 IR 87");

        Assert.Equal(new[] { "KLINGON" }, set.UnknownTerms);
        Assert.Equal("Yamada=山田", set.Decode(Hex("59 61 6D 61 64 61 3D 1B 24 42 3B 33 45 44 1B 28 42"), DicomVR.PN));
    }

    [Theory]
    [InlineData("ISO IR 100")]
    [InlineData("ISO-IR 100")]
    [InlineData("iso_ir 100")]
    [InlineData("ISO_IR_100")]
    public void Should_recognise_misspelt_defined_terms_and_report_them(string value)
    {
        var set = DicomCharacterSet.Parse(value);

        Assert.Empty(set.UnknownTerms);
        Assert.Equal(new[] { value }, set.NonStandardTerms);
        Assert.Equal("é", set.Decode(Hex("E9"), DicomVR.LO));
    }

    [Fact]
    public void Should_use_utf8_alone_when_it_is_named_with_other_terms()
    {
        // UTF-8 does not allow code extensions (PS3.5 6.1.2.4 note 3).
        var set = DicomCharacterSet.Parse(@"ISO_IR 192\ISO 2022 IR 87");

        Assert.False(set.UsesCodeExtensions);
        Assert.Equal("王", set.Decode(Hex("E7 8E 8B"), DicomVR.LO));
    }

    [Fact]
    public void Should_treat_iso_ir_terms_in_a_multi_valued_set_as_their_iso_2022_forms()
    {
        // Not conformant (value 1 should be "ISO 2022 IR 100"), but unambiguous.
        var set = DicomCharacterSet.Parse(@"ISO_IR 100\ISO 2022 IR 87");

        Assert.True(set.UsesCodeExtensions);
        Assert.Equal("é^山", set.Decode(Hex("E9 5E 1B 24 42 3B 33 1B 28 42"), DicomVR.PN));
    }

    [Fact]
    public void Should_return_the_same_instance_for_the_same_value()
    {
        Assert.Same(DicomCharacterSet.Parse(@"\ISO 2022 IR 149"), DicomCharacterSet.Parse(@"\ISO 2022 IR 149"));
    }
}
