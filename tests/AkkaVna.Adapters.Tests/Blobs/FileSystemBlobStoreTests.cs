using AkkaVna.Testing.Contracts;
using AkkaVna.Testing;
using AkkaVna.Blobs.FileSystem;
using AkkaVna.Core.Model;
using AkkaVna.Core.Ports;

namespace AkkaVna.Adapters.Tests.Blobs;

/// <summary>The filesystem store: the blob contract, and what only files have (the key layout, paths that must not escape).</summary>
public sealed class FileSystemBlobStoreTests : BlobStoreContract
{
    private readonly TempDir _dir = new();

    protected override Task<IBlobStore> CreateStoreAsync() => Task.FromResult<IBlobStore>(new FileSystemBlobStore(Path.Combine(_dir.Path, "blobs")));

    public override Task DisposeAsync()
    {
        _dir.Dispose();
        return Task.CompletedTask;
    }

    [Fact]
    public void Keys_spread_studies_over_4096_folders_and_read_as_study_series_instance()
    {
        Assert.Matches("^[0-9a-f]{3}/1.2.3/1.2.3.4/1.2.3.4.5.dcm$", Store.RefFor("1.2.3", "1.2.3.4", "1.2.3.4.5").Key);
        Assert.EndsWith("/1.2.3.4.5.htj2k.dcm", Store.RefFor("1.2.3", "1.2.3.4", "1.2.3.4.5", "htj2k").Key, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("../outside.dcm")]
    [InlineData("/etc/passwd")]
    [InlineData(".staging/x.part")]
    public async Task References_outside_the_store_are_refused(string key) =>
        await Assert.ThrowsAsync<ArgumentException>(async () => await Store.OpenAsync(new BlobRef(Store.Name, key), CancellationToken.None));

    [Fact]
    public async Task A_reference_to_another_store_is_refused() =>
        await Assert.ThrowsAsync<ArgumentException>(async () => await Store.OpenAsync(new BlobRef("cold", "abc/1.2/1.2.3/1.2.3.4.dcm"), CancellationToken.None));
}
