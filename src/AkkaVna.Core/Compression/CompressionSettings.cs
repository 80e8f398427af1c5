namespace AkkaVna.Core.Compression;

/// <summary>
/// How the compression children work (config <c>akka-vna.compression</c>): whether at all, how long after a study becomes
/// stable, which instances into which syntax (the rules), how many instances at once on the whole node (the pool's
/// threads, at a lower CPU priority than ingest), and how failed attempts back off.
/// </summary>
public sealed record CompressionSettings(bool Enabled, TimeSpan Delay, CompressionRules Rules, int Workers, TimeSpan RetryMin, TimeSpan RetryMax)
{
    /// <summary>Keep each original beside its verified compressed copy (indexed, verified, destroyed with the study) instead of deleting it.</summary>
    public bool KeepOriginal { get; init; }

    public static readonly CompressionSettings Disabled = new(false, TimeSpan.Zero, new CompressionRules([]), 1, TimeSpan.FromMinutes(1), TimeSpan.FromHours(6));

    /// <summary>The blob representation name of a compressed copy (part of its key; the original's is <c>original</c>).</summary>
    public static string RepresentationOf(string transferSyntaxUid) => transferSyntaxUid switch
    {
        "1.2.840.10008.1.2.5" => "rle",
        "1.2.840.10008.1.2.4.80" => "jpegls",
        "1.2.840.10008.1.2.4.90" => "j2k",
        "1.2.840.10008.1.2.4.70" => "jpegll",
        "1.2.840.10008.1.2.4.201" => "htj2k",
        _ => "ts-" + string.Concat(transferSyntaxUid.Where(char.IsAsciiDigit)),
    };
}
