using AkkaVna.Core.Model;
using AkkaVna.Core.Ports;

namespace AkkaVna.Core.Compression;

/// <summary>
/// Compresses an archived instance (the codecs' adapter implements it): the Part 10 blob read from
/// <paramref name="source"/> is written to <paramref name="output"/> in another syntax, a frame at a time, each frame
/// decoded again and compared with the original before it is written. CPU-heavy and synchronous: callers run it on the
/// compression pool, never on an actor's thread.
/// </summary>
public interface IInstanceCompressor
{
    /// <summary>Whether this build can compress into <paramref name="transferSyntaxUid"/>.</summary>
    bool CanCompressTo(string transferSyntaxUid);

    /// <summary>
    /// Writes the compressed instance; returns its header as the index keeps it (the new transfer syntax) and the AE title
    /// that sent the original (from its File Meta), or null. Throws
    /// <see cref="CompressionRefusedException"/> when this content cannot be compressed exactly (not worth trying again),
    /// <see cref="IOException"/> when the blob cannot be read or written now.
    /// </summary>
    CompressedInstance Compress(IBlobContent source, string transferSyntaxUid, Stream output, CancellationToken cancellationToken);
}

/// <summary>What a compression wrote: the instance's header as the index keeps it, and who sent the original.</summary>
public sealed record CompressedInstance(InstanceHeader Header, string? SourceAE);

/// <summary>This content cannot be compressed exactly into the syntax asked for; why.</summary>
public sealed class CompressionRefusedException(string reason) : Exception(reason);
