using System.Collections.Frozen;

namespace AkkaVna.Dicom;

public enum PixelDataEncoding { Native, Encapsulated, Referenced, NotAFileEncoding }

/// <summary>A transfer syntax of PS3.6 Annex A with its encoding rules (PS3.5 section 10). Instances are generated.</summary>
public sealed partial class DicomTransferSyntax
{
    private DicomTransferSyntax(string uid, string keyword, string name, bool explicitVR, bool bigEndian, PixelDataEncoding pixelData, bool deflated, bool retired)
    {
        Uid = uid;
        Keyword = keyword;
        Name = name;
        IsExplicitVR = explicitVR;
        IsBigEndian = bigEndian;
        PixelData = pixelData;
        IsDeflated = deflated;
        IsRetired = retired;
    }

    public string Uid { get; }
    public string Keyword { get; }
    public string Name { get; }
    public bool IsExplicitVR { get; }
    public bool IsBigEndian { get; }
    public PixelDataEncoding PixelData { get; }
    public bool IsEncapsulated => PixelData == PixelDataEncoding.Encapsulated;
    public bool IsDeflated { get; }
    public bool IsRetired { get; }

    /// <summary>Whether a Part 10 file / a P-DATA stream can be encoded in it (the MIME, XML and SMPTE ones cannot).</summary>
    public bool IsFileEncoding => PixelData != PixelDataEncoding.NotAFileEncoding;

    private static class Index
    {
        public static readonly FrozenDictionary<string, DicomTransferSyntax> ByUid = All.ToFrozenDictionary(t => t.Uid, StringComparer.Ordinal);
    }

    public static DicomTransferSyntax? Lookup(string uid) => Index.ByUid.GetValueOrDefault(uid.TrimEnd('\0', ' '));

    /// <summary>
    /// Any UID not in the registry (e.g. a vendor's private syntax) is treated as encapsulated explicit VR little endian,
    /// which is what PS3.5 10 requires of every non-native syntax except the deflated and big endian ones.
    /// </summary>
    public static DicomTransferSyntax Resolve(string uid) =>
        Lookup(uid) ?? new DicomTransferSyntax(uid.TrimEnd('\0', ' '), "", "Unknown (" + uid.TrimEnd('\0', ' ') + ")", true, false, PixelDataEncoding.Encapsulated, false, false);

    public override string ToString() => Name;
}
