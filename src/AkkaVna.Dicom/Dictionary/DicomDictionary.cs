using System.Collections.Frozen;

namespace AkkaVna.Dicom.Dictionary;

/// <summary>One row of PS3.6 Table 6-1 (or PS3.7 E.1-1). A concrete tag t matches when (t &amp; Mask) == Tag.</summary>
public sealed record DicomDictionaryEntry(uint Tag, uint Mask, string Keyword, string Name, DicomVR VR, DicomVR VR2, DicomVR VR3, string VM, bool Retired)
{
    public bool IsRepeating => Mask != 0xFFFFFFFF;

    public IEnumerable<DicomVR> ValueRepresentations
    {
        get
        {
            if (VR != DicomVR.None) yield return VR;
            if (VR2 != DicomVR.None) yield return VR2;
            if (VR3 != DicomVR.None) yield return VR3;
        }
    }
}

/// <summary>The public data dictionary, generated from the standard (see generate.py).</summary>
public static partial class DicomDictionary
{
    // Indexes live in a nested class: static initializers of partial classes in different files run in no defined order.
    private static class Index
    {
        public static readonly FrozenDictionary<uint, DicomDictionaryEntry> ByTag =
            PublicEntries.Where(e => !e.IsRepeating).ToFrozenDictionary(e => e.Tag);

        public static readonly DicomDictionaryEntry[] Repeating = PublicEntries.Where(e => e.IsRepeating).ToArray();

        public static readonly FrozenDictionary<string, DicomDictionaryEntry> ByKeyword =
            PublicEntries.ToFrozenDictionary(e => e.Keyword, StringComparer.Ordinal);
    }

    public static IReadOnlyList<DicomDictionaryEntry> Entries => PublicEntries;

    public static DicomDictionaryEntry? Lookup(DicomTag tag)
    {
        uint t = tag.Value;
        if (Index.ByTag.TryGetValue(t, out var e)) return e;
        foreach (var r in Index.Repeating)
            if ((t & r.Mask) == r.Tag) return r;
        return null;
    }

    public static DicomDictionaryEntry? Lookup(string keyword) => Index.ByKeyword.GetValueOrDefault(keyword);

    /// <summary>
    /// The VR to use when the wire does not say (implicit VR): the dictionary's first VR; group lengths are UL
    /// (PS3.5 7.2), private creators LO (PS3.5 7.8.1); anything unknown is UN.
    /// </summary>
    public static DicomVR ImplicitVR(DicomTag tag)
    {
        if (tag.IsGroupLength) return DicomVR.UL;
        if (tag.IsPrivateCreator) return DicomVR.LO;
        if (tag.IsPrivate) return DicomVR.UN;
        var e = Lookup(tag);
        if (e is null || e.VR == DicomVR.None) return DicomVR.UN;
        // OB/OW (Pixel Data, Overlay Data...): OW in implicit VR little endian (PS3.5 A.1, 8.1.2).
        if (e.VR == DicomVR.OB && e.VR2 == DicomVR.OW) return DicomVR.OW;
        return e.VR;
    }
}

public sealed record DicomUidEntry(string Uid, string Keyword, string Name, string Type, bool Retired)
{
    /// <summary>
    /// A Storage Service Class SOP class (PS3.4 Annex B): the 1.2.840.10008.5.1.4.1.1 family plus the storage classes
    /// registered elsewhere (hanging protocols, color palettes, implant templates, RT delivery instructions, hardcopy).
    /// Storage Commitment and the DICOMDIR class are not storage classes.
    /// </summary>
    public bool IsStorageSopClass => Type == "SOP Class" && Uid != "1.2.840.10008.1.3.10"
        && (Uid.StartsWith("1.2.840.10008.5.1.4.1.1.", StringComparison.Ordinal)
            || ((Keyword.EndsWith("Storage", StringComparison.Ordinal) || Keyword.EndsWith("StorageTrial", StringComparison.Ordinal))
                && !Keyword.StartsWith("StorageCommitment", StringComparison.Ordinal)));
}

/// <summary>The UID registry of PS3.6 Annex A, generated from the standard.</summary>
public static partial class DicomUidRegistry
{
    private static class Index
    {
        public static readonly FrozenDictionary<string, DicomUidEntry> ByUid = Data.ToFrozenDictionary(e => e.Uid, StringComparer.Ordinal);
    }

    public static IReadOnlyList<DicomUidEntry> Entries => Data;

    public static DicomUidEntry? Lookup(string uid) => Index.ByUid.GetValueOrDefault(uid);

    /// <summary>
    /// A well-formed UID (PS3.5 9.1): digits and dots, at most 64 characters, no empty component. Leading zeros are
    /// tolerated (they are common in the wild). Only such UIDs are ever used in a file path or object key.
    /// </summary>
    public static bool IsWellFormed(string uid) =>
        uid.Length is > 0 and <= 64 && uid[0] != '.' && uid[^1] != '.' && !uid.Contains("..", StringComparison.Ordinal) && uid.All(c => char.IsAsciiDigit(c) || c == '.');
}

/// <summary>A private element definition: (group, creator, low byte of the element within the creator's block).</summary>
public sealed record DicomPrivateEntry(string Creator, ushort Group, byte ElementOffset, int FixedBlock, string Keyword, string Name, DicomVR VR, string VM);

/// <summary>Private data elements known by creator (flattened from fo-dicom's private dictionary), used to resolve VRs in implicit VR.</summary>
public static partial class DicomPrivateDictionary
{
    private static class Index
    {
        public static readonly FrozenDictionary<(string, ushort, byte), DicomPrivateEntry> ByKey =
            Data.GroupBy(e => (e.Creator, e.Group, e.ElementOffset)).ToFrozenDictionary(g => g.Key, g => g.First());
    }

    public static DicomPrivateEntry? Lookup(string creator, DicomTag tag) =>
        Index.ByKey.GetValueOrDefault((creator.Trim(), tag.Group, (byte)(tag.Element & 0xFF)));

    public static int Count => Data.Length;
}
