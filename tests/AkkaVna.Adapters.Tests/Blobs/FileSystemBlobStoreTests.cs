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
    public async Task A_dead_nodes_blobs_are_settled_at_once_except_those_whose_commit_may_still_happen_and_its_folder_goes_when_empty()
    {
        string root = Path.Combine(_dir.Path, "shared");
        var none = CancellationToken.None;
        var committed = new BlobRef(BlobRef.PrimaryStore, new FileSystemBlobStore(root, node: "probe").RefFor("1.2", "1.2.1", "1.2.1.1").Key);
        await using (var dead = new FileSystemBlobStore(root, node: "n1"))
        {
            foreach (var (b, deadline) in new[] { ((byte)1, DateTimeOffset.UtcNow.AddMinutes(1)), ((byte)2, DateTimeOffset.UtcNow.AddMinutes(-1)) })
            {
                await using var w = await dead.CreateAsync(none);
                await w.WriteAsync(new[] { b }, none);
                await w.SealAsync(false, none);
                w.KeepStagedUntil(deadline);
                w.LeaveForRecovery();
            }
        } // n1's lock released: it is gone
        await using var survivor = new FileSystemBlobStore(root, node: "n2");
        var resolver = new DelegateResolver(async staged =>
        {
            await using var s = staged.OpenRead();
            return s.ReadByte() == 2 ? committed : null;
        });
        // The one whose deadline passed is settled (promoted: it was committed); the other may still be committed: left.
        Assert.Equal(new StagedRecovery(1, 0, 1), await survivor.RecoverStagedAsync(resolver, TimeSpan.FromHours(1), none));
        Assert.True(await survivor.ExistsAsync(committed, none));
        Assert.Equal(1, await survivor.CountStagedAsync(none));
        Assert.True(Directory.Exists(Path.Combine(root, ".staging", "n1")));

        // Once its deadline is past, it is settled and the dead node's folder removed; a node of that name can come back.
        foreach (var part in Directory.EnumerateFiles(Path.Combine(root, ".staging", "n1"), "*.part"))
            File.SetLastWriteTimeUtc(part, DateTime.UtcNow.AddMinutes(-5));
        Assert.Equal(new StagedRecovery(0, 1, 0), await survivor.RecoverStagedAsync(resolver, TimeSpan.FromHours(1), none));
        Assert.False(Directory.Exists(Path.Combine(root, ".staging", "n1")));
        await using var back = new FileSystemBlobStore(root, node: "n1");
        await using (var w = await back.CreateAsync(none))
            await w.WriteAsync(new byte[] { 3 }, none);
    }

    [Fact]
    public async Task A_reference_to_another_store_is_refused() =>
        await Assert.ThrowsAsync<ArgumentException>(async () => await Store.OpenAsync(new BlobRef("cold", "abc/1.2/1.2.3/1.2.3.4.dcm"), CancellationToken.None));
}
