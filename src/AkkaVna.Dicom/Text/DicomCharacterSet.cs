using System.Buffers;
using System.Collections.Concurrent;
using System.Text;

namespace AkkaVna.Dicom.Text;

/// <summary>
/// Text codec for the value of Specific Character Set (0008,0005): decodes and encodes the values of the
/// string VRs that PS3.5 6.1.2.3 subjects to it (SH, LO, ST, LT, UC, UT, PN).
/// </summary>
/// <remarks>
/// <para>Defined terms are those of PS3.3 C.12.1.1.2 (Tables C.12-2 to C.12-5). Three modes result:</para>
/// <list type="bullet">
/// <item>single-byte without code extensions (one value, <c>ISO_IR xxx</c>): G0 = ASCII (JIS X 0201 Roman for
/// ISO_IR 13), G1 = the upper half of the named set (PS3.5 6.1.2.5.4 b);</item>
/// <item>ISO 2022 with code extensions (several values or an <c>ISO 2022 IR xxx</c> term): escape sequences
/// designate graphic sets into G0 (bytes 0x21-0x7E) or G1 (bytes 0xA0-0xFF), value 1 gives the initial
/// state (PS3.5 6.1.2.5.4 c) and the reader returns to it at every delimiter (PS3.5 6.1.2.5.3);</item>
/// <item>variable-length encodings without code extensions (ISO_IR 192 = UTF-8, GB18030, GBK; PS3.5 6.1.2.5.4 d).</item>
/// </list>
/// <para>Decoding is lenient and never throws: unknown terms are ignored (see <see cref="UnknownTerms"/>), unknown
/// escape sequences are skipped, bytes above 0x7F with no usable G1 set are read as Latin-1, and malformed
/// multi-byte sequences become U+FFFD.</para>
/// <para>Code pages used (through <see cref="CodePagesEncodingProvider"/>): 28591-28599 and 28605 (ISO 8859),
/// 874 (TIS-620), 20932 (JIS X 0208 and JIS X 0212, with the JIS mappings such as 0x2141 = U+301C), 51949
/// (KS X 1001), 936 (GB 2312 and GBK), 54936 (GB18030). JIS X 0201 and UTF-8 need no code page.</para>
/// <para>Instances are immutable and thread-safe; <see cref="Parse"/> caches them per distinct value.</para>
/// </remarks>
public sealed class DicomCharacterSet
{
    private const byte Esc = 0x1B;
    private const char Replacement = '\uFFFD';
    private const int MaxCachedValues = 512;

    private static readonly ConcurrentDictionary<string, DicomCharacterSet> Cache = new(StringComparer.Ordinal);

    // The tables below are filled in by the static constructor, after the code page provider is registered.
    private static readonly Dictionary<string, TermInfo> DefinedTerms = new(StringComparer.Ordinal);
    private static readonly Dictionary<string, TermInfo> NormalizedTerms = new(StringComparer.Ordinal);
    private static readonly Dictionary<int, (GraphicSet Set, CodeElement Element)> Designations = [];
    private static readonly GraphicSet Ascii;
    private static readonly GraphicSet Latin1;

    private readonly Mode _mode;
    private readonly GraphicSet _initialG0;
    private readonly GraphicSet? _initialG1;
    private readonly GraphicSet _fallbackG1;
    private readonly GraphicSet[] _candidates;
    private readonly char[]? _singleByteTable;
    private readonly Encoding? _variable;

    static DicomCharacterSet()
    {
        Encoding.RegisterProvider(CodePagesEncodingProvider.Instance);

        // G0 sets (94 characters, bytes 0x21-0x7E).
        Ascii = GraphicSet.SingleByte("ISO-IR 6", CodeElement.G0, "(B", Ascii94());
        // JIS X 0201 Roman differs from ASCII only at 0x5C (Yen) and 0x7E (overline). Like the shift_jis codecs we keep
        // them as '\' and '~': 0x5C must stay the value delimiter whatever its glyph (PS3.5 6.1.2.3).
        var romaji = GraphicSet.SingleByte("ISO-IR 14", CodeElement.G0, "(J", Ascii94());
        // JIS X 0201 Katakana is a G1 set in DICOM (PS3.3 Table C.12-3); codes 0x21-0x5F = U+FF61-U+FF9F.
        var katakana = GraphicSet.SingleByte("ISO-IR 13", CodeElement.G1, ")I", Katakana94());

        // G1 sets (96 characters, the upper half of an ISO 8859 code page, bytes 0xA0-0xFF), PS3.3 Table C.12-3.
        Latin1 = UpperHalf("ISO-IR 100", "-A", 28591);
        var latin2 = UpperHalf("ISO-IR 101", "-B", 28592);
        var latin3 = UpperHalf("ISO-IR 109", "-C", 28593);
        var latin4 = UpperHalf("ISO-IR 110", "-D", 28594);
        var cyrillic = UpperHalf("ISO-IR 144", "-L", 28595);
        var arabic = UpperHalf("ISO-IR 127", "-G", 28596);
        var greek = UpperHalf("ISO-IR 126", "-F", 28597);
        var hebrew = UpperHalf("ISO-IR 138", "-H", 28598);
        var latin5 = UpperHalf("ISO-IR 148", "-M", 28599);
        var latin9 = UpperHalf("ISO-IR 203", "-b", 28605);
        var thai = UpperHalf("ISO-IR 166", "-T", 874); // TIS-620; windows-874 is its superset

        // Multi-byte sets (94 x 94), PS3.3 Table C.12-4. The code pages are EUC forms: row and cell with the high bit set,
        // except JIS X 0212, which code page 20932 encodes as row | 0x80, cell. JIS X 0212 rows above 0x6D hold
        // Microsoft's IBM extensions, not JIS X 0212, and are left out.
        var jis0208 = GraphicSet.DoubleByte("ISO-IR 87", CodeElement.G0, "$B", 20932, cellHighBit: true, maxRow: 0x7E);
        var jis0212 = GraphicSet.DoubleByte("ISO-IR 159", CodeElement.G0, "$(D", 20932, cellHighBit: false, maxRow: 0x6D);
        var ksx1001 = GraphicSet.DoubleByte("ISO-IR 149", CodeElement.G1, "$)C", 51949, cellHighBit: true, maxRow: 0x7E);
        var gb2312 = GraphicSet.DoubleByte("ISO-IR 58", CodeElement.G1, "$)A", 936, cellHighBit: true, maxRow: 0x7E);

        // Every escape sequence the decoder understands. Besides the DICOM ones (PS3.3 Tables C.12-3 and C.12-4) we accept,
        // leniently, the other common designations of the same sets (old JIS C 6226 "ESC $ @", the long form "ESC $ ( B",
        // Katakana into G0, and the multi-byte sets into the other code element).
        foreach (var set in new[] { Ascii, romaji, katakana, Latin1, latin2, latin3, latin4, cyrillic, arabic, greek, hebrew, latin5, latin9, thai, jis0208, jis0212, ksx1001, gb2312 })
            Designations[EscapeKey(set.Designation.AsSpan(1))] = (set, set.Element);
        Designations[EscapeKey("$@"u8)] = (jis0208, CodeElement.G0);
        Designations[EscapeKey("$(B"u8)] = (jis0208, CodeElement.G0);
        Designations[EscapeKey("(I"u8)] = (katakana, CodeElement.G0);
        Designations[EscapeKey("$(C"u8)] = (ksx1001, CodeElement.G0);
        Designations[EscapeKey("$A"u8)] = (gb2312, CodeElement.G0);
        Designations[EscapeKey("$(A"u8)] = (gb2312, CodeElement.G0);

        // PS3.3 C.12.1.1.2: Table C.12-2 (single-byte without code extensions), C.12-3 (single-byte with code extensions),
        // C.12-4 (multi-byte with code extensions), C.12-5 (multi-byte without code extensions).
        var singleByte = new (string Number, GraphicSet G0, GraphicSet? G1)[]
        {
            ("6", Ascii, null), ("100", Ascii, Latin1), ("101", Ascii, latin2), ("109", Ascii, latin3), ("110", Ascii, latin4),
            ("144", Ascii, cyrillic), ("127", Ascii, arabic), ("126", Ascii, greek), ("138", Ascii, hebrew), ("148", Ascii, latin5),
            ("203", Ascii, latin9), ("13", romaji, katakana), ("166", Ascii, thai),
        };
        foreach (var (number, g0, g1) in singleByte)
        {
            AddTerm(new TermInfo("ISO_IR " + number, CodeExtensions: false, g0, g1, Variable: null));
            AddTerm(new TermInfo("ISO 2022 IR " + number, CodeExtensions: true, g0, g1, Variable: null));
        }
        AddTerm(new TermInfo("ISO 2022 IR 87", CodeExtensions: true, jis0208, null, Variable: null));
        AddTerm(new TermInfo("ISO 2022 IR 159", CodeExtensions: true, jis0212, null, Variable: null));
        AddTerm(new TermInfo("ISO 2022 IR 149", CodeExtensions: true, null, ksx1001, Variable: null));
        AddTerm(new TermInfo("ISO 2022 IR 58", CodeExtensions: true, null, gb2312, Variable: null));
        AddTerm(new TermInfo("ISO_IR 192", CodeExtensions: false, null, null, new UTF8Encoding(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: false)));
        AddTerm(new TermInfo("GB18030", CodeExtensions: false, null, null, LenientCodePage(54936)));
        AddTerm(new TermInfo("GBK", CodeExtensions: false, null, null, LenientCodePage(936)));

        Default = new DicomCharacterSet([], [], []);
    }

    private DicomCharacterSet(IReadOnlyList<string> terms, IReadOnlyList<string> unknownTerms, IReadOnlyList<string> nonStandardTerms)
    {
        Terms = terms;
        UnknownTerms = unknownTerms;
        NonStandardTerms = nonStandardTerms;
        IsDefault = unknownTerms.Count == 0 && terms.All(t => t.Length == 0 || Lookup(t, out _) is { G1: null, G0: var g0 } && g0 == Ascii);

        var known = terms.Select(t => Lookup(t, out _)).ToArray();

        // UTF-8, GB18030 and GBK do not allow code extensions (PS3.5 6.1.2.4 note 3); if one is present, it alone applies.
        _variable = known.FirstOrDefault(k => k?.Variable is not null)?.Variable;
        if (_variable is not null)
        {
            _mode = Mode.Variable;
            _initialG0 = Ascii;
            _fallbackG1 = Latin1;
            _candidates = [];
            return;
        }

        // Initial designation (PS3.5 6.1.2.5.4): value 1 as G0 and G1; an empty value 1 means ISO-IR 6 in G0 and G1 undefined.
        // Value 1 must be a single-byte set; a multi-byte set there is only used through its escape sequence.
        var first = known.Length > 0 ? known[0] : null;
        _initialG0 = first?.G0 is { IsDoubleByte: false } g0Initial ? g0Initial : Ascii;
        _initialG1 = first?.G1 is { IsDoubleByte: false } g1Initial ? g1Initial : null;

        // G1 to use for bytes above 0x7F while none is designated (not conformant, but seen: e.g. Korean text that designates
        // KS X 1001 only once per value): the set designated last in the value, else the first G1 set named, else Latin-1.
        _fallbackG1 = _initialG1 ?? known.FirstOrDefault(k => k?.G1 is not null)?.G1 ?? Latin1;

        // Sets the encoder may switch to, in order of preference: the initial ones, then those of each value in order.
        _candidates = new[] { _initialG0, _initialG1 }
            .Concat(known.SelectMany(k => new[] { k?.G0, k?.G1 }))
            .OfType<GraphicSet>()
            .Distinct()
            .ToArray();

        _mode = terms.Count <= 1 && first is not { CodeExtensions: true } ? Mode.SingleByte : Mode.CodeExtensions;

        // Byte-to-char table for values without escape sequences in single-byte mode.
        if (_mode == Mode.SingleByte)
        {
            _singleByteTable = new char[256];
            for (int b = 0; b < 0x80; b++)
                _singleByteTable[b] = b is > 0x20 and < 0x7F ? _initialG0.Decode(b) : (char)b;
            for (int b = 0x80; b < 0x100; b++)
                _singleByteTable[b] = _fallbackG1.Decode(b & 0x7F);
        }
    }

    private enum Mode { SingleByte, CodeExtensions, Variable }

    private enum CodeElement { G0, G1 }

    /// <summary>ISO_IR 6: ASCII, with bytes above 0x7F decoded leniently as Latin-1 so that nothing is lost.</summary>
    public static DicomCharacterSet Default { get; }

    /// <summary>The values of (0008,0005), each trimmed of spaces; empty for the default repertoire.</summary>
    public IReadOnlyList<string> Terms { get; }

    /// <summary>Non-empty terms that are not defined terms of PS3.3 C.12.1.1.2; they are ignored.</summary>
    public IReadOnlyList<string> UnknownTerms { get; }

    /// <summary>Terms recognised only after ignoring case, spaces, '_' and '-' (e.g. "ISO IR 100"); worth a warning.</summary>
    public IReadOnlyList<string> NonStandardTerms { get; }

    /// <summary>True when only the default repertoire is named (nothing, empty values, ISO_IR 6 or ISO 2022 IR 6).</summary>
    public bool IsDefault { get; }

    /// <summary>True when ISO 2022 escape sequences are interpreted and, when encoding, emitted.</summary>
    public bool UsesCodeExtensions => _mode == Mode.CodeExtensions;

    /// <summary>
    /// Parses the raw value of Specific Character Set (0008,0005): backslash-separated terms, each trimmed of spaces.
    /// Null, empty or blank gives <see cref="Default"/>; an empty first term stands for the default repertoire.
    /// </summary>
    public static DicomCharacterSet Parse(string? specificCharacterSet)
    {
        if (string.IsNullOrWhiteSpace(specificCharacterSet)) return Default;
        if (Cache.TryGetValue(specificCharacterSet, out var cached)) return cached;

        var terms = specificCharacterSet.Split('\\').Select(t => t.Trim(' ', '\0')).ToArray();
        var unknown = new List<string>();
        var nonStandard = new List<string>();
        foreach (var term in terms)
        {
            if (term.Length == 0) continue;
            if (Lookup(term, out bool exact) is null) unknown.Add(term);
            else if (!exact) nonStandard.Add(term);
        }
        var result = new DicomCharacterSet(terms, unknown.ToArray(), nonStandard.ToArray());
        if (Cache.Count < MaxCachedValues) Cache.TryAdd(specificCharacterSet, result);
        return result;
    }

    /// <summary>
    /// Decodes the value bytes of one element (possibly several values separated by '\'). Padding is not trimmed.
    /// VRs not affected by the character set (<see cref="DicomVRInfo.UsesCharacterSet"/>) are decoded as ASCII/Latin-1.
    /// Never throws.
    /// </summary>
    public string Decode(ReadOnlySpan<byte> value, DicomVR vr)
    {
        if (value.IsEmpty) return string.Empty;
        if (!vr.UsesCharacterSet()) return Encoding.Latin1.GetString(value);
        if (_mode == Mode.Variable) return _variable!.GetString(value);

        // Fast path: pure 7-bit text without escape sequences reads the same in every initial state (G0 is ASCII or JIS X 0201 Roman).
        bool hasEscape = value.Contains(Esc);
        if (!hasEscape && !value.ContainsAnyInRange((byte)0x80, (byte)0xFF)) return Encoding.ASCII.GetString(value);
        if (!hasEscape && _singleByteTable is not null)
        {
            var table = _singleByteTable;
            return string.Create(value.Length, value, (chars, bytes) =>
            {
                for (int i = 0; i < bytes.Length; i++) chars[i] = table[bytes[i]];
            });
        }
        return DecodeWithCodeExtensions(value, vr);
    }

    /// <summary>
    /// Encodes text for the writer (no padding added). Single-byte, UTF-8, GB18030 and GBK sets encode plainly; with code
    /// extensions the escape sequences are emitted as PS3.5 6.1.2.5.3 requires. Characters the set cannot represent become
    /// '?', one per UTF-16 unit like the .NET encoders (see <see cref="CanEncode"/>); for the default repertoire U+0080-U+00FF
    /// are written as Latin-1, mirroring <see cref="Decode"/>.
    /// </summary>
    public byte[] Encode(string text, DicomVR vr) => EncodeCore(text, vr, out _);

    /// <summary>True when <see cref="Encode"/> represents every character of <paramref name="text"/> exactly.</summary>
    public bool CanEncode(string text, DicomVR vr)
    {
        var bytes = EncodeCore(text, vr, out bool lossy);
        if (lossy) return false;
        return _mode != Mode.Variable || !vr.UsesCharacterSet() || Decode(bytes, vr) == text;
    }

    public override string ToString() => string.Join('\\', Terms);

    // ----------------------------------------------------------------------------------------------------------------
    // Decoding with code extensions (PS3.5 6.1.2.4, 6.1.2.5)
    // ----------------------------------------------------------------------------------------------------------------

    private string DecodeWithCodeExtensions(ReadOnlySpan<byte> value, DicomVR vr)
    {
        // Every byte yields at most one char (escape sequences none, double-byte characters one per pair).
        char[] chars = ArrayPool<char>.Shared.Rent(value.Length);
        try
        {
            int n = 0;
            GraphicSet g0 = _initialG0;
            GraphicSet? g1 = _initialG1;
            GraphicSet? lastG1 = null;
            int i = 0;
            while (i < value.Length)
            {
                byte b = value[i];
                if (b == Esc)
                {
                    // ESC, intermediate bytes 02/00-02/15, final byte 03/00-07/14 (ISO/IEC 2022). Unknown or malformed
                    // sequences are skipped and the current sets stay in force.
                    i += ReadEscape(value[i..], out var designation);
                    if (designation is { Set: var set, Element: var element })
                    {
                        if (element == CodeElement.G0) g0 = set;
                        else g1 = lastG1 = set;
                    }
                    continue;
                }

                if (b < 0x80)
                {
                    if (b is > 0x20 and < 0x7F)
                    {
                        if (g0.IsDoubleByte)
                        {
                            if (i + 1 < value.Length && value[i + 1] is > 0x20 and < 0x7F)
                            {
                                chars[n++] = g0.Decode(b, value[i + 1]);
                                i += 2;
                            }
                            else
                            {
                                chars[n++] = Replacement;
                                i++;
                            }
                            continue;
                        }
                        chars[n++] = g0.Decode(b);
                    }
                    else
                    {
                        chars[n++] = (char)b; // SPACE, DEL and control characters belong to no graphic set
                    }
                    i++;
                    if (ReturnsToInitialState(b, vr))
                    {
                        g0 = _initialG0;
                        g1 = _initialG1;
                    }
                    continue;
                }

                var gr = g1 ?? lastG1 ?? _fallbackG1;
                if (!gr.IsDoubleByte)
                {
                    chars[n++] = gr.Decode(b & 0x7F);
                    i++;
                }
                else if (b is > 0xA0 and < 0xFF && i + 1 < value.Length && value[i + 1] is > 0xA0 and < 0xFF)
                {
                    chars[n++] = gr.Decode(b & 0x7F, value[i + 1] & 0x7F);
                    i += 2;
                }
                else
                {
                    chars[n++] = Replacement;
                    i++;
                }
            }
            return new string(chars, 0, n);
        }
        finally
        {
            ArrayPool<char>.Shared.Return(chars);
        }
    }

    /// <summary>Length of the escape sequence at the start of <paramref name="s"/> (at least 1) and the designation it makes, if known.</summary>
    private static int ReadEscape(ReadOnlySpan<byte> s, out (GraphicSet Set, CodeElement Element)? designation)
    {
        designation = null;
        int j = 1;
        while (j < s.Length && s[j] is >= 0x20 and <= 0x2F) j++;
        if (j >= s.Length || s[j] is < 0x30 or > 0x7E) return j; // no final byte: drop ESC and intermediates
        if (j <= 3 && Designations.TryGetValue(EscapeKey(s[1..(j + 1)]), out var known)) designation = known;
        return j + 1;
    }

    /// <summary>
    /// PS3.5 6.1.2.5.3: the value-1 (initial) character set is active again after each line end (CR, LF), page end (FF)
    /// and any other control character except ESC (e.g. TAB), after each '\' separating values, and for PN after each
    /// '^' and '=' separating components and component groups. Only the single byte 05/12 is a delimiter (PS3.5 6.1.2.3).
    /// </summary>
    private static bool ReturnsToInitialState(byte b, DicomVR vr) =>
        (b < 0x20 && b != Esc)
        || (b == (byte)'\\' && vr.IsMultiValuedString())
        || (vr == DicomVR.PN && b is (byte)'^' or (byte)'=');

    // ----------------------------------------------------------------------------------------------------------------
    // Encoding
    // ----------------------------------------------------------------------------------------------------------------

    private byte[] EncodeCore(string text, DicomVR vr, out bool lossy)
    {
        lossy = false;
        if (text.Length == 0) return [];
        if (!vr.UsesCharacterSet())
        {
            lossy = text.Any(c => c > 0x7F);
            return Encoding.Latin1.GetBytes(text); // '?' beyond U+00FF
        }
        if (_mode == Mode.Variable) return _variable!.GetBytes(text);

        var output = new List<byte>(text.Length + 8);
        if (_mode == Mode.SingleByte) EncodeSingleByte(text, output, ref lossy);
        else EncodeWithCodeExtensions(text, vr, output, ref lossy);
        return output.ToArray();
    }

    private void EncodeSingleByte(string text, List<byte> output, ref bool lossy)
    {
        foreach (char c in text)
        {
            if (c < 0x80 && c != Esc) output.Add((byte)c); // G0: ASCII or JIS X 0201 Roman (identical here)
            else if (_initialG1 is not null && _initialG1.TryEncode(c, out int code)) output.Add((byte)(0x80 | code));
            else
            {
                lossy = true;
                if (_initialG1 is null && c <= 0xFF) output.Add((byte)c); // default repertoire: Latin-1, as decoded
                else output.Add((byte)'?');
            }
        }
    }

    /// <summary>
    /// ISO 2022 encoding: each character is written with the first set able to represent it, preferring the sets currently
    /// designated, then the initial ones, then those of the values in order, designating it when needed. Before every delimiter
    /// and at the end of the value the initial G0 (and G1, if value 1 defines one) is re-designated (PS3.5 6.1.2.5.3), and the
    /// state is then taken as initial, so a G1 multi-byte set is re-designated in each component that uses it (PS3.5 Annex I.2, K.2).
    /// </summary>
    private void EncodeWithCodeExtensions(string text, DicomVR vr, List<byte> output, ref bool lossy)
    {
        GraphicSet g0 = _initialG0;
        GraphicSet? g1 = _initialG1;
        foreach (char c in text)
        {
            if (c < 0x80 && c != Esc && ReturnsToInitialState((byte)c, vr))
            {
                RestoreInitialSets(output, ref g0, ref g1);
                output.Add((byte)c);
                g1 = _initialG1; // the reader takes the initial state after a delimiter
                continue;
            }
            if (c is ' ' or '\u007F')
            {
                // Not part of any 94-character set; switch back from a double-byte G0 for the sake of simple readers.
                SingleByteG0(output, ref g0);
                output.Add((byte)c);
                continue;
            }
            if (c != Esc && (TryWrite(g0, c, output) || (g1 is not null && TryWrite(g1, c, output)))) continue;

            var set = c == Esc ? null : Array.Find(_candidates, s => s.TryEncode(c, out _));
            if (set is null)
            {
                lossy = true;
                SingleByteG0(output, ref g0);
                output.Add((byte)'?');
                continue;
            }
            output.AddRange(set.Designation);
            if (set.Element == CodeElement.G0) g0 = set;
            else g1 = set;
            TryWrite(set, c, output);
        }
        RestoreInitialSets(output, ref g0, ref g1);
    }

    private void RestoreInitialSets(List<byte> output, ref GraphicSet g0, ref GraphicSet? g1)
    {
        if (g0 != _initialG0)
        {
            output.AddRange(_initialG0.Designation);
            g0 = _initialG0;
        }
        if (_initialG1 is not null && g1 != _initialG1)
        {
            output.AddRange(_initialG1.Designation);
            g1 = _initialG1;
        }
    }

    private void SingleByteG0(List<byte> output, ref GraphicSet g0)
    {
        if (!g0.IsDoubleByte) return;
        output.AddRange(_initialG0.Designation);
        g0 = _initialG0;
    }

    /// <summary>Writes <paramref name="c"/> in <paramref name="set"/>, invoked in its DICOM code element (GL for G0, GR for G1).</summary>
    private static bool TryWrite(GraphicSet set, char c, List<byte> output)
    {
        if (!set.TryEncode(c, out int code)) return false;
        int high = set.Element == CodeElement.G1 ? 0x80 : 0;
        if (set.IsDoubleByte)
        {
            output.Add((byte)(high | (code >> 8)));
            output.Add((byte)(high | (code & 0x7F)));
        }
        else
        {
            output.Add((byte)(high | code));
        }
        return true;
    }

    // ----------------------------------------------------------------------------------------------------------------
    // Tables
    // ----------------------------------------------------------------------------------------------------------------

    private static TermInfo? Lookup(string term, out bool exact)
    {
        exact = DefinedTerms.TryGetValue(term, out var info);
        if (exact) return info;
        return NormalizedTerms.GetValueOrDefault(Normalize(term));
    }

    private static void AddTerm(TermInfo info)
    {
        DefinedTerms.Add(info.Term, info);
        NormalizedTerms.Add(Normalize(info.Term), info);
    }

    private static string Normalize(string term)
    {
        var sb = new StringBuilder(term.Length);
        foreach (char c in term)
        {
            if (c is not (' ' or '_' or '-')) sb.Append(char.ToUpperInvariant(c));
        }
        return sb.ToString();
    }

    private static int EscapeKey(ReadOnlySpan<byte> afterEsc)
    {
        int key = 0;
        foreach (byte b in afterEsc) key = (key << 8) | b;
        return key;
    }

    private static Encoding LenientCodePage(int codePage) =>
        Encoding.GetEncoding(codePage, new EncoderReplacementFallback("?"), new DecoderReplacementFallback(Replacement.ToString()));

    private static char[] Ascii94()
    {
        var table = new char[128];
        for (int i = 0; i < 128; i++) table[i] = i is > 0x20 and < 0x7F ? (char)i : Replacement;
        return table;
    }

    private static char[] Katakana94()
    {
        var table = new char[128];
        for (int i = 0; i < 128; i++) table[i] = i is >= 0x21 and <= 0x5F ? (char)(0xFF61 + i - 0x21) : Replacement;
        return table;
    }

    /// <summary>A G1 set: bytes 0x80-0xFF of a single-byte code page, indexed by the low 7 bits.</summary>
    private static GraphicSet UpperHalf(string name, string escape, int codePage)
    {
        var encoding = Encoding.GetEncoding(codePage, EncoderFallback.ExceptionFallback, new DecoderReplacementFallback(Replacement.ToString()));
        var table = new char[128];
        Span<char> decoded = stackalloc char[2];
        for (int i = 0; i < 128; i++)
        {
            int count = encoding.GetChars([(byte)(0x80 | i)], decoded);
            table[i] = count == 1 && decoded[0] >= 0x80 ? decoded[0] : Replacement;
        }
        return GraphicSet.SingleByte(name, CodeElement.G1, escape, table);
    }

    private sealed record TermInfo(string Term, bool CodeExtensions, GraphicSet? G0, GraphicSet? G1, Encoding? Variable);

    /// <summary>An ISO 2022 graphic character set: a 94/96-character single-byte set or a 94 x 94 double-byte set.</summary>
    private sealed class GraphicSet
    {
        private readonly char[]? _single;               // by 7-bit code
        private readonly Dictionary<char, int>? _singleReverse;
        private readonly Lazy<DoubleByteTable>? _double; // built on first use (about 9,000 code page look-ups)

        private GraphicSet(string name, CodeElement element, string escape, char[]? single, Lazy<DoubleByteTable>? doubleByte)
        {
            Name = name;
            Element = element;
            Designation = [Esc, .. Encoding.ASCII.GetBytes(escape)];
            _single = single;
            _double = doubleByte;
            if (single is not null)
            {
                _singleReverse = [];
                for (int i = 0; i < single.Length; i++)
                {
                    if (single[i] != Replacement) _singleReverse.TryAdd(single[i], i);
                }
            }
        }

        public string Name { get; }

        /// <summary>The code element DICOM designates this set to (PS3.3 Tables C.12-3, C.12-4).</summary>
        public CodeElement Element { get; }

        /// <summary>The escape sequence designating this set to <see cref="Element"/>.</summary>
        public byte[] Designation { get; }

        public bool IsDoubleByte => _double is not null;

        public static GraphicSet SingleByte(string name, CodeElement element, string escape, char[] table) =>
            new(name, element, escape, table, null);

        public static GraphicSet DoubleByte(string name, CodeElement element, string escape, int codePage, bool cellHighBit, int maxRow) =>
            new(name, element, escape, null, new Lazy<DoubleByteTable>(() => DoubleByteTable.Build(codePage, cellHighBit, maxRow)));

        public char Decode(int code) => _single![code & 0x7F];

        public char Decode(int row, int cell) => _double!.Value.Decode(row & 0x7F, cell & 0x7F);

        /// <summary>Code of <paramref name="c"/> in this set: 7 bits, or row &lt;&lt; 8 | cell for a double-byte set.</summary>
        public bool TryEncode(char c, out int code)
        {
            if (_singleReverse is not null) return _singleReverse.TryGetValue(c, out code);
            return _double!.Value.TryEncode(c, out code);
        }

        public override string ToString() => Name;
    }

    private sealed class DoubleByteTable
    {
        private readonly char[] _chars = new char[94 * 94];
        private readonly Dictionary<char, int> _reverse = [];

        public static DoubleByteTable Build(int codePage, bool cellHighBit, int maxRow)
        {
            var encoding = Encoding.GetEncoding(codePage, EncoderFallback.ExceptionFallback, new DecoderReplacementFallback(Replacement.ToString()));
            var table = new DoubleByteTable();
            Span<byte> bytes = stackalloc byte[2];
            Span<char> decoded = stackalloc char[4];
            for (int row = 0x21; row <= 0x7E; row++)
            {
                for (int cell = 0x21; cell <= 0x7E; cell++)
                {
                    int index = (row - 0x21) * 94 + (cell - 0x21);
                    table._chars[index] = Replacement;
                    if (row > maxRow) continue;
                    bytes[0] = (byte)(row | 0x80);
                    bytes[1] = (byte)(cellHighBit ? cell | 0x80 : cell);
                    int count = encoding.GetChars(bytes, decoded);
                    // Never map a double-byte code to ASCII: that could forge a delimiter (PS3.5 6.1.2.3).
                    if (count != 1 || decoded[0] == Replacement || decoded[0] < 0x80) continue;
                    table._chars[index] = decoded[0];
                    table._reverse.TryAdd(decoded[0], (row << 8) | cell);
                }
            }
            return table;
        }

        public char Decode(int row, int cell) =>
            row is >= 0x21 and <= 0x7E && cell is >= 0x21 and <= 0x7E ? _chars[(row - 0x21) * 94 + (cell - 0x21)] : Replacement;

        public bool TryEncode(char c, out int code) => _reverse.TryGetValue(c, out code);
    }
}
