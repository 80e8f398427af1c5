namespace AkkaVna.Core.Model;

/// <summary>
/// Where one instance's bytes are: the store that holds them (a name from configuration: the primary store, a cold tier),
/// the key within it, which representation of the instance they are (the original as received, or a version another
/// feature derived from it, e.g. a lossless transcoding) and the storage tier. A reference, never the bytes: it travels
/// in actor messages and the journal.
/// </summary>
public sealed record BlobRef(string Store, string Key, string Representation = BlobRef.Original, string Tier = BlobRef.DefaultTier)
{
    /// <summary>The instance as it was received.</summary>
    public const string Original = "original";

    public const string DefaultTier = "default";

    /// <summary>The store every node has: where ingest writes.</summary>
    public const string PrimaryStore = "primary";

    public override string ToString() => $"{Store}:{Key}";
}

/// <summary>A blob and its size, as a store lists it.</summary>
public readonly record struct BlobListing(BlobRef Blob, long Length);

/// <summary>What <see cref="IBlobStore.RecoverStagedAsync"/> did with the blobs a crash left staged.</summary>
public readonly record struct StagedRecovery(int Promoted, int Discarded, int Kept)
{
    public static StagedRecovery operator +(StagedRecovery a, StagedRecovery b) => new(a.Promoted + b.Promoted, a.Discarded + b.Discarded, a.Kept + b.Kept);
}

/// <summary>The store holds no blob under that reference.</summary>
public sealed class BlobNotFoundException(BlobRef blob) : Exception($"no blob {blob}")
{
    public BlobRef Blob { get; } = blob;
}
