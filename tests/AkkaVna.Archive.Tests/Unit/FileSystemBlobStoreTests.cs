using System.Buffers;
using System.Security.Cryptography;
using AkkaVna.Archive.Blobs;
using AkkaVna.Testing;

namespace AkkaVna.Archive.Tests.Unit;

public sealed class FileSystemBlobStoreTests
{
    [Theory]
    [InlineData("../../etc", "1.2", "1.3")]
    [InlineData("1.2", "1.2/../..", "1.3")]
    [InlineData("1.2", "1.2", "/etc/passwd")]
    [InlineData("1.2", "1.2", "1..3")]
    [InlineData("1.2", "1.2", ".1.3")]
    [InlineData("1.2", "1.2", "")]
    [InlineData("1.2", "1.2", "1.2.3.4.5.6.7.8.9.10.11.12.13.14.15.16.17.18.19.20.21.22.23.24.25.26.27.28")]
    public void Only_well_formed_UIDs_make_a_key(string study, string series, string sop)
    {
        using var dir = new TempDir();
        Assert.Throws<ArgumentException>(() => new FileSystemBlobStore(dir.Path).KeyFor(study, series, sop));
    }

    [Theory]
    [InlineData("../outside.dcm")]
    [InlineData("/etc/passwd")]
    [InlineData(".staging/x.part")]
    public void Keys_outside_the_store_are_refused(string key)
    {
        using var dir = new TempDir();
        var store = new FileSystemBlobStore(Path.Combine(dir.Path, "blobs"));
        Assert.Throws<ArgumentException>(() => store.OpenRead(key));
    }

    [Fact]
    public async Task A_blob_is_invisible_until_promoted_and_its_checksum_is_of_its_bytes()
    {
        using var dir = new TempDir();
        var store = new FileSystemBlobStore(dir.Path);
        string key = store.KeyFor("1.2.3", "1.2.3.4", "1.2.3.4.5");
        Assert.Matches("^[0-9a-f]{3}/1.2.3/1.2.3.4/1.2.3.4.5.dcm$", key);
        var bytes = new byte[300_000];
        new Random(1).NextBytes(bytes);
        await using (var w = store.Create())
        {
            await w.WriteAsync(new ReadOnlySequence<byte>(bytes.AsMemory(0, 1000)), CancellationToken.None);
            await w.WriteAsync(bytes.AsMemory(1000), CancellationToken.None);
            string sha = await w.SealAsync(flushToDisk: true, CancellationToken.None);
            Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(bytes)), sha);
            Assert.False(store.Exists(key));
            Assert.Equal(1, store.StagedCount);
            w.Promote(key);
        }
        Assert.True(store.Exists(key));
        Assert.Equal(0, store.StagedCount);
        Assert.Equal(bytes, File.ReadAllBytes(store.FullPath(key)));
        Assert.Equal([(key, 300_000L)], store.List().ToList());
    }

    [Fact]
    public async Task A_blob_disposed_before_promotion_is_discarded_and_one_left_for_recovery_is_settled_by_the_resolver()
    {
        using var dir = new TempDir();
        var store = new FileSystemBlobStore(dir.Path);
        await using (var w = store.Create())
            await w.WriteAsync(new byte[10], CancellationToken.None);
        Assert.Equal(0, store.StagedCount);

        var staged = new List<string>();
        foreach (var n in new[] { 1, 2 })
        {
            await using var w = store.Create();
            await w.WriteAsync(new byte[] { (byte)n }, CancellationToken.None);
            await w.SealAsync(false, CancellationToken.None);
            w.LeaveForRecovery();
            staged.Add(w.StagedPath);
        }
        Assert.Equal(2, store.StagedCount);
        string key = store.KeyFor("1.2", "1.2.1", "1.2.1.1");
        var undecided = await store.RecoverStagedAsync(_ => throw new TimeoutException("the study did not answer"), TimeSpan.Zero, CancellationToken.None);
        Assert.Equal((0, 0, 2), undecided);
        Assert.Equal(2, store.StagedCount);
        var settled = await store.RecoverStagedAsync(path => Task.FromResult(path == staged[0] ? key : null), TimeSpan.Zero, CancellationToken.None);
        Assert.Equal((1, 1, 0), settled);
        Assert.Equal(0, store.StagedCount);
        Assert.Equal([1], File.ReadAllBytes(store.FullPath(key)));
    }
}
