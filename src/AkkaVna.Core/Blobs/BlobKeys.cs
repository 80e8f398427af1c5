using AkkaVna.Core.Model;
using AkkaVna.Dicom.Dictionary;

namespace AkkaVna.Core.Blobs;

/// <summary>
/// The key layout every blob store shares: <c>fff/study/series/sop.dcm</c> (another representation:
/// <c>sop.REPRESENTATION.dcm</c>), where <c>fff</c> spreads studies over 4096 prefixes (a stable hash of the Study
/// Instance UID) — readable by a person, spread for folders and object-store partitions alike. Only well-formed UIDs
/// (digits and dots) and representation names (lower-case letters, digits and dashes) make a key.
/// </summary>
public static class BlobKeys
{
    public static BlobRef For(string store, string tier, string studyInstanceUid, string seriesInstanceUid, string sopInstanceUid, string representation)
    {
        foreach (var uid in (ReadOnlySpan<string>)[studyInstanceUid, seriesInstanceUid, sopInstanceUid])
            if (!DicomUidRegistry.IsWellFormed(uid)) throw new ArgumentException($"'{uid}' is not a well-formed UID", nameof(studyInstanceUid));
        if (representation.Length is 0 or > 32 || !representation.All(c => char.IsAsciiLetterLower(c) || char.IsAsciiDigit(c) || c == '-'))
            throw new ArgumentException($"'{representation}' is not a representation name (lower-case letters, digits and dashes)", nameof(representation));
        string file = representation == BlobRef.Original ? sopInstanceUid : sopInstanceUid + "." + representation;
        return new BlobRef(store, $"{StableHash.Fnv1a(studyInstanceUid) & 0xFFF:x3}/{studyInstanceUid}/{seriesInstanceUid}/{file}.dcm", representation, tier);
    }

    /// <summary>The representation a key names (<c>sop.dcm</c>: the original; <c>sop.NAME.dcm</c>: NAME).</summary>
    public static string RepresentationOf(string key)
    {
        string name = Path.GetFileNameWithoutExtension(key);
        int dot = name.LastIndexOf('.');
        return dot > 0 && !char.IsAsciiDigit(name[dot + 1]) ? name[(dot + 1)..] : BlobRef.Original;
    }
}
