namespace AkkaVna.Dicom;

/// <summary>Value Representations of PS3.5 Table 6.2-1. The numeric value is the two ASCII bytes, first byte high.</summary>
public enum DicomVR : ushort
{
    None = 0,
    AE = ('A' << 8) | 'E', AS = ('A' << 8) | 'S', AT = ('A' << 8) | 'T',
    CS = ('C' << 8) | 'S',
    DA = ('D' << 8) | 'A', DS = ('D' << 8) | 'S', DT = ('D' << 8) | 'T',
    FD = ('F' << 8) | 'D', FL = ('F' << 8) | 'L',
    IS = ('I' << 8) | 'S',
    LO = ('L' << 8) | 'O', LT = ('L' << 8) | 'T',
    OB = ('O' << 8) | 'B', OD = ('O' << 8) | 'D', OF = ('O' << 8) | 'F', OL = ('O' << 8) | 'L', OV = ('O' << 8) | 'V', OW = ('O' << 8) | 'W',
    PN = ('P' << 8) | 'N',
    SH = ('S' << 8) | 'H', SL = ('S' << 8) | 'L', SQ = ('S' << 8) | 'Q', SS = ('S' << 8) | 'S', ST = ('S' << 8) | 'T', SV = ('S' << 8) | 'V',
    TM = ('T' << 8) | 'M',
    UC = ('U' << 8) | 'C', UI = ('U' << 8) | 'I', UL = ('U' << 8) | 'L', UN = ('U' << 8) | 'N', UR = ('U' << 8) | 'R', US = ('U' << 8) | 'S', UT = ('U' << 8) | 'T', UV = ('U' << 8) | 'V',
}

public static class DicomVRInfo
{
    /// <summary>Parses the two VR bytes of an explicit-VR element; false for anything not in PS3.5 Table 6.2-1.</summary>
    public static bool TryParse(byte b0, byte b1, out DicomVR vr)
    {
        vr = (DicomVR)((b0 << 8) | b1);
        return IsKnown(vr);
    }

    public static bool TryParse(ReadOnlySpan<char> text, out DicomVR vr)
    {
        vr = DicomVR.None;
        if (text.Length != 2 || text[0] > 127 || text[1] > 127) return false;
        return TryParse((byte)text[0], (byte)text[1], out vr);
    }

    public static bool IsKnown(DicomVR vr) => vr switch
    {
        DicomVR.AE or DicomVR.AS or DicomVR.AT or DicomVR.CS or DicomVR.DA or DicomVR.DS or DicomVR.DT or DicomVR.FD or DicomVR.FL
            or DicomVR.IS or DicomVR.LO or DicomVR.LT or DicomVR.OB or DicomVR.OD or DicomVR.OF or DicomVR.OL or DicomVR.OV or DicomVR.OW
            or DicomVR.PN or DicomVR.SH or DicomVR.SL or DicomVR.SQ or DicomVR.SS or DicomVR.ST or DicomVR.SV or DicomVR.TM or DicomVR.UC
            or DicomVR.UI or DicomVR.UL or DicomVR.UN or DicomVR.UR or DicomVR.US or DicomVR.UT or DicomVR.UV => true,
        _ => false,
    };

    public static string Code(this DicomVR vr) => vr == DicomVR.None ? "--" : string.Create(2, vr, static (s, v) => { s[0] = (char)((ushort)v >> 8); s[1] = (char)((ushort)v & 0xFF); });

    /// <summary>Explicit VR with a 2-byte reserved field and a 4-byte length (PS3.5 7.1.2); the others have a 2-byte length.</summary>
    public static bool HasLongLength(this DicomVR vr) => vr is DicomVR.OB or DicomVR.OD or DicomVR.OF or DicomVR.OL or DicomVR.OV or DicomVR.OW
        or DicomVR.SQ or DicomVR.SV or DicomVR.UC or DicomVR.UN or DicomVR.UR or DicomVR.UT or DicomVR.UV;

    /// <summary>Bytes per value unit that byte order affects (1 = no swapping).</summary>
    public static int ByteSwapUnit(this DicomVR vr) => vr switch
    {
        DicomVR.US or DicomVR.SS or DicomVR.OW or DicomVR.AT => 2,
        DicomVR.UL or DicomVR.SL or DicomVR.FL or DicomVR.OF or DicomVR.OL => 4,
        DicomVR.FD or DicomVR.OD or DicomVR.SV or DicomVR.UV or DicomVR.OV => 8,
        _ => 1,
    };

    /// <summary>Character string VRs (value decoded as text).</summary>
    public static bool IsString(this DicomVR vr) => vr is DicomVR.AE or DicomVR.AS or DicomVR.CS or DicomVR.DA or DicomVR.DS or DicomVR.DT
        or DicomVR.IS or DicomVR.LO or DicomVR.LT or DicomVR.PN or DicomVR.SH or DicomVR.ST or DicomVR.TM or DicomVR.UC or DicomVR.UI
        or DicomVR.UR or DicomVR.UT;

    /// <summary>String VRs affected by Specific Character Set (PS3.5 6.1.2.3); the others are always ASCII.</summary>
    public static bool UsesCharacterSet(this DicomVR vr) => vr is DicomVR.SH or DicomVR.LO or DicomVR.ST or DicomVR.LT or DicomVR.UC
        or DicomVR.UT or DicomVR.PN;

    /// <summary>String VRs whose value may hold several values separated by backslash (LT, ST, UT, UR may not).</summary>
    public static bool IsMultiValuedString(this DicomVR vr) => vr.IsString() && vr is not (DicomVR.LT or DicomVR.ST or DicomVR.UT or DicomVR.UR);

    /// <summary>Binary numeric VRs with a fixed value size.</summary>
    public static int NumericSize(this DicomVR vr) => vr switch
    {
        DicomVR.US or DicomVR.SS => 2,
        DicomVR.UL or DicomVR.SL or DicomVR.FL or DicomVR.AT => 4,
        DicomVR.FD or DicomVR.SV or DicomVR.UV => 8,
        _ => 0,
    };

    /// <summary>Bulk binary VRs ("other" types and UN).</summary>
    public static bool IsBulkBinary(this DicomVR vr) => vr is DicomVR.OB or DicomVR.OD or DicomVR.OF or DicomVR.OL or DicomVR.OV or DicomVR.OW or DicomVR.UN;

    /// <summary>Padding byte for even length (PS3.5 6.2): space for text, NUL for UI and binary.</summary>
    public static byte PaddingByte(this DicomVR vr) => vr.IsString() && vr != DicomVR.UI ? (byte)' ' : (byte)0;
}
