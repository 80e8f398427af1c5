namespace AkkaVna.Dicom;

/// <summary>How AkkaVna identifies itself in File Meta Information and association negotiation (PS3.7 D.3.3.2).</summary>
public static class DicomImplementation
{
    /// <summary>A UUID-derived UID (PS3.5 B.2, root 2.25) fixed for AkkaVna.</summary>
    public const string ClassUid = "2.25.20159213246733677557684743463497114302";

    /// <summary>At most 16 characters (SH).</summary>
    public const string VersionName = "AKKAVNA_010";

    /// <summary>A new UID under root 2.25 from a random UUID (PS3.5 B.2): unique without a registered root.</summary>
    public static string NewUid() =>
        "2.25." + new System.Numerics.BigInteger(Guid.NewGuid().ToByteArray(), isUnsigned: true).ToString(System.Globalization.CultureInfo.InvariantCulture);
}
