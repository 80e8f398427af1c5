using AkkaVna.Core.Model;
using AkkaVna.Core.Ports;

namespace AkkaVna.Testing.Contracts;

/// <summary>A recovery resolver from functions (what the archive would answer), for store tests without an index.</summary>
public sealed class DelegateResolver(Func<IBlobContent, Task<BlobRef?>> resolve, Func<BlobRef, bool>? referenced = null) : IStagedBlobResolver
{
    public Task<BlobRef?> ResolveAsync(IBlobContent staged, CancellationToken cancellationToken) => resolve(staged);

    public Task<bool> IsReferencedAsync(BlobRef blob, CancellationToken cancellationToken) => Task.FromResult(referenced?.Invoke(blob) ?? false);
}
