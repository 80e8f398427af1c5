using Xunit;
using System.Buffers;
using System.Security.Cryptography;
using AkkaVna.Core.Model;
using AkkaVna.Core.Ports;

namespace AkkaVna.Testing.Contracts;

/// <summary>
/// What every blob-store adapter must do, written against the port alone: an adapter's test class derives from this one
/// and supplies a fresh, empty store; later adapters (S3) pass it unchanged.
/// </summary>
public abstract class BlobStoreContract : IAsyncLifetime
{
    protected IBlobStore Store { get; private set; } = null!;

    /// <summary>A new, empty store (called once per test).</summary>
    protected abstract Task<IBlobStore> CreateStoreAsync();

    public async Task InitializeAsync() => Store = await CreateStoreAsync();

    public virtual Task DisposeAsync() => Task.CompletedTask;

    private static readonly CancellationToken None = CancellationToken.None;

    private static byte[] Bytes(int length, int seed)
    {
        var bytes = new byte[length];
        new Random(seed).NextBytes(bytes);
        return bytes;
    }

    private async Task<(BlobRef Blob, byte[] Bytes)> PutAsync(string sop, int length, int seed = 1)
    {
        var blob = Store.RefFor("1.2.3", "1.2.3.4", sop);
        var bytes = Bytes(length, seed);
        await using var w = await Store.CreateAsync(None);
        await w.WriteAsync(bytes, None);
        await w.SealAsync(flushToDisk: true, None);
        await w.PromoteAsync(blob, None);
        return (blob, bytes);
    }

    private static async Task<byte[]> ReadAllAsync(IBlobContent content)
    {
        await using var stream = content.OpenRead();
        using var ms = new MemoryStream();
        await stream.CopyToAsync(ms);
        return ms.ToArray();
    }

    [Theory]
    [InlineData("../../etc", "1.2", "1.3")]
    [InlineData("1.2", "1.2/../..", "1.3")]
    [InlineData("1.2", "1.2", "/etc/passwd")]
    [InlineData("1.2", "1.2", "1..3")]
    [InlineData("1.2", "1.2", ".1.3")]
    [InlineData("1.2", "1.2", "")]
    [InlineData("1.2", "1.2", "1.2.3.4.5.6.7.8.9.10.11.12.13.14.15.16.17.18.19.20.21.22.23.24.25.26.27.28")]
    public void Only_well_formed_UIDs_make_a_reference(string study, string series, string sop) =>
        Assert.Throws<ArgumentException>(() => Store.RefFor(study, series, sop));

    [Fact]
    public void A_reference_names_this_store_the_representation_and_keeps_representations_apart()
    {
        var original = Store.RefFor("1.2.3", "1.2.3.4", "1.2.3.4.5");
        var derived = Store.RefFor("1.2.3", "1.2.3.4", "1.2.3.4.5", "htj2k");
        Assert.Equal((Store.Name, BlobRef.Original), (original.Store, original.Representation));
        Assert.Equal("htj2k", derived.Representation);
        Assert.NotEqual(original.Key, derived.Key);
        Assert.Throws<ArgumentException>(() => Store.RefFor("1.2.3", "1.2.3.4", "1.2.3.4.5", "../x"));
    }

    [Fact]
    public async Task A_blob_is_invisible_until_promoted_and_its_checksum_is_of_its_bytes()
    {
        var blob = Store.RefFor("1.2.3", "1.2.3.4", "1.2.3.4.5");
        var bytes = Bytes(300_000, 1);
        await using (var w = await Store.CreateAsync(None))
        {
            await w.WriteAsync(new ReadOnlySequence<byte>(bytes.AsMemory(0, 1000)), None);
            await w.WriteAsync(bytes.AsMemory(1000), None);
            Assert.Equal(300_000, w.Length);
            string sha = await w.SealAsync(flushToDisk: true, None);
            Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(bytes)), sha);
            Assert.False(await Store.ExistsAsync(blob, None));
            Assert.Equal(1, await Store.CountStagedAsync(None));
            await w.PromoteAsync(blob, None);
        }
        Assert.True(await Store.ExistsAsync(blob, None));
        Assert.Equal(0, await Store.CountStagedAsync(None));
        await using (var content = await Store.OpenAsync(blob, None))
        {
            Assert.Equal(blob, content.Blob);
            Assert.Equal(300_000, content.Length);
            Assert.Equal(bytes, await ReadAllAsync(content));
        }
        var listed = new List<BlobListing>();
        await foreach (var l in Store.ListAsync(None)) listed.Add(l);
        Assert.Equal([new BlobListing(blob, 300_000)], listed);
    }

    [Fact]
    public async Task Ranged_reads_seek_without_reading_what_comes_before()
    {
        var (blob, bytes) = await PutAsync("1.2.3.4.6", 1_000_000, seed: 2);
        await using var content = await Store.OpenAsync(blob, None);
        await using var stream = content.OpenRead();
        Assert.True(stream.CanSeek);
        foreach (long offset in new long[] { 999_000, 17, 500_000 })
        {
            stream.Position = offset;
            var chunk = new byte[1000];
            await stream.ReadExactlyAsync(chunk);
            Assert.Equal(bytes.AsSpan((int)offset, 1000).ToArray(), chunk);
        }
    }

    [Fact]
    public async Task A_missing_blob_is_not_found_and_delete_is_idempotent()
    {
        var blob = Store.RefFor("1.2.3", "1.2.3.4", "1.2.3.4.7");
        await Assert.ThrowsAsync<BlobNotFoundException>(async () => await Store.OpenAsync(blob, None));
        await Store.DeleteAsync(blob, None); // nothing there: no error
        var (stored, _) = await PutAsync("1.2.3.4.7", 10);
        await Store.DeleteAsync(stored, None);
        Assert.False(await Store.ExistsAsync(stored, None));
    }

    [Fact]
    public async Task Promotion_replaces_what_is_there_atomically()
    {
        var (blob, _) = await PutAsync("1.2.3.4.8", 100, seed: 3);
        var (_, second) = await PutAsync("1.2.3.4.8", 200, seed: 4);
        await using var content = await Store.OpenAsync(blob, None);
        Assert.Equal(second, await ReadAllAsync(content));
    }

    [Fact]
    public async Task A_blob_disposed_before_promotion_is_discarded_and_one_left_for_recovery_is_settled_by_the_resolver()
    {
        await using (var w = await Store.CreateAsync(None))
            await w.WriteAsync(new byte[10], None);
        Assert.Equal(0, await Store.CountStagedAsync(None));

        foreach (var n in new byte[] { 1, 2 })
        {
            await using var w = await Store.CreateAsync(None);
            await w.WriteAsync(new[] { n }, None);
            await w.SealAsync(false, None);
            w.LeaveForRecovery();
        }
        Assert.Equal(2, await Store.CountStagedAsync(None));
        var target = Store.RefFor("1.2", "1.2.1", "1.2.1.1");
        var undecided = await Store.RecoverStagedAsync(new DelegateResolver(_ => throw new TimeoutException("the study did not answer")), TimeSpan.Zero, None);
        Assert.Equal(new StagedRecovery(0, 0, 2), undecided);
        Assert.Equal(2, await Store.CountStagedAsync(None));
        // The resolver reads each staged blob: the one holding 1 was committed, the other never acknowledged.
        var settled = await Store.RecoverStagedAsync(new DelegateResolver(async staged => (await ReadAllAsync(staged))[0] == 1 ? target : null), TimeSpan.Zero, None);
        Assert.Equal(new StagedRecovery(1, 1, 0), settled);
        Assert.Equal(0, await Store.CountStagedAsync(None));
        await using var content = await Store.OpenAsync(target, None);
        Assert.Equal([1], await ReadAllAsync(content));
        // Too young to discard (its commit may still come): left, and counted as left.
        await using (var w = await Store.CreateAsync(None))
        {
            await w.WriteAsync(new byte[] { 3 }, None);
            await w.SealAsync(false, None);
            w.LeaveForRecovery();
        }
        Assert.Equal(new StagedRecovery(0, 0, 1), await Store.RecoverStagedAsync(new DelegateResolver(_ => Task.FromResult<BlobRef?>(null)), TimeSpan.FromHours(1), None));
        Assert.Equal(1, await Store.CountStagedAsync(None));
        // Young, but named by the index: promoted at once (a node restarted right after a crash settles its commits).
        var young = Store.RefFor("1.2", "1.2.1", "1.2.1.3");
        Assert.Equal(new StagedRecovery(1, 0, 0), await Store.RecoverStagedAsync(new DelegateResolver(_ => Task.FromResult<BlobRef?>(young)), TimeSpan.FromHours(1), None));
        Assert.True(await Store.ExistsAsync(young, None));
    }

    [Fact]
    public async Task A_blob_whose_writer_is_still_open_in_this_process_is_never_decided_by_recovery()
    {
        // A compression under way while the node's startup recovery runs: its staged copy is not yet named by the index,
        // and recovery must not discard it from under its writer.
        var target = Store.RefFor("1.2", "1.2.1", "1.2.1.9");
        await using var w = await Store.CreateAsync(None);
        await w.WriteAsync(new byte[] { 7 }, None);
        await w.SealAsync(false, None);
        Assert.Equal(new StagedRecovery(0, 0, 0), await Store.RecoverStagedAsync(new DelegateResolver(_ => Task.FromResult<BlobRef?>(null)), TimeSpan.Zero, None));
        await w.PromoteAsync(target, None);
        await using var content = await Store.OpenAsync(target, None);
        Assert.Equal([7], await ReadAllAsync(content));
    }

    [Fact]
    public async Task A_blob_whose_commit_may_still_happen_is_left_staged_until_its_deadline_has_passed()
    {
        // Its commit was sent with a deadline a minute away (a command held in a shard's buffer may still be committed):
        // however old the file, recovery must not decide it yet — "not indexed" would discard a blob about to be named.
        await using (var w = await Store.CreateAsync(None))
        {
            await w.WriteAsync(new byte[] { 1 }, None);
            await w.SealAsync(false, None);
            w.KeepStagedUntil(DateTimeOffset.UtcNow.AddMinutes(1));
            w.LeaveForRecovery();
        }
        var notIndexed = new DelegateResolver(_ => Task.FromResult<BlobRef?>(null));
        Assert.Equal(new StagedRecovery(0, 0, 1), await Store.RecoverStagedAsync(notIndexed, TimeSpan.Zero, None));
        Assert.Equal(1, await Store.CountStagedAsync(None));
        // One whose deadline (and the clocks' margin) has passed is settled.
        await using (var w = await Store.CreateAsync(None))
        {
            await w.WriteAsync(new byte[] { 2 }, None);
            await w.SealAsync(false, None);
            w.KeepStagedUntil(DateTimeOffset.UtcNow - TimeSpan.FromMinutes(1));
            w.LeaveForRecovery();
        }
        Assert.Equal(new StagedRecovery(0, 1, 1), await Store.RecoverStagedAsync(notIndexed, TimeSpan.Zero, None));
        Assert.Equal(1, await Store.CountStagedAsync(None));
    }

    [Fact]
    public async Task A_sealed_blob_takes_no_more_bytes_and_an_unsealed_one_cannot_be_promoted()
    {
        await using var w = await Store.CreateAsync(None);
        await w.WriteAsync(new byte[] { 1 }, None);
        await Assert.ThrowsAsync<InvalidOperationException>(async () => await w.PromoteAsync(Store.RefFor("1.2", "1.2.1", "1.2.1.9"), None));
        await w.SealAsync(false, None);
        await Assert.ThrowsAnyAsync<Exception>(async () => await w.WriteAsync(new byte[] { 2 }, None));
    }

    [Fact]
    public async Task A_blob_prepared_before_its_commit_is_read_once_promoted_and_leaves_nothing_when_no_commit_names_it()
    {
        async Task<(IBlobWriter Writer, BlobRef Blob, byte[] Bytes)> PreparedAsync(string sop, int seed)
        {
            var bytes = Bytes(50_000, seed);
            var w = await Store.CreateAsync(None);
            await w.WriteAsync(bytes, None);
            string sha = await w.SealAsync(flushToDisk: true, None);
            var blob = Store.RefFor("1.2.3", "1.2.3.4", sop, BlobRef.Original, sha);
            await w.PrepareAsync(blob, None);
            return (w, blob, bytes);
        }

        // The commit named other bytes (a refusal): disposing the writer takes back what it prepared.
        var (refused, refusedBlob, _) = await PreparedAsync("1.2.3.4.20", 20);
        await refused.DisposeAsync();
        Assert.False(await Store.ExistsAsync(refusedBlob, None));

        // Committed: promoted, and read back.
        var (committed, committedBlob, bytes) = await PreparedAsync("1.2.3.4.21", 21);
        await using (committed) await committed.PromoteAsync(committedBlob, None);
        await using (var content = await Store.OpenAsync(committedBlob, None)) Assert.Equal(bytes, await ReadAllAsync(content));

        // Outcome unknown: recovery asks the index. No row names the first (gone), one names the second (promoted).
        var (unknown1, blob1, _) = await PreparedAsync("1.2.3.4.22", 22);
        var (unknown2, blob2, bytes2) = await PreparedAsync("1.2.3.4.23", 23);
        foreach (var w in new[] { unknown1, unknown2 })
        {
            w.LeaveForRecovery();
            await w.DisposeAsync();
        }
        var settled = await Store.RecoverStagedAsync(new DelegateResolver(async staged => (await ReadAllAsync(staged)).SequenceEqual(bytes2) ? blob2 : null,
            referenced: b => b == blob2), TimeSpan.Zero, None);
        Assert.Equal(new StagedRecovery(1, 1, 0), settled);
        Assert.False(await Store.ExistsAsync(blob1, None));
        await using (var content = await Store.OpenAsync(blob2, None)) Assert.Equal(bytes2, await ReadAllAsync(content));
        Assert.Equal(0, await Store.CountStagedAsync(None));
        var listed = new List<BlobRef>();
        await foreach (var l in Store.ListAsync(None)) listed.Add(l.Blob);
        Assert.Equal(new[] { committedBlob, blob2 }.OrderBy(b => b.Key), listed.OrderBy(b => b.Key));
    }
}
