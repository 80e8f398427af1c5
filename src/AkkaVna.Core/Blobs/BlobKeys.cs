using AkkaVna.Core.Model;
using AkkaVna.Dicom.Dictionary;

namespace AkkaVna.Core.Blobs;

/// <summary>
/// The key layout every blob store shares: <c>fff/study/series/sop.dcm</c> (another representation:
/// <c>sop.REPRESENTATION.dcm</c>), where <c>fff</c> spreads studies over 4096 prefixes (a stable hash of the Study
/// Instance UID) — readable by a person, spread for folders and object-store partitions alike. Only well-formed UIDs
/// (digits and dots) and representation names (lower-case letters, digits and dashes) make a key. A store that never
/// overwrites an object in place (S3: a different content under the same SOP Instance UID must not replace the bytes
/// an index row still names) adds a version, the start of the content's SHA-256: <c>sop_0123456789abcdef.dcm</c>.
/// </summary>
public static class BlobKeys
{
    /// <summary>How many hex digits of the SHA-256 a versioned key carries (64 bits: two contents of one instance never meet).</summary>
    public const int VersionLength = 16;

    public static BlobRef For(string store, string tier, string studyInstanceUid, string seriesInstanceUid, string sopInstanceUid, string representation,
        string? contentSha256 = null)
    {
        foreach (var uid in (ReadOnlySpan<string>)[studyInstanceUid, seriesInstanceUid, sopInstanceUid])
            if (!DicomUidRegistry.IsWellFormed(uid)) throw new ArgumentException($"'{uid}' is not a well-formed UID", nameof(studyInstanceUid));
        if (representation.Length is 0 or > 32 || !representation.All(c => char.IsAsciiLetterLower(c) || char.IsAsciiDigit(c) || c == '-'))
            throw new ArgumentException($"'{representation}' is not a representation name (lower-case letters, digits and dashes)", nameof(representation));
        string file = representation == BlobRef.Original ? sopInstanceUid : sopInstanceUid + "." + representation;
        if (contentSha256 is not null)
        {
            if (contentSha256.Length < VersionLength || !contentSha256.All(char.IsAsciiHexDigitLower))
                throw new ArgumentException($"'{contentSha256}' is not a SHA-256 in lower-case hex", nameof(contentSha256));
            file += "_" + contentSha256[..VersionLength];
        }
        return new BlobRef(store, $"{StableHash.Fnv1a(studyInstanceUid) & 0xFFF:x3}/{studyInstanceUid}/{seriesInstanceUid}/{file}.dcm", representation, tier);
    }

    /// <summary>The representation a key names (<c>sop.dcm</c>: the original; <c>sop.NAME.dcm</c>: NAME; either with a <c>_version</c>).</summary>
    public static string RepresentationOf(string key)
    {
        string name = Path.GetFileNameWithoutExtension(key);
        if (name.LastIndexOf('_') is > 0 and var version) name = name[..version];
        int dot = name.LastIndexOf('.');
        return dot > 0 && !char.IsAsciiDigit(name[dot + 1]) ? name[(dot + 1)..] : BlobRef.Original;
    }

    /// <summary>The content version a key carries (<c>sop_VERSION.dcm</c>), or null.</summary>
    public static string? VersionOf(string key)
    {
        string name = Path.GetFileNameWithoutExtension(key);
        int at = name.LastIndexOf('_');
        return at > 0 && name.Length - at - 1 == VersionLength ? name[(at + 1)..] : null;
    }

    /// <summary>The study, series and SOP instance a key of this layout names; null when it is not one.</summary>
    public static (string Study, string Series, string SopInstance)? Parse(string key)
    {
        var parts = key.Split('/');
        if (parts.Length != 4 || !parts[3].EndsWith(".dcm", StringComparison.Ordinal)) return null;
        string file = parts[3][..^4];
        if (file.LastIndexOf('_') is > 0 and var v) file = file[..v];
        // sop or sop.REPRESENTATION (a representation starts with a letter; a UID's parts with digits)
        int dot = file.LastIndexOf('.');
        if (dot > 0 && !char.IsAsciiDigit(file[dot + 1])) file = file[..dot];
        return DicomUidRegistry.IsWellFormed(parts[1]) && DicomUidRegistry.IsWellFormed(parts[2]) && DicomUidRegistry.IsWellFormed(file)
            ? (parts[1], parts[2], file) : null;
    }
}
